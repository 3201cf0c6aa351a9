//! The [`Sink`] and [`Source`] over the Avro binary encoding itself, for records written with
//! the current schema: zig-zag varints, length-prefixed UTF-8, little-endian doubles, unions
//! as a branch index, enums as a symbol index, arrays in counted blocks.
//!
//! Field names are ignored (the order is the schema's); they only name errors.

use uuid::Uuid;

use super::{AvroError, Result, Sink, Source};

/// Writes a datum.
#[derive(Debug, Default)]
pub struct BinarySink {
    bytes: Vec<u8>,
}

impl BinarySink {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(capacity),
        }
    }

    /// Starts writing after `prefix` (e.g. the Confluent framing).
    pub fn after(prefix: &[u8], capacity: usize) -> Self {
        let mut bytes = Vec::with_capacity(prefix.len() + capacity);
        bytes.extend_from_slice(prefix);
        Self { bytes }
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    fn varint(&mut self, value: i64) {
        let mut z = ((value << 1) ^ (value >> 63)) as u64;
        while z >= 0x80 {
            self.bytes.push((z as u8) | 0x80);
            z >>= 7;
        }
        self.bytes.push(z as u8);
    }

    fn text(&mut self, value: &str) {
        self.varint(value.len() as i64);
        self.bytes.extend_from_slice(value.as_bytes());
    }
}

impl Sink for BinarySink {
    fn string(&mut self, _: &'static str, value: &str) {
        self.text(value);
    }

    fn uuid(&mut self, _: &'static str, value: Uuid) {
        // The uuid logical type on a string: the hyphenated text form.
        let mut buffer = Uuid::encode_buffer();
        self.text(value.hyphenated().encode_lower(&mut buffer));
    }

    fn opt_uuid(&mut self, field: &'static str, value: Option<Uuid>) {
        match value {
            None => self.varint(0),
            Some(id) => {
                self.varint(1);
                self.uuid(field, id);
            }
        }
    }

    fn int(&mut self, _: &'static str, value: i32) {
        self.varint(i64::from(value));
    }

    fn opt_int(&mut self, _: &'static str, value: Option<i32>) {
        match value {
            None => self.varint(0),
            Some(v) => {
                self.varint(1);
                self.varint(i64::from(v));
            }
        }
    }

    fn opt_string(&mut self, _: &'static str, value: Option<&str>) {
        match value {
            None => self.varint(0),
            Some(v) => {
                self.varint(1);
                self.text(v);
            }
        }
    }

    fn long(&mut self, _: &'static str, value: i64) {
        self.varint(value);
    }

    fn timestamp(&mut self, _: &'static str, value: i64) {
        self.varint(value);
    }

    fn double(&mut self, _: &'static str, value: f64) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    fn symbol(&mut self, _: &'static str, index: usize, _: &'static str) {
        self.varint(index as i64);
    }

    fn record(&mut self, _: &'static str, write: impl FnOnce(&mut Self)) {
        write(self);
    }

    fn array<T>(&mut self, _: &'static str, items: &[T], write: impl Fn(&mut Self, &T)) {
        if !items.is_empty() {
            self.varint(items.len() as i64);
            for item in items {
                write(self, item);
            }
        }
        self.varint(0);
    }
}

/// Reads a datum.
#[derive(Debug)]
pub struct BinarySource<'a> {
    bytes: &'a [u8],
}

impl<'a> BinarySource<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// What is left unread.
    pub fn rest(&self) -> &'a [u8] {
        self.bytes
    }

    fn long(&mut self, field: &'static str) -> Result<i64> {
        let mut value: u64 = 0;
        for (i, byte) in self.bytes.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.bytes = &self.bytes[i + 1..];
                return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
            }
        }
        if self.bytes.len() < 10 {
            Err(AvroError::Truncated(field))
        } else {
            Err(AvroError::Malformed {
                field,
                reason: "a varint longer than 10 bytes".into(),
            })
        }
    }

    fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8]> {
        if self.bytes.len() < n {
            return Err(AvroError::Truncated(field));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn text(&mut self, field: &'static str) -> Result<&'a str> {
        let len = self.long(field)?;
        let len = usize::try_from(len).map_err(|_| AvroError::Malformed {
            field,
            reason: format!("negative length {len}"),
        })?;
        std::str::from_utf8(self.take(field, len)?).map_err(|e| AvroError::Malformed {
            field,
            reason: e.to_string(),
        })
    }

    fn branch(&mut self, field: &'static str) -> Result<bool> {
        match self.long(field)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(AvroError::Malformed {
                field,
                reason: format!("union branch {other} of a two-branch union"),
            }),
        }
    }
}

impl Source for BinarySource<'_> {
    fn string(&mut self, field: &'static str) -> Result<String> {
        self.text(field).map(str::to_owned)
    }

    fn uuid(&mut self, field: &'static str) -> Result<Uuid> {
        Uuid::parse_str(self.text(field)?).map_err(|e| AvroError::Invalid {
            field,
            reason: e.to_string(),
        })
    }

    fn opt_uuid(&mut self, field: &'static str) -> Result<Option<Uuid>> {
        if self.branch(field)? {
            self.uuid(field).map(Some)
        } else {
            Ok(None)
        }
    }

    fn int(&mut self, field: &'static str) -> Result<i32> {
        let value = self.long(field)?;
        i32::try_from(value).map_err(|_| AvroError::Malformed {
            field,
            reason: format!("{value} does not fit an int"),
        })
    }

    fn opt_int(&mut self, field: &'static str) -> Result<Option<i32>> {
        if self.branch(field)? {
            self.int(field).map(Some)
        } else {
            Ok(None)
        }
    }

    fn opt_string(&mut self, field: &'static str) -> Result<Option<String>> {
        if self.branch(field)? {
            self.string(field).map(Some)
        } else {
            Ok(None)
        }
    }

    fn long(&mut self, field: &'static str) -> Result<i64> {
        BinarySource::long(self, field)
    }

    fn double(&mut self, field: &'static str) -> Result<f64> {
        let bytes = self.take(field, 8)?;
        Ok(f64::from_le_bytes(bytes.try_into().expect("eight bytes")))
    }

    fn symbol(
        &mut self,
        field: &'static str,
        symbols: &'static [&'static str],
    ) -> Result<&'static str> {
        let index = self.long(field)?;
        usize::try_from(index)
            .ok()
            .and_then(|i| symbols.get(i))
            .copied()
            .ok_or_else(|| AvroError::Malformed {
                field,
                reason: format!("symbol index {index} of {}", symbols.len()),
            })
    }

    fn record<T>(
        &mut self,
        _: &'static str,
        read: impl FnOnce(&mut Self) -> Result<T>,
    ) -> Result<T> {
        read(self)
    }

    fn array<T>(
        &mut self,
        field: &'static str,
        mut read: impl FnMut(&mut Self) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut items = Vec::new();
        loop {
            let count = self.long(field)?;
            if count == 0 {
                return Ok(items);
            }
            if count < 0 {
                // A negative count is followed by the block's size in bytes.
                self.long(field)?;
            }
            let count = count.unsigned_abs();
            // Every item takes at least one byte: a count beyond what is left is corrupt.
            if count > self.bytes.len() as u64 {
                return Err(AvroError::Truncated(field));
            }
            items.reserve(count as usize);
            for _ in 0..count {
                items.push(read(self)?);
            }
        }
    }
}
