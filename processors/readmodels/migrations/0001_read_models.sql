-- The read models kept in PostgreSQL. One database per copy (troupe_readmodels_<copy>), so a
-- rebuild fills a fresh copy while the live one serves.

-- One row per order. status only moves to a higher status_rank; every other column is set
-- once; steps maps step → time (ms), first time wins.
CREATE TABLE order_summary (
    order_id      uuid PRIMARY KEY,
    customer_id   text,
    status        text,
    status_rank   integer NOT NULL DEFAULT -1,
    lines         jsonb,
    currency      text,
    total_minor   bigint,
    reason        text,
    detail        text,
    steps         jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at    bigint NOT NULL,
    last_position text
);
CREATE INDEX order_summary_by_customer ON order_summary (customer_id);

-- Every event of an order, keyed by event id.
CREATE TABLE timeline (
    order_id    uuid NOT NULL,
    event_id    uuid NOT NULL,
    occurred_at bigint NOT NULL,
    event_type  text NOT NULL,
    service     text NOT NULL,
    detail      text NOT NULL,
    PRIMARY KEY (order_id, event_id)
);

-- Stock per sku, and the events already applied to it (deltas are applied once).
CREATE TABLE stock (
    sku       text PRIMARY KEY,
    available bigint NOT NULL,
    reserved  bigint NOT NULL,
    sold      bigint NOT NULL
);
CREATE TABLE stock_applied (
    event_id uuid NOT NULL,
    sku      text NOT NULL,
    PRIMARY KEY (event_id, sku)
);

-- Analytics facts, keyed so a replay adds nothing: confirmed lines per order and sku, one
-- cancellation per order.
CREATE TABLE sales (
    order_id      uuid NOT NULL,
    sku           text NOT NULL,
    day           text NOT NULL,
    units         bigint NOT NULL,
    revenue_minor bigint NOT NULL,
    PRIMARY KEY (order_id, sku)
);
CREATE TABLE cancellations (
    order_id uuid PRIMARY KEY,
    day      text NOT NULL,
    reason   text NOT NULL
);

-- The next offset to read of every partition applied: what read-your-writes waits on.
CREATE TABLE positions (
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (topic, partition)
);
