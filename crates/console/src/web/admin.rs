//! `/admin`: every user, every container, the hosts, the recent audit log. Administrators
//! only; anyone else gets the same 403 as the admin API.

use super::{page, short_time, status_badge, OrPage, PageError, Session};
use crate::containers;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::html;
use wm_store::UserSource;

pub async fn page_handler(
    State(state): State<AppState>,
    Session(ctx): Session,
) -> Result<Response, PageError> {
    let t = ctx.t;
    let caller = ctx.caller();
    if !caller.is_admin() {
        return Err(ApiError::Forbidden(
            "only administrators may see this page".into(),
        ))
        .or_page(&ctx);
    }
    let users = state
        .store
        .users()
        .await
        .map_err(ApiError::from)
        .or_page(&ctx)?;
    let all = containers::list(&state, caller, true).await.or_page(&ctx)?;
    let audit = state
        .store
        .audit_log(50)
        .await
        .map_err(ApiError::from)
        .or_page(&ctx)?;
    let host = state.backend.info().await;
    let body = html! {
        section aria-labelledby="hosts-h" {
            h2 #hosts-h { (t.hosts) }
            table.cards {
                thead { tr { th scope="col" { (t.host) } th scope="col" { (t.status) } th scope="col" { (t.version) } } }
                tbody { tr {
                    td data-label=(t.host) { (state.backend.host_name()) }
                    td data-label=(t.status) {
                        @if host.is_ok() { span.badge.ok { (t.reachable) } } @else { span.badge.bad { (t.unreachable) } }
                    }
                    td data-label=(t.version) { (host.as_ref().map_or("—", |h| h.version.as_str())) }
                } }
            }
        }
        section aria-labelledby="users-h" {
            h2 #users-h { (t.users) " (" (users.len()) ")" }
            table.cards {
                thead { tr { th scope="col" { (t.name) } th scope="col" { (t.role) } th scope="col" { (t.source) } th scope="col" { (t.created) } } }
                tbody {
                    @for u in &users {
                        tr {
                            td data-label=(t.name) { (u.name.as_str()) @if let Some(d) = &u.display_name { " (" (d) ")" } }
                            td data-label=(t.role) { (u.role.to_string()) }
                            td data-label=(t.source) { @match u.source { UserSource::Local => "local", UserSource::Ldap => "ldap" } }
                            td data-label=(t.created) { (short_time(&crate::rfc3339(u.created_at))) }
                        }
                    }
                }
            }
        }
        section aria-labelledby="all-h" {
            h2 #all-h { (t.all_containers) " (" (all.len()) ")" }
            @if all.is_empty() { p.muted { (t.no_containers_at_all) } } @else {
            table.cards {
                thead { tr { th scope="col" { (t.name) } th scope="col" { (t.owner) } th scope="col" { (t.image) } th scope="col" { (t.status) } th scope="col" { (t.ports) } } }
                tbody {
                    @for c in &all {
                        tr {
                            td data-label=(t.name) { a href={ "/containers/" (c.name) } { (c.name) } }
                            td data-label=(t.owner) { (c.owner) }
                            td data-label=(t.image) { code { (c.image) } }
                            td data-label=(t.status) { (status_badge(t, &c.status)) }
                            td data-label=(t.ports) {
                                @for p in &c.ports { (p.guest) "→" (p.host) " " }
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
                            td data-label=(t.at) { (short_time(&crate::rfc3339(e.at / 1_000_000))) }
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
