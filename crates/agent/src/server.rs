//! The agent's side: a [`ContainerBackend`] behind authenticated HTTP.
//!
//! The agent holds nothing of its own: every answer comes from the backend, whose objects
//! carry their labels, so an agent can be restarted at any time.

use crate::protocol::{
    status_of, BuildQuery, DirQuery, ErrorBody, Health, Line, ListQuery, PathQuery, PullRequest,
    RefQuery, TailQuery, TerminalQuery,
};
use crate::vm::{self, VmAgent};
use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use futures::SinkExt;
use futures::{Stream, StreamExt, TryStreamExt};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use wm_backend::{
    BackendError, BuildRequest, ContainerBackend, ContainerSpec, ExecRequest, RunnerSpec, Terminal,
    TerminalInput, TerminalOutput, TerminalRequest, Why,
};
use wm_domain::{ContainerKey, ImageRef, ShortName, UserName};

/// The shared secret between the console and its agents. Only its digest is kept, and
/// digests are compared in constant time.
#[derive(Clone)]
pub struct AgentToken([u8; 32]);

impl AgentToken {
    pub fn new(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    fn matches(&self, presented: &str) -> bool {
        let other: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.0
            .iter()
            .zip(other.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// The largest request bodies the agent takes.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub upload: usize,
    pub build_context: usize,
    /// A VM image upload.
    pub vm_image: usize,
}

pub(crate) struct Agent {
    backend: Arc<dyn ContainerBackend>,
    /// The host's VMs, when it lends them.
    pub(crate) vms: Option<VmAgent>,
    pub(crate) limits: BodyLimits,
}

pub(crate) type Shared = State<Arc<Agent>>;

/// An error as the protocol sends it.
pub(crate) struct Failure(pub(crate) BackendError);

impl From<BackendError> for Failure {
    fn from(e: BackendError) -> Self {
        Self(e)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(status_of(&self.0)).expect("a valid status");
        (status, Json(ErrorBody { error: self.0 })).into_response()
    }
}

/// A request the agent cannot read: bad names in the path, a malformed query.
pub(crate) fn bad_request(message: impl Into<Why>) -> Failure {
    Failure(BackendError::Refused(message.into()))
}

type Answer<T> = Result<Json<T>, Failure>;

/// The agent's routes around `backend`, and `vms` when the host lends VMs too.
pub fn router(
    backend: Arc<dyn ContainerBackend>,
    vms: Option<VmAgent>,
    token: AgentToken,
    limits: BodyLimits,
) -> Router {
    let agent = Arc::new(Agent {
        backend,
        vms,
        limits,
    });
    let v1 = Router::new()
        .route("/info", get(info))
        .route("/containers", post(create).get(list))
        .route("/containers/{owner}/{name}", get(inspect).delete(remove))
        .route("/containers/{owner}/{name}/start", post(start))
        .route("/containers/{owner}/{name}/stop", post(stop))
        .route("/containers/{owner}/{name}/exec", post(exec))
        .route(
            "/containers/{owner}/{name}/files",
            put(upload).layer(DefaultBodyLimit::max(limits.upload)),
        )
        .route("/containers/{owner}/{name}/logs", get(logs))
        .route("/containers/{owner}/{name}/terminal", get(terminal))
        .route("/containers/{owner}/{name}/activity", get(activity))
        .route("/containers/{owner}/{name}/archive", get(download))
        .route("/storage/{owner}", axum::routing::delete(storage_delete))
        .route("/storage/{owner}/usage", get(storage_usage))
        .route("/storage/{owner}/stat", get(storage_stat))
        .route(
            "/storage/{owner}/file",
            get(storage_read)
                .put(storage_write)
                .delete(storage_remove)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/networks/{owner}", axum::routing::delete(remove_network))
        .route("/images", get(images).delete(remove_image))
        .route("/images/inspect", get(image))
        .route("/images/pull", post(pull))
        .route(
            "/images/build",
            post(build).layer(DefaultBodyLimit::max(limits.build_context)),
        )
        .route("/images/save", get(save_image))
        .route("/images/filesystem", get(image_filesystem))
        .route("/events/images", get(image_events))
        .route(
            "/runners/{owner}",
            put(put_runner).get(runner).delete(remove_runner),
        )
        .route(
            "/vm-images/{owner}/{name}",
            put(vm::import_image)
                .delete(vm::remove_image)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/vms", post(vm::define).get(vm::list))
        .route("/vms/{owner}/{name}", get(vm::state).delete(vm::undefine))
        .route("/vms/{owner}/{name}/start", post(vm::start))
        .route("/vms/{owner}/{name}/destroy", post(vm::destroy))
        .route("/vms/{owner}/{name}/xml", get(vm::dumpxml))
        .route("/vms/{owner}/{name}/transcript", get(vm::transcript))
        .route("/vms/{owner}/{name}/console", get(vm::console))
        .fallback(|| async { bad_request("no such agent endpoint").into_response() })
        .layer(middleware::from_fn_with_state(token, authenticate));
    Router::new()
        .nest("/v1", v1)
        .route("/healthz", get(healthz))
        .with_state(agent)
}

/// Lets through only requests that carry the agent token.
pub(crate) async fn authenticate(
    State(token): State<AgentToken>,
    req: Request,
    next: Next,
) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(t) if token.matches(t) => next.run(req).await,
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(ErrorBody {
                error: BackendError::Unavailable(
                    "the agent refused the request: missing or wrong agent token".into(),
                ),
            }),
        )
            .into_response(),
    }
}

async fn healthz(State(agent): Shared) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        host: agent.backend.host_name().to_string(),
    })
}

fn container((owner, name): &(String, String)) -> Result<ContainerKey, Failure> {
    let owner = UserName::parse(owner).map_err(|e| bad_request(e.to_string()))?;
    let short = ShortName::parse(name).map_err(|e| bad_request(e.to_string()))?;
    ContainerKey::new(&owner, &short).map_err(|e| bad_request(e.to_string()))
}

fn owner(name: &str) -> Result<UserName, Failure> {
    UserName::parse(name).map_err(|e| bad_request(e.to_string()))
}

async fn info(State(a): Shared) -> Answer<wm_backend::HostInfo> {
    let mut info = a.backend.info().await?;
    info.vms = a.vms.is_some();
    Ok(Json(info))
}

async fn create(
    State(a): Shared,
    Json(spec): Json<ContainerSpec>,
) -> Answer<wm_backend::ContainerState> {
    Ok(Json(a.backend.create(&spec).await?))
}

async fn list(
    State(a): Shared,
    Query(q): Query<ListQuery>,
) -> Answer<Vec<wm_backend::ContainerState>> {
    Ok(Json(match q.owner {
        Some(o) => a.backend.list_of(&owner(&o)?).await?,
        None => a.backend.list().await?,
    }))
}

async fn inspect(
    State(a): Shared,
    Path(name): Path<(String, String)>,
) -> Answer<wm_backend::ContainerState> {
    Ok(Json(a.backend.inspect(&container(&name)?).await?))
}

async fn remove(
    State(a): Shared,
    Path(name): Path<(String, String)>,
) -> Result<StatusCode, Failure> {
    a.backend.remove(&container(&name)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn start(
    State(a): Shared,
    Path(name): Path<(String, String)>,
) -> Answer<wm_backend::ContainerState> {
    Ok(Json(a.backend.start(&container(&name)?).await?))
}

async fn stop(
    State(a): Shared,
    Path(name): Path<(String, String)>,
) -> Answer<wm_backend::ContainerState> {
    Ok(Json(a.backend.stop(&container(&name)?).await?))
}

async fn exec(
    State(a): Shared,
    Path(name): Path<(String, String)>,
    Json(req): Json<ExecRequest>,
) -> Answer<wm_backend::ExecOutput> {
    Ok(Json(a.backend.exec(&container(&name)?, &req).await?))
}

async fn upload(
    State(a): Shared,
    Path(name): Path<(String, String)>,
    Query(q): Query<DirQuery>,
    body: Body,
) -> Result<StatusCode, Failure> {
    let name = container(&name)?;
    let tar = body
        .into_data_stream()
        .map_err(std::io::Error::other)
        .boxed();
    a.backend.upload(&name, &q.dir, tar).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn download(
    State(a): Shared,
    Path(name): Path<(String, String)>,
    Query(q): Query<PathQuery>,
) -> Result<Response, Failure> {
    let archive = a.backend.download(&container(&name)?, &q.path).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/x-tar")],
        Body::from_stream(archive),
    )
        .into_response())
}

async fn storage_usage(State(a): Shared, Path(name): Path<String>) -> Answer<i64> {
    Ok(Json(a.backend.storage_usage(&owner(&name)?).await?))
}

async fn storage_stat(
    State(a): Shared,
    Path(name): Path<String>,
    Query(q): Query<PathQuery>,
) -> Answer<wm_backend::StoragePath> {
    Ok(Json(a.backend.storage_stat(&owner(&name)?, &q.path).await?))
}

async fn storage_read(
    State(a): Shared,
    Path(name): Path<String>,
    Query(q): Query<PathQuery>,
) -> Result<Response, Failure> {
    let bytes = a.backend.storage_read(&owner(&name)?, &q.path).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from_stream(bytes),
    )
        .into_response())
}

/// The body is the file; the console bounds its size (the user's quota) before sending.
async fn storage_write(
    State(a): Shared,
    Path(name): Path<String>,
    Query(q): Query<PathQuery>,
    body: Body,
) -> Answer<i64> {
    let owner = owner(&name)?;
    let bytes = body
        .into_data_stream()
        .map_err(std::io::Error::other)
        .boxed();
    Ok(Json(a.backend.storage_write(&owner, &q.path, bytes).await?))
}

async fn storage_remove(
    State(a): Shared,
    Path(name): Path<String>,
    Query(q): Query<PathQuery>,
) -> Result<StatusCode, Failure> {
    a.backend.storage_remove(&owner(&name)?, &q.path).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn storage_delete(State(a): Shared, Path(name): Path<String>) -> Result<StatusCode, Failure> {
    a.backend.storage_delete(&owner(&name)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn logs(
    State(a): Shared,
    Path(name): Path<(String, String)>,
    Query(q): Query<TailQuery>,
) -> Result<Response, Failure> {
    let name = container(&name)?;
    if q.follow {
        let lines = a.backend.follow_logs(&name, q.tail).await?;
        return Ok(Body::from_stream(lines).into_response());
    }
    let bytes = a.backend.logs(&name, q.tail).await?;
    Ok(bytes.into_response())
}

async fn terminal(
    State(a): Shared,
    Path(name): Path<(String, String)>,
    Query(q): Query<TerminalQuery>,
    ws: WebSocketUpgrade,
) -> Result<Response, Failure> {
    let cmd = q
        .cmd
        .map(|c| serde_json::from_str::<Vec<String>>(&c))
        .transpose()
        .map_err(|e| bad_request(format!("cmd must be a JSON array of strings: {e}")))?;
    let req = TerminalRequest {
        cmd,
        cols: q.cols,
        rows: q.rows,
    };
    let terminal = a.backend.terminal(&container(&name)?, &req).await?;
    Ok(ws
        .max_message_size(1 << 20)
        .on_upgrade(move |socket| carry_terminal(socket, terminal)))
}

/// Carries a session until its command ends or the console goes away; dropping the
/// terminal then ends what it started.
pub(crate) async fn carry_terminal(socket: WebSocket, mut terminal: Terminal) {
    let (mut tx, mut rx) = socket.split();
    loop {
        tokio::select! {
            out = terminal.output.next() => {
                let msg = match out {
                    Some(Ok(TerminalOutput::Data { data })) => Message::Binary(data.into()),
                    Some(Ok(exit @ TerminalOutput::Exit { .. })) => {
                        let text = serde_json::to_string(&exit).unwrap_or_default();
                        let _ = tx.send(Message::Text(text.into())).await;
                        let _ = tx.close().await;
                        break;
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "terminal session failed");
                        break;
                    }
                    None => break,
                };
                if tx.send(msg).await.is_err() {
                    break;
                }
            }
            msg = rx.next() => match msg {
                Some(Ok(Message::Binary(data))) => {
                    let _ = terminal.input.send(TerminalInput::Data { data: data.to_vec() }).await;
                }
                Some(Ok(Message::Text(text))) => {
                    if let Ok(control @ TerminalInput::Resize { .. }) = serde_json::from_str(&text) {
                        let _ = terminal.input.send(control).await;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
}

async fn activity(
    State(a): Shared,
    Path(name): Path<(String, String)>,
) -> Answer<wm_backend::Activity> {
    Ok(Json(a.backend.activity(&container(&name)?).await?))
}

async fn remove_network(State(a): Shared, Path(name): Path<String>) -> Result<StatusCode, Failure> {
    a.backend.remove_network_if_unused(&owner(&name)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn images(State(a): Shared) -> Answer<Vec<wm_backend::ImageInfo>> {
    Ok(Json(a.backend.images().await?))
}

async fn image(
    State(a): Shared,
    Query(q): Query<RefQuery>,
) -> Answer<Option<wm_backend::ImageInfo>> {
    Ok(Json(a.backend.image(&q.reference).await?))
}

async fn remove_image(State(a): Shared, Query(q): Query<RefQuery>) -> Result<StatusCode, Failure> {
    let r = ImageRef::parse(&q.reference).map_err(|e| bad_request(e.to_string()))?;
    a.backend.remove_image(&r).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A stream of results as NDJSON lines.
fn ndjson<T, S>(stream: S) -> Response
where
    T: Serialize + Send + 'static,
    S: Stream<Item = Result<T, BackendError>> + Send + 'static,
{
    let lines = stream.map(|item| {
        let line = match item {
            Ok(v) => Line::Ok(v),
            Err(e) => Line::Err(e),
        };
        let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
        bytes.push(b'\n');
        Ok::<_, std::convert::Infallible>(bytes)
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response()
}

async fn pull(State(a): Shared, Json(req): Json<PullRequest>) -> Result<Response, Failure> {
    let progress = a.backend.pull(&req.image, req.auth).await?;
    Ok(ndjson(progress))
}

async fn build(
    State(a): Shared,
    Query(q): Query<BuildQuery>,
    body: axum::body::Bytes,
) -> Result<Response, Failure> {
    let req: BuildRequest =
        serde_json::from_str(&q.request).map_err(|e| bad_request(format!("build request: {e}")))?;
    let progress = a.backend.build(&req, body).await?;
    Ok(ndjson(progress))
}

async fn save_image(State(a): Shared, Query(q): Query<RefQuery>) -> Result<Response, Failure> {
    let archive = a.backend.save_image(&q.reference).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/x-tar")],
        Body::from_stream(archive),
    )
        .into_response())
}

async fn image_filesystem(
    State(a): Shared,
    Query(q): Query<RefQuery>,
) -> Result<Response, Failure> {
    let tar = a.backend.image_filesystem(&q.reference).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/x-tar")],
        Body::from_stream(tar),
    )
        .into_response())
}

async fn image_events(State(a): Shared) -> Result<Response, Failure> {
    let events = a.backend.image_events().await?;
    Ok(ndjson(events))
}

async fn put_runner(
    State(a): Shared,
    Path(name): Path<String>,
    Json(spec): Json<RunnerSpec>,
) -> Answer<wm_backend::RunnerState> {
    if spec.owner != owner(&name)? {
        return Err(bad_request("the runner's owner must match the path"));
    }
    Ok(Json(a.backend.put_runner(&spec).await?))
}

async fn runner(
    State(a): Shared,
    Path(name): Path<String>,
) -> Answer<Option<wm_backend::RunnerState>> {
    Ok(Json(a.backend.runner(&owner(&name)?).await?))
}

async fn remove_runner(State(a): Shared, Path(name): Path<String>) -> Result<StatusCode, Failure> {
    a.backend.remove_runner(&owner(&name)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Serves the agent on `listener`, over HTTPS when `tls` is given, until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    tls: Option<rustls::ServerConfig>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match tls {
        Some(config) => {
            axum::serve(crate::tls::TlsListener::new(listener, config)?, router)
                .with_graceful_shutdown(shutdown)
                .await
        }
        None => {
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}
