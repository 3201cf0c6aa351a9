//! Publishing events directly (not through an outbox): the CLI's storefront, load generators
//! and tests. Processors never use this — their effects go through the outbox.

use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use troupe_events::Envelope;

use crate::codec::{Codec, EncodeError};
use crate::config::{KafkaConfig, RegistryConfig};
use crate::processor::{EVENT_ID_HEADER, EVENT_TYPE_HEADER};
use crate::topics::Topics;

/// Why a publish failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("{0}")]
    Config(String),
}

/// Where a message landed: the position a reader can wait for (`?min_position=` of the query
/// API), written `topic/partition@offset` with the topic's base name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}@{}", self.topic, self.partition, self.offset)
    }
}

impl std::str::FromStr for Position {
    type Err = String;

    /// `topic/partition@offset`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not a position (topic/partition@offset)");
        let (topic, rest) = s.rsplit_once('/').ok_or_else(bad)?;
        let (partition, offset) = rest.split_once('@').ok_or_else(bad)?;
        if topic.is_empty() {
            return Err(bad());
        }
        Ok(Position {
            topic: topic.to_owned(),
            partition: partition.parse().map_err(|_| bad())?,
            offset: offset.parse().map_err(|_| bad())?,
        })
    }
}

/// An idempotent producer plus the codec.
#[derive(Clone)]
pub struct Publisher {
    producer: FutureProducer,
    codec: Codec,
    topics: Topics,
    /// How long a message may wait for the broker, or its encoding for the registry.
    patience: std::time::Duration,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("topics", &self.topics)
            .finish()
    }
}

impl Publisher {
    pub fn new(
        kafka: &KafkaConfig,
        registry: &RegistryConfig,
        topics: Topics,
    ) -> Result<Self, PublishError> {
        let producer: FutureProducer = kafka
            .client()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "2")
            .set("message.timeout.ms", kafka.produce_timeout_ms.to_string())
            .set("log_level", "3")
            .create()?;
        Ok(Self {
            producer,
            codec: Codec::with_pins(
                registry,
                &topics,
                registry.pins().map_err(PublishError::Config)?,
            )
            .map_err(|e| PublishError::Config(e.to_string()))?,
            topics,
            patience: std::time::Duration::from_millis(kafka.produce_timeout_ms),
        })
    }

    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    /// Encodes `envelope`, asking the registry again while it fails (restarting, its database
    /// down), for as long as a message may wait for the broker.
    async fn encode(&self, envelope: &Envelope) -> Result<Vec<u8>, PublishError> {
        let deadline = tokio::time::Instant::now() + self.patience;
        let mut pause = std::time::Duration::from_millis(100);
        loop {
            match self.codec.encode(envelope).await {
                Ok(payload) => return Ok(payload),
                Err(error) if tokio::time::Instant::now() + pause < deadline => {
                    tracing::warn!(%error, "the registry failed; asking again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_secs(2));
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Encodes and publishes an event to its topic, keyed by order id (sku for adjustments);
    /// resolves when the broker acknowledged it.
    pub async fn publish(&self, envelope: &Envelope) -> Result<Position, PublishError> {
        let payload = self.encode(envelope).await?;
        let topic = self.topics.name(envelope.event_type().topic());
        let key = envelope.key();
        let event_id = envelope.meta.event_id.to_string();
        self.publish_raw(
            &topic,
            Some(&key),
            &payload,
            &[
                (EVENT_TYPE_HEADER, envelope.event_type().name()),
                (EVENT_ID_HEADER, &event_id),
            ],
        )
        .await
    }

    /// Publishes bytes as they are (for testing bad input).
    pub async fn publish_raw(
        &self,
        topic: &str,
        key: Option<&str>,
        payload: &[u8],
        headers: &[(&str, &str)],
    ) -> Result<Position, PublishError> {
        let mut kafka_headers = OwnedHeaders::new_with_capacity(headers.len());
        for (name, value) in headers {
            kafka_headers = kafka_headers.insert(Header {
                key: name,
                value: Some(value.as_bytes()),
            });
        }
        let mut record: FutureRecord<'_, str, [u8]> = FutureRecord::to(topic)
            .payload(payload)
            .headers(kafka_headers);
        if let Some(key) = key {
            record = record.key(key);
        }
        let delivery = self
            .producer
            .send(record, Duration::from_secs(15))
            .await
            .map_err(|(error, _)| error)?;
        Ok(Position {
            topic: self.topics.base(topic).to_owned(),
            partition: delivery.partition,
            offset: delivery.offset,
        })
    }

    /// Waits for everything in flight.
    pub fn flush(&self) -> Result<(), PublishError> {
        self.producer.flush(Duration::from_secs(15))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_print_and_parse() {
        let position = Position {
            topic: "troupe.orders.commands".into(),
            partition: 3,
            offset: 17,
        };
        assert_eq!(position.to_string(), "troupe.orders.commands/3@17");
        assert_eq!(
            "troupe.orders.commands/3@17".parse::<Position>(),
            Ok(position)
        );
        for bad in ["", "3@17", "t/3", "t/x@1", "t/1@y", "/1@2"] {
            assert!(bad.parse::<Position>().is_err(), "{bad}");
        }
    }
}
