//! Payloads as the registry and the codec see them: the corpus's hex, messages framed with the
//! id a schema is registered under, envelopes as JSON.

use serde_json::{json, Value};
use troupe_events::avro;
use troupe_testkit::stack;

/// The bytes of a hex text.
pub fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// An envelope as JSON, through its current Avro value.
pub fn as_json(envelope: &troupe_events::Envelope) -> Value {
    Value::try_from(avro::to_value(envelope)).expect("JSON")
}

/// Registers `schema` under a subject of its own and frames `datum` with the id it gets.
pub async fn framed(subject: &str, schema: &Value, datum: &[u8]) -> Vec<u8> {
    let registered: Value = reqwest::Client::new()
        .post(format!(
            "{}/subjects/{subject}/versions",
            stack().schema_registry_url
        ))
        .json(&json!({ "schema": schema.to_string() }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = registered["id"].as_u64().expect("an id") as u32;
    let mut message = vec![0];
    message.extend_from_slice(&id.to_be_bytes());
    message.extend_from_slice(datum);
    message
}
