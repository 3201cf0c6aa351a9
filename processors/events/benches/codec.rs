//! Decode + encode of one event, the per-message work of every hop: the Avro datum with the
//! schema already parsed and resolved (as the registry client caches it), and the mapping to
//! and from the domain type. `cargo bench -p troupe-events`.

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use troupe_events::{avro, catalog, samples, validate::validate, EventType};
use uuid::Uuid;

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Elements(1));
    for event_type in [
        EventType::OrderPlaced,
        EventType::PaymentAuthorized,
        EventType::OrderConfirmed,
    ] {
        let schema = Schema::parse_str(catalog::current(event_type).text).unwrap();
        let writer = GenericDatumWriter::builder(&schema).build().unwrap();
        let unchecked = GenericDatumWriter::builder(&schema)
            .validate(false)
            .build()
            .unwrap();
        let reader = GenericDatumReader::builder(&schema).build().unwrap();
        let envelope = samples::sample(event_type, Uuid::now_v7());
        let bytes = writer
            .write_value_to_vec(avro::to_value(&envelope))
            .unwrap();
        let name = event_type.record_name();

        group.bench_function(format!("encode/{}", event_type.name()), |b| {
            b.iter(|| {
                writer
                    .write_value_to_vec(avro::to_value(black_box(&envelope)))
                    .unwrap()
            })
        });
        group.bench_function(format!("encode-unvalidated/{}", event_type.name()), |b| {
            b.iter(|| {
                unchecked
                    .write_value_to_vec(avro::to_value(black_box(&envelope)))
                    .unwrap()
            })
        });
        group.bench_function(format!("decode/{}", event_type.name()), |b| {
            b.iter(|| {
                let value = reader.read_value(&mut black_box(bytes.as_slice())).unwrap();
                avro::from_value(name, &value).unwrap()
            })
        });
        // The direct path the codec takes for current-schema messages: bytes straight into the
        // domain type, validated, and straight back to bytes.
        group.bench_function(format!("direct-decode/{}", event_type.name()), |b| {
            b.iter(|| avro::from_binary(event_type, black_box(&bytes)).unwrap())
        });
        group.bench_function(format!("direct-encode/{}", event_type.name()), |b| {
            b.iter(|| avro::to_binary(black_box(&envelope)))
        });
        group.bench_function(
            format!("direct-decode+validate+encode/{}", event_type.name()),
            |b| {
                b.iter(|| {
                    let decoded = avro::from_binary(event_type, black_box(&bytes)).unwrap();
                    validate(&decoded).unwrap();
                    avro::to_binary(&decoded)
                })
            },
        );
        group.bench_function(format!("decode+encode/{}", event_type.name()), |b| {
            b.iter(|| {
                let value = reader.read_value(&mut black_box(bytes.as_slice())).unwrap();
                let decoded = avro::from_value(name, &value).unwrap();
                writer.write_value_to_vec(avro::to_value(&decoded)).unwrap()
            })
        });
    }
    // Older versions: read with their own schema, upcast to the current one, mapped.
    for (event_type, version) in [
        (EventType::OrderPlaced, 1),
        (EventType::OrderPlaced, 2),
        (EventType::PaymentAuthorized, 1),
    ] {
        let file = catalog::find(event_type, version).unwrap();
        let envelope = samples::representable(event_type, version);
        let bytes = GenericDatumWriter::builder(file.schema())
            .build()
            .unwrap()
            .write_value_to_vec(avro::to_version_value(&envelope, version))
            .unwrap();
        group.bench_function(
            format!("upcast-decode/{}.v{version}", event_type.name()),
            |b| b.iter(|| avro::decode_version(file, None, black_box(&bytes)).unwrap()),
        );
    }
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
