//! `/images/...`: the images a caller may use, sharing, pulls and builds. Pulls and
//! builds answer their live progress as NDJSON.

use super::error::ErrorBody;
use super::extract::ApiJson;
use super::forms::{multipart_form, read_build};
use super::web::Lang;
use super::{ApiError, Http};
use crate::config::Config;
use crate::service::accounts::Caller;
use crate::service::audit::AuditActor;
use crate::service::images::{CourseNote, Image, ImagePatch, Images, PullRequest, Scan};
use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::Extension;
use axum::{Json, Router};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde_json::Value;
use std::sync::Arc;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    paths(list_images, patch_image, delete_image, pull_image, build_image),
    components(schemas(Image, ImagePatch, PullRequest, Scan, CourseNote))
)]
pub(super) struct Doc;

pub(super) fn router(config: &Config) -> Router<Http> {
    let build_limit = config.build_context_max_bytes + 1024 * 1024;
    Router::new()
        .route("/images", get(list_images))
        .route("/images/pull", post(pull_image))
        .route(
            "/images/build",
            post(build_image).layer(DefaultBodyLimit::max(build_limit)),
        )
        .route("/images/{ref}", patch(patch_image).delete(delete_image))
}

/// A long operation's lines with the sentence of a failed last line in `lang` (its
/// `message`; the line's key stays as it is): what `localize` does for error answers.
fn said_in(
    lang: Lang,
    lines: impl Stream<Item = Value> + Send + 'static,
) -> impl Stream<Item = Value> + Send + 'static {
    lines.map(move |mut v| {
        if lang != Lang::En && v["status"] == "error" {
            if let Some(said) = lang.line_error(&v["error"]) {
                v["error"]["message"] = Value::String(said);
            }
        }
        v
    })
}

/// A long operation's lines as an `application/x-ndjson` answer, each line as it comes.
pub(super) fn ndjson(lines: impl Stream<Item = Value> + Send + 'static) -> Response {
    let body = Body::from_stream(lines.map(|v| {
        let mut line = serde_json::to_vec(&v).expect("JSON values serialize");
        line.push(b'\n');
        Ok::<_, std::convert::Infallible>(Bytes::from(line))
    }));
    let mut resp = body.into_response();
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    resp
}

#[utoipa::path(get, path = "/api/v1/images", responses((status = 200, body = [Image]), (status = 503, body = ErrorBody)))]
/// The images the caller may use: own, shared by others, public.
async fn list_images(
    State(images): State<Arc<Images>>,
    caller: Caller,
) -> Result<Json<Vec<Image>>, ApiError> {
    Ok(Json(images.list(&caller).await?))
}

#[utoipa::path(patch, path = "/api/v1/images/{ref}", params(("ref" = String, Path, description = "percent-encoded reference or image id")),
    request_body = ImagePatch, responses((status = 200, body = Image), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
/// Set an image's description and sharing (owner only).
async fn patch_image(
    State(images): State<Arc<Images>>,
    caller: Caller,
    audit: Option<Extension<AuditActor>>,
    Path(raw): Path<String>,
    ApiJson(patch): ApiJson<ImagePatch>,
) -> Result<Json<Image>, ApiError> {
    if let (Some(Extension(a)), Some(shared)) = (audit, patch.shared) {
        a.set_action(if shared {
            "image.share"
        } else {
            "image.unshare"
        });
    }
    Ok(Json(images.patch(&caller, &raw, patch).await?))
}

#[utoipa::path(delete, path = "/api/v1/images/{ref}", params(("ref" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "a container uses it")))]
/// Remove an image (its owner; public images only an admin).
async fn delete_image(
    State(images): State<Arc<Images>>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    images.delete(&caller, &raw).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/images/pull", request_body = PullRequest,
    responses((status = 200, content_type = "application/x-ndjson", description = "progress lines; the last is {status: done, image} or {status: error, error}"),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody, description = "registry not allowed, or a namespace of built images")))]
/// Pull an image from a registry, with live progress.
async fn pull_image(
    State(images): State<Arc<Images>>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(req): ApiJson<PullRequest>,
) -> Result<Response, ApiError> {
    let lines = images.pull(&caller, req).await?;
    Ok(ndjson(said_in(Lang::from_headers(&headers), lines)))
}

#[utoipa::path(post, path = "/api/v1/images/build",
    request_body(content = super::forms::BuildForm, content_type = "multipart/form-data", description = "`name` (web or web:1); `dockerfile` (text) or `context` (tar or tar.gz file); any number of `buildarg` (KEY=value); `host` to build on one host only"),
    responses((status = 200, content_type = "application/x-ndjson", description = "build log lines; the last is {status: done, image} or {status: error, error}"),
        (status = 400, body = ErrorBody), (status = 409, body = ErrorBody, description = "over the builds quota"), (status = 413, body = ErrorBody)))]
/// Build an image into the caller's namespace, with its live log.
async fn build_image(
    State(images): State<Arc<Images>>,
    State(config): State<Arc<Config>>,
    caller: Caller,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let form = multipart_form(multipart, "build")?;
    let input = read_build(
        form,
        None,
        config.build_context_max_bytes,
        config.upload_max_files,
    )
    .await?;
    let lines = images.build(&caller, input).await?;
    Ok(ndjson(said_in(Lang::from_headers(&headers), lines)))
}
