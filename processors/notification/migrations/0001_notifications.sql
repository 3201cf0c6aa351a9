-- At most one message per order, by construction.
CREATE TABLE notifications (
    order_id        UUID PRIMARY KEY,
    notification_id TEXT NOT NULL,
    customer_id     TEXT NOT NULL,
    kind            TEXT NOT NULL,       -- CONFIRMATION | CANCELLATION | REJECTION
    message         TEXT NOT NULL,
    sent_at         BIGINT NOT NULL
);
