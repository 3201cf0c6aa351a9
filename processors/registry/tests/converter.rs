//! A round trip through schema_registry_converter — the client troupe's processors use —
//! against the running registry: encode with one client, decode with a fresh one.

mod support;

use apache_avro::types::Value;
use schema_registry_converter::async_impl::easy_avro::{EasyAvroDecoder, EasyAvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};
use serde::Serialize;
use support::Registry;

#[derive(Debug, Serialize)]
struct Order {
    id: String,
    qty: i32,
}

#[tokio::test]
async fn encode_with_one_client_and_decode_with_a_fresh_one() {
    let registry = Registry::start().await;
    let schema = support::order_schema(support::V2_WITH_DEFAULT);
    let strategy = SubjectNameStrategy::TopicRecordNameStrategyWithSchema(
        "troupe.orders.events".to_owned(),
        SuppliedSchema::new(Some("t.Order".to_owned()), SchemaType::Avro, schema.clone()),
    );

    let encoder = EasyAvroEncoder::new(SrSettings::new(registry.url.clone()));
    let bytes = encoder
        .encode_struct(
            Order {
                id: "o-1".into(),
                qty: 7,
            },
            &strategy,
        )
        .await
        .expect("encode");

    // Confluent wire format: magic byte 0, then the schema id as a big-endian u32.
    assert_eq!(bytes[0], 0);
    let id = u32::from_be_bytes(bytes[1..5].try_into().unwrap()) as i64;
    let (status, body) = registry
        .get("/subjects/troupe.orders.events-t.Order/versions/latest")
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["id"].as_i64(), Some(id));

    let decoder = EasyAvroDecoder::new(SrSettings::new(registry.url.clone()));
    let decoded = decoder.decode(Some(&bytes)).await.expect("decode");
    assert_eq!(
        decoded.value,
        Value::Record(vec![
            ("id".to_owned(), Value::String("o-1".to_owned())),
            ("qty".to_owned(), Value::Int(7)),
        ])
    );
    assert_eq!(
        decoded.name.map(|n| n.fullname(None)),
        Some("t.Order".to_owned())
    );

    // A second encode reuses the cached id and produces the same bytes.
    let again = encoder
        .encode_struct(
            Order {
                id: "o-1".into(),
                qty: 7,
            },
            &strategy,
        )
        .await
        .expect("encode again");
    assert_eq!(again, bytes);
}

#[tokio::test]
async fn an_unknown_schema_id_fails_to_decode() {
    let registry = Registry::start().await;
    let decoder = EasyAvroDecoder::new(SrSettings::new(registry.url.clone()));
    let bytes = [0u8, 0, 0x0f, 0x42, 0x40, 2, 0x61];
    assert!(decoder.decode(Some(&bytes)).await.is_err());
}
