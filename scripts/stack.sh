#!/usr/bin/env bash
# The local stack: Apache Kafka (KRaft, one node), PostgreSQL, troupe-registry, Apache Cassandra
# (the CQL server standing in for ScyllaDB), Prometheus (with troupe's alert rules) and the lag
# exporter (`troupe lag export`), as plain processes on 127.0.0.1, all
# state under $TROUPE_HOME (.troupe/). Kafka and Cassandra come from Maven Central, PostgreSQL
# and Prometheus from Debian's packages; all of it is installed on first use.
#
#   scripts/stack.sh up            start what is not running (reuses what runs), apply
#                                  topics.yaml, register the schemas, write $TROUPE_HOME/stack.env
#   scripts/stack.sh down          stop everything started from $TROUPE_HOME and remove its data
#   scripts/stack.sh status        one line per component; exit 1 unless all run (--quiet)
#   scripts/stack.sh stop NAME     stop one server, keeping its data (kafka, postgres, ...)
#   scripts/stack.sh start NAME    start it again on that data
#
# TROUPE_STACK_COMPONENTS picks a subset (default: all), for a second stack that needs only a
# broker and a database, say. Every knob is an environment variable (see docs/local-stack.md). A
# failure prints one line naming the component and exits non-zero.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TROUPE_HOME=${TROUPE_HOME:-$ROOT/.troupe}
TOOLS=${TROUPE_TOOLS_DIR:-$HOME/.cache/troupe/tools}

KAFKA_PORT=${TROUPE_KAFKA_PORT:-29092}
KAFKA_CONTROLLER_PORT=${TROUPE_KAFKA_CONTROLLER_PORT:-29093}
KAFKA_HEAP=${TROUPE_KAFKA_HEAP:-512m}
# A SASL_SSL listener besides the plaintext one, off unless a port is given (docs/local-stack.md).
KAFKA_SASL_SSL_PORT=${TROUPE_KAFKA_SASL_SSL_PORT:-}
KAFKA_SASL_USER=troupe
REGISTRY_PORT=${TROUPE_REGISTRY_PORT:-28081}
POSTGRES_PORT=${TROUPE_POSTGRES_PORT:-25432}
CASSANDRA_PORT=${TROUPE_CASSANDRA_PORT:-29042}
CASSANDRA_STORAGE_PORT=${TROUPE_CASSANDRA_STORAGE_PORT:-29043}
CASSANDRA_HEAP=${TROUPE_CASSANDRA_HEAP:-1g}
PROMETHEUS_PORT=${TROUPE_PROMETHEUS_PORT:-29090}
EXPORTER_PORT=${TROUPE_EXPORTER_PORT:-29308}
START_TIMEOUT=${TROUPE_START_TIMEOUT:-90}

RUN=$TROUPE_HOME/run
LOGS=$TROUPE_HOME/logs
ALL_COMPONENTS=(postgres kafka registry cassandra prometheus exporter)
read -r -a COMPONENTS <<<"${TROUPE_STACK_COMPONENTS:-${ALL_COMPONENTS[*]}}"

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
    cassandra) echo "$CASSANDRA_PORT" ;;
    prometheus) echo "$PROMETHEUS_PORT" ;;
    exporter) echo "$EXPORTER_PORT" ;;
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
  local name=$1 port=$2 variable=${3:-${1^^}_PORT} owner
  if port_open "$port"; then
    owner=$(port_owner "$port")
    die "$name: port $port is already in use${owner:+ by $owner}; stop it or set TROUPE_$variable"
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

# --- the JVM servers: Apache Kafka and Apache Cassandra, from Maven Central ----------------

java_bin() {
  if [[ -n ${TROUPE_JAVA:-} ]]; then
    echo "$TROUPE_JAVA"
  elif [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/java ]]; then
    echo "$JAVA_HOME/bin/java"
  else
    command -v java
  fi
}

ensure_jdk() {
  local name=$1
  if ! java_bin >/dev/null; then
    apt_install "$name" openjdk-17-jre-headless
  fi
  command -v mvn >/dev/null || apt_install "$name" maven
}

# Resolves scripts/servers/<name>/pom.xml into a folder of jars under $TOOLS, once per version of
# that pom (its hash names the folder), and prints the folder.
install_server() {
  local name=$1 pom=$ROOT/scripts/servers/$1/pom.xml key dir
  key=$(sha256sum "$pom" | cut -c1-12)
  dir=$TOOLS/$name-$key
  if [[ ! -f $dir/complete ]]; then
    ensure_jdk "$name"
    say "fetching $name from Maven Central into $dir (first run only)" >&2
    rm -rf "$dir"
    mkdir -p "$dir"
    cp "$pom" "$dir/pom.xml"
    (cd "$dir" && mvn -B -q -Dmaven.repo.local="$TOOLS/m2" -Dlibdir="$dir/lib" package) \
      >>"$LOGS/install-$name.log" 2>&1 ||
      die "$name: fetching from Maven Central failed (mvn package $pom): $(grep -m1 ERROR "$LOGS/install-$name.log" || tail -n 1 "$LOGS/install-$name.log")"
    rm -rf "$dir/target"
    touch "$dir/complete"
  fi
  echo "$dir/lib"
}

# Copies a template from scripts/servers/, replacing @NAME@ placeholders by the given values.
render() {
  local from=$1 to=$2 script=()
  shift 2
  while (($#)); do
    script+=(-e "s|@$1@|$2|g")
    shift 2
  done
  sed "${script[@]}" "$ROOT/scripts/servers/$from" >"$to"
}

# A Kafka cluster id: 16 random bytes, base64url without padding (what `kafka-storage.sh
# random-uuid` prints), made here to save a JVM start. Like Kafka's own, never one starting
# with "-": the storage tool would read it as an option (1 start in 64 failed that way).
kafka_cluster_id() {
  python3 -c '
import base64, uuid
while True:
    id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not id.startswith("-"):
        print(id)
        break
'
}

kafka_started() {
  port_open "$KAFKA_PORT" && grep -q 'Kafka Server started' "$LOGS/kafka.log"
}

up_kafka() {
  local pid lib dir=$TROUPE_HOME/kafka java
  if pid=$(live_pid kafka) && port_open "$KAFKA_PORT"; then
    say "kafka      reusing pid $pid on 127.0.0.1:$KAFKA_PORT"
    return
  fi
  ensure_port_free kafka "$KAFKA_PORT" KAFKA_PORT
  ensure_port_free kafka "$KAFKA_CONTROLLER_PORT" KAFKA_CONTROLLER_PORT
  lib=$(install_server kafka)
  java=$(java_bin)
  mkdir -p "$dir/data"
  render kafka/server.properties "$dir/server.properties" \
    PORT "$KAFKA_PORT" CONTROLLER_PORT "$KAFKA_CONTROLLER_PORT" DATA "$dir/data"
  local scram=()
  if [[ -n $KAFKA_SASL_SSL_PORT ]]; then
    ensure_port_free kafka "$KAFKA_SASL_SSL_PORT" KAFKA_SASL_SSL_PORT
    kafka_tls "$dir/tls"
    render kafka/sasl_ssl.properties "$dir/sasl_ssl.properties" PORT "$KAFKA_PORT" \
      SASL_SSL_PORT "$KAFKA_SASL_SSL_PORT" CONTROLLER_PORT "$KAFKA_CONTROLLER_PORT" \
      USER "$KAFKA_SASL_USER" PASSWORD "$(cat "$dir/tls/password")" TLS "$dir/tls"
    cat "$dir/sasl_ssl.properties" >>"$dir/server.properties"
    scram=(--add-scram "SCRAM-SHA-512=[name=$KAFKA_SASL_USER,password=$(cat "$dir/tls/password")]")
  fi
  # Format once; a stopped broker starts again on the data it had (`stop kafka`, `start kafka`).
  if [[ ! -f $dir/data/meta.properties ]]; then
    "$java" -Xmx256m -cp "$lib/*" -Dlog4j2.configurationFile="$ROOT/scripts/servers/kafka/log4j2.yaml" \
      kafka.tools.StorageTool format -t "$(kafka_cluster_id)" -c "$dir/server.properties" "${scram[@]}" \
      >>"$LOGS/kafka-format.log" 2>&1 ||
      die "kafka: formatting $dir/data failed: $(last_log_line kafka-format)"
  fi
  # The flags of Kafka's own launch script (G1, short pauses), with an explicit heap.
  start_bg kafka "$java" -Xms"$KAFKA_HEAP" -Xmx"$KAFKA_HEAP" \
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$ROOT/scripts/servers/kafka/log4j2.yaml" \
    -Dkafka.logs.dir="$LOGS" \
    -cp "$lib/*" kafka.Kafka "$dir/server.properties"
  wait_healthy kafka kafka_started
  say "kafka      started on 127.0.0.1:$KAFKA_PORT (Apache Kafka, KRaft, heap $KAFKA_HEAP)${KAFKA_SASL_SSL_PORT:+, SASL_SSL on 127.0.0.1:$KAFKA_SASL_SSL_PORT}"
}

# The SASL_SSL listener's material, made once per stack in $1: a CA, the broker's key and
# certificate (for 127.0.0.1 and localhost) signed by it as one PEM keystore, and the password
# of the one SASL user.
kafka_tls() {
  local tls=$1
  [[ -f $tls/broker.pem ]] && return
  mkdir -p "$tls"
  {
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=troupe-local-ca \
      -keyout "$tls/ca.key" -out "$tls/ca.crt" &&
      openssl req -newkey rsa:2048 -nodes -subj /CN=localhost \
        -keyout "$tls/broker.key" -out "$tls/broker.csr" &&
      openssl x509 -req -in "$tls/broker.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" \
        -CAcreateserial -days 3650 -out "$tls/broker.crt" \
        -extfile <(printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n')
  } >>"$LOGS/kafka-tls.log" 2>&1 || die "kafka: making the TLS certificates failed: $(last_log_line kafka-tls)"
  cat "$tls/broker.key" "$tls/broker.crt" >"$tls/broker.pem"
  head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$tls/password"
  chmod 600 "$tls"/*.key "$tls/broker.pem" "$tls/password"
}

up_cassandra() {
  local pid lib dir=$TROUPE_HOME/cassandra java options
  if pid=$(live_pid cassandra) && port_open "$CASSANDRA_PORT"; then
    say "cassandra  reusing pid $pid on 127.0.0.1:$CASSANDRA_PORT"
    return
  fi
  ensure_port_free cassandra "$CASSANDRA_PORT" CASSANDRA_PORT
  ensure_port_free cassandra "$CASSANDRA_STORAGE_PORT" CASSANDRA_STORAGE_PORT
  lib=$(install_server cassandra)
  java=$(java_bin)
  mkdir -p "$dir/conf" "$dir/data"
  render cassandra/cassandra.yaml "$dir/conf/cassandra.yaml" \
    PORT "$CASSANDRA_PORT" STORAGE_PORT "$CASSANDRA_STORAGE_PORT" DATA "$dir/data"
  mapfile -t options < <(grep '^-' "$ROOT/scripts/servers/cassandra/jvm17.options")
  # No gossip to wait for on one node: the ring settles at once.
  start_bg cassandra "$java" -Xms"$CASSANDRA_HEAP" -Xmx"$CASSANDRA_HEAP" \
    -XX:+UseG1GC -XX:MaxGCPauseMillis=300 -XX:+ParallelRefProcEnabled -XX:+ExitOnOutOfMemoryError \
    "${options[@]}" \
    -javaagent:"$(ls "$lib"/jamm-*.jar | head -n 1)" \
    -Dcassandra.config="file://$dir/conf/cassandra.yaml" \
    -Dcassandra-foreground=yes \
    -Dcassandra.storagedir="$dir/data" \
    -Dcassandra.logdir="$LOGS" \
    -Dlogback.configurationFile="$ROOT/scripts/servers/cassandra/logback.xml" \
    -Dcassandra.skip_wait_for_gossip_to_settle=0 \
    -Dcassandra.ring_delay_ms=100 \
    -cp "$dir/conf:$lib/*" org.apache.cassandra.service.CassandraDaemon
  wait_healthy cassandra "port_open $CASSANDRA_PORT"
  say "cassandra  started on 127.0.0.1:$CASSANDRA_PORT (Apache Cassandra, CQL v4, heap $CASSANDRA_HEAP)"
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
  (cd "$ROOT" && cargo build --quiet -p troupe-registry -p troupe-cli) \
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

write_prometheus_config() {
  local dir=$TROUPE_HOME/prometheus
  mkdir -p "$dir/targets" "$dir/data"
  cat >"$dir/prometheus.yml" <<EOF
# Written by scripts/stack.sh. Processors add themselves as files under targets/.
global:
  scrape_interval: 5s
  evaluation_interval: 5s
# troupe's alert rules, evaluated here as in production (no Alertmanager: see /alerts).
rule_files: ['$ROOT/observability/alerts.yml']
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

# `troupe lag export`: every group's lag as the broker sees it, scraped by Prometheus (it
# registers itself under targets/). It reads the topology, so it starts after topics apply.
up_exporter() {
  local pid
  if pid=$(live_pid exporter) && curl -fsS "http://127.0.0.1:$EXPORTER_PORT/health" >/dev/null 2>&1; then
    say "exporter   reusing pid $pid on http://127.0.0.1:$EXPORTER_PORT/metrics"
    return
  fi
  ensure_port_free exporter "$EXPORTER_PORT"
  build_binaries
  [[ -f $TROUPE_HOME/stack.env ]] || write_env
  # shellcheck disable=SC1091
  (
    source "$TROUPE_HOME/stack.env"
    cd "$ROOT"
    start_bg exporter "$BIN/troupe" lag export --listen "127.0.0.1:$EXPORTER_PORT"
  )
  wait_healthy exporter "curl -fsS http://127.0.0.1:$EXPORTER_PORT/health"
  say "exporter   started on http://127.0.0.1:$EXPORTER_PORT/metrics (troupe lag export)"
}

write_env() {
  cat >"$TROUPE_HOME/stack.env.tmp" <<EOF
# Written by scripts/stack.sh up; source it to reach the local stack.
export TROUPE_HOME=$TROUPE_HOME
export TROUPE_KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_PORT
export TROUPE_SCHEMA_REGISTRY_URL=http://127.0.0.1:$REGISTRY_PORT
export TROUPE_POSTGRES_URL=postgres://troupe@127.0.0.1:$POSTGRES_PORT
export TROUPE_SCYLLA_NODES=127.0.0.1:$CASSANDRA_PORT
export TROUPE_PROMETHEUS_URL=http://127.0.0.1:$PROMETHEUS_PORT
EOF
  if [[ -n $KAFKA_SASL_SSL_PORT && -f $TROUPE_HOME/kafka/tls/password ]]; then
    # Where the SASL_SSL listener is and how to log in: what a client sets as
    # TROUPE_KAFKA_BOOTSTRAP, _SSL_CA_LOCATION, _SASL_USERNAME and _SASL_PASSWORD.
    cat >>"$TROUPE_HOME/stack.env.tmp" <<EOF
export TROUPE_STACK_KAFKA_SASL_SSL_BOOTSTRAP=127.0.0.1:$KAFKA_SASL_SSL_PORT
export TROUPE_STACK_KAFKA_SASL_SSL_CA=$TROUPE_HOME/kafka/tls/ca.crt
export TROUPE_STACK_KAFKA_SASL_USERNAME=$KAFKA_SASL_USER
export TROUPE_STACK_KAFKA_SASL_PASSWORD=$(cat "$TROUPE_HOME/kafka/tls/password")
EOF
  fi
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

selected() { [[ " ${COMPONENTS[*]} " == *" $1 "* ]]; }

cmd_up() {
  mkdir -p "$RUN" "$LOGS"
  local name
  for name in "${ALL_COMPONENTS[@]}"; do
    [[ $name == exporter ]] && continue
    selected "$name" && "up_$name"
  done
  write_env
  if selected kafka && selected registry; then apply_topology; fi
  if selected exporter && selected kafka; then up_exporter; fi
  say "stack is up; addresses in $TROUPE_HOME/stack.env"
}

stop_pid() {
  local name=$1 pid=$2 deadline
  kill -TERM "$pid" 2>/dev/null || return 0
  deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    say "$name: did not stop within 30s; killed"
  fi
}

stop_postgres() {
  local pid bin data=$TROUPE_HOME/postgres
  pid=$(pg_pid) || return 0
  bin=$(pg_bin) || { stop_pid postgres "$pid"; return 0; }
  if as_root; then
    runuser -u postgres -- "$bin/pg_ctl" -D "$(readlink -f "$data")" -m fast -w stop >/dev/null 2>&1 || stop_pid postgres "$pid"
  else
    "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || stop_pid postgres "$pid"
  fi
}

# Stops one component, keeping its data: SIGTERM (Kafka shuts down in a controlled way,
# Cassandra drains), SIGKILL after 30 s.
stop_component() {
  local name=$1 pid
  if [[ $name == postgres ]]; then
    stop_postgres
  elif pid=$(live_pid "$name"); then
    stop_pid "$name" "$pid"
  fi
  rm -f "$RUN/$name.pid"
}

cmd_stop() {
  local name=${1:-}
  [[ " ${ALL_COMPONENTS[*]} " == *" $name "* ]] || die "usage: scripts/stack.sh stop ${ALL_COMPONENTS[*]// /|}"
  stop_component "$name"
  say "$name stopped; its data is kept (scripts/stack.sh start $name)"
}

cmd_start() {
  local name=${1:-}
  [[ " ${ALL_COMPONENTS[*]} " == *" $name "* ]] || die "usage: scripts/stack.sh start ${ALL_COMPONENTS[*]// /|}"
  mkdir -p "$RUN" "$LOGS"
  "up_$name"
}

cmd_down() {
  [[ -d $TROUPE_HOME ]] || { say "nothing to stop"; return; }
  local file name pid data=$TROUPE_HOME/postgres
  # Processors and anything else started from this stack first, then the servers.
  for file in "$RUN"/*.pid; do
    [[ -f $file ]] || continue
    name=$(basename "$file" .pid)
    [[ " ${ALL_COMPONENTS[*]} " == *" $name "* ]] && continue
    if pid=$(live_pid "$name"); then stop_pid "$name" "$pid"; fi
  done
  for name in exporter prometheus cassandra registry kafka; do
    # Their data goes too, so a clean shutdown buys nothing: Kafka and Cassandra are killed.
    if pid=$(live_pid "$name"); then
      case $name in
        kafka | cassandra) kill -KILL "$pid" 2>/dev/null || true ;;
        *) stop_pid "$name" "$pid" ;;
      esac
    fi
  done
  stop_postgres
  [[ -f $data/server.log ]] && cat "$data/server.log" >>"$LOGS/postgres.log"
  [[ -L $data ]] && rm -rf "$(readlink -f "$data")"
  rm -rf "$RUN" "$data" "$TROUPE_HOME/kafka" "$TROUPE_HOME/cassandra" "$TROUPE_HOME/prometheus" \
    "$TROUPE_HOME/stack.env"
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
    [[ " ${ALL_COMPONENTS[*]} " == *" $name "* ]] && continue
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
    stop) cmd_stop "${2:-}" ;;
    start) cmd_start "${2:-}" ;;
    *) die "usage: scripts/stack.sh up|down|status [--quiet] | stop NAME | start NAME" ;;
  esac
}

main "$@"
