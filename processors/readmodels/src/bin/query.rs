//! `troupe-query`: the HTTP query API over one copy of the read models.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    troupe_runtime::telemetry::init("query");
    match troupe_readmodels::api::serve_from_env(troupe_runtime::shutdown::signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("troupe-query: {error}");
            ExitCode::from(1)
        }
    }
}
