//! The corpus: one stored message per published schema version (`schemas/corpus/`), as it
//! travelled — Confluent framing and Avro datum, in hex — with the schema it was written with
//! and the current event it must decode to.
//!
//! Stored once and never regenerated, the payloads pin what old producers really sent: if a
//! change to a schema, an upcaster or the mapping stops an old payload from decoding to its
//! expected event, this test fails.
//!
//! - `TROUPE_CORPUS=add cargo test -p troupe-events --test corpus` stores an entry for each
//!   catalog version that has none (a newly published version); existing entries are left as
//!   they are.
//! - `TROUPE_CORPUS=reexpect ...` rewrites only the `expected` events, after a deliberate change
//!   to the current version; review the diff.

use std::path::{Path, PathBuf};

use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use serde_json::{json, Value as Json};
use troupe_events::avro;
use troupe_events::catalog::{SchemaFile, SCHEMAS};
use troupe_events::samples;
use troupe_events::validate::validate;
use troupe_events::Envelope;

/// `schemas/corpus/`, found from the package dir cargo gives the running test (not the one
/// compiled in: a shared target dir may hold this test built in another checkout).
fn corpus_dir() -> PathBuf {
    let package = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    package.join("../../schemas/corpus")
}

fn entry_path(file: &SchemaFile) -> PathBuf {
    corpus_dir().join(file.path.replace(".avsc", ".json"))
}

fn mode() -> String {
    std::env::var("TROUPE_CORPUS").unwrap_or_default()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    assert!(text.len() % 2 == 0, "odd-length hex");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The current event as JSON, the way the current schema's record reads.
fn as_json(envelope: &Envelope) -> Json {
    Json::try_from(avro::to_value(envelope)).expect("events are JSON-representable")
}

/// A new entry for `file`: the sample event that version can carry, written as a producer
/// pinned to that version writes it, framed with a placeholder schema id.
fn new_entry(file: &SchemaFile, schema_id: u32) -> Json {
    let envelope = samples::representable(file.event_type, file.version);
    let datum = GenericDatumWriter::builder(file.schema())
        .build()
        .unwrap()
        .write_value_to_vec(avro::to_version_value(&envelope, file.version))
        .unwrap();
    let mut message = vec![0u8];
    message.extend_from_slice(&schema_id.to_be_bytes());
    message.extend_from_slice(&datum);
    json!({
        "event_type": file.event_type.name(),
        "version": file.version,
        "schema_file": file.path,
        "schema_id": schema_id,
        "schema": serde_json::from_str::<Json>(file.text).unwrap(),
        "message_hex": hex(&message),
        "expected": as_json(&envelope),
    })
}

fn write(path: &Path, entry: &Json) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut text = serde_json::to_string_pretty(entry).unwrap();
    text.push('\n');
    std::fs::write(path, text).unwrap();
}

#[test]
fn every_published_version_has_a_stored_payload() {
    let mut missing = Vec::new();
    for (index, file) in SCHEMAS.iter().enumerate() {
        let path = entry_path(file);
        if path.exists() {
            continue;
        }
        if mode() == "add" {
            write(&path, &new_entry(file, 1000 + index as u32));
        } else {
            missing.push(file.path);
        }
    }
    assert!(
        missing.is_empty(),
        "no stored payload for {missing:?}: run `TROUPE_CORPUS=add cargo test -p troupe-events \
         --test corpus` and commit schemas/corpus/"
    );
}

#[test]
fn every_stored_payload_decodes_to_its_expected_event() {
    if mode() == "add" {
        return; // entries are being written by the test above; run again without it
    }
    let mut checked = 0;
    for file in SCHEMAS {
        let path = entry_path(file);
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue; // reported by the test above
        };
        let mut entry: Json = serde_json::from_str(&text).unwrap();
        let context = path.display().to_string();

        // The schema it was written with is still the published one, byte for byte in meaning.
        let stored = Schema::parse_str(&entry["schema"].to_string()).unwrap();
        assert_eq!(
            stored.canonical_form(),
            file.canonical_form(),
            "{context}: {} changed after it was published; publish a new version instead",
            file.path
        );
        assert_eq!(entry["version"], file.version, "{context}");
        assert_eq!(entry["event_type"], file.event_type.name(), "{context}");

        let message = unhex(entry["message_hex"].as_str().unwrap());
        assert_eq!(message[0], 0, "{context}: magic byte");
        let datum = &message[5..];
        let decoded = avro::decode_version(file, None, datum)
            .unwrap_or_else(|e| panic!("{context}: no longer decodes: {e}"));
        validate(&decoded)
            .unwrap_or_else(|e| panic!("{context}: decodes to an invalid event: {e}"));
        if file.is_current() {
            // The runtime reads the current version on its direct path: same event.
            assert_eq!(
                avro::from_binary(file.event_type, datum).unwrap(),
                decoded,
                "{context}"
            );
        }
        let actual = as_json(&decoded);
        if mode() == "reexpect" {
            entry["expected"] = actual;
            write(&path, &entry);
        } else {
            assert_eq!(
                actual, entry["expected"],
                "{context}: decodes to a different event than it did when stored"
            );
        }
        checked += 1;
    }
    assert!(
        checked > 0,
        "no corpus entries found in {}",
        corpus_dir().display()
    );
}

#[test]
fn the_corpus_holds_nothing_the_catalog_does_not_publish() {
    let mut stray = Vec::new();
    for dir in std::fs::read_dir(corpus_dir()).unwrap() {
        for entry in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            let path = entry.unwrap().path();
            if !SCHEMAS.iter().any(|file| entry_path(file) == path) {
                stray.push(path);
            }
        }
    }
    assert!(stray.is_empty(), "not a catalog version: {stray:?}");
}
