//! A running troupe-registry binary on its own database, for HTTP-level tests.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use troupe_testkit::{stack, unique, wait_until};

pub const MEDIA: &str = "application/vnd.schemaregistry.v1+json";

pub struct Registry {
    pub url: String,
    pub database: String,
    child: Child,
    http: reqwest::Client,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Registry {
    /// Starts the binary on a fresh database.
    pub async fn start() -> Self {
        Self::start_on(&unique("registry_test")).await
    }

    /// Starts the binary on `database` (kept across restarts).
    pub async fn start_on(database: &str) -> Self {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_troupe-registry"))
            .env("TROUPE_POSTGRES_URL", &stack().postgres_url)
            .env("TROUPE_REGISTRY_DATABASE", database)
            .env("TROUPE_REGISTRY_LISTEN", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn troupe-registry");
        let registry = Self {
            url: format!("http://127.0.0.1:{port}"),
            database: database.to_owned(),
            child,
            http: reqwest::Client::new(),
        };
        let health = format!("{}/health", registry.url);
        let http = registry.http.clone();
        wait_until(
            "troupe-registry to answer /health",
            Duration::from_secs(30),
            || {
                let http = http.clone();
                let health = health.clone();
                async move {
                    let response = http.get(&health).send().await.ok()?;
                    response.status().is_success().then_some(())
                }
            },
        )
        .await;
        registry
    }

    /// Stops the process (SIGKILL: nothing is flushed on the way out).
    pub fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.database.clone()
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
        content_type: &str,
    ) -> (u16, Value, String) {
        let mut request = self.http.request(method, format!("{}{}", self.url, path));
        if let Some(body) = body {
            request = request.header("Content-Type", content_type).body(body);
        }
        let response = request.send().await.expect("registry answers");
        let status = response.status().as_u16();
        let content = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, value, content)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let (status, value, _) = self.send(reqwest::Method::GET, path, None, MEDIA).await;
        (status, value)
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        let (status, value, _) = self.send(reqwest::Method::DELETE, path, None, MEDIA).await;
        (status, value)
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let (status, value, _) = self
            .send(reqwest::Method::POST, path, Some(body.to_string()), MEDIA)
            .await;
        (status, value)
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        let (status, value, _) = self
            .send(reqwest::Method::PUT, path, Some(body.to_string()), MEDIA)
            .await;
        (status, value)
    }

    /// Registers `schema` under `subject`; returns (status, body).
    pub async fn register(&self, subject: &str, schema: &str) -> (u16, Value) {
        self.post(
            &format!("/subjects/{subject}/versions"),
            serde_json::json!({ "schema": schema }),
        )
        .await
    }

    pub async fn register_ok(&self, subject: &str, schema: &str) -> i64 {
        let (status, body) = self.register(subject, schema).await;
        assert_eq!(status, 200, "register {subject}: {body}");
        body["id"].as_i64().expect("id")
    }
}

/// A record schema `t.Order` with the given fields JSON.
pub fn order_schema(fields: &str) -> String {
    format!(r#"{{"type":"record","name":"Order","namespace":"t","fields":[{fields}]}}"#)
}

pub const V1: &str = r#"{"name":"id","type":"string"}"#;
pub const V2_WITH_DEFAULT: &str =
    r#"{"name":"id","type":"string"},{"name":"qty","type":"int","default":1}"#;
pub const V2_NO_DEFAULT: &str = r#"{"name":"id","type":"string"},{"name":"qty","type":"int"}"#;

/// Asserts an error answer: status and Confluent error code.
pub fn assert_error(answer: &(u16, Value), status: u16, code: i64) {
    assert_eq!(answer.0, status, "status of {}", answer.1);
    assert_eq!(
        answer.1["error_code"].as_i64(),
        Some(code),
        "code of {}",
        answer.1
    );
    assert!(
        answer.1["message"].as_str().is_some_and(|m| !m.is_empty()),
        "a message in {}",
        answer.1
    );
}
