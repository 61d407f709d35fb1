//! `/vms/...` and the VM list on the containers page: a VM's page (its state, forwarded
//! ports, serial console, transcript and domain XML), power on and off. Every action goes
//! through `crate::service::vms`, whose `load` refuses other people's VMs as the API does.

use super::i18n::Texts;
use super::{
    for_owner, has_terminal, notice, page, see_other, terminal_element, when, Ctx, NoticeQuery,
    OrPage, PageError, Posted, Session,
};
use crate::http::containers::Whose;
use crate::http::Http;
use crate::service::vms::Vm;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};

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
            dt { (t.vm_template) } dd { (v.template) " (" (v.vcpus) " vCPU, " (super::human_size(v.memory)) ")" }
            dt { (t.vm_image) } dd { code { (v.image) } }
            dt { (t.host) } dd { (v.host) }
            dt { (t.ports) } dd { (ports(&ctx, &v)) }
        }
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
