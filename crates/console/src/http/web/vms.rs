//! `/vms/...` and the VM list on the containers page: a VM's page (its state, forwarded
//! ports, serial console, transcript and domain XML), power on and off, and `/vms/new`:
//! upload a disk image, define a VM from a template and an image, the caller's images;
//! deleting a VM or an image asks first. Every action goes through
//! `crate::service::vms`, whose `load` refuses other people's VMs as the API does.

use super::i18n::Texts;
use super::{
    csrf_first, for_owner, has_terminal, notice, page, script, see_other, terminal_element, when,
    Ctx, NoticeQuery, OrPage, PageError, Posted, Refused, Session,
};
use crate::http::containers::Whose;
use crate::http::forms::{multipart_form, read_vm_image};
use crate::http::{ApiError, Http};
use crate::service::vms::{CreateVm, Vm};
use crate::service::{human_bytes, Error};
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, Query, State};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use std::collections::HashMap;

/// The path of a VM's page (`rest`: `""`, `"/start"`, ...), saying whose it is when it
/// is not the caller's own.
fn vm_path(ctx: &Ctx, v: &Vm, rest: &str) -> String {
    for_owner(ctx, &v.owner, format!("/vms/{}{rest}", v.name))
}

fn badge(t: &Texts, status: &str) -> Markup {
    let (word, class) = t.vm_status(status);
    html! { span class={ "badge " (class) } data-status=(status) { (word) } }
}

fn ports(ctx: &Ctx, v: &Vm) -> Markup {
    html! {
        @if v.ports.is_empty() {
            span.muted { (ctx.t.no_ports) }
        } @else {
            ul.ports {
                @for p in &v.ports {
                    li { (p.guest) " → " a href={ "http://" (v.address) ":" (p.host) "/" } { (v.address) ":" (p.host) } }
                }
            }
        }
    }
}

fn power_form(ctx: &Ctx, v: &Vm) -> Markup {
    let t = ctx.t;
    let (action, label) = if v.status == "running" {
        ("/destroy", t.vm_power_off)
    } else {
        ("/start", t.vm_power_on)
    };
    html! {
        form.inline method="post" action=(vm_path(ctx, v, action)) {
            (ctx.csrf_field())
            button type="submit" { (label) span.sr { " " (v.name) } }
        }
    }
}

/// The caller's VMs, for the containers page; nothing where VMs are not offered.
pub(super) async fn section(http: &Http, ctx: &Ctx) -> Result<Markup, PageError> {
    if !http.vms.enabled() {
        return Ok(html! {});
    }
    let t = ctx.t;
    let list = http.vms.list(ctx.caller(), false).await.or_page(ctx)?;
    Ok(html! {
        section #vms aria-labelledby="vms-h" {
            h2 #vms-h { (t.vms_title) }
            p { a.button href="/vms/new" { (t.new_vm) } }
            p.hint { (t.vm_cli_hint) }
            @if list.is_empty() {
                p { (t.no_vms) }
            } @else {
                table.cards {
                    thead { tr {
                        th scope="col" { (t.name) } th scope="col" { (t.vm_template) }
                        th scope="col" { (t.vm_image) } th scope="col" { (t.host) }
                        th scope="col" { (t.status) } th scope="col" { (t.ports) }
                        th scope="col" { (t.created) } th scope="col" { (t.actions) }
                    } }
                    tbody {
                        @for v in &list {
                            tr data-vm=(v.name) {
                                td data-label=(t.name) { a href=(vm_path(ctx, v, "")) { (v.name) } }
                                td data-label=(t.vm_template) { (v.template) }
                                td data-label=(t.vm_image) { code { (v.image) } }
                                td data-label=(t.host) { (v.host) }
                                td data-label=(t.status) { (badge(t, &v.status)) }
                                td data-label=(t.ports) { (ports(ctx, v)) }
                                td data-label=(t.created) { (when(&v.created_at)) }
                                td data-label=(t.actions) { div.actions { (power_form(ctx, v)) } }
                            }
                        }
                    }
                }
            }
        }
    })
}

pub(super) async fn detail(
    State(http): State<Http>,
    Session(ctx): Session,
    Path(name): Path<String>,
    q: Query<NoticeQuery>,
    Query(whose): Query<Whose>,
) -> Result<Response, PageError> {
    let t = ctx.t;
    let vms = &http.vms;
    let owned = vms
        .load(ctx.caller(), &name, whose.owner.as_deref())
        .await
        .or_page(&ctx)?;
    let xml = vms.dumpxml(&owned).await.or_page(&ctx)?;
    let transcript = vms.transcript(&owned).await.or_page(&ctx)?;
    let v = vms.get(owned).await.or_page(&ctx)?;
    let api = for_owner(&ctx, &v.owner, format!("/api/v1/vms/{}/console", v.name));
    let transcript = String::from_utf8_lossy(&strip_ansi_escapes::strip(&transcript)).into_owned();
    let body = html! {
        (notice(&ctx, &q))
        dl.facts {
            dt { (t.status) } dd { (badge(t, &v.status)) " " (power_form(&ctx, &v)) }
            dt { (t.vm_template) } dd { (v.template) " (" (v.vcpus) " vCPU, " (human_bytes(v.memory)) ")" }
            dt { (t.vm_image) } dd { code { (v.image) } }
            dt { (t.host) } dd { (v.host) }
            dt { (t.ports) } dd { (ports(&ctx, &v)) }
        }
        p { a.button.danger href=(vm_path(&ctx, &v, "/delete")) { (t.vm_delete) } }
        section aria-labelledby="terminal-h" {
            h2 #terminal-h { (t.vm_console_title) }
            @if v.status != "running" {
                p.muted { (t.vm_not_running) }
            } @else if !has_terminal() {
                p.warn #terminal-missing { (t.terminal_missing) }
            } @else {
                p.hint { (t.vm_console_hint) }
                (terminal_element(t, &api))
            }
        }
        section aria-labelledby="transcript-h" {
            h2 #transcript-h { (t.vm_transcript) }
            @if transcript.is_empty() {
                p.muted { (t.vm_no_transcript) }
            } @else {
                pre #transcript { (transcript) }
            }
        }
        section aria-labelledby="xml-h" {
            h2 #xml-h { (t.vm_xml) }
            pre #domain-xml { (xml) }
        }
    };
    Ok(page(&ctx, &v.name, body).into_response())
}

async fn power(
    http: Http,
    name: String,
    whose: Whose,
    posted: Posted,
    on: bool,
) -> Result<Response, PageError> {
    let ctx = &posted.ctx;
    let vms = &http.vms;
    let owned = vms
        .load(ctx.caller(), &name, whose.owner.as_deref())
        .await
        .or_page(ctx)?;
    let v = if on {
        vms.start(owned).await
    } else {
        vms.destroy(owned).await
    }
    .or_page(ctx)?;
    let notice = if on { "started" } else { "stopped" };
    let to = vm_path(ctx, &v, "");
    let sep = if to.contains('?') { '&' } else { '?' };
    Ok(see_other(&format!("{to}{sep}notice={notice}")))
}

pub(super) async fn start(
    State(http): State<Http>,
    Path(name): Path<String>,
    Query(whose): Query<Whose>,
    posted: Posted,
) -> Result<Response, PageError> {
    power(http, name, whose, posted, true).await
}

pub(super) async fn destroy(
    State(http): State<Http>,
    Path(name): Path<String>,
    Query(whose): Query<Whose>,
    posted: Posted,
) -> Result<Response, PageError> {
    power(http, name, whose, posted, false).await
}

/// `/vms/new`.
pub(super) async fn new_page(
    State(http): State<Http>,
    Session(ctx): Session,
    q: Query<NoticeQuery>,
) -> Result<Response, PageError> {
    new_vm_page(&http, &ctx, Some(&q), None).await
}

/// The page to upload images and define VMs on, with a refused form of it.
async fn new_vm_page(
    http: &Http,
    ctx: &Ctx,
    q: Option<&Query<NoticeQuery>>,
    refused: Option<&Refused>,
) -> Result<Response, PageError> {
    let t = ctx.t;
    http.vms.require_enabled().or_page(ctx)?;
    let images = http.vms.images(ctx.caller(), false).await.or_page(ctx)?;
    let templates = http.vms.templates();
    let max = http.config.vm.image_max_bytes;
    let wrong = |form: &str, field: &str| {
        Refused::of(refused, form).is_some_and(|r| r.field == Some(field))
    };
    let sent = |form: &str, name: &str| Refused::value(refused, form, name, "").to_string();
    let body = html! {
        @if let Some(q) = q { (notice(ctx, q)) }
        section aria-labelledby="vm-define-h" {
            h2 #vm-define-h { (t.vm_define_title) }
            @if images.is_empty() {
                p.hint { (t.no_vm_images) }
            } @else {
                form.card #vm-define method="post" action="/vms/new" {
                    (ctx.csrf_field())
                    (Refused::alert(refused, ctx, "vm-define"))
                    p.hint { (t.vm_define_hint) }
                    div.field.invalid[wrong("vm-define", "name")] {
                        label for="vm-name" { (t.name) }
                        input #vm-name name="name" type="text" required maxlength="30"
                            autocapitalize="none" spellcheck="false" value=(sent("vm-define", "name"))
                            aria-invalid=[wrong("vm-define", "name").then_some("true")];
                    }
                    div.field.invalid[wrong("vm-define", "template")] {
                        label for="vm-template" { (t.vm_template) }
                        select #vm-template name="template" {
                            @for tp in &templates {
                                option value=(tp.name) selected[sent("vm-define", "template") == tp.name] {
                                    (tp.name) " — " (tp.vcpus) " vCPU, " (human_bytes(tp.memory))
                                    @if let Some(d) = &tp.description { " — " (d) }
                                }
                            }
                        }
                    }
                    div.field.invalid[wrong("vm-define", "image")] {
                        label for="vm-image" { (t.vm_image) }
                        select #vm-image name="image" {
                            @for i in &images {
                                option value=(i.name) selected[sent("vm-define", "image") == i.name] {
                                    (i.name) " (" (i.format) ", " (human_bytes(i.virtual_size)) ")"
                                }
                            }
                        }
                    }
                    div.field.invalid[wrong("vm-define", "ports")] {
                        label for="vm-ports" { (t.ports) }
                        input #vm-ports name="ports" type="text" value=(sent("vm-define", "ports"))
                            aria-describedby="vm-ports-hint"
                            aria-invalid=[wrong("vm-define", "ports").then_some("true")];
                        p.hint #vm-ports-hint { (t.vm_ports_hint) }
                    }
                    button.primary type="submit" { (t.vm_define_button) }
                }
            }
        }
        section aria-labelledby="vm-upload-h" {
            h2 #vm-upload-h { (t.vm_upload_title) }
            // The script checks the file's size against the limit before it is sent.
            form.card #vm-upload method="post" action="/vms/images" enctype="multipart/form-data"
                data-max-bytes=(max) data-too-large=(t.upload_too_large)
                data-limit=(human_bytes(max as i64)) {
                // First, so the token is checked before any byte of the image is read.
                (ctx.csrf_field())
                (Refused::alert(refused, ctx, "vm-upload"))
                div.field.invalid[wrong("vm-upload", "name")] {
                    label for="vm-image-name" { (t.name) }
                    input #vm-image-name name="name" type="text" required maxlength="30"
                        autocapitalize="none" spellcheck="false" value=(sent("vm-upload", "name"))
                        aria-invalid=[wrong("vm-upload", "name").then_some("true")];
                }
                div.field.invalid[wrong("vm-upload", "file")] {
                    label for="vm-image-file" { (t.vm_image_file) }
                    input #vm-image-file name="file" type="file" required aria-describedby="vm-file-hint";
                    p.hint #vm-file-hint {
                        (t.vm_upload_hint) " " (t.upload_limit.replace("{size}", &human_bytes(max as i64)))
                    }
                    p.field-error #file-size-error role="alert" hidden {}
                }
                button.primary type="submit" { (t.upload_button) }
            }
        }
        section aria-labelledby="vm-images-h" {
            h2 #vm-images-h { (t.vm_images_title) }
            (Refused::alert(refused, ctx, "vm-images"))
            @if images.is_empty() {
                p { (t.no_vm_images) }
            } @else {
                table.cards {
                    thead { tr {
                        th scope="col" { (t.name) } th scope="col" { (t.vm_format) }
                        th scope="col" { (t.vm_disk_size) } th scope="col" { (t.host) }
                        th scope="col" { (t.created) } th scope="col" { (t.actions) }
                    } }
                    tbody {
                        @for i in &images {
                            tr data-vm-image=(i.name) {
                                td data-label=(t.name) { code { (i.name) } }
                                td data-label=(t.vm_format) { (i.format) }
                                td data-label=(t.vm_disk_size) { (human_bytes(i.virtual_size)) }
                                td data-label=(t.host) { (i.host) }
                                td data-label=(t.created) { (when(&i.created_at)) }
                                td data-label=(t.actions) {
                                    a.button.danger href={ "/vms/images/" (i.name) "/delete" } {
                                        (t.delete) span.sr { " " (i.name) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        (script("/assets/progress.js"))
    };
    let status = refused.map_or(axum::http::StatusCode::OK, |r| r.status);
    Ok((status, page(ctx, t.vm_new_title, body)).into_response())
}

/// `POST /vms/new`: defines a VM; refused, the form again with what was sent.
pub(super) async fn define(
    State(http): State<Http>,
    posted: Posted,
) -> Result<Response, PageError> {
    let ctx = &posted.ctx;
    let ports = posted.field("ports").trim();
    let req = CreateVm {
        name: posted.field("name").trim().to_string(),
        template: posted.field("template").to_string(),
        image: posted.field("image").to_string(),
        ports: (!ports.is_empty()).then(|| serde_json::Value::String(ports.to_string())),
    };
    match http.vms.define(ctx.caller(), req).await {
        Ok(v) => Ok(see_other(&format!(
            "{}?notice=vm-defined",
            vm_path(ctx, &v, "")
        ))),
        Err(e) => {
            let refused = Refused::new(ctx, "vm-define", posted.fields.clone(), e);
            new_vm_page(&http, ctx, None, Some(&refused)).await
        }
    }
}

/// `POST /vms/images`: keeps an uploaded image once the host checked it.
pub(super) async fn upload_image(
    State(http): State<Http>,
    Session(ctx): Session,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, PageError> {
    let refuse = |sent: HashMap<String, String>, e: ApiError| {
        let (http, ctx) = (&http, &ctx);
        async move {
            let refused = Refused::new(ctx, "vm-upload", sent, e);
            new_vm_page(http, ctx, None, Some(&refused)).await
        }
    };
    let form = match multipart_form(multipart, "image") {
        Ok(f) => f,
        Err(e) => return refuse(HashMap::new(), e).await,
    };
    let accept = |token: &str| ctx.accepts(token);
    let limit = usize::try_from(http.config.vm.image_max_bytes).unwrap_or(usize::MAX);
    let upload = match read_vm_image(form, Some(&accept), http.containers.temp_files(), limit).await
    {
        Ok(u) => u,
        Err(e) => return refuse(HashMap::new(), csrf_first(&ctx, e)?.into()).await,
    };
    let sent = HashMap::from([("name".to_string(), upload.name.clone())]);
    match http
        .vms
        .upload_image(ctx.caller(), &upload.name, upload.file)
        .await
    {
        Ok(_) => Ok(see_other("/vms/new?notice=vm-image-uploaded")),
        Err(e) => refuse(sent, e.into()).await,
    }
}

/// A page that asks before something is deleted: `what` is named, `action` does it.
fn confirm(
    ctx: &Ctx,
    title: &str,
    question: &str,
    what: &str,
    action: &str,
    back: &str,
) -> Response {
    let t = ctx.t;
    let body = html! {
        p { (question) }
        p { strong { (what) } }
        form.card method="post" action=(action) {
            (ctx.csrf_field())
            div.actions {
                button.danger type="submit" { (t.delete) }
                a.button href=(back) { (t.cancel) }
            }
        }
    };
    page(ctx, title, body).into_response()
}

/// `GET /vms/images/{name}/delete`: asks first (only for the caller's own image).
pub(super) async fn confirm_delete_image(
    State(http): State<Http>,
    Session(ctx): Session,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let t = ctx.t;
    let images = http.vms.images(ctx.caller(), false).await.or_page(&ctx)?;
    let image = images
        .iter()
        .find(|i| i.name == name)
        .ok_or_else(|| {
            let name: String = name.chars().take(64).collect();
            Error::missing(
                "image_not_found",
                "vm_image",
                [("name", name.clone())],
                format!("VM image {name}"),
            )
        })
        .or_page(&ctx)?;
    let action = format!("/vms/images/{}/delete", image.name);
    Ok(confirm(
        &ctx,
        t.vm_image_delete_title,
        t.vm_image_confirm_delete,
        &image.name,
        &action,
        "/vms/new",
    ))
}

/// `POST /vms/images/{name}/delete`; refused (a VM uses it), the page of images says why.
pub(super) async fn delete_image(
    State(http): State<Http>,
    Path(name): Path<String>,
    posted: Posted,
) -> Result<Response, PageError> {
    let ctx = &posted.ctx;
    match http.vms.delete_image(ctx.caller(), &name).await {
        Ok(()) => Ok(see_other("/vms/new?notice=vm-image-deleted")),
        Err(e) => {
            let refused = Refused::new(ctx, "vm-images", HashMap::new(), e);
            new_vm_page(&http, ctx, None, Some(&refused)).await
        }
    }
}

/// `GET /vms/{name}/delete`: asks first.
pub(super) async fn confirm_delete(
    State(http): State<Http>,
    Session(ctx): Session,
    Path(name): Path<String>,
    Query(whose): Query<Whose>,
) -> Result<Response, PageError> {
    let t = ctx.t;
    let owned = http
        .vms
        .load(ctx.caller(), &name, whose.owner.as_deref())
        .await
        .or_page(&ctx)?;
    let v = http.vms.get(owned).await.or_page(&ctx)?;
    Ok(confirm(
        &ctx,
        t.vm_delete,
        t.vm_confirm_delete,
        &v.name,
        &vm_path(&ctx, &v, "/delete"),
        &vm_path(&ctx, &v, ""),
    ))
}

/// `POST /vms/{name}/delete`: undefines the VM; its disk goes with it.
pub(super) async fn delete(
    State(http): State<Http>,
    Path(name): Path<String>,
    Query(whose): Query<Whose>,
    posted: Posted,
) -> Result<Response, PageError> {
    let ctx = &posted.ctx;
    let owned = http
        .vms
        .load(ctx.caller(), &name, whose.owner.as_deref())
        .await
        .or_page(ctx)?;
    http.vms.undefine(owned).await.or_page(ctx)?;
    Ok(see_other("/containers?notice=vm-deleted"))
}
