//! A schema text as `troupe-registry` receives it on registration: parsed, stored as its
//! canonical JSON (`troupe_registry::schema::parse_avro`, `troupe_events::stored`), then judged against earlier versions
//! at every compatibility level (`troupe_events::compat::check`, the registry's rules).
//!
//! Properties: nothing panics; what would be stored parses again (the registry reads it back
//! to judge later versions); a schema is compatible with itself at every level. (Its first
//! 10-minute run found a schema whose stored form read back differently: the registry now
//! refuses those, `troupe_events::stored`.)
#![no_main]

use apache_avro::Schema;
use libfuzzer_sys::fuzz_target;
use troupe_events::catalog::SCHEMAS;
use troupe_events::compat::{self, Existing};
use troupe_events::topology::Compatibility;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(schema) = Schema::parse_str(text) else {
        return;
    };
    // What the registry stores, or its refusal (a stored form that would read back as another
    // schema); what it stores must parse again.
    let Ok(stored) = troupe_events::stored::stored_form(&schema, &[]) else {
        return;
    };
    Schema::parse_str(&stored)
        .unwrap_or_else(|e| panic!("the stored form {stored} does not parse again: {e}"));

    // Against itself: compatible at every level.
    let itself = [Existing {
        version: 1,
        schema: &schema,
    }];
    // Against the catalog versions of one event, as a subject's history.
    let file = &SCHEMAS[text.len() % SCHEMAS.len()];
    let history: Vec<Existing<'_>> = SCHEMAS
        .iter()
        .filter(|f| f.event_type == file.event_type)
        .map(|f| Existing {
            version: i32::try_from(f.version).expect("small"),
            schema: f.schema(),
        })
        .collect();
    for level in Compatibility::ALL {
        let reasons = compat::check(level, &schema, &itself);
        assert!(
            reasons.is_empty(),
            "{level:?}: a schema is incompatible with itself: {reasons:?}"
        );
        let _ = compat::check(level, &schema, &history);
    }
});
