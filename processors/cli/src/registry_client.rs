//! A small client for the Confluent Schema Registry REST API: the calls `troupe schemas` needs,
//! against any compatible registry (troupe-registry or Confluent's).

use std::time::Duration;

use anyhow::{anyhow, Context};
use serde::Deserialize;
use serde_json::{json, Value};
use troupe_runtime::config::RegistryConfig;
use troupe_runtime::security::BasicAuth;

const MEDIA_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// An error body from the registry.
#[derive(Debug, Deserialize)]
pub struct RegistryError {
    pub error_code: u32,
    pub message: String,
}

/// What a lookup of a schema under a subject found.
#[derive(Debug, Deserialize)]
pub struct Found {
    pub id: i32,
    pub version: i32,
}

#[derive(Debug)]
pub struct RegistryClient {
    http: reqwest::Client,
    base: String,
    /// Sent with every request.
    auth: Option<BasicAuth>,
}

impl RegistryClient {
    /// A client of `registry`, with its CA and basic auth ([`troupe_runtime::security`]).
    pub fn new(registry: &RegistryConfig) -> anyhow::Result<Self> {
        let http = registry
            .security
            .http_client()?
            .timeout(Duration::from_secs(10))
            .build()
            .context("cannot build an HTTP client")?;
        Ok(Self {
            http,
            base: registry.url.trim_end_matches('/').to_owned(),
            auth: registry.security.basic_auth.clone(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a request; `Ok(Err(..))` is an error answer from the registry, `Err` means it
    /// could not be reached or answered nonsense.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Result<Value, RegistryError>> {
        let mut request = self
            .http
            .request(method, self.url(path))
            .header("Accept", MEDIA_TYPE);
        if let Some(auth) = &self.auth {
            request = request.basic_auth(&auth.username, Some(auth.password.expose()));
        }
        if let Some(body) = body {
            request = request
                .header("Content-Type", MEDIA_TYPE)
                .body(body.to_string());
        }
        let response = request.send().await.map_err(|e| {
            anyhow!(
                "cannot reach the schema registry at {}: {}",
                self.base,
                root_cause(&e)
            )
        })?;
        let status = response.status();
        let text = response.text().await.context("registry response")?;
        if status.is_success() {
            let value = serde_json::from_str(&text)
                .with_context(|| format!("the registry answered {path} with invalid JSON"))?;
            return Ok(Ok(value));
        }
        match serde_json::from_str::<RegistryError>(&text) {
            Ok(error) => Ok(Err(error)),
            Err(_) => Err(anyhow!(
                "the schema registry at {} answered {status} to {path}",
                self.base
            )),
        }
    }

    /// The schema registered under `id`, as its JSON text; `None` when the registry does not
    /// know the id.
    pub async fn schema_by_id(&self, id: u32) -> anyhow::Result<Option<String>> {
        match self
            .call(reqwest::Method::GET, &format!("/schemas/ids/{id}"), None)
            .await?
        {
            Ok(body) => Ok(body["schema"].as_str().map(str::to_owned)),
            Err(_) => Ok(None),
        }
    }

    /// Checks the registry answers at all.
    pub async fn ping(&self) -> anyhow::Result<()> {
        self.call(reqwest::Method::GET, "/subjects", None)
            .await?
            .map_err(|e| anyhow!("schema registry error {}: {}", e.error_code, e.message))?;
        Ok(())
    }

    pub async fn set_compatibility(&self, subject: &str, level: &str) -> anyhow::Result<()> {
        self.call(
            reqwest::Method::PUT,
            &format!("/config/{}", encode(subject)),
            Some(json!({ "compatibility": level })),
        )
        .await?
        .map_err(|e| anyhow!("cannot set compatibility of {subject}: {}", e.message))?;
        Ok(())
    }

    /// The subject's own compatibility level, if set.
    pub async fn compatibility(&self, subject: &str) -> anyhow::Result<Option<String>> {
        match self
            .call(
                reqwest::Method::GET,
                &format!("/config/{}", encode(subject)),
                None,
            )
            .await?
        {
            Ok(value) => Ok(value["compatibilityLevel"].as_str().map(str::to_owned)),
            Err(e) if e.error_code == 40408 || e.error_code == 40401 => Ok(None),
            Err(e) => Err(anyhow!(
                "cannot read compatibility of {subject}: {}",
                e.message
            )),
        }
    }

    /// Registers a schema; returns its id.
    pub async fn register(
        &self,
        subject: &str,
        schema: &str,
    ) -> anyhow::Result<Result<i32, RegistryError>> {
        Ok(self
            .call(
                reqwest::Method::POST,
                &format!("/subjects/{}/versions", encode(subject)),
                Some(json!({ "schema": schema })),
            )
            .await?
            .map(|v| v["id"].as_i64().unwrap_or_default() as i32))
    }

    /// Finds a schema under a subject: `None` when the subject or the schema is not there.
    pub async fn lookup(&self, subject: &str, schema: &str) -> anyhow::Result<Option<Found>> {
        match self
            .call(
                reqwest::Method::POST,
                &format!("/subjects/{}", encode(subject)),
                Some(json!({ "schema": schema })),
            )
            .await?
        {
            Ok(value) => Ok(Some(serde_json::from_value(value)?)),
            Err(e) if e.error_code == 40401 || e.error_code == 40403 => Ok(None),
            Err(e) => Err(anyhow!("lookup under {subject} failed: {}", e.message)),
        }
    }

    /// Reasons a schema is incompatible with the subject's versions; empty when compatible.
    pub async fn incompatibilities(
        &self,
        subject: &str,
        schema: &str,
    ) -> anyhow::Result<Vec<String>> {
        let answer = self
            .call(
                reqwest::Method::POST,
                &format!(
                    "/compatibility/subjects/{}/versions?verbose=true",
                    encode(subject)
                ),
                Some(json!({ "schema": schema })),
            )
            .await?;
        match answer {
            Ok(value) if value["is_compatible"].as_bool() == Some(true) => Ok(vec![]),
            Ok(value) => {
                let reasons: Vec<String> = value["messages"]
                    .as_array()
                    .map(|m| {
                        m.iter()
                            .map(|r| r.as_str().unwrap_or_default().to_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                Ok(if reasons.is_empty() {
                    vec!["the registry judged it incompatible (no reason given)".to_owned()]
                } else {
                    reasons
                })
            }
            // A subject with no versions accepts anything.
            Err(e) if e.error_code == 40401 => Ok(vec![]),
            Err(e) => Err(anyhow!(
                "compatibility check of {subject} failed: {}",
                e.message
            )),
        }
    }
}

/// Percent-encodes a path segment (subjects contain dots and may contain other characters).
fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::encode;

    #[test]
    fn subjects_are_encoded_as_one_segment() {
        assert_eq!(
            encode("troupe.orders.events-troupe.orders.OrderPlaced"),
            "troupe.orders.events-troupe.orders.OrderPlaced"
        );
        assert_eq!(encode("a/b c"), "a%2Fb%20c");
    }
}
