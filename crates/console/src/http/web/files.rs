//! `/files`: the caller's storage, a folder at a time: its size against their quota,
//! the entries with download and delete, and an upload into the folder.

use super::{
    csrf_first, encode, notice, page, see_other, when, Ctx, NoticeQuery, OrPage, PageError, Posted,
    Refused, Session,
};
use crate::http::forms::{multipart_form, read_upload};
use crate::http::Http;
use crate::service::human_bytes;
use crate::service::storage::Found;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Deserialize)]
pub(super) struct FolderQuery {
    #[serde(default)]
    path: String,
}

/// A folder's path as the page shows and links it: `/` or `/a/b`.
fn shown(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    format!("/{}", parts.join("/"))
}

fn child(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

pub(super) async fn page_handler(
    State(http): State<Http>,
    Session(ctx): Session,
    Query(q): Query<FolderQuery>,
    n: Query<NoticeQuery>,
) -> Result<Response, PageError> {
    files_page(&http, &ctx, &shown(&q.path), notice(&ctx, &n), None).await
}

/// The page of the folder `dir`: `top` above it, or a refused form of it.
async fn files_page(
    http: &Http,
    ctx: &Ctx,
    dir: &str,
    top: Markup,
    refused: Option<&Refused>,
) -> Result<Response, PageError> {
    let t = ctx.t;
    let caller = ctx.caller();
    let dir = dir.to_string();
    let overview = http.storage.overview(caller).await.or_page(ctx)?;
    let Some(mount) = overview.mount_path.clone() else {
        let body = html! { p.notice role="status" #no-storage { (t.files_no_storage) } };
        return Ok(page(ctx, t.files_title, body).into_response());
    };
    let listing = match http.storage.get(caller, &dir, None).await {
        Ok(Found::Dir { entries, truncated }) => (entries, truncated),
        // A file's address shows its folder's page.
        Ok(Found::File { .. }) => {
            let parent = dir.rsplit_once('/').map_or("/", |(p, _)| p);
            return Ok(see_other(&format!("/files?path={}", encode(parent))));
        }
        Err(e) => return Err(e).or_page(ctx),
    };
    let crumbs: Vec<(String, String)> = {
        let mut acc = String::new();
        let mut out = vec![(t.files_root.to_string(), "/".to_string())];
        for part in dir.split('/').filter(|p| !p.is_empty()) {
            acc = format!("{acc}/{part}");
            out.push((part.to_string(), acc.clone()));
        }
        out
    };
    let body = html! {
        (top)
        (Refused::alert(refused, ctx, "delete"))
        p { (t.files_intro) " " code #mount-path { (mount) } }
        p #usage {
            (t.files_used) ": " strong { (human_bytes(overview.used)) }
            " / " (overview.quota.map_or_else(|| t.no_limit.to_string(), human_bytes))
        }
        nav aria-label=(t.files_root) {
            ol.crumbs {
                @for (label, path) in &crumbs {
                    li {
                        @if *path == dir { span aria-current="page" { (label) } }
                        @else { a href={ "/files?path=" (encode(path)) } { (label) } }
                    }
                }
            }
        }
        @if listing.0.is_empty() {
            p #empty { (t.files_empty) }
        } @else {
            table.cards #files {
                thead { tr { th { (t.files_name) } th { (t.files_size) } th { (t.files_modified) } th {} } }
                tbody {
                    @for e in &listing.0 {
                        @let path = child(&dir, &e.name);
                        tr {
                            td data-label=(t.files_name) {
                                @match e.kind.as_str() {
                                    "dir" => a href={ "/files?path=" (encode(&path)) } { (e.name) "/" },
                                    "file" => a href={ "/api/v1/storage/files?path=" (encode(&path)) } download=(e.name) { (e.name) },
                                    "symlink" => span { (e.name) " (" (t.files_link) ")" },
                                    _ => span { (e.name) " (" (t.files_other) ")" },
                                }
                            }
                            td data-label=(t.files_size) { @if e.kind == "file" { (human_bytes(e.size)) } }
                            td data-label=(t.files_modified) { (when(&e.modified)) }
                            td {
                                form.inline method="post" action="/files/delete" {
                                    (ctx.csrf_field())
                                    input type="hidden" name="path" value=(path);
                                    button.danger type="submit" aria-label={ (t.files_delete) " " (e.name) } { (t.files_delete) }
                                }
                            }
                        }
                    }
                }
            }
            @if listing.1 { p.warn { (t.files_truncated) } }
        }
        section aria-labelledby="upload-h" {
            h2 #upload-h { (t.files_upload_title) }
            // The script checks the files' size against the limit before they are sent.
            form.card #upload method="post" action="/files/upload" enctype="multipart/form-data"
                data-max-bytes=(http.config.upload_max_bytes) data-too-large=(t.upload_too_large)
                data-limit=(human_bytes(http.config.upload_max_bytes as i64)) {
                // First, so the token is checked before any file is read.
                (ctx.csrf_field())
                (Refused::alert(refused, ctx, "upload"))
                input type="hidden" name="path" value=(dir);
                div.field {
                    label for="file" { (t.files) }
                    input #file name="file" type="file" multiple required aria-describedby="file-hint";
                    p.hint #file-hint {
                        (t.upload_limit.replace("{size}", &human_bytes(http.config.upload_max_bytes as i64)))
                        @if Refused::of(refused, "upload").is_some() { " " (t.files_not_kept) }
                    }
                    p.field-error #file-size-error role="alert" hidden {}
                }
                button.primary type="submit" { (t.upload_button) }
            }
        }
        (super::script("/assets/progress.js"))
    };
    let status = refused.map_or(StatusCode::OK, |r| r.status);
    Ok((status, page(ctx, t.files_title, body)).into_response())
}

pub(super) async fn upload(
    State(http): State<Http>,
    Session(ctx): Session,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, PageError> {
    let form = multipart_form(multipart, "files").or_page(&ctx)?;
    let accept = |token: &str| ctx.accepts(token);
    let upload = match read_upload(
        form,
        Some(&accept),
        http.containers.temp_files(),
        http.config.upload_max_bytes,
        http.config.upload_max_files,
    )
    .await
    {
        Ok(u) => u,
        Err(e) => {
            let refused = Refused::new(&ctx, "upload", HashMap::new(), csrf_first(&ctx, e)?);
            return files_page(&http, &ctx, "/", html! {}, Some(&refused)).await;
        }
    };
    let dir = shown(&upload.dir);
    if let Err(e) = http
        .storage
        .upload(ctx.caller(), &dir, upload.files, None)
        .await
    {
        let refused = Refused::new(&ctx, "upload", HashMap::new(), e);
        return files_page(&http, &ctx, &dir, html! {}, Some(&refused)).await;
    }
    Ok(see_other(&format!(
        "/files?path={}&notice=uploaded",
        encode(&dir)
    )))
}

pub(super) async fn delete(State(http): State<Http>, form: Posted) -> Result<Response, PageError> {
    let ctx = &form.ctx;
    let path = shown(form.field("path"));
    let parent = path
        .rsplit_once('/')
        .map_or("/", |(p, _)| if p.is_empty() { "/" } else { p });
    if let Err(e) = http.storage.delete(ctx.caller(), &path, None).await {
        let refused = Refused::new(ctx, "delete", form.fields.clone(), e);
        return files_page(&http, ctx, parent, html! {}, Some(&refused)).await;
    }
    Ok(see_other(&format!(
        "/files?path={}&notice=file-deleted",
        encode(parent)
    )))
}
