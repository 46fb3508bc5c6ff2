//! The API's description: a hand-written OpenAPI 3.1 document (`vault/http/openapi.json`), served
//! at `GET /openapi.json`. A test keeps it in step with the router in [`crate::server`].

/// The OpenAPI 3.1 document, as served.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

#[cfg(test)]
mod tests {
    use super::OPENAPI_JSON;

    const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

    /// `(path, method)` of every `.route("path", method(handler)…)` in the router's source.
    fn routes_in_router() -> Vec<(String, String)> {
        let source = include_str!("server.rs");
        let start = source
            .find("pub fn router")
            .expect("server.rs has fn router");
        let body = &source[start..];
        let body = &body[..body.find("\n}\n").unwrap_or(body.len())];
        let mut routes = Vec::new();
        for chunk in body.split(".route(").skip(1) {
            let path = chunk.split('"').nth(1).expect("a path literal").to_owned();
            for method in METHODS {
                let call = format!("{method}(");
                let called = chunk.match_indices(&call).any(|(i, _)| {
                    i == 0 || {
                        let before = chunk.as_bytes()[i - 1];
                        !(before.is_ascii_alphanumeric() || before == b'_')
                    }
                });
                if called {
                    routes.push((path.clone(), method.to_owned()));
                }
            }
        }
        routes
    }

    #[test]
    fn every_route_of_the_router_is_described() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI_JSON).expect("valid JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        let routes = routes_in_router();
        for expected in [
            "/health",
            "/metrics",
            "/openapi.json",
            "/v1/enroll",
            "/v1/heartbeat",
            "/v1/gaps",
            "/v1/segments/{session}/{sequence}",
        ] {
            assert!(routes.iter().any(|(p, _)| p == expected), "{routes:?}");
        }
        for (path, method) in &routes {
            let op = &doc["paths"][path][method];
            assert!(op.is_object(), "{method} {path} is not in openapi.json");
            assert!(
                op["responses"].is_object(),
                "{method} {path} has no responses"
            );
        }
        // And nothing is described that the router does not serve.
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                assert!(
                    routes.iter().any(|(p, m)| p == path && m == method),
                    "openapi.json describes {method} {path}, which the router does not serve"
                );
            }
        }
    }

    #[test]
    fn every_route_has_an_access_rule_and_every_rule_a_route() {
        let routes = routes_in_router();
        for (path, method) in &routes {
            assert!(
                vigil_vault_core::access::route_rule(method, path).is_some(),
                "{method} {path} has no access rule in access::ROUTES"
            );
        }
        for rule in vigil_vault_core::access::ROUTES {
            assert!(
                routes
                    .iter()
                    .any(|(p, m)| p == rule.path && m.eq_ignore_ascii_case(rule.method)),
                "access::ROUTES names {} {}, which the router does not serve",
                rule.method,
                rule.path
            );
        }
    }

    #[test]
    fn references_resolve() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI_JSON).unwrap();
        let mut refs = Vec::new();
        fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(map) => {
                    if let Some(r) = map.get("$ref").and_then(|r| r.as_str()) {
                        out.push(r.to_owned());
                    }
                    map.values().for_each(|v| walk(v, out));
                }
                serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
                _ => {}
            }
        }
        walk(&doc, &mut refs);
        assert!(!refs.is_empty());
        for r in refs {
            let pointer = r.strip_prefix('#').expect("local reference");
            assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
        }
    }
}
