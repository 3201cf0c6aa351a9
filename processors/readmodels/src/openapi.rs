//! The OpenAPI 3.1 document of the query API, served at `/openapi.json`.

use serde_json::json;

/// The OpenAPI 3.1 document of the API.
pub fn openapi() -> serde_json::Value {
    let error = json!({ "$ref": "#/components/schemas/Error" });
    let min_position = json!({
        "name": "min_position", "in": "query", "required": false,
        "description": "Wait until the read model has applied this message (topic/partition@offset, as `troupe` prints it)",
        "schema": { "type": "string", "example": "troupe.orders.commands/3@17" }
    });
    let errors = |found: bool| {
        let mut responses = json!({
            "400": { "description": "malformed request", "content": { "application/json": { "schema": error } } },
            "503": { "description": "a store is unavailable", "content": { "application/json": { "schema": error } } },
            "504": { "description": "min_position not applied in time", "content": { "application/json": { "schema": error } } }
        });
        if found {
            responses["404"] = json!({ "description": "not found", "content": { "application/json": { "schema": error } } });
        }
        responses
    };
    let ok = |schema: serde_json::Value, found: bool| {
        let mut responses = errors(found);
        responses["200"] =
            json!({ "description": "ok", "content": { "application/json": { "schema": schema } } });
        responses
    };
    let id = |name: &str, description: &str| {
        json!({
            "name": name, "in": "path", "required": true, "description": description, "schema": { "type": "string" }
        })
    };
    json!({
        "openapi": "3.1.0",
        "info": { "title": "troupe query API", "version": env!("CARGO_PKG_VERSION") },
        "paths": {
            "/orders/{id}": { "get": {
                "summary": "An order's summary",
                "parameters": [id("id", "order id (UUID)"), min_position],
                "responses": ok(json!({ "$ref": "#/components/schemas/OrderSummary" }), true)
            }},
            "/orders/{id}/timeline": { "get": {
                "summary": "Every event of an order, in the order they occurred",
                "parameters": [id("id", "order id (UUID)"), min_position],
                "responses": ok(json!({ "type": "object", "properties": {
                    "order_id": { "type": "string", "format": "uuid" },
                    "events": { "type": "array", "items": { "$ref": "#/components/schemas/TimelineEntry" } }
                }}), true)
            }},
            "/customers/{id}/orders": { "get": {
                "summary": "A customer's orders, newest first",
                "parameters": [
                    id("id", "customer id"),
                    { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 100, "default": 20 } },
                    { "name": "page", "in": "query", "schema": { "type": "integer", "minimum": 0, "default": 0 } },
                    min_position
                ],
                "responses": ok(json!({ "type": "object", "properties": {
                    "customer_id": { "type": "string" }, "limit": { "type": "integer" }, "page": { "type": "integer" },
                    "orders": { "type": "array", "items": { "$ref": "#/components/schemas/OrderSummary" } }
                }}), false)
            }},
            "/stock/{sku}": { "get": {
                "summary": "Stock of one sku",
                "parameters": [id("sku", "sku"), min_position],
                "responses": ok(json!({ "type": "object", "properties": {
                    "sku": { "type": "string" }, "available": { "type": "integer" },
                    "reserved": { "type": "integer" }, "sold": { "type": "integer" }
                }}), true)
            }},
            "/orders/{id}/trace": { "get": {
                "summary": "An order's events with what caused each and where the projector read it: the causation tree of `troupe trace`",
                "parameters": [id("id", "order id (UUID)"), min_position],
                "responses": ok(json!({ "type": "object", "properties": {
                    "order_id": { "type": "string", "format": "uuid" },
                    "events": { "type": "array", "items": { "type": "object", "properties": {
                        "event_id": { "type": "string", "format": "uuid" },
                        "causation_id": { "type": ["string", "null"], "format": "uuid" },
                        "occurred_at": { "type": "integer" }, "event_type": { "type": "string" },
                        "service": { "type": "string" }, "detail": { "type": "string" },
                        "position": { "type": ["string", "null"] }
                    }}}
                }}), true)
            }},
            "/sagas": { "get": {
                "summary": "The saga tracker: orders without an outcome, the longest idle first, and every order counted by state",
                "parameters": [
                    { "name": "status", "in": "query", "required": false, "description": "stalled (default: idle past the allowance of the step they wait on) or in_flight (no outcome yet)", "schema": { "type": "string", "enum": ["stalled", "in_flight"] } },
                    { "name": "older_than", "in": "query", "required": false, "description": "only orders idle at least this long: 1500ms, 30s, 5m, 2h", "schema": { "type": "string" } },
                    { "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 } }
                ],
                "responses": ok(json!({ "type": "object", "properties": {
                    "census": { "type": "object" },
                    "sagas": { "type": "array", "items": { "type": "object", "properties": {
                        "order_id": { "type": "string", "format": "uuid" }, "status": { "type": "string" },
                        "customer_id": { "type": ["string", "null"] }, "last_progress_at": { "type": "integer" },
                        "idle_ms": { "type": "integer" }, "waiting_on": { "type": "array", "items": { "type": "string" } },
                        "steps": { "type": "object", "additionalProperties": { "type": "integer" } }
                    }}}
                }}), false)
            }},
            "/stats/daily": { "get": {
                "summary": "Confirmed revenue and units per day and sku; cancellations per day and reason",
                "parameters": [min_position],
                "responses": ok(json!({ "$ref": "#/components/schemas/DailyStats" }), false)
            }}
        },
        "components": { "schemas": {
            "Error": { "type": "object", "required": ["error", "code"], "properties": {
                "error": { "type": "string" },
                "code": { "type": "string", "enum": ["bad_request", "not_found", "not_applied_yet", "store_unavailable"] }
            }},
            "OrderSummary": { "type": "object", "properties": {
                "order_id": { "type": "string", "format": "uuid" },
                "customer_id": { "type": ["string", "null"] },
                "status": { "type": ["string", "null"], "enum": ["REQUESTED", "PLACED", "RESERVED", "PAID", "SHIPPED", "CONFIRMED", "CANCELLED", "REJECTED", null] },
                "lines": { "type": "array", "items": { "type": "object", "properties": {
                    "sku": { "type": "string" }, "quantity": { "type": "integer" }, "unit_price_minor": { "type": "integer" }
                }}},
                "currency": { "type": ["string", "null"] },
                "total_minor": { "type": ["integer", "null"] },
                "promotion_code": { "type": ["string", "null"] },
                "reason": { "type": ["string", "null"] },
                "detail": { "type": ["string", "null"] },
                "steps": { "type": "object", "additionalProperties": { "type": "integer" },
                           "description": "ms since the epoch of each step: requested_at, placed_at, reserved_at, paid_at, shipped_at, confirmed_at, cancelled_at, rejected_at, released_at, committed_at, refunded_at, shipment_cancelled_at, notified_at" },
                "updated_at": { "type": "integer" },
                "last_position": { "type": ["string", "null"] }
            }},
            "TimelineEntry": { "type": "object", "properties": {
                "order_id": { "type": "string", "format": "uuid" }, "occurred_at": { "type": "integer" },
                "event_id": { "type": "string", "format": "uuid" }, "event_type": { "type": "string" },
                "service": { "type": "string" }, "detail": { "type": "string" }
            }},
            "DailyStats": { "type": "object", "properties": {
                "sales": { "type": "array", "items": { "type": "object", "properties": {
                    "day": { "type": "string" }, "sku": { "type": "string" },
                    "confirmed_revenue_minor": { "type": "integer" }, "units": { "type": "integer" }
                }}},
                "cancellations": { "type": "array", "items": { "type": "object", "properties": {
                    "day": { "type": "string" }, "reason": { "type": "string" }, "orders": { "type": "integer" }
                }}}
            }}
        }}
    })
}
