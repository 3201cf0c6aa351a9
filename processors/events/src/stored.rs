//! The form a schema registry stores a schema in: the parsed schema written back as compact
//! JSON. Two submissions are the same schema when these texts are equal, and later checks read
//! the stored text back, so it must read back as itself.

use apache_avro::Schema;

/// `schema` as the text a registry stores, when that text reads back as the same text;
/// `referenced` are the texts of the schemas it names (its references), in order.
///
/// apache-avro does not write every name back faithfully: a nested record named with a leading
/// dot (no namespace) inside a namespaced record comes back in the outer namespace. Storing such
/// a text would keep a schema other than the one submitted, so it is an error here.
pub fn stored_form(schema: &Schema, referenced: &[&str]) -> Result<String, String> {
    let text = serde_json::to_string(schema)
        .map_err(|e| format!("cannot serialise the parsed schema: {e}"))?;
    let again = if referenced.is_empty() {
        Schema::parse_str(&text)
    } else {
        Schema::parse_str_with_list(&text, referenced).map(|(schema, _)| schema)
    }
    .map_err(|e| format!("its stored form does not parse again: {e}"))?;
    let again = serde_json::to_string(&again)
        .map_err(|e| format!("cannot serialise the parsed schema: {e}"))?;
    if again != text {
        return Err(format!(
            "its stored form reads back as a different schema (a name apache-avro does not keep, \
             such as one with a leading dot inside a namespace): {text}"
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_schema_keeps_its_stored_form() {
        for file in crate::catalog::SCHEMAS {
            let text = stored_form(file.schema(), &[]).unwrap();
            assert_eq!(
                Schema::parse_str(&text).unwrap(),
                *file.schema(),
                "{}",
                file.path
            );
        }
    }
}
