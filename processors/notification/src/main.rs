#[tokio::main]
async fn main() -> std::process::ExitCode {
    troupe_runtime::processor::main(troupe_notification::NotificationService).await
}
