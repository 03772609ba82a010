//! The OpenAPI description of REST v1: every endpoint the router serves is in it, it is
//! OpenAPI 3.1 and its references resolve; the docs page is served without anything
//! from elsewhere.

mod common;

use std::collections::HashSet;

use common::Setup;
use serde_json::Value;

/// `$ref`s anywhere under `v`.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref"
                    && let Some(r) = v.as_str()
                {
                    out.push(r.to_owned());
                }
                refs(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn every_route_is_described_and_the_description_holds() {
    let s = Setup::start_v1().await;
    let reply = s.get("/api/v1/openapi.json").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_type, "application/json");
    let spec = reply.json();
    // It parses as an OpenAPI document.
    let parsed: utoipa::openapi::OpenApi =
        serde_json::from_str(&reply.body).expect("an OpenAPI document");
    assert_eq!(
        serde_json::to_value(&parsed).expect("serialize")["openapi"],
        "3.1.0"
    );
    assert_eq!(spec["openapi"], "3.1.0");
    assert!(spec["info"]["title"].is_string() && spec["info"]["version"].is_string());
    assert!(spec["components"]["securitySchemes"]["api_key"]["scheme"] == "bearer");

    let endpoints = api::v1::endpoints();
    assert!(endpoints.len() >= 16);
    let mut operation_ids = HashSet::new();
    for (method, path, _) in &endpoints {
        let op = &spec["paths"][*path][method.to_ascii_lowercase()];
        assert!(op.is_object(), "{method} {path} is not in the description");
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{method} {path} has no responses"
        );
        let id = op["operationId"].as_str().unwrap_or_default().to_owned();
        assert!(
            operation_ids.insert(id),
            "{method} {path}: duplicate operationId"
        );
        // Every path parameter is declared.
        for segment in path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                let declared = op["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "path"));
                assert!(
                    declared,
                    "{method} {path}: path parameter {name} undeclared"
                );
            }
        }
        // And the router really serves it (not the 404 fallback, not 405).
        let reply = s.request(method, path, &[], "").await;
        assert!(
            reply.status != 405 && !reply.body.contains("no such endpoint"),
            "{method} {path} is not served: {reply:?}"
        );
    }
    // Nothing described that is not served.
    let described: usize = spec["paths"]
        .as_object()
        .map(|p| {
            p.values()
                .map(|ops| ops.as_object().map_or(0, |o| o.len()))
                .sum()
        })
        .unwrap_or(0);
    assert_eq!(described, endpoints.len());
    // References resolve.
    let mut all = Vec::new();
    refs(&spec, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected reference {r}"));
        assert!(
            spec["components"]["schemas"][name].is_object(),
            "dangling reference {r}"
        );
    }
    // The send request's schema says what the handler reads.
    let send = &spec["components"]["schemas"]["SendRequest"];
    let required: Vec<&str> = send["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(
        required.contains(&"to") && required.contains(&"text"),
        "{send}"
    );
}

#[tokio::test]
async fn docs_page_is_self_contained() {
    let s = Setup::start_v1().await;
    let reply = s.get("/api/v1/docs").await;
    assert_eq!(reply.status, 200);
    assert!(reply.content_type.starts_with("text/html"));
    assert!(reply.body.contains("/api/v1/openapi.json"));
    // Nothing loaded from another host.
    for attr in ["src=\"http", "href=\"http", "src='http", "@import", "//cdn"] {
        assert!(!reply.body.contains(attr), "external resource: {attr}");
    }
}
