//! Images: the catalog of what each user may use, sharing, pulls and builds.
//!
//! Docker is the truth about which images exist; the catalog is a copy kept fresh by the
//! engine's event stream (an image built or removed on the host shows within seconds) and
//! by the periodic reconcile. What Docker does not know, a description and whether the
//! owner shares an image, is stored per reference.
//!
//! Who may use an image ([`Standing`]): its owner their own (the `wm.owner` label with this
//! installation's `wm.instance`), everyone else only while its owner shares it; anyone a
//! public one, which is a tagged image with no owner mark at all outside the namespace of
//! images built here. An image built here is `<prefix>/<owner>/<name>:<tag>` and carries its
//! owner in its labels; the API offers no way to build, tag or pull into that namespace for
//! anyone else. Nobody uses an image marked by another installation sharing the engine, an
//! owner-less one in our namespace, or an untagged one without our owner label (a build's
//! intermediate layers): administrators see the tagged ones as `other`, and that is all.

use crate::api::ErrorBody;
use crate::auth::Caller;
use crate::build_context;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::hosts::Host;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use futures::{FutureExt, Stream, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::RwLock;
use utoipa::ToSchema;
use wm_backend::{BackendError, BuildRequest, ImageInfo, Progress, RegistryAuth};
use wm_docker::pull_error::PullFailure;
use wm_domain::{Dockerfile, EnvVar, ImageRef};
use wm_store::ImageMeta;

/// An image as the API shows it: one entry per reference.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Image {
    /// The reference (`wm/alice/web:1`, `busybox:latest`).
    #[serde(rename = "ref")]
    pub reference: String,
    pub id: String,
    /// `null` for a public image.
    pub owner: Option<String>,
    pub shared: bool,
    pub description: String,
    /// Bytes.
    pub size: i64,
    /// RFC 3339.
    pub created_at: String,
    /// `own`, `shared` (another user's, shared with everyone) or `public`.
    pub kind: String,
    /// The hosts that have it.
    pub hosts: Vec<String>,
}

/// The images on each host that answers, as last seen.
#[derive(Default)]
pub struct Catalog {
    images: RwLock<Option<HashMap<String, Vec<ImageInfo>>>>,
}

impl Catalog {
    /// Reads every host's images again; a host that does not answer drops out until it
    /// does.
    pub async fn refresh(&self, state: &AppState) -> Result<(), ApiError> {
        let usable = state.hosts.answering()?;
        let lists = futures::future::join_all(
            usable
                .iter()
                .map(|h| async move { (h.id.clone(), h.backend.images().await) }),
        )
        .await;
        let mut all = HashMap::new();
        let mut failure = None;
        for (host, images) in lists {
            match images {
                Ok(images) => {
                    all.insert(host, images);
                }
                Err(e) => failure = Some(e),
            }
        }
        if all.is_empty() {
            if let Some(e) = failure {
                return Err(e.into());
            }
        }
        *self.images.write().await = Some(all);
        Ok(())
    }

    /// Reads one host's images again.
    async fn refresh_host(&self, host: &Host) -> Result<(), ApiError> {
        let images = host.backend.images().await?;
        self.images
            .write()
            .await
            .get_or_insert_with(HashMap::new)
            .insert(host.id.clone(), images);
        Ok(())
    }

    /// The images by host, read from the hosts first if they never were.
    async fn snapshot(
        &self,
        state: &AppState,
    ) -> Result<HashMap<String, Vec<ImageInfo>>, ApiError> {
        if let Some(images) = self.images.read().await.as_ref() {
            return Ok(images.clone());
        }
        self.refresh(state).await?;
        Ok(self.images.read().await.clone().unwrap_or_default())
    }
}

/// Follows one host's image events and refreshes its part of the catalog on each, until
/// the process ends; reconnects after the host goes away.
pub async fn follow_events(state: AppState, host: Arc<Host>) {
    loop {
        let events = if host.usable() {
            host.backend.image_events().await
        } else {
            Err(BackendError::Unavailable("host is down".into()))
        };
        match events {
            Ok(mut events) => {
                let _ = state.catalog.refresh_host(&host).await;
                while let Some(event) = events.next().await {
                    if event.is_err() {
                        break;
                    }
                    // One build or pull sends a burst of events; gather it into one read.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    while let Some(Some(_)) = events.next().now_or_never() {}
                    if let Err(e) = state.catalog.refresh_host(&host).await {
                        tracing::debug!(error = %e, "catalog refresh failed");
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "no image events; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// What `caller` may use of the hosts' images, one entry per reference.
pub(crate) async fn visible(state: &AppState, caller: &Caller) -> Result<Vec<Image>, ApiError> {
    let by_host = state.catalog.snapshot(state).await?;
    let meta: HashMap<String, ImageMeta> = state
        .store
        .all_image_meta()
        .await?
        .into_iter()
        .map(|m| (m.reference.clone(), m))
        .collect();
    let mut hosts: Vec<&String> = by_host.keys().collect();
    hosts.sort();
    // The same reference on several hosts is one entry that lists them, described by the
    // host that knows most about it (see `knowledge`).
    let mut seen: Vec<(&String, &wm_backend::ImageInfo, Vec<String>)> = Vec::new();
    for host in hosts {
        for info in &by_host[host] {
            for tag in &info.tags {
                match seen.iter_mut().find(|(t, _, _)| *t == tag) {
                    Some((_, best, on)) => {
                        on.push(host.clone());
                        if knowledge(info) < knowledge(best) {
                            *best = info;
                        }
                    }
                    None => seen.push((tag, info, vec![host.clone()])),
                }
            }
        }
    }
    let mut out: Vec<Image> = Vec::new();
    for (tag, info, on) in seen {
        let m = meta
            .get(tag)
            .filter(|m| Some(m.owner.as_str()) == info.owner.as_deref());
        let shared = m.is_some_and(|m| m.shared);
        let kind = match standing(state, info) {
            Standing::Public => "public",
            Standing::Owner(o) if o == caller.name.as_str() => "own",
            Standing::Owner(_) if shared => "shared",
            _ if caller.is_admin() => "other",
            _ => continue,
        };
        out.push(Image {
            reference: tag.clone(),
            id: info.id.clone(),
            owner: info.owner.clone(),
            shared,
            description: m.map(|m| m.description.clone()).unwrap_or_default(),
            size: info.size,
            created_at: crate::rfc3339(info.created_at),
            kind: kind.into(),
            hosts: on,
        });
    }
    out.sort_by(|a, b| a.reference.cmp(&b.reference));
    Ok(out)
}

/// How much a host's view of an image says, best first: hosts of one console may carry
/// different instance labels in front of one engine (each sees the others' labels as
/// foreign), so the host that knows the owner speaks for the image.
fn knowledge(info: &wm_backend::ImageInfo) -> u8 {
    match (&info.owner, info.foreign) {
        (Some(_), _) => 0,
        (None, false) => 1,
        (None, true) => 2,
    }
}

/// Who an image is for; see the module's comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Standing<'a> {
    Public,
    Owner(&'a str),
    Nobody,
}

pub(crate) fn standing<'a>(state: &AppState, info: &'a wm_backend::ImageInfo) -> Standing<'a> {
    if let Some(o) = &info.owner {
        return Standing::Owner(o);
    }
    let in_our_namespace = info
        .tags
        .iter()
        .any(|t| ImageRef::parse(t).map_or(true, |r| built_here(state, &r)));
    if info.foreign || info.tags.is_empty() || in_our_namespace {
        Standing::Nobody
    } else {
        Standing::Public
    }
}

fn image_not_found(what: &str) -> ApiError {
    ApiError::NotFound {
        code: "image_not_found",
        what: format!("image {what}"),
    }
}

/// Checks that `caller` may start a container from `image`: public, their own, shared by
/// its owner, or any user's for an admin; never one that is nobody's ([`Standing::Nobody`]).
/// Anything else is the same 404 as a missing image.
/// Returns the hosts that have it.
pub async fn check_usable(
    state: &AppState,
    caller: &Caller,
    image: &ImageRef,
) -> Result<Vec<String>, ApiError> {
    let usable = state.hosts.usable();
    let answers = futures::future::join_all(
        usable
            .iter()
            .map(|h| async move { (h.id.clone(), h.backend.image(image.as_str()).await) }),
    )
    .await;
    let mut present = Vec::new();
    let mut found = None;
    let mut failure = None;
    for (host, answer) in answers {
        match answer {
            Ok(Some(info)) => {
                present.push(host);
                if found
                    .as_ref()
                    .is_none_or(|f| knowledge(&info) < knowledge(f))
                {
                    found = Some(info);
                }
            }
            Ok(None) => {}
            Err(e) => failure = Some(e),
        }
    }
    let Some(found) = found else {
        return Err(match failure {
            Some(e) => e.into(),
            None if usable.is_empty() => state.hosts.none_usable(),
            None => image_not_found(image.as_str()),
        });
    };
    if allowed(state, caller, &found, &[image.as_str()]).await? {
        Ok(present)
    } else {
        Err(image_not_found(image.as_str()))
    }
}

/// The rule of who may use an image, for an image as a host knows it: public, the
/// caller's own, any user's for an admin, or another user's while its owner shares one of
/// `names` (sharing is per reference); never one that is nobody's.
async fn allowed(
    state: &AppState,
    caller: &Caller,
    found: &ImageInfo,
    names: &[&str],
) -> Result<bool, ApiError> {
    let owner = match standing(state, found) {
        Standing::Public => return Ok(true),
        Standing::Nobody => return Ok(false),
        Standing::Owner(o) => o,
    };
    if owner == caller.name.as_str() || caller.is_admin() {
        return Ok(true);
    }
    for name in names {
        let shared = state
            .store
            .image_meta(name)
            .await?
            .is_some_and(|m| m.shared && m.owner.as_str() == owner);
        if shared {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Pulls a public image onto `host` before a container starts from it there.
///
/// # Errors
/// 503 for an image of ours (built here, in no registry): it cannot be fetched, and
/// the hosts that have it cannot take the container now.
pub async fn pull_quietly(state: &AppState, host: &Host, image: &ImageRef) -> Result<(), ApiError> {
    if built_here(state, image) {
        return Err(ApiError::Unavailable(format!(
            "{image} was built here and is not on {}, and the hosts that have it cannot take a container now; try again later",
            host.id
        )));
    }
    check_egress(state, image).await?;
    tracing::info!(host = %host.id, %image, "pulling the image before a container starts from it");
    let mut progress = host
        .backend
        .pull(image, registry_auth(state, image.registry()))
        .await?;
    while let Some(step) = progress.next().await {
        step.map_err(|e| {
            ApiError::Unavailable(format!(
                "{} (onto host {})",
                pull_failure_text(image, e),
                host.id
            ))
        })?;
    }
    Ok(())
}

/// Refuses a pull from a registry on the host's own network (loopback, link-local, this
/// machine's addresses) unless an administrator allows it by name. The docker backend
/// checks the same again where the engine is.
pub(crate) async fn check_egress(state: &AppState, image: &ImageRef) -> Result<(), ApiError> {
    use wm_docker::egress::EgressError;
    let registry = image.registry();
    match state.config.docker.egress_rule().check_pull(image.as_str()).await {
        Ok(()) => Ok(()),
        Err(EgressError::Forbidden { reason, .. }) => Err(ApiError::Forbidden(format!(
            "pulls from {registry} are not allowed: {reason}; an administrator can allow a registry on the host's own network by name (WM_EGRESS_ALLOWED)"
        ))),
        Err(EgressError::Unresolvable(_)) => Err(ApiError::Invalid {
            code: "invalid_input",
            message: format!("the registry {registry} could not be found: its name does not resolve"),
            field: Some("image"),
        }),
        Err(EgressError::Invalid(m)) => Err(ApiError::Invalid {
            code: "invalid_input",
            message: m,
            field: Some("image"),
        }),
    }
}

/// What a user is told of a failed pull: one of a few fixed sentences, never the engine's
/// text (which quotes what the registry answered). A text that is not already one of them
/// is logged here.
fn pull_failure_text(image: &ImageRef, e: BackendError) -> String {
    match e {
        // Our own connection to the engine or agent, with nothing from the registry.
        BackendError::Unavailable(m) => BackendError::Unavailable(m).to_string(),
        BackendError::Policy(m) => m,
        other => PullFailure::from_engine(image.as_str(), &other.to_string()),
    }
}

/// Whether `image` is in the namespace of images built here (`<prefix>/...`), which no
/// registry serves.
fn built_here(state: &AppState, image: &ImageRef) -> bool {
    image.registry() == "docker.io"
        && image
            .path()
            .starts_with(&format!("{}/", state.config.image_prefix))
}

/// The configured login for `registry`, if any.
fn registry_auth(state: &AppState, registry: &str) -> Option<RegistryAuth> {
    state
        .config
        .registries
        .iter()
        .find(|r| r.host == registry)
        .map(|r| RegistryAuth {
            server: r.host.clone(),
            username: r.username.clone(),
            password: r.password.expose().to_string(),
        })
}

/// The hosts a pull or build goes to: the one named, or every host that answers.
fn target_hosts(state: &AppState, host: Option<&str>) -> Result<Vec<Arc<Host>>, ApiError> {
    match host {
        None | Some("") | Some("all") => state.hosts.answering(),
        Some(id) => {
            let Some(h) = state.hosts.get(id) else {
                return Err(ApiError::Invalid {
                    code: "invalid_input",
                    message: format!("there is no host {id:?}; leave it out for every host"),
                    field: Some("host"),
                });
            };
            state.hosts.reach(id)?;
            Ok(vec![h.clone()])
        }
    }
}

/// The entries a path's `{ref}` names (a reference, or an image id), among those the
/// caller may see.
pub(crate) async fn resolve(
    state: &AppState,
    caller: &Caller,
    raw: &str,
) -> Result<Vec<Image>, ApiError> {
    let visible = visible(state, caller).await?;
    let found: Vec<Image> = if raw.starts_with("sha256:") {
        visible.into_iter().filter(|i| i.id == raw).collect()
    } else {
        let r = ImageRef::parse(raw).map_err(|_| image_not_found(raw))?;
        visible
            .into_iter()
            .filter(|i| i.reference == r.as_str())
            .collect()
    };
    if found.is_empty() {
        return Err(image_not_found(raw));
    }
    Ok(found)
}

#[utoipa::path(get, path = "/api/v1/images", responses((status = 200, body = [Image]), (status = 503, body = ErrorBody)))]
/// The images the caller may use: own, shared by others, public.
pub async fn list_images(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Image>>, ApiError> {
    caller.require_full_scope()?;
    Ok(Json(visible(&state, &caller).await?))
}

/// `PATCH /api/v1/images/{ref}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImagePatch {
    /// How to use the image; at most 2000 characters.
    pub description: Option<String>,
    /// Whether every user may use it.
    pub shared: Option<bool>,
}

/// Refuses changes to what the caller does not own: 404 for what they cannot see,
/// 403 for what they see but is not theirs.
fn own_only(images: &[Image], caller: &Caller, raw: &str) -> Result<(), ApiError> {
    if images
        .iter()
        .all(|i| i.owner.as_deref() == Some(caller.name.as_str()))
    {
        return Ok(());
    }
    if images.iter().any(|i| i.kind == "other") {
        return Err(ApiError::Forbidden(format!(
            "image {raw} is not yours to change"
        )));
    }
    Err(ApiError::Forbidden(format!(
        "image {raw} belongs to {}; only its owner may change it",
        images[0]
            .owner
            .as_deref()
            .unwrap_or("nobody (it is public)")
    )))
}

#[utoipa::path(patch, path = "/api/v1/images/{ref}", params(("ref" = String, Path, description = "percent-encoded reference or image id")),
    request_body = ImagePatch, responses((status = 200, body = Image), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
/// Set an image's description and sharing (owner only).
pub async fn patch_image(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    ApiJson(patch): ApiJson<ImagePatch>,
) -> Result<Json<Image>, ApiError> {
    caller.require_full_scope()?;
    if let Some(d) = &patch.description {
        if d.chars().count() > 2000 || d.chars().any(|c| c.is_control() && c != '\n') {
            return Err(ApiError::Invalid {
                code: "invalid_input",
                message: "a description has at most 2000 characters and no control characters but line breaks".into(),
                field: Some("description"),
            });
        }
    }
    let images = resolve(&state, &caller, &raw).await?;
    own_only(&images, &caller, &raw)?;
    for image in &images {
        let current = state.store.image_meta(&image.reference).await?;
        let owner = caller.name.clone();
        state
            .store
            .set_image_meta(&ImageMeta {
                reference: image.reference.clone(),
                owner,
                description: patch
                    .description
                    .clone()
                    .or_else(|| current.as_ref().map(|m| m.description.clone()))
                    .unwrap_or_default(),
                shared: patch
                    .shared
                    .or(current.as_ref().map(|m| m.shared))
                    .unwrap_or(false),
                updated_at: crate::now(),
            })
            .await?;
    }
    let updated = resolve(&state, &caller, &raw).await?;
    Ok(Json(updated.into_iter().next().expect("resolved before")))
}

#[utoipa::path(delete, path = "/api/v1/images/{ref}", params(("ref" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "a container uses it")))]
/// Remove an image (its owner; public images only an admin).
pub async fn delete_image(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_full_scope()?;
    let images = resolve(&state, &caller, &raw).await?;
    if images
        .iter()
        .any(|i| i.owner.is_none() && i.kind == "other")
    {
        return Err(ApiError::Forbidden(
            "this image is marked as another installation's (or nobody's); remove it on the engine itself if it must go".into(),
        ));
    }
    if !caller.is_admin() {
        if images.iter().any(|i| i.owner.is_none()) {
            return Err(ApiError::Forbidden(
                "only an administrator may remove a public image".into(),
            ));
        }
        own_only(&images, &caller, &raw)?;
    }
    for image in &images {
        if state.store.image_in_use(&image.reference).await? {
            return Err(ApiError::Conflict(format!(
                "a container uses {}; delete the container first",
                image.reference
            )));
        }
    }
    for image in &images {
        let r = ImageRef::parse(&image.reference).map_err(|e| ApiError::Unexpected(e.into()))?;
        for host in &image.hosts {
            match state.hosts.reach(host)?.remove_image(&r).await {
                Ok(()) | Err(BackendError::NoSuchImage(_)) => {}
                Err(BackendError::Refused(m)) => {
                    return Err(crate::error::engine_refusal(format!(
                        "host {host} refused to remove {}: {m}",
                        image.reference
                    )))
                }
                Err(e) => return Err(e.into()),
            }
        }
        state.store.delete_image_meta(&image.reference).await?;
    }
    state.catalog.refresh(&state).await?;
    Ok(StatusCode::NO_CONTENT)
}

// --- long operations: NDJSON progress ------------------------------------------------------

pub(crate) fn ndjson(lines: impl Stream<Item = Value> + Send + 'static) -> Response {
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

fn progress_line(p: Progress, verb: &str) -> Value {
    match p {
        Progress::Layer {
            id,
            status,
            current,
            total,
        } => {
            json!({"status": verb, "layer": id, "detail": status, "current": current, "total": total})
        }
        Progress::Status { status } => json!({"status": verb, "detail": status}),
        Progress::Log { line } => json!({"status": verb, "stream": line}),
    }
}

fn error_line(code: &str, message: impl Into<String>) -> Value {
    json!({"status": "error", "error": {"code": code, "message": message.into()}})
}

/// The last line of a successful pull or build: the image as the catalog shows it now.
async fn done_line(state: &AppState, caller: &Caller, reference: &ImageRef) -> Value {
    if let Err(e) = state.catalog.refresh(state).await {
        return error_line("unavailable", e.to_string());
    }
    match resolve(state, caller, reference.as_str()).await {
        Ok(images) => json!({"status": "done", "image": images[0]}),
        Err(_) => error_line(
            "image_not_found",
            format!("{reference} finished but is not on the host"),
        ),
    }
}

/// `POST /api/v1/images/pull`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PullRequest {
    pub image: String,
    /// The host to pull onto; every host that answers when left out (or `all`).
    #[serde(default)]
    pub host: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/images/pull", request_body = PullRequest,
    responses((status = 200, content_type = "application/x-ndjson", description = "progress lines; the last is {status: done, image} or {status: error, error}"),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody, description = "registry not allowed, or a namespace of built images")))]
/// Pull an image from a registry, with live progress.
pub async fn pull_image(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<PullRequest>,
) -> Result<Response, ApiError> {
    caller.require_full_scope()?;
    let image = ImageRef::parse(&req.image)?;
    let registry = image.registry();
    if let Some(allowed) = state.config.allowed_registries() {
        if !allowed.contains(&registry) {
            return Err(ApiError::Forbidden(format!(
                "pulls from {registry} are not allowed here; allowed: {}",
                allowed.join(", ")
            )));
        }
    }
    if built_here(&state, &image) {
        return Err(ApiError::Forbidden(format!(
            "{}/... holds the images built here; pull into another name",
            state.config.image_prefix
        )));
    }
    check_egress(&state, &image).await?;
    let auth = registry_auth(&state, registry);
    let mut streams = Vec::new();
    for host in target_hosts(&state, req.host.as_deref())? {
        let progress = host
            .backend
            .pull(&image, auth.clone())
            .await
            .map_err(|e| match e {
                BackendError::Policy(m) => ApiError::Forbidden(m),
                BackendError::Unavailable(_) => e.into(),
                other => ApiError::Conflict(pull_failure_text(&image, other)),
            })?;
        let pulled = image.clone();
        let progress = progress
            .map_err(move |e| match e {
                BackendError::Unavailable(_) => e,
                other => BackendError::Refused(pull_failure_text(&pulled, other)),
            })
            .boxed();
        streams.push(on_host(&host.id, progress));
    }
    let progress = futures::stream::select_all(streams).boxed();
    let lines = async_lines(state, caller, image, progress, "pulling", None);
    Ok(ndjson(lines))
}

/// One host's progress, each step with the host's id.
type HostProgress = futures::stream::BoxStream<'static, Result<(String, Progress), BackendError>>;

fn on_host(id: &str, progress: wm_backend::ProgressStream) -> HostProgress {
    let id = id.to_string();
    progress
        .map(move |step| {
            step.map(|p| (id.clone(), p)).map_err(|e| match e {
                BackendError::Refused(m) => BackendError::Refused(format!("{id}: {m}")),
                other => other,
            })
        })
        .boxed()
}

/// The progress lines of a pull or build, then its last line, and an audit entry.
fn async_lines(
    state: AppState,
    caller: Caller,
    image: ImageRef,
    progress: HostProgress,
    verb: &'static str,
    timeout: Option<Duration>,
) -> impl Stream<Item = Value> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel::<Value>(64);
    tokio::spawn(async move {
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut progress = progress;
        let mut failure: Option<Value> = None;
        loop {
            let next = match deadline {
                Some(d) => match tokio::time::timeout_at(d, progress.next()).await {
                    Ok(n) => n,
                    Err(_) => {
                        failure = Some(error_line(
                            "timeout",
                            format!(
                                "stopped after {} seconds",
                                timeout.unwrap_or_default().as_secs()
                            ),
                        ));
                        break;
                    }
                },
                None => progress.next().await,
            };
            match next {
                None => break,
                Some(Ok((host, p))) => {
                    let mut line = progress_line(p, verb);
                    line["host"] = Value::String(host);
                    if tx.send(line).await.is_err() {
                        // The client went away: dropping the stream cancels the work.
                        return;
                    }
                }
                Some(Err(e)) => {
                    let code = if verb == "building" {
                        "build_failed"
                    } else {
                        "pull_failed"
                    };
                    let message = if verb == "building" {
                        // A build's error may quote what a fetched URL answered.
                        wm_docker::pull_error::build_error_text(&e.to_string())
                    } else {
                        e.to_string()
                    };
                    let mut line = error_line(code, &message);
                    if verb == "pulling" {
                        // Which fixed sentence it is, for pages that tell it in their
                        // own language.
                        let reason =
                            PullFailure::recognize(&message).unwrap_or(PullFailure::Failed);
                        line["error"]["reason"] = Value::String(reason.code().into());
                    }
                    failure = Some(line);
                    break;
                }
            }
        }
        drop(progress);
        let last = match failure {
            Some(f) => f,
            None => done_line(&state, &caller, &image).await,
        };
        let ok = last["status"] == "done";
        crate::audit::record(
            &state,
            Some(caller.name.to_string()),
            format!("{verb} {image}"),
            Some(image.to_string()),
            if ok { 200 } else { 500 },
            (!ok).then(|| {
                last["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            }),
        )
        .await;
        let _ = tx.send(last).await;
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) })
}

/// A build name, `name` or `name:tag`: one lowercase path component and a tag.
fn build_reference(state: &AppState, caller: &Caller, name: &str) -> Result<ImageRef, ApiError> {
    let bad = |m: String| ApiError::Invalid {
        code: "invalid_input",
        message: m,
        field: Some("name"),
    };
    let name = name.trim();
    if name.is_empty() {
        return Err(bad("the image needs a name, e.g. web or web:1".into()));
    }
    if name.contains('/') || name.contains('@') {
        return Err(bad(format!(
            "{name:?}: give only a name and tag; the image goes under {}/{}/",
            state.config.image_prefix, caller.name
        )));
    }
    let full = format!("{}/{}/{name}", state.config.image_prefix, caller.name);
    ImageRef::parse(&full).map_err(|e| bad(e.message))
}

/// What a build on one host reads: the missing or forbidden image answers the same.
fn build_image_not_found(raw: &str) -> ApiError {
    ApiError::NotFound {
        code: "image_not_found",
        what: format!(
            "image {raw} (a build reads only images already on its host; pull a public one first) was"
        ),
    }
}

/// Resolves `raw` on `host` the way the builder will (the engine resolves the string as
/// written: a name, a tag, a digest, a full or short id) and applies the rule of
/// container create to what it resolves to.
async fn build_source(
    state: &AppState,
    caller: &Caller,
    host: &Host,
    raw: &str,
) -> Result<ImageInfo, ApiError> {
    let hex_id = |h: &str| {
        !h.is_empty() && h.len() <= 64 && h.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'))
    };
    let well_formed = ImageRef::parse(raw).is_ok()
        || raw.strip_prefix("sha256:").is_some_and(hex_id)
        || hex_id(raw);
    if !well_formed {
        return Err(ApiError::Invalid {
            code: "invalid_input",
            message: format!("the Dockerfile names {raw:?}, which is not an image reference"),
            field: Some("dockerfile"),
        });
    }
    let Some(info) = host.backend.image(raw).await? else {
        return Err(build_image_not_found(raw));
    };
    // By id, any of the image's references may be the one its owner shares.
    let names: Vec<&str> = info.tags.iter().map(String::as_str).collect();
    if !allowed(state, caller, &info, &names).await? {
        return Err(build_image_not_found(raw));
    }
    Ok(info)
}

/// Declared after every `FROM` of a build and set to the builder's name. The classic
/// builder's layer cache is the engine's, shared by every user; a declared build argument
/// is part of the cache key of every `RUN` step, so one user's build never reuses the
/// output of another user's `RUN` step (which could hold what that step fetched with a
/// secret of theirs).
const OWNER_ARG: &str = "WM_BUILD_OWNER";

/// Checks every image a build reads on `host` (also those of the base images' `ONBUILD`
/// triggers), and answers the Dockerfile to send, each image pinned to the id checked,
/// and the `ADD` URLs it fetches.
async fn checked_dockerfile(
    state: &AppState,
    caller: &Caller,
    host: &Host,
    df: &Dockerfile,
) -> Result<(String, Vec<String>), ApiError> {
    let mut found: HashMap<String, ImageInfo> = HashMap::new();
    for raw in df.images() {
        let info = build_source(state, caller, host, raw).await?;
        found.insert(raw.clone(), info);
    }
    let mut urls: Vec<String> = df.add_urls().to_vec();
    for (stage, base) in df.stage_images() {
        let Some(info) = found.get(base) else {
            continue;
        };
        if info.on_build.is_empty() {
            continue;
        }
        let (images, more) = df.trigger_uses(stage, &info.on_build)?;
        for raw in images {
            build_source(state, caller, host, &raw).await?;
        }
        urls.extend(more);
    }
    let pinned = df
        .pinned(
            &|raw| found.get(raw).map(|i| i.id.clone()),
            Some(&format!("ARG {OWNER_ARG}")),
        )
        .map_err(|raw| ApiError::Unexpected(anyhow::anyhow!("no id for {raw}")))?;
    Ok((pinned, urls))
}

/// Whether bytes start a tar archive or a gzip stream.
fn looks_like_tar(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b]) || (head.len() >= 262 && &head[257..262] == b"ustar")
}

/// A build's input as sent: Dockerfile text, or an archive.
enum Upload {
    Text(String),
    Archive(Vec<u8>),
}

/// Refuses, before the engine is sent anything, an `ADD` URL on the host's own network
/// (loopback, link-local, this machine's addresses) that an administrator has not allowed
/// by name: the engine fetches it from the host.
async fn check_add_urls(state: &AppState, urls: &[String]) -> Result<(), ApiError> {
    use wm_docker::egress::EgressError;
    let rule = state.config.docker.egress_rule();
    for url in urls {
        match rule.check_url(url).await {
            Ok(()) => {}
            // 400, not 403: the web console reads a 403 of a build form as its token.
            Err(EgressError::Forbidden { host, reason }) => {
                return Err(ApiError::Invalid {
                    code: "invalid_input",
                    message: format!(
                        "ADD {url}: builds may not fetch from {host} ({reason}); an administrator can allow it by name (WM_EGRESS_ALLOWED)"
                    ),
                    field: Some("dockerfile"),
                })
            }
            Err(EgressError::Unresolvable(_)) => {
                return Err(ApiError::Invalid {
                    code: "invalid_input",
                    message: format!("ADD {url}: its host name does not resolve"),
                    field: Some("dockerfile"),
                })
            }
            Err(EgressError::Invalid(m)) => {
                return Err(ApiError::Invalid {
                    code: "invalid_input",
                    message: format!("ADD {url}: {m}"),
                    field: Some("dockerfile"),
                })
            }
        }
    }
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/images/build",
    request_body(content_type = "multipart/form-data", description = "`name` (web or web:1); `dockerfile` (text) or `context` (tar or tar.gz file); any number of `buildarg` (KEY=value); `host` to build on one host only"),
    responses((status = 200, content_type = "application/x-ndjson", description = "build log lines; the last is {status: done, image} or {status: error, error}"),
        (status = 400, body = ErrorBody), (status = 413, body = ErrorBody)))]
/// Build an image into the caller's namespace, with its live log.
pub async fn build_image(
    State(state): State<AppState>,
    caller: Caller,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let form = multipart.map_err(|e| {
        ApiError::UnsupportedMediaType(format!(
            "send the build as multipart/form-data ({})",
            e.body_text()
        ))
    })?;
    build_from_form(state, caller, form, None).await
}

/// Reads a build form and starts the build. With `csrf`, the form (from the web console)
/// must start with a `csrf` field that it accepts, before anything else is read.
pub(crate) async fn build_from_form(
    state: AppState,
    caller: Caller,
    mut form: Multipart,
    csrf: Option<&(dyn Fn(&str) -> bool + Sync)>,
) -> Result<Response, ApiError> {
    let limit = state.config.build_context_max_bytes;
    let too_big = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(limit)
        } else {
            ApiError::invalid(format!(
                "the form is not valid multipart/form-data: {}",
                e.body_text()
            ))
        }
    };
    if let Some(accept) = csrf {
        let ok = match form.next_field().await.map_err(too_big)? {
            Some(f) if f.name() == Some("csrf") => accept(&f.text().await.map_err(too_big)?),
            _ => false,
        };
        if !ok {
            return Err(ApiError::Forbidden(
                "the form's security token is missing or wrong; reload the page".into(),
            ));
        }
    }
    // The console's form always sends both inputs; an empty one is one not used, and a
    // context file wins over the text.
    let from_web = csrf.is_some();
    let (mut name, mut context, mut build_args, mut host) = (None, None, Vec::new(), None);
    // Build arguments and fields together: a flood of parts ends before it costs much.
    let max_parts = state.config.upload_max_files + crate::api::FORM_MAX_FIELDS;
    let mut parts = 0usize;
    while let Some(mut field) = form.next_field().await.map_err(too_big)? {
        parts += 1;
        if parts > max_parts {
            return Err(crate::api::too_many_parts(state.config.upload_max_files));
        }
        match field.name().unwrap_or("") {
            "name" => name = Some(field.text().await.map_err(too_big)?),
            "host" => host = Some(field.text().await.map_err(too_big)?.trim().to_string()),
            "dockerfile" | "context" if context.is_some() && !from_web => {
                return Err(ApiError::invalid("send either dockerfile or context, once"))
            }
            "dockerfile" => {
                let text = field.text().await.map_err(too_big)?;
                if text.trim().is_empty() && from_web {
                    continue;
                }
                if text.trim().is_empty() {
                    return Err(ApiError::Invalid {
                        code: "invalid_input",
                        message: "the Dockerfile is empty".into(),
                        field: Some("dockerfile"),
                    });
                }
                context = Some(Upload::Text(text));
            }
            "context" => {
                let mut buf = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(too_big)? {
                    if buf.len() + chunk.len() > limit {
                        return Err(ApiError::TooLarge(limit));
                    }
                    buf.extend_from_slice(&chunk);
                }
                if buf.is_empty() && from_web {
                    continue;
                }
                if !looks_like_tar(&buf) {
                    return Err(ApiError::Invalid {
                        code: "invalid_input",
                        message: "the context must be a tar archive, optionally gzipped".into(),
                        field: Some("context"),
                    });
                }
                context = Some(Upload::Archive(buf));
            }
            "buildarg" => {
                let text = field.text().await.map_err(too_big)?;
                let arg = EnvVar::parse(text.trim()).map_err(|e| ApiError::Invalid {
                    code: "invalid_input",
                    message: format!("build argument: {}", e.message),
                    field: Some("buildarg"),
                })?;
                if arg.key() == OWNER_ARG {
                    return Err(ApiError::Invalid {
                        code: "invalid_input",
                        message: format!("the build argument {OWNER_ARG} is set by the console"),
                        field: Some("buildarg"),
                    });
                }
                build_args.push((arg.key().to_string(), arg.value().to_string()));
            }
            other => {
                return Err(ApiError::invalid(format!(
                "unexpected form field {other:?}; send name, dockerfile or context, buildarg, and host"
            )))
            }
        }
    }
    let tag = build_reference(&state, &caller, name.as_deref().unwrap_or(""))?;
    let context = context.ok_or_else(|| ApiError::Invalid {
        code: "invalid_input",
        message: "send a dockerfile or a context".into(),
        field: Some("dockerfile"),
    })?;
    let unpacked_limit = state.config.build_context_max_unpacked_bytes;
    let context = tokio::task::spawn_blocking(move || match context {
        Upload::Text(text) => Ok(build_context::Context::from_dockerfile(text)),
        Upload::Archive(raw) => build_context::unpack(&raw, unpacked_limit),
    })
    .await
    .map_err(|e| ApiError::Unexpected(e.into()))?
    .map_err(|e| match e {
        build_context::ContextError::TooLarge(_) => ApiError::TooLargeBecause(e.to_string()),
        build_context::ContextError::Invalid(m) => ApiError::Invalid {
            code: "invalid_input",
            message: m,
            field: Some("context"),
        },
    })?;
    let context = Arc::new(context);
    let df = Dockerfile::parse(&context.dockerfile, &build_args)?;
    build_args.push((OWNER_ARG.to_string(), caller.name.to_string()));
    let req = BuildRequest {
        tag: tag.clone(),
        owner: caller.name.clone(),
        build_args,
        limits: state.config.default_limits(),
        max_image_bytes: Some(state.config.build_image_max_bytes.min(i64::MAX as u64) as i64),
    };
    // Everything is checked on every host before any build starts.
    let mut sends = Vec::new();
    for h in target_hosts(&state, host.as_deref())? {
        let (pinned, urls) = checked_dockerfile(&state, &caller, &h, &df).await?;
        check_add_urls(&state, &urls).await?;
        sends.push((h, pinned));
    }
    let mut streams = Vec::new();
    for (h, pinned) in sends {
        let ctx = context.clone();
        let bytes = tokio::task::spawn_blocking(move || ctx.with_dockerfile(&pinned))
            .await
            .map_err(|e| ApiError::Unexpected(e.into()))?
            .map_err(|e| ApiError::Invalid {
                code: "invalid_input",
                message: format!("the context has an entry that cannot be sent to the engine: {e}"),
                field: Some("context"),
            })?;
        let progress = h.backend.build(&req, Bytes::from(bytes)).await?;
        streams.push(on_host(&h.id, progress));
    }
    let progress = futures::stream::select_all(streams).boxed();
    let timeout = Duration::from_secs(state.config.build_timeout_secs);
    Ok(ndjson(async_lines(
        state,
        caller,
        tag,
        progress,
        "building",
        Some(timeout),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_detection() {
        let ctx = build_context::Context::from_dockerfile("FROM scratch\n".into())
            .with_dockerfile("FROM scratch\n")
            .unwrap();
        assert!(looks_like_tar(&ctx));
        assert!(looks_like_tar(&[0x1f, 0x8b, 8, 0]));
        assert!(!looks_like_tar(b"FROM scratch\n"));
        assert!(!looks_like_tar(b""));
    }
}
