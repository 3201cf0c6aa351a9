use anyhow::Context;
use tokio::net::TcpListener;
use troupe_runtime::config::{env_or, ports};

#[tokio::main]
async fn main() {
    troupe_runtime::telemetry::init("troupe-cql");
    if let Err(error) = serve().await {
        eprintln!("troupe-cql: {error:#}");
        std::process::exit(1);
    }
}

async fn serve() -> anyhow::Result<()> {
    let listen = env_or("TROUPE_CQL_LISTEN", format!("127.0.0.1:{}", ports::CQL));
    let listener = TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(address = %listener.local_addr()?, "cql server listening");
    tokio::select! {
        () = troupe_cql::CqlServer::new().serve(listener) => {}
        () = troupe_runtime::shutdown::signal() => {}
    }
    Ok(())
}
