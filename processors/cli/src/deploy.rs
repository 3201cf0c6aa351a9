//! `troupe deploy`: the saga's processors, the projector and the query API as local processes
//! that outlive the command (the demo's deployment), started through `troupe-deploy`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail};
use clap::Subcommand;
use troupe_deploy::{Deployment, Process, Spec};

#[derive(Debug, Subcommand)]
pub enum DeployCommand {
    /// Start what does not run yet (reusing what does) and wait until all of it is healthy.
    /// Needs the local stack's TROUPE_HOME: each process is recorded in its run directory, so
    /// `make down` stops it.
    Start {
        /// A setting for every process, e.g. --set TROUPE_RESERVATION_TTL_MS=10000.
        #[arg(long = "set", value_name = "NAME=VALUE")]
        settings: Vec<String>,
        /// The read-model copy the projector feeds.
        #[arg(long, default_value = "a", env = "TROUPE_READMODEL_COPY")]
        copy: String,
        /// The query API's port.
        #[arg(long, default_value_t = 28090, env = "TROUPE_QUERY_PORT")]
        query_port: u16,
        /// Where the binaries are (default: next to this one).
        #[arg(long)]
        bin_dir: Option<PathBuf>,
    },
}

pub async fn run(command: DeployCommand) -> anyhow::Result<()> {
    let DeployCommand::Start {
        settings,
        copy,
        query_port,
        bin_dir,
    } = command;
    let home = std::env::var("TROUPE_HOME")
        .map(PathBuf::from)
        .map_err(|_| anyhow!("TROUPE_HOME is not set: source .troupe/stack.env first"))?;
    let settings = settings
        .iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| anyhow!("--set {s:?} is not NAME=VALUE"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let run = home.join("run");
    if !run.is_dir() {
        bail!(
            "{} does not exist: bring the stack up first (make up)",
            run.display()
        );
    }
    let deployment = Deployment::new(Spec {
        name: None,
        topic_prefix: std::env::var("TROUPE_TOPIC_PREFIX").unwrap_or_default(),
        servers: std::env::vars()
            .filter(|(k, _)| k.starts_with("TROUPE_") && k != "TROUPE_TOPIC_PREFIX")
            .collect(),
        settings,
        bin_dir: crate::bin_dir(bin_dir)?,
        logs: home.join("logs"),
        detached: Some(run),
    });
    let mut processes = Process::services();
    processes.push(Process::Projector { copy, group: None });
    for process in &processes {
        deployment.spawn(process.clone(), 0, &[])?;
    }
    let query = Process::Query {
        copy: None,
        wait_ms: 5_000,
    };
    deployment.spawn_on(query.clone(), 0, &[], Some(query_port))?;
    processes.push(query);
    for process in &processes {
        deployment
            .wait_healthy(process.name(), 0, Duration::from_secs(60))
            .await?;
        let port = deployment.port(process.name(), 0)?;
        let at = match process {
            Process::Query { .. } => format!("http://127.0.0.1:{port} (OpenAPI: /openapi.json)"),
            _ => format!("metrics on http://127.0.0.1:{port}/metrics"),
        };
        println!("{:<13} {at}", process.name());
    }
    Ok(())
}
