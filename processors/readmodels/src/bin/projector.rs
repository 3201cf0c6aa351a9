//! `troupe-projector`: feeds one copy of the read models (`TROUPE_READMODEL_COPY`, default `a`)
//! from the saga's topics.

use std::process::ExitCode;

use troupe_readmodels::{Copy, Projector};
use troupe_runtime::config::{PostgresConfig, ProcessorConfig};

fn main() -> ExitCode {
    if let Err(error) = troupe_runtime::config::check_env() {
        eprintln!("troupe-projector: {error}");
        return ExitCode::from(2);
    }
    let copy = match Copy::from_env() {
        Ok(copy) => copy,
        Err(error) => {
            eprintln!("troupe-projector: TROUPE_READMODEL_COPY: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        troupe_runtime::telemetry::init("projector");
        // The copy names the database and the group unless they are set explicitly.
        let config = ProcessorConfig::from_env_or("projector", &copy.database(), &copy.group());
        let stores = async {
            let stores = troupe_readmodels::api::Stores::open(&copy).await?;
            // The first copy of a deployment goes live; later ones are rebuilds.
            let control =
                troupe_readmodels::control::connect(&PostgresConfig::from_env().url).await?;
            let prefix = config.topics.prefix().to_owned();
            let state = troupe_readmodels::control::register(&control, &prefix, &copy).await?;
            tracing::info!(copy = copy.name(), state, "read-model copy");
            Ok::<_, anyhow::Error>(stores)
        };
        let stores = match stores.await {
            Ok(stores) => stores,
            Err(error) => {
                eprintln!("troupe-projector: {error}");
                return ExitCode::from(1);
            }
        };
        match troupe_runtime::processor::run(
            config,
            Projector::new(stores.pg, stores.cql),
            troupe_runtime::shutdown::signal(),
        )
        .await
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("troupe-projector: {error}");
                ExitCode::from(1)
            }
        }
    })
}
