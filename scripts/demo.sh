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

scripts/stack.sh up
# shellcheck disable=SC1091
source "${TROUPE_HOME:-$ROOT/.troupe}/stack.env"
RUN=$TROUPE_HOME/run
LOGS=$TROUPE_HOME/logs
BIN=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug

printf '\n== building the processors\n'
cargo build --quiet --bins -p troupe-order -p troupe-inventory -p troupe-payment -p troupe-shipping \
  -p troupe-notification -p troupe-readmodels -p troupe-cli

printf '\n== starting the saga processors, the read-model projector and the query API\n'
QUERY_PORT=${TROUPE_QUERY_PORT:-28090}
export TROUPE_QUERY_URL=http://127.0.0.1:$QUERY_PORT
# Demo timers: a reservation waits 10 s for payment, a payment review takes 15 s. The query API
# serves whichever copy is live and follows rebuilds.
RUST_LOG=${RUST_LOG:-info} "$BIN/troupe" deploy start --query-port "$QUERY_PORT" \
  --set TROUPE_RESERVATION_TTL_MS=10000 --set TROUPE_PAYMENT_REVIEW_MS=15000 \
  --set "RUST_LOG=${RUST_LOG:-info}"

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

printf '\n== what caused what: troupe trace %s\n' "$order"
"$BIN/troupe" trace "$order"

printf '\n== consumer lag, as the broker sees it (troupe lag)\n'
"$BIN/troupe" lag

printf '\n== the saga tracker (troupe sagas stalled)\n'
"$BIN/troupe" sagas stalled

printf '\n== the stack\n'
scripts/stack.sh status || true
printf '\nProcessors and the query API keep running (make down stops everything). Query API: %s; metrics: %s; logs: %s\n' \
  "$TROUPE_QUERY_URL" "$TROUPE_PROMETHEUS_URL" "$LOGS"
