#[tokio::main]
async fn main() -> std::process::ExitCode {
    troupe_runtime::processor::main(troupe_inventory::InventoryService::from_env()).await
}
