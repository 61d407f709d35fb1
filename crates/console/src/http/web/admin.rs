//! `/admin`: every user, every container, the hosts, the recent audit log. Administrators
//! only; anyone else gets the same 403 as the admin API.

use super::i18n::Texts;
use super::{
    encode, notice, page, see_other, status_badge, when, Ctx, NoticeQuery, OrPage, PageError,
    Posted, Refused, Session,
};
use crate::http::Http;
use crate::service::accounts::{Admin, NewUser};
use crate::service::audit::{AuditActor, AuditEntryView, AuditQuery};
use crate::service::quotas::QuotaPatch;
use crate::service::system::{LinkDoubt, LinkWarning};
use crate::service::users::{UserDeletion, UserPatch};
use crate::service::{human_bytes, trim_number, Error};
use axum::extract::Path;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use maud::html;
use maud::Markup;

pub(super) async fn page_handler(
    State(http): State<Http>,
    Session(ctx): Session,
    q: Query<NoticeQuery>,
) -> Result<Response, PageError> {
    admin_page(&http, &ctx, notice(&ctx, &q), None).await
}

/// The admin page: `top` above it, or a refused form of it.
async fn admin_page(
    http: &Http,
    ctx: &Ctx,
    top: Markup,
    refused: Option<&Refused>,
) -> Result<Response, PageError> {
    let t = ctx.t;
    let caller = ctx.caller();
    let admin = Admin::check(caller).or_page(ctx)?;
    let users = http.accounts.users(&admin).await.or_page(ctx)?;
    // Users and the audit log stay readable while the Docker host is down.
    let all = http.containers.list(caller, true).await;
    let audit = http.audit.newest(&admin, 50).await.or_page(ctx)?;
    let hosts = http.system.hosts(&admin).await.or_page(ctx)?;
    let quotas = http.quotas.all(&admin).await.or_page(ctx)?;
    let link_warnings = http.system.link_warnings(&admin).await;
    let limit = |n: Option<i64>| n.map_or_else(|| t.no_limit.to_string(), |n| n.to_string());
    let wrong = |form: &str, field: &str| {
        Refused::of(refused, form).is_some_and(|r| r.field == Some(field))
    };
    let body = html! {
        (top)
        section aria-labelledby="hosts-h" {
            h2 #hosts-h { (t.hosts) }
            @for w in &link_warnings {
                p.caution role="alert" data-link-warning=(w.host) { (link_warning(t, w)) }
            }
            table.cards {
                thead { tr {
                    th scope="col" { (t.host) } th scope="col" { (t.status) } th scope="col" { (t.containers) }
                    th scope="col" { (t.host_memory) } th scope="col" { (t.host_labels) } th scope="col" { (t.host_gpus) } th scope="col" { (t.image_disk) } th scope="col" { (t.version) } th scope="col" { span.sr { (t.drain) } }
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
                    td data-label=(t.host_memory) data-host-memory=(h.id) {
                        @match (h.memory_committed, h.memory_total) {
                            (Some(used), Some(total)) => { (human_bytes(used)) " / " (human_bytes(total)) }
                            _ => { "—" }
                        }
                    }
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
            form.card #quota-form method="post" action="/admin/quota" aria-describedby="quota-hint" {
                (ctx.csrf_field())
                (Refused::alert(refused, ctx, "quota-form"))
                div.field {
                    label for="quota-user" { (t.user_label) }
                    input #quota-user name="user" required autocomplete="off"
                        value=(Refused::value(refused, "quota-form", "user", ""));
                }
                @for (name, label) in [("containers", t.q_containers), ("running", t.q_running), ("cpus", t.q_cpus), ("memory_bytes", t.q_memory), ("gpus", t.q_gpus), ("ports", t.q_ports), ("builds", t.q_builds)] {
                    div.field.invalid[wrong("quota-form", name)] {
                        label for={ "quota-" (name) } { (label) }
                        input id={ "quota-" (name) } name=(name) inputmode="decimal" autocomplete="off"
                            value=(Refused::value(refused, "quota-form", name, ""));
                    }
                }
                button.primary type="submit" { (t.save_quota) }
            }
        }
        section aria-labelledby="users-h" {
            h2 #users-h { (t.users) " (" (users.len()) ")" }
            table.cards {
                thead { tr { th scope="col" { (t.name) } th scope="col" { (t.role) } th scope="col" { (t.source) } th scope="col" { (t.created) } th scope="col" { span.sr { (t.manage) } } } }
                tbody {
                    @for u in &users {
                        tr data-user=(u.name) {
                            td data-label=(t.name) {
                                (u.name) @if let Some(d) = &u.display_name { " (" (d) ")" }
                                @if u.disabled { " " span.badge.bad { (t.disabled_badge) } }
                            }
                            td data-label=(t.role) { (u.role) }
                            td data-label=(t.source) { (u.source) }
                            td data-label=(t.created) { (when(&u.created_at)) }
                            td { a href={ "/admin/users/" (encode(&u.name)) } { (t.manage) } }
                        }
                    }
                }
            }
        }
        section aria-labelledby="add-user-h" {
            h2 #add-user-h { (t.add_account) }
            p.hint #add-user-hint {
                (if http.config.ldap.is_some() { t.hint_add_account } else { t.hint_add_account_local })
            }
            form.card #add-user method="post" action="/admin/users" {
                (ctx.csrf_field())
                (Refused::alert(refused, ctx, "add-user"))
                div.field.invalid[wrong("add-user", "username")] {
                    label for="new-name" { (t.name) }
                    input #new-name name="name" type="text" required autocomplete="off"
                        autocapitalize="none" spellcheck="false"
                        value=(Refused::value(refused, "add-user", "name", ""))
                        aria-invalid=[wrong("add-user", "username").then_some("true")];
                }
                div.field {
                    label for="new-password" { (t.password) }
                    input #new-password name="password" type="password" required minlength="8" autocomplete="new-password";
                }
                div.field {
                    label for="new-role" { (t.role) }
                    select #new-role name="role" {
                        @for role in ["student", "teacher", "admin"] {
                            option value=(role) selected[Refused::value(refused, "add-user", "role", "") == role] { (role) }
                        }
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
                            td data-label=(t.name) { a href=(super::containers::container_path(ctx, c, "")) { (c.name) } }
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
            p { a href="/admin/audit" { (t.audit_all) } }
            (audit_table(t, &audit))
        }
    };
    let status = refused.map_or(StatusCode::OK, |r| r.status);
    Ok((status, page(ctx, t.admin, body)).into_response())
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
    if let Err(e) = http.accounts.create_user(&admin, req).await {
        let taken = matches!(e, Error::Conflict(_));
        let mut refused = Refused::new(ctx, "add-user", posted.fields.clone(), e);
        if taken {
            refused = refused.saying("username", ctx.t.err_user_taken);
        }
        return admin_page(&http, ctx, html! {}, Some(&refused)).await;
    }
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
        v.parse().map(Some).map_err(|_| {
            Error::broke(
                name,
                "not_whole",
                [],
                format!("{name} is a whole number, or -1 for no limit"),
            )
        })
    };
    let patch = || -> Result<QuotaPatch, Error> {
        let cpus = match posted.field("cpus").trim() {
            "" => None,
            v => Some(v.parse::<f64>().map_err(|_| {
                Error::broke(
                    "cpus",
                    "not_a_number",
                    [],
                    "cpus is a number, or -1 for no limit",
                )
            })?),
        };
        Ok(QuotaPatch {
            containers: int("containers")?,
            running: int("running")?,
            cpus,
            memory_bytes: int("memory_bytes")?,
            gpus: int("gpus")?,
            ports: int("ports")?,
            builds: int("builds")?,
            storage_bytes: None,
        })
    };
    let saved = match patch() {
        Ok(patch) => {
            http.quotas
                .set(&admin, posted.field("user").trim(), patch)
                .await
        }
        Err(e) => Err(e),
    };
    if let Err(e) = saved {
        let refused = Refused::new(ctx, "quota-form", posted.fields.clone(), e);
        return admin_page(&http, ctx, html! {}, Some(&refused)).await;
    }
    Ok(see_other("/admin?notice=quota-saved"))
}

fn audit_table(t: &Texts, entries: &[AuditEntryView]) -> Markup {
    html! {
        table.cards #audit {
            thead { tr {
                th scope="col" { (t.at) } th scope="col" { (t.actor) } th scope="col" { (t.action) }
                th scope="col" { (t.target) } th scope="col" { (t.result) } th scope="col" { (t.source_addr) }
                th scope="col" { (t.detail_label) }
            } }
            tbody {
                @for e in entries {
                    tr {
                        td data-label=(t.at) { (when(&e.at)) }
                        td data-label=(t.actor) { (e.actor.as_deref().unwrap_or("—")) }
                        td data-label=(t.action) { code { (e.action) } }
                        td data-label=(t.target) { (e.target.as_deref().unwrap_or("")) }
                        td data-label=(t.result) { (e.result) }
                        td data-label=(t.source_addr) { (e.source.as_deref().unwrap_or("")) }
                        td data-label=(t.detail_label) { small { (e.detail.as_deref().unwrap_or("")) } }
                    }
                }
            }
        }
    }
}

/// `/admin/audit`: the audit log with the API's filters, a page at a time, and the
/// export of what the filters keep.
pub(super) async fn audit_page(
    State(http): State<Http>,
    Session(ctx): Session,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Result<Response, PageError> {
    let t = ctx.t;
    let admin = Admin::check(ctx.caller()).or_page(&ctx)?;
    let get = |k: &str| {
        q.get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let query = AuditQuery {
        actor: get("actor"),
        action: get("action"),
        target: get("target"),
        since: get("since"),
        until: get("until"),
        limit: Some(100),
        before: get("before"),
    };
    let entries = http.audit.search(&admin, query).await.or_page(&ctx)?;
    let filters: Vec<(&str, String)> = ["actor", "action", "target", "since", "until"]
        .into_iter()
        .filter_map(|k| get(k).map(|v| (k, v)))
        .collect();
    let query_string = |extra: Option<(&str, &str)>| {
        filters
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .chain(extra)
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    };
    let older = (entries.len() == 100)
        .then(|| {
            entries
                .last()
                .map(|e| format!("/admin/audit?{}", query_string(Some(("before", &e.at)))))
        })
        .flatten();
    let field = |name: &'static str, label: &'static str| {
        html! {
            div.field {
                label for={ "audit-" (name) } { (label) }
                input id={ "audit-" (name) } name=(name) value=(get(name).unwrap_or_default()) autocomplete="off";
            }
        }
    };
    let body = html! {
        form.card #audit-filter method="get" action="/admin/audit" {
            (field("actor", t.actor))
            (field("action", t.action))
            (field("target", t.target))
            (field("since", t.audit_since))
            (field("until", t.audit_until))
            button.primary type="submit" { (t.audit_filter) }
        }
        p { a #audit-export href={ "/api/v1/admin/audit/export?" (query_string(None)) } { (t.audit_export) } }
        (audit_table(t, &entries))
        @if let Some(href) = older { p { a #audit-older href=(href) { (t.audit_older) } } }
    };
    Ok(page(&ctx, t.audit_title, body).into_response())
}

/// `/admin/users/{name}`: one account, and what an administrator may do to it.
pub(super) async fn user_page(
    State(http): State<Http>,
    Session(ctx): Session,
    Path(name): Path<String>,
    q: Query<NoticeQuery>,
) -> Result<Response, PageError> {
    let t = ctx.t;
    let admin = Admin::check(ctx.caller()).or_page(&ctx)?;
    let user = http
        .accounts
        .users(&admin)
        .await
        .or_page(&ctx)?
        .into_iter()
        .find(|u| u.name == name)
        .ok_or_else(|| {
            let name: String = name.chars().take(64).collect();
            Error::missing(
                "not_found",
                "user",
                [("name", name.clone())],
                format!("user {name}"),
            )
        })
        .or_page(&ctx)?;
    let action = format!("/admin/users/{}", encode(&user.name));
    let local = user.source == "local";
    let body = html! {
        (notice(&ctx, &q))
        p {
            strong { (user.name) } " — " (user.role) " (" (user.source) ")"
            @if user.disabled { " " span.badge.bad { (t.disabled_badge) } }
        }
        @if !local { p.hint { (t.hint_directory_account) } }
        @if local {
            section aria-labelledby="role-h" {
                h2 #role-h { (t.change_role) }
                form.card method="post" action=(action) {
                    (ctx.csrf_field())
                    input type="hidden" name="op" value="role";
                    div.field {
                        label for="role" { (t.role) }
                        select #role name="role" {
                            @for r in ["student", "teacher", "admin"] {
                                option value=(r) selected[r == user.role] { (r) }
                            }
                        }
                    }
                    button.primary type="submit" { (t.save_role) }
                }
            }
            section aria-labelledby="reset-h" {
                h2 #reset-h { (t.reset_password) }
                form.card method="post" action=(action) {
                    (ctx.csrf_field())
                    input type="hidden" name="op" value="password";
                    div.field {
                        label for="reset-password" { (t.new_password) }
                        input #reset-password name="password" type="password" required minlength="8" autocomplete="new-password";
                    }
                    button.primary type="submit" { (t.reset_password) }
                }
            }
        }
        section aria-labelledby="access-h" {
            h2 #access-h { (if user.disabled { t.enable_account } else { t.disable_account }) }
            @if !user.disabled { p.hint { (t.hint_disable) } }
            form.card method="post" action=(action) {
                (ctx.csrf_field())
                input type="hidden" name="op" value=(if user.disabled { "enable" } else { "disable" });
                button type="submit" { (if user.disabled { t.enable_account } else { t.disable_account }) }
            }
        }
        section aria-labelledby="delete-h" {
            h2 #delete-h { (t.delete_account) }
            p.hint { (t.hint_delete_account) }
            form.card method="post" action=(action) {
                (ctx.csrf_field())
                input type="hidden" name="op" value="delete";
                @for (name, label) in [("containers", t.delete_containers), ("images", t.delete_images), ("storage", t.delete_storage)] {
                    div.field {
                        label { input type="checkbox" name=(name) value="delete"; " " (label) }
                    }
                }
                button.danger type="submit" { (t.delete_account) }
            }
        }
    };
    Ok(page(&ctx, t.manage_user_title, body).into_response())
}

/// Applies one change of the account page. Disabling and deleting ask first: the form
/// comes back as a confirmation page, whose button sends it again with `confirmed`.
pub(super) async fn manage_user(
    State(http): State<Http>,
    Path(name): Path<String>,
    audit: Option<Extension<AuditActor>>,
    posted: Posted,
) -> Result<Response, PageError> {
    let ctx = &posted.ctx;
    let t = ctx.t;
    let caller = ctx.caller();
    let admin = Admin::check(caller).or_page(ctx)?;
    let op = posted.field("op");
    let confirmed = posted.field("confirmed") == "yes";
    if matches!(op, "disable" | "delete") && !confirmed {
        let question = if op == "delete" {
            t.confirm_delete_account
        } else {
            t.confirm_disable
        };
        let body = html! {
            p #confirm-question { (question) }
            p { strong { (name) } }
            form.card method="post" action={ "/admin/users/" (encode(&name)) } {
                (ctx.csrf_field())
                @for (k, v) in &posted.fields {
                    @if k != "csrf" { input type="hidden" name=(k) value=(v); }
                }
                input type="hidden" name="confirmed" value="yes";
                div.actions {
                    button.danger type="submit" { (t.confirm_button) }
                    a.button href={ "/admin/users/" (encode(&name)) } { (t.cancel) }
                }
            }
        };
        return Ok(page(ctx, t.confirm_title, body).into_response());
    }
    let choice = |k: &str| (posted.field(k) == "delete").then(|| "delete".to_string());
    let patch = match op {
        "role" => UserPatch {
            role: Some(posted.field("role").to_string()),
            ..UserPatch::default()
        },
        "password" => UserPatch {
            password: Some(posted.field("password").to_string()),
            ..UserPatch::default()
        },
        "disable" => UserPatch {
            disabled: Some(true),
            ..UserPatch::default()
        },
        "enable" => UserPatch {
            disabled: Some(false),
            ..UserPatch::default()
        },
        "delete" => {
            if let Some(Extension(a)) = &audit {
                a.set_action("user.delete");
            }
            let how = UserDeletion {
                containers: choice("containers"),
                images: choice("images"),
                storage: choice("storage"),
            };
            http.users
                .delete(caller, &admin, &name, how)
                .await
                .or_page(ctx)?;
            return Ok(see_other("/admin?notice=user-deleted"));
        }
        _ => {
            return Err(Error::refused(
                "invalid_input",
                None,
                "unknown_operation",
                [],
                "unknown account operation",
            ))
            .or_page(ctx)
        }
    };
    if let Some(Extension(a)) = &audit {
        a.set_action(match op {
            "role" => "user.role",
            "password" => "user.password_reset",
            "disable" => "user.disable",
            _ => "user.enable",
        });
    }
    http.users
        .patch(caller, &admin, &name, patch)
        .await
        .or_page(ctx)?;
    Ok(see_other(&format!(
        "/admin/users/{}?notice=user-changed",
        encode(&name)
    )))
}

/// The warning about a host whose links users' computers may not reach.
fn link_warning(t: &Texts, w: &LinkWarning) -> String {
    let why = match w.doubt {
        LinkDoubt::Loopback => t.link_loopback,
        LinkDoubt::Unresolved => t.link_unresolved,
        LinkDoubt::ShortName => t.link_short_name,
    };
    t.link_warning
        .replace("{host}", &w.host)
        .replace("{address}", &w.address)
        .replace("{why}", why)
}
