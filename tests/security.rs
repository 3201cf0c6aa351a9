//! Kafka security in every process, against a real broker's SASL_SSL listener (a private stack's,
//! with a CA, a broker certificate and a SCRAM user that `scripts/stack.sh` makes for it): the
//! CLI logs in with SCRAM-SHA-512 and with PLAIN, and is refused with a wrong password or without
//! the CA; a whole saga runs with every processor on SASL_SSL; the password shows in no log and
//! no `/metrics`. And the schema registry behind a TLS, basic-auth proxy (nginx): the same, for
//! the registry's credentials and CA.

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::Duration;

use troupe_e2e::{text, PrivateStack, Saga, TempDir, SERVICES};
use troupe_testkit::{binary, repo_root, stack};

/// The client variables for the stack's SASL_SSL listener, with `mechanism`.
fn sasl_ssl(env: &BTreeMap<String, String>, mechanism: &str) -> Vec<(String, String)> {
    [
        (
            "TROUPE_KAFKA_BOOTSTRAP",
            env["TROUPE_STACK_KAFKA_SASL_SSL_BOOTSTRAP"].as_str(),
        ),
        ("TROUPE_KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
        ("TROUPE_KAFKA_SASL_MECHANISM", mechanism),
        (
            "TROUPE_KAFKA_SASL_USERNAME",
            env["TROUPE_STACK_KAFKA_SASL_USERNAME"].as_str(),
        ),
        (
            "TROUPE_KAFKA_SASL_PASSWORD",
            env["TROUPE_STACK_KAFKA_SASL_PASSWORD"].as_str(),
        ),
        (
            "TROUPE_KAFKA_SSL_CA_LOCATION",
            env["TROUPE_STACK_KAFKA_SASL_SSL_CA"].as_str(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// `troupe topics check` (which needs the broker) with the stack's variables and `vars`.
fn topics_check(stack: &BTreeMap<String, String>, vars: &[(String, String)]) -> Output {
    Command::new(binary("troupe"))
        .args(["topics", "check"])
        .current_dir(repo_root())
        .envs(stack)
        .env_remove("TROUPE_HOME")
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run troupe")
}

fn with(vars: &[(String, String)], name: &str, value: Option<&str>) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = vars.iter().filter(|(k, _)| k != name).cloned().collect();
    if let Some(value) = value {
        vars.push((name.to_owned(), value.to_owned()));
    }
    vars
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_process_works_over_sasl_ssl_and_never_shows_the_password() {
    let private = PrivateStack::new(Some("postgres kafka registry")).with_sasl_ssl();
    let plain = private.up();
    let env = private.env();
    let password = env["TROUPE_STACK_KAFKA_SASL_PASSWORD"].clone();
    assert!(password.len() >= 16, "a real password: {password:?}");

    // The CLI, with each mechanism, and refused when it should be.
    for mechanism in ["SCRAM-SHA-512", "PLAIN"] {
        let output = topics_check(&env, &sasl_ssl(&env, mechanism));
        assert!(output.status.success(), "{mechanism}: {}", text(&output));
    }
    let scram = sasl_ssl(&env, "SCRAM-SHA-512");
    let refusals = [
        (
            "a wrong password",
            with(
                &scram,
                "TROUPE_KAFKA_SASL_PASSWORD",
                Some("not-the-password"),
            ),
        ),
        (
            "no CA (the broker's certificate is not trusted)",
            with(&scram, "TROUPE_KAFKA_SSL_CA_LOCATION", None),
        ),
        (
            "plaintext to the SASL_SSL port",
            with(&scram, "TROUPE_KAFKA_SECURITY_PROTOCOL", Some("plaintext"))
                .into_iter()
                .filter(|(k, _)| {
                    !k.starts_with("TROUPE_KAFKA_SASL") && !k.starts_with("TROUPE_KAFKA_SSL")
                })
                .collect(),
        ),
    ];
    for (what, vars) in refusals {
        let output = topics_check(&env, &vars);
        let said = text(&output);
        assert!(!output.status.success(), "{what} was accepted: {said}");
        assert!(
            !said.contains(&password),
            "{what}: the password was printed: {said}"
        );
    }
    // A setting the protocol would ignore is refused at start, in one line.
    let output = topics_check(
        &env,
        &with(&scram, "TROUPE_KAFKA_SASL_MECHANISM", Some("GSSAPI")),
    );
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("TROUPE_KAFKA_SASL_MECHANISM"),
        "{}",
        text(&output)
    );

    // A saga with every processor (and the CLI placing orders) on the SASL_SSL listener; the
    // test's own admin and readers use the plaintext one.
    let settings: Vec<(&str, &str)> = scram
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let saga = Saga::start_on(&plain, &settings, &[]).await;
    saga.seed_stock(40, 3).await;
    let placed = saga.place(40, 3, 0);
    assert!(placed.status.success(), "{}", text(&placed));
    saga.settle(40, Duration::from_secs(120)).await;

    for service in SERVICES {
        let metrics = saga.metrics(service, 0).await;
        assert!(
            !metrics.contains(&password),
            "{service}'s /metrics shows the password"
        );
        let log = std::fs::read_to_string(saga.log_path(service, 0)).unwrap_or_default();
        assert!(
            !log.contains(&password),
            "{service}'s log shows the password"
        );
    }
}

/// nginx in front of the stack's registry, as deployments commonly put one: TLS with a
/// certificate from a CA made here, basic auth for one user. Stopped on drop.
struct RegistryProxy {
    dir: TempDir,
    nginx: std::process::Child,
    url: String,
    password: String,
}

impl RegistryProxy {
    fn start(registry: &str) -> Self {
        let dir = TempDir::new("registry-proxy");
        let d = dir.path().display().to_string();
        let sh = |script: &str| {
            let output = Command::new("sh")
                .args(["-ec", script])
                .current_dir(dir.path())
                .output()
                .expect("sh");
            assert!(output.status.success(), "{script}: {}", text(&output));
            String::from_utf8_lossy(&output.stdout).trim().to_owned()
        };
        sh(
            "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca \
              -keyout ca.key -out ca.crt 2>/dev/null
            openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout proxy.key \
              -out proxy.csr 2>/dev/null
            printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san
            openssl x509 -req -in proxy.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
              -extfile san -out proxy.crt 2>/dev/null
            mkdir -p temp && chmod 755 . temp && chmod 644 proxy.key",
        );
        let password = sh("openssl rand -hex 16");
        let hash = sh(&format!("openssl passwd -apr1 '{password}'"));
        std::fs::write(dir.path().join("htpasswd"), format!("troupe:{hash}\n")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let upstream = registry.trim_start_matches("http://");
        std::fs::write(
            dir.path().join("nginx.conf"),
            format!(
                "daemon off;\nuser root;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
                 events {{}}\nhttp {{\n access_log off;\n\
                 client_body_temp_path {d}/temp/body; proxy_temp_path {d}/temp/proxy;\n\
                 fastcgi_temp_path {d}/temp/fcgi; uwsgi_temp_path {d}/temp/uwsgi;\n\
                 scgi_temp_path {d}/temp/scgi;\n\
                 server {{\n  listen 127.0.0.1:{port} ssl;\n\
                 ssl_certificate {d}/proxy.crt; ssl_certificate_key {d}/proxy.key;\n\
                 location / {{ auth_basic registry; auth_basic_user_file {d}/htpasswd;\n\
                 proxy_pass http://{upstream}; }}\n }}\n}}\n"
            ),
        )
        .unwrap();
        let nginx = Command::new("/usr/sbin/nginx")
            .args(["-c", &format!("{d}/nginx.conf"), "-p", &d])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start nginx (scripts/tools.sh installs it)");
        let proxy = Self {
            dir,
            nginx,
            url: format!("https://127.0.0.1:{port}"),
            password,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "nginx did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        proxy
    }

    /// The client variables for the registry behind the proxy.
    fn vars(&self) -> Vec<(String, String)> {
        [
            ("TROUPE_SCHEMA_REGISTRY_URL", self.url.clone()),
            ("TROUPE_SCHEMA_REGISTRY_USERNAME", "troupe".to_owned()),
            ("TROUPE_SCHEMA_REGISTRY_PASSWORD", self.password.clone()),
            (
                "TROUPE_SCHEMA_REGISTRY_CA_LOCATION",
                self.dir.path().join("ca.crt").display().to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

impl Drop for RegistryProxy {
    fn drop(&mut self) {
        let _ = self.nginx.kill();
        let _ = self.nginx.wait();
    }
}

/// `troupe schemas check` (which reads every subject from the registry) with `vars`.
fn schemas_check(vars: &[(String, String)]) -> Output {
    Command::new(binary("troupe"))
        .args(["schemas", "check"])
        .current_dir(repo_root())
        .envs(stack().vars())
        .env_remove("TROUPE_HOME")
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run troupe")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_registry_is_reached_over_tls_with_basic_auth() {
    let proxy = RegistryProxy::start(&stack().schema_registry_url);
    let vars = proxy.vars();
    let output = schemas_check(&vars);
    assert!(output.status.success(), "{}", text(&output));
    let refusals = [
        (
            "a wrong password",
            with(
                &vars,
                "TROUPE_SCHEMA_REGISTRY_PASSWORD",
                Some("not-the-password"),
            ),
        ),
        ("no credentials", {
            let none = with(&vars, "TROUPE_SCHEMA_REGISTRY_PASSWORD", None);
            with(&none, "TROUPE_SCHEMA_REGISTRY_USERNAME", None)
        }),
        (
            "no CA (the proxy's certificate is not trusted)",
            with(&vars, "TROUPE_SCHEMA_REGISTRY_CA_LOCATION", None),
        ),
    ];
    for (what, vars) in refusals {
        let output = schemas_check(&vars);
        let said = text(&output);
        assert!(!output.status.success(), "{what} was accepted: {said}");
        assert!(
            !said.contains(&proxy.password),
            "{what}: the password was printed"
        );
    }

    // Every processor decodes through the proxy (schemas by id); the CLI encodes through it.
    let settings: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let saga = Saga::start(&settings).await;
    saga.seed_stock(30, 5).await;
    let placed = saga.place(30, 5, 0);
    assert!(placed.status.success(), "{}", text(&placed));
    saga.settle(30, Duration::from_secs(120)).await;
    for service in SERVICES {
        let metrics = saga.metrics(service, 0).await;
        assert!(
            !metrics.contains(&proxy.password),
            "{service}'s /metrics shows the password"
        );
        let log = std::fs::read_to_string(saga.log_path(service, 0)).unwrap_or_default();
        assert!(
            !log.contains(&proxy.password),
            "{service}'s log shows the password"
        );
    }
}
