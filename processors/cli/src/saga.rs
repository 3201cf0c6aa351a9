//! `troupe saga`: the choreography declared in `choreography.yaml`, checked and drawn.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use troupe_events::choreography::{check, graph, Choreography};
use troupe_events::topology::Topology;

use crate::Failed;

#[derive(Debug, Subcommand)]
pub enum SagaCommand {
    /// Check the choreography: producers and consumers, paths to an outcome, compensations,
    /// no effect after an outcome, agreement with topics.yaml. Exit 1 when anything is wrong.
    Check {
        /// The choreography file.
        #[arg(
            long,
            default_value = "choreography.yaml",
            env = "TROUPE_CHOREOGRAPHY_FILE"
        )]
        file: PathBuf,
    },
    /// Draw the choreography, or rewrite the diagram in a README between its markers.
    Graph {
        #[arg(long, value_enum, default_value = "mermaid")]
        format: Format,
        /// The choreography file.
        #[arg(
            long,
            default_value = "choreography.yaml",
            env = "TROUPE_CHOREOGRAPHY_FILE"
        )]
        file: PathBuf,
        /// Replace the Mermaid block between `<!-- choreography:begin -->` and
        /// `<!-- choreography:end -->` in this file instead of printing.
        #[arg(long)]
        write_into: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Mermaid,
    Dot,
}

fn load(file: &Path) -> anyhow::Result<Choreography> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    Ok(Choreography::parse(&text)?)
}

pub async fn run(command: SagaCommand, topics_file: &Path) -> anyhow::Result<()> {
    match command {
        SagaCommand::Check { file } => {
            let choreography = load(&file)?;
            let text = std::fs::read_to_string(topics_file)
                .with_context(|| format!("cannot read {}", topics_file.display()))?;
            let topology = Topology::parse(&text)?;
            let problems = check::all(&choreography, &topology);
            if problems.is_empty() {
                let services = choreography.services.len();
                let reactions: usize = choreography
                    .services
                    .iter()
                    .map(|s| s.reactions.len())
                    .sum();
                println!(
                    "{}: {services} services, {reactions} reactions, {} arrows; every check passes",
                    file.display(),
                    choreography.arrows().len()
                );
                return Ok(());
            }
            for problem in &problems {
                println!("{problem}");
            }
            eprintln!(
                "troupe: {} problem(s) in {}",
                problems.len(),
                file.display()
            );
            Err(Failed.into())
        }
        SagaCommand::Graph {
            format,
            file,
            write_into,
        } => {
            let choreography = load(&file)?;
            let rendered = match format {
                Format::Mermaid => graph::mermaid(&choreography),
                Format::Dot => graph::dot(&choreography),
            };
            match write_into {
                None => print!("{rendered}"),
                Some(target) => {
                    let text = std::fs::read_to_string(&target)
                        .with_context(|| format!("cannot read {}", target.display()))?;
                    let updated = graph::replace_block(&text, &rendered).ok_or_else(|| {
                        anyhow::anyhow!(
                            "{} has no {} … {} markers",
                            target.display(),
                            graph::BEGIN,
                            graph::END
                        )
                    })?;
                    std::fs::write(&target, updated)
                        .with_context(|| format!("cannot write {}", target.display()))?;
                    println!("diagram written into {}", target.display());
                }
            }
            Ok(())
        }
    }
}
