//! Writes the seed corpora of the fuzz targets that read events and schemas (`fuzz/corpus/`):
//! one framed message per catalog version, written as a producer pinned to that version would,
//! and every catalog schema's text.
//!
//! `cargo run -p troupe-events --example fuzz_seeds -- fuzz/corpus`
//!
//! The decode target reads the 4-byte schema id of a framed message as an index into the
//! catalog (there is no registry inside a fuzz target), so the seeds carry catalog indexes.

use std::fs;
use std::path::Path;

use troupe_events::avro::{self, binary::BinarySink};
use troupe_events::catalog::SCHEMAS;
use troupe_events::samples;

fn main() -> std::io::Result<()> {
    let root = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fuzz/corpus".into());
    let decode = Path::new(&root).join("decode");
    let schemas = Path::new(&root).join("registry_schema");
    fs::create_dir_all(&decode)?;
    fs::create_dir_all(&schemas)?;
    for (index, file) in SCHEMAS.iter().enumerate() {
        let envelope = samples::representable(file.event_type, file.version);
        let mut framing = [0u8; 5];
        framing[1..].copy_from_slice(&u32::try_from(index).expect("few schemas").to_be_bytes());
        let mut sink = BinarySink::after(&framing, 256);
        avro::write_version(&envelope, file.version, &mut sink);
        let name = file.path.replace('/', "-").replace(".avsc", "");
        fs::write(decode.join(&name), sink.into_bytes())?;
        fs::write(schemas.join(&name), file.text)?;
    }
    println!("{} seeds each in {}", SCHEMAS.len(), root);
    Ok(())
}
