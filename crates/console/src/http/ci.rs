//! `/ci`: each user's GitLab runner, and the pipeline that builds through the API.

use super::error::ErrorBody;
use super::extract::ApiJson;
use super::{ApiError, Http};
use crate::config::Config;
use crate::service::accounts::Caller;
use crate::service::ci::{Ci, CiRequest, CiView, RunnerView};
use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, HOST};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use std::sync::Arc;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    paths(put_ci, get_ci, delete_ci, gitlab_ci_yml),
    components(schemas(CiRequest, CiView, RunnerView))
)]
pub(super) struct Doc;

pub(super) fn router() -> Router<Http> {
    Router::new()
        .route("/ci", put(put_ci).get(get_ci).delete(delete_ci))
        .route("/ci/gitlab-ci.yml", get(gitlab_ci_yml))
}

#[utoipa::path(put, path = "/api/v1/ci", request_body = CiRequest,
    responses((status = 200, body = CiView), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
/// Set the GitLab runner token and (re)start the caller's runner.
async fn put_ci(
    State(ci): State<Arc<Ci>>,
    caller: Caller,
    ApiJson(req): ApiJson<CiRequest>,
) -> Result<Json<CiView>, ApiError> {
    Ok(Json(ci.put(&caller, req).await?))
}

#[utoipa::path(get, path = "/api/v1/ci", responses((status = 200, body = CiView)))]
/// The caller's CI settings and runner state.
async fn get_ci(State(ci): State<Arc<Ci>>, caller: Caller) -> Result<Json<CiView>, ApiError> {
    Ok(Json(ci.get(&caller).await?))
}

#[utoipa::path(delete, path = "/api/v1/ci", responses((status = 204)))]
/// Remove the caller's runner and CI settings.
async fn delete_ci(State(ci): State<Arc<Ci>>, caller: Caller) -> Result<StatusCode, ApiError> {
    ci.delete(&caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/ci/gitlab-ci.yml", responses((status = 200, content_type = "text/yaml", description = "the pipeline, a YAML document")))]
/// A pipeline to commit beside the Dockerfile: it sends the repository to the build API.
async fn gitlab_ci_yml(
    State(ci): State<Arc<Ci>>,
    State(config): State<Arc<Config>>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // The console's address as the pipeline reaches it: the public URL, or the name this
    // request was sent to.
    let base = match &config.public_url {
        Some(u) => u.clone(),
        None => {
            let host = headers
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| {
                    h.chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
                })
                .unwrap_or("localhost");
            format!("http://{host}")
        }
    };
    let yaml = ci.pipeline(&caller, &base)?;
    let mut resp = yaml.into_response();
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/yaml; charset=utf-8"),
    );
    Ok(resp)
}
