//! Kafka security in every process, against a real broker's SASL_SSL listener (a private stack's,
//! with a CA, a broker certificate and a SCRAM user that `scripts/stack.sh` makes for it): the
//! CLI logs in with SCRAM-SHA-512 and with PLAIN, and is refused with a wrong password or without
//! the CA; a whole saga runs with every processor on SASL_SSL; the password shows in no log and
//! no `/metrics`.

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::Duration;

use troupe_e2e::{text, PrivateStack, Saga, SERVICES};
use troupe_testkit::{binary, repo_root};

/// The client variables for the stack's SASL_SSL listener, with `mechanism`.
fn sasl_ssl(env: &BTreeMap<String, String>, mechanism: &str) -> Vec<(String, String)> {
    [
        (
            "TROUPE_KAFKA_BOOTSTRAP",
            env["TROUPE_STACK_KAFKA_SASL_SSL_BOOTSTRAP"].as_str(),
        ),
        ("TROUPE_KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
        ("TROUPE_KAFKA_SASL_MECHANISM", mechanism),
        (
            "TROUPE_KAFKA_SASL_USERNAME",
            env["TROUPE_STACK_KAFKA_SASL_USERNAME"].as_str(),
        ),
        (
            "TROUPE_KAFKA_SASL_PASSWORD",
            env["TROUPE_STACK_KAFKA_SASL_PASSWORD"].as_str(),
        ),
        (
            "TROUPE_KAFKA_SSL_CA_LOCATION",
            env["TROUPE_STACK_KAFKA_SASL_SSL_CA"].as_str(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// `troupe topics check` (which needs the broker) with the stack's variables and `vars`.
fn topics_check(stack: &BTreeMap<String, String>, vars: &[(String, String)]) -> Output {
    Command::new(binary("troupe"))
        .args(["topics", "check"])
        .current_dir(repo_root())
        .envs(stack)
        .env_remove("TROUPE_HOME")
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run troupe")
}

fn with(vars: &[(String, String)], name: &str, value: Option<&str>) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = vars.iter().filter(|(k, _)| k != name).cloned().collect();
    if let Some(value) = value {
        vars.push((name.to_owned(), value.to_owned()));
    }
    vars
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_process_works_over_sasl_ssl_and_never_shows_the_password() {
    let private = PrivateStack::new(Some("postgres kafka registry")).with_sasl_ssl();
    let plain = private.up();
    let env = private.env();
    let password = env["TROUPE_STACK_KAFKA_SASL_PASSWORD"].clone();
    assert!(password.len() >= 16, "a real password: {password:?}");

    // The CLI, with each mechanism, and refused when it should be.
    for mechanism in ["SCRAM-SHA-512", "PLAIN"] {
        let output = topics_check(&env, &sasl_ssl(&env, mechanism));
        assert!(output.status.success(), "{mechanism}: {}", text(&output));
    }
    let scram = sasl_ssl(&env, "SCRAM-SHA-512");
    let refusals = [
        (
            "a wrong password",
            with(
                &scram,
                "TROUPE_KAFKA_SASL_PASSWORD",
                Some("not-the-password"),
            ),
        ),
        (
            "no CA (the broker's certificate is not trusted)",
            with(&scram, "TROUPE_KAFKA_SSL_CA_LOCATION", None),
        ),
        (
            "plaintext to the SASL_SSL port",
            with(&scram, "TROUPE_KAFKA_SECURITY_PROTOCOL", Some("plaintext"))
                .into_iter()
                .filter(|(k, _)| {
                    !k.starts_with("TROUPE_KAFKA_SASL") && !k.starts_with("TROUPE_KAFKA_SSL")
                })
                .collect(),
        ),
    ];
    for (what, vars) in refusals {
        let output = topics_check(&env, &vars);
        let said = text(&output);
        assert!(!output.status.success(), "{what} was accepted: {said}");
        assert!(
            !said.contains(&password),
            "{what}: the password was printed: {said}"
        );
    }
    // A setting the protocol would ignore is refused at start, in one line.
    let output = topics_check(
        &env,
        &with(&scram, "TROUPE_KAFKA_SASL_MECHANISM", Some("GSSAPI")),
    );
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("TROUPE_KAFKA_SASL_MECHANISM"),
        "{}",
        text(&output)
    );

    // A saga with every processor (and the CLI placing orders) on the SASL_SSL listener; the
    // test's own admin and readers use the plaintext one.
    let settings: Vec<(&str, &str)> = scram
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let saga = Saga::start_on(&plain, &settings, &[]).await;
    saga.seed_stock(40, 3).await;
    let placed = saga.place(40, 3, 0);
    assert!(placed.status.success(), "{}", text(&placed));
    saga.settle(40, Duration::from_secs(120)).await;

    for service in SERVICES {
        let metrics = saga.metrics(service, 0).await;
        assert!(
            !metrics.contains(&password),
            "{service}'s /metrics shows the password"
        );
        let log = std::fs::read_to_string(saga.log_path(service, 0)).unwrap_or_default();
        assert!(
            !log.contains(&password),
            "{service}'s log shows the password"
        );
    }
}
