-- Every customer has a credit limit; `used` is what authorised, unrefunded payments hold.
CREATE TABLE accounts (
    customer_id  TEXT PRIMARY KEY,
    credit_limit BIGINT NOT NULL,            -- minor units
    used         BIGINT NOT NULL CHECK (used >= 0)
);

-- One payment per order.
CREATE TABLE payments (
    order_id       UUID PRIMARY KEY,
    correlation_id UUID NOT NULL,
    payment_id     TEXT NOT NULL,
    customer_id    TEXT NOT NULL,
    amount         BIGINT NOT NULL,          -- minor units
    currency       TEXT NOT NULL,
    status         TEXT NOT NULL,            -- IN_REVIEW | AUTHORIZED | DECLINED | REFUNDED | CANCELLED
    review_until   BIGINT,
    authorized     BIGINT NOT NULL DEFAULT 0,
    refunded       BIGINT NOT NULL DEFAULT 0,
    last_event_id  UUID NOT NULL
);
CREATE INDEX payments_in_review ON payments (review_until) WHERE status = 'IN_REVIEW';
