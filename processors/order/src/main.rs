#[tokio::main]
async fn main() -> std::process::ExitCode {
    troupe_runtime::processor::main(troupe_runtime::Stateful(troupe_order::OrderService)).await
}
