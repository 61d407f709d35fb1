//! The transport: the REST API v1 and the web pages over the same use cases.
//!
//! One file per resource, each with its own `router()` and OpenAPI paths; handlers stay
//! private to their file and call only the use cases of `crate::service`. This module
//! puts the routers together with the middleware every answer passes through; `error`
//! is the one mapping from errors to HTTP, `extract` the extractors.

mod admin;
mod audit;
mod ci;
mod client_addr;
mod containers;
mod courses;
mod error;
mod export;
mod extract;
mod forms;
mod images;
mod kube;
mod origin;
pub(crate) mod serve;
mod session;
mod storage;
mod system;
mod vms;
mod web;

pub(crate) use error::ApiError;

use crate::config::Config;
use crate::metrics::{Metrics, RequestLabels, RouteLabels};
use crate::service::accounts::Accounts;
use crate::service::audit::Audit;
use crate::service::ci::Ci;
use crate::service::cleanup::Cleanup;
use crate::service::containers::Containers;
use crate::service::courses::Courses;
use crate::service::images::Images;
use crate::service::quotas::Quotas;
use crate::service::reconcile::Reconciler;
use crate::service::sif::SifCache;
use crate::service::storage::Storage;
use crate::service::system::System;
use crate::service::users::Users;
use crate::service::vms::Vms;
use crate::service::Error;
use axum::extract::{DefaultBodyLimit, FromRef, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use std::sync::Arc;
use std::time::Instant;

/// Largest JSON body accepted.
const JSON_BODY_LIMIT: usize = 64 * 1024;

/// What the transport serves: the use cases, and the settings and metrics of the
/// transport itself. Handlers take the one use case they call (`State<Arc<Containers>>`).
#[derive(Clone)]
pub(crate) struct Http {
    pub(crate) config: Arc<Config>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) accounts: Arc<Accounts>,
    pub(crate) containers: Arc<Containers>,
    pub(crate) images: Arc<Images>,
    pub(crate) sif: Arc<SifCache>,
    pub(crate) cleanup: Arc<Cleanup>,
    pub(crate) ci: Arc<Ci>,
    pub(crate) reconciler: Arc<Reconciler>,
    pub(crate) system: Arc<System>,
    pub(crate) quotas: Arc<Quotas>,
    pub(crate) storage: Arc<Storage>,
    pub(crate) courses: Arc<Courses>,
    pub(crate) users: Arc<Users>,
    pub(crate) vms: Arc<Vms>,
    pub(crate) audit: Audit,
}

macro_rules! part {
    ($field:ident: $t:ty) => {
        impl FromRef<Http> for $t {
            fn from_ref(http: &Http) -> Self {
                http.$field.clone()
            }
        }
    };
}
part!(config: Arc<Config>);
part!(accounts: Arc<Accounts>);
part!(containers: Arc<Containers>);
part!(images: Arc<Images>);
part!(sif: Arc<SifCache>);
part!(cleanup: Arc<Cleanup>);
part!(ci: Arc<Ci>);
part!(reconciler: Arc<Reconciler>);
part!(system: Arc<System>);
part!(quotas: Arc<Quotas>);
part!(storage: Arc<Storage>);
part!(courses: Arc<Courses>);
part!(users: Arc<Users>);
part!(vms: Arc<Vms>);
part!(audit: Audit);

/// The whole HTTP service: the API under `/api/v1`, the pages, and the middleware.
pub(crate) fn router(http: Http) -> Router {
    let api = Router::new()
        .merge(session::router())
        .merge(admin::router())
        .merge(containers::router(&http.config))
        .merge(images::router(&http.config))
        .merge(export::router())
        .merge(ci::router())
        .merge(storage::router(&http.config))
        .merge(courses::router())
        .merge(vms::router(&http.config))
        .merge(kube::router())
        .merge(system::api_router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(error::localize));
    Router::new()
        .nest("/api/v1", api)
        .merge(web::router(&http.config))
        .merge(system::router())
        // Outside the API, a person in a browser is the likely reader.
        .fallback(web::not_found_page)
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .layer(middleware::from_fn_with_state(http.clone(), origin::guard))
        .layer(middleware::from_fn_with_state(
            http.clone(),
            audit::audit_mutations,
        ))
        .layer(middleware::from_fn_with_state(http.clone(), track_requests))
        .layer(middleware::from_fn(security_headers))
        .with_state(http)
}

/// `Content-Disposition` of a download called `file_name`: an ASCII stand-in for old
/// clients, and the name itself (RFC 6266 `filename*`).
pub(crate) fn attachment(file_name: &str) -> axum::http::HeaderValue {
    let safe: String = file_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = file_name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b".-_~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    axum::http::HeaderValue::from_str(&format!(
        "attachment; filename=\"{safe}\"; filename*=UTF-8''{encoded}"
    ))
    .expect("ASCII only")
}

/// Headers every answer carries, pages, API answers and errors alike: no sniffing of
/// content types, no referrer to other sites (a page's address can name a container),
/// and no framing by any site (clickjacking), by the old header and by CSP. The CSP
/// also keeps pages to their own stylesheet and script: the console has no inline ones.
async fn security_headers(req: Request, next: Next) -> Response {
    use axum::http::header::{
        CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
    };
    use axum::http::HeaderValue;
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'",
        ),
    );
    resp
}

/// The method as a metrics label: one of the standard methods, or `other`, so that
/// invented methods cannot add series.
fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

async fn not_found() -> ApiError {
    Error::missing("not_found", "endpoint", [], "no such endpoint; this").into()
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed("this endpoint does not take that method".into())
}

/// Counts and times every request by its route (not its path, which would make one
/// series per container). Every label takes its values from a bounded set: a standard
/// method or `other`, a route template or `unmatched`, a status code.
async fn track_requests(State(http): State<Http>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    http.metrics
        .requests
        .get_or_create(&RequestLabels {
            method,
            route: route.clone(),
            status,
        })
        .inc();
    http.metrics
        .request_seconds
        .get_or_create(&RouteLabels { method, route })
        .observe(start.elapsed().as_secs_f64());
    tracing::debug!(
        status,
        elapsed_ms = start.elapsed().as_millis() as u64,
        "answered"
    );
    resp
}
