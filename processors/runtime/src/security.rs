//! Kafka SASL/TLS and schema-registry TLS/basic auth, from the environment, under the names the
//! Helm chart sets (`troupe.authEnv` in `helm/troupe/templates/_helpers.tpl`).
//!
//! Parsing is pure ([`KafkaSecurity::parse`] and [`RegistrySecurity::parse`] take a lookup, not
//! the environment) and strict: an unknown protocol or mechanism, SASL without its credentials,
//! or a setting the protocol would silently ignore is an error naming the variable, which
//! [`crate::config::check_env`] reports in one line before a process connects anywhere.
//! Passwords are [`Secret`]s: no `Debug` or `Display` of these types prints them, and
//! librdkafka leaves `sasl.password` out of its own debug output.

use std::fmt;

use rdkafka::ClientConfig;

const PROTOCOL: &str = "TROUPE_KAFKA_SECURITY_PROTOCOL";
const MECHANISM: &str = "TROUPE_KAFKA_SASL_MECHANISM";
const USERNAME: &str = "TROUPE_KAFKA_SASL_USERNAME";
const PASSWORD: &str = "TROUPE_KAFKA_SASL_PASSWORD";
const CA: &str = "TROUPE_KAFKA_SSL_CA_LOCATION";
const CERTIFICATE: &str = "TROUPE_KAFKA_SSL_CERTIFICATE_LOCATION";
const KEY: &str = "TROUPE_KAFKA_SSL_KEY_LOCATION";
const REGISTRY_USERNAME: &str = "TROUPE_SCHEMA_REGISTRY_USERNAME";
const REGISTRY_PASSWORD: &str = "TROUPE_SCHEMA_REGISTRY_PASSWORD";
const REGISTRY_CA: &str = "TROUPE_SCHEMA_REGISTRY_CA_LOCATION";

/// A value that is never printed: its `Debug` is `[redacted]`, and it has no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the client setting that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A security setting that cannot work, named by its variable (one line, never a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SecurityError(String);

impl SecurityError {
    /// `message`, then `source` and its own causes, on one line.
    pub(crate) fn caused_by(
        mut message: String,
        mut source: Option<&(dyn std::error::Error + 'static)>,
    ) -> Self {
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Self(message)
    }
}

/// `TROUPE_KAFKA_SECURITY_PROTOCOL` (any case; default `plaintext`): librdkafka's
/// `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl Protocol {
    const ALL: [Protocol; 4] = [
        Protocol::Plaintext,
        Protocol::Ssl,
        Protocol::SaslPlaintext,
        Protocol::SaslSsl,
    ];

    /// librdkafka's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Plaintext => "plaintext",
            Protocol::Ssl => "ssl",
            Protocol::SaslPlaintext => "sasl_plaintext",
            Protocol::SaslSsl => "sasl_ssl",
        }
    }

    pub fn uses_sasl(self) -> bool {
        matches!(self, Protocol::SaslPlaintext | Protocol::SaslSsl)
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, Protocol::Ssl | Protocol::SaslSsl)
    }
}

/// `TROUPE_KAFKA_SASL_MECHANISM` (any case): the SASL mechanisms troupe supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl Mechanism {
    const ALL: [Mechanism; 3] = [
        Mechanism::Plain,
        Mechanism::ScramSha256,
        Mechanism::ScramSha512,
    ];

    /// librdkafka's (and Kafka's) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// SASL credentials: `TROUPE_KAFKA_SASL_USERNAME` and `TROUPE_KAFKA_SASL_PASSWORD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sasl {
    pub mechanism: Mechanism,
    pub username: String,
    pub password: Secret,
}

/// A client certificate for mutual TLS, both PEM files: `TROUPE_KAFKA_SSL_CERTIFICATE_LOCATION`
/// and `TROUPE_KAFKA_SSL_KEY_LOCATION` (an unencrypted private key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    pub certificate_location: String,
    pub key_location: String,
}

/// How every Kafka client of a process authenticates and encrypts. [`KafkaSecurity::apply`] is
/// the one place that puts it on a librdkafka configuration
/// ([`crate::config::KafkaConfig::client`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KafkaSecurity {
    pub protocol: Protocol,
    /// Set exactly when the protocol is `sasl_*`.
    pub sasl: Option<Sasl>,
    /// `TROUPE_KAFKA_SSL_CA_LOCATION`: the CA certificate(s) the brokers' certificates are
    /// checked against, a PEM file or directory (`ssl.ca.location`). Unset: the system's.
    pub ca_location: Option<String>,
    pub client_certificate: Option<ClientCertificate>,
}

impl KafkaSecurity {
    pub fn from_env() -> Result<Self, SecurityError> {
        Self::parse(|name| std::env::var(name).ok())
    }

    /// The settings `lookup` gives (a variable's value, if set); blank counts as unset.
    pub fn parse(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SecurityError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let protocol = match get(PROTOCOL) {
            None => Protocol::default(),
            Some(value) => one_of(PROTOCOL, &value, Protocol::ALL, Protocol::as_str)?,
        };
        let sasl = if protocol.uses_sasl() {
            let required = |name: &str| {
                get(name).ok_or_else(|| {
                    SecurityError(format!(
                        "{name} is required with {PROTOCOL}={}",
                        protocol.as_str()
                    ))
                })
            };
            let mechanism = one_of(
                MECHANISM,
                &required(MECHANISM)?,
                Mechanism::ALL,
                Mechanism::as_str,
            )?;
            Some(Sasl {
                mechanism,
                username: required(USERNAME)?,
                password: Secret(required(PASSWORD)?),
            })
        } else {
            unused_by(protocol, &get, &[MECHANISM, USERNAME, PASSWORD], "SASL")?;
            None
        };
        if !protocol.uses_tls() {
            unused_by(protocol, &get, &[CA, CERTIFICATE, KEY], "TLS")?;
        }
        let path = |name: &str| get(name).map(|v| v.trim().to_owned());
        let client_certificate = match (path(CERTIFICATE), path(KEY)) {
            (None, None) => None,
            (Some(certificate_location), Some(key_location)) => Some(ClientCertificate {
                certificate_location,
                key_location,
            }),
            (Some(_), None) => return Err(SecurityError(format!("{CERTIFICATE} needs {KEY}"))),
            (None, Some(_)) => return Err(SecurityError(format!("{KEY} needs {CERTIFICATE}"))),
        };
        Ok(Self {
            protocol,
            sasl,
            ca_location: path(CA),
            client_certificate,
        })
    }

    /// Puts these settings on a librdkafka configuration.
    pub fn apply(&self, config: &mut ClientConfig) {
        config.set("security.protocol", self.protocol.as_str());
        if let Some(sasl) = &self.sasl {
            config
                .set("sasl.mechanisms", sasl.mechanism.as_str())
                .set("sasl.username", &sasl.username)
                .set("sasl.password", sasl.password.expose());
        }
        if let Some(ca) = &self.ca_location {
            config.set("ssl.ca.location", ca);
        }
        if let Some(client) = &self.client_certificate {
            config
                .set("ssl.certificate.location", &client.certificate_location)
                .set("ssl.key.location", &client.key_location);
        }
    }
}

/// What a start-up log line may say: the protocol, the mechanism and user, the files.
impl fmt::Display for KafkaSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.protocol.as_str())?;
        if let Some(sasl) = &self.sasl {
            write!(f, " {} as {:?}", sasl.mechanism.as_str(), sasl.username)?;
        }
        if let Some(ca) = &self.ca_location {
            write!(f, ", CA {ca}")?;
        }
        if let Some(client) = &self.client_certificate {
            write!(f, ", client certificate {}", client.certificate_location)?;
        }
        Ok(())
    }
}

/// HTTP basic auth to the registry: `TROUPE_SCHEMA_REGISTRY_USERNAME` and
/// `TROUPE_SCHEMA_REGISTRY_PASSWORD`, sent with every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicAuth {
    pub username: String,
    pub password: Secret,
}

/// How the registry's clients authenticate and which CAs they trust.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegistrySecurity {
    pub basic_auth: Option<BasicAuth>,
    /// `TROUPE_SCHEMA_REGISTRY_CA_LOCATION`: a PEM file of CA certificates trusted for
    /// `https://` registries besides the system's.
    pub ca_location: Option<String>,
}

impl RegistrySecurity {
    pub fn from_env() -> Result<Self, SecurityError> {
        Self::parse(|name| std::env::var(name).ok())
    }

    /// The settings `lookup` gives; blank counts as unset.
    pub fn parse(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SecurityError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let basic_auth = match (get(REGISTRY_USERNAME), get(REGISTRY_PASSWORD)) {
            (None, None) => None,
            (Some(username), Some(password)) => Some(BasicAuth {
                username,
                password: Secret(password),
            }),
            (Some(_), None) => {
                return Err(SecurityError(format!(
                    "{REGISTRY_USERNAME} needs {REGISTRY_PASSWORD}"
                )))
            }
            (None, Some(_)) => {
                return Err(SecurityError(format!(
                    "{REGISTRY_PASSWORD} needs {REGISTRY_USERNAME}"
                )))
            }
        };
        Ok(Self {
            basic_auth,
            ca_location: get(REGISTRY_CA).map(|v| v.trim().to_owned()),
        })
    }

    /// The start of every HTTP client that talks to the registry (the codec's, through
    /// `schema_registry_converter`, and the CLI's): TLS trusting the CA file besides the
    /// system's roots. Basic auth goes on each request, from [`RegistrySecurity::basic_auth`].
    /// Reads the CA file.
    pub fn http_client(&self) -> Result<reqwest::ClientBuilder, SecurityError> {
        let builder = reqwest::Client::builder();
        let Some(path) = &self.ca_location else {
            return Ok(builder);
        };
        let pem = std::fs::read(path)
            .map_err(|e| SecurityError(format!("{REGISTRY_CA}: cannot read {path}: {e}")))?;
        let certificates = reqwest::tls::Certificate::from_pem_bundle(&pem)
            .ok()
            .filter(|certificates| !certificates.is_empty())
            .ok_or_else(|| SecurityError(format!("{REGISTRY_CA}: no PEM certificate in {path}")))?;
        Ok(builder.tls_certs_merge(certificates))
    }
}

/// The value of `name` among `choices`, in any case.
fn one_of<T: Copy>(
    name: &str,
    value: &str,
    choices: impl IntoIterator<Item = T>,
    label: fn(T) -> &'static str,
) -> Result<T, SecurityError> {
    let choices: Vec<T> = choices.into_iter().collect();
    choices
        .iter()
        .copied()
        .find(|choice| label(*choice).eq_ignore_ascii_case(value.trim()))
        .ok_or_else(|| {
            let known: Vec<&str> = choices.iter().map(|c| label(*c)).collect();
            SecurityError(format!(
                "{name}: unsupported value {:?} (expected one of {})",
                value.trim(),
                known.join(", ")
            ))
        })
}

/// Fails when any of `names` is set although `protocol` does not use `what`: a setting that
/// would be ignored is a mistake.
fn unused_by(
    protocol: Protocol,
    get: &dyn Fn(&str) -> Option<String>,
    names: &[&str],
    what: &str,
) -> Result<(), SecurityError> {
    match names.iter().copied().find(|&name| get(name).is_some()) {
        Some(name) => Err(SecurityError(format!(
            "{name} is set, but {PROTOCOL}={} does not use {what}",
            protocol.as_str()
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const SECRET: &str = "s3cr3t-Pa55";

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name: &str| map.get(name).cloned()
    }

    fn kafka(pairs: &[(&str, &str)]) -> Result<KafkaSecurity, SecurityError> {
        KafkaSecurity::parse(env(pairs))
    }

    fn error(pairs: &[(&str, &str)]) -> String {
        let message = kafka(pairs).expect_err("an error").to_string();
        assert!(!message.contains('\n'), "one line: {message}");
        assert!(!message.contains(SECRET), "the password leaked: {message}");
        message
    }

    /// What the chart sets with `kafka.sasl.enabled` and a CA.
    const CHART: [(&str, &str); 5] = [
        (PROTOCOL, "SASL_SSL"),
        (MECHANISM, "SCRAM-SHA-512"),
        (USERNAME, "troupe"),
        (PASSWORD, SECRET),
        (CA, "/etc/troupe-kafka-ca/ca.crt"),
    ];

    #[test]
    fn nothing_set_is_plaintext() {
        let security = kafka(&[(PROTOCOL, " ")]).unwrap();
        assert_eq!(security, KafkaSecurity::default());
        let mut config = ClientConfig::new();
        security.apply(&mut config);
        assert_eq!(config.get("security.protocol"), Some("plaintext"));
        assert_eq!(config.get("sasl.mechanisms"), None);
        assert_eq!(config.get("ssl.ca.location"), None);
    }

    #[test]
    fn the_charts_sasl_ssl_settings_reach_librdkafka() {
        let security = kafka(&CHART).unwrap();
        assert_eq!(security.protocol, Protocol::SaslSsl);
        let mut config = ClientConfig::new();
        security.apply(&mut config);
        assert_eq!(config.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(config.get("sasl.mechanisms"), Some("SCRAM-SHA-512"));
        assert_eq!(config.get("sasl.username"), Some("troupe"));
        assert_eq!(config.get("sasl.password"), Some(SECRET));
        assert_eq!(
            config.get("ssl.ca.location"),
            Some("/etc/troupe-kafka-ca/ca.crt")
        );
        assert_eq!(config.get("ssl.certificate.location"), None);
    }

    #[test]
    fn names_are_read_in_any_case() {
        let security = kafka(&[
            (PROTOCOL, "sasl_plaintext"),
            (MECHANISM, "scram-sha-256"),
            (USERNAME, "u"),
            (PASSWORD, "p"),
        ])
        .unwrap();
        assert_eq!(security.protocol, Protocol::SaslPlaintext);
        assert_eq!(security.sasl.unwrap().mechanism, Mechanism::ScramSha256);
        let plain = [
            (PROTOCOL, "Sasl_Ssl"),
            (MECHANISM, "plain"),
            (USERNAME, "u"),
            (PASSWORD, "p"),
        ];
        assert_eq!(
            kafka(&plain).unwrap().sasl.unwrap().mechanism,
            Mechanism::Plain
        );
    }

    #[test]
    fn mutual_tls_needs_both_files() {
        let security = kafka(&[
            (PROTOCOL, "ssl"),
            (CERTIFICATE, "/c/tls.crt"),
            (KEY, "/c/tls.key"),
        ])
        .unwrap();
        assert_eq!(security.sasl, None);
        let mut config = ClientConfig::new();
        security.apply(&mut config);
        assert_eq!(config.get("ssl.certificate.location"), Some("/c/tls.crt"));
        assert_eq!(config.get("ssl.key.location"), Some("/c/tls.key"));
        let message = error(&[(PROTOCOL, "ssl"), (CERTIFICATE, "/c/tls.crt")]);
        assert!(message.contains(KEY), "{message}");
        let message = error(&[(PROTOCOL, "ssl"), (KEY, "/c/tls.key")]);
        assert!(message.contains(CERTIFICATE), "{message}");
    }

    #[test]
    fn unknown_protocols_and_mechanisms_are_named() {
        let message = error(&[(PROTOCOL, "tls")]);
        assert!(message.starts_with(PROTOCOL), "{message}");
        assert!(
            message.contains("\"tls\"") && message.contains("sasl_ssl"),
            "{message}"
        );
        for mechanism in ["OAUTHBEARER", "GSSAPI", "SCRAM-SHA-1"] {
            let mut pairs = CHART;
            pairs[1] = (MECHANISM, mechanism);
            let message = error(&pairs);
            assert!(message.starts_with(MECHANISM), "{message}");
            assert!(message.contains(mechanism), "{message}");
        }
    }

    #[test]
    fn sasl_without_its_settings_names_the_missing_one() {
        for missing in [MECHANISM, USERNAME, PASSWORD] {
            let pairs: Vec<(&str, &str)> =
                CHART.into_iter().filter(|(k, _)| *k != missing).collect();
            let message = error(&pairs);
            assert!(message.starts_with(missing), "{message}");
            assert!(message.contains("sasl_ssl"), "{message}");
        }
    }

    #[test]
    fn settings_the_protocol_would_ignore_are_refused() {
        let message = error(&[(USERNAME, "u"), (PASSWORD, SECRET)]);
        assert!(
            message.contains(USERNAME) && message.contains("plaintext"),
            "{message}"
        );
        let message = error(&[(PROTOCOL, "ssl"), (PASSWORD, SECRET)]);
        assert!(message.contains(PASSWORD), "{message}");
        let mut pairs = CHART;
        pairs[0] = (PROTOCOL, "SASL_PLAINTEXT");
        let message = error(&pairs);
        assert!(message.contains(CA) && message.contains("TLS"), "{message}");
    }

    #[test]
    fn the_password_is_never_printed() {
        let security = kafka(&CHART).unwrap();
        let debug = format!("{security:?} {security:#?}");
        let display = security.to_string();
        for text in [&debug, &display] {
            assert!(!text.contains(SECRET), "the password leaked: {text}");
        }
        assert!(debug.contains("[redacted]"), "{debug}");
        assert_eq!(
            display,
            "sasl_ssl SCRAM-SHA-512 as \"troupe\", CA /etc/troupe-kafka-ca/ca.crt"
        );
        // Nor librdkafka's configuration, should it ever be logged.
        let mut config = ClientConfig::new();
        security.apply(&mut config);
        assert!(!format!("{config:?}").contains(SECRET));
    }

    #[test]
    fn registry_basic_auth_needs_both_halves_and_is_redacted() {
        let registry = RegistrySecurity::parse(env(&[
            (REGISTRY_USERNAME, "sr-user"),
            (REGISTRY_PASSWORD, SECRET),
            (REGISTRY_CA, " /etc/troupe-registry-ca/ca.crt "),
        ]))
        .unwrap();
        let auth = registry.basic_auth.as_ref().unwrap();
        assert_eq!(auth.username, "sr-user");
        assert_eq!(auth.password.expose(), SECRET);
        assert_eq!(
            registry.ca_location.as_deref(),
            Some("/etc/troupe-registry-ca/ca.crt")
        );
        let debug = format!("{registry:?}");
        assert!(
            !debug.contains(SECRET) && debug.contains("sr-user"),
            "{debug}"
        );
        assert_eq!(
            RegistrySecurity::parse(env(&[])).unwrap(),
            RegistrySecurity::default()
        );
        for (set, missing) in [
            (REGISTRY_USERNAME, REGISTRY_PASSWORD),
            (REGISTRY_PASSWORD, REGISTRY_USERNAME),
        ] {
            let message = RegistrySecurity::parse(env(&[(set, SECRET)]))
                .unwrap_err()
                .to_string();
            assert_eq!(message, format!("{set} needs {missing}"));
        }
    }
}
