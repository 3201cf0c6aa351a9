-- The saga tracker lists orders without an outcome by how long they have been idle.
CREATE INDEX IF NOT EXISTS order_summary_open
    ON order_summary (status, updated_at)
    WHERE status NOT IN ('CONFIRMED', 'CANCELLED', 'REJECTED');
