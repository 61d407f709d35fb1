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

/// The API document: every resource's paths and schemas.
pub(super) fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    for part in [
        super::session::Doc::openapi(),
        super::admin::Doc::openapi(),
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
#[utoipa::path(get, path = "/metrics", security(()), responses((status = 200, content_type = "text/plain", body = String)))]
async fn metrics(State(system): State<Arc<System>>) -> Response {
    let text = system.metrics_text().await;
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    (headers, text).into_response()
}

async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}
