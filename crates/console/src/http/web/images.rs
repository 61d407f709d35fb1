//! `/images`: the person's own images, those others share, public ones; pull and build
//! with live progress; description, sharing, deletion and downloads.
//!
//! Pulls and builds answer the API's NDJSON. With JavaScript, `progress.js` posts to the
//! API and shows each line as it comes; without it, the forms post here and the same
//! lines stream into the page as HTML.

use super::i18n::Texts;
use super::{
    encode, form_refusal, human_size, notice, page, script, see_other, when, Ctx, NoticeQuery,
    OrPage, PageError, Posted, Session,
};
use crate::http::forms::{multipart_form, read_build};
use crate::http::images::ndjson;
use crate::http::Http;
use crate::service::images::{Image, ImagePatch, PullRequest};
use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use maud::{html, Markup};
use serde_json::Value;

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

fn own_entry(ctx: &Ctx, i: &Image, n: usize) -> Markup {
    let t = ctx.t;
    html! {
        li.image.card {
            h3 { code { (i.reference) } }
            p.muted { (human_size(i.size)) " · " (when(&i.created_at)) }
            (scan_status(ctx, i))
            form method="post" action="/images/edit" {
                (ctx.csrf_field())
                input type="hidden" name="ref" value=(i.reference);
                div.field {
                    label for={ "desc-" (n) } { (t.description) }
                    textarea id={ "desc-" (n) } name="description" rows="2" { (i.description) }
                }
                div.field.check {
                    input type="checkbox" id={ "shared-" (n) } name="shared" value="on" checked[i.shared];
                    label for={ "shared-" (n) } { (t.share_with_everyone) }
                }
                button type="submit" { (t.save) span.sr { " " (i.reference) } }
            }
            div.actions {
                (downloads(ctx, i))
                form.inline method="post" action="/images/delete" {
                    (ctx.csrf_field())
                    input type="hidden" name="ref" value=(i.reference);
                    button.danger type="submit" { (t.delete) span.sr { " " (i.reference) } }
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
    let t = ctx.t;
    let all = http.images.visible(ctx.caller()).await.or_page(&ctx)?;
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
                            @if own { (own_entry(&ctx, i, n)) } @else { (other_entry(&ctx, i)) }
                        }
                    }
                }
            }
        }
    };
    let body = html! {
        (notice(&ctx, &q))
        (list("own-h", t.own_images, &own, true))
        (list("shared-h", t.shared_images, &shared, false))
        (list("public-h", t.public_images, &public, false))
        @if !other.is_empty() { (list("other-h", t.others_images, &other, false)) }
        section aria-labelledby="pull-h" {
            h2 #pull-h { (t.pull_title) }
            form.card method="post" action="/images/pull" data-ndjson="/api/v1/images/pull" data-output="pull-progress" {
                (ctx.csrf_field())
                div.field {
                    label for="pull-image" { (t.reference) }
                    input #pull-image name="image" type="text" required autocapitalize="none"
                        spellcheck="false" aria-describedby="pull-hint";
                    p.hint #pull-hint { (t.hint_pull) }
                }
                button.primary type="submit" { (t.pull_button) }
                (progress_box(&ctx, "pull-progress"))
            }
        }
        section aria-labelledby="build-h" {
            h2 #build-h { (t.build_title) }
            form.card method="post" action="/images/build" enctype="multipart/form-data"
                data-ndjson="/api/v1/images/build" data-output="build-progress" {
                (ctx.csrf_field())
                div.field {
                    label for="build-name" { (t.name) }
                    input #build-name name="name" type="text" required autocapitalize="none"
                        spellcheck="false" aria-describedby="build-name-hint";
                    p.hint #build-name-hint { (t.hint_build_name) }
                }
                div.field {
                    label for="build-dockerfile" { (t.dockerfile) }
                    textarea #build-dockerfile name="dockerfile" rows="6" spellcheck="false"
                        placeholder="FROM debian:12\nRUN ..." {}
                }
                div.field {
                    label for="build-context" { (t.context) }
                    input #build-context name="context" type="file" accept=".tar,.tar.gz,.tgz,application/x-tar,application/gzip"
                        aria-describedby="build-context-hint";
                    p.hint #build-context-hint { (t.hint_context) }
                }
                button.primary type="submit" { (t.build_button) }
                (progress_box(&ctx, "build-progress"))
            }
        }
        (script("/assets/progress.js"))
    };
    Ok(page(&ctx, t.images, body).into_response())
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
    http.images
        .patch(ctx.caller(), posted.field("ref"), patch)
        .await
        .or_page(ctx)?;
    Ok(see_other("/images?notice=saved"))
}

pub(super) async fn delete(
    State(http): State<Http>,
    posted: Posted,
) -> Result<Response, PageError> {
    let ctx = &posted.ctx;
    http.images
        .delete(ctx.caller(), posted.field("ref"))
        .await
        .or_page(ctx)?;
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
    let ctx = posted.ctx;
    let req = PullRequest {
        image: posted.fields.get("image").cloned().unwrap_or_default(),
        host: None,
    };
    let resp = ndjson(http.images.pull(ctx.caller(), req).await.or_page(&ctx)?);
    Ok(stream_page(&ctx, ctx.t.pull_title, resp))
}

pub(super) async fn build(
    State(http): State<Http>,
    Session(ctx): Session,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, PageError> {
    let form = multipart_form(multipart, "build").or_page(&ctx)?;
    let accept = |token: &str| ctx.accepts(token);
    let refused = form_refusal(&ctx);
    let input = read_build(
        form,
        Some(&accept),
        http.config.build_context_max_bytes,
        http.config.upload_max_files,
    )
    .await
    .map_err(refused)?;
    let resp = ndjson(
        http.images
            .build(ctx.caller(), input)
            .await
            .map_err(refused)?,
    );
    Ok(stream_page(&ctx, ctx.t.build_title, resp))
}

/// One NDJSON progress line as a list item.
fn line_html(t: &Texts, line: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<Value>(line) else {
        return String::new();
    };
    let text = |k: &str| v[k].as_str().unwrap_or("").to_string();
    let item = match v["status"].as_str() {
        Some("done") => {
            html! { li.ok { (t.finished) " " code { (v["image"]["ref"].as_str().unwrap_or("")) } } }
        }
        Some("error") => {
            // A failed pull is told by its reason, in the page's language.
            let said = v["error"]["reason"]
                .as_str()
                .and_then(|r| t.pull_reason(r))
                .or(v["error"]["message"].as_str())
                .unwrap_or("");
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
    let t = ctx.t;
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
                    return Some((line_html(t, &line), (body, buf, ended)));
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
