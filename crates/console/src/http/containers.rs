//! `/containers/...`: lending containers, their commands, files and logs.

use super::error::ErrorBody;
use super::extract::{ApiJson, ApiQuery};
use super::forms::{multipart_form, read_upload};
use super::{ApiError, Http};
use crate::config::Config;
use crate::service::accounts::Caller;
use crate::service::audit::AuditActor;
use crate::service::containers::{
    Container, ContainerPatch, Containers, CreateContainer, Download, ExecCommand, ExecResult,
    Port, Seat, TerminalAsk, Written,
};
use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Extension;
use axum::{Json, Router};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use std::sync::Arc;
use utoipa::OpenApi;
use wm_backend::{Terminal, TerminalInput, TerminalOutput};

#[derive(OpenApi)]
#[openapi(
    paths(
        create_container,
        list_containers,
        get_container,
        patch_container,
        delete_container,
        start_container,
        stop_container,
        exec_container,
        upload_files,
        download_files,
        container_logs,
        container_terminal
    ),
    components(schemas(
        Container,
        Port,
        CreateContainer,
        ContainerPatch,
        ExecCommand,
        ExecResult,
        Written,
        wm_domain::StopReason
    ))
)]
pub(super) struct Doc;

pub(super) fn router(config: &Config) -> Router<Http> {
    let upload_limit = config.upload_max_bytes + 1024 * 1024;
    Router::new()
        .route("/containers", post(create_container).get(list_containers))
        .route(
            "/containers/{name}",
            get(get_container)
                .patch(patch_container)
                .delete(delete_container),
        )
        .route("/containers/{name}/start", post(start_container))
        .route("/containers/{name}/stop", post(stop_container))
        .route("/containers/{name}/exec", post(exec_container))
        .route(
            "/containers/{name}/files",
            post(upload_files)
                .get(download_files)
                .layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/containers/{name}/logs", get(container_logs))
        .route("/containers/{name}/terminal", get(container_terminal))
}

/// Create and start a container.
#[utoipa::path(post, path = "/api/v1/containers", request_body = CreateContainer,
    responses((status = 201, body = Container), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody, description = "unknown image"),
        (status = 409, body = ErrorBody, description = "name in use"), (status = 503, body = ErrorBody, description = "Docker unavailable")))]
async fn create_container(
    State(containers): State<Arc<Containers>>,
    caller: Caller,
    audit: Option<Extension<AuditActor>>,
    ApiJson(req): ApiJson<CreateContainer>,
) -> Result<(StatusCode, Json<Container>), ApiError> {
    let c = containers.create(&caller, req).await?;
    if let Some(Extension(a)) = audit {
        a.set_target(&c.name);
    }
    Ok((StatusCode::CREATED, Json(c)))
}

/// `?owner=NAME` on the routes and pages of one container: whose container an
/// administrator means when several owners' containers have the full name of the path
/// (user names may hold `-`). Anyone else may give only their own name.
#[derive(Deserialize)]
pub(super) struct Whose {
    pub(super) owner: Option<String>,
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    all: bool,
}

/// The caller's containers; admins may ask for everyone's with `?all=true`.
#[utoipa::path(get, path = "/api/v1/containers", params(("all" = Option<bool>, Query)),
    responses((status = 200, body = [Container]), (status = 503, body = ErrorBody)))]
async fn list_containers(
    State(containers): State<Arc<Containers>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Vec<Container>>, ApiError> {
    Ok(Json(containers.list(&caller, q.all).await?))
}

#[utoipa::path(get, path = "/api/v1/containers/{name}", params(("name" = String, Path, description = "full name"), ("owner" = Option<String>, Query, description = "admins: whose container, when several owners have one of this full name")),
    responses((status = 200, body = Container), (status = 404, body = ErrorBody)))]
async fn get_container(
    State(containers): State<Arc<Containers>>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(whose): ApiQuery<Whose>,
) -> Result<Json<Container>, ApiError> {
    let c = containers
        .load(&caller, &name, whose.owner.as_deref())
        .await?;
    Ok(Json(containers.get(c).await?))
}

/// Change a container's expiry (`expires_at`: RFC 3339 in the future, or `null` to remove
/// it). Its owner may set one, bring one earlier, or change one they set; only an
/// administrator may postpone or remove an expiry someone else set.
#[utoipa::path(patch, path = "/api/v1/containers/{name}", params(("name" = String, Path), ("owner" = Option<String>, Query, description = "admins: whose container, when several owners have one of this full name")), request_body = ContainerPatch,
    responses((status = 200, body = Container), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn patch_container(
    State(containers): State<Arc<Containers>>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(whose): ApiQuery<Whose>,
    ApiJson(patch): ApiJson<ContainerPatch>,
) -> Result<Json<Container>, ApiError> {
    let c = containers
        .load(&caller, &name, whose.owner.as_deref())
        .await?;
    Ok(Json(containers.set_expiry(&caller, c, patch).await?))
}

#[utoipa::path(delete, path = "/api/v1/containers/{name}", params(("name" = String, Path), ("owner" = Option<String>, Query, description = "admins: whose container, when several owners have one of this full name")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_container(
    State(containers): State<Arc<Containers>>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(whose): ApiQuery<Whose>,
) -> Result<StatusCode, ApiError> {
    let c = containers
        .load(&caller, &name, whose.owner.as_deref())
        .await?;
    containers.delete(c).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/containers/{name}/start", params(("name" = String, Path), ("owner" = Option<String>, Query, description = "admins: whose container, when several owners have one of this full name")),
    responses((status = 200, body = Container), (status = 404, body = ErrorBody)))]
async fn start_container(
    State(containers): State<Arc<Containers>>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(whose): ApiQuery<Whose>,
) -> Result<Json<Container>, ApiError> {
    let c = containers
        .load(&caller, &name, whose.owner.as_deref())
        .await?;
    Ok(Json(containers.start(c).await?))
}

#[utoipa::path(post, path = "/api/v1/containers/{name}/stop", params(("name" = String, Path), ("owner" = Option<String>, Query, description = "admins: whose container, when several owners have one of this full name")),
    responses((status = 200, body = Container), (status = 404, body = ErrorBody)))]
async fn stop_container(
    State(containers): State<Arc<Containers>>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(whose): ApiQuery<Whose>,
) -> Result<Json<Container>, ApiError> {
    let c = containers
        .load(&caller, &name, whose.owner.as_deref())
        .await?;
    Ok(Json(containers.stop(c).await?))
}

/// Run a command; answers its exit code and output (bounded in time and size).
#[utoipa::path(post, path = "/api/v1/containers/{name}/exec", params(("name" = String, Path), ("owner" = Option<String>, Query, description = "admins: whose container, when several owners have one of this full name")), request_body = ExecCommand,
    responses((status = 200, body = ExecResult), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "not running")))]
async fn exec_container(
    State(containers): State<Arc<Containers>>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(whose): ApiQuery<Whose>,
    audit: Option<Extension<AuditActor>>,
    ApiJson(req): ApiJson<ExecCommand>,
) -> Result<Json<ExecResult>, ApiError> {
    let c = containers
        .load(&caller, &name, whose.owner.as_deref())
        .await?;
    if let Some(Extension(a)) = audit {
        a.set_detail(format!("command {}", req.cmd).chars().take(500).collect());
    }
    Ok(Json(containers.exec(&c, req.cmd).await?))
}

/// Upload files (multipart: `path`, then one or more `file` parts) into a directory.
#[utoipa::path(post, path = "/api/v1/containers/{name}/files", params(("name" = String, Path), ("owner" = Option<String>, Query, description = "admins: whose container, when several owners have one of this full name")),
    request_body(content = super::forms::UploadForm, content_type = "multipart/form-data", description = "`path`: directory in the container; `file`: one or more files"),
    responses((status = 201, body = Written), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn upload_files(
    State(containers): State<Arc<Containers>>,
    State(config): State<Arc<Config>>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(whose): ApiQuery<Whose>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<Written>), ApiError> {
    let c = containers
        .load(&caller, &name, whose.owner.as_deref())
        .await?;
    let form = multipart_form(multipart, "files")?;
    let upload = read_upload(
        form,
        None,
        containers.temp_files(),
        config.upload_max_bytes,
        config.upload_max_files,
    )
    .await?;
    let written = containers
        .upload(&c, &upload.dir, upload.files, upload.create)
        .await?;
    Ok((StatusCode::CREATED, Json(written)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DownloadQuery {
    path: String,
    owner: Option<String>,
}

/// Download a file (its bytes) or a directory (a tar archive) from the container.
#[utoipa::path(get, path = "/api/v1/containers/{name}/files", params(("name" = String, Path), ("path" = String, Query, description = "absolute path in the container"), ("owner" = Option<String>, Query, description = "admins: whose container, when several owners have one of this full name")),
    responses((status = 200, content_type = "application/octet-stream", description = "a file's bytes, or a directory as application/x-tar"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn download_files(
    State(containers): State<Arc<Containers>>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<DownloadQuery>,
) -> Result<Response, ApiError> {
    let c = containers.load(&caller, &name, q.owner.as_deref()).await?;
    Ok(match containers.download(&c, &q.path).await? {
        Download::File { name, size, bytes } => (
            [
                (
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                ),
                (CONTENT_LENGTH, HeaderValue::from(size)),
                (CONTENT_DISPOSITION, super::attachment(&name)),
            ],
            Body::from_stream(bytes),
        )
            .into_response(),
        Download::Archive { name, tar } => (
            [
                (CONTENT_TYPE, HeaderValue::from_static("application/x-tar")),
                (
                    CONTENT_DISPOSITION,
                    super::attachment(&format!("{name}.tar")),
                ),
            ],
            Body::from_stream(tar),
        )
            .into_response(),
    })
}

#[derive(Deserialize)]
struct LogsQuery {
    tail: Option<u32>,
    owner: Option<String>,
    follow: Option<bool>,
}

/// The container's recent output (stdout and stderr), as text.
#[utoipa::path(get, path = "/api/v1/containers/{name}/logs", params(("name" = String, Path), ("owner" = Option<String>, Query, description = "admins: whose container, when several owners have one of this full name"), ("tail" = Option<u32>, Query, description = "lines; default 100, at most 10000")),
    responses((status = 200, content_type = "text/plain", body = String), (status = 404, body = ErrorBody)))]
async fn container_logs(
    State(containers): State<Arc<Containers>>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<LogsQuery>,
) -> Result<Response, ApiError> {
    let c = containers.load(&caller, &name, q.owner.as_deref()).await?;
    let tail = q.tail.unwrap_or(100).min(10_000);
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if q.follow == Some(true) {
        let lines = containers.follow_logs(&c, tail).await?;
        return Ok((headers, Body::from_stream(lines)).into_response());
    }
    let body = containers.logs(&c, tail).await?;
    Ok((headers, body).into_response())
}

/// Largest WebSocket message a terminal's client may send, in bytes.
const TERMINAL_MAX_MESSAGE: usize = 64 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TerminalQuery {
    cols: Option<u16>,
    rows: Option<u16>,
    cmd: Option<String>,
    owner: Option<String>,
}

/// A control message from a terminal's client (a text frame).
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum TerminalControl {
    Resize { cols: u16, rows: u16 },
}

/// An interactive session (a TTY) in the running container, over a WebSocket.
///
/// Query: `cols` and `rows` (default 80×24, each 1..1000), `cmd` (a command line for
/// `/bin/sh -c`; default the image's `bash`, else `sh`). Client to server: binary frames
/// are keyboard input (at most 64 KiB a message); text frames are JSON control messages,
/// `{"type":"resize","cols":N,"rows":N}`. Server to client: binary frames are terminal
/// output; when the command ends, one text frame `{"type":"exit","code":N}` (`code` is
/// `null` when the engine does not know it), then a close frame. Closing the socket ends
/// the session and kills every process it started. Errors before the upgrade are JSON
/// errors; without WebSocket upgrade headers the answer is 400 `websocket_required`. With
/// the session cookie (rather than a bearer token) the handshake's `Origin` must be the
/// console's own.
#[utoipa::path(get, path = "/api/v1/containers/{name}/terminal", params(("name" = String, Path), ("owner" = Option<String>, Query, description = "admins: whose container, when several owners have one of this full name"),
        ("cols" = Option<u16>, Query, description = "columns; default 80"), ("rows" = Option<u16>, Query, description = "rows; default 24"),
        ("cmd" = Option<String>, Query, description = "a command line; default the image's bash, else sh")),
    responses((status = 101, description = "WebSocket session"), (status = 400, body = ErrorBody, description = "bad size or command, no upgrade headers, or a kubernetes container"),
        (status = 403, body = ErrorBody, description = "cookie with a foreign Origin"), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "not running"), (status = 503, body = ErrorBody, description = "too many sessions open")))]
async fn container_terminal(
    State(containers): State<Arc<Containers>>,
    State(audit): State<crate::service::audit::Audit>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<TerminalQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let ask = TerminalAsk {
        cmd: q.cmd,
        cols: q.cols.unwrap_or(80),
        rows: q.rows.unwrap_or(24),
    };
    crate::service::containers::check_size(ask.cols, ask.rows)?;
    let c = containers.load(&caller, &name, q.owner.as_deref()).await?;
    let ws = websocket(ws)?;
    let session = containers.terminal(&caller, &c, ask).await?;
    let (who, target) = (caller.name.to_string(), c.name().to_string());
    // The start is the request's own entry (with its command); the end is written here.
    Ok(ws.on_upgrade(move |socket| async move {
        let ending = pump_terminal(socket, session.terminal, session.seat).await;
        audit
            .record(
                Some(who),
                "container.terminal_end".into(),
                Some(target),
                200,
                Some(ending),
            )
            .await;
    }))
}

/// The upgrade of a terminal's route, or 400 `websocket_required` without its headers.
pub(super) fn websocket(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<WebSocketUpgrade, ApiError> {
    let ws = ws.map_err(|e| {
        ApiError::Service(crate::service::Error::refused(
            "websocket_required",
            None,
            "websocket",
            [("why", e.body_text())],
            format!("this route is a WebSocket session ({})", e.body_text()),
        ))
    })?;
    Ok(ws
        .max_message_size(TERMINAL_MAX_MESSAGE)
        .max_frame_size(TERMINAL_MAX_MESSAGE))
}

/// Carries a session both ways until its command ends or its client goes away; then
/// the session is dropped, which kills what it started. Answers how it ended, in words.
/// A VM's serial console uses the same protocol (`super::vms`).
pub(super) async fn pump_terminal(socket: WebSocket, mut terminal: Terminal, seat: Seat) -> String {
    let (mut tx, mut rx) = socket.split();
    let mut ending = "closed by the client".to_string();
    loop {
        tokio::select! {
            out = terminal.output.next() => match out {
                Some(Ok(TerminalOutput::Data { data })) => {
                    if tx.send(Message::Binary(data.into())).await.is_err() {
                        break;
                    }
                }
                Some(Ok(TerminalOutput::Exit { code })) => {
                    ending = code.map_or_else(
                        || "ended without an exit code".to_string(),
                        |c| format!("exited with code {c}"),
                    );
                    let exit = serde_json::json!({ "type": "exit", "code": code }).to_string();
                    let _ = tx.send(Message::Text(exit.into())).await;
                    let _ = tx.send(Message::Close(Some(CloseFrame { code: 1000, reason: "".into() }))).await;
                    break;
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "terminal session failed");
                    ending = "the container engine failed".into();
                    let _ = tx.send(Message::Close(Some(CloseFrame { code: 1011, reason: "the container engine failed".into() }))).await;
                    break;
                }
                None => break,
            },
            msg = rx.next() => match msg {
                Some(Ok(Message::Binary(data))) => {
                    // A send fails once the command has ended; its exit comes as output.
                    let _ = terminal.input.send(TerminalInput::Data { data: data.to_vec() }).await;
                }
                Some(Ok(Message::Text(text))) => {
                    match serde_json::from_str::<TerminalControl>(&text) {
                        Ok(TerminalControl::Resize { cols, rows }) if crate::service::containers::check_size(cols, rows).is_ok() => {
                            let _ = terminal.input.send(TerminalInput::Resize { cols, rows }).await;
                        }
                        _ => {
                            let _ = tx.send(Message::Close(Some(CloseFrame { code: 1003, reason: "unknown control message".into() }))).await;
                            break;
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
    drop(terminal);
    drop(seat);
    ending
}
