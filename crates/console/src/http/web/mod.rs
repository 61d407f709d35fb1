//! The web console: server-rendered pages over the same service functions as the REST API,
//! in English and Japanese.
//!
//! Pages are HTML built with `maud` (compiled into the binary, escaped by construction);
//! forms post to the routes here and are answered with a redirect (or, for a command's
//! output, the page itself), so everything works without JavaScript. One small script
//! shows the live progress of pulls and builds by reading the API's NDJSON.
//!
//! Every post carries a CSRF token derived from the session token (`csrf_token`), which a
//! page of another site cannot read; a post without it, or with a foreign `Origin`, changes
//! nothing and answers 403.

mod account;
mod admin;
mod ci;
mod containers;
mod courses;
mod files;
mod i18n;
mod images;
mod login;
mod vms;

use super::extract::{presented_token, session_cookie_name};
use super::{ApiError, Http};
use crate::config::Config;
use crate::service::accounts::Caller;
use crate::service::Error;
use axum::extract::{DefaultBodyLimit, Form, FromRequest, FromRequestParts, Query, Request};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
pub(super) use i18n::Lang;
use i18n::{Texts, LANG_COOKIE};
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

const CSS: &str = include_str!("../../../assets/console.css");
const JS: &str = include_str!("../../../assets/progress.js");
const TIMES_JS: &str = include_str!("../../../assets/times.js");
/// The browser terminal (xterm.js and `assets/terminal.js`), bundled by `build.rs`; empty
/// when the console was built without Debian's node-xterm and esbuild.
const TERMINAL_JS: &str = include_str!(concat!(env!("OUT_DIR"), "/terminal.js"));
const XTERM_CSS: &str = include_str!(concat!(env!("OUT_DIR"), "/xterm.css"));

/// Whether this build carries the browser terminal.
pub(super) fn has_terminal() -> bool {
    !TERMINAL_JS.is_empty()
}

pub(super) fn router(config: &Config) -> Router<Http> {
    let upload_limit = config.upload_max_bytes + 1024 * 1024;
    let vm_image_limit = usize::try_from(config.vm.image_max_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(1024 * 1024);
    Router::new()
        .route("/", get(|| async { Redirect::to("/containers") }))
        .route("/login", get(login::page).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/language", get(switch_language))
        .route("/assets/console.css", get(|| asset(CSS, "text/css")))
        .route("/assets/progress.js", get(|| asset(JS, "text/javascript")))
        .route(
            "/assets/times.js",
            get(|| asset(TIMES_JS, "text/javascript")),
        )
        .route(
            "/assets/terminal.js",
            get(|| asset(TERMINAL_JS, "text/javascript")),
        )
        .route("/assets/xterm.css", get(|| asset(XTERM_CSS, "text/css")))
        .route("/containers", get(containers::list))
        .route(
            "/containers/new",
            get(containers::new_form).post(containers::create),
        )
        .route("/containers/{name}", get(containers::detail))
        .route(
            "/containers/{name}/delete",
            get(containers::confirm_delete).post(containers::delete),
        )
        .route("/containers/{name}/start", post(containers::start))
        .route("/containers/{name}/stop", post(containers::stop))
        .route("/containers/{name}/expiry", post(containers::expiry))
        .route("/containers/{name}/exec", post(containers::exec))
        .route(
            "/containers/{name}/files",
            post(containers::upload).layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/vms/new", get(vms::new_page).post(vms::define))
        .route(
            "/vms/images",
            post(vms::upload_image).layer(DefaultBodyLimit::max(vm_image_limit)),
        )
        .route(
            "/vms/images/{name}/delete",
            get(vms::confirm_delete_image).post(vms::delete_image),
        )
        .route("/vms/{name}", get(vms::detail))
        .route("/vms/{name}/start", post(vms::start))
        .route("/vms/{name}/destroy", post(vms::destroy))
        .route(
            "/vms/{name}/delete",
            get(vms::confirm_delete).post(vms::delete),
        )
        .route("/images", get(images::page_handler))
        .route("/images/pull", post(images::pull))
        .route("/images/build", post(images::build))
        .route("/images/edit", post(images::edit))
        .route(
            "/images/delete",
            get(images::confirm_delete).post(images::delete),
        )
        .route("/images/release", post(images::release))
        .route("/files", get(files::page_handler))
        .route(
            "/files/upload",
            post(files::upload).layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/files/delete", post(files::delete))
        .route("/ci", get(ci::page_handler).post(ci::save))
        .route("/ci/delete", post(ci::remove))
        .route("/ci/build-token", post(ci::build_token))
        .route("/account", get(account::page_handler))
        .route("/account/password", post(account::change_password))
        .route("/account/sessions/end", post(account::end_session))
        .route("/account/tokens/revoke", post(account::revoke_token))
        .route("/courses", get(courses::list).post(courses::create))
        .route("/courses/join", post(courses::join))
        .route("/courses/{id}", get(courses::detail))
        .route("/courses/{id}/join-code", post(courses::renew_join_code))
        .route(
            "/courses/{id}/join-code/delete",
            post(courses::remove_join_code),
        )
        .route("/courses/{id}/images", post(courses::note_image))
        .route("/courses/{id}/containers/{name}", get(courses::container))
        .route("/courses/{id}/members", post(courses::enrol))
        .route("/courses/{id}/unenrol", post(courses::unenrol))
        .route("/courses/{id}/containers/{name}/stop", post(courses::stop))
        .route(
            "/courses/{id}/containers/{name}/start",
            post(courses::start),
        )
        .route("/admin", get(admin::page_handler))
        .route("/admin/audit", get(admin::audit_page))
        .route(
            "/admin/users/{name}",
            get(admin::user_page).post(admin::manage_user),
        )
        .route("/admin/users", post(admin::add_user))
        .route("/admin/reconcile", post(admin::reconcile))
        .route("/admin/quota", post(admin::set_quota))
        .route("/admin/hosts/{id}/drain", post(admin::drain))
}

async fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (CACHE_CONTROL, HeaderValue::from_static("max-age=3600")),
        ],
        body,
    )
        .into_response()
}

/// The CSRF token of a session: a hash of the session token under its own label, so it is
/// neither the token nor the hash the database keeps.
fn csrf_token(session_token: &str) -> String {
    hex::encode(Sha256::digest(format!("wm-csrf\0{session_token}")))
}

/// Compares without stopping at the first difference.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// `url` with `owner` in its query when the thing is not the caller's own: a full name
/// alone may be several owners', and an administrator's links must say whose.
pub(super) fn for_owner(ctx: &Ctx, owner: &str, url: String) -> String {
    if owner == ctx.caller().name.as_str() {
        url
    } else {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}owner={owner}")
    }
}

/// What every page needs to know about the request.
pub(super) struct Ctx {
    pub lang: Lang,
    pub t: &'static Texts,
    pub caller: Option<Caller>,
    pub csrf: String,
    /// The path and query of the page, for the language switch to come back to.
    pub here: String,
    /// The page of this site the request came from (its `Referer`), for an error page's
    /// way back.
    pub back: Option<String>,
}

impl Ctx {
    pub(super) fn anonymous(parts: &Parts) -> Ctx {
        let lang = Lang::from_headers(&parts.headers);
        Ctx {
            lang,
            t: lang.t(),
            caller: None,
            csrf: String::new(),
            here: parts
                .uri
                .path_and_query()
                .map_or("/".into(), |p| p.as_str().to_string()),
            back: came_from(&parts.headers),
        }
    }

    /// The logged-in caller (only [`Session`] makes a `Ctx` with one for handlers).
    pub(super) fn caller(&self) -> &Caller {
        self.caller.as_ref().expect("a session has a caller")
    }

    /// The hidden field every form of a logged-in page carries.
    pub(super) fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name="csrf" value=(self.csrf); }
    }

    pub(super) fn accepts(&self, token: &str) -> bool {
        !self.csrf.is_empty() && same_secret(&self.csrf, token)
    }
}

/// A logged-in person on a page. Without a session, pages redirect to `/login`.
pub(super) struct Session(pub Ctx);

impl FromRequestParts<Http> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, http: &Http) -> Result<Self, Response> {
        let mut ctx = Ctx::anonymous(parts);
        match Caller::from_request_parts(parts, http).await {
            Ok(caller) => {
                if let Err(e) = caller.require_full_scope() {
                    return Err(error_page(&ctx, &e.into()));
                }
                let cookie = session_cookie_name(&http.config);
                let (token, _) =
                    presented_token(parts, cookie).expect("a caller presented a token");
                ctx.csrf = csrf_token(&token);
                ctx.caller = Some(caller);
                Ok(Session(ctx))
            }
            Err(ApiError::Service(Error::Unauthenticated)) => {
                Err(Redirect::to("/login").into_response())
            }
            Err(ApiError::Service(Error::Forbidden(_))) => Err(csrf_refused(&ctx)),
            Err(e) => Err(error_page(&ctx, &e)),
        }
    }
}

/// A posted form of a logged-in person, accepted only with the session's CSRF token.
pub(super) struct Posted {
    pub ctx: Ctx,
    pub fields: HashMap<String, String>,
}

impl Posted {
    /// A field's value, empty when the form did not send it.
    pub(super) fn field(&self, name: &str) -> &str {
        self.fields.get(name).map_or("", String::as_str)
    }
}

impl FromRequest<Http> for Posted {
    type Rejection = Response;

    async fn from_request(req: Request, http: &Http) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let Session(ctx) = Session::from_request_parts(&mut parts, http).await?;
        let req = Request::from_parts(parts, body);
        let Form(fields) = Form::<HashMap<String, String>>::from_request(req, http)
            .await
            .map_err(|_| csrf_refused(&ctx))?;
        if !fields.get("csrf").is_some_and(|t| ctx.accepts(t)) {
            return Err(csrf_refused(&ctx));
        }
        Ok(Posted { ctx, fields })
    }
}

/// A refused multipart form: the CSRF page for a missing or wrong token (read first),
/// else the error for the form's page to show ([`Refused`]).
pub(super) fn csrf_first(ctx: &Ctx, e: Error) -> Result<Error, PageError> {
    match e {
        Error::Forbidden(_) => Err(PageError::new(csrf_refused(ctx))),
        e => Ok(e),
    }
}

fn csrf_refused(ctx: &Ctx) -> Response {
    let body = page(
        ctx,
        ctx.t.error_title,
        html! { p.error role="alert" { (ctx.t.err_csrf) } },
    );
    (StatusCode::FORBIDDEN, body).into_response()
}

/// The path of the page of this site a request came from: its `Referer` when that names
/// this host.
fn came_from(headers: &axum::http::HeaderMap) -> Option<String> {
    let referer = headers.get(axum::http::header::REFERER)?.to_str().ok()?;
    let host = headers.get(axum::http::header::HOST)?.to_str().ok()?;
    let rest = referer
        .strip_prefix("http://")
        .or_else(|| referer.strip_prefix("https://"))?;
    let path = rest.strip_prefix(host)?;
    local_path(path).map(str::to_string)
}

/// What an error says, in the reader's language: the sentence of its code, a quota's
/// numbers, and the detail — the error's own sentence by its key ([`Lang::explain`]) in a
/// language other than English, its message in English (nothing more for an internal
/// error, or a quota, whose numbers said it).
fn explain(ctx: &Ctx, e: &ApiError) -> Markup {
    let detail = match e {
        ApiError::Service(Error::ImageInUse(users)) => Some((in_use(ctx.t, users), ctx.lang)),
        ApiError::Service(Error::Quota { .. }) if ctx.lang != Lang::En => None,
        ApiError::Service(e) if ctx.lang != Lang::En => ctx.lang.explain(e).map(|s| (s, ctx.lang)),
        _ if e.is_internal() => None,
        _ => Some((in_english(e), Lang::En)),
    };
    html! {
        p { (ctx.t.error(e.code())) }
        @if let ApiError::Service(Error::Quota { kind, limit, used, asked }) = e {
            p #quota-refused { (ctx.lang.quota_sentence(*kind, *used, *limit, *asked)) }
        }
        @if let Some((text, lang)) = detail {
            p.detail lang=(lang.code()) { (text) }
        }
    }
}

/// Who uses an image that cannot be deleted, and what the owner can do: other users'
/// containers are counted, never named.
pub(super) fn in_use(t: &Texts, u: &crate::service::images::ImageUsers) -> String {
    let mut out = Vec::new();
    if u.own > 0 {
        out.push(t.image_used_by_own.to_string());
    }
    if u.others == 1 {
        out.push(t.image_used_by_another.to_string());
    } else if u.others > 1 {
        out.push(t.image_used_by_others.replace("{n}", &u.others.to_string()));
    }
    if u.others > 0 {
        out.push(t.image_used_by_others_help.to_string());
        if u.shared {
            out.push(t.image_used_shared_help.to_string());
        }
    }
    out.join(" ")
}

/// What is wrong with one field's input, in the reader's language where its rule is known
/// (in English, the error's own message).
pub(super) fn what_is_wrong(ctx: &Ctx, e: &Error) -> Option<String> {
    let Error::Invalid {
        field: Some(_),
        said,
        ..
    } = e
    else {
        return None;
    };
    match ctx.lang {
        Lang::En => Some(sentence(said.message())),
        lang => lang.explain(e),
    }
}

/// An error's English message as a sentence; a name it starts with (one of the values it
/// names, as `alice has 2 containers`) keeps its case.
fn in_english(e: &ApiError) -> String {
    let message = e.to_string();
    let starts_with_a_name = match e {
        ApiError::Service(e) => e.said().is_some_and(|(_, rule)| {
            rule.params
                .iter()
                .any(|(_, v)| !v.is_empty() && message.starts_with(v.as_str()))
        }),
        _ => false,
    };
    if starts_with_a_name {
        let mut out = message;
        if !out.ends_with(['.', '!', '?']) {
            out.push('.');
        }
        out
    } else {
        sentence(&message)
    }
}

/// An English message as a sentence: capital first, full stop last.
fn sentence(s: &str) -> String {
    let mut out: String = s.chars().take(1).flat_map(char::to_uppercase).collect();
    out.extend(s.chars().skip(1));
    if !out.ends_with(['.', '!', '?', '。']) {
        out.push('.');
    }
    out
}

/// An error as a page in the reader's language, with the status and headers the API
/// would answer, and a way back to the page the request came from. Forms show their
/// errors on their own page instead ([`Refused`]); this is for what has no form to keep.
pub(super) fn error_page(ctx: &Ctx, e: &ApiError) -> Response {
    e.log();
    let back = ctx
        .back
        .as_deref()
        .filter(|b| *b != ctx.here)
        .unwrap_or("/");
    let body = page(
        ctx,
        ctx.t.error_title,
        html! {
            div.error role="alert" { (explain(ctx, e)) }
            p { a.button #back href=(back) { (ctx.t.back) } }
        },
    );
    let mut resp = (e.status(), body).into_response();
    resp.headers_mut().extend(e.headers());
    resp
}

/// A refused form, shown on the page it came from as the new-container form does it: the
/// page is drawn again with what was sent and, at the form and its field at fault, what
/// is wrong, answered with the error's status.
pub(super) struct Refused {
    /// Which form of the page (its id).
    pub form: &'static str,
    /// The input at fault, when one is.
    pub field: Option<&'static str>,
    pub status: StatusCode,
    /// What the form sent (never a password), to fill it in again.
    pub sent: HashMap<String, String>,
    said: Markup,
}

impl Refused {
    pub(super) fn new(
        ctx: &Ctx,
        form: &'static str,
        mut sent: HashMap<String, String>,
        e: impl Into<ApiError>,
    ) -> Self {
        let e = e.into();
        e.log();
        // Secrets are typed again, never sent back in a page.
        sent.retain(|k, _| {
            !(k == "csrf"
                || k == "new"
                || k == "current"
                || k.contains("password")
                || k.contains("token"))
        });
        let field = match &e {
            ApiError::Service(Error::Invalid { field, .. }) => *field,
            _ => None,
        };
        Refused {
            form,
            field,
            status: e.status(),
            sent,
            said: explain(ctx, &e),
        }
    }

    /// The same refusal, saying `said` for `field` instead (a form that knows better what
    /// the error means for it).
    pub(super) fn saying(self, field: &'static str, said: &str) -> Self {
        Refused {
            field: Some(field),
            said: html! { p { (said) } },
            ..self
        }
    }

    /// The refusal of `form`, if that is the refused one.
    pub(super) fn of<'a>(r: Option<&'a Refused>, form: &str) -> Option<&'a Refused> {
        r.filter(|r| r.form == form)
    }

    /// What `form` showed in `name`: what was sent when it was refused, else `default`.
    pub(super) fn value<'a>(
        r: Option<&'a Refused>,
        form: &str,
        name: &str,
        default: &'a str,
    ) -> &'a str {
        Self::of(r, form)
            .and_then(|r| r.sent.get(name))
            .map_or(default, String::as_str)
    }

    /// The alert a refused form shows above its fields (`#<form>-error`), or nothing. It
    /// takes the focus, so that the browser shows it however far down the page it is.
    pub(super) fn alert(r: Option<&Refused>, ctx: &Ctx, form: &str) -> Markup {
        html! {
            @if let Some(r) = Self::of(r, form) {
                div.error.form-error role="alert" id={ (form) "-error" } tabindex="-1" autofocus {
                    p { strong { (ctx.t.error_here) } }
                    (r.said)
                }
            }
        }
    }
}

/// What an unknown address outside the API answers.
pub(super) async fn not_found_page(parts: Parts) -> Response {
    error_page(&Ctx::anonymous(&parts), &Error::not_found("page").into())
}

/// What a page asked for under a host's link address answers (see `crate::http::origin`): the
/// console is not served there. Names the console's own address when it is configured.
pub(super) fn misdirected_page(
    headers: &axum::http::HeaderMap,
    public_url: Option<&str>,
) -> Response {
    let lang = Lang::from_headers(headers);
    let ctx = Ctx {
        lang,
        t: lang.t(),
        caller: None,
        csrf: String::new(),
        here: "/".into(),
        back: None,
    };
    let body = page(
        &ctx,
        ctx.t.misdirected_title,
        html! {
            div.error role="alert" #misdirected {
                p { (ctx.t.misdirected) }
                @if let Some(url) = public_url {
                    p { a href=(url) { (url) } }
                }
                p { (ctx.t.misdirected_setting) " " code { "WM_PUBLIC_URL" } }
            }
        },
    );
    (StatusCode::MISDIRECTED_REQUEST, body).into_response()
}

/// An error page as the `Err` of a handler (boxed: a response is large).
pub(super) struct PageError(Box<Response>);

impl PageError {
    pub(super) fn new(resp: Response) -> Self {
        Self(Box::new(resp))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        *self.0
    }
}

pub(super) trait OrPage<T> {
    fn or_page(self, ctx: &Ctx) -> Result<T, PageError>;
}

impl<T, E: Into<ApiError>> OrPage<T> for Result<T, E> {
    fn or_page(self, ctx: &Ctx) -> Result<T, PageError> {
        self.map_err(|e| PageError::new(error_page(ctx, &e.into())))
    }
}

/// Redirect-after-post: a 303, so the browser follows with a GET.
pub(super) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

#[derive(Deserialize)]
pub(super) struct NoticeQuery {
    notice: Option<String>,
}

/// The notice a redirect asked the page to show.
pub(super) fn notice(ctx: &Ctx, q: &Query<NoticeQuery>) -> Markup {
    html! {
        @if let Some(text) = q.notice.as_deref().and_then(|k| ctx.t.notice(k)) {
            p.notice role="status" { (text) }
        }
    }
}

/// The frame of every page: language, navigation, the language switch.
pub(super) fn page(ctx: &Ctx, title: &str, content: Markup) -> Html<String> {
    let t = ctx.t;
    let other = match ctx.lang {
        Lang::En => Lang::Ja,
        Lang::Ja => Lang::En,
    };
    let nav = |href: &str, label: &str| {
        let current = ctx.here == href || ctx.here.starts_with(&format!("{href}?"));
        html! { li { a href=(href) aria-current=[current.then_some("page")] { (label) } } }
    };
    Html(
        html! {
            (DOCTYPE)
            html lang=(ctx.lang.code()) {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " — whalemountain" }
                    link rel="stylesheet" href="/assets/console.css";
                    (script("/assets/times.js"))
                }
                body {
                    a.skip href="#main" { (t.skip) }
                    header.top {
                        a.brand href="/" { "whalemountain" }
                        @if let Some(c) = &ctx.caller {
                            nav aria-label=(t.nav_label) {
                                ul {
                                    (nav("/containers", t.containers))
                                    (nav("/containers/new", t.new_container))
                                    (nav("/images", t.images))
                                    (nav("/files", t.nav_files))
                                    (nav("/ci", t.ci))
                                    (nav("/courses", t.nav_courses))
                                    (nav("/account", t.nav_account))
                                    @if c.is_admin() { (nav("/admin", t.admin)) }
                                }
                            }
                        }
                        div.tools {
                            a href={ "/language?to=" (other.code()) "&back=" (encode(&ctx.here)) }
                              lang=(other.code()) hreflang=(other.code()) {
                                span.sr { (t.language) ": " } (t.other_language)
                            }
                            @if let Some(c) = &ctx.caller {
                                span.who { (t.signed_in_as) " " strong { (c.name.as_str()) } }
                                form.inline method="post" action="/logout" {
                                    (ctx.csrf_field())
                                    button.link type="submit" { (t.logout) }
                                }
                            }
                        }
                    }
                    main #main {
                        h1 { (title) }
                        (content)
                    }
                }
            }
        }
        .into_string(),
    )
}

/// Percent-encodes a value for a query string.
pub(super) fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Deserialize)]
struct LanguageQuery {
    to: String,
    back: Option<String>,
}

/// The language switch: remembers the choice for a year and goes back to the page. Only a
/// local path is followed back, never another site.
async fn switch_language(Query(q): Query<LanguageQuery>) -> Response {
    let back = q.back.as_deref().and_then(local_path).unwrap_or("/");
    let mut resp = see_other(back);
    if let Some(lang) = Lang::parse(&q.to) {
        resp.headers_mut().insert(
            SET_COOKIE,
            HeaderValue::from_str(&format!(
                "{LANG_COOKIE}={}; Path=/; SameSite=Lax; Max-Age=31536000",
                lang.code()
            ))
            .expect("ASCII"),
        );
    }
    resp
}

/// `target` when it is a path on this site, for a redirect to a place a request named.
///
/// Browsers read `//host`, `/\\host` and `/\t/host` (they drop tabs and newlines, and
/// take a backslash for a slash) as another site, and some decode `%09` or `%2F` first;
/// so the path must start with one `/`, and neither it nor its percent-decoded form may
/// hold a backslash, whitespace, a control or non-ASCII character, or start with two
/// slashes.
pub(super) fn local_path(target: &str) -> Option<&str> {
    let clean = |s: &[u8]| {
        s.first() == Some(&b'/')
            && !matches!(s.get(1), Some(b'/' | b'\\'))
            && s.iter().all(|b| b.is_ascii_graphic() && *b != b'\\')
    };
    (target.len() <= 2048 && clean(target.as_bytes()) && clean(&percent_decode(target)))
        .then_some(target)
}

/// `%XX` decoded, leniently (a `%` without two hex digits stays as it is).
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Bytes as people read them.
pub(super) fn human_size(bytes: i64) -> String {
    let b = bytes.max(0) as f64;
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{b} B")
    }
}

/// A container status in the reader's words, as a badge.
pub(super) fn status_badge(t: &Texts, status: wm_domain::ContainerStatus) -> Markup {
    html! {
        span class={ "badge " (status_class(status)) } data-status=(status.as_str()) {
            (t.status_word(status))
        }
    }
}

/// The badge style of a status: ok while it runs, bad when it stopped, failed or went
/// away, neutral while it is on its way or cannot be known.
pub(super) fn status_class(status: wm_domain::ContainerStatus) -> &'static str {
    use wm_domain::ContainerStatus as S;
    match status {
        S::Running => "ok",
        S::Exited | S::Dead | S::Gone | S::Failed | S::Stopped => "bad",
        S::Creating | S::Created | S::Paused | S::Restarting | S::Pending | S::Unknown => "neutral",
    }
}

/// The browser terminal on the WebSocket session at `api` (a container's terminal or a
/// VM's serial console; one protocol): an element the page script (`assets/terminal.js`)
/// turns into xterm.js, under a heading `#terminal-h`.
pub(super) fn terminal_element(t: &Texts, api: &str) -> Markup {
    html! {
        link rel="stylesheet" href="/assets/xterm.css";
        div.terminal data-terminal=(api) tabindex="0" role="application" aria-labelledby="terminal-h"
            data-status="terminal-status" data-again="terminal-again"
            data-connecting=(t.terminal_connecting) data-ended=(t.terminal_ended)
            data-closed=(t.terminal_closed) data-failed=(t.terminal_failed) {
            noscript { p { (t.terminal_noscript) } }
        }
        p #terminal-status role="status" {}
        button #terminal-again type="button" hidden { (t.terminal_again) }
        (script("/assets/terminal.js"))
    }
}

/// A moment as every page shows it: a `<time>` holding the instant (RFC 3339, UTC) whose
/// text is its date and minutes in UTC, saying so; `assets/times.js` rewrites the text in
/// the reader's own time zone (its UTC text stays as the title). Text that is not RFC 3339
/// is shown as it is.
pub(super) fn when(rfc3339: &str) -> Markup {
    use time::format_description::well_known::Rfc3339;
    let Ok(at) = time::OffsetDateTime::parse(rfc3339, &Rfc3339) else {
        return html! { (rfc3339) };
    };
    let utc = at.to_offset(time::UtcOffset::UTC);
    let text = format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute()
    );
    html! {
        time datetime=(utc.format(&Rfc3339).unwrap_or_else(|_| rfc3339.to_string())) data-local { (text) }
    }
}

/// [`when`] of a moment that may not be, or a dash.
pub(super) fn maybe_when(rfc3339: Option<&str>) -> Markup {
    match rfc3339 {
        Some(at) => when(at),
        None => html! { "—" },
    }
}

pub(super) fn script(src: &str) -> Markup {
    html! { script src=(src) defer {} }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens() {
        let a = csrf_token("wm_a");
        assert_ne!(a, csrf_token("wm_b"));
        assert_ne!(a, crate::service::accounts::token_hash("wm_a"));
        assert!(same_secret(&a, &a.clone()));
        assert!(!same_secret(&a, &csrf_token("wm_b")));
        assert!(!same_secret(&a, ""));
    }

    #[test]
    fn redirects_stay_on_this_site() {
        for ok in [
            "/",
            "/containers",
            "/images?notice=saved&x=%2F",
            "/containers/a-b%41c",
        ] {
            assert_eq!(local_path(ok), Some(ok), "{ok:?}");
        }
        for bad in [
            "",
            "containers",
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example/",
            "\\\\evil.example",
            "/\t/evil.example:8080/",
            "/\n/evil.example/",
            "/\r\n/evil.example/",
            "/ /evil.example/",
            "/%09/evil.example/",
            "/%0a/evil.example/",
            "/%2F/evil.example/",
            "/%2f%2fevil.example/",
            "/%5Cevil.example/",
            "/%5c/evil.example/",
            "/x\\y",
            "/\u{0}x",
            "/\u{7f}x",
            "/\u{3000}/evil.example/",
            "/caf\u{e9}",
        ] {
            assert_eq!(local_path(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn times_say_their_zone() {
        let html = when("2026-12-01T14:05:09+09:00").into_string();
        assert_eq!(
            html,
            r#"<time datetime="2026-12-01T05:05:09Z" data-local>2026-12-01 05:05 UTC</time>"#
        );
        assert_eq!(when("soon").into_string(), "soon");
        assert_eq!(maybe_when(None).into_string(), "—");
    }

    #[test]
    fn query_encoding() {
        assert_eq!(encode("/images?x=a b&c"), "%2Fimages%3Fx%3Da%20b%26c");
    }
}
