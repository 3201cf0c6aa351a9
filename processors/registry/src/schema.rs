//! Parsing submitted schemas into the form the registry stores and compares.
//!
//! Two submissions are "the same schema" when their canonical texts are equal. The canonical
//! text is the parsed schema written back as compact JSON: formatting and key order do not
//! matter, but defaults, docs and aliases do (unlike Avro's Parsing Canonical Form, which drops
//! them — two schemas that differ only in a default must get different ids, since resolution
//! treats them differently).

use apache_avro::Schema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The schema types the Confluent API names. Only Avro is implemented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaType {
    Avro,
    Json,
    Protobuf,
}

impl SchemaType {
    /// Parses the `schemaType` field; absent means Avro.
    pub fn parse(name: Option<&str>) -> Option<Self> {
        match name.map(str::to_ascii_uppercase).as_deref() {
            None | Some("AVRO") => Some(SchemaType::Avro),
            Some("JSON") => Some(SchemaType::Json),
            Some("PROTOBUF") => Some(SchemaType::Protobuf),
            Some(_) => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Json => "JSON",
            SchemaType::Protobuf => "PROTOBUF",
        }
    }
}

/// A reference to a named type registered under another subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaReference {
    pub name: String,
    pub subject: String,
    pub version: i32,
}

/// Why a submitted schema was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSchema {
    #[error("schema type {0} is not supported by troupe-registry; only AVRO is")]
    Unsupported(&'static str),
    #[error("unknown schema type {0:?}")]
    UnknownType(String),
    #[error("invalid avro schema: {0}")]
    Avro(String),
}

/// A parsed, canonicalised schema.
#[derive(Debug, Clone)]
pub struct ParsedSchema {
    pub schema: Schema,
    pub canonical: String,
    pub references: Vec<SchemaReference>,
}

impl ParsedSchema {
    /// A digest of everything that makes two schemas the same: the global-id key.
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(SchemaType::Avro.as_str());
        hasher.update([0]);
        hasher.update(&self.canonical);
        hasher.update([0]);
        hasher.update(serde_json::to_string(&self.references).expect("references serialize"));
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Parses `text` as an Avro schema; `referenced` are the canonical texts of the schemas named
/// by `references`, already resolved by the caller, in the same order.
pub fn parse_avro(
    text: &str,
    references: Vec<SchemaReference>,
    referenced: &[String],
) -> Result<ParsedSchema, InvalidSchema> {
    let refs: Vec<&str> = referenced.iter().map(String::as_str).collect();
    let schema = if refs.is_empty() {
        Schema::parse_str(text).map_err(|e| InvalidSchema::Avro(e.to_string()))?
    } else {
        let (schema, _) = Schema::parse_str_with_list(text, &refs)
            .map_err(|e| InvalidSchema::Avro(e.to_string()))?;
        schema
    };
    let canonical =
        troupe_events::stored::stored_form(&schema, &refs).map_err(InvalidSchema::Avro)?;
    Ok(ParsedSchema {
        schema,
        canonical,
        references,
    })
}

/// Checks the `schemaType` field: Avro goes on, the others get a clear refusal.
pub fn check_type(name: Option<&str>) -> Result<SchemaType, InvalidSchema> {
    match SchemaType::parse(name) {
        Some(SchemaType::Avro) => Ok(SchemaType::Avro),
        Some(other) => Err(InvalidSchema::Unsupported(other.as_str())),
        None => Err(InvalidSchema::UnknownType(
            name.unwrap_or_default().to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schema_whose_stored_form_would_read_back_differently_is_refused() {
        // Found by the registry_schema fuzz target: a nested record named with a leading dot
        // (no namespace) inside a namespaced one. apache-avro writes it back in the outer
        // namespace, and that text reads back as yet another form; storing it would keep a
        // schema other than the one submitted.
        let text = r#"{"type":"record","name":"A","namespace":"n","fields":[
            {"name":"m","type":{"type":"record","name":".B","namespace":"x","fields":[
                {"name":"f","type":"string"}]}}]}"#;
        let refused = parse_avro(text, vec![], &[]).unwrap_err();
        assert!(refused.to_string().contains("reads back"), "{refused}");
    }

    #[test]
    fn formatting_does_not_change_the_canonical_form() {
        let a = parse_avro(
            r#"{"type":"record","name":"A","fields":[{"name":"x","type":"int"}]}"#,
            vec![],
            &[],
        )
        .unwrap();
        let b = parse_avro(
            "{ \"fields\": [ {\"type\": \"int\", \"name\": \"x\"} ],\n \"name\": \"A\", \"type\": \"record\" }",
            vec![],
            &[],
        )
        .unwrap();
        assert_eq!(a.canonical, b.canonical);
        assert_eq!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn a_default_changes_the_canonical_form() {
        let a = parse_avro(
            r#"{"type":"record","name":"A","fields":[{"name":"x","type":"int"}]}"#,
            vec![],
            &[],
        )
        .unwrap();
        let b = parse_avro(
            r#"{"type":"record","name":"A","fields":[{"name":"x","type":"int","default":1}]}"#,
            vec![],
            &[],
        )
        .unwrap();
        assert_ne!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn invalid_avro_is_refused_with_the_parser_message() {
        let error = parse_avro(r#"{"type":"record","name":"A"}"#, vec![], &[]).unwrap_err();
        assert!(matches!(error, InvalidSchema::Avro(_)), "{error}");
        assert!(parse_avro("not json", vec![], &[]).is_err());
    }

    #[test]
    fn references_resolve_named_types() {
        let address = r#"{"type":"record","name":"Address","namespace":"t","fields":[{"name":"city","type":"string"}]}"#;
        let parsed = parse_avro(
            r#"{"type":"record","name":"Customer","namespace":"t","fields":[{"name":"home","type":"t.Address"}]}"#,
            vec![SchemaReference {
                name: "t.Address".into(),
                subject: "address".into(),
                version: 1,
            }],
            &[address.to_owned()],
        )
        .unwrap();
        assert!(parsed.canonical.contains("t.Address"));
    }

    #[test]
    fn only_avro_is_accepted() {
        assert_eq!(check_type(None), Ok(SchemaType::Avro));
        assert_eq!(check_type(Some("AVRO")), Ok(SchemaType::Avro));
        assert_eq!(
            check_type(Some("PROTOBUF")),
            Err(InvalidSchema::Unsupported("PROTOBUF"))
        );
        assert!(matches!(
            check_type(Some("XML")),
            Err(InvalidSchema::UnknownType(_))
        ));
    }
}
