-- Where each event of an order was read and what caused it: `troupe trace ORDER`.
CREATE TABLE IF NOT EXISTS event_trace (
    event_id     uuid PRIMARY KEY,
    order_id     uuid NOT NULL,
    causation_id uuid,
    position     text NOT NULL
);
CREATE INDEX IF NOT EXISTS event_trace_by_order ON event_trace (order_id);
