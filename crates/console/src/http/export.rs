//! `/images/{ref}/export` and `/images/{ref}/sif`: an image as a file, for Docker or for
//! Singularity/Apptainer.

use super::error::ErrorBody;
use super::extract::ApiQuery;
use super::images::ndjson;
use super::{ApiError, Http};
use crate::service::accounts::Caller;
use crate::service::sif::SifCache;
use crate::service::Error;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use std::sync::Arc;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(paths(export_image, convert_to_sif), components(schemas(ExportFormat)))]
pub(super) struct Doc;

pub(super) fn router() -> Router<Http> {
    Router::new()
        .route("/images/{ref}/export", get(export_image))
        .route("/images/{ref}/sif", post(convert_to_sif))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    format: Option<ExportFormat>,
}

/// The file an export is.
#[derive(Deserialize, utoipa::ToSchema, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
enum ExportFormat {
    DockerArchive,
    Sif,
}

/// A file name for a download: the reference with anything but `[A-Za-z0-9._-]` as `_`.

#[utoipa::path(get, path = "/api/v1/images/{ref}/export",
    params(("ref" = String, Path), ("format" = Option<ExportFormat>, Query, description = "docker-archive (default) or sif")),
    responses((status = 200, description = "the file: a `docker save` tar archive, or a SIF file",
            content((Vec<u8> = "application/x-tar"), (Vec<u8> = "application/vnd.sylabs.sif"))),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
/// Download an image as a `docker save` archive or as a SIF file.
async fn export_image(
    State(sif): State<Arc<SifCache>>,
    caller: Caller,
    Path(raw): Path<String>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    let mut headers = HeaderMap::new();
    match q.format.unwrap_or(ExportFormat::DockerArchive) {
        ExportFormat::DockerArchive => {
            let (image, archive) = sif.docker_archive(&caller, &raw).await?;
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-tar"));
            headers.insert(
                CONTENT_DISPOSITION,
                super::attachment(&format!("{}.tar", image.reference)),
            );
            Ok((headers, Body::from_stream(archive)).into_response())
        }
        ExportFormat::Sif => {
            let (image, path) = sif.sif_file(&caller, &raw).await?;
            let file = tokio::fs::File::open(&path)
                .await
                .map_err(|e| Error::Unexpected(e.into()))?;
            let len = file
                .metadata()
                .await
                .map_err(|e| Error::Unexpected(e.into()))?
                .len();
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/vnd.sylabs.sif"),
            );
            headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
            headers.insert(
                CONTENT_DISPOSITION,
                super::attachment(&format!("{}.sif", image.reference)),
            );
            let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
            Ok((headers, body).into_response())
        }
    }
}

#[utoipa::path(post, path = "/api/v1/images/{ref}/sif", params(("ref" = String, Path)),
    responses((status = 200, content_type = "application/x-ndjson",
        description = "conversion progress; the last line is {status: done, download, size} or {status: error, error}"),
        (status = 404, body = ErrorBody)))]
/// Convert an image to SIF with live progress; then download it from `download`.
async fn convert_to_sif(
    State(sif): State<Arc<SifCache>>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    Ok(ndjson(sif.convert(&caller, &raw).await?))
}
