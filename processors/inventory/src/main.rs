#[tokio::main]
async fn main() -> std::process::ExitCode {
    let service = troupe_inventory::InventoryService::from_env();
    troupe_runtime::processor::main(troupe_runtime::Stateful(service)).await
}
