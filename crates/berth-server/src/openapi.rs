//! The OpenAPI 3 document, generated from the route table the router is
//! built from, so the two cannot drift apart.

use serde_json::{Map, Value, json};

/// One route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// HTTP method.
    pub method: &'static str,
    /// Path, with `{param}` segments.
    pub path: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// Berth's own, not in Argo CD's API.
    pub extension: bool,
    /// Needs a token or session.
    pub authenticated: bool,
}

impl Route {
    /// A route.
    pub const fn new(
        method: &'static str,
        path: &'static str,
        summary: &'static str,
        extension: bool,
        authenticated: bool,
    ) -> Route {
        Route {
            method,
            path,
            summary,
            extension,
            authenticated,
        }
    }
}

/// The document for `routes`.
pub fn document(routes: &[Route]) -> Value {
    let mut paths = Map::new();
    for r in routes {
        let params: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut op = json!({
            "summary": r.summary,
            "operationId": format!("{} {}", r.method, r.path),
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {}}},
                "default": {"description": "An error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            },
        });
        if !params.is_empty() {
            op["parameters"] = json!(params);
        }
        if r.authenticated {
            op["security"] = json!([{"bearer": []}, {"cookie": []}]);
        }
        if r.extension {
            op["x-berth-extension"] = json!(true);
            op["tags"] = json!(["berth extension"]);
        }
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[r.method.to_lowercase()] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Berth API",
            "version": crate::VERSION,
            "description": "Argo CD's REST API paths and shapes; Berth's own operations are tagged `berth extension`.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "argocd.token"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "code": {"type": "integer", "description": "gRPC status code, as Argo CD's gateway"},
                        "message": {"type": "string"},
                        "error": {"type": "string"},
                        "details": {"type": "array", "items": {}},
                    },
                },
            },
        },
    })
}
