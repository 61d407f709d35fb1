//! `/admin`: every user, every container, the hosts, the recent audit log. Administrators
//! only; anyone else gets the same 403 as the admin API.

use super::{
    notice, page, see_other, short_time, status_badge, NoticeQuery, OrPage, PageError, Posted,
    Session,
};
use crate::http::Http;
use crate::service::accounts::{Admin, NewUser};
use crate::service::quotas::QuotaPatch;
use crate::service::{human_bytes, trim_number, Error};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::html;

pub(super) async fn page_handler(
    State(http): State<Http>,
    Session(ctx): Session,
    q: Query<NoticeQuery>,
) -> Result<Response, PageError> {
    let t = ctx.t;
    let caller = ctx.caller();
    let admin = Admin::check(caller).or_page(&ctx)?;
    let users = http.accounts.users(&admin).await.or_page(&ctx)?;
    // Users and the audit log stay readable while the Docker host is down.
    let all = http.containers.list(caller, true).await;
    let audit = http.audit.newest(&admin, 50).await.or_page(&ctx)?;
    let hosts = http.system.hosts(&admin).await.or_page(&ctx)?;
    let quotas = http.quotas.all(&admin).await.or_page(&ctx)?;
    let limit = |n: Option<i64>| n.map_or_else(|| t.no_limit.to_string(), |n| n.to_string());
    let body = html! {
        (notice(&ctx, &q))
        section aria-labelledby="hosts-h" {
            h2 #hosts-h { (t.hosts) }
            table.cards {
                thead { tr {
                    th scope="col" { (t.host) } th scope="col" { (t.status) } th scope="col" { (t.containers) }
                    th scope="col" { (t.host_labels) } th scope="col" { (t.host_gpus) } th scope="col" { (t.image_disk) } th scope="col" { (t.version) } th scope="col" { span.sr { (t.drain) } }
                } }
                tbody { @for h in &hosts { tr {
                    td data-label=(t.host) {
                        (h.id)
                        @if h.address != h.id { br; small { (h.address) } }
                    }
                    td data-label=(t.status) {
                        @if h.status == "up" { span.badge.ok { (t.reachable) } } @else { span.badge.bad { (t.unreachable) } }
                        @if h.drained { " " span.badge { (t.drained) } }
                    }
                    td data-label=(t.containers) { (h.containers) }
                    td data-label=(t.host_labels) { (if h.labels.is_empty() { "—".to_string() } else { h.labels.join(" ") }) }
                    td data-label=(t.host_gpus) {
                        @if h.gpus.is_empty() { "—" }
                        @for g in &h.gpus {
                            div.gpu { code { (g.id) } " " (g.holders.len()) "/" (g.share) @if !g.holders.is_empty() { " (" (g.holders.join(", ")) ")" } }
                        }
                    }
                    td data-label=(t.image_disk) data-image-disk=(h.id) {
                        @if let Some(d) = &h.images {
                            (d.count) " / " (human_bytes(d.bytes))
                            br; small { (t.image_disk_users) ": " (d.user_count) " / " (human_bytes(d.user_bytes)) }
                        } @else { "—" }
                    }
                    td data-label=(t.version) { (h.version.as_deref().unwrap_or("—")) }
                    td {
                        form.inline method="post" action={ "/admin/hosts/" (h.id) "/drain" } {
                            (ctx.csrf_field())
                            input type="hidden" name="drained" value=(if h.drained { "false" } else { "true" });
                            button type="submit" aria-describedby="drain-hint" { (if h.drained { t.resume } else { t.drain }) }
                        }
                    }
                } } }
            }
            p.hint #drain-hint { (t.hint_drain) }
            form.inline method="post" action="/admin/reconcile" {
                (ctx.csrf_field())
                button type="submit" aria-describedby="reconcile-hint" { (t.reconcile_now) }
            }
            p.hint #reconcile-hint { (t.hint_reconcile) }
        }
        section aria-labelledby="quotas-h" {
            h2 #quotas-h { (t.quotas) }
            table.cards #quotas {
                thead { tr {
                    th scope="col" { (t.user_label) } th scope="col" { (t.role) }
                    th scope="col" { (t.q_containers) } th scope="col" { (t.q_running) }
                    th scope="col" { (t.q_cpus) } th scope="col" { (t.q_memory) } th scope="col" { (t.q_gpus) }
                } }
                tbody { @for q in &quotas {
                    tr {
                        td data-label=(t.user_label) { (q.user) }
                        td data-label=(t.role) { (q.role.as_str()) }
                        td data-label=(t.q_containers) { (q.usage.containers) " / " (limit(q.quota.containers)) }
                        td data-label=(t.q_running) { (q.usage.running) " / " (limit(q.quota.running)) }
                        td data-label=(t.q_cpus) { (trim_number(q.usage.cpus)) " / " (q.quota.cpus.map_or_else(|| t.no_limit.to_string(), trim_number)) }
                        td data-label=(t.q_memory) { (human_bytes(q.usage.memory_bytes)) " / " (q.quota.memory_bytes.map_or_else(|| t.no_limit.to_string(), human_bytes)) }
                        td data-label=(t.q_gpus) { (q.usage.gpus) " / " (limit(q.quota.gpus)) }
                    }
                } }
            }
            h3 { (t.set_quota) }
            p.hint #quota-hint { (t.hint_set_quota) }
            form.card method="post" action="/admin/quota" aria-describedby="quota-hint" {
                (ctx.csrf_field())
                div.field {
                    label for="quota-user" { (t.user_label) }
                    input #quota-user name="user" required autocomplete="off";
                }
                @for (name, label) in [("containers", t.q_containers), ("running", t.q_running), ("cpus", t.q_cpus), ("memory_bytes", t.q_memory), ("gpus", t.q_gpus), ("ports", t.q_ports), ("builds", t.q_builds)] {
                    div.field {
                        label for={ "quota-" (name) } { (label) }
                        input id={ "quota-" (name) } name=(name) inputmode="decimal" autocomplete="off";
                    }
                }
                button.primary type="submit" { (t.save_quota) }
            }
        }
        section aria-labelledby="users-h" {
            h2 #users-h { (t.users) " (" (users.len()) ")" }
            table.cards {
                thead { tr { th scope="col" { (t.name) } th scope="col" { (t.role) } th scope="col" { (t.source) } th scope="col" { (t.created) } } }
                tbody {
                    @for u in &users {
                        tr {
                            td data-label=(t.name) { (u.name) @if let Some(d) = &u.display_name { " (" (d) ")" } }
                            td data-label=(t.role) { (u.role) }
                            td data-label=(t.source) { (u.source) }
                            td data-label=(t.created) { (short_time(&u.created_at)) }
                        }
                    }
                }
            }
        }
        section aria-labelledby="add-user-h" {
            h2 #add-user-h { (t.add_account) }
            p.hint { (t.hint_add_account) }
            form.card method="post" action="/admin/users" {
                (ctx.csrf_field())
                div.field {
                    label for="new-name" { (t.name) }
                    input #new-name name="name" required autocomplete="off";
                }
                div.field {
                    label for="new-password" { (t.password) }
                    input #new-password name="password" type="password" required minlength="8" autocomplete="new-password";
                }
                div.field {
                    label for="new-role" { (t.role) }
                    select #new-role name="role" {
                        option value="student" { "student" }
                        option value="teacher" { "teacher" }
                        option value="admin" { "admin" }
                    }
                }
                button.primary type="submit" { (t.create_account) }
            }
        }
        @match &all {
        Err(_) => { section { p.error role="alert" { (t.containers_unavailable) } } }
        Ok(all) => {
        section aria-labelledby="all-h" {
            h2 #all-h { (t.all_containers) " (" (all.len()) ")" }
            @if all.is_empty() { p.muted { (t.no_containers_at_all) } } @else {
            table.cards {
                thead { tr { th scope="col" { (t.name) } th scope="col" { (t.owner) } th scope="col" { (t.image) } th scope="col" { (t.status) } th scope="col" { (t.ports) } } }
                tbody {
                    @for c in all {
                        tr {
                            td data-label=(t.name) { a href=(super::containers::container_path(&ctx, c, "")) { (c.name) } }
                            td data-label=(t.owner) { (c.owner) }
                            td data-label=(t.image) { code { (c.image) } }
                            td data-label=(t.status) { (status_badge(t, c.status)) }
                            td data-label=(t.ports) {
                                @for p in &c.ports {
                                    (p.guest) "→" (p.host.map_or("Service".to_string(), |h| h.to_string())) " "
                                }
                            }
                        }
                    }
                }
            }
            }
        }
        }
        }
        section aria-labelledby="audit-h" {
            h2 #audit-h { (t.audit_log) }
            table.cards {
                thead { tr { th scope="col" { (t.at) } th scope="col" { (t.actor) } th scope="col" { (t.action) } th scope="col" { (t.target) } th scope="col" { (t.result) } } }
                tbody {
                    @for e in &audit {
                        tr {
                            td data-label=(t.at) { (short_time(&e.at)) }
                            td data-label=(t.actor) { (e.actor.as_deref().unwrap_or("—")) }
                            td data-label=(t.action) { code { (e.action) } }
                            td data-label=(t.target) { (e.target.as_deref().unwrap_or("")) }
                            td data-label=(t.result) { (e.result) }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&ctx, t.admin, body).into_response())
}

/// Creates a local account through the same code as the API.
pub(super) async fn add_user(
    State(http): State<Http>,
    posted: Posted,
) -> Result<Response, PageError> {
    let ctx = &posted.ctx;
    let admin = Admin::check(ctx.caller()).or_page(ctx)?;
    let req = NewUser {
        name: posted.field("name").trim().to_string(),
        password: posted.field("password").to_string(),
        role: posted.field("role").to_string(),
    };
    http.accounts.create_user(&admin, req).await.or_page(ctx)?;
    Ok(see_other("/admin?notice=user-created"))
}

pub(super) async fn drain(
    State(http): State<Http>,
    axum::extract::Path(id): axum::extract::Path<String>,
    posted: Posted,
) -> Result<Response, PageError> {
    let ctx = &posted.ctx;
    let admin = Admin::check(ctx.caller()).or_page(ctx)?;
    let drained = posted.field("drained") == "true";
    http.system.drain(&admin, &id, drained).await.or_page(ctx)?;
    Ok(see_other("/admin?notice=host-changed"))
}

pub(super) async fn reconcile(
    State(http): State<Http>,
    posted: Posted,
) -> Result<Response, PageError> {
    let ctx = &posted.ctx;
    Admin::check(ctx.caller()).or_page(ctx)?;
    http.reconciler.reconcile().await.or_page(ctx)?;
    Ok(see_other("/admin?notice=reconciled"))
}

/// Sets a user's quota overrides from the admin page: an empty field keeps the role's
/// value.
pub(super) async fn set_quota(
    State(http): State<Http>,
    posted: Posted,
) -> Result<Response, PageError> {
    let ctx = &posted.ctx;
    let admin = Admin::check(ctx.caller()).or_page(ctx)?;
    let int = |name: &'static str| -> Result<Option<i64>, Error> {
        let v = posted.field(name).trim();
        if v.is_empty() {
            return Ok(None);
        }
        v.parse().map(Some).map_err(|_| Error::Invalid {
            code: "invalid_input",
            message: format!("{name} is a whole number, or -1 for no limit"),
            field: Some(name),
        })
    };
    let cpus = match posted.field("cpus").trim() {
        "" => None,
        v => Some(
            v.parse::<f64>()
                .map_err(|_| Error::Invalid {
                    code: "invalid_input",
                    message: "cpus is a number, or -1 for no limit".into(),
                    field: Some("cpus"),
                })
                .or_page(ctx)?,
        ),
    };
    let patch = QuotaPatch {
        containers: int("containers").or_page(ctx)?,
        running: int("running").or_page(ctx)?,
        cpus,
        memory_bytes: int("memory_bytes").or_page(ctx)?,
        gpus: int("gpus").or_page(ctx)?,
        ports: int("ports").or_page(ctx)?,
        builds: int("builds").or_page(ctx)?,
        storage_bytes: None,
    };
    http.quotas
        .set(&admin, posted.field("user").trim(), patch)
        .await
        .or_page(ctx)?;
    Ok(see_other("/admin?notice=quota-saved"))
}
