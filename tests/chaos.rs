//! The chaos soak: rounds of open-loop load, each with one fault injected while orders flow,
//! and after each round a check of every invariant from the databases alone (every order
//! terminal once, stock conserved, money balanced, no shipment of a cancelled order, outboxes
//! drained, no choreography violation).
//!
//! Faults, in turn: kill -9 of a random processor instance; the broker stopped and started;
//! PostgreSQL stopped and started; an instance frozen (SIGSTOP) past its session timeout, then
//! thawed (SIGCONT); a service scaled from 2 instances to 4 and back. Two instances of every service run, so a
//! frozen or killed one has a survivor to take its partitions.
//!
//! `make test` runs one round of each (`TROUPE_CHAOS_ROUNDS`, default 5); `make chaos` runs
//! more and prints the table that `docs/reliability.md` quotes. It runs on a private stack, so
//! the server restarts disturb no other test.

use std::process::Command;
use std::time::{Duration, Instant};

use troupe_e2e::{finish, PrivateStack, Saga, SERVICES, TIMERS};

/// One fault, injected while a round's orders are being placed.
#[derive(Debug, Clone, Copy)]
enum Fault {
    Kill9,
    BrokerRestart,
    PostgresRestart,
    Freeze,
    ScaleOutAndIn,
}

const FAULTS: [Fault; 5] = [
    Fault::Kill9,
    Fault::BrokerRestart,
    Fault::PostgresRestart,
    Fault::Freeze,
    Fault::ScaleOutAndIn,
];

/// The session timeout the saga's processors use (the harness's), and how long a frozen
/// instance stays frozen: past it, so the group gives its partitions away.
const SESSION: Duration = Duration::from_secs(6);
const FROZEN: Duration = Duration::from_secs(9);

/// A small xorshift, seeded: the same rounds every run.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % sides as u64) as usize
    }
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{name} {pid}");
}

/// Injects `fault`; returns what it did, for the round's line.
async fn inject(fault: Fault, saga: &Saga, private: &PrivateStack, dice: &mut Dice) -> String {
    let service = SERVICES[dice.roll(SERVICES.len())];
    let number = dice.roll(2);
    match fault {
        Fault::Kill9 => {
            saga.kill9(service, number);
            saga.spawn(service, number);
            format!("kill -9 {service}-{number}, restarted at once")
        }
        Fault::BrokerRestart => {
            private.must("stop kafka");
            private.must("start kafka");
            "broker stopped and started".into()
        }
        Fault::PostgresRestart => {
            private.must("stop postgres");
            private.must("start postgres");
            "PostgreSQL stopped and started".into()
        }
        Fault::Freeze => {
            let pid = saga.pid(service, number);
            signal(pid, "STOP");
            tokio::time::sleep(FROZEN).await;
            signal(pid, "CONT");
            format!(
                "{service}-{number} frozen {}s (session {}s), then thawed",
                FROZEN.as_secs(),
                SESSION.as_secs()
            )
        }
        Fault::ScaleOutAndIn => {
            for extra in [2, 3] {
                saga.spawn(service, extra);
            }
            for extra in [2, 3] {
                saga.wait_healthy(service, extra).await;
            }
            for extra in [2, 3] {
                saga.stop(service, extra).await;
            }
            format!("{service} scaled 2 → 4 → 2 instances")
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rounds_of_faults_under_load_keep_every_invariant() {
    let rounds: usize = std::env::var("TROUPE_CHAOS_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(FAULTS.len());
    let per_round: u64 = 150;
    let private = PrivateStack::new(Some("postgres kafka registry"));
    let stack = private.up();
    let saga = Saga::start_on(&stack, &TIMERS, &[]).await;
    for service in SERVICES {
        saga.spawn(service, 1);
    }
    for service in SERVICES {
        saga.wait_healthy(service, 1).await;
    }
    let mut dice = Dice(0xC4A05);
    let mut table = Vec::new();
    for round in 0..rounds {
        let seed = 700 + round as u64;
        saga.seed_stock(per_round, seed).await;
        let started = Instant::now();
        // The storefront waits out a broker restart, as a real one would retry.
        let placing = saga.place_in_background(
            per_round,
            seed,
            50,
            &[("TROUPE_PRODUCE_TIMEOUT_MS", "180000")],
        );
        // Into the round, with orders in flight.
        tokio::time::sleep(Duration::from_millis(1000 + dice.roll(1000) as u64)).await;
        let fault = FAULTS[round % FAULTS.len()];
        let what = inject(fault, &saga, &private, &mut dice).await;
        finish(placing).await;
        let expected = per_round as usize * (round + 1);
        let snapshot = saga.settle(expected, Duration::from_secs(240)).await;
        let line = format!(
            "round {:>2}  {:<60} orders {:>5}  settled in {:>5.1}s  violations 0",
            round + 1,
            what,
            snapshot.orders.len(),
            started.elapsed().as_secs_f64()
        );
        println!("{line}");
        table.push(line);
    }
    println!(
        "chaos soak: {rounds} rounds, {} orders, every invariant held after each\n{}",
        per_round as usize * rounds,
        table.join("\n")
    );
}
