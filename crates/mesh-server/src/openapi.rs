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

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn body(name: &str, required: bool) -> Value {
    json!({"required": required, "content": {"application/json": {"schema": schema_ref(name)}}})
}

fn id_path() -> Vec<Value> {
    vec![json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}})]
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
/// Every status a run can have.
const RUN_STATUSES: [&str; 7] = [
    "running",
    "succeeded",
    "failed",
    "up-to-date",
    "skipped",
    "abandoned",
    "interrupted",
];

pub fn document() -> Value {
    let secured = json!([{"bearer": []}]);
    let mut history_params = product_path();
    history_params.extend(paging());
    let mut search_params =
        vec![json!({"name": "q", "in": "query", "required": true, "schema": {"type": "string"}})];
    search_params.extend(paging());
    let mut runs_params = vec![
        json!({"name": "product", "in": "query", "required": false,
        "description": "Only this product's runs: `<domain>/<name>`", "schema": {"type": "string"}}),
        json!({"name": "status", "in": "query", "required": false,
        "description": "Only runs with this status", "schema": {"type": "string", "enum": RUN_STATUSES}}),
    ];
    runs_params.extend(paging());
    let mut audit_params: Vec<Value> = ["product", "principal", "action"]
        .iter()
        .map(|n| json!({"name": n, "in": "query", "required": false, "schema": {"type": "string"}}))
        .collect();
    audit_params.push(json!({"name": "since", "in": "query", "required": false,
        "description": "`YYYY-MM-DD` or an RFC 3339 time", "schema": {"type": "string"}}));
    audit_params.extend(paging());
    let mut grants_params = vec![json!({"name": "all", "in": "query", "required": false,
        "description": "everyone's grants (a mesh-admin's call)", "schema": {"type": "boolean", "default": false}})];
    grants_params.extend(paging());
    let mut created = errors(&["400", "401", "404"]);
    created.insert(
        "201".into(),
        ok("The request, pending", schema_ref("AccessRequest")),
    );
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
            "/api/v1/lineage": {"get": {
                "summary": "Column lineage upstream and downstream of a product, output or column",
                "description": "Edges are typed as in OpenLineage's column-lineage facet. A column of a product the caller may not see is a redacted node.",
                "operationId": "lineage", "security": secured,
                "parameters": [
                    {"name": "target", "in": "query", "required": true, "schema": {"type": "string"}, "description": "`<domain>/<product>[.<output>[.<column>]]` or `<domain>.<output>[.<column>]`"},
                    {"name": "direction", "in": "query", "schema": {"type": "string", "enum": ["upstream", "downstream", "both"], "default": "both"}},
                    {"name": "depth", "in": "query", "schema": {"type": "integer", "minimum": 0}}
                ],
                "responses": responses(ok("The lineage", schema_ref("Lineage")), &["400", "401", "404"])
            }},
            "/api/v1/runs": {"get": {
                "summary": "Runs of the products the caller may see, newest first",
                "operationId": "listRuns", "security": secured, "parameters": runs_params,
                "responses": responses(ok("A page of runs", page_of("Run")), &["400", "401", "404"])
            }, "post": {
                "summary": "Run products (with their upstreams first) and answer when they finish",
                "description": "The caller must belong to a team owning each product's domain, or be a mesh-admin; no products means every product (mesh-admin only). A failed run is reported in its record, not as an HTTP error.",
                "operationId": "triggerRun", "security": secured,
                "requestBody": body("RunRequest", false),
                "responses": responses(ok("The runs", schema_ref("RunResult")), &["400", "401", "403", "404", "409"])
            }},
            "/api/v1/status": {"get": {
                "summary": "The health of the products the caller may see",
                "description": "healthy, degraded or failing, with the reasons: data age against the freshness SLO, the last run, the quality pass rate, unhealthy upstreams.",
                "operationId": "status", "security": secured, "parameters": paging(),
                "responses": responses(ok("A page of product health", page_of("ProductHealth")), &["400", "401"])
            }},
            "/api/v1/runs/{id}": {"get": {
                "summary": "One run: its timeline, check results and log",
                "description": "A run of a product the caller may not see is a 404, like an unknown run.",
                "operationId": "showRun", "security": secured,
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": responses(ok("The run", schema_ref("Run")), &["401", "404"])
            }},
            "/api/v1/audit": {"get": {
                "summary": "The audit log, newest first",
                "description": "A mesh-admin reads every entry; anyone else their own entries and those about products their teams own.",
                "operationId": "audit", "security": secured, "parameters": audit_params,
                "responses": responses(ok("A page of entries", page_of("AuditEntry")), &["400", "401"])
            }},
            "/api/v1/access/requests": {"get": {
                "summary": "The caller's inbox: requests it may decide, and its own",
                "operationId": "listAccessRequests", "security": secured, "parameters": paging(),
                "responses": responses(ok("A page of requests", page_of("InboxItem")), &["400", "401"])
            }, "post": {
                "summary": "Ask a product's owners for access",
                "operationId": "requestAccess", "security": secured,
                "requestBody": body("AccessRequestBody", true),
                "responses": Value::Object(created)
            }},
            "/api/v1/access/requests/{id}/approve": {"post": {
                "summary": "Approve a pending request (owners, approvers, mesh-admin)",
                "operationId": "approveAccessRequest", "security": secured, "parameters": id_path(),
                "requestBody": body("Decision", false),
                "responses": responses(ok("The decision and its grant", schema_ref("DecisionResult")), &["400", "401", "403", "404"])
            }},
            "/api/v1/access/requests/{id}/deny": {"post": {
                "summary": "Deny a pending request",
                "operationId": "denyAccessRequest", "security": secured, "parameters": id_path(),
                "requestBody": body("Decision", false),
                "responses": responses(ok("The decision", schema_ref("DecisionResult")), &["400", "401", "403", "404"])
            }},
            "/api/v1/access/grants": {"get": {
                "summary": "The caller's grants, or everyone's",
                "operationId": "listGrants", "security": secured, "parameters": grants_params,
                "responses": responses(ok("A page of grants", page_of("Grant")), &["400", "401", "403"])
            }},
            "/api/v1/access/grants/{id}": {"delete": {
                "summary": "Revoke a grant (its holder, the product's deciders, mesh-admin)",
                "operationId": "revokeGrant", "security": secured, "parameters": id_path(),
                "responses": responses(ok("The revoked grant", schema_ref("Grant")), &["400", "401", "403", "404"])
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
                "description": "JSON by default, at most `limit` rows (default 10,000). With `Accept: application/vnd.apache.arrow.stream`, an Arrow IPC stream written as the query computes it, all rows unless `limit` is given.",
                "responses": responses(json!({"description": "The rows", "content": {
                    "application/json": {"schema": schema_ref("QueryResult")},
                    "application/vnd.apache.arrow.stream": {"schema": {"type": "string", "format": "binary"}}
                }}), &["400", "401", "403"])
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
                        "status": {"type": "string", "enum": RUN_STATUSES},
                        "cause": {"type": "string", "enum": ["manual", "backfill", "cron", "upstream", "retry"]},
                        "attempt": {"type": "integer"},
                        "inputs": {"type": "object", "nullable": true,
                            "description": "what the run read: definition hash, upstream data versions, source files"},
                        "steps": {"type": "array", "items": {"type": "object",
                            "required": ["step", "start_ms", "duration_ms"],
                            "properties": {
                                "step": {"type": "string", "enum": ["read", "transform", "checks", "commit"]},
                                "output": {"type": "string"}, "start_ms": {"type": "integer"},
                                "duration_ms": {"type": "integer"}, "rows_in": {"type": "integer"},
                                "rows_out": {"type": "integer"}, "bytes": {"type": "integer"},
                                "detail": {"type": "string"}
                            }}},
                        "log": {"type": "array", "items": {"type": "string"}},
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
                "Lineage": {
                    "type": "object", "required": ["target", "nodes", "edges"],
                    "properties": {
                        "target": {"type": "string"},
                        "nodes": {"type": "array", "items": {
                            "type": "object", "required": ["id", "redacted", "depth"],
                            "properties": {
                                "id": {"type": "string"}, "redacted": {"type": "boolean"},
                                "product": {"type": "string"}, "dataset": {"type": "string"},
                                "column": {"type": "string"}, "classification": {"type": "string"},
                                "depth": {"type": "integer"}
                            }
                        }},
                        "edges": {"type": "array", "items": {
                            "type": "object", "required": ["from", "to", "type", "subtype", "masking"],
                            "properties": {
                                "from": {"type": "string"}, "to": {"type": "string"}, "field": {"type": "string"},
                                "type": {"type": "string", "enum": ["DIRECT", "INDIRECT"]},
                                "subtype": {"type": "string", "enum": ["IDENTITY", "TRANSFORMATION", "AGGREGATION", "JOIN", "GROUP_BY", "FILTER", "SORT", "WINDOW", "CONDITIONAL"]},
                                "masking": {"type": "boolean"}
                            }
                        }}
                    }
                },
                "ProductHealth": {
                    "type": "object", "required": ["product", "domain", "health", "reasons"],
                    "properties": {
                        "product": {"type": "string"}, "domain": {"type": "string"},
                        "health": {"type": "string", "enum": ["healthy", "degraded", "failing"]},
                        "reasons": {"type": "array", "items": {"type": "string"}},
                        "newest_release": {"type": "string", "nullable": true},
                        "confirmed_at": {"type": "string", "nullable": true},
                        "age_seconds": {"type": "integer", "nullable": true},
                        "freshness_warn_seconds": {"type": "integer", "nullable": true},
                        "freshness_fail_seconds": {"type": "integer", "nullable": true},
                        "quality_pass_rate": {"type": "number", "nullable": true},
                        "quality_min_pass_rate": {"type": "number"},
                        "quality_window": {"type": "string"},
                        "last_run": {"type": "object", "nullable": true}
                    }
                },
                "RunRequest": {
                    "type": "object", "additionalProperties": false,
                    "properties": {"products": {"type": "array", "items": {"type": "string"}},
                        "force": {"type": "boolean", "default": false,
                            "description": "run and publish even what is up to date"}}
                },
                "RunResult": {
                    "type": "object", "required": ["runs", "recovered", "succeeded"],
                    "properties": {
                        "runs": {"type": "array", "items": schema_ref("Run")},
                        "recovered": {"type": "array", "items": schema_ref("Run"),
                            "description": "runs a stopped process left open, closed before this one"},
                        "succeeded": {"type": "boolean"}
                    }
                },
                "AuditEntry": {
                    "type": "object", "required": ["seq", "at", "principal", "action", "decision", "reason"],
                    "properties": {
                        "seq": {"type": "integer"}, "at": {"type": "string"},
                        "principal": {"type": "string"}, "action": {"type": "string"},
                        "product": {"type": "string", "nullable": true},
                        "columns": {"type": "array", "items": {"type": "string"}},
                        "decision": {"type": "string", "enum": ["allow", "deny", "done"]},
                        "reason": {"type": "string"}, "detail": {}
                    }
                },
                "AccessRequestBody": {
                    "type": "object", "required": ["product", "purpose"], "additionalProperties": false,
                    "properties": {
                        "product": {"type": "string"}, "purpose": {"type": "string"},
                        "duration": {"type": "string", "default": "30d"},
                        "pii": {"type": "boolean", "default": false}
                    }
                },
                "AccessRequest": {
                    "type": "object",
                    "required": ["id", "product", "principal", "purpose", "duration_secs", "pii", "requested_at", "status"],
                    "properties": {
                        "id": {"type": "string"}, "product": {"type": "string"},
                        "principal": {"type": "string"}, "purpose": {"type": "string"},
                        "duration_secs": {"type": "integer"}, "pii": {"type": "boolean"},
                        "requested_at": {"type": "string"},
                        "status": {"type": "string", "enum": ["pending", "approved", "denied"]},
                        "decided_by": {"type": "string", "nullable": true},
                        "decided_at": {"type": "string", "nullable": true},
                        "reason": {"type": "string", "nullable": true}
                    }
                },
                "InboxItem": {
                    "allOf": [
                        schema_ref("AccessRequest"),
                        {"type": "object", "required": ["can_decide"], "properties": {"can_decide": {"type": "boolean"}}}
                    ]
                },
                "Decision": {
                    "type": "object", "additionalProperties": false,
                    "properties": {"reason": {"type": "string"}}
                },
                "DecisionResult": {
                    "type": "object", "required": ["request", "status"],
                    "properties": {
                        "request": {"type": "string"},
                        "status": {"type": "string", "enum": ["approved", "denied"]},
                        "grant": {"allOf": [schema_ref("Grant")], "nullable": true}
                    }
                },
                "Grant": {
                    "type": "object",
                    "required": ["id", "product", "principal", "purpose", "allows_pii", "granted_by", "granted_at", "expires_at"],
                    "properties": {
                        "id": {"type": "string"}, "request_id": {"type": "string", "nullable": true},
                        "product": {"type": "string"}, "principal": {"type": "string"},
                        "purpose": {"type": "string"}, "allows_pii": {"type": "boolean"},
                        "granted_by": {"type": "string"}, "granted_at": {"type": "string"},
                        "expires_at": {"type": "string"},
                        "revoked_at": {"type": "string", "nullable": true},
                        "revoked_by": {"type": "string", "nullable": true}
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
                            "name": {"type": "string"},
                            "type": {"type": "string", "description": "the contract type (`string`, `bigint`, `decimal(15,2)`, `list<string>`, …); Arrow's name for types contracts cannot declare"}
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
