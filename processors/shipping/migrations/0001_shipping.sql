-- What shipping knows of each order: where it goes (from OrderPlaced), whether it is paid
-- (PaymentAuthorized), whether it was cancelled (OrderCancelled) — these arrive on different
-- topics in any order — and the shipment made of it.
CREATE TABLE shipments (
    order_id       UUID PRIMARY KEY,
    correlation_id UUID NOT NULL,
    country        TEXT,
    paid           BOOLEAN NOT NULL DEFAULT false,
    cancelled      BOOLEAN NOT NULL DEFAULT false,
    status         TEXT,                  -- NULL | SCHEDULED | FAILED | CANCELLED
    shipment_id    TEXT,
    carrier        TEXT,
    last_event_id  UUID NOT NULL
);
