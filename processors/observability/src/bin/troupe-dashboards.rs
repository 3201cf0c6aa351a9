//! `troupe-dashboards render [--out DIR]` writes the Grafana dashboards rendered from
//! `troupe_observability::dashboards`; `troupe-dashboards check [--out DIR]` exits 1, one line
//! per problem, when a file in DIR differs from the render or a dashboard fails the lint.
//! DIR defaults to `observability/dashboards` (run from the repository's root).

use std::path::PathBuf;
use std::process::ExitCode;

use troupe_observability::dashboards;

const USAGE: &str = "usage: troupe-dashboards render|check [--out DIR]";
const DEFAULT_DIR: &str = "observability/dashboards";

enum Command {
    Render,
    Check,
}

fn parse(args: &[String]) -> Result<(Command, PathBuf), String> {
    let (command, rest) = match args.split_first() {
        Some((first, rest)) if first == "render" => (Command::Render, rest),
        Some((first, rest)) if first == "check" => (Command::Check, rest),
        Some((first, _)) => return Err(format!("unknown command {first:?} ({USAGE})")),
        None => return Err(format!("no command ({USAGE})")),
    };
    match rest {
        [] => Ok((command, PathBuf::from(DEFAULT_DIR))),
        [flag, dir] if flag == "--out" && !dir.is_empty() => Ok((command, PathBuf::from(dir))),
        [flag] if flag == "--out" => Err(format!("--out needs a directory ({USAGE})")),
        [other, ..] => Err(format!("unexpected argument {other:?} ({USAGE})")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, dir) = match parse(&args) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("troupe-dashboards: {message}");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Render => match dashboards::write_all(&dir) {
            Ok(written) => {
                for path in written {
                    println!("wrote {}", path.display());
                }
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("troupe-dashboards: cannot write {}: {error}", dir.display());
                ExitCode::FAILURE
            }
        },
        Command::Check => {
            let problems = dashboards::check_dir(&dir);
            for problem in &problems {
                println!("{problem}");
            }
            if problems.is_empty() {
                println!("{}: dashboards up to date and lint clean", dir.display());
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
