//! Compatibility judgement by Avro schema-resolution rules.
//!
//! Directions, as the Confluent documentation defines them:
//! - BACKWARD: a consumer using the *new* schema can read data written with the old one, so the
//!   new schema must resolve as reader against the old one as writer.
//! - FORWARD: a consumer using the *old* schema can read data written with the new one.
//! - FULL: both. The `_TRANSITIVE` variants check every earlier version, the others only the
//!   latest.
//!
//! apache-avro's `SchemaCompatibility::can_read` answers `Partial` where resolution can fail for
//! some data (a writer enum symbol or union branch the reader lacks). The Confluent registry
//! rejects those changes, so a `Partial` answer counts as incompatible here.

use crate::topology::Compatibility;
use apache_avro::schema_compatibility::{Compatibility as Resolution, SchemaCompatibility};
use apache_avro::Schema;

/// One earlier version to check against.
#[derive(Debug, Clone, Copy)]
pub struct Existing<'a> {
    pub version: i32,
    pub schema: &'a Schema,
}

/// Judges `candidate` against the earlier versions of a subject, oldest first.
///
/// Returns the reasons it is incompatible; an empty list means compatible.
pub fn check(level: Compatibility, candidate: &Schema, earlier: &[Existing<'_>]) -> Vec<String> {
    if level == Compatibility::None {
        return Vec::new();
    }
    let targets: &[Existing<'_>] = if level.is_transitive() {
        earlier
    } else {
        earlier.last().map(std::slice::from_ref).unwrap_or_default()
    };
    let mut reasons = Vec::new();
    for old in targets {
        if level.checks_backward() {
            if let Err(reason) = resolves(old.schema, candidate) {
                reasons.push(format!(
                    "{level}: the new schema cannot read data written with version {}: {reason}",
                    old.version
                ));
            }
        }
        if level.checks_forward() {
            if let Err(reason) = resolves(candidate, old.schema) {
                reasons.push(format!(
                    "{level}: version {} cannot read data written with the new schema: {reason}",
                    old.version
                ));
            }
        }
    }
    reasons
}

/// Whether every datum written with `writer` can be read with `reader`.
fn resolves(writer: &Schema, reader: &Schema) -> Result<(), String> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(Resolution::Full) => Ok(()),
        Ok(Resolution::Partial) => Err(
            "some values cannot be resolved (an enum symbol or union branch of the writer is \
             missing in the reader)"
                .to_owned(),
        ),
        Err(error) => Err(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn record(fields: &str) -> Schema {
        Schema::parse_str(&format!(
            r#"{{"type":"record","name":"Order","namespace":"t","fields":[{fields}]}}"#
        ))
        .unwrap()
    }

    const ID: &str = r#"{"name":"id","type":"string"}"#;
    const ID_QTY: &str = r#"{"name":"id","type":"string"},{"name":"qty","type":"int"}"#;
    const ID_QTY_DEFAULT: &str =
        r#"{"name":"id","type":"string"},{"name":"qty","type":"int","default":1}"#;
    const ID_QTY_LONG: &str = r#"{"name":"id","type":"string"},{"name":"qty","type":"long"}"#;
    const ID_COLOUR_2: &str = r#"{"name":"id","type":"string"},{"name":"c","type":{"type":"enum","name":"C","symbols":["RED","BLUE"]}}"#;
    const ID_COLOUR_3: &str = r#"{"name":"id","type":"string"},{"name":"c","type":{"type":"enum","name":"C","symbols":["RED","BLUE","GREEN"]}}"#;
    const ID_NOTE_NULLABLE: &str =
        r#"{"name":"id","type":"string"},{"name":"note","type":["null","string"],"default":null}"#;

    fn one(level: Compatibility, old: &str, new: &str) -> bool {
        let old = record(old);
        check(
            level,
            &record(new),
            &[Existing {
                version: 1,
                schema: &old,
            }],
        )
        .is_empty()
    }

    /// Each case is one change from `old` to `new`, with the verdict under each level:
    /// (BACKWARD, FORWARD, FULL). The transitive variants agree on a single earlier version.
    #[rstest]
    #[case::identical(ID, ID, (true, true, true))]
    #[case::add_field_without_default(ID, ID_QTY, (false, true, false))]
    #[case::add_field_with_default(ID, ID_QTY_DEFAULT, (true, true, true))]
    #[case::remove_field_without_default(ID_QTY, ID, (true, false, false))]
    #[case::remove_field_with_default(ID_QTY_DEFAULT, ID, (true, true, true))]
    #[case::promote_int_to_long(ID_QTY, ID_QTY_LONG, (true, false, false))]
    #[case::narrow_long_to_int(ID_QTY_LONG, ID_QTY, (false, true, false))]
    #[case::add_enum_symbol(ID_COLOUR_2, ID_COLOUR_3, (true, false, false))]
    #[case::remove_enum_symbol(ID_COLOUR_3, ID_COLOUR_2, (false, true, false))]
    #[case::add_optional_field(ID, ID_NOTE_NULLABLE, (true, true, true))]
    fn single_step_verdicts(
        #[case] old: &str,
        #[case] new: &str,
        #[case] expected: (bool, bool, bool),
    ) {
        use Compatibility::*;
        let (backward, forward, full) = expected;
        assert_eq!(one(Backward, old, new), backward, "BACKWARD");
        assert_eq!(
            one(BackwardTransitive, old, new),
            backward,
            "BACKWARD_TRANSITIVE"
        );
        assert_eq!(one(Forward, old, new), forward, "FORWARD");
        assert_eq!(
            one(ForwardTransitive, old, new),
            forward,
            "FORWARD_TRANSITIVE"
        );
        assert_eq!(one(Full, old, new), full, "FULL");
        assert_eq!(one(FullTransitive, old, new), full, "FULL_TRANSITIVE");
        assert!(one(None, old, new), "NONE accepts everything");
    }

    #[test]
    fn a_renamed_record_is_incompatible_both_ways() {
        let old = record(ID);
        let renamed = Schema::parse_str(
            r#"{"type":"record","name":"Other","namespace":"t","fields":[{"name":"id","type":"string"}]}"#,
        )
        .unwrap();
        let earlier = [Existing {
            version: 1,
            schema: &old,
        }];
        assert!(!check(Compatibility::Backward, &renamed, &earlier).is_empty());
        assert!(!check(Compatibility::Forward, &renamed, &earlier).is_empty());
    }

    /// Versions: v1 {id}, v2 {id, qty default 1}. Candidate: {id, qty without default}.
    /// Against the latest only (v2) it is backward compatible — the reader has every field the
    /// writer wrote; against v1 it is not, because v1 data carries no qty and the reader has no
    /// default. Transitive levels must catch what the plain ones let through.
    #[rstest]
    #[case(Compatibility::Backward, true)]
    #[case(Compatibility::BackwardTransitive, false)]
    fn transitive_backward_checks_every_version(#[case] level: Compatibility, #[case] ok: bool) {
        let v1 = record(ID);
        let v2 = record(ID_QTY_DEFAULT);
        let candidate = record(ID_QTY);
        let earlier = [
            Existing {
                version: 1,
                schema: &v1,
            },
            Existing {
                version: 2,
                schema: &v2,
            },
        ];
        let reasons = check(level, &candidate, &earlier);
        assert_eq!(reasons.is_empty(), ok, "{reasons:?}");
        if !ok {
            assert!(reasons[0].contains("version 1"), "{reasons:?}");
        }
    }

    /// Versions: v1 {id, qty}, v2 {id, qty default 1}. Candidate: {id}. Old readers of v2 fill
    /// qty from the default; v1 readers have no default and fail.
    #[rstest]
    #[case(Compatibility::Forward, true)]
    #[case(Compatibility::ForwardTransitive, false)]
    #[case(Compatibility::Full, true)]
    #[case(Compatibility::FullTransitive, false)]
    fn transitive_forward_and_full_check_every_version(
        #[case] level: Compatibility,
        #[case] ok: bool,
    ) {
        let v1 = record(ID_QTY);
        let v2 = record(ID_QTY_DEFAULT);
        let candidate = record(ID);
        let earlier = [
            Existing {
                version: 1,
                schema: &v1,
            },
            Existing {
                version: 2,
                schema: &v2,
            },
        ];
        let reasons = check(level, &candidate, &earlier);
        assert_eq!(reasons.is_empty(), ok, "{level}: {reasons:?}");
    }

    #[test]
    fn the_first_version_is_always_compatible() {
        for level in Compatibility::ALL {
            assert!(check(level, &record(ID), &[]).is_empty());
        }
    }
}
