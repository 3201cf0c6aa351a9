//! Topic names as a process uses them: the names of `topics.yaml`, optionally behind a prefix
//! (`TROUPE_TOPIC_PREFIX`), so that tests — or several environments on one cluster — each get
//! topics of their own.

/// Maps base topic names to the names on the broker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topics {
    prefix: String,
}

impl Topics {
    pub fn with_prefix(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// `TROUPE_TOPIC_PREFIX`, for tools (the CLI); processors get theirs in their config.
    pub fn from_env() -> Self {
        Self::with_prefix(std::env::var("TROUPE_TOPIC_PREFIX").unwrap_or_default())
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The broker name of a base topic.
    pub fn name(&self, base: &str) -> String {
        format!("{}{}", self.prefix, base)
    }

    /// The base name of a broker topic.
    pub fn base<'a>(&self, name: &'a str) -> &'a str {
        name.strip_prefix(self.prefix.as_str()).unwrap_or(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_round_trip() {
        let topics = Topics::with_prefix("t1.");
        assert_eq!(
            topics.name("troupe.orders.events"),
            "t1.troupe.orders.events"
        );
        assert_eq!(
            topics.base("t1.troupe.orders.events"),
            "troupe.orders.events"
        );
        assert_eq!(Topics::default().name("x"), "x");
    }
}
