//! `/account`: one's own account: the password of a local account (a directory account is
//! told where to change it), one's sessions and personal tokens, each of which may be ended.

use super::{
    maybe_when, notice, page, see_other, when, Ctx, NoticeQuery, OrPage, PageError, Posted,
    Refused, Session,
};
use crate::http::Http;
use crate::service::accounts::PasswordChange;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};

pub(super) async fn page_handler(
    State(http): State<Http>,
    Session(ctx): Session,
    q: Query<NoticeQuery>,
) -> Result<Response, PageError> {
    account_page(&http, &ctx, notice(&ctx, &q), None).await
}

/// The account page: `top` above it, or a refused form of it.
async fn account_page(
    http: &Http,
    ctx: &Ctx,
    top: Markup,
    refused: Option<&Refused>,
) -> Result<Response, PageError> {
    let t = ctx.t;
    let me = http.accounts.me(ctx.caller()).await.or_page(ctx)?;
    let sessions = http.accounts.sessions(ctx.caller()).await.or_page(ctx)?;
    let tokens = http.accounts.tokens(ctx.caller()).await.or_page(ctx)?;
    let end = |action: &str, id: &str, label: &str| {
        html! {
            form.inline method="post" action=(action) {
                (ctx.csrf_field())
                input type="hidden" name="id" value=(id);
                button type="submit" { (label) }
            }
        }
    };
    let body = html! {
        (top)
        (Refused::alert(refused, ctx, "end"))
        p { strong { (me.name) } " — " (me.role) " (" (me.source) ")" }
        section aria-labelledby="password-h" {
            h2 #password-h { (t.change_password) }
            @if me.source == "ldap" {
                p #ldap-password { (t.ldap_password) }
            } @else {
                p.hint #password-hint { (t.hint_password_change) }
                form.card #password method="post" action="/account/password" aria-describedby="password-hint" {
                    (ctx.csrf_field())
                    (Refused::alert(refused, ctx, "password"))
                    div.field {
                        label for="current" { (t.current_password) }
                        input #current name="current" type="password" required autocomplete="current-password";
                    }
                    div.field {
                        label for="new" { (t.new_password) }
                        input #new name="new" type="password" required minlength="8" autocomplete="new-password";
                    }
                    button.primary type="submit" { (t.save_password) }
                }
            }
        }
        section aria-labelledby="sessions-h" {
            h2 #sessions-h { (t.sessions_title) }
            table.cards #sessions {
                thead { tr { th scope="col" { (t.created) } th scope="col" { (t.last_used) } th scope="col" { (t.expires) } th scope="col" { span.sr { (t.end_session) } } } }
                tbody { @for s in &sessions { tr data-session=(s.id) {
                    td data-label=(t.created) { (when(&s.created_at)) @if s.current { " " span.badge.ok { (t.this_session) } } }
                    td data-label=(t.last_used) { (maybe_when(s.last_used_at.as_deref())) }
                    td data-label=(t.expires) { (maybe_when(s.expires_at.as_deref())) }
                    td { (end("/account/sessions/end", &s.id, t.end_session)) }
                } } }
            }
        }
        section aria-labelledby="tokens-h" {
            h2 #tokens-h { (t.tokens_title) }
            @if tokens.is_empty() { p.muted { (t.no_tokens) } } @else {
                table.cards #tokens {
                    thead { tr { th scope="col" { (t.name) } th scope="col" { (t.created) } th scope="col" { (t.last_used) } th scope="col" { span.sr { (t.revoke) } } } }
                    tbody { @for k in &tokens { tr data-token=(k.id) {
                        td data-label=(t.name) { (k.name.as_deref().unwrap_or("—")) " (" (k.scope.as_str()) ")" }
                        td data-label=(t.created) { (when(&k.created_at)) }
                        td data-label=(t.last_used) { (maybe_when(k.last_used_at.as_deref())) }
                        td { (end("/account/tokens/revoke", &k.id, t.revoke)) }
                    } } }
                }
            }
        }
    };
    let status = refused.map_or(StatusCode::OK, |r| r.status);
    Ok((status, page(ctx, t.account_title, body)).into_response())
}

/// Changes the caller's password through the same code as the API.
pub(super) async fn change_password(
    State(http): State<Http>,
    posted: Posted,
) -> Result<Response, PageError> {
    let ctx = &posted.ctx;
    let req = PasswordChange {
        current: posted.field("current").to_string(),
        new: posted.field("new").to_string(),
    };
    if let Err(e) = http.accounts.change_password(ctx.caller(), req).await {
        let refused = Refused::new(ctx, "password", posted.fields.clone(), e);
        return account_page(&http, ctx, html! {}, Some(&refused)).await;
    }
    Ok(see_other("/account?notice=password-changed"))
}

/// Ends one of the caller's sessions (this one logs them out).
pub(super) async fn end_session(
    State(http): State<Http>,
    posted: Posted,
) -> Result<Response, PageError> {
    let ctx = &posted.ctx;
    if let Err(e) = http
        .accounts
        .end_session(ctx.caller(), posted.field("id"))
        .await
    {
        let refused = Refused::new(ctx, "end", posted.fields.clone(), e);
        return account_page(&http, ctx, html! {}, Some(&refused)).await;
    }
    Ok(see_other("/account?notice=session-ended"))
}

/// Revokes one of the caller's personal tokens.
pub(super) async fn revoke_token(
    State(http): State<Http>,
    posted: Posted,
) -> Result<Response, PageError> {
    let ctx = &posted.ctx;
    if let Err(e) = http
        .accounts
        .delete_token(ctx.caller(), posted.field("id"))
        .await
    {
        let refused = Refused::new(ctx, "end", posted.fields.clone(), e);
        return account_page(&http, ctx, html! {}, Some(&refused)).await;
    }
    Ok(see_other("/account?notice=token-revoked"))
}
