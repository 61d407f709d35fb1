//! `/containers`: the list, the new-container form, a container's page (command, upload,
//! logs), start, stop and delete. Every action goes through `crate::service::containers`, whose
//! `load` refuses other people's containers exactly as the API does.

use super::i18n::Texts;
use super::{
    csrf_first, error_page, for_owner, has_terminal, notice, page, script, see_other, status_badge,
    terminal_element, when, Ctx, NoticeQuery, OrPage, PageError, Posted, Refused, Session,
};
use crate::http::containers::Whose;
use crate::http::forms::{multipart_form, read_upload};
use crate::http::Http;
use crate::service::containers::{Container, ContainerPatch, CreateContainer, ExecResult};
use crate::service::quotas::{QuotaView, UsageView};
use crate::service::Error;
use crate::service::{human_bytes, trim_number};
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde_json::Value;
use std::collections::HashMap;
use wm_domain::{Backend, StopReason};

fn port_links(ctx: &Ctx, c: &Container) -> Markup {
    html! {
        @if c.ports.is_empty() {
            span.muted { (ctx.t.no_ports) }
        } @else {
            ul.ports {
                @for p in &c.ports {
                    li {
                        (p.guest) " → "
                        @if let Some(host) = p.host {
                            a href={ "http://" (c.address) ":" (host) "/" } { (c.address) ":" (host) }
                        } @else if let Some(url) = &c.url {
                            // A kubernetes container: its first port is behind the Ingress.
                            a href=(url) { (url) }
                        } @else {
                            span.muted { "Service" }
                        }
                    }
                }
            }
        }
    }
}

/// The path of a container's page (`rest` is `""`, `"/exec"`, ...), saying whose it is
/// when it is not the caller's own: a full name alone may be several owners'.
pub(super) fn container_path(ctx: &Ctx, c: &Container, rest: &str) -> String {
    for_owner(ctx, &c.owner, format!("/containers/{}{rest}", c.name))
}

/// Output as the page shows it: without terminal escape codes (colours, cursor moves).
fn plain(text: &str) -> String {
    String::from_utf8_lossy(&strip_ansi_escapes::strip(text)).into_owned()
}

/// The browser terminal of a running docker container: an element the page script
/// (`assets/terminal.js`) turns into xterm.js on the API's WebSocket session. Without
/// JavaScript, or in a build without the terminal, it says so and the one-shot form below
/// remains.
fn terminal_section(ctx: &Ctx, c: &Container, running: bool) -> Markup {
    let t = ctx.t;
    let api = for_owner(
        ctx,
        &c.owner,
        format!("/api/v1/containers/{}/terminal", c.name),
    );
    html! {
        section aria-labelledby="terminal-h" {
            h2 #terminal-h { (t.terminal_title) }
            @if !running {
                p.muted { (t.terminal_not_running) }
            } @else if !has_terminal() {
                p.warn #terminal-missing { (t.terminal_missing) }
            } @else {
                p.hint { (t.terminal_hint) }
                (terminal_element(t, &api))
            }
        }
    }
}

/// The API's streamed logs of the container (the session cookie authenticates it).
fn follow_logs_url(ctx: &Ctx, c: &Container) -> String {
    let url = format!("/api/v1/containers/{}/logs?follow=true&tail=100", c.name);
    for_owner(ctx, &c.owner, url)
}

fn action_form(ctx: &Ctx, c: &Container, action: &str, label: &str) -> Markup {
    html! {
        form.inline method="post" action=(container_path(ctx, c, &format!("/{action}"))) {
            (ctx.csrf_field())
            button type="submit" { (label) span.sr { " " (c.name) } }
        }
    }
}

/// Why the console stopped the container, or what it is about to do: the idle stop or
/// the expiry, as a warning when it is near.
fn reclaim_note(t: &Texts, c: &Container) -> Markup {
    html! {
        @if let Some(reason) = c.stop_reason {
            p.reclaim.warn data-stop-reason=(reason.as_str()) {
                @match reason {
                    StopReason::Idle => (t.stopped_idle),
                    StopReason::Expired => (t.stopped_expired),
                }
            }
        }
        @if let (true, Some(at)) = (c.expired, &c.deletes_at) {
            p.reclaim.warn data-reclaim="expired" { (t.expired_note) " " (when(at)) }
        } @else if let (true, Some(at)) = (c.warning, &c.idle_stop_at) {
            p.reclaim.warn role="status" data-reclaim="idle" { (t.idle_warning) " " (when(at)) }
        } @else if let (true, Some(at)) = (c.warning, &c.expires_at) {
            p.reclaim.warn role="status" data-reclaim="expiry" { (t.expiry_warning) " " (when(at)) }
        }
    }
}

pub(super) async fn list(
    State(http): State<Http>,
    Session(ctx): Session,
    q: Query<NoticeQuery>,
) -> Result<Response, PageError> {
    let t = ctx.t;
    let list = http
        .containers
        .list(ctx.caller(), false)
        .await
        .or_page(&ctx)?;
    let (quota, usage) = http.quotas.mine(ctx.caller()).await.or_page(&ctx)?;
    let vms = super::vms::section(&http, &ctx).await?;
    // Where a container runs is a choice only with a cluster; without one it is no news.
    let backends = http.containers.cluster_enabled();
    let body = html! {
        (notice(&ctx, &q))
        (usage_panel(&ctx, &quota, &usage))
        p {
            a.button.primary href="/containers/new" { (t.new_container) }
            @if http.containers.cluster_enabled() {
                " " a.button href="/api/v1/kubeconfig" download="kubeconfig.yaml" aria-describedby="kubeconfig-hint" { (t.download_kubeconfig) }
            }
        }
        @if http.containers.cluster_enabled() { p.hint #kubeconfig-hint { (t.hint_kubeconfig) } }
        @if list.is_empty() {
            p { (t.no_containers) }
        } @else {
            table.cards {
                thead { tr {
                    th scope="col" { (t.name) } th scope="col" { (t.image) }
                    @if backends { th scope="col" { (t.backend) } } th scope="col" { (t.host) }
                    th scope="col" { (t.status) } th scope="col" { (t.ports) }
                    th scope="col" { (t.created) } th scope="col" { (t.actions) }
                } }
                tbody {
                    @for c in &list {
                        tr {
                            td data-label=(t.name) { a href=(container_path(&ctx, c, "")) { (c.name) } }
                            td data-label=(t.image) { code { (c.image) } }
                            @if backends { td data-label=(t.backend) { (t.backend_word(c.backend)) } }
                            td data-label=(t.host) { (c.host) }
                            td data-label=(t.status) { (status_badge(t, c.status)) (reclaim_note(t, c)) }
                            td data-label=(t.ports) { (port_links(&ctx, c)) }
                            td data-label=(t.created) { (when(&c.created_at)) }
                            td data-label=(t.actions) {
                                div.actions {
                                    @if c.status == wm_domain::ContainerStatus::Running {
                                        (action_form(&ctx, c, "stop", t.stop))
                                    } @else {
                                        (action_form(&ctx, c, "start", t.start))
                                    }
                                    a.button.danger href=(container_path(&ctx, c, "/delete")) {
                                        (t.delete) span.sr { " " (c.name) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        (vms)
    };
    Ok(page(&ctx, t.containers, body).into_response())
}

/// What the person holds against their quota.
fn usage_panel(ctx: &Ctx, quota: &QuotaView, usage: &UsageView) -> Markup {
    let t = ctx.t;
    let count = |n: Option<i64>| n.map_or_else(|| t.no_limit.to_string(), |n| n.to_string());
    let bytes = |n: Option<i64>| n.map_or_else(|| t.no_limit.to_string(), human_bytes);
    let rows: [(&str, String, String); 6] = [
        (
            t.q_containers,
            usage.containers.to_string(),
            count(quota.containers),
        ),
        (t.q_running, usage.running.to_string(), count(quota.running)),
        (
            t.q_cpus,
            trim_number(usage.cpus),
            quota
                .cpus
                .map_or_else(|| t.no_limit.to_string(), trim_number),
        ),
        (
            t.q_memory,
            human_bytes(usage.memory_bytes),
            bytes(quota.memory_bytes),
        ),
        (t.q_gpus, usage.gpus.to_string(), count(quota.gpus)),
        (t.q_ports, usage.ports.to_string(), count(quota.ports)),
    ];
    html! {
        section.usage aria-labelledby="quota-h" {
            h2 #quota-h { (t.quota_title) }
            table #quota {
                thead { tr { th scope="col" { span.sr { (t.quota_title) } } th scope="col" { (t.quota_in_use) } th scope="col" { (t.quota_limit) } } }
                tbody {
                    @for (what, used, limit) in rows {
                        tr { th scope="row" { (what) } td { (used) } td { (limit) } }
                    }
                }
            }
        }
    }
}

/// What the form shows: the person's input and, per field, what is wrong with it.
#[derive(Default)]
struct NewForm {
    name: String,
    image: String,
    env: String,
    ports: String,
    backend: String,
    cpus: String,
    memory: String,
    gpus: String,
    expires_at: String,
    error_field: Option<&'static str>,
    error: Option<String>,
    summary: Option<String>,
}

async fn new_page(http: &Http, ctx: &Ctx, f: &NewForm, status: StatusCode) -> Response {
    let t = ctx.t;
    // Suggestions only: a failure to list images leaves the field free text.
    let suggestions = http.images.visible(ctx.caller()).await.unwrap_or_default();
    // The choice shows only what one host has free and the quota leaves.
    let gpus_free = http
        .containers
        .gpus_available(ctx.caller())
        .await
        .unwrap_or(0);
    let field = |id: &'static str, label: &str, hint: &str, value: &str, required: bool| {
        let wrong = f.error_field == Some(id);
        let hint_id = format!("{id}-hint");
        let err_id = format!("{id}-error");
        let described = if wrong {
            format!("{err_id} {hint_id}")
        } else {
            hint_id.clone()
        };
        html! {
            div.field.invalid[wrong] {
                label for=(id) { (label) }
                @if wrong {
                    p.field-error id=(err_id) { (f.error.as_deref().unwrap_or("")) }
                }
                input id=(id) name=(id) type="text" value=(value) required[required]
                    autocapitalize="none" spellcheck="false"
                    list=[(id == "image").then_some("image-list")]
                    aria-invalid=[wrong.then_some("true")] aria-describedby=(described);
                p.hint id=(hint_id) { (hint) }
            }
        }
    };
    let body = html! {
        @if let Some(s) = &f.summary { p.error role="alert" { (s) } }
        form.card method="post" action="/containers/new" novalidate {
            (ctx.csrf_field())
            (field("name", t.name, t.hint_name, &f.name, true))
            (field("image", t.image, t.hint_image, &f.image, true))
            datalist #image-list {
                @for i in &suggestions {
                    @let named = i.course_notes.first().map(|n| {
                        [n.title.as_deref(), n.note.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" — ")
                    });
                    option value=(i.reference) label=[named] {}
                }
            }
            @let course_images: Vec<_> = suggestions.iter().filter(|i| !i.course_notes.is_empty()).collect();
            @if !course_images.is_empty() {
                div.field {
                    p.hint { (t.course_images_hint) }
                    ul #course-image-list {
                        @for i in course_images { @for n in &i.course_notes {
                            li data-image=(i.reference) {
                                @if let Some(title) = &n.title { strong { (title) } " " }
                                code { (i.reference) }
                                @if let Some(note) = &n.note { " — " (note) }
                            }
                        } }
                    }
                }
            }
            (field("env", t.env, t.hint_env, &f.env, false))
            (field("ports", t.ports, t.hint_ports, &f.ports, false))
            (field("cpus", t.cpus_label, t.hint_cpus, &f.cpus, false))
            (field("memory", t.memory_label, t.hint_memory, &f.memory, false))
            (field("expires_at", t.expires, t.hint_expires, &f.expires_at, false))
            @if gpus_free > 0 {
                div.field.invalid[f.error_field == Some("gpus")] {
                    label for="gpus" { (t.gpus_label) }
                    select #gpus name="gpus" aria-describedby="gpus-hint" {
                        @for n in 0..=gpus_free {
                            option value=(n) selected[f.gpus == n.to_string()] { (n) }
                        }
                    }
                    p.hint #gpus-hint { (t.gpus_free) ": " (gpus_free) }
                }
            }
            // Only a cluster makes where it runs a choice; without one the field is not shown
            // and the container goes to Docker.
            @if http.containers.cluster_enabled() {
                div.field.invalid[f.error_field == Some("backend")] {
                    label for="backend" { (t.backend) }
                    @if f.error_field == Some("backend") {
                        p.field-error #backend-error { (f.error.as_deref().unwrap_or("")) }
                    }
                    select #backend name="backend" aria-describedby="backend-hint" {
                        option value=(Backend::Docker) selected[f.backend != Backend::Kubernetes.as_str()] { (t.backend_word(Backend::Docker)) }
                        option value=(Backend::Kubernetes) selected[f.backend == Backend::Kubernetes.as_str()] { (t.backend_word(Backend::Kubernetes)) }
                    }
                    p.hint #backend-hint { (t.hint_backend) }
                }
            }
            button.primary type="submit" { (t.create_button) }
        }
    };
    (status, page(ctx, t.new_title, body)).into_response()
}

pub(super) async fn new_form(State(http): State<Http>, Session(ctx): Session) -> Response {
    let f = NewForm {
        backend: Backend::Docker.as_str().into(),
        ..Default::default()
    };
    new_page(&http, &ctx, &f, StatusCode::OK).await
}

pub(super) async fn create(State(http): State<Http>, posted: Posted) -> Response {
    let ctx = &posted.ctx;
    let t = ctx.t;
    let mut f = NewForm {
        name: posted.field("name").trim().to_string(),
        image: posted.field("image").trim().to_string(),
        env: posted.field("env").trim().to_string(),
        ports: posted.field("ports").trim().to_string(),
        backend: posted.field("backend").trim().to_string(),
        cpus: posted.field("cpus").trim().to_string(),
        memory: posted.field("memory").trim().to_string(),
        gpus: posted.field("gpus").trim().to_string(),
        expires_at: posted.field("expires_at").trim().to_string(),
        ..Default::default()
    };
    let optional = |s: &str| (!s.is_empty()).then(|| Value::String(s.to_string()));
    let req = CreateContainer {
        name: f.name.clone(),
        image: f.image.clone(),
        env: optional(&f.env),
        ports: optional(&f.ports),
        backend: optional(&f.backend).map(|v| v.as_str().unwrap_or_default().to_string()),
        requires: None,
        cpus: match f.cpus.parse::<f64>() {
            Ok(c) => Some(c),
            Err(_) if f.cpus.is_empty() => None,
            Err(_) => Some(f64::NAN),
        },
        memory: optional(&f.memory),
        gpus: match f.gpus.parse::<u32>() {
            Ok(0) => None,
            Ok(n) => Some(n),
            Err(_) if f.gpus.is_empty() => None,
            Err(_) => Some(u32::MAX),
        },
        expires_at: (!f.expires_at.is_empty()).then(|| f.expires_at.clone()),
        course: None,
    };
    let e = match http.containers.create(ctx.caller(), req).await {
        Ok(_) => return see_other("/containers?notice=created"),
        Err(e) => e,
    };
    let status = crate::http::error::service_status(&e);
    let (field, message) = match &e {
        Error::Invalid {
            field: Some(field), ..
        } => match *field {
            "name" => ("name", t.err_name),
            "image" => ("image", t.err_image),
            "env" => ("env", env_error(t, &f.env)),
            "ports" => ("ports", t.err_ports),
            "backend" => ("backend", t.err_backend),
            "cpus" => ("cpus", t.err_invalid),
            "memory" => ("memory", t.err_invalid),
            "gpus" => ("gpus", t.err_invalid),
            "expires_at" => ("expires_at", t.err_expiry),
            _ => return error_page(ctx, &e.into()),
        },
        Error::Conflict(_) => ("name", t.err_name_taken),
        Error::NotFound { code, .. } if *code == "image_not_found" => {
            ("image", t.err_image_unknown)
        }
        _ => return error_page(ctx, &e.into()),
    };
    f.error_field = Some(field);
    f.error = Some(match super::what_is_wrong(ctx, &e) {
        Some(wrong) => format!("{wrong} {message}"),
        None => message.to_string(),
    });
    f.summary = Some(t.form_has_errors.to_string());
    new_page(&http, ctx, &f, status).await
}

/// What is wrong with the environment field, in the reader's words: its quoting when the
/// line cannot be split into words (the domain's one reading of it), else its pairs.
fn env_error(t: &Texts, env: &str) -> &'static str {
    match wm_domain::shell_words(env) {
        Err(wm_domain::QuotingError::Unclosed(_)) => t.err_env_quote,
        Err(wm_domain::QuotingError::TrailingBackslash) => t.err_env_backslash,
        Ok(_) => t.err_env,
    }
}

/// A container's page: `top` above it all, a command's output, or a refused form of it.
async fn detail_page(
    http: &Http,
    ctx: &Ctx,
    name: &str,
    owner: Option<&str>,
    top: Markup,
    output: Option<(&str, ExecResult)>,
    refused: Option<&Refused>,
) -> Result<Response, PageError> {
    let t = ctx.t;
    let wrong = |form: &str, field: &str| {
        Refused::of(refused, form).is_some_and(|r| r.field == Some(field))
    };
    let owned = http
        .containers
        .load(ctx.caller(), name, owner)
        .await
        .or_page(ctx)?;
    // The page still helps when the host cannot give the logs (a gone container).
    let logs = match http.containers.logs(&owned, 100).await {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(_) => String::new(),
    };
    let c = http.containers.get(owned).await.or_page(ctx)?;
    let running = c.status == wm_domain::ContainerStatus::Running;
    let body = html! {
        (top)
        dl.facts {
            dt { (t.owner) } dd { (c.owner) }
            dt { (t.image) } dd { code { (c.image) } }
            @if http.containers.cluster_enabled() { dt { (t.backend) } dd { (t.backend_word(c.backend)) } }
            dt { (t.host) } dd { (c.host) }
            dt { (t.status) } dd { (status_badge(t, c.status)) }
            dt { (t.ports) } dd { (port_links(ctx, &c)) }
            dt { (t.env) } dd {
                @if c.env.is_empty() { span.muted { "—" } }
                @for e in &c.env { code { (e) } " " }
            }
            dt { (t.created) } dd { (when(&c.created_at)) }
            @if let Some(at) = &c.expires_at {
                dt { (t.expires) } dd {
                    (when(at))
                    @if let Some(d) = &c.deletes_at { " (" (t.deleted_after) " " (when(d)) ")" }
                }
            }
        }
        (reclaim_note(t, &c))
        form.inline #expiry method="post" action=(container_path(ctx, &c, "/expiry")) {
            (ctx.csrf_field())
            (Refused::alert(refused, ctx, "expiry"))
            label for="expires_at" { (t.expires) }
            " "
            input #expires_at name="expires_at" type="text" autocapitalize="none" spellcheck="false"
                value=(Refused::value(refused, "expiry", "expires_at", c.expires_at.as_deref().unwrap_or("")))
                aria-invalid=[Refused::of(refused, "expiry").map(|_| "true")] aria-describedby="expires-hint";
            " "
            button type="submit" { (t.save) }
            p.hint #expires-hint { (t.hint_expires) }
        }
        div.actions {
            @if running { (action_form(ctx, &c, "stop", t.stop)) } @else { (action_form(ctx, &c, "start", t.start)) }
            a.button.danger href=(container_path(ctx, &c, "/delete")) { (t.delete) }
        }
        @if c.backend == Backend::Kubernetes {
            section aria-labelledby="kubectl-h" {
                h2 #kubectl-h { (t.exec_title) }
                p { (t.hint_kubectl) }
                pre { "kubectl --kubeconfig kubeconfig.yaml exec -it deploy/" (c.name) " -- sh" }
                p { a.button href="/api/v1/kubeconfig" download="kubeconfig.yaml" { (t.download_kubeconfig) } }
            }
        } @else {
        (terminal_section(ctx, &c, running))
        section aria-labelledby="exec-h" {
            h2 #exec-h { (t.exec_title) }
            form.card #exec method="post" action=(container_path(ctx, &c, "/exec")) {
                (ctx.csrf_field())
                (Refused::alert(refused, ctx, "exec"))
                div.field {
                    label for="cmd" { (t.command) }
                    input #cmd name="cmd" type="text" required autocapitalize="none" spellcheck="false"
                        value=(Refused::value(refused, "exec", "cmd", output.as_ref().map_or("", |(cmd, _)| cmd)))
                        aria-describedby="cmd-hint";
                    p.hint #cmd-hint { (t.hint_command.replace("{secs}", &http.config.exec_timeout_secs.to_string())) }
                }
                button.primary type="submit" { (t.run) }
            }
            @if let Some((_, r)) = &output {
                div #exec-result role="status" {
                    p { (t.exit_code) ": " strong #exit-code { (r.exit_code.map_or("—".to_string(), |c| c.to_string())) } }
                    @if r.timed_out { p.warn { (t.timed_out) } }
                    @if r.truncated { p.warn { (t.truncated) } }
                    h3 { (t.stdout) }
                    pre #stdout tabindex="0" { (plain(&r.stdout)) }
                    @if !r.stderr.is_empty() {
                        h3 { (t.stderr) }
                        pre #stderr tabindex="0" { (plain(&r.stderr)) }
                    }
                }
            }
        }
        section aria-labelledby="upload-h" {
            h2 #upload-h { (t.upload_title) }
            // The script checks the files' size against the limit before they are sent.
            form.card #upload method="post" action=(container_path(ctx, &c, "/files")) enctype="multipart/form-data"
                data-max-bytes=(http.config.upload_max_bytes) data-too-large=(t.upload_too_large)
                data-limit=(human_bytes(http.config.upload_max_bytes as i64)) {
                // First, so the token is checked before any file is read.
                (ctx.csrf_field())
                (Refused::alert(refused, ctx, "upload"))
                div.field.invalid[wrong("upload", "path")] {
                    label for="path" { (t.directory) }
                    input #path name="path" type="text" value=(Refused::value(refused, "upload", "path", "/tmp"))
                        required autocapitalize="none" spellcheck="false"
                        aria-invalid=[wrong("upload", "path").then_some("true")];
                }
                div.field.check {
                    input #create type="checkbox" name="create" value="on"
                        checked[Refused::value(refused, "upload", "create", "") == "on"];
                    label for="create" { (t.create_dir) }
                }
                div.field.invalid[wrong("upload", "file")] {
                    label for="file" { (t.files) }
                    input #file name="file" type="file" multiple required aria-describedby="file-hint";
                    p.hint #file-hint {
                        (t.upload_limit.replace("{size}", &human_bytes(http.config.upload_max_bytes as i64)))
                        @if Refused::of(refused, "upload").is_some() { " " (t.files_not_kept) }
                    }
                    p.field-error #file-size-error role="alert" hidden {}
                }
                button.primary type="submit" { (t.upload_button) }
            }
        }
        section aria-labelledby="download-h" {
            h2 #download-h { (t.download_title) }
            // A GET form sends its fields as the query: the owner goes as one of them.
            form.card method="get" action={ "/api/v1/containers/" (c.name) "/files" } {
                @if c.owner != ctx.caller().name.as_str() {
                    input type="hidden" name="owner" value=(c.owner);
                }
                div.field {
                    label for="download-path" { (t.directory) }
                    input #download-path name="path" type="text" value="/tmp" required autocapitalize="none" spellcheck="false";
                    p.hint { (t.download_hint) }
                }
                button type="submit" { (t.download_button) }
            }
        }
        }
        section aria-labelledby="logs-h" {
            h2 #logs-h { (t.logs_title) }
            @if logs.is_empty() { p.muted #no-logs { (t.no_logs) } }
            pre #logs tabindex="0" hidden[logs.is_empty()] { (plain(&logs)) }
            p {
                a href={ (container_path(ctx, &c, "")) "#logs-h" } { (t.refresh) }
                " · "
                a href=(follow_logs_url(ctx, &c)) data-follow-logs="logs" data-following=(t.following) { (t.follow_logs) }
            }
        }
        (script("/assets/progress.js"))
    };
    let status = refused.map_or(StatusCode::OK, |r| r.status);
    Ok((status, page(ctx, &c.name, body)).into_response())
}

pub(super) async fn detail(
    State(http): State<Http>,
    Session(ctx): Session,
    Path(name): Path<String>,
    q: Query<NoticeQuery>,
    Query(whose): Query<Whose>,
) -> Result<Response, PageError> {
    detail_page(
        &http,
        &ctx,
        &name,
        whose.owner.as_deref(),
        notice(&ctx, &q),
        None,
        None,
    )
    .await
}

pub(super) async fn exec(
    State(http): State<Http>,
    Path(name): Path<String>,
    Query(whose): Query<Whose>,
    posted: Posted,
) -> Result<Response, PageError> {
    let ctx = &posted.ctx;
    let cmd = posted.field("cmd");
    let owner = whose.owner.as_deref();
    let owned = http
        .containers
        .load(ctx.caller(), &name, owner)
        .await
        .or_page(ctx)?;
    match http
        .containers
        .exec(&owned, Value::String(cmd.to_string()))
        .await
    {
        Ok(result) => {
            detail_page(
                &http,
                ctx,
                &name,
                owner,
                html! {},
                Some((cmd, result)),
                None,
            )
            .await
        }
        Err(e) => {
            let refused = Refused::new(ctx, "exec", posted.fields.clone(), e);
            detail_page(&http, ctx, &name, owner, html! {}, None, Some(&refused)).await
        }
    }
}

pub(super) async fn upload(
    State(http): State<Http>,
    Session(ctx): Session,
    Path(name): Path<String>,
    Query(whose): Query<Whose>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, PageError> {
    let owned = http
        .containers
        .load(ctx.caller(), &name, whose.owner.as_deref())
        .await
        .or_page(&ctx)?;
    let form = multipart_form(multipart, "files").or_page(&ctx)?;
    let accept = |token: &str| ctx.accepts(token);
    let (owner, page_of) = (whose.owner.as_deref(), (&http, &ctx, name.as_str()));
    let refuse = |sent: HashMap<String, String>, e: Error| {
        let (http, ctx, name) = page_of;
        let refused = Refused::new(ctx, "upload", sent, e);
        async move { detail_page(http, ctx, name, owner, html! {}, None, Some(&refused)).await }
    };
    let upload = match read_upload(
        form,
        Some(&accept),
        http.containers.temp_files(),
        http.config.upload_max_bytes,
        http.config.upload_max_files,
    )
    .await
    {
        Ok(u) => u,
        Err(e) => return refuse(HashMap::new(), csrf_first(&ctx, e)?).await,
    };
    let sent = HashMap::from([
        ("path".to_string(), upload.dir.clone()),
        (
            "create".to_string(),
            if upload.create { "on" } else { "" }.to_string(),
        ),
    ]);
    if let Err(e) = http
        .containers
        .upload(&owned, &upload.dir, upload.files, upload.create)
        .await
    {
        return refuse(sent, e).await;
    }
    Ok(see_other(&for_owner(
        &ctx,
        owned.record().owner.as_str(),
        format!("/containers/{}?notice=uploaded", owned.name()),
    )))
}

pub(super) async fn confirm_delete(
    State(http): State<Http>,
    Session(ctx): Session,
    Path(name): Path<String>,
    Query(whose): Query<Whose>,
) -> Result<Response, PageError> {
    let t = ctx.t;
    let owned = http
        .containers
        .load(ctx.caller(), &name, whose.owner.as_deref())
        .await
        .or_page(&ctx)?;
    let action = for_owner(
        &ctx,
        owned.record().owner.as_str(),
        format!("/containers/{}/delete", owned.name()),
    );
    let body = html! {
        p { (t.confirm_delete) }
        p { strong { (owned.name().as_str()) } }
        form.card method="post" action=(action) {
            (ctx.csrf_field())
            div.actions {
                button.danger type="submit" { (t.delete) }
                a.button href="/containers" { (t.cancel) }
            }
        }
    };
    Ok(page(&ctx, t.confirm_delete_title, body).into_response())
}

pub(super) async fn delete(
    State(http): State<Http>,
    Path(name): Path<String>,
    Query(whose): Query<Whose>,
    posted: Posted,
) -> Result<Response, PageError> {
    let ctx = &posted.ctx;
    let owned = http
        .containers
        .load(ctx.caller(), &name, whose.owner.as_deref())
        .await
        .or_page(ctx)?;
    http.containers.delete(owned).await.or_page(ctx)?;
    Ok(see_other("/containers?notice=deleted"))
}

pub(super) async fn start(
    State(http): State<Http>,
    Path(name): Path<String>,
    Query(whose): Query<Whose>,
    posted: Posted,
) -> Result<Response, PageError> {
    let ctx = &posted.ctx;
    let owned = http
        .containers
        .load(ctx.caller(), &name, whose.owner.as_deref())
        .await
        .or_page(ctx)?;
    http.containers.start(owned).await.or_page(ctx)?;
    Ok(see_other("/containers?notice=started"))
}

/// Sets or (empty) removes the container's expiry, under the same rules as the API.
pub(super) async fn expiry(
    State(http): State<Http>,
    Path(name): Path<String>,
    Query(whose): Query<Whose>,
    posted: Posted,
) -> Result<Response, PageError> {
    let ctx = &posted.ctx;
    let owned = http
        .containers
        .load(ctx.caller(), &name, whose.owner.as_deref())
        .await
        .or_page(ctx)?;
    let asked = posted.field("expires_at").trim();
    let patch = ContainerPatch {
        expires_at: Some((!asked.is_empty()).then(|| asked.to_string())),
    };
    if let Err(e) = http.containers.set_expiry(ctx.caller(), owned, patch).await {
        let refused = Refused::new(ctx, "expiry", posted.fields.clone(), e);
        return detail_page(
            &http,
            ctx,
            &name,
            whose.owner.as_deref(),
            html! {},
            None,
            Some(&refused),
        )
        .await;
    }
    Ok(see_other("/containers?notice=saved"))
}

pub(super) async fn stop(
    State(http): State<Http>,
    Path(name): Path<String>,
    Query(whose): Query<Whose>,
    posted: Posted,
) -> Result<Response, PageError> {
    let ctx = &posted.ctx;
    let owned = http
        .containers
        .load(ctx.caller(), &name, whose.owner.as_deref())
        .await
        .or_page(ctx)?;
    http.containers.stop(owned).await.or_page(ctx)?;
    Ok(see_other("/containers?notice=stopped"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_page_shows_output_without_escape_codes() {
        assert_eq!(
            super::plain("\u{1b}[1;31mred\u{1b}[0m \u{1b}[2J\u{1b}[Hdone\n"),
            "red done\n"
        );
    }
}
