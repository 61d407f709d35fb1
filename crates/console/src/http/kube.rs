//! `/kubeconfig`: a kubeconfig for the caller's own namespace on the cluster.

use super::error::ErrorBody;
use super::{ApiError, Http};
use crate::service::accounts::Caller;
use crate::service::containers::Containers;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(paths(kubeconfig))]
pub(super) struct Doc;

pub(super) fn router() -> Router<Http> {
    Router::new().route("/kubeconfig", get(kubeconfig))
}

#[utoipa::path(get, path = "/api/v1/kubeconfig",
    responses((status = 200, content_type = "text/yaml", description = "a kubeconfig for the caller's namespace, with a token of limited lifetime"),
        (status = 404, body = ErrorBody, description = "the kubernetes backend is not enabled (`backend_unavailable`)"),
        (status = 503, body = ErrorBody)))]
/// A kubeconfig for the caller's own namespace.
async fn kubeconfig(
    State(containers): State<Arc<Containers>>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let yaml = containers.kubeconfig(&caller).await?;
    Ok(([(CONTENT_TYPE, "text/yaml; charset=utf-8")], yaml).into_response())
}
