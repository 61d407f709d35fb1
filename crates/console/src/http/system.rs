//! `/healthz`, `/metrics` and `/api/v1/openapi.json`: the installation as a whole, and
//! the API document put together from every resource's paths.

use super::error::ErrorBody;
use super::Http;
use crate::service::system::{DirectoryHealth, EngineHealth, Health, KubeHealth, System};
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(title = "whalemountain", description = "Container lending for a university department. REST API v1."),
    paths(healthz, metrics),
    components(schemas(Health, EngineHealth, DirectoryHealth, KubeHealth, ErrorBody)),
    modifiers(&SecuritySchemes),
    security(("bearer" = []), ("session" = []))
)]
struct ApiDoc;

/// The API document: every resource's paths and schemas, with the answers every operation
/// can give ([`complete`]) and the links from creates to what they make.
pub(super) fn openapi() -> serde_json::Value {
    static DOC: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = serde_json::to_value(annotated()).expect("the document serializes");
        complete(&mut doc);
        add_rules(&mut doc);
        doc
    })
    .clone()
}

/// Error answers shared by every operation, by what the operation takes: what the front
/// door, the extractors and the use cases answer for any of them.
fn common_errors(
    secured: bool,
    params: bool,
    path_params: bool,
    body: bool,
) -> Vec<(&'static str, &'static str)> {
    let mut answers = Vec::new();
    if params || body {
        answers.push(("400", "invalid input: the message says which field and why"));
    }
    if secured {
        answers.push(("401", "no valid session or token"));
        answers.push(("403", "not allowed: a build-scope token, another role's operation, or a session cookie from another site"));
    }
    if path_params {
        answers.push(("404", "no such thing, or another user's"));
    }
    if body {
        answers.push(("413", "the body is larger than the limit"));
        answers.push(("415", "a content type this operation does not take"));
    }
    answers.push(("500", "an internal error (the log says more)"));
    answers.push((
        "503",
        "a container host, the cluster or the database does not answer now; try again",
    ));
    answers
}

/// Adds [`common_errors`] to each operation that does not name them itself, and the
/// links from creates to the resources they make (for clients and stateful fuzzers).
fn complete(doc: &mut serde_json::Value) {
    use serde_json::json;
    let error = json!({"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}});
    let ids = operation_ids(doc);
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in item.iter_mut() {
            if !["get", "put", "post", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            // `security: [{}]` marks the operations anyone may call.
            let secured = op["security"] != json!([{}]);
            let params = op["parameters"].as_array().is_some_and(|p| !p.is_empty());
            // A path parameter, or a query naming a host or an owner, can name nothing.
            let path_params = op["parameters"].as_array().is_some_and(|p| {
                p.iter()
                    .any(|p| p["in"] == "path" || p["name"] == "host" || p["name"] == "owner")
            });
            let body = op.get("requestBody").is_some();
            // Every operation that takes a body needs one.
            if body {
                op["requestBody"]["required"] = json!(true);
            }
            let responses = op["responses"]
                .as_object_mut()
                .expect("every operation has responses");
            if path.starts_with("/api/") {
                for (status, description) in common_errors(secured, params, path_params, body) {
                    responses
                        .entry(status)
                        .or_insert_with(|| json!({"description": description, "content": error}));
                }
            }
            for (from, status, field, targets) in LINKS {
                if *from != format!("{method} {path}") {
                    continue;
                }
                let mut links = serde_json::Map::new();
                for (target, param) in *targets {
                    if let Some(id) = ids.get(*target) {
                        links.insert(
                            id.clone(),
                            json!({"operationId": id, "parameters": {*param: format!("$response.body#/{field}")}}),
                        );
                    }
                }
                if let Some(r) = responses.get_mut(*status) {
                    r["links"] = serde_json::Value::Object(links);
                }
            }
        }
    }
}

/// Rules of the server's validation that the handlers' annotations do not carry, so a
/// client (and a fuzzer) knows before sending what will be refused: each pattern is the
/// parser's, and a unit test beside each parser shows they agree.
fn add_rules(doc: &mut serde_json::Value) {
    use crate::service::accounts::{MAX_PASSWORD_INPUT, MAX_TOKEN_NAME, MAX_USERNAME_INPUT};
    use crate::service::containers::{LABELS_PATTERN, LABEL_PATTERN, MAX_LABELS};
    use crate::service::courses::{self, text_pattern};
    use crate::service::storage::{MAX_PATH, PATH_PATTERN};
    use serde_json::json;
    use wm_domain::{ImageRef, ShortName, UserName};

    // Fields that take one of several forms: the annotation's stand-in type is replaced,
    // its description stays. A list comes in either of the report's forms: one
    // space-separated string, or an array.
    let list = |item: serde_json::Value| json!({"oneOf": [{"type": "string"}, {"type": "array", "items": item}, {"type": "null"}]});
    let strings = list(json!({"type": "string"}));
    let labels = json!({"oneOf": [
        {"type": "string", "pattern": LABELS_PATTERN},
        {"type": "array", "items": {"type": "string", "pattern": LABEL_PATTERN}, "maxItems": MAX_LABELS},
        {"type": "null"}
    ]});
    // Ports: the string form's words are numbers of 1 to 6 digits (the range, a port given
    // twice and the installation's most ports are checked by the server alone).
    let ports = json!({"oneOf": [
        {"type": "string", "pattern": "^\\s*(?:[0-9]{1,6}(?:\\s+[0-9]{1,6})*)?\\s*$"},
        {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 65535}},
        {"type": "null"}
    ]});
    let forms = [
        ("CreateContainer", "env", strings.clone()),
        ("CreateContainer", "ports", ports.clone()),
        ("CreateContainer", "requires", labels.clone()),
        (
            "CreateContainer",
            "memory",
            json!({"oneOf": [{"type": "string"}, {"type": "integer", "minimum": 16 << 20}, {"type": "null"}]}),
        ),
        ("CreateVm", "ports", ports),
        ("NewCourse", "host_labels", labels),
        (
            "ExecCommand",
            "cmd",
            json!({"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]}),
        ),
        ("NewToken", "scope", json!({"enum": ["all", "build", null]})),
    ];
    for (schema, property, form) in forms {
        let target = property_schema(doc, schema, property);
        let description = target["description"].take();
        *target = form;
        if !description.is_null() {
            target["description"] = description;
        }
    }

    // Rules added to a field's type.
    let short_name = json!({"pattern": ShortName::PATTERN, "maxLength": ShortName::MAX_NEW_LEN});
    let image = json!({"pattern": ImageRef::PATTERN, "maxLength": ImageRef::MAX_LEN});
    let user_name = json!({"pattern": UserName::PATTERN, "maxLength": UserName::MAX_LEN});
    let new_password = json!({"minLength": 8, "maxLength": MAX_PASSWORD_INPUT});
    let storage_path = json!({"pattern": PATH_PATTERN, "maxLength": MAX_PATH});
    let rules = [
        ("CreateContainer", "name", short_name.clone()),
        ("CreateContainer", "image", image.clone()),
        ("CreateVm", "name", short_name.clone()),
        ("VmImageForm", "name", short_name),
        ("PullRequest", "image", image),
        ("NewUser", "name", user_name),
        ("NewUser", "password", new_password.clone()),
        ("UserPatch", "password", new_password.clone()),
        ("PasswordChange", "new", new_password),
        (
            "PasswordChange",
            "current",
            json!({"maxLength": MAX_PASSWORD_INPUT}),
        ),
        (
            "LoginRequest",
            "username",
            json!({"maxLength": MAX_USERNAME_INPUT}),
        ),
        (
            "LoginRequest",
            "password",
            json!({"maxLength": MAX_PASSWORD_INPUT}),
        ),
        (
            "NewToken",
            "name",
            json!({"minLength": 1, "maxLength": MAX_TOKEN_NAME, "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]*$"}),
        ),
        ("StorageUploadForm", "path", storage_path.clone()),
        (
            "NewCourse",
            "name",
            json!({"pattern": text_pattern(1, courses::MAX_NAME)}),
        ),
        (
            "NewCourse",
            "term",
            json!({"pattern": text_pattern(1, courses::MAX_TERM)}),
        ),
        ("NewCourse", "ends_at", json!({"format": "date-time"})),
        (
            "CreateContainer",
            "expires_at",
            json!({"format": "date-time"}),
        ),
        (
            "NewUser",
            "role",
            json!({"enum": ["student", "teacher", "admin"]}),
        ),
        (
            "UserPatch",
            "role",
            json!({"enum": ["student", "teacher", "admin", null]}),
        ),
    ];
    for (schema, property, rule) in rules {
        merge(property_schema(doc, schema, property), rule);
    }
    let mut parameters = vec![
        ("/api/v1/storage/files", "get", "path", storage_path.clone()),
        ("/api/v1/storage/files", "delete", "path", storage_path),
    ];
    for path in ["/api/v1/admin/audit", "/api/v1/admin/audit/export"] {
        for time in ["since", "until", "before"] {
            parameters.push((path, "get", time, json!({"format": "date-time"})));
        }
        for text in ["actor", "action", "target"] {
            parameters.push((path, "get", text, json!({"maxLength": 256})));
        }
        // Any count a u32 holds; the server clamps it to its page size.
        parameters.push((
            path,
            "get",
            "limit",
            json!({"format": "int64", "minimum": 0, "maximum": u32::MAX}),
        ));
    }
    for (path, method, name, rule) in parameters {
        let params = doc["paths"][path][method]["parameters"].as_array_mut();
        let target = params
            .into_iter()
            .flatten()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no parameter {name} in {method} {path}"));
        merge(&mut target["schema"], rule);
    }
}

/// A property's schema in the document (there must be one: a renamed field would
/// otherwise lose its rule without a word).
fn property_schema<'a>(
    doc: &'a mut serde_json::Value,
    schema: &str,
    property: &str,
) -> &'a mut serde_json::Value {
    let target = &mut doc["components"]["schemas"][schema]["properties"][property];
    assert!(target.is_object(), "no property {property} in {schema}");
    target
}

fn merge(target: &mut serde_json::Value, rule: serde_json::Value) {
    if let (Some(t), serde_json::Value::Object(r)) = (target.as_object_mut(), rule) {
        t.extend(r);
    }
}

/// `"METHOD /path"` to its operation id.
fn operation_ids(doc: &serde_json::Value) -> std::collections::HashMap<String, String> {
    let mut ids = std::collections::HashMap::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            if let Some(id) = op["operationId"].as_str() {
                ids.insert(format!("{method} {path}"), id.to_string());
            }
        }
    }
    ids
}

/// What a create answers leads to: (the create, its status, the answer's field, and the
/// operations with the parameter that field fills).
type Link = (
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const LINKS: &[Link] = &[
    (
        "post /api/v1/containers",
        "201",
        "name",
        &[
            ("get /api/v1/containers/{name}", "name"),
            ("patch /api/v1/containers/{name}", "name"),
            ("delete /api/v1/containers/{name}", "name"),
            ("post /api/v1/containers/{name}/start", "name"),
            ("post /api/v1/containers/{name}/stop", "name"),
            ("post /api/v1/containers/{name}/exec", "name"),
            ("get /api/v1/containers/{name}/logs", "name"),
            ("get /api/v1/containers/{name}/files", "name"),
            ("post /api/v1/containers/{name}/files", "name"),
        ],
    ),
    (
        "post /api/v1/vms",
        "201",
        "name",
        &[
            ("get /api/v1/vms/{name}", "name"),
            ("post /api/v1/vms/{name}/start", "name"),
            ("post /api/v1/vms/{name}/destroy", "name"),
            ("delete /api/v1/vms/{name}", "name"),
            ("get /api/v1/vms/{name}/xml", "name"),
            ("get /api/v1/vms/{name}/console.log", "name"),
        ],
    ),
    (
        "post /api/v1/vm-images",
        "201",
        "name",
        &[("delete /api/v1/vm-images/{name}", "name")],
    ),
    (
        "post /api/v1/tokens",
        "201",
        "id",
        &[("delete /api/v1/tokens/{id}", "id")],
    ),
    (
        "post /api/v1/admin/users",
        "201",
        "name",
        &[
            ("get /api/v1/admin/users/{name}/quota", "name"),
            ("put /api/v1/admin/users/{name}/quota", "name"),
            ("delete /api/v1/admin/users/{name}/quota", "name"),
            ("get /api/v1/admin/users/{name}/storage", "name"),
            ("delete /api/v1/admin/users/{name}/storage", "name"),
        ],
    ),
];

/// The document as the handlers' annotations give it.
fn annotated() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    for part in [
        super::session::Doc::openapi(),
        super::admin::Doc::openapi(),
        super::courses::Doc::openapi(),
        super::containers::Doc::openapi(),
        super::images::Doc::openapi(),
        super::export::Doc::openapi(),
        super::ci::Doc::openapi(),
        super::storage::Doc::openapi(),
        super::kube::Doc::openapi(),
        super::vms::Doc::openapi(),
    ] {
        doc.merge(part);
    }
    doc
}

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        c.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                super::extract::SESSION_COOKIE,
                "set by login; named __Host-wm_session when the console is behind TLS \
                 (WM_SECURE_COOKIES or an https public URL)",
            ))),
        );
    }
}

/// `/healthz` and `/metrics`, outside the API.
pub(super) fn router() -> Router<Http> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
}

/// `/api/v1/openapi.json`.
pub(super) fn api_router() -> Router<Http> {
    Router::new().route("/openapi.json", get(openapi_json))
}

/// Liveness, with the state of the database and the Docker host.
#[utoipa::path(get, path = "/healthz", security(()), responses((status = 200, body = Health), (status = 503, body = Health)))]
async fn healthz(State(system): State<Arc<System>>) -> (StatusCode, Json<Health>) {
    let health = system.health().await;
    let status = if health.database == "ok" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(health))
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", security(()), responses((status = 200, content_type = "application/openmetrics-text", body = String)))]
async fn metrics(State(system): State<Arc<System>>) -> Response {
    let text = system.metrics_text().await;
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    (headers, text).into_response()
}

async fn openapi_json() -> Json<serde_json::Value> {
    Json(openapi())
}

#[cfg(test)]
mod tests {
    /// Every rule finds the property or parameter it is for (a renamed field would
    /// otherwise lose its rule without a word).
    #[test]
    fn every_rule_lands() {
        let doc = super::openapi();
        let name = &doc["components"]["schemas"]["CreateContainer"]["properties"]["name"];
        assert_eq!(name["maxLength"], wm_domain::ShortName::MAX_NEW_LEN);
    }
}
