//! Running a deployment's instances as local processes.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Deployment, Process};

/// Why an instance could not be started, stopped or reached.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("{binary} is not built (looked in {dir})")]
    NotBuilt { binary: String, dir: String },
    #[error("cannot start {what}: {source}")]
    Start {
        what: String,
        source: std::io::Error,
    },
    #[error("{what} exited during start-up ({status}): {last_words}")]
    Exited {
        what: String,
        status: String,
        last_words: String,
    },
    #[error("{what} is not healthy after {seconds} s (log: {log})")]
    NotHealthy {
        what: String,
        seconds: u64,
        log: String,
    },
    #[error("{what} did not stop within {seconds} s of SIGTERM")]
    DidNotStop { what: String, seconds: u64 },
    #[error("{what} died ({status}): {last_words}")]
    Died {
        what: String,
        status: String,
        last_words: String,
    },
    #[error("there is no instance {0}")]
    NoInstance(String),
}

/// One running instance.
#[derive(Debug)]
pub struct Instance {
    pub process: Process,
    pub number: usize,
    /// Its metrics port (the query API: its HTTP port).
    pub port: u16,
    pid: u32,
    /// `None` when it was reused from an earlier, detached launch.
    child: Option<Child>,
}

impl Instance {
    fn label(&self) -> String {
        format!("{}-{}", self.process.name(), self.number)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the parenthesised command name; a zombie has exited.
    stat.rsplit(')')
        .next()
        .and_then(|rest| rest.split_whitespace().next())
        .is_some_and(|state| state != "Z")
}

/// The last non-empty line of a log, for an error message.
pub fn last_line(path: &Path) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| {
            text.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(|l| l.chars().take(300).collect())
        })
        .unwrap_or_else(|| "no output".into())
}

impl Deployment {
    /// The log of instance `number` of `process`.
    pub fn log_path(&self, name: &str, number: usize) -> PathBuf {
        self.spec.logs.join(format!("{name}-{number}.log"))
    }

    fn record(&self, name: &str, number: usize) -> Option<(PathBuf, PathBuf)> {
        let dir = self.spec.detached.as_ref()?;
        let stem = if number == 0 {
            name.to_owned()
        } else {
            format!("{name}-{number}")
        };
        Some((
            dir.join(format!("{stem}.pid")),
            dir.join(format!("{stem}.port")),
        ))
    }

    /// Starts instance `number` of `process` with extra variables (replacing an instance of
    /// the same name that exited). A detached deployment reuses one that runs already.
    /// Returns its port.
    pub fn spawn(
        &self,
        process: Process,
        number: usize,
        extra: &[(&str, &str)],
    ) -> Result<u16, DeployError> {
        self.spawn_on(process, number, extra, None)
    }

    /// As [`Deployment::spawn`], on `port` when given (a free one otherwise).
    pub fn spawn_on(
        &self,
        process: Process,
        number: usize,
        extra: &[(&str, &str)],
        port: Option<u16>,
    ) -> Result<u16, DeployError> {
        let name = process.name().to_owned();
        if let Some((pid_file, port_file)) = self.record(&name, number) {
            let pid = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|t| t.trim().parse::<u32>().ok());
            let port = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|t| t.trim().parse::<u16>().ok());
            if let (Some(pid), Some(port)) = (pid, port) {
                if alive(pid) {
                    self.keep(Instance {
                        process,
                        number,
                        port,
                        pid,
                        child: None,
                    });
                    return Ok(port);
                }
            }
        }
        let binary = self.spec.bin_dir.join(process.binary());
        if !binary.exists() {
            return Err(DeployError::NotBuilt {
                binary: process.binary(),
                dir: self.spec.bin_dir.display().to_string(),
            });
        }
        let what = format!("{name}-{number}");
        let start = |source| DeployError::Start {
            what: what.clone(),
            source,
        };
        let port = match port {
            Some(port) => port,
            None => free_port().map_err(start)?,
        };
        std::fs::create_dir_all(&self.spec.logs).map_err(start)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(&name, number))
            .map_err(start)?;
        let mut command = Command::new(&binary);
        command
            .env_remove("TROUPE_HOME")
            .envs(self.environment(&process, number, port))
            .envs(extra.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if self.spec.detached.is_some() {
            // Its own process group: it outlives this launcher, and `make down` stops it.
            command.process_group(0);
        }
        let child = command.spawn().map_err(start)?;
        let pid = child.id();
        if let Some((pid_file, port_file)) = self.record(&name, number) {
            std::fs::write(&pid_file, pid.to_string()).map_err(start)?;
            std::fs::write(&port_file, port.to_string()).map_err(start)?;
        }
        self.keep(Instance {
            process,
            number,
            port,
            pid,
            child: Some(child),
        });
        Ok(port)
    }

    fn keep(&self, instance: Instance) {
        let mut instances = self.instances.lock().expect("instances");
        instances.retain(|i| {
            !(i.process.name() == instance.process.name() && i.number == instance.number)
        });
        instances.push(instance);
    }

    fn with<T>(
        &self,
        name: &str,
        number: usize,
        f: impl FnOnce(&mut Instance) -> T,
    ) -> Result<T, DeployError> {
        let mut instances = self.instances.lock().expect("instances");
        instances
            .iter_mut()
            .find(|i| i.process.name() == name && i.number == number)
            .map(f)
            .ok_or_else(|| DeployError::NoInstance(format!("{name}-{number}")))
    }

    /// The port of instance `number` of `name`.
    pub fn port(&self, name: &str, number: usize) -> Result<u16, DeployError> {
        self.with(name, number, |i| i.port)
    }

    /// The pid of instance `number` of `name`.
    pub fn pid_of(&self, name: &str, number: usize) -> Result<u32, DeployError> {
        self.with(name, number, |i| i.pid)
    }

    /// The pids of every instance started or reused.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.instances
            .lock()
            .expect("instances")
            .iter()
            .map(|i| (i.label(), i.pid))
            .collect()
    }

    /// The instances still running, as (process name, number).
    pub fn running(&self) -> Vec<(String, usize)> {
        let mut instances = self.instances.lock().expect("instances");
        instances
            .iter_mut()
            .filter_map(|i| {
                let running = match &mut i.child {
                    Some(child) => matches!(child.try_wait(), Ok(None)),
                    None => alive(i.pid),
                };
                running.then(|| (i.process.name().to_owned(), i.number))
            })
            .collect()
    }

    /// Fails when an instance has exited, naming it with its last log line.
    pub fn check_alive(&self) -> Result<(), DeployError> {
        let mut instances = self.instances.lock().expect("instances");
        for instance in instances.iter_mut() {
            if let Some(child) = &mut instance.child {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(DeployError::Died {
                        what: instance.label(),
                        status: status.to_string(),
                        last_words: last_line(
                            &self.log_path(instance.process.name(), instance.number),
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// Waits until instance `number` of `name` answers `/health`; fails at once if it exits.
    pub async fn wait_healthy(
        &self,
        name: &str,
        number: usize,
        timeout: Duration,
    ) -> Result<(), DeployError> {
        let port = self.port(name, number)?;
        let url = format!("http://127.0.0.1:{port}/health");
        let what = format!("{name}-{number}");
        let deadline = Instant::now() + timeout;
        loop {
            let exited = self.with(name, number, |i| match &mut i.child {
                Some(child) => child.try_wait().ok().flatten().map(|s| s.to_string()),
                None => (!alive(i.pid)).then(|| "gone".to_owned()),
            })?;
            if let Some(status) = exited {
                return Err(DeployError::Exited {
                    what,
                    status,
                    last_words: last_line(&self.log_path(name, number)),
                });
            }
            if let Ok(response) = reqwest::get(&url).await {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(DeployError::NotHealthy {
                    what,
                    seconds: timeout.as_secs(),
                    log: self.log_path(name, number).display().to_string(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts instance 0 of each of `processes` and waits until all are healthy.
    pub async fn start(&self, processes: &[Process], timeout: Duration) -> Result<(), DeployError> {
        for process in processes {
            self.spawn(process.clone(), 0, &[])?;
        }
        for process in processes {
            self.wait_healthy(process.name(), 0, timeout).await?;
        }
        Ok(())
    }

    /// Stops instance `number` of `name` as Kubernetes does: SIGTERM, then waits for it to
    /// exit (it finishes its batch, commits, leaves its group and drains its outbox).
    pub async fn stop(
        &self,
        name: &str,
        number: usize,
        timeout: Duration,
    ) -> Result<(), DeployError> {
        let pid = self.with(name, number, |i| i.pid)?;
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let deadline = Instant::now() + timeout;
        loop {
            let gone = self.with(name, number, |i| match &mut i.child {
                Some(child) => matches!(child.try_wait(), Ok(Some(_))),
                None => !alive(i.pid),
            })?;
            if gone {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(DeployError::DidNotStop {
                    what: format!("{name}-{number}"),
                    seconds: timeout.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills instance `number` of `name` with SIGKILL: no shutdown, no flush.
    pub fn kill9(&self, name: &str, number: usize) -> Result<(), DeployError> {
        self.with(name, number, |i| match &mut i.child {
            Some(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            None => {
                let _ = Command::new("kill")
                    .args(["-KILL", &i.pid.to_string()])
                    .status();
            }
        })
    }

    /// The text of instance `number`'s `/metrics`.
    pub async fn metrics(&self, name: &str, number: usize) -> Result<String, reqwest::Error> {
        let port = self.port(name, number).unwrap_or(0);
        reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await?
            .text()
            .await
    }
}

impl Drop for Deployment {
    /// Kills what this launcher started, unless it is detached.
    fn drop(&mut self) {
        if self.spec.detached.is_some() {
            return;
        }
        if let Ok(mut instances) = self.instances.lock() {
            for instance in instances.iter_mut() {
                if let Some(child) = &mut instance.child {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
    }
}
