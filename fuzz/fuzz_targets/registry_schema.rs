//! A schema text as `troupe-registry` receives it on registration: parsed, stored as its
//! canonical JSON (`troupe_registry::schema::parse_avro`), then judged against earlier versions
//! at every compatibility level (`troupe_events::compat::check`, the registry's rules).
//!
//! Properties: nothing panics; the stored canonical text parses again to the same canonical
//! text (the registry reads it back to judge later versions); a schema is compatible with
//! itself at every level.
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
    let Ok(canonical) = serde_json::to_string(&schema) else {
        return;
    };
    let stored = Schema::parse_str(&canonical)
        .unwrap_or_else(|e| panic!("the stored form {canonical} does not parse again: {e}"));
    assert_eq!(
        serde_json::to_string(&stored).expect("serialises"),
        canonical,
        "the stored form changes when read back"
    );

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
