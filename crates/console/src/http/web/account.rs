//! `/account`: one's own account: the password of a local account (a directory account is
//! told where to change it).

use super::{notice, page, see_other, NoticeQuery, OrPage, PageError, Posted, Session};
use crate::http::Http;
use crate::service::accounts::PasswordChange;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::html;

pub(super) async fn page_handler(
    State(http): State<Http>,
    Session(ctx): Session,
    q: Query<NoticeQuery>,
) -> Result<Response, PageError> {
    let t = ctx.t;
    let me = http.accounts.me(ctx.caller()).await.or_page(&ctx)?;
    let body = html! {
        (notice(&ctx, &q))
        p { strong { (me.name) } " — " (me.role) " (" (me.source) ")" }
        section aria-labelledby="password-h" {
            h2 #password-h { (t.change_password) }
            @if me.source == "ldap" {
                p #ldap-password { (t.ldap_password) }
            } @else {
                p.hint #password-hint { (t.hint_password_change) }
                form.card method="post" action="/account/password" aria-describedby="password-hint" {
                    (ctx.csrf_field())
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
    };
    Ok(page(&ctx, t.account_title, body).into_response())
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
    http.accounts
        .change_password(ctx.caller(), req)
        .await
        .or_page(ctx)?;
    Ok(see_other("/account?notice=password-changed"))
}
