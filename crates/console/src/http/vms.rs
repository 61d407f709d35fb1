//! `/vm-images`, `/vm-templates` and `/vms/...`: lending virtual machines. The serial
//! console speaks the containers' terminal protocol (`super::containers`), so the same
//! browser terminal and `wm` client serve both.

use super::containers::{pump_terminal, websocket, Whose};
use super::error::ErrorBody;
use super::extract::{ApiJson, ApiQuery};
use super::forms::{multipart_form, read_vm_image};
use super::{ApiError, Http};
use crate::config::Config;
use crate::service::accounts::Caller;
use crate::service::containers::Containers;
use crate::service::vms::{CreateVm, Vm, VmImage, VmPort, VmTemplate, Vms};
use axum::extract::multipart::MultipartRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::sync::Arc;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    paths(
        upload_vm_image,
        list_vm_images,
        delete_vm_image,
        list_vm_templates,
        define_vm,
        list_vms,
        get_vm,
        start_vm,
        destroy_vm,
        undefine_vm,
        vm_xml,
        vm_console,
        vm_console_log
    ),
    components(schemas(VmImage, VmTemplate, Vm, VmPort, CreateVm))
)]
pub(super) struct Doc;

pub(super) fn router(config: &Config) -> Router<Http> {
    let upload_limit = usize::try_from(config.vm.image_max_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(1024 * 1024);
    Router::new()
        .route(
            "/vm-images",
            post(upload_vm_image)
                .get(list_vm_images)
                .layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/vm-images/{name}", delete(delete_vm_image))
        .route("/vm-templates", get(list_vm_templates))
        .route("/vms", post(define_vm).get(list_vms))
        .route("/vms/{name}", get(get_vm).delete(undefine_vm))
        .route("/vms/{name}/start", post(start_vm))
        .route("/vms/{name}/destroy", post(destroy_vm))
        .route("/vms/{name}/xml", get(vm_xml))
        .route("/vms/{name}/console", get(vm_console))
        .route("/vms/{name}/console.log", get(vm_console_log))
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    all: bool,
}

/// Upload a disk image (multipart: `name`, `file`): a qcow2 or raw image, checked with
/// `qemu-img info`; an image naming a backing file or an external data file is refused.
#[utoipa::path(post, path = "/api/v1/vm-images",
    request_body(content = super::forms::VmImageForm, content_type = "multipart/form-data", description = "`name`: a DNS label; `file`: the image"),
    responses((status = 201, body = VmImage), (status = 400, body = ErrorBody, description = "bad name, not a qcow2 or raw image, a backing or data file"),
        (status = 409, body = ErrorBody, description = "name in use, or over the storage quota"), (status = 413, body = ErrorBody), (status = 503, body = ErrorBody, description = "no VM host")))]
async fn upload_vm_image(
    State(vms): State<Arc<Vms>>,
    State(containers): State<Arc<Containers>>,
    State(config): State<Arc<Config>>,
    caller: Caller,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<VmImage>), ApiError> {
    caller.require_full_scope()?;
    let form = multipart_form(multipart, "image")?;
    let limit = usize::try_from(config.vm.image_max_bytes).unwrap_or(usize::MAX);
    let upload = read_vm_image(form, None, containers.temp_files(), limit).await?;
    let image = vms.upload_image(&caller, &upload.name, upload.file).await?;
    Ok((StatusCode::CREATED, Json(image)))
}

/// The caller's disk images; admins may ask for everyone's with `?all=true`.
#[utoipa::path(get, path = "/api/v1/vm-images", params(("all" = Option<bool>, Query)),
    responses((status = 200, body = [VmImage])))]
async fn list_vm_images(
    State(vms): State<Arc<Vms>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Vec<VmImage>>, ApiError> {
    Ok(Json(vms.images(&caller, q.all).await?))
}

#[utoipa::path(delete, path = "/api/v1/vm-images/{name}", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "a VM uses it")))]
async fn delete_vm_image(
    State(vms): State<Arc<Vms>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    vms.delete_image(&caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The templates VMs are defined from, set by the administrators.
#[utoipa::path(get, path = "/api/v1/vm-templates", responses((status = 200, body = [VmTemplate])))]
async fn list_vm_templates(
    State(vms): State<Arc<Vms>>,
    caller: Caller,
) -> Result<Json<Vec<VmTemplate>>, ApiError> {
    caller.require_full_scope()?;
    Ok(Json(vms.templates()))
}

/// Define a VM from a template and one of the caller's images; it is not started.
#[utoipa::path(post, path = "/api/v1/vms", request_body = CreateVm,
    responses((status = 201, body = Vm), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody, description = "unknown template or image"),
        (status = 409, body = ErrorBody, description = "name in use, or over a quota"), (status = 503, body = ErrorBody, description = "no VM host")))]
async fn define_vm(
    State(vms): State<Arc<Vms>>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateVm>,
) -> Result<(StatusCode, Json<Vm>), ApiError> {
    Ok((StatusCode::CREATED, Json(vms.define(&caller, req).await?)))
}

/// The caller's VMs; admins may ask for everyone's with `?all=true`.
#[utoipa::path(get, path = "/api/v1/vms", params(("all" = Option<bool>, Query)),
    responses((status = 200, body = [Vm])))]
async fn list_vms(
    State(vms): State<Arc<Vms>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Vec<Vm>>, ApiError> {
    Ok(Json(vms.list(&caller, q.all).await?))
}

#[utoipa::path(get, path = "/api/v1/vms/{name}", params(("name" = String, Path, description = "full name"), ("owner" = Option<String>, Query, description = "admins: whose VM")),
    responses((status = 200, body = Vm), (status = 404, body = ErrorBody)))]
async fn get_vm(
    State(vms): State<Arc<Vms>>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(whose): ApiQuery<Whose>,
) -> Result<Json<Vm>, ApiError> {
    let vm = vms.load(&caller, &name, whose.owner.as_deref()).await?;
    Ok(Json(vms.get(vm).await?))
}

/// Power on.
#[utoipa::path(post, path = "/api/v1/vms/{name}/start", params(("name" = String, Path), ("owner" = Option<String>, Query, description = "admins: whose VM")),
    responses((status = 200, body = Vm), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "over a quota")))]
async fn start_vm(
    State(vms): State<Arc<Vms>>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(whose): ApiQuery<Whose>,
) -> Result<Json<Vm>, ApiError> {
    let vm = vms.load(&caller, &name, whose.owner.as_deref()).await?;
    Ok(Json(vms.start(vm).await?))
}

/// Power off at once (`virsh destroy`); the VM stays defined.
#[utoipa::path(post, path = "/api/v1/vms/{name}/destroy", params(("name" = String, Path), ("owner" = Option<String>, Query, description = "admins: whose VM")),
    responses((status = 200, body = Vm), (status = 404, body = ErrorBody)))]
async fn destroy_vm(
    State(vms): State<Arc<Vms>>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(whose): ApiQuery<Whose>,
) -> Result<Json<Vm>, ApiError> {
    let vm = vms.load(&caller, &name, whose.owner.as_deref()).await?;
    Ok(Json(vms.destroy(vm).await?))
}

/// Undefine: the VM, its disk and its transcript are removed.
#[utoipa::path(delete, path = "/api/v1/vms/{name}", params(("name" = String, Path), ("owner" = Option<String>, Query, description = "admins: whose VM")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn undefine_vm(
    State(vms): State<Arc<Vms>>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(whose): ApiQuery<Whose>,
) -> Result<StatusCode, ApiError> {
    let vm = vms.load(&caller, &name, whose.owner.as_deref()).await?;
    vms.undefine(vm).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A body of `content_type`.
fn answer(content_type: &'static str, body: impl IntoResponse) -> Response {
    (
        [(CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

/// The domain XML exactly as libvirt has it (`virsh dumpxml`).
#[utoipa::path(get, path = "/api/v1/vms/{name}/xml", params(("name" = String, Path), ("owner" = Option<String>, Query, description = "admins: whose VM")),
    responses((status = 200, content_type = "text/xml", body = String), (status = 404, body = ErrorBody)))]
async fn vm_xml(
    State(vms): State<Arc<Vms>>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(whose): ApiQuery<Whose>,
) -> Result<Response, ApiError> {
    let vm = vms.load(&caller, &name, whose.owner.as_deref()).await?;
    Ok(answer("text/xml; charset=utf-8", vms.dumpxml(&vm).await?))
}

/// The serial transcript: what the guest wrote on its first serial port, the last MiB.
#[utoipa::path(get, path = "/api/v1/vms/{name}/console.log", params(("name" = String, Path), ("owner" = Option<String>, Query, description = "admins: whose VM")),
    responses((status = 200, content_type = "text/plain", body = String), (status = 404, body = ErrorBody)))]
async fn vm_console_log(
    State(vms): State<Arc<Vms>>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(whose): ApiQuery<Whose>,
) -> Result<Response, ApiError> {
    let vm = vms.load(&caller, &name, whose.owner.as_deref()).await?;
    Ok(answer(
        "text/plain; charset=utf-8",
        vms.transcript(&vm).await?,
    ))
}

/// The serial console of the running VM, over a WebSocket, with the protocol of the
/// containers' terminal: binary frames are input and output; text frames
/// `{"type":"resize",...}` are accepted and ignored (a serial line has no size); when the
/// VM powers off the server sends `{"type":"exit","code":null}` and closes. Without
/// upgrade headers the answer is 400 `websocket_required`; 409 when it is not running.
#[utoipa::path(get, path = "/api/v1/vms/{name}/console", params(("name" = String, Path), ("owner" = Option<String>, Query, description = "admins: whose VM")),
    responses((status = 101, description = "WebSocket session"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "not running"), (status = 503, body = ErrorBody, description = "too many sessions open")))]
async fn vm_console(
    State(vms): State<Arc<Vms>>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(whose): ApiQuery<Whose>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let vm = vms.load(&caller, &name, whose.owner.as_deref()).await?;
    let ws = websocket(ws)?;
    let session = vms.console(&caller, &vm).await?;
    Ok(ws.on_upgrade(move |socket| async move {
        pump_terminal(socket, session.terminal, session.seat).await;
    }))
}
