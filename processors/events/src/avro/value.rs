//! The [`Sink`] and [`Source`] over `apache_avro::types::Value`: fields looked up by name.

use apache_avro::types::Value;
use uuid::Uuid;

use super::{AvroError, Result, Sink, Source};

/// Builds a record's fields as `Value`s.
#[derive(Debug, Default)]
pub struct ValueSink {
    fields: Vec<(String, Value)>,
}

impl ValueSink {
    pub fn into_fields(self) -> Vec<(String, Value)> {
        self.fields
    }

    fn push(&mut self, field: &str, value: Value) {
        self.fields.push((field.to_owned(), value));
    }
}

impl Sink for ValueSink {
    fn string(&mut self, field: &'static str, value: &str) {
        self.push(field, Value::String(value.to_owned()));
    }

    fn uuid(&mut self, field: &'static str, value: Uuid) {
        self.push(field, Value::Uuid(value));
    }

    fn opt_uuid(&mut self, field: &'static str, value: Option<Uuid>) {
        let value = match value {
            Some(id) => Value::Union(1, Box::new(Value::Uuid(id))),
            None => Value::Union(0, Box::new(Value::Null)),
        };
        self.push(field, value);
    }

    fn int(&mut self, field: &'static str, value: i32) {
        self.push(field, Value::Int(value));
    }

    fn opt_int(&mut self, field: &'static str, value: Option<i32>) {
        let value = match value {
            Some(v) => Value::Union(1, Box::new(Value::Int(v))),
            None => Value::Union(0, Box::new(Value::Null)),
        };
        self.push(field, value);
    }

    fn opt_string(&mut self, field: &'static str, value: Option<&str>) {
        let value = match value {
            Some(v) => Value::Union(1, Box::new(Value::String(v.to_owned()))),
            None => Value::Union(0, Box::new(Value::Null)),
        };
        self.push(field, value);
    }

    fn long(&mut self, field: &'static str, value: i64) {
        self.push(field, Value::Long(value));
    }

    fn timestamp(&mut self, field: &'static str, value: i64) {
        self.push(field, Value::TimestampMillis(value));
    }

    fn double(&mut self, field: &'static str, value: f64) {
        self.push(field, Value::Double(value));
    }

    fn symbol(&mut self, field: &'static str, index: usize, symbol: &'static str) {
        self.push(field, Value::Enum(index as u32, symbol.to_owned()));
    }

    fn record(&mut self, field: &'static str, write: impl FnOnce(&mut Self)) {
        let mut inner = ValueSink::default();
        write(&mut inner);
        self.push(field, Value::Record(inner.fields));
    }

    fn array<T>(&mut self, field: &'static str, items: &[T], write: impl Fn(&mut Self, &T)) {
        let values = items
            .iter()
            .map(|item| {
                let mut inner = ValueSink::default();
                write(&mut inner, item);
                Value::Record(inner.fields)
            })
            .collect();
        self.push(field, Value::Array(values));
    }
}

/// A decoded record's fields, looked up by name.
#[derive(Debug, Clone, Copy)]
pub struct Rec<'a>(&'a [(String, Value)]);

fn kind(value: &Value) -> String {
    let text = format!("{value:?}");
    text.chars().take(60).collect()
}

fn unwrap_union(value: &Value) -> &Value {
    match value {
        Value::Union(_, inner) => inner,
        other => other,
    }
}

fn wrong(field: &'static str, value: &Value) -> AvroError {
    AvroError::WrongType {
        field,
        found: kind(value),
    }
}

impl<'a> Rec<'a> {
    pub fn of(value: &'a Value) -> Result<Self> {
        match unwrap_union(value) {
            Value::Record(fields) => Ok(Rec(fields)),
            other => Err(AvroError::NotARecord(kind(other))),
        }
    }

    fn get(&self, field: &'static str) -> Result<&'a Value> {
        self.0
            .iter()
            .find(|(name, _)| name == field)
            .map(|(_, v)| unwrap_union(v))
            .ok_or(AvroError::Missing(field))
    }
}

impl Source for Rec<'_> {
    fn string(&mut self, field: &'static str) -> Result<String> {
        match self.get(field)? {
            Value::String(s) => Ok(s.clone()),
            Value::Uuid(u) => Ok(u.to_string()),
            other => Err(wrong(field, other)),
        }
    }

    fn uuid(&mut self, field: &'static str) -> Result<Uuid> {
        match self.get(field)? {
            Value::Uuid(u) => Ok(*u),
            Value::String(s) => Uuid::parse_str(s).map_err(|e| AvroError::Invalid {
                field,
                reason: e.to_string(),
            }),
            other => Err(wrong(field, other)),
        }
    }

    fn opt_uuid(&mut self, field: &'static str) -> Result<Option<Uuid>> {
        match self.get(field)? {
            Value::Null => Ok(None),
            _ => self.uuid(field).map(Some),
        }
    }

    fn int(&mut self, field: &'static str) -> Result<i32> {
        match self.get(field)? {
            Value::Int(i) => Ok(*i),
            other => Err(wrong(field, other)),
        }
    }

    fn opt_int(&mut self, field: &'static str) -> Result<Option<i32>> {
        match self.get(field)? {
            Value::Null => Ok(None),
            _ => self.int(field).map(Some),
        }
    }

    fn opt_string(&mut self, field: &'static str) -> Result<Option<String>> {
        match self.get(field)? {
            Value::Null => Ok(None),
            _ => self.string(field).map(Some),
        }
    }

    fn long(&mut self, field: &'static str) -> Result<i64> {
        match self.get(field)? {
            Value::Long(i) | Value::TimestampMillis(i) => Ok(*i),
            Value::Int(i) => Ok(i64::from(*i)),
            other => Err(wrong(field, other)),
        }
    }

    fn double(&mut self, field: &'static str) -> Result<f64> {
        match self.get(field)? {
            Value::Double(d) => Ok(*d),
            Value::Float(f) => Ok(f64::from(*f)),
            other => Err(wrong(field, other)),
        }
    }

    fn symbol(
        &mut self,
        field: &'static str,
        symbols: &'static [&'static str],
    ) -> Result<&'static str> {
        match self.get(field)? {
            Value::Enum(_, symbol) => {
                symbols
                    .iter()
                    .find(|s| **s == symbol)
                    .copied()
                    .ok_or_else(|| AvroError::Invalid {
                        field,
                        reason: format!("unknown symbol {symbol}"),
                    })
            }
            other => Err(wrong(field, other)),
        }
    }

    fn record<T>(
        &mut self,
        field: &'static str,
        read: impl FnOnce(&mut Self) -> Result<T>,
    ) -> Result<T> {
        read(&mut Rec::of(self.get(field)?)?)
    }

    fn array<T>(
        &mut self,
        field: &'static str,
        mut read: impl FnMut(&mut Self) -> Result<T>,
    ) -> Result<Vec<T>> {
        match self.get(field)? {
            Value::Array(items) => items.iter().map(|v| read(&mut Rec::of(v)?)).collect(),
            other => Err(wrong(field, other)),
        }
    }
}
