//! A consumed message's value: the Confluent framing, then the Avro datum of any catalog
//! version, upcast to the current version, mapped to the domain and validated — the path
//! `troupe_runtime::codec::Codec::decode_message` takes once it knows the writer schema.
//!
//! Without a registry, the framing's schema id picks a catalog version by index. Properties:
//! nothing panics; whatever decodes and validates writes back and reads back as the same event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use troupe_events::avro;
use troupe_events::catalog::{self, SCHEMAS};
use troupe_events::validate::validate;

fuzz_target!(|data: &[u8]| {
    // The framing as the codec checks it: magic byte 0, a 4-byte id, then the datum.
    let [0, a, b, c, d, datum @ ..] = data else {
        return;
    };
    let id = u32::from_be_bytes([*a, *b, *c, *d]) as usize;
    let file = &SCHEMAS[id % SCHEMAS.len()];
    let decoded = if file.is_current() {
        avro::from_binary(file.event_type, datum)
    } else {
        avro::decode_version(file, None, datum)
    };
    // Schema resolution into another version of the same event (a writer the release reading
    // it does not know), chosen by the id's high bits.
    let versions: Vec<_> = catalog::versions(file.event_type).collect();
    let reader = versions[(id >> 16) % versions.len()];
    let _ = avro::decode_resolved(file.schema(), reader, datum);

    let Ok(envelope) = decoded else { return };
    if validate(&envelope).is_err() {
        return;
    }
    let again = avro::from_binary(envelope.event_type(), &avro::to_binary(&envelope))
        .expect("a decoded event writes back as a readable datum");
    assert_eq!(again, envelope, "an event changed on a write and read back");
});
