//! Multipart forms of the API and the pages alike: uploads into a container and image
//! builds. Forms from the web console must start with a `csrf` field that the page
//! accepts, before anything else is read.

use super::ApiError;
use crate::service::containers::{parse_upload_name, SpoolFile, TempFiles};
use crate::service::images::{BuildInput, BuildSource};
use crate::service::Error;
use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::extract::Multipart;
use axum::http::StatusCode;

/// Fields of a form besides its files (`csrf`, `path`, ...): more is a flood, not a form.
const FORM_MAX_FIELDS: usize = 8;

/// The check of a web form's `csrf` field.
pub(super) type Csrf<'a> = Option<&'a (dyn Fn(&str) -> bool + Sync)>;

/// The request's multipart form, or 415 saying to send `what` as one.
pub(super) fn multipart_form(
    multipart: Result<Multipart, MultipartRejection>,
    what: &str,
) -> Result<Multipart, ApiError> {
    multipart.map_err(|e| {
        ApiError::UnsupportedMediaType(format!(
            "send the {what} as multipart/form-data ({})",
            e.body_text()
        ))
    })
}

/// A multipart error as the user's error: too large, or not a form.
fn multipart_error(e: MultipartError, limit: usize) -> Error {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Error::TooLarge(limit)
    } else {
        Error::refused(
            "invalid_input",
            None,
            "not_multipart",
            [("why", e.body_text())],
            format!(
                "the form is not valid multipart/form-data: {}",
                e.body_text()
            ),
        )
    }
}

/// A form field the form does not have; `expected` names the ones it has, `send` says
/// it in English.
fn unexpected_field(name: &str, expected: &str, send: &str) -> Error {
    let name: String = name.chars().take(64).collect();
    Error::refused(
        "invalid_input",
        None,
        "unexpected_field",
        [("name", name.clone()), ("expected", expected.to_string())],
        format!("unexpected form field {name:?}; {send}"),
    )
}

/// The error for a form with more parts than it may have.
fn too_many_parts(max_files: usize) -> Error {
    Error::refused(
        "too_many_files",
        Some("file"),
        "too_many_parts",
        [
            ("max", max_files.to_string()),
            ("fields", FORM_MAX_FIELDS.to_string()),
        ],
        format!(
            "the form has too many parts: at most {max_files} files and {FORM_MAX_FIELDS} other fields at once"
        ),
    )
}

/// Reads the `csrf` field a web form starts with; refuses the form without it.
async fn check_csrf(form: &mut Multipart, csrf: Csrf<'_>, limit: usize) -> Result<(), Error> {
    let Some(accept) = csrf else {
        return Ok(());
    };
    let field = form
        .next_field()
        .await
        .map_err(|e| multipart_error(e, limit))?;
    let ok = match field {
        Some(f) if f.name() == Some("csrf") => {
            accept(&f.text().await.map_err(|e| multipart_error(e, limit))?)
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(Error::forbidden(
            "csrf",
            [],
            "the form's security token is missing or wrong; reload the page",
        ))
    }
}

/// An upload form: `path` (and `create`), then one or more `file` parts, each spooled to
/// a temporary file as it arrives. A flood of parts, a name that would leave the
/// directory or a total past `limit` ends the form before anything is written into the
/// container.
pub(super) struct Upload {
    pub(super) dir: String,
    /// Whether the directory is to be made when it does not exist (`create` is `true`
    /// or `on`, a checked box): a container's directory; storage makes its own always.
    pub(super) create: bool,
    pub(super) files: Vec<(String, SpoolFile)>,
}

pub(super) async fn read_upload(
    mut form: Multipart,
    csrf: Csrf<'_>,
    temp: &TempFiles,
    limit: usize,
    max_files: usize,
) -> Result<Upload, Error> {
    check_csrf(&mut form, csrf, limit).await?;
    let mut dir = None;
    let mut create = false;
    let mut files: Vec<(String, SpoolFile)> = Vec::new();
    let mut total = 0usize;
    let mut fields = 0usize;
    while let Some(mut field) = form
        .next_field()
        .await
        .map_err(|e| multipart_error(e, limit))?
    {
        // Before anything of the part is kept: a flood of parts ends here, having
        // changed nothing.
        if field.name() == Some("file") {
            if files.len() >= max_files {
                return Err(too_many_parts(max_files));
            }
        } else {
            fields += 1;
            if fields > FORM_MAX_FIELDS {
                return Err(too_many_parts(max_files));
            }
        }
        match field.name() {
            Some("path") => {
                dir = Some(field.text().await.map_err(|e| multipart_error(e, limit))?);
            }
            Some("create") => {
                let v = field.text().await.map_err(|e| multipart_error(e, limit))?;
                create = matches!(v.as_str(), "true" | "on");
            }
            Some("file") => {
                let name = parse_upload_name(field.file_name().unwrap_or(""))?;
                if files.iter().any(|(n, _)| *n == name) {
                    return Err(Error::refused(
                        "invalid_file_name",
                        Some("file"),
                        "twice",
                        [("name", name.clone())],
                        format!("the file {name} is given twice"),
                    ));
                }
                let chunks = futures::stream::poll_fn(|cx| {
                    use futures::Stream;
                    std::pin::Pin::new(&mut field)
                        .poll_next(cx)
                        .map(|c| c.map(|r| r.map_err(|e| multipart_error(e, limit))))
                });
                let file = temp
                    .spool(Box::pin(chunks), |n| {
                        total += n;
                        if total > limit {
                            Err(Error::TooLarge(limit))
                        } else {
                            Ok(())
                        }
                    })
                    .await?;
                files.push((name, file));
            }
            other => {
                return Err(unexpected_field(
                    other.unwrap_or(""),
                    "path, file",
                    "send path and file",
                ))
            }
        }
    }
    let dir = dir.ok_or_else(|| {
        Error::broke(
            "path",
            "no_field",
            [],
            "the form has no path field (the directory to write into)",
        )
    })?;
    Ok(Upload { dir, create, files })
}

/// A build form: `name`, `dockerfile` (text) or `context` (an archive), any number of
/// `buildarg`, and `host`. The web console's form always sends both inputs: there an
/// empty one is one not used, and a context file wins over the text.
pub(super) async fn read_build(
    mut form: Multipart,
    csrf: Csrf<'_>,
    limit: usize,
    max_files: usize,
) -> Result<BuildInput, Error> {
    check_csrf(&mut form, csrf, limit).await?;
    let too_big = |e| multipart_error(e, limit);
    let from_web = csrf.is_some();
    let mut input = BuildInput {
        name: String::new(),
        source: None,
        build_args: Vec::new(),
        host: None,
    };
    // Build arguments and fields together: a flood of parts ends before it costs much.
    let max_parts = max_files + FORM_MAX_FIELDS;
    let mut parts = 0usize;
    while let Some(mut field) = form.next_field().await.map_err(too_big)? {
        parts += 1;
        if parts > max_parts {
            return Err(too_many_parts(max_files));
        }
        match field.name().unwrap_or("") {
            "name" => input.name = field.text().await.map_err(too_big)?,
            "host" => input.host = Some(field.text().await.map_err(too_big)?.trim().to_string()),
            "dockerfile" | "context" if input.source.is_some() && !from_web => {
                return Err(Error::refused(
                    "invalid_input",
                    None,
                    "one_source",
                    [],
                    "send either dockerfile or context, once",
                ))
            }
            "dockerfile" => {
                let text = field.text().await.map_err(too_big)?;
                if text.trim().is_empty() && from_web {
                    continue;
                }
                if text.trim().is_empty() {
                    return Err(Error::broke(
                        "dockerfile",
                        "empty",
                        [],
                        "the Dockerfile is empty",
                    ));
                }
                input.source = Some(BuildSource::Text(text));
            }
            "context" => {
                let mut buf = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(too_big)? {
                    if buf.len() + chunk.len() > limit {
                        return Err(Error::TooLarge(limit));
                    }
                    buf.extend_from_slice(&chunk);
                }
                if buf.is_empty() && from_web {
                    continue;
                }
                input.source = Some(BuildSource::Archive(buf));
            }
            "buildarg" => input.build_args.push(field.text().await.map_err(too_big)?),
            other => {
                return Err(unexpected_field(
                    other,
                    "name, dockerfile, context, buildarg, host",
                    "send name, dockerfile or context, buildarg, and host",
                ))
            }
        }
    }
    Ok(input)
}

/// A VM image upload: `name`, and one `file` part spooled to a temporary file as it
/// arrives; past `limit` bytes the form ends, having kept nothing.
pub(super) struct VmImageUpload {
    pub(super) name: String,
    pub(super) file: SpoolFile,
}

pub(super) async fn read_vm_image(
    mut form: Multipart,
    csrf: Csrf<'_>,
    temp: &TempFiles,
    limit: usize,
) -> Result<VmImageUpload, Error> {
    check_csrf(&mut form, csrf, limit).await?;
    let mut name = None;
    let mut file = None;
    let mut fields = 0usize;
    while let Some(mut field) = form
        .next_field()
        .await
        .map_err(|e| multipart_error(e, limit))?
    {
        fields += 1;
        if fields > FORM_MAX_FIELDS {
            return Err(too_many_parts(1));
        }
        match field.name() {
            Some("name") => {
                name = Some(field.text().await.map_err(|e| multipart_error(e, limit))?);
            }
            Some("file") if file.is_none() => {
                let chunks = futures::stream::poll_fn(|cx| {
                    use futures::Stream;
                    std::pin::Pin::new(&mut field)
                        .poll_next(cx)
                        .map(|c| c.map(|r| r.map_err(|e| multipart_error(e, limit))))
                });
                let mut total = 0usize;
                file = Some(
                    temp.spool(Box::pin(chunks), |n| {
                        total += n;
                        if total > limit {
                            Err(Error::TooLarge(limit))
                        } else {
                            Ok(())
                        }
                    })
                    .await?,
                );
            }
            Some("file") => return Err(too_many_parts(1)),
            other => {
                return Err(unexpected_field(
                    other.unwrap_or(""),
                    "name, file",
                    "send name and file",
                ))
            }
        }
    }
    let name = name.ok_or_else(|| {
        Error::broke(
            "name",
            "no_field",
            [],
            "the form has no name field (the image's name)",
        )
    })?;
    let file = file.ok_or_else(|| Error::broke("file", "none", [], "the form has no file"))?;
    Ok(VmImageUpload { name, file })
}

/// The parts of an upload, for the API document: [`read_upload`] reads them as they come.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documentation of the form's parts, never built
pub(super) struct UploadForm {
    /// The directory to write into, before the files.
    #[schema(min_length = 1, max_length = 4096, pattern = r"^[^\x00-\x1f\x7f]+$")]
    path: String,
    /// `true` to make the directory (and those above it) when it does not exist in the
    /// container; without it, a missing directory is refused (400, field `path`). Storage
    /// makes its directories always.
    create: Option<bool>,
    /// One or more files (each part's file name is kept).
    #[schema(value_type = Vec<String>, format = Binary, min_items = 1)]
    file: Vec<Vec<u8>>,
}

/// The parts of an upload into the user's storage, for the API document: as
/// [`UploadForm`], with the storage's path rule (added in `system::add_rules`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documentation of the form's parts, never built
pub(super) struct StorageUploadForm {
    /// The directory in the storage to write into (made if missing), before the files.
    path: String,
    /// One or more files (each part's file name is kept).
    #[schema(value_type = Vec<String>, format = Binary, min_items = 1)]
    file: Vec<Vec<u8>>,
}

/// The parts of a VM image upload, for the API document: [`read_vm_image`] reads them as
/// they come.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documentation of the form's parts, never built
pub(super) struct VmImageForm {
    /// The image's name: a DNS label, before the file.
    name: String,
    /// The image: qcow2 or raw.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// The parts of a build, for the API document: [`read_build`] reads them as they come.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documentation of the form's parts, never built
pub(super) struct BuildForm {
    /// `NAME[:TAG]` in the caller's namespace, e.g. `web` or `web:1`.
    #[schema(
        max_length = 128,
        pattern = r"^[a-z0-9]+([._-][a-z0-9]+)*(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?$"
    )]
    name: String,
    /// The Dockerfile's text, when no `context` is sent.
    dockerfile: Option<String>,
    /// A tar or tar.gz archive of the context, with its Dockerfile.
    #[schema(value_type = Option<String>, format = Binary)]
    context: Option<Vec<u8>>,
    /// Build arguments, `KEY=value`, any number.
    buildarg: Option<Vec<String>>,
    /// Build on this host only.
    host: Option<String>,
}
