-- One row per order: its status and what the saga has learnt about it so far.
CREATE TABLE orders (
    order_id       UUID PRIMARY KEY,
    correlation_id UUID NOT NULL,
    customer_id    TEXT NOT NULL,
    status         TEXT NOT NULL,       -- PLACED | CONFIRMED | CANCELLED | REJECTED
    reason         TEXT,                -- cancellation reason symbol, or the rejection reason
    detail         TEXT,
    total          BIGINT NOT NULL,     -- minor units
    currency       TEXT NOT NULL,
    reserved       BOOLEAN NOT NULL DEFAULT false,
    paid           BOOLEAN NOT NULL DEFAULT false,
    shipment_id    TEXT,
    placed_at      BIGINT NOT NULL,
    finished_at    BIGINT
);
CREATE INDEX orders_status ON orders (status);
