//! The tables of a read-model copy in CQL, each shaped by the query it answers.

/// The statements that create a copy's keyspace and tables, in order; each is idempotent.
pub fn statements(k: &str) -> Vec<String> {
    vec![
        format!(
            "CREATE KEYSPACE IF NOT EXISTS {k} WITH replication = \
             {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
        ),
        // One row per order, one cell per field: every cell is written at a write time derived
        // from the event (see the module docs of `cql`), never read before it is written.
        format!(
            "CREATE TABLE IF NOT EXISTS {k}.orders (order_id uuid PRIMARY KEY, \
             customer_id text, status text, lines text, currency text, total_minor bigint, \
             promotion_code text, reason text, detail text, steps map<text, bigint>, \
             updated_at bigint, last_position text)"
        ),
        // A customer's orders, newest request first, paged by the server.
        format!(
            "CREATE TABLE IF NOT EXISTS {k}.customer_orders (customer_id text, \
             requested_at bigint, order_id uuid, \
             PRIMARY KEY (customer_id, requested_at, order_id)) \
             WITH CLUSTERING ORDER BY (requested_at DESC, order_id ASC)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {k}.timeline (order_id uuid, occurred_at bigint, \
             event_id uuid, event_type text, service text, detail text, \
             PRIMARY KEY (order_id, occurred_at, event_id))"
        ),
        // An sku's level in static cells, changed by compare-and-set on `version`; one row per
        // event applied, so a replay is recognised in the same partition and transaction.
        format!(
            "CREATE TABLE IF NOT EXISTS {k}.stock (sku text, marker text, \
             available bigint static, reserved bigint static, sold bigint static, \
             version bigint static, PRIMARY KEY (sku, marker))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {k}.sales (order_id uuid, sku text, day text, \
             units bigint, revenue_minor bigint, PRIMARY KEY (order_id, sku))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {k}.cancellations \
             (order_id uuid PRIMARY KEY, day text, reason text)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {k}.positions (key text PRIMARY KEY, next_offset bigint)"
        ),
    ]
}
