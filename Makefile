# Everyday verbs. The two that matter on a fresh machine: `make demo` and `make test`.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

.PHONY: help up down status demo test lint fmt unit build image bench bench-saga chaos fuzz

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

up: ## bring the local stack up (installs what is missing on first use)
	@scripts/stack.sh up

down: ## stop the local stack and remove its data (logs stay in .troupe/logs)
	@scripts/stack.sh down

status: ## show what runs
	@scripts/stack.sh status

demo: ## the main job: stack up, processors running, orders through the saga, outcome
	@scripts/demo.sh

test: ## everything CI runs: fmt, clippy, unit and integration tests against the real stack
	@scripts/test.sh

lint: ## fmt check and clippy with warnings as errors
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

fmt: ## format the code
	cargo fmt --all

unit: ## unit tests only (no servers)
	cargo test --workspace --lib --bins --locked

bench: ## criterion benchmarks of the hot paths (the outbox one uses the local stack)
	cargo bench -p troupe-events -p troupe-order -p troupe-runtime

bench-saga: ## the saga under open-loop load against a bare pipe (release build, ~6 min)
	@scripts/stack.sh up
	cargo build --release --workspace --bins --locked
	@source .troupe/stack.env && "$${CARGO_TARGET_DIR:-target}/release/troupe" bench saga $(BENCH_ARGS)

chaos: ## the chaos soak: TROUPE_CHAOS_ROUNDS rounds of faults under load (default 20, ~1 min each)
	@scripts/stack.sh up
	cargo build --workspace --bins --tests --locked
	@source .troupe/stack.env && TROUPE_CHAOS_ROUNDS=$${TROUPE_CHAOS_ROUNDS:-20} cargo test -p troupe-e2e --test chaos --locked -- --nocapture

fuzz: ## every fuzz target for TROUPE_FUZZ_SECONDS each (default 600; make test runs 20 s each)
	@scripts/fuzz.sh $${TROUPE_FUZZ_SECONDS:-600}

build: ## build every binary
	cargo build --workspace --bins --locked

image: ## the container image (Containerfile) with podman, as localhost/troupe:dev; local bases on first use
	@scripts/image.sh
