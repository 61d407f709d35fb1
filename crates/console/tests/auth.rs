//! Logging in, sessions, tokens, accounts, and the error shape of bad requests.

mod common;

use common::*;
use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn assert_error(body: &Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn login_sets_an_http_only_cookie_and_me_answers() {
    let app = spawn_app().await;
    let resp = app
        .client
        .post(app.url("/api/v1/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = resp.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(cookie.starts_with("wm_session=wm_"), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["user"], json!({"name": "admin", "role": "admin"}));

    let session = cookie.split(';').next().unwrap().to_string();
    let me: Value = app
        .client
        .get(app.url("/api/v1/me"))
        .header(COOKIE, &session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&me["name"], &me["role"]),
        (&json!("admin"), &json!("admin"))
    );
    // An administrator has no quota.
    assert_eq!(me["quota"]["containers"], Value::Null, "{me}");
    assert_eq!(me["usage"]["containers"], 0);

    // A cookie-authenticated change from another origin is refused.
    let cross = app
        .client
        .post(app.url("/api/v1/tokens"))
        .header(COOKIE, &session)
        .header("Origin", "http://evil.example")
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn wrong_passwords_and_odd_names_fail_alike() {
    let app = spawn_app().await;
    let (name, _) = app.student().await;
    for (user, pw) in [
        (name.as_str(), "wrong-password"),
        (name.as_str(), ""),
        ("nobody", "password-123"),
        ("*", "password-123"),
        ("x)(|(uid=*", "password-123"),
        ("Admin", ADMIN_PASSWORD),
    ] {
        let (status, body) = app
            .call(
                Method::POST,
                "/api/v1/login",
                None,
                Some(json!({"username": user, "password": pw})),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{user:?}/{pw:?}: {body}");
        assert_error(&body, "invalid_credentials");
    }
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/login",
            None,
            Some(json!({"username": "a".repeat(300), "password": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "invalid_input");
}

#[tokio::test]
async fn unauthenticated_calls_answer_401() {
    let app = spawn_app().await;
    for (method, path) in [
        (Method::GET, "/api/v1/me"),
        (Method::GET, "/api/v1/containers"),
        (Method::POST, "/api/v1/containers"),
        (Method::DELETE, "/api/v1/containers/admin-x"),
        (Method::POST, "/api/v1/tokens"),
        (Method::GET, "/api/v1/admin/users"),
    ] {
        let (status, body) = app.call(method.clone(), path, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_error(&body, "unauthenticated");
        let (status, _) = app
            .call(method.clone(), path, Some("wm_not-a-token"), None)
            .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} with a bad token"
        );
    }
}

#[tokio::test]
async fn logout_ends_the_session() {
    let app = spawn_app().await;
    let (_, token) = app.student().await;
    assert_eq!(app.get("/api/v1/me", &token).await.0, StatusCode::OK);
    let (status, _) = app
        .call(Method::POST, "/api/v1/logout", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/v1/me", &token).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn sessions_survive_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let config = test_config(data.path());
    let mut first = spawn_with(config.clone(), tempfile::tempdir().unwrap()).await;
    let (_, token) = first.student().await;
    first.stop_server().await;
    drop(first);
    let second = spawn_with(config, data).await;
    let (status, body) = second.get("/api/v1/me", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn personal_tokens_and_their_scope() {
    let app = spawn_app().await;
    let (name, session) = app.student().await;
    let (status, created) = app
        .post("/api/v1/tokens", &session, json!({"name": "laptop"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let pat = created["token"].as_str().unwrap();
    let (status, me) = app.get("/api/v1/me", pat).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["name"], name.as_str());
    assert_eq!(app.get("/api/v1/containers", pat).await.0, StatusCode::OK);

    let (status, build) = app
        .post(
            "/api/v1/tokens",
            &session,
            json!({"name": "ci", "scope": "build"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let build = build["token"].as_str().unwrap();
    let (status, body) = app.get("/api/v1/containers", build).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a build token cannot lend containers"
    );
    assert_error(&body, "forbidden");

    let (_, list) = app.get("/api/v1/tokens", &session).await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"laptop") && names.contains(&"ci"));
    assert!(
        list.to_string().find("wm_").is_none(),
        "secrets are never listed"
    );

    for bad in [
        json!({"name": ""}),
        json!({"name": "x", "scope": "root"}),
        json!({"name": "x", "extra": 1}),
    ] {
        let (status, body) = app.post("/api/v1/tokens", &session, bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }

    let id = created["id"].as_str().unwrap();
    let (_, other) = app.student().await;
    assert_eq!(
        app.delete(&format!("/api/v1/tokens/{id}"), &other).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&format!("/api/v1/tokens/{id}"), &session)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.get("/api/v1/me", pat).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn only_admins_manage_accounts() {
    let app = spawn_app().await;
    let (_, student) = app.student().await;
    let (status, body) = app
        .post(
            "/api/v1/admin/users",
            &student,
            json!({"name": "mallory", "password": "password-123", "role": "admin"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_error(&body, "forbidden");
    assert_eq!(
        app.get("/api/v1/admin/users", &student).await.0,
        StatusCode::FORBIDDEN
    );

    let (teacher, tt) = app.user("t", "teacher").await;
    let (_, me) = app.get("/api/v1/me", &tt).await;
    assert_eq!(
        (&me["name"], &me["role"]),
        (&json!(teacher), &json!("teacher"))
    );
    assert!(
        me["quota"].is_object() && me["usage"]["containers"] == 0,
        "{me}"
    );

    for (bad, field) in [
        (
            json!({"name": "Bad Name", "password": "password-123", "role": "student"}),
            "username",
        ),
        (
            json!({"name": "okname", "password": "short", "role": "student"}),
            "password",
        ),
        (
            json!({"name": "okname", "password": "password-123", "role": "root"}),
            "role",
        ),
    ] {
        let (status, body) = app
            .post("/api/v1/admin/users", &app.admin, bad.clone())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    let (status, body) = app
        .post(
            "/api/v1/admin/users",
            &app.admin,
            json!({"name": teacher, "password": "password-123", "role": "student"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let (_, users) = app.get("/api/v1/admin/users", &app.admin).await;
    let names: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"admin") && names.contains(&teacher.as_str()));
}

#[tokio::test]
async fn malformed_requests_get_json_errors() {
    let app = spawn_app().await;
    let (_, token) = app.student().await;
    let send = |body: &'static str, ct: &'static str| {
        app.client
            .post(app.url("/api/v1/containers"))
            .bearer_auth(&token)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let r = send("{not json", "application/json").await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_error(&r.json().await.unwrap(), "malformed_json");
    let r = send("{\"name\": 1, \"image\": \"x\"}", "application/json")
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_error(&r.json().await.unwrap(), "invalid_input");
    let r = send("{\"name\": \"a\"}", "text/plain").await.unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_error(&r.json().await.unwrap(), "unsupported_media_type");

    let huge =
        json!({"name": "x", "image": "busybox", "env": "A=".to_string() + &"x".repeat(200_000)});
    let (status, body) = app.post("/api/v1/containers", &token, huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(&body, "payload_too_large");

    let (status, body) = app.get("/api/v1/nothing-here", &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "not_found");
    let (status, body) = app
        .call(Method::PUT, "/api/v1/me", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_error(&body, "method_not_allowed");
    // And the server is still there.
    assert_eq!(app.get("/api/v1/me", &token).await.0, StatusCode::OK);
}

/// The values an OpenAPI property may take: its `enum`, through `$ref`s and `allOf`/`oneOf`.
fn enum_values(doc: &Value, schema: &Value) -> Vec<String> {
    if let Some(values) = schema["enum"].as_array() {
        return values
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
    }
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap();
        return enum_values(doc, &doc["components"]["schemas"][name]);
    }
    for key in ["allOf", "oneOf", "anyOf"] {
        if let Some(parts) = schema[key].as_array() {
            let found: Vec<String> = parts.iter().flat_map(|p| enum_values(doc, p)).collect();
            if !found.is_empty() {
                return found;
            }
        }
    }
    Vec::new()
}

/// Clients learn every status, backend and scope from the document, in the API's words.
#[tokio::test]
async fn openapi_lists_status_backend_and_scope_values() {
    use wm_domain::{Backend, ContainerStatus, Scope};
    let app = spawn_app().await;
    let (status, doc) = app
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let words = |all: &[&str]| all.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let statuses = words(
        &ContainerStatus::ALL
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>(),
    );
    let backends = words(&Backend::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    let scopes = words(&Scope::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    assert_eq!(statuses.len(), 12);
    for w in [
        "pending", "stopped", "failed", "unknown", "gone", "creating",
    ] {
        assert!(statuses.contains(&w.to_string()), "{w}");
    }
    let prop = |schema: &str, field: &str| {
        let p = &doc["components"]["schemas"][schema]["properties"][field];
        assert!(p.is_object(), "{schema}.{field} missing");
        enum_values(&doc, p)
    };
    assert_eq!(prop("Container", "status"), statuses);
    assert_eq!(prop("Container", "backend"), backends);
    assert_eq!(prop("RunnerView", "state"), statuses);
    assert_eq!(prop("TokenCreated", "scope"), scopes);
    assert_eq!(prop("TokenInfo", "scope"), scopes);
    assert_eq!(backends, ["docker", "kubernetes"]);
    assert_eq!(scopes, ["all", "build"]);
}

#[tokio::test]
async fn openapi_health_and_metrics() {
    let app = spawn_app().await;
    let (status, doc) = app
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/login",
        "/api/v1/logout",
        "/api/v1/me",
        "/api/v1/tokens",
        "/api/v1/admin/users",
        "/api/v1/containers",
        "/api/v1/containers/{name}",
        "/api/v1/containers/{name}/start",
        "/api/v1/containers/{name}/stop",
        "/api/v1/containers/{name}/exec",
        "/api/v1/containers/{name}/files",
        "/api/v1/containers/{name}/logs",
        "/api/v1/kubeconfig",
        "/api/v1/admin/hosts",
        "/api/v1/admin/hosts/{id}",
        "/healthz",
        "/metrics",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    let container = &doc["components"]["schemas"]["Container"]["properties"];
    for field in [
        "name",
        "owner",
        "image",
        "backend",
        "host",
        "address",
        "url",
        "status",
        "ports",
        "env",
        "created_at",
    ] {
        assert!(container[field].is_object(), "Container.{field}");
    }

    let (status, health) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["docker"]["reachable"], true, "{health}");

    app.get("/api/v1/me", &app.admin).await;
    let (status, text) = app.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let text = text.as_str().unwrap();
    for metric in [
        "wm_http_requests_total{",
        "wm_http_request_duration_seconds_bucket{",
        "wm_docker_call_duration_seconds_bucket{",
        "wm_docker_up{host=",
    ] {
        assert!(text.contains(metric), "{metric} missing from:\n{text}");
    }
    let up = format!("wm_docker_up{{host=\"{}\"}} 1", app.config.docker.host_name);
    assert!(text.contains(&up), "{up} missing from:\n{text}");
    assert!(text.contains("route=\"/api/v1/me\""), "{text}");
    // Parts that are not configured export nothing an alert could fire on.
    for absent in ["wm_ldap_", "wm_kubernetes_up"] {
        assert!(!text.contains(absent), "{absent} without its part:\n{text}");
    }
}
