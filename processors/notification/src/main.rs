#[tokio::main]
async fn main() -> std::process::ExitCode {
    let service = troupe_notification::NotificationService;
    troupe_runtime::processor::main(troupe_runtime::Stateful(service)).await
}
