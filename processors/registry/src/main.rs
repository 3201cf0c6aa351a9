use anyhow::Context;
use tokio::net::TcpListener;
use troupe_runtime::config::{env_or, ports, PostgresConfig};

#[tokio::main]
async fn main() {
    troupe_runtime::telemetry::init("troupe-registry");
    if let Err(error) = serve().await {
        eprintln!("troupe-registry: {error:#}");
        std::process::exit(1);
    }
}

async fn serve() -> anyhow::Result<()> {
    let listen = env_or(
        "TROUPE_REGISTRY_LISTEN",
        format!("127.0.0.1:{}", ports::SCHEMA_REGISTRY),
    );
    let database = env_or("TROUPE_REGISTRY_DATABASE", "troupe_registry");
    let url = PostgresConfig::from_env().database_url(&database);
    let store = troupe_registry::Store::connect(&url)
        .await
        .with_context(|| format!("cannot open the schema store (database {database})"))?;
    let listener = TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(address = %listener.local_addr()?, database, "schema registry listening");
    troupe_registry::run(listener, store, troupe_runtime::shutdown::signal()).await?;
    tracing::info!("schema registry stopped");
    Ok(())
}
