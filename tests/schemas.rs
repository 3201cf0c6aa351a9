//! `troupe schemas register|check` against the running registry, on subjects unique to each
//! test: registration follows topics.yaml, and an incompatible change fails with its reason.

use std::path::Path;
use std::process::{Command, Output};

use troupe_e2e::TempDir;
use troupe_testkit::{binary, stack, unique};

fn troupe(args: &[&str], dir: &Path) -> Output {
    Command::new(binary("troupe"))
        .args(args)
        .arg("--topics-file")
        .arg(dir.join("topics.yaml"))
        .arg("--dir")
        .arg(dir.join("schemas"))
        .env("TROUPE_SCHEMA_REGISTRY_URL", &stack().schema_registry_url)
        .output()
        .expect("run troupe")
}

fn all(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

const V1: &str =
    r#"{"type":"record","name":"Thing","namespace":"t","fields":[{"name":"id","type":"string"}]}"#;
const V2: &str = r#"{"type":"record","name":"Thing","namespace":"t","fields":[{"name":"id","type":"string"},{"name":"colour","type":"string","default":"red"}]}"#;
const V2_BREAKING: &str = r#"{"type":"record","name":"Thing","namespace":"t","fields":[{"name":"id","type":"string"},{"name":"colour","type":"string"}]}"#;

fn project(topic: &str, files: &[(&str, &str)]) -> TempDir {
    let dir = TempDir::new("schemas");
    std::fs::create_dir_all(dir.path().join("schemas/t")).unwrap();
    let mut list = Vec::new();
    for (name, text) in files {
        std::fs::write(dir.path().join("schemas/t").join(name), text).unwrap();
        list.push(format!("t/{name}"));
    }
    std::fs::write(
        dir.path().join("topics.yaml"),
        format!(
            "topics:\n  - name: {topic}\n    key: order_id\n    values:\n      - record: t.Thing\n        schemas: [{}]\n        compatibility: FULL_TRANSITIVE\n",
            list.join(", ")
        ),
    )
    .unwrap();
    dir
}

#[test]
fn register_then_check_then_refuse_a_breaking_change() {
    let topic = unique("schemas");
    let subject = format!("{topic}-t.Thing");
    let dir = project(&topic, &[("Thing.v1.avsc", V1), ("Thing.v2.avsc", V2)]);

    let register = troupe(&["schemas", "register"], dir.path());
    assert!(register.status.success(), "{}", all(&register));
    let out = all(&register);
    assert!(
        out.contains(&subject) && out.contains("v1") && out.contains("v2"),
        "{out}"
    );

    // Registering again changes nothing; check sees both versions registered.
    let again = troupe(&["schemas", "register"], dir.path());
    assert!(again.status.success(), "{}", all(&again));
    let check = troupe(&["schemas", "check"], dir.path());
    assert!(check.status.success(), "{}", all(&check));
    assert!(
        all(&check).contains("Thing.v2.avsc registered as v2"),
        "{}",
        all(&check)
    );

    // A v3 that drops the default: FULL_TRANSITIVE refuses it, with the field named.
    std::fs::write(dir.path().join("schemas/t/Thing.v3.avsc"), V2_BREAKING).unwrap();
    let topics = std::fs::read_to_string(dir.path().join("topics.yaml"))
        .unwrap()
        .replace("t/Thing.v2.avsc]", "t/Thing.v2.avsc, t/Thing.v3.avsc]");
    std::fs::write(dir.path().join("topics.yaml"), topics).unwrap();

    let check = troupe(&["schemas", "check"], dir.path());
    assert_eq!(check.status.code(), Some(1), "{}", all(&check));
    let out = all(&check);
    assert!(out.contains("Thing.v3.avsc is INCOMPATIBLE"), "{out}");
    assert!(out.contains("colour"), "the reason names the field: {out}");

    let register = troupe(&["schemas", "register"], dir.path());
    assert_eq!(register.status.code(), Some(1), "{}", all(&register));
    assert!(
        all(&register).contains("refused (error 409)"),
        "{}",
        all(&register)
    );
}

#[test]
fn an_unreachable_registry_is_one_line_and_non_zero() {
    let dir = project(&unique("unreachable"), &[("Thing.v1.avsc", V1)]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = Command::new(binary("troupe"))
        .args(["schemas", "check", "--topics-file"])
        .arg(dir.path().join("topics.yaml"))
        .arg("--dir")
        .arg(dir.path().join("schemas"))
        .env(
            "TROUPE_SCHEMA_REGISTRY_URL",
            format!("http://127.0.0.1:{port}"),
        )
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("troupe: cannot reach the schema registry at http://127.0.0.1:"),
        "{stderr}"
    );
}

/// Copies the project's topics.yaml and schemas/ to a temporary directory.
fn project_copy() -> TempDir {
    let dir = TempDir::new("schemas-copy");
    let root = troupe_testkit::repo_root();
    std::fs::copy(root.join("topics.yaml"), dir.path().join("topics.yaml")).unwrap();
    let status = Command::new("cp")
        .arg("-r")
        .arg(root.join("schemas"))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    dir
}

/// `check --offline` never contacts a registry (this one is unreachable).
fn check_offline(dir: &Path) -> Output {
    Command::new(binary("troupe"))
        .args(["schemas", "check", "--offline", "--topics-file"])
        .arg(dir.join("topics.yaml"))
        .arg("--dir")
        .arg(dir.join("schemas"))
        .env("TROUPE_SCHEMA_REGISTRY_URL", "http://127.0.0.1:1")
        .output()
        .unwrap()
}

#[test]
fn the_projects_versions_pass_offline_and_a_money_change_without_default_does_not() {
    let dir = project_copy();
    let ok = check_offline(dir.path());
    assert!(ok.status.success(), "{}", all(&ok));

    // PaymentAuthorized v2 without the default that makes it BACKWARD_TRANSITIVE.
    let path = dir.path().join("schemas/payment/PaymentAuthorized.v2.avsc");
    let mut schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for field in schema["fields"].as_array_mut().unwrap() {
        if field["name"] == "amount_minor" {
            field.as_object_mut().unwrap().remove("default");
        }
    }
    std::fs::write(&path, schema.to_string()).unwrap();
    let refused = check_offline(dir.path());
    assert_eq!(refused.status.code(), Some(1), "{}", all(&refused));
    let out = all(&refused);
    assert!(
        out.contains("payment/PaymentAuthorized.v2.avsc is INCOMPATIBLE"),
        "{out}"
    );
    assert!(
        out.contains("BACKWARD_TRANSITIVE") && out.contains("'amount_minor'"),
        "the reason names the level and the field: {out}"
    );
    assert!(
        out.contains("troupe: 1 schema(s) are incompatible"),
        "{out}"
    );
}

#[test]
fn a_reshape_listed_under_the_old_record_is_refused_offline() {
    // OrderPlaced v3 declares a new record name; listing it under the old subject is a mistake
    // the check names (and Avro resolution would refuse too).
    let dir = project_copy();
    let topics = std::fs::read_to_string(dir.path().join("topics.yaml"))
        .unwrap()
        .replace(
            "[orders/OrderPlaced.v1.avsc, orders/OrderPlaced.v2.avsc]",
            "[orders/OrderPlaced.v1.avsc, orders/OrderPlaced.v2.avsc, orders/OrderPlaced.v3.avsc]",
        );
    std::fs::write(dir.path().join("topics.yaml"), topics).unwrap();
    let refused = check_offline(dir.path());
    assert_eq!(refused.status.code(), Some(1), "{}", all(&refused));
    let out = all(&refused);
    assert!(
        out.contains(
            "orders/OrderPlaced.v3.avsc declares troupe.orders.v3.OrderPlaced, but topics.yaml lists it under troupe.orders.OrderPlaced"
        ),
        "{out}"
    );
    assert!(out.contains("OrderPlaced.v3.avsc is INCOMPATIBLE"), "{out}");
}
