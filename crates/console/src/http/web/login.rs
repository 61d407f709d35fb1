//! `/login` and `/logout`.
//!
//! Before a session exists there is nothing to derive a CSRF token from, so the login form
//! uses a double-submit token: a random value in a cookie of its own and in the form; a
//! page of another site can set neither.

use super::{error_page, page as frame, see_other, Ctx, Posted};
use crate::http::client_addr::ClientAddr;
use crate::http::extract::{cookie, same_origin, session_cookie};
use crate::http::{ApiError, Http};
use crate::service::audit::AuditActor;
use crate::service::Error;
use axum::extract::{Form, State};
use axum::http::header::SET_COOKIE;
use axum::http::request::Parts;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use maud::html;
use serde::Deserialize;

const LOGIN_COOKIE: &str = "wm_login";

fn login_cookie(parts: &Parts) -> Option<String> {
    cookie(&parts.headers, LOGIN_COOKIE).filter(|v| v.len() == 64)
}

/// The login form. It speaks of department accounts only when a directory is configured;
/// otherwise every account is one an administrator made.
fn form(http: &Http, ctx: &Ctx, token: &str, username: &str, error: Option<&str>) -> Response {
    let t = ctx.t;
    let intro = if http.config.ldap.is_some() {
        t.login_intro
    } else {
        t.login_intro_local
    };
    frame(
        ctx,
        t.login_title,
        html! {
            p #login-intro { (intro) }
            @if let Some(e) = error { p.error role="alert" #login-error { (e) } }
            form.card method="post" action="/login" {
                input type="hidden" name="csrf" value=(token);
                div.field {
                    label for="username" { (t.username) }
                    input #username name="username" type="text" value=(username) required
                        autocomplete="username" autocapitalize="none" spellcheck="false" autofocus
                        aria-describedby=[error.map(|_| "login-error")];
                }
                div.field {
                    label for="password" { (t.password) }
                    input #password name="password" type="password" required autocomplete="current-password";
                }
                button.primary type="submit" { (t.login_button) }
            }
        },
    )
    .into_response()
}

fn with_login_cookie(mut resp: Response, token: &str, http: &Http) -> Response {
    let secure = if http.config.behind_tls() {
        "; Secure"
    } else {
        ""
    };
    resp.headers_mut().append(
        SET_COOKIE,
        HeaderValue::from_str(&format!(
            "{LOGIN_COOKIE}={token}; Path=/login; HttpOnly; SameSite=Strict; Max-Age=3600{secure}"
        ))
        .expect("ASCII"),
    );
    resp
}

pub(super) async fn page(State(http): State<Http>, parts: Parts) -> Response {
    let ctx = Ctx::anonymous(&parts);
    let token = login_cookie(&parts).unwrap_or_else(new_login_token);
    with_login_cookie(form(&http, &ctx, &token, "", None), &token, &http)
}

fn new_login_token() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
}

pub(super) async fn submit(
    State(http): State<Http>,
    actor: Option<Extension<AuditActor>>,
    ClientAddr(addr): ClientAddr,
    parts: Parts,
    Form(f): Form<LoginForm>,
) -> Response {
    let ctx = Ctx::anonymous(&parts);
    let expected = login_cookie(&parts);
    let token_ok = expected
        .as_deref()
        .is_some_and(|e| super::same_secret(e, &f.csrf));
    if !token_ok || !same_origin(&parts) {
        return super::csrf_refused(&ctx);
    }
    let token = expected.expect("checked above");
    match http
        .accounts
        .login(actor.as_ref().map(|a| &a.0), addr, &f.username, f.password)
        .await
    {
        Ok((_, session)) => {
            let mut resp = see_other("/containers");
            resp.headers_mut().insert(
                SET_COOKIE,
                session_cookie(&http.config, &session, http.accounts.session_secs()),
            );
            resp
        }
        Err(e @ (Error::InvalidCredentials | Error::RateLimited { .. })) => {
            let e = ApiError::from(e);
            let status = e.status();
            let mut resp = form(
                &http,
                &ctx,
                &token,
                &f.username,
                Some(ctx.t.error(e.code())),
            );
            *resp.status_mut() = status;
            resp.headers_mut().extend(e.headers());
            with_login_cookie(resp, &token, &http)
        }
        Err(e) => error_page(&ctx, &e.into()),
    }
}

/// Ends the session: its token is deleted, the cookie cleared.
pub(super) async fn logout(State(http): State<Http>, posted: Posted) -> Response {
    let caller = posted.ctx.caller();
    if let Err(e) = http.accounts.logout(caller).await {
        return error_page(&posted.ctx, &e.into());
    }
    let mut resp = see_other("/login");
    resp.headers_mut()
        .insert(SET_COOKIE, session_cookie(&http.config, "", 0));
    resp
}
