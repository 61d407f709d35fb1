//! `/storage/...`: each user's storage and its files; `/admin/users/{name}/storage` for
//! administrators.

use super::error::ErrorBody;
use super::extract::ApiQuery;
use super::forms::{multipart_form, read_upload};
use super::{attachment, ApiError, Http};
use crate::config::Config;
use crate::service::accounts::{Admin, Caller};
use crate::service::containers::{Containers, Written};
use crate::service::storage::{FileView, Found, Storage, StorageView, VolumeView};
use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use std::sync::Arc;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    paths(
        storage_overview,
        storage_get,
        storage_upload,
        storage_delete,
        user_storage,
        delete_user_storage
    ),
    components(schemas(StorageView, VolumeView, FileView))
)]
pub(super) struct Doc;

pub(super) fn router(config: &Config) -> Router<Http> {
    let upload_limit = config.upload_max_bytes + 1024 * 1024;
    Router::new()
        .route("/storage", get(storage_overview))
        .route(
            "/storage/files",
            get(storage_get)
                .post(storage_upload)
                .delete(storage_delete)
                .layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route(
            "/admin/users/{name}/storage",
            get(user_storage).delete(delete_user_storage),
        )
}

/// Which path, and on which host (default: the first that answers and keeps storage).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PathQuery {
    #[serde(default)]
    path: String,
    host: Option<String>,
}

/// The caller's storage: its size (measured now) against their storage quota, and where
/// their containers find it.
#[utoipa::path(get, path = "/api/v1/storage",
    responses((status = 200, body = StorageView), (status = 401, body = ErrorBody)))]
async fn storage_overview(
    State(storage): State<Arc<Storage>>,
    caller: Caller,
) -> Result<Json<StorageView>, ApiError> {
    Ok(Json(storage.overview(&caller).await?))
}

/// A directory of the caller's storage (a JSON listing; header `x-wm-truncated: true`
/// when it has more entries than one answer lists) or a file (its bytes).
#[utoipa::path(get, path = "/api/v1/storage/files",
    params(("path" = Option<String>, Query, description = "in the storage, `/` or empty for its root"),
        ("host" = Option<String>, Query, description = "whose host's storage; default: the first that answers")),
    responses((status = 200, body = [FileView], description = "a directory's entries, or a file's bytes (application/octet-stream)"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn storage_get(
    State(storage): State<Arc<Storage>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PathQuery>,
) -> Result<Response, ApiError> {
    match storage.get(&caller, &q.path, q.host.as_deref()).await? {
        Found::Dir { entries, truncated } => {
            let mut r = Json(entries).into_response();
            if truncated {
                r.headers_mut()
                    .insert("x-wm-truncated", HeaderValue::from_static("true"));
            }
            Ok(r)
        }
        Found::File { name, size, bytes } => Ok((
            [
                (
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                ),
                (CONTENT_LENGTH, HeaderValue::from(size)),
                (CONTENT_DISPOSITION, attachment(&name)),
            ],
            Body::from_stream(bytes),
        )
            .into_response()),
    }
}

/// Upload files (multipart: `path`, the directory in the storage, made if missing, then
/// one or more `file` parts); refused whole when it would go over the storage quota.
#[utoipa::path(post, path = "/api/v1/storage/files",
    params(("host" = Option<String>, Query, description = "whose host's storage; default: the first that answers")),
    request_body(content = super::forms::StorageUploadForm, content_type = "multipart/form-data", description = "`path`: directory in the storage; `file`: one or more files"),
    responses((status = 201, body = Written), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody, description = "over the storage quota"),
        (status = 413, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn storage_upload(
    State(storage): State<Arc<Storage>>,
    State(containers): State<Arc<Containers>>,
    State(config): State<Arc<Config>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<HostQuery>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<Written>), ApiError> {
    caller.require_full_scope()?;
    let form = multipart_form(multipart, "files")?;
    let upload = read_upload(
        form,
        None,
        containers.temp_files(),
        config.upload_max_bytes,
        config.upload_max_files,
    )
    .await?;
    let written = storage
        .upload(&caller, &upload.dir, upload.files, q.host.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(written)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HostQuery {
    host: Option<String>,
}

/// Delete a file, or a directory with everything in it.
#[utoipa::path(delete, path = "/api/v1/storage/files",
    params(("path" = String, Query), ("host" = Option<String>, Query, description = "whose host's storage; default: the first that answers")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn storage_delete(
    State(storage): State<Arc<Storage>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PathQuery>,
) -> Result<StatusCode, ApiError> {
    storage.delete(&caller, &q.path, q.host.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user's storage on each host, measured now (admins only).
#[utoipa::path(get, path = "/api/v1/admin/users/{name}/storage", params(("name" = String, Path)),
    responses((status = 200, body = [VolumeView]), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn user_storage(
    State(storage): State<Arc<Storage>>,
    admin: Admin,
    Path(name): Path<String>,
) -> Result<Json<Vec<VolumeView>>, ApiError> {
    Ok(Json(storage.of_user(&admin, &name).await?))
}

/// Delete a user's storage on every host, with everything in it: what to do with a
/// leaving user's data is the administrator's decision. Refused (409) while the user has
/// containers (admins only).
#[utoipa::path(delete, path = "/api/v1/admin/users/{name}/storage", params(("name" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_user_storage(
    State(storage): State<Arc<Storage>>,
    admin: Admin,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    storage.delete_user_storage(&admin, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
