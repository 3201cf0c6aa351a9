#!/usr/bin/env bash
# `make demo`: the main job. Brings the local stack up, starts the five saga processors, the
# read-model projector and the query API (reusing any already running), places a mixed batch of
# orders, prints the outcome of each per terminal state and reason, then reads one customer's
# order back through the query API.
#
#   DEMO_ORDERS (default 500)   how many orders
#   DEMO_RATE   (default 200)   orders per second (open loop)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
ORDERS=${DEMO_ORDERS:-500}
RATE=${DEMO_RATE:-200}
SERVICES=(order inventory payment shipping notification projector)

scripts/stack.sh up
# shellcheck disable=SC1091
source "${TROUPE_HOME:-$ROOT/.troupe}/stack.env"
RUN=$TROUPE_HOME/run
LOGS=$TROUPE_HOME/logs
BIN=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug

printf '\n== building the processors\n'
cargo build --quiet --bins -p troupe-order -p troupe-inventory -p troupe-payment -p troupe-shipping \
  -p troupe-notification -p troupe-readmodels -p troupe-cli

printf '\n== starting the saga processors and the read-model projector\n'
port=29101
for service in "${SERVICES[@]}"; do
  pid_file=$RUN/$service.pid
  if [[ -f $pid_file ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
    echo "$service      reusing pid $(cat "$pid_file")"
  else
    # Demo timers: a reservation waits 10 s for payment, a payment review takes 15 s.
    TROUPE_RESERVATION_TTL_MS=10000 TROUPE_PAYMENT_REVIEW_MS=15000 \
      TROUPE_INSTANCE=$service-0 \
      TROUPE_METRICS_LISTEN=127.0.0.1:$port RUST_LOG=${RUST_LOG:-info} \
      TROUPE_READMODEL_COPY=${TROUPE_READMODEL_COPY:-a} \
      setsid nohup "$BIN/troupe-$service" >>"$LOGS/$service.log" 2>&1 </dev/null &
    echo $! >"$pid_file"
    echo "$port" >"$RUN/$service.port"
    echo "$service      started, metrics on http://127.0.0.1:$port/metrics"
  fi
  port=$((port + 1))
done
for service in "${SERVICES[@]}"; do
  metrics_port=$(cat "$RUN/$service.port")
  deadline=$((SECONDS + 60))
  until curl -fsS "http://127.0.0.1:$metrics_port/health" >/dev/null 2>&1; do
    kill -0 "$(cat "$RUN/$service.pid")" 2>/dev/null ||
      { echo "demo: $service exited: $(tail -n 1 "$LOGS/$service.log")" >&2; exit 1; }
    ((SECONDS < deadline)) || { echo "demo: $service not healthy after 60 s (see $LOGS/$service.log)" >&2; exit 1; }
    sleep 0.2
  done
done

QUERY_PORT=${TROUPE_QUERY_PORT:-28090}
export TROUPE_QUERY_URL=http://127.0.0.1:$QUERY_PORT
if [[ -f $RUN/query.pid ]] && kill -0 "$(cat "$RUN/query.pid")" 2>/dev/null; then
  echo "query        reusing pid $(cat "$RUN/query.pid")"
else
  # No TROUPE_READMODEL_COPY: it serves whichever copy is live and follows rebuilds.
  TROUPE_QUERY_LISTEN=127.0.0.1:$QUERY_PORT RUST_LOG=${RUST_LOG:-info} \
    setsid nohup "$BIN/troupe-query" >>"$LOGS/query.log" 2>&1 </dev/null &
  echo $! >"$RUN/query.pid"
  echo "query        started on $TROUPE_QUERY_URL (OpenAPI: $TROUPE_QUERY_URL/openapi.json)"
fi
deadline=$((SECONDS + 60))
until curl -fsS "$TROUPE_QUERY_URL/health" >/dev/null 2>&1; do
  kill -0 "$(cat "$RUN/query.pid")" 2>/dev/null ||
    { echo "demo: the query API exited: $(tail -n 1 "$LOGS/query.log")" >&2; exit 1; }
  ((SECONDS < deadline)) || { echo "demo: the query API not up after 60 s (see $LOGS/query.log)" >&2; exit 1; }
  sleep 0.2
done

seed=$(date +%s)
printf '\n== adding the stock %s orders need\n' "$ORDERS"
stock_line=$("$BIN/troupe" produce --orders "$ORDERS" --seed "$seed" --stock-only)
echo "$stock_line"
units=$(sed -n 's/.*(\([0-9]*\) units).*/\1/p' <<<"$stock_line")
inventory_db=$TROUPE_POSTGRES_URL/troupe_inventory
already=$(psql "$inventory_db" -Atc "SELECT coalesce(sum(adjusted), 0) FROM stock" 2>/dev/null || echo 0)
deadline=$((SECONDS + 60))
# Stock travels on its own topic: wait until the inventory applied it before placing orders.
until (( $(psql "$inventory_db" -Atc "SELECT coalesce(sum(adjusted), 0) FROM stock" 2>/dev/null || echo 0) >= units )); do
  ((SECONDS < deadline)) || { echo "demo: inventory did not apply the stock in 60 s (had $already)" >&2; exit 1; }
  sleep 0.2
done

printf '\n== placing %s orders at %s/s, then waiting for every outcome\n' "$ORDERS" "$RATE"
"$BIN/troupe" produce --orders "$ORDERS" --rate "$RATE" --seed "$seed" --no-stock --wait 120

printf '\n== the read models: customer cust-0, through the query API\n'
deadline=$((SECONDS + 60))
until "$BIN/troupe" orders list --customer cust-0 --limit 1 --json 2>/dev/null | grep -q order_id; do
  ((SECONDS < deadline)) || { echo "demo: the read models did not show cust-0's order in 60 s (see $LOGS/projector.log)" >&2; exit 1; }
  sleep 0.5
done
"$BIN/troupe" orders list --customer cust-0 --limit 3
order=$("$BIN/troupe" orders list --customer cust-0 --limit 1 --json | sed -n 's/.*"order_id": "\([0-9a-f-]*\)".*/\1/p' | head -n 1)
echo
"$BIN/troupe" orders show "$order"

printf '\n== the stack\n'
scripts/stack.sh status || true
printf '\nProcessors and the query API keep running (make down stops everything). Query API: %s; metrics: %s; logs: %s\n' \
  "$TROUPE_QUERY_URL" "$TROUPE_PROMETHEUS_URL" "$LOGS"
