-- Stock per sku. Conservation: adjusted = available + reserved + shipped, always.
CREATE TABLE stock (
    sku       TEXT PRIMARY KEY,
    available INTEGER NOT NULL CHECK (available >= 0),
    reserved  INTEGER NOT NULL CHECK (reserved >= 0),
    shipped   INTEGER NOT NULL CHECK (shipped >= 0),
    adjusted  BIGINT  NOT NULL            -- the sum of every adjustment applied
);

-- One reservation per order (or the record that none could be made).
CREATE TABLE reservations (
    order_id       UUID PRIMARY KEY,
    correlation_id UUID NOT NULL,
    reservation_id TEXT NOT NULL,
    lines          JSONB NOT NULL,        -- [[sku, quantity], ...]
    status         TEXT NOT NULL,         -- ACTIVE | PAID | EXPIRING | RELEASED | COMMITTED | REJECTED
    expires_at     BIGINT NOT NULL,
    last_event_id  UUID NOT NULL
);
CREATE INDEX reservations_due ON reservations (expires_at) WHERE status = 'ACTIVE';
