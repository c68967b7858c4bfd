//! The OpenAPI 3.0 document of the REST API, served at `/openapi.json`.
//! Written by hand next to the routes it describes; a test checks that
//! every route of the router appears here.

use serde_json::{Value, json};

fn problem() -> Value {
    json!({
        "description": "An error, as RFC 9457 problem details",
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    })
}

fn ok(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

fn page_of(item: &str) -> Value {
    json!({
        "type": "object",
        "required": ["items", "total"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": format!("#/components/schemas/{item}")}},
            "total": {"type": "integer"},
            "next_offset": {"type": "integer", "description": "offset of the next page; absent on the last"}
        }
    })
}

fn paging() -> Vec<Value> {
    vec![
        json!({"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}}),
        json!({"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0}}),
    ]
}

fn product_path() -> Vec<Value> {
    vec![
        json!({"name": "domain", "in": "path", "required": true, "schema": {"type": "string"}}),
        json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}),
    ]
}

fn errors(codes: &[&str]) -> serde_json::Map<String, Value> {
    codes
        .iter()
        .map(|c| ((*c).to_string(), problem()))
        .collect()
}

fn responses(success: Value, codes: &[&str]) -> Value {
    let mut r = errors(codes);
    r.insert("200".into(), success);
    Value::Object(r)
}

/// The document.
pub fn document() -> Value {
    let secured = json!([{"bearer": []}]);
    let mut history_params = product_path();
    history_params.extend(paging());
    let mut search_params =
        vec![json!({"name": "q", "in": "query", "required": true, "schema": {"type": "string"}})];
    search_params.extend(paging());
    let mut runs_params = vec![json!({"name": "product", "in": "query", "required": false,
        "description": "Only this product's runs: `<domain>/<name>`", "schema": {"type": "string"}})];
    runs_params.extend(paging());
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Meshwork",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The data products of a mesh: discovery, history and SQL. Every /api/v1 call needs a mesh token (`mesh token create`) as a bearer token; access policy applies as in the CLI."
        },
        "paths": {
            "/healthz": {"get": {
                "summary": "Liveness", "operationId": "healthz", "security": [],
                "responses": {"200": ok("The process is up", json!({"type": "object"}))}
            }},
            "/readyz": {"get": {
                "summary": "Readiness: the catalog answers", "operationId": "readyz", "security": [],
                "responses": responses(ok("Ready", json!({"type": "object"})), &["503"])
            }},
            "/openapi.json": {"get": {
                "summary": "This document", "operationId": "openapi", "security": [],
                "responses": {"200": ok("OpenAPI 3.0 document", json!({"type": "object"}))}
            }},
            "/metrics": {"get": {
                "summary": "Prometheus metrics (OpenMetrics text)", "operationId": "metrics",
                "security": secured.clone(),
                "responses": responses(json!({"description": "The metrics", "content": {
                    "application/openmetrics-text": {"schema": {"type": "string"}}
                }}), &["401"])
            }},
            "/api/v1/products": {"get": {
                "summary": "List the products the caller may see", "operationId": "listProducts",
                "security": secured, "parameters": paging(),
                "responses": responses(ok("A page of products", page_of("ProductSummary")), &["400", "401"])
            }},
            "/api/v1/products/{domain}/{name}": {"get": {
                "summary": "Show a product: contract, outputs, lineage, quality, freshness",
                "operationId": "showProduct", "security": secured, "parameters": product_path(),
                "responses": responses(ok("The product", json!({"type": "object"})), &["401", "404"])
            }},
            "/api/v1/products/{domain}/{name}/history": {"get": {
                "summary": "Releases of a product, newest first", "operationId": "productHistory",
                "security": secured, "parameters": history_params,
                "responses": responses(ok("A page of releases", page_of("Release")), &["400", "401", "404"])
            }},
            "/api/v1/runs": {"get": {
                "summary": "Runs of the products the caller may see, newest first",
                "operationId": "listRuns", "security": secured, "parameters": runs_params,
                "responses": responses(ok("A page of runs", page_of("Run")), &["400", "401", "404"])
            }},
            "/api/v1/search": {"get": {
                "summary": "Full-text search over the products the caller may see",
                "operationId": "search", "security": secured, "parameters": search_params,
                "responses": responses(ok("A page of results, best first", page_of("SearchResult")), &["400", "401"])
            }},
            "/api/v1/query": {"post": {
                "summary": "Run one read-only SQL statement as the caller",
                "operationId": "query", "security": secured,
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/QueryRequest"}}}},
                "responses": responses(ok("The rows, at most `limit`", json!({"$ref": "#/components/schemas/QueryResult"})), &["400", "401", "403"])
            }}
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "a mesh token: mesh_<id>_<secret>"}
            },
            "schemas": {
                "Problem": {
                    "type": "object", "required": ["type", "title", "status", "detail"],
                    "properties": {
                        "type": {"type": "string"}, "title": {"type": "string"},
                        "status": {"type": "integer"}, "detail": {"type": "string"},
                        "hint": {"type": "string"}
                    }
                },
                "ProductSummary": {
                    "type": "object",
                    "required": ["domain", "name", "version", "status", "owner", "tags", "outputs"],
                    "properties": {
                        "domain": {"type": "string"}, "name": {"type": "string"},
                        "version": {"type": "string"}, "status": {"type": "string"},
                        "owner": {"type": "string"}, "description": {"type": "string", "nullable": true},
                        "tags": {"type": "array", "items": {"type": "string"}},
                        "outputs": {"type": "array", "items": {"type": "string"}},
                        "last_run": {"type": "string", "nullable": true}
                    }
                },
                "SearchResult": {
                    "allOf": [
                        {"$ref": "#/components/schemas/ProductSummary"},
                        {"type": "object", "required": ["product", "score"], "properties": {
                            "product": {"type": "string"}, "score": {"type": "number"}
                        }}
                    ]
                },
                "Release": {
                    "type": "object", "required": ["run_id", "product_version", "released_at", "outputs"],
                    "properties": {
                        "run_id": {"type": "string"}, "product_version": {"type": "string"},
                        "released_at": {"type": "string"},
                        "outputs": {"type": "array", "items": {"type": "object", "properties": {
                            "output": {"type": "string"}, "data_version": {"type": "integer"},
                            "row_count": {"type": "integer"}
                        }}}
                    }
                },
                "Run": {
                    "type": "object",
                    "required": ["id", "product", "version", "status", "started_at", "checks_passed", "checks_failed", "checks_warned", "checks", "publications"],
                    "properties": {
                        "id": {"type": "string"}, "product": {"type": "string"},
                        "version": {"type": "string"},
                        "status": {"type": "string", "enum": ["running", "succeeded", "failed", "skipped", "interrupted"]},
                        "started_at": {"type": "string"}, "finished_at": {"type": "string", "nullable": true},
                        "duration_ms": {"type": "integer", "nullable": true},
                        "rows_written": {"type": "integer", "nullable": true},
                        "checks_passed": {"type": "integer"}, "checks_failed": {"type": "integer"},
                        "checks_warned": {"type": "integer"},
                        "error": {"type": "string", "nullable": true},
                        "checks": {"type": "array", "items": {"type": "object"}},
                        "publications": {"type": "array", "items": {"type": "object"}}
                    }
                },
                "QueryRequest": {
                    "type": "object", "required": ["sql"],
                    "properties": {
                        "sql": {"type": "string"},
                        "limit": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 10000}
                    }
                },
                "QueryResult": {
                    "type": "object", "required": ["columns", "rows", "row_count", "truncated"],
                    "properties": {
                        "columns": {"type": "array", "items": {"type": "object", "properties": {
                            "name": {"type": "string"}, "type": {"type": "string"}
                        }}},
                        "rows": {"type": "array", "items": {"type": "object"}},
                        "row_count": {"type": "integer"},
                        "truncated": {"type": "boolean"},
                        "warnings": {"type": "array", "items": {"type": "string"}}
                    }
                }
            }
        }
    })
}
