//! The committed dashboards are exactly what the source renders, and pass the lint; and the
//! check that says so fails when they are not.

use std::path::{Path, PathBuf};
use std::process::Command;

use troupe_observability::dashboards::{self, all, render};
use troupe_observability::lint::lint;

fn committed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../observability/dashboards")
}

/// A scratch copy of the committed dashboards, unique to the test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("troupe-dashboards-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dashboards::write_all(&dir).unwrap();
    dir
}

#[test]
fn committed_json_is_the_rendered_source() {
    let problems = dashboards::check_dir(&committed());
    assert!(
        problems.is_empty(),
        "{}\n(run `cargo run -p troupe-observability --bin troupe-dashboards -- render` from the repository root)",
        problems.join("\n")
    );
}

#[test]
fn the_dashboards_pass_the_lint() {
    for dashboard in all() {
        let problems: Vec<String> = lint(&render(&dashboard))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}

#[test]
fn check_reports_edited_missing_and_stale_files() {
    let dir = scratch("check");
    let lag = dir.join("troupe-consumer-lag.json");
    let edited = std::fs::read_to_string(&lag)
        .unwrap()
        .replace("$__rate_interval", "5m");
    std::fs::write(&lag, edited).unwrap();
    std::fs::remove_file(dir.join("troupe-saga.json")).unwrap();
    std::fs::write(dir.join("old.json"), "{}").unwrap();
    let problems = dashboards::check_dir(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems[0].contains("troupe-consumer-lag.json: differs from the dashboard source"));
    assert!(problems[1].contains("troupe-saga.json: cannot read it"));
    assert!(problems[2].contains("old.json: no dashboard renders it"));
}

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_troupe-dashboards"))
        .args(args)
        .output()
        .unwrap();
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
    (
        output.status.code(),
        text(output.stdout),
        text(output.stderr),
    )
}

#[test]
fn the_binary_renders_checks_and_rejects_bad_arguments() {
    let dir = scratch("binary");
    let out = dir.to_str().unwrap();
    let (code, stdout, _) = run(&["render", "--out", out]);
    assert_eq!(code, Some(0));
    assert_eq!(stdout.lines().count(), all().len());
    assert_eq!(run(&["check", "--out", out]).0, Some(0));

    std::fs::write(dir.join("troupe-query-api.json"), "{}\n").unwrap();
    let (code, stdout, _) = run(&["check", "--out", out]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(code, Some(1));
    assert_eq!(stdout.lines().count(), 1, "{stdout}");

    for bad in [
        &[][..],
        &["draw"],
        &["render", "--out"],
        &["check", "--dir", "x"],
    ] {
        let (code, stdout, stderr) = run(bad);
        assert_eq!(code, Some(2), "{bad:?}");
        assert!(stdout.is_empty(), "{bad:?}");
        assert_eq!(stderr.lines().count(), 1, "{bad:?}: {stderr}");
    }
}
