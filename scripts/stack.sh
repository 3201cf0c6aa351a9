#!/usr/bin/env bash
# The local stack: a Kafka-protocol broker (tansu), PostgreSQL, troupe-registry, a CQL server
# (troupe-cql) and Prometheus, all on 127.0.0.1, all state under $TROUPE_HOME (.troupe/).
#
#   scripts/stack.sh up       start what is not running (reuses what runs), apply topics.yaml,
#                             register the schemas, write $TROUPE_HOME/stack.env
#   scripts/stack.sh down     stop everything started from $TROUPE_HOME and remove its data
#   scripts/stack.sh status   one line per component; exit 1 unless all run (--quiet: no output)
#
# Every knob is an environment variable (see docs/local-stack.md). A failure prints one line
# naming the component and exits non-zero.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TROUPE_HOME=${TROUPE_HOME:-$ROOT/.troupe}
TOOLS=${TROUPE_TOOLS_DIR:-$HOME/.cache/troupe/tools}
TANSU_VERSION=0.6.0

KAFKA_PORT=${TROUPE_KAFKA_PORT:-29092}
REGISTRY_PORT=${TROUPE_REGISTRY_PORT:-28081}
POSTGRES_PORT=${TROUPE_POSTGRES_PORT:-25432}
CQL_PORT=${TROUPE_CQL_PORT:-29042}
PROMETHEUS_PORT=${TROUPE_PROMETHEUS_PORT:-29090}
START_TIMEOUT=${TROUPE_START_TIMEOUT:-60}

RUN=$TROUPE_HOME/run
LOGS=$TROUPE_HOME/logs
COMPONENTS=(postgres kafka registry cql prometheus)

die() {
  echo "stack: $*" >&2
  exit 1
}
say() { [[ ${QUIET:-0} == 1 ]] || echo "$@"; }

port_of() {
  case $1 in
    postgres) echo "$POSTGRES_PORT" ;;
    kafka) echo "$KAFKA_PORT" ;;
    registry) echo "$REGISTRY_PORT" ;;
    cql) echo "$CQL_PORT" ;;
    prometheus) echo "$PROMETHEUS_PORT" ;;
    *) cat "$RUN/$1.port" 2>/dev/null || echo "-" ;;
  esac
}

# The pid recorded for a component, if that process still runs.
live_pid() {
  local file=$RUN/$1.pid pid
  [[ -f $file ]] || return 1
  pid=$(head -n 1 "$file")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Who holds a listening port, for the error message.
port_owner() {
  ss -ltnpH "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\("[^"]*"\),pid=\([0-9]*\).*/\1 pid \2/p' | head -n 1
}

last_log_line() {
  local log=$LOGS/$1.log
  [[ -s $log ]] || { echo "no output"; return; }
  grep -v '^[[:space:]]*$' "$log" | tail -n 1 | cut -c1-300
}

# Waits until `check` succeeds; fails with the component's last log line if its process dies.
wait_healthy() {
  local name=$1 check=$2 deadline=$((SECONDS + START_TIMEOUT)) pid
  while ((SECONDS < deadline)); do
    if eval "$check" >/dev/null 2>&1; then return 0; fi
    if [[ $name != postgres ]] && ! pid=$(live_pid "$name"); then
      die "$name: exited during start-up: $(last_log_line "$name")"
    fi
    sleep 0.1
  done
  die "$name: not healthy after ${START_TIMEOUT}s (see $LOGS/$name.log): $(last_log_line "$name")"
}

ensure_port_free() {
  local name=$1 port=$2 owner
  if port_open "$port"; then
    owner=$(port_owner "$port")
    die "$name: port $port is already in use${owner:+ by $owner}; stop it or set TROUPE_${name^^}_PORT"
  fi
}

# Starts a command in its own session, recording its pid.
start_bg() {
  local name=$1
  shift
  : >"$LOGS/$name.log"
  setsid nohup "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
}

as_root() { [[ $(id -u) == 0 ]]; }

apt_install() {
  local name=$1 package=$2
  as_root || die "$name: $package is not installed; run: sudo apt-get install -y $package"
  say "installing $package from Debian's packages (first run only)"
  {
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$package" ||
      { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$package"; }
  } >>"$LOGS/install-$package.log" 2>&1 ||
    die "$name: install failed (apt-get install $package): $(tail -n 1 "$LOGS/install-$package.log")"
}

pg_bin() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [[ -n $dir && -x $dir/initdb ]] && echo "$dir"
}

# --- components -------------------------------------------------------------------------

up_postgres() {
  local bin data=$TROUPE_HOME/postgres run_as=() pid
  if pid=$(pg_pid) && pg_isready -q -h 127.0.0.1 -p "$POSTGRES_PORT"; then
    say "postgres   reusing pid $pid on 127.0.0.1:$POSTGRES_PORT"
    return
  fi
  ensure_port_free postgres "$POSTGRES_PORT"
  bin=$(pg_bin) || { apt_install postgres postgresql; bin=$(pg_bin) || die "postgres: no initdb after install"; }
  if as_root; then
    id postgres >/dev/null 2>&1 || die "postgres: there is no postgres user to run the server as"
    run_as=(runuser -u postgres --)
    # PostgreSQL refuses to run as root; its data must be reachable by the postgres user. When
    # $TROUPE_HOME is not (a clone under /root, say), the data lives under /var/tmp instead.
    if ! runuser -u postgres -- test -x "$TROUPE_HOME"; then
      local elsewhere
      elsewhere=/var/tmp/troupe-postgres-$(echo -n "$TROUPE_HOME" | md5sum | cut -c1-12)
      mkdir -p "$elsewhere"
      [[ -L $data ]] || { rm -rf "$data"; ln -s "$elsewhere" "$data"; }
      data=$elsewhere
    fi
  fi
  if [[ ! -s $data/PG_VERSION ]]; then
    mkdir -p "$data"
    chmod 700 "$data"
    as_root && chown postgres: "$data"
    "${run_as[@]}" "$bin/initdb" -D "$data" -U troupe --auth=trust -E UTF8 --no-locale \
      >>"$LOGS/postgres.log" 2>&1 || die "postgres: initdb failed: $(last_log_line postgres)"
  fi
  # The server writes its log inside the data directory, which the postgres user can always
  # reach; `down` copies it to $LOGS before removing the data.
  "${run_as[@]}" "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t "$START_TIMEOUT" \
    -o "-p $POSTGRES_PORT -h 127.0.0.1 -k '' -c max_connections=400 -c shared_buffers=256MB" \
    start >>"$LOGS/postgres.log" 2>&1 ||
    die "postgres: did not start: $(tail -n 1 "$data/server.log" 2>/dev/null || last_log_line postgres)"
  wait_healthy postgres "pg_isready -q -h 127.0.0.1 -p $POSTGRES_PORT"
  head -n 1 "$data/postmaster.pid" >"$RUN/postgres.pid"
  say "postgres   started on 127.0.0.1:$POSTGRES_PORT"
}

pg_pid() {
  local data=$TROUPE_HOME/postgres pid
  [[ -f $data/postmaster.pid ]] || return 1
  pid=$(head -n 1 "$data/postmaster.pid")
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

install_tansu() {
  local tansu=$TOOLS/bin/tansu
  if [[ -x $tansu ]] && "$tansu" --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
    return
  fi
  say "building tansu $TANSU_VERSION from crates.io into $TOOLS (first run only: about 20 minutes on 2 cores)"
  mkdir -p "$TOOLS"
  cargo install --locked --quiet --root "$TOOLS" tansu --version "$TANSU_VERSION" \
    --no-default-features --features dynostore >>"$LOGS/install-tansu.log" 2>&1 ||
    die "kafka: install failed (cargo install tansu $TANSU_VERSION): $(tail -n 1 "$LOGS/install-tansu.log")"
}

up_kafka() {
  local pid
  if pid=$(live_pid kafka) && port_open "$KAFKA_PORT"; then
    say "kafka      reusing pid $pid on 127.0.0.1:$KAFKA_PORT (tansu, memory engine)"
    return
  fi
  ensure_port_free kafka "$KAFKA_PORT"
  install_tansu
  start_bg kafka "$TOOLS/bin/tansu" broker \
    --cluster-id troupe-local \
    --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --storage-engine "memory://tansu/"
  wait_healthy kafka "port_open $KAFKA_PORT"
  say "kafka      started on 127.0.0.1:$KAFKA_PORT (tansu $TANSU_VERSION, memory engine)"
}

target_dir() {
  cargo metadata --format-version 1 --no-deps --manifest-path "$ROOT/Cargo.toml" 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])'
}

build_binaries() {
  [[ -n ${BIN:-} ]] && return
  if [[ -n ${TROUPE_BIN_DIR:-} ]]; then
    BIN=$TROUPE_BIN_DIR
    return
  fi
  say "building troupe binaries (cargo build)"
  (cd "$ROOT" && cargo build --quiet -p troupe-registry -p troupe-cql -p troupe-cli) \
    >>"$LOGS/build.log" 2>&1 || die "build: cargo build failed: $(grep -m1 '^error' "$LOGS/build.log" || tail -n 1 "$LOGS/build.log")"
  BIN=$(target_dir)/debug
}

up_registry() {
  local pid
  if pid=$(live_pid registry) && curl -fsS "http://127.0.0.1:$REGISTRY_PORT/health" >/dev/null 2>&1; then
    say "registry   reusing pid $pid on http://127.0.0.1:$REGISTRY_PORT"
    return
  fi
  ensure_port_free registry "$REGISTRY_PORT"
  build_binaries
  TROUPE_REGISTRY_LISTEN=127.0.0.1:$REGISTRY_PORT \
    TROUPE_POSTGRES_URL=postgres://troupe@127.0.0.1:$POSTGRES_PORT \
    start_bg registry "$BIN/troupe-registry"
  wait_healthy registry "curl -fsS http://127.0.0.1:$REGISTRY_PORT/health"
  say "registry   started on http://127.0.0.1:$REGISTRY_PORT (troupe-registry)"
}

up_cql() {
  local pid
  if pid=$(live_pid cql) && port_open "$CQL_PORT"; then
    say "cql        reusing pid $pid on 127.0.0.1:$CQL_PORT"
    return
  fi
  ensure_port_free cql "$CQL_PORT"
  build_binaries
  TROUPE_CQL_LISTEN=127.0.0.1:$CQL_PORT start_bg cql "$BIN/troupe-cql"
  wait_healthy cql "port_open $CQL_PORT"
  say "cql        started on 127.0.0.1:$CQL_PORT (troupe-cql, in memory)"
}

write_prometheus_config() {
  local dir=$TROUPE_HOME/prometheus
  mkdir -p "$dir/targets" "$dir/data"
  cat >"$dir/prometheus.yml" <<EOF
# Written by scripts/stack.sh. Processors add themselves as files under targets/.
global:
  scrape_interval: 5s
  evaluation_interval: 5s
scrape_configs:
  - job_name: troupe
    file_sd_configs:
      - files: ['$dir/targets/*.json']
        refresh_interval: 5s
EOF
  cat >"$dir/targets/prometheus.json" <<EOF
[{"targets": ["127.0.0.1:$PROMETHEUS_PORT"], "labels": {"component": "prometheus"}}]
EOF
}

up_prometheus() {
  local pid prom
  if pid=$(live_pid prometheus) && curl -fsS "http://127.0.0.1:$PROMETHEUS_PORT/-/ready" >/dev/null 2>&1; then
    say "prometheus reusing pid $pid on http://127.0.0.1:$PROMETHEUS_PORT"
    return
  fi
  ensure_port_free prometheus "$PROMETHEUS_PORT"
  prom=$(command -v prometheus || true)
  if [[ -z $prom ]]; then
    apt_install prometheus prometheus
    prom=$(command -v prometheus) || die "prometheus: no prometheus binary after install"
  fi
  write_prometheus_config
  start_bg prometheus "$prom" \
    --config.file="$TROUPE_HOME/prometheus/prometheus.yml" \
    --storage.tsdb.path="$TROUPE_HOME/prometheus/data" \
    --storage.tsdb.retention.time=2d \
    --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" \
    --web.enable-lifecycle
  wait_healthy prometheus "curl -fsS http://127.0.0.1:$PROMETHEUS_PORT/-/ready"
  say "prometheus started on http://127.0.0.1:$PROMETHEUS_PORT"
}

write_env() {
  cat >"$TROUPE_HOME/stack.env.tmp" <<EOF
# Written by scripts/stack.sh up; source it to reach the local stack.
export TROUPE_HOME=$TROUPE_HOME
export TROUPE_KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_PORT
export TROUPE_SCHEMA_REGISTRY_URL=http://127.0.0.1:$REGISTRY_PORT
export TROUPE_POSTGRES_URL=postgres://troupe@127.0.0.1:$POSTGRES_PORT
export TROUPE_SCYLLA_NODES=127.0.0.1:$CQL_PORT
export TROUPE_PROMETHEUS_URL=http://127.0.0.1:$PROMETHEUS_PORT
# tansu holds every fetch for about fetch.wait.max.ms even when data waits (docs/benchmarks.md).
export TROUPE_KAFKA_FETCH_WAIT_MS=10
EOF
  mv "$TROUPE_HOME/stack.env.tmp" "$TROUPE_HOME/stack.env"
}

apply_topology() {
  [[ ${TROUPE_SKIP_TOPOLOGY:-0} == 1 ]] && return
  build_binaries
  # shellcheck disable=SC1091
  (
    source "$TROUPE_HOME/stack.env"
    cd "$ROOT"
    "$BIN/troupe" topics apply >>"$LOGS/topology.log" 2>&1 ||
      die "kafka: troupe topics apply failed: $(tail -n 1 "$LOGS/topology.log")"
    "$BIN/troupe" schemas register >>"$LOGS/topology.log" 2>&1 ||
      die "registry: troupe schemas register failed: $(tail -n 1 "$LOGS/topology.log")"
  )
  say "topology   topics.yaml applied, schemas registered (details: $LOGS/topology.log)"
}

cmd_up() {
  mkdir -p "$RUN" "$LOGS"
  up_postgres
  up_kafka
  up_registry
  up_cql
  up_prometheus
  write_env
  apply_topology
  say "stack is up; addresses in $TROUPE_HOME/stack.env"
}

stop_pid() {
  local name=$1 pid=$2 deadline
  kill -TERM "$pid" 2>/dev/null || return 0
  deadline=$((SECONDS + 15))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    say "$name: did not stop within 15s; killed"
  fi
}

cmd_down() {
  [[ -d $TROUPE_HOME ]] || { say "nothing to stop"; return; }
  local file name pid bin data=$TROUPE_HOME/postgres
  # Processors and anything else started from this stack first, then the servers.
  for file in "$RUN"/*.pid; do
    [[ -f $file ]] || continue
    name=$(basename "$file" .pid)
    [[ " ${COMPONENTS[*]} " == *" $name "* ]] && continue
    if pid=$(live_pid "$name"); then stop_pid "$name" "$pid"; fi
  done
  for name in prometheus cql registry kafka; do
    if pid=$(live_pid "$name"); then stop_pid "$name" "$pid"; fi
  done
  if pid=$(pg_pid) && bin=$(pg_bin); then
    if as_root; then
      runuser -u postgres -- "$bin/pg_ctl" -D "$(readlink -f "$data")" -m fast -w stop >/dev/null 2>&1 || stop_pid postgres "$pid"
    else
      "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || stop_pid postgres "$pid"
    fi
  fi
  [[ -f $data/server.log ]] && cat "$data/server.log" >>"$LOGS/postgres.log"
  [[ -L $data ]] && rm -rf "$(readlink -f "$data")"
  rm -rf "$RUN" "$data" "$TROUPE_HOME/prometheus" "$TROUPE_HOME/stack.env"
  say "stack is down; logs kept in $LOGS"
}

cmd_status() {
  local name pid state all=0 address
  for name in "${COMPONENTS[@]}"; do
    if [[ $name == postgres ]]; then pid=$(pg_pid || true); else pid=$(live_pid "$name" || true); fi
    address=127.0.0.1:$(port_of "$name")
    if [[ -z $pid ]]; then
      state=stopped
      all=1
    elif ! port_open "$(port_of "$name")"; then
      state="running, not listening"
      all=1
    else
      state=running
    fi
    say "$(printf '%-11s %-24s %-8s %s' "$name" "$address" "${pid:--}" "$state")"
  done
  for file in "$RUN"/*.pid; do
    [[ -f $file ]] || continue
    name=$(basename "$file" .pid)
    [[ " ${COMPONENTS[*]} " == *" $name "* ]] && continue
    pid=$(live_pid "$name" || true)
    if [[ -n $pid ]]; then state=running; else state=stopped; fi
    say "$(printf '%-12s %-23s %-8s %s' "$name" "metrics :$(port_of "$name")" "${pid:--}" "$state")"
  done
  return $all
}

main() {
  local command=${1:-}
  [[ ${2:-} == --quiet ]] && QUIET=1
  case $command in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    *) die "usage: scripts/stack.sh up|down|status [--quiet]" ;;
  esac
}

main "$@"
