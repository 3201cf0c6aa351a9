//! HTTP-level tests of troupe-registry: the running binary against a real PostgreSQL.

mod support;

use reqwest::Method;
use serde_json::json;
use support::*;

#[tokio::test]
async fn register_is_idempotent_and_ids_are_global() {
    let registry = Registry::start().await;
    let v1 = order_schema(V1);

    let id = registry.register_ok("orders-value", &v1).await;
    // The same schema again, differently formatted: same id, no new version.
    let reformatted = v1.replace(',', " , ");
    assert_eq!(registry.register_ok("orders-value", &reformatted).await, id);
    assert_eq!(
        registry.get("/subjects/orders-value/versions").await,
        (200, json!([1]))
    );

    // The same schema under another subject keeps its id.
    assert_eq!(registry.register_ok("other-value", &v1).await, id);
    assert_eq!(
        registry.get("/subjects").await,
        (200, json!(["orders-value", "other-value"]))
    );

    // A new, compatible schema gets a new id and version 2.
    let v2 = order_schema(V2_WITH_DEFAULT);
    let id2 = registry.register_ok("orders-value", &v2).await;
    assert_ne!(id2, id);
    assert_eq!(
        registry.get("/subjects/orders-value/versions").await,
        (200, json!([1, 2]))
    );

    let (status, body) = registry.get("/subjects/orders-value/versions/latest").await;
    assert_eq!(status, 200);
    assert_eq!(body["subject"], "orders-value");
    assert_eq!(body["version"], 2);
    assert_eq!(body["id"], id2);
    let schema: serde_json::Value = serde_json::from_str(body["schema"].as_str().unwrap()).unwrap();
    assert_eq!(schema["fields"][1]["default"], 1);

    let (status, body) = registry.get("/subjects/orders-value/versions/1").await;
    assert_eq!((status, body["id"].as_i64()), (200, Some(id)));
    let (status, raw) = registry
        .get("/subjects/orders-value/versions/1/schema")
        .await;
    assert_eq!((status, raw["name"].as_str()), (200, Some("Order")));

    let (status, body) = registry.get(&format!("/schemas/ids/{id}")).await;
    assert_eq!(status, 200);
    assert!(body["schema"].as_str().unwrap().contains("\"Order\""));
    let (status, raw) = registry.get(&format!("/schemas/ids/{id}/schema")).await;
    assert_eq!((status, raw["type"].as_str()), (200, Some("record")));
    assert_eq!(
        registry.get(&format!("/schemas/ids/{id}/subjects")).await,
        (200, json!(["orders-value", "other-value"]))
    );
    assert_eq!(
        registry.get(&format!("/schemas/ids/{id}/versions")).await,
        (
            200,
            json!([{"subject": "orders-value", "version": 1}, {"subject": "other-value", "version": 1}])
        )
    );
    assert_eq!(registry.get("/schemas/types").await, (200, json!(["AVRO"])));
}

#[tokio::test]
async fn responses_carry_the_registry_media_type() {
    let registry = Registry::start().await;
    let (status, _, content) = registry.send(Method::GET, "/subjects", None, MEDIA).await;
    assert_eq!(status, 200);
    assert_eq!(content, MEDIA);
    let (status, _, content) = registry
        .send(Method::GET, "/subjects/nope/versions", None, MEDIA)
        .await;
    assert_eq!(status, 404);
    assert_eq!(content, MEDIA);
    // Plain JSON is accepted as a request type, as Confluent's registry accepts it.
    let body = json!({"schema": order_schema(V1)}).to_string();
    let (status, _, _) = registry
        .send(
            Method::POST,
            "/subjects/s/versions",
            Some(body),
            "application/json",
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn lookup_finds_the_version_holding_a_schema() {
    let registry = Registry::start().await;
    let v1 = order_schema(V1);
    let v2 = order_schema(V2_WITH_DEFAULT);
    let id1 = registry.register_ok("s", &v1).await;
    registry.register_ok("s", &v2).await;

    let (status, body) = registry.post("/subjects/s", json!({"schema": v1})).await;
    assert_eq!(status, 200);
    assert_eq!(
        (body["id"].as_i64(), body["version"].as_i64()),
        (Some(id1), Some(1))
    );
    assert_eq!(body["subject"], "s");

    assert_error(
        &registry.post("/subjects/nope", json!({"schema": v1})).await,
        404,
        40401,
    );
    let unknown = order_schema(r#"{"name":"other","type":"long"}"#);
    assert_error(
        &registry
            .post("/subjects/s", json!({"schema": unknown}))
            .await,
        404,
        40403,
    );
}

#[tokio::test]
async fn bad_requests_get_the_documented_status_and_code() {
    let registry = Registry::start().await;
    registry.register_ok("s", &order_schema(V1)).await;

    // Malformed JSON and the wrong shape.
    let (status, body, _) = registry
        .send(
            Method::POST,
            "/subjects/s/versions",
            Some("{not json".into()),
            MEDIA,
        )
        .await;
    assert_error(&(status, body), 400, 400);
    assert_error(
        &registry
            .post("/subjects/s/versions", json!({"schema": 5}))
            .await,
        400,
        400,
    );
    assert_error(
        &registry.post("/subjects/s/versions", json!({})).await,
        400,
        400,
    );
    // Invalid Avro, and schema types other than Avro.
    assert_error(
        &registry
            .register(
                "s",
                r#"{"type":"record","name":"X","fields":[{"name":"a"}]}"#,
            )
            .await,
        422,
        42201,
    );
    assert_error(&registry.register("s", "not even json").await, 422, 42201);
    for kind in ["JSON", "PROTOBUF", "XML"] {
        let answer = registry
            .post(
                "/subjects/s/versions",
                json!({"schema": "{}", "schemaType": kind}),
            )
            .await;
        assert_error(&answer, 422, 42201);
    }
    // Unknown subject, version, id; invalid versions.
    assert_error(&registry.get("/subjects/nope/versions").await, 404, 40401);
    assert_error(&registry.get("/subjects/nope/versions/1").await, 404, 40401);
    assert_error(&registry.get("/subjects/s/versions/7").await, 404, 40402);
    for bad in ["0", "-2", "abc", "1.5", "99999999999"] {
        assert_error(
            &registry.get(&format!("/subjects/s/versions/{bad}")).await,
            422,
            42202,
        );
    }
    assert_error(&registry.get("/schemas/ids/999999").await, 404, 40403);
    assert_error(&registry.get("/schemas/ids/abc").await, 404, 40403);
    // Wrong content type.
    let body = json!({"schema": order_schema(V1)}).to_string();
    let (status, value, _) = registry
        .send(
            Method::POST,
            "/subjects/s/versions",
            Some(body),
            "text/plain",
        )
        .await;
    assert_error(&(status, value), 415, 415);
    // Invalid compatibility level.
    assert_error(
        &registry
            .put("/config", json!({"compatibility": "SIDEWAYS"}))
            .await,
        422,
        42203,
    );
    assert_error(
        &registry.put("/config/s", json!({"compatibility": 3})).await,
        400,
        400,
    );
    // Unknown routes.
    assert_error(&registry.get("/nothing/here").await, 404, 404);
    // Nothing above broke the server.
    assert_eq!(
        registry.get("/subjects/s/versions").await,
        (200, json!([1]))
    );
}

#[tokio::test]
async fn incompatible_schemas_are_refused_with_reasons() {
    let registry = Registry::start().await;
    registry.register_ok("s", &order_schema(V1)).await;
    // Default level BACKWARD: a new field without a default cannot read old data.
    let (status, body) = registry.register("s", &order_schema(V2_NO_DEFAULT)).await;
    assert_error(&(status, body.clone()), 409, 409);
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("qty"), "{message}");
    assert!(message.contains("version 1"), "{message}");
    assert_eq!(
        registry.get("/subjects/s/versions").await,
        (200, json!([1]))
    );

    // The compatibility endpoints give the same verdict without registering.
    let (status, body) = registry
        .post(
            "/compatibility/subjects/s/versions/latest?verbose=true",
            json!({"schema": order_schema(V2_NO_DEFAULT)}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["is_compatible"], false);
    assert!(!body["messages"].as_array().unwrap().is_empty());
    let (_, body) = registry
        .post(
            "/compatibility/subjects/s/versions/1",
            json!({"schema": order_schema(V2_WITH_DEFAULT)}),
        )
        .await;
    assert_eq!(body, json!({"is_compatible": true}));
    let (_, body) = registry
        .post(
            "/compatibility/subjects/s/versions",
            json!({"schema": order_schema(V2_WITH_DEFAULT)}),
        )
        .await;
    assert_eq!(body, json!({"is_compatible": true}));
    assert_error(
        &registry
            .post(
                "/compatibility/subjects/s/versions/9",
                json!({"schema": order_schema(V1)}),
            )
            .await,
        404,
        40402,
    );
    assert_error(
        &registry
            .post(
                "/compatibility/subjects/nope/versions/latest",
                json!({"schema": order_schema(V1)}),
            )
            .await,
        404,
        40401,
    );

    // With NONE for this subject, the same change registers.
    assert_eq!(
        registry
            .put("/config/s", json!({"compatibility": "NONE"}))
            .await,
        (200, json!({"compatibility": "NONE"}))
    );
    registry
        .register_ok("s", &order_schema(V2_NO_DEFAULT))
        .await;
}

#[tokio::test]
async fn transitive_levels_check_every_version() {
    let registry = Registry::start().await;
    registry
        .put("/config/s", json!({"compatibility": "BACKWARD_TRANSITIVE"}))
        .await;
    registry.register_ok("s", &order_schema(V1)).await;
    registry
        .register_ok("s", &order_schema(V2_WITH_DEFAULT))
        .await;
    // Readable against v2 alone, not against v1.
    let answer = registry.register("s", &order_schema(V2_NO_DEFAULT)).await;
    assert_error(&answer, 409, 409);
    registry
        .put("/config/s", json!({"compatibility": "BACKWARD"}))
        .await;
    registry
        .register_ok("s", &order_schema(V2_NO_DEFAULT))
        .await;
}

#[tokio::test]
async fn config_global_and_per_subject() {
    let registry = Registry::start().await;
    assert_eq!(
        registry.get("/config").await,
        (200, json!({"compatibilityLevel": "BACKWARD"}))
    );
    assert_eq!(
        registry
            .put("/config", json!({"compatibility": "full"}))
            .await,
        (200, json!({"compatibility": "FULL"}))
    );
    assert_eq!(
        registry.get("/config").await,
        (200, json!({"compatibilityLevel": "FULL"}))
    );

    assert_error(&registry.get("/config/s").await, 404, 40408);
    assert_eq!(
        registry.get("/config/s?defaultToGlobal=true").await,
        (200, json!({"compatibilityLevel": "FULL"}))
    );
    registry
        .put("/config/s", json!({"compatibility": "FORWARD_TRANSITIVE"}))
        .await;
    assert_eq!(
        registry.get("/config/s").await,
        (200, json!({"compatibilityLevel": "FORWARD_TRANSITIVE"}))
    );
    assert_eq!(
        registry.delete("/config/s").await,
        (200, json!({"compatibilityLevel": "FORWARD_TRANSITIVE"}))
    );
    assert_error(&registry.get("/config/s").await, 404, 40408);
    assert_error(&registry.delete("/config/s").await, 404, 40408);
    assert_eq!(
        registry.get("/mode").await,
        (200, json!({"mode": "READWRITE"}))
    );
}

#[tokio::test]
async fn soft_and_permanent_deletion() {
    let registry = Registry::start().await;
    let id1 = registry.register_ok("s", &order_schema(V1)).await;
    registry
        .register_ok("s", &order_schema(V2_WITH_DEFAULT))
        .await;

    // Version 1: permanent first is refused; soft, then soft again refused; then permanent.
    assert_error(
        &registry
            .delete("/subjects/s/versions/1?permanent=true")
            .await,
        404,
        40407,
    );
    assert_eq!(
        registry.delete("/subjects/s/versions/1").await,
        (200, json!(1))
    );
    assert_eq!(
        registry.get("/subjects/s/versions").await,
        (200, json!([2]))
    );
    assert_eq!(
        registry.get("/subjects/s/versions?deleted=true").await,
        (200, json!([1, 2]))
    );
    assert_error(&registry.get("/subjects/s/versions/1").await, 404, 40402);
    assert_eq!(
        registry.get("/subjects/s/versions/1?deleted=true").await.0,
        200
    );
    // Ids stay resolvable: records written with a soft-deleted schema are still in topics.
    assert_eq!(registry.get(&format!("/schemas/ids/{id1}")).await.0, 200);
    assert_error(&registry.delete("/subjects/s/versions/1").await, 404, 40406);
    assert_eq!(
        registry
            .delete("/subjects/s/versions/1?permanent=true")
            .await,
        (200, json!(1))
    );
    assert_error(
        &registry.get("/subjects/s/versions/1?deleted=true").await,
        404,
        40402,
    );
    assert_error(
        &registry.get(&format!("/schemas/ids/{id1}")).await,
        404,
        40403,
    );

    // The subject: permanent first refused, soft, soft again refused, permanent.
    assert_error(
        &registry.delete("/subjects/s?permanent=true").await,
        404,
        40405,
    );
    assert_eq!(registry.delete("/subjects/s").await, (200, json!([2])));
    assert_eq!(registry.get("/subjects").await, (200, json!([])));
    assert_eq!(
        registry.get("/subjects?deleted=true").await,
        (200, json!(["s"]))
    );
    assert_error(&registry.get("/subjects/s/versions").await, 404, 40401);
    assert_error(&registry.delete("/subjects/s").await, 404, 40404);
    assert_eq!(
        registry.delete("/subjects/s?permanent=true").await,
        (200, json!([2]))
    );
    assert_eq!(
        registry.get("/subjects?deleted=true").await,
        (200, json!([]))
    );
    assert_error(&registry.delete("/subjects/s").await, 404, 40401);

    // After permanent deletion the subject starts again at version 1.
    registry.register_ok("s", &order_schema(V1)).await;
    assert_eq!(
        registry.get("/subjects/s/versions").await,
        (200, json!([1]))
    );
}

#[tokio::test]
async fn concurrent_registrations_yield_one_id_and_one_version() {
    let registry = Registry::start().await;
    let schema = order_schema(V1);
    let http = reqwest::Client::new();
    let url = format!("{}/subjects/s/versions", registry.url);
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let http = http.clone();
            let url = url.clone();
            let body = json!({ "schema": schema }).to_string();
            tokio::spawn(async move {
                let response = http
                    .post(url)
                    .header("Content-Type", MEDIA)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                response.json::<serde_json::Value>().await.unwrap()["id"]
                    .as_i64()
                    .unwrap()
            })
        })
        .collect();
    let ids: std::collections::BTreeSet<i64> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(
        registry.get("/subjects/s/versions").await,
        (200, json!([1]))
    );
}

#[tokio::test]
async fn a_restart_keeps_every_schema_and_id() {
    let registry = Registry::start().await;
    let id1 = registry.register_ok("a", &order_schema(V1)).await;
    let id2 = registry
        .register_ok("a", &order_schema(V2_WITH_DEFAULT))
        .await;
    registry
        .put("/config/a", json!({"compatibility": "FULL"}))
        .await;
    let database = registry.kill();

    let registry = Registry::start_on(&database).await;
    assert_eq!(
        registry.get("/subjects/a/versions").await,
        (200, json!([1, 2]))
    );
    assert_eq!(registry.get(&format!("/schemas/ids/{id2}")).await.0, 200);
    assert_eq!(registry.register_ok("a", &order_schema(V1)).await, id1);
    assert_eq!(
        registry.get("/config/a").await,
        (200, json!({"compatibilityLevel": "FULL"}))
    );
    // A new schema gets an id never used before.
    let id3 = registry
        .register_ok("b", &order_schema(r#"{"name":"z","type":"long"}"#))
        .await;
    assert!(id3 > id2);
}

#[tokio::test]
async fn references_resolve_across_subjects() {
    let registry = Registry::start().await;
    let address = r#"{"type":"record","name":"Address","namespace":"t","fields":[{"name":"city","type":"string"}]}"#;
    registry.register_ok("address", address).await;
    let customer = r#"{"type":"record","name":"Customer","namespace":"t","fields":[{"name":"home","type":"t.Address"}]}"#;
    let references = json!([{"name": "t.Address", "subject": "address", "version": 1}]);
    let (status, body) = registry
        .post(
            "/subjects/customer/versions",
            json!({"schema": customer, "references": references}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = registry.get("/subjects/customer/versions/1").await;
    assert_eq!(body["references"], references);
    // A reference to a missing version is an invalid schema.
    let bad = json!([{"name": "t.Address", "subject": "address", "version": 9}]);
    let answer = registry
        .post(
            "/subjects/customer2/versions",
            json!({"schema": customer, "references": bad}),
        )
        .await;
    assert_error(&answer, 422, 42201);
}
