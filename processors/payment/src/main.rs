#[tokio::main]
async fn main() -> std::process::ExitCode {
    let service = troupe_payment::PaymentService::from_env();
    troupe_runtime::processor::main(troupe_runtime::Stateful(service)).await
}
