//! `/ci`: the person's GitLab runner token, their runner's state, the pipeline file.

use super::{
    notice, page, see_other, Ctx, NoticeQuery, OrPage, PageError, Posted, Refused, Session,
};
use crate::http::Http;
use crate::service::ci::CiRequest;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};

pub(super) async fn page_handler(
    State(http): State<Http>,
    Session(ctx): Session,
    q: Query<NoticeQuery>,
) -> Result<Response, PageError> {
    ci_page(&http, &ctx, notice(&ctx, &q), None).await
}

/// The CI page: `top` above it, or its refused form.
async fn ci_page(
    http: &Http,
    ctx: &Ctx,
    top: Markup,
    refused: Option<&Refused>,
) -> Result<Response, PageError> {
    let t = ctx.t;
    let view = http.ci.get(ctx.caller()).await.or_page(ctx)?;
    let body = html! {
        (top)
        p { (t.ci_intro) }
        section aria-labelledby="runner-h" {
            h2 #runner-h { (t.runner) }
            @if !view.configured {
                p #ci-state { (t.not_configured) }
            } @else {
                dl.facts #ci-state {
                    dt { (t.gitlab_url) } dd { (view.gitlab_url.as_deref().unwrap_or("")) }
                    dt { (t.runner_token) } dd { (t.token_ends) " " code { (view.token_hint.as_deref().unwrap_or("")) } }
                    dt { (t.status) } dd {
                        @match &view.runner {
                            Some(r) => { (super::status_badge(t, r.state)) " " code { (r.image) } }
                            None => { (t.no_runner) }
                        }
                    }
                }
                form.inline method="post" action="/ci/delete" {
                    (ctx.csrf_field())
                    button.danger type="submit" { (t.remove_ci) }
                }
            }
        }
        form.card #ci-settings method="post" action="/ci" {
            (ctx.csrf_field())
            (Refused::alert(refused, ctx, "ci-settings"))
            div.field {
                label for="gitlab_url" { (t.gitlab_url) }
                input #gitlab_url name="gitlab_url" type="url" required placeholder="https://gitlab.example.org"
                    value=(Refused::value(refused, "ci-settings", "gitlab_url", view.gitlab_url.as_deref().unwrap_or("")));
            }
            div.field {
                label for="token" { (t.runner_token) }
                input #token name="token" type="password" required autocomplete="off" aria-describedby="token-hint";
                p.hint #token-hint { (t.hint_runner_token) }
            }
            button.primary type="submit" { (t.save) }
        }
        p { a.button href="/api/v1/ci/gitlab-ci.yml" download=".gitlab-ci.yml" { (t.download_yml) } }
        section aria-labelledby="build-token-h" {
            h2 #build-token-h { (t.build_token_title) }
            p { (t.build_token_intro) }
            form.inline method="post" action="/ci/build-token" {
                (ctx.csrf_field())
                button type="submit" { (t.build_token_create) }
            }
        }
    };
    let status = refused.map_or(StatusCode::OK, |r| r.status);
    Ok((status, page(ctx, t.ci, body)).into_response())
}

pub(super) async fn save(State(http): State<Http>, posted: Posted) -> Result<Response, PageError> {
    let ctx = &posted.ctx;
    let req = CiRequest {
        gitlab_url: posted.field("gitlab_url").to_string(),
        token: posted.field("token").to_string(),
    };
    // The page after the redirect shows the new state.
    if let Err(e) = http.ci.put(ctx.caller(), req).await {
        let refused = Refused::new(ctx, "ci-settings", posted.fields.clone(), e);
        return ci_page(&http, ctx, html! {}, Some(&refused)).await;
    }
    Ok(see_other("/ci?notice=saved"))
}

/// Creates a personal token of scope `build` and shows it this once, with where to keep it.
pub(super) async fn build_token(
    State(http): State<Http>,
    posted: Posted,
) -> Result<Response, PageError> {
    let ctx = &posted.ctx;
    let t = ctx.t;
    let created = http
        .accounts
        .create_token(ctx.caller(), "gitlab", Some("build"))
        .await
        .or_page(ctx)?;
    let body = html! {
        p { (t.build_token_once) }
        p { code #build-token { (created.token) } }
        p { (t.build_token_store) }
        p { a href="/ci" { (t.back_to_ci) } }
    };
    // The page holds a secret: no cache may keep it.
    let mut resp = page(ctx, t.build_token_title, body).into_response();
    resp.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(resp)
}

pub(super) async fn remove(
    State(http): State<Http>,
    posted: Posted,
) -> Result<Response, PageError> {
    let ctx = &posted.ctx;
    http.ci.delete(ctx.caller()).await.or_page(ctx)?;
    Ok(see_other("/ci?notice=ci-removed"))
}
