//! `/images`: the person's own images, those others share, public ones; pull and build
//! with live progress; description, sharing, deletion and downloads.
//!
//! Pulls and builds answer the API's NDJSON. With JavaScript, `progress.js` posts to the
//! API and shows each line as it comes; without it, the forms post here and the same
//! lines stream into the page as HTML.

use super::i18n::Lang;
use super::{
    csrf_first, encode, human_size, in_use, notice, page, script, see_other, when, Ctx,
    NoticeQuery, OrPage, PageError, Posted, Refused, Session,
};
use crate::http::forms::{multipart_form, read_build};
use crate::http::images::ndjson;
use crate::http::Http;
use crate::service::images::{BuildSource, Image, ImagePatch, PullRequest};
use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use maud::{html, Markup};
use serde_json::Value;
use std::collections::HashMap;

fn downloads(ctx: &Ctx, i: &Image) -> Markup {
    let base = format!("/api/v1/images/{}/export", encode(&i.reference));
    html! {
        span.downloads {
            (ctx.t.download) ": "
            a href={ (base) "?format=docker-archive" } download { "docker-archive" span.sr { " " (i.reference) } }
            " · "
            // With JavaScript the conversion shows its progress first (progress.js);
            // without, the link converts and then downloads.
            a href={ (base) "?format=sif" } download
                data-sif={ "/api/v1/images/" (encode(&i.reference)) "/sif" }
                data-converting=(ctx.t.sif_converting) { "SIF" span.sr { " " (i.reference) } }
            " "
            span.sif-progress role="status" {}
        }
    }
}

/// The image's scan: what it found, and for an administrator the release of a held image.
fn scan_status(ctx: &Ctx, i: &Image) -> Markup {
    let t = ctx.t;
    let Some(scan) = &i.scan else {
        return html! {};
    };
    let released = scan.released_at.is_some();
    let (class, word) = match scan.status.as_str() {
        _ if released => ("ok", t.scan_released),
        "clean" => ("ok", t.scan_clean),
        "pending" => ("muted", t.scan_pending),
        "flagged" => ("bad", t.scan_flagged),
        _ => ("bad", t.scan_error),
    };
    let held = !released && scan.status != "clean";
    html! {
        div.scan data-scan=(scan.status) {
            p class=(class) { (t.scan) " (" (scan.scanner) "): " strong { (word) } }
            @if !scan.findings.is_empty() {
                ul.findings { @for f in &scan.findings { li { code { (f) } } } }
            }
            @if held && scan.status != "pending" && ctx.caller().is_admin() {
                form.inline method="post" action="/images/release" {
                    (ctx.csrf_field())
                    input type="hidden" name="ref" value=(i.reference);
                    button type="submit" { (t.release) span.sr { " " (i.reference) } }
                }
            }
        }
    }
}

fn own_entry(ctx: &Ctx, i: &Image, n: usize, refused: Option<&Refused>) -> Markup {
    let t = ctx.t;
    // A refused edit is this entry's when it names this image.
    let refused = refused.filter(|r| r.sent.get("ref") == Some(&i.reference));
    let shared = match Refused::of(refused, "edit") {
        Some(r) => r.sent.get("shared").is_some_and(|v| v == "on"),
        None => i.shared,
    };
    html! {
        li.image.card {
            h3 { code { (i.reference) } }
            p.muted { (human_size(i.size)) " · " (when(&i.created_at)) }
            (scan_status(ctx, i))
            form method="post" action="/images/edit" {
                (ctx.csrf_field())
                (Refused::alert(refused, ctx, "edit"))
                input type="hidden" name="ref" value=(i.reference);
                div.field {
                    label for={ "desc-" (n) } { (t.description) }
                    textarea id={ "desc-" (n) } name="description" rows="2" {
                        (Refused::value(refused, "edit", "description", &i.description))
                    }
                }
                div.field.check {
                    input type="checkbox" id={ "shared-" (n) } name="shared" value="on" checked[shared];
                    label for={ "shared-" (n) } { (t.share_with_everyone) }
                }
                button type="submit" { (t.save) span.sr { " " (i.reference) } }
            }
            div.actions {
                (downloads(ctx, i))
                a.button.danger href={ "/images/delete?ref=" (encode(&i.reference)) } {
                    (t.delete) span.sr { " " (i.reference) }
                }
            }
        }
    }
}

fn other_entry(ctx: &Ctx, i: &Image) -> Markup {
    html! {
        li.image.card {
            h3 { code { (i.reference) } }
            p.muted {
                @if let Some(o) = &i.owner { (ctx.t.owner) ": " (o) " · " }
                (human_size(i.size)) " · " (when(&i.created_at))
            }
            @if !i.description.is_empty() { p.description { (i.description) } }
            (scan_status(ctx, i))
            (downloads(ctx, i))
        }
    }
}

pub(super) async fn page_handler(
    State(http): State<Http>,
    Session(ctx): Session,
    q: Query<NoticeQuery>,
) -> Result<Response, PageError> {
    images_page(&http, &ctx, notice(&ctx, &q), None).await
}

/// The images page: `top` above it, or a refused form of it.
async fn images_page(
    http: &Http,
    ctx: &Ctx,
    top: Markup,
    refused: Option<&Refused>,
) -> Result<Response, PageError> {
    let t = ctx.t;
    let all = http.images.visible(ctx.caller()).await.or_page(ctx)?;
    let of = |kind: &str| all.iter().filter(|i| i.kind == kind).collect::<Vec<_>>();
    let (own, public, other) = (of("own"), of("public"), of("other"));
    // A course's images first, then those shared with everyone.
    let shared: Vec<&Image> = of("course").into_iter().chain(of("shared")).collect();
    let list = |id: &str, title: &str, items: &[&Image], own: bool| {
        html! {
            section aria-labelledby=(id) {
                h2 id=(id) { (title) }
                @if items.is_empty() { p.muted { (t.no_images) } } @else {
                    ul.images {
                        @for (n, i) in items.iter().enumerate() {
                            @if own { (own_entry(ctx, i, n, refused)) } @else { (other_entry(ctx, i)) }
                        }
                    }
                }
            }
        }
    };
    let wrong = |form: &str| Refused::of(refused, form).is_some();
    let body = html! {
        (top)
        (list("own-h", t.own_images, &own, true))
        (list("shared-h", t.shared_images, &shared, false))
        (list("public-h", t.public_images, &public, false))
        @if !other.is_empty() { (list("other-h", t.others_images, &other, false)) }
        section aria-labelledby="pull-h" {
            h2 #pull-h { (t.pull_title) }
            form.card #pull method="post" action="/images/pull" data-ndjson="/api/v1/images/pull" data-output="pull-progress" {
                (ctx.csrf_field())
                (Refused::alert(refused, ctx, "pull"))
                div.field.invalid[wrong("pull")] {
                    label for="pull-image" { (t.reference) }
                    input #pull-image name="image" type="text" required autocapitalize="none"
                        value=(Refused::value(refused, "pull", "image", ""))
                        aria-invalid=[wrong("pull").then_some("true")]
                        spellcheck="false" aria-describedby="pull-hint";
                    p.hint #pull-hint { (t.hint_pull) }
                }
                button.primary type="submit" { (t.pull_button) }
                (progress_box(ctx, "pull-progress"))
            }
        }
        section aria-labelledby="build-h" {
            h2 #build-h { (t.build_title) }
            form.card #build method="post" action="/images/build" enctype="multipart/form-data"
                data-ndjson="/api/v1/images/build" data-output="build-progress" {
                (ctx.csrf_field())
                (Refused::alert(refused, ctx, "build"))
                div.field {
                    label for="build-name" { (t.name) }
                    input #build-name name="name" type="text" required autocapitalize="none"
                        value=(Refused::value(refused, "build", "name", ""))
                        spellcheck="false" aria-describedby="build-name-hint";
                    p.hint #build-name-hint { (t.hint_build_name) }
                }
                div.field {
                    label for="build-dockerfile" { (t.dockerfile) }
                    textarea #build-dockerfile name="dockerfile" rows="6" spellcheck="false"
                        placeholder="FROM debian:12\nRUN ..." { (Refused::value(refused, "build", "dockerfile", "")) }
                }
                div.field {
                    label for="build-context" { (t.context) }
                    input #build-context name="context" type="file" accept=".tar,.tar.gz,.tgz,application/x-tar,application/gzip"
                        aria-describedby="build-context-hint";
                    p.hint #build-context-hint { (t.hint_context) }
                }
                button.primary type="submit" { (t.build_button) }
                (progress_box(ctx, "build-progress"))
            }
        }
        (script("/assets/progress.js"))
    };
    let status = refused.map_or(StatusCode::OK, |r| r.status);
    Ok((status, page(ctx, t.images, body)).into_response())
}

fn progress_box(ctx: &Ctx, id: &str) -> Markup {
    let reasons: serde_json::Map<String, Value> = [
        "not_found",
        "unauthorized",
        "unreachable",
        "refused",
        "failed",
    ]
    .into_iter()
    .filter_map(|r| Some((r.to_string(), Value::String(ctx.t.pull_reason(r)?.into()))))
    .collect();
    html! {
        div.progress id=(id) hidden data-done=(ctx.t.finished) data-failed=(ctx.t.failed)
            data-back=(ctx.t.back_to_images) data-reasons=(Value::Object(reasons).to_string()) {
            h3 { (ctx.t.progress) }
            progress max="100" {}
            ol.log aria-live="polite" {}
            p.outcome role="status" {}
        }
    }
}

pub(super) async fn edit(State(http): State<Http>, posted: Posted) -> Result<Response, PageError> {
    let ctx = &posted.ctx;
    let patch = ImagePatch {
        description: Some(posted.field("description").replace("\r\n", "\n")),
        shared: Some(posted.field("shared") == "on"),
        courses: None,
    };
    if let Err(e) = http
        .images
        .patch(ctx.caller(), posted.field("ref"), patch)
        .await
    {
        let refused = Refused::new(ctx, "edit", posted.fields.clone(), e);
        return images_page(&http, ctx, html! {}, Some(&refused)).await;
    }
    Ok(see_other("/images?notice=saved"))
}

#[derive(serde::Deserialize)]
pub(super) struct RefQuery {
    #[serde(rename = "ref")]
    reference: String,
}

/// Asks before an image is deleted, and says first what keeps it: the owner's containers,
/// or how many of other users' (never whose).
pub(super) async fn confirm_delete(
    State(http): State<Http>,
    Session(ctx): Session,
    Query(q): Query<RefQuery>,
) -> Result<Response, PageError> {
    delete_page(&http, &ctx, &q.reference, None).await
}

async fn delete_page(
    http: &Http,
    ctx: &Ctx,
    reference: &str,
    refused: Option<&Refused>,
) -> Result<Response, PageError> {
    let t = ctx.t;
    let users = http
        .images
        .users(ctx.caller(), reference)
        .await
        .or_page(ctx)?;
    let used = users.own + users.others > 0;
    let body = html! {
        p { (t.confirm_image_delete) }
        p { strong { code { (users.reference) } } }
        @if let Some(r) = refused {
            (Refused::alert(Some(r), ctx, "delete"))
        } @else if used {
            div.warn #image-in-use role="status" { p { (in_use(t, &users)) } }
        }
        form.card #delete method="post" action="/images/delete" {
            (ctx.csrf_field())
            input type="hidden" name="ref" value=(users.reference);
            div.actions {
                button.danger type="submit" disabled[used] { (t.delete) }
                a.button href="/images" { (t.cancel) }
            }
        }
    };
    let status = refused.map_or(StatusCode::OK, |r| r.status);
    Ok((status, page(ctx, t.confirm_image_delete_title, body)).into_response())
}

pub(super) async fn delete(
    State(http): State<Http>,
    posted: Posted,
) -> Result<Response, PageError> {
    let ctx = &posted.ctx;
    let reference = posted.field("ref");
    if let Err(e) = http.images.delete(ctx.caller(), reference).await {
        let refused = Refused::new(ctx, "delete", posted.fields.clone(), e);
        return delete_page(&http, ctx, reference, Some(&refused)).await;
    }
    Ok(see_other("/images?notice=image-deleted"))
}

pub(super) async fn release(
    State(http): State<Http>,
    posted: Posted,
) -> Result<Response, PageError> {
    let ctx = &posted.ctx;
    let admin = crate::service::accounts::Admin::check(ctx.caller()).or_page(ctx)?;
    http.images
        .release(ctx.caller(), &admin, posted.field("ref"))
        .await
        .or_page(ctx)?;
    Ok(see_other("/images?notice=image-released"))
}

pub(super) async fn pull(State(http): State<Http>, posted: Posted) -> Result<Response, PageError> {
    let ctx = &posted.ctx;
    let req = PullRequest {
        image: posted.field("image").trim().to_string(),
        host: None,
    };
    match http.images.pull(ctx.caller(), req).await {
        Ok(lines) => Ok(stream_page(ctx, ctx.t.pull_title, ndjson(lines))),
        Err(e) => {
            let refused = Refused::new(ctx, "pull", posted.fields.clone(), e);
            images_page(&http, ctx, html! {}, Some(&refused)).await
        }
    }
}

pub(super) async fn build(
    State(http): State<Http>,
    Session(ctx): Session,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, PageError> {
    let form = multipart_form(multipart, "build").or_page(&ctx)?;
    let accept = |token: &str| ctx.accepts(token);
    let input = match read_build(
        form,
        Some(&accept),
        http.config.build_context_max_bytes,
        http.config.upload_max_files,
    )
    .await
    {
        Ok(input) => input,
        Err(e) => {
            let refused = Refused::new(&ctx, "build", HashMap::new(), csrf_first(&ctx, e)?);
            return images_page(&http, &ctx, html! {}, Some(&refused)).await;
        }
    };
    let mut sent = HashMap::from([("name".to_string(), input.name.clone())]);
    if let Some(BuildSource::Text(text)) = &input.source {
        sent.insert("dockerfile".into(), text.clone());
    }
    match http.images.build(ctx.caller(), input).await {
        Ok(lines) => Ok(stream_page(&ctx, ctx.t.build_title, ndjson(lines))),
        Err(e) => {
            let refused = Refused::new(&ctx, "build", sent, e);
            images_page(&http, &ctx, html! {}, Some(&refused)).await
        }
    }
}

/// One NDJSON progress line as a list item.
fn line_html(lang: Lang, line: &[u8]) -> String {
    let t = lang.t();
    let Ok(v) = serde_json::from_slice::<Value>(line) else {
        return String::new();
    };
    let text = |k: &str| v[k].as_str().unwrap_or("").to_string();
    let item = match v["status"].as_str() {
        Some("done") => {
            html! { li.ok { (t.finished) " " code { (v["image"]["ref"].as_str().unwrap_or("")) } } }
        }
        Some("error") => {
            // A failed pull or build is told by its reason, in the page's language.
            let said = lang
                .line_error(&v["error"])
                .or_else(|| v["error"]["message"].as_str().map(str::to_string))
                .unwrap_or_default();
            html! { li.bad { (t.failed) " " (said) } }
        }
        _ => {
            let mut s = text("stream");
            if s.is_empty() {
                s = [text("layer"), text("detail")].join(" ").trim().to_string();
            }
            html! { li { (s) } }
        }
    };
    item.into_string()
}

/// The page around a stream of NDJSON progress: each line is sent as it arrives, so a
/// browser without JavaScript shows the progress live too.
fn stream_page(ctx: &Ctx, title: &str, ndjson: Response) -> Response {
    const MARK: &str = "<!--lines-->";
    let (t, lang) = (ctx.t, ctx.lang);
    let whole = page(
        ctx,
        title,
        html! {
            ol.log { (maud::PreEscaped(MARK)) }
            p { a href="/images" { (t.back_to_images) } }
        },
    )
    .0;
    let (head, tail) = whole.split_once(MARK).expect("the mark is in the page");
    let (head, tail) = (head.to_string(), tail.to_string());
    let lines = futures::stream::unfold(
        (
            ndjson.into_body().into_data_stream(),
            Vec::<u8>::new(),
            false,
        ),
        move |(mut body, mut buf, ended)| async move {
            loop {
                if let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    return Some((line_html(lang, &line), (body, buf, ended)));
                }
                if ended {
                    return None;
                }
                match body.next().await {
                    Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                    _ => {
                        buf.push(b'\n');
                        return Some((String::new(), (body, buf, true)));
                    }
                }
            }
        },
    );
    let body = futures::stream::once(async move { head })
        .chain(lines)
        .chain(futures::stream::once(async move { tail }))
        .map(|s| Ok::<_, std::convert::Infallible>(Bytes::from(s)));
    let mut resp = Body::from_stream(body).into_response();
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}
