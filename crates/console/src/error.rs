//! The one place where errors become HTTP answers.
//!
//! Every answer that is not a success has the shape
//! `{"error": {"code": "<machine_code>", "message": "<human sentence>"}}` (plus `field` when
//! one input was wrong). A 5xx says nothing internal; the cause chain goes to the log, once.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use wm_backend::BackendError;
use wm_domain::ParseError;
use wm_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Input that does not parse; `field` names it where one field is at fault.
    #[error("{message}")]
    Invalid {
        code: &'static str,
        message: String,
        field: Option<&'static str>,
    },
    #[error("authentication required: log in or send a bearer token")]
    Unauthenticated,
    #[error("wrong user name or password")]
    InvalidCredentials,
    #[error("{0}")]
    Forbidden(String),
    /// Also what another user's resource looks like.
    #[error("{what} not found")]
    NotFound { code: &'static str, what: String },
    #[error("{0}")]
    Conflict(String),
    /// A full name that several owners' containers share, asked for by an administrator
    /// without saying whose (`?owner=`).
    #[error("{0}")]
    Ambiguous(String),
    #[error("the request body is larger than the limit of {0} bytes")]
    TooLarge(usize),
    /// Too large for a reason the sentence names (an unpacked build context).
    #[error("{0}")]
    TooLargeBecause(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Too many failed logins for the user name or the address; try again later.
    #[error("too many failed logins; try again in {retry_after_secs} seconds")]
    RateLimited { retry_after_secs: u64 },
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The server is at one of its own limits for a moment (temporary upload files);
    /// answered 503 with `Retry-After`.
    #[error("{0}")]
    Busy(String),
    /// A dependency (the container engine) cannot be used right now.
    #[error("{0}")]
    Unavailable(String),
    #[error("the container engine failed; the administrators can find the details in the log")]
    Engine(String),
    /// The engine refused a request: a fixed sentence by kind ([`engine_refusal`]); the
    /// engine's own text, which names runtimes, drivers and paths, goes only to the log.
    #[error("{message}")]
    EngineRefused {
        status: StatusCode,
        code: &'static str,
        message: &'static str,
        detail: String,
    },
    #[error("an internal error occurred; the administrators can find the details in the log")]
    Unexpected(#[source] anyhow::Error),
}

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid {
            code: "invalid_input",
            message: message.into(),
            field: None,
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound {
            code: "not_found",
            what: what.into(),
        }
    }

    pub fn http_status_code(&self) -> StatusCode {
        match self {
            ApiError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated | ApiError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) | ApiError::Ambiguous(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) | ApiError::TooLargeBecause(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable(_) | ApiError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Engine(_) => StatusCode::BAD_GATEWAY,
            ApiError::EngineRefused { status, .. } => *status,
            ApiError::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Headers every answer of this error carries, whatever its body (JSON or a page).
    pub fn headers(&self) -> Vec<(header::HeaderName, HeaderValue)> {
        match self {
            ApiError::Unauthenticated | ApiError::InvalidCredentials => {
                vec![(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))]
            }
            ApiError::RateLimited { retry_after_secs } => {
                vec![(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs))]
            }
            ApiError::Busy(_) => vec![(header::RETRY_AFTER, HeaderValue::from(5))],
            _ => Vec::new(),
        }
    }

    /// Logs what the administrators must see, once, when the error becomes an answer.
    pub fn log(&self) {
        match self {
            ApiError::Unexpected(e) => tracing::error!(error = ?e, "request failed"),
            ApiError::Engine(m) => tracing::error!(engine_error = %m, "container engine error"),
            ApiError::EngineRefused { code, detail, .. } => {
                tracing::warn!(code, engine_error = %detail, "the container engine refused")
            }
            ApiError::Unavailable(m) => tracing::warn!(%m, "dependency unavailable"),
            ApiError::Busy(m) => tracing::warn!(%m, "at a limit"),
            _ => {}
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Invalid { code, .. } => code,
            ApiError::Unauthenticated => "unauthenticated",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound { code, .. } => code,
            ApiError::Conflict(_) => "conflict",
            ApiError::Ambiguous(_) => "ambiguous_name",
            ApiError::TooLarge(_) | ApiError::TooLargeBecause(_) => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Busy(_) => "busy",
            ApiError::Engine(_) => "engine_error",
            ApiError::EngineRefused { code, .. } => code,
            ApiError::Unexpected(_) => "internal",
        }
    }
}

impl From<ParseError> for ApiError {
    fn from(e: ParseError) -> Self {
        Self::Invalid {
            code: "invalid_input",
            message: e.message,
            field: Some(e.field),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => ApiError::Conflict(format!("{what} exists already")),
            other => ApiError::Unexpected(other.into()),
        }
    }
}

impl From<BackendError> for ApiError {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::Unavailable(why) => ApiError::Unavailable(format!(
                "the container host is unavailable ({why}); try again later"
            )),
            BackendError::Exhausted(why) => ApiError::Unavailable(why),
            BackendError::NoSuchContainer => ApiError::not_found("container"),
            BackendError::NoSuchImage(r) => ApiError::NotFound {
                code: "image_not_found",
                what: format!("image {r}"),
            },
            // The engine's text names its objects; the sentence stays ours.
            BackendError::NameTaken(_) => ApiError::Conflict(
                "the host already has a container or network of that name that is not yours; ask an administrator".into(),
            ),
            BackendError::Policy(m) => ApiError::Invalid {
                code: "policy",
                message: m,
                field: None,
            },
            BackendError::Refused(m) => engine_refusal(m),
            BackendError::Engine(m) => ApiError::Engine(m),
        }
    }
}

/// What an engine's refusal means for the user, sorted by kind from the engine's text.
pub fn engine_refusal(detail: String) -> ApiError {
    let m = detail.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| m.contains(n));
    let (status, code, message) = if has(&[
        "oci runtime",
        "runtime create failed",
        "starting container process",
        "executable file not found",
        "exec format error",
        "no such file or directory",
        "permission denied",
    ]) {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "container_start_failed",
            "the container could not start: its image's command cannot be run (check the image's ENTRYPOINT and CMD)",
        )
    } else if has(&[
        "driver failed programming",
        "port is already allocated",
        "address already in use",
        "network",
        "iptables",
    ]) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "host_network_failed",
            "the host could not set up the container's network or ports; try again, and tell an administrator if it goes on",
        )
    } else if has(&[
        "being used",
        "dependent child images",
        "unable to remove",
        "unable to delete",
    ]) {
        (
            StatusCode::CONFLICT,
            "image_in_use",
            "the image is in use by a container or by images built from it",
        )
    } else if has(&[
        "no such image",
        "pull access denied",
        "manifest unknown",
        "repository does not exist",
        "not found",
    ]) {
        (
            StatusCode::NOT_FOUND,
            "image_not_found",
            "the image was not found on the host or in its registry",
        )
    } else if has(&[
        "is not running",
        "is paused",
        "is restarting",
        "already in progress",
        "is already",
    ]) {
        (
            StatusCode::CONFLICT,
            "container_state",
            "the container is not in a state that allows this now; reload and try again",
        )
    } else {
        (
            StatusCode::CONFLICT,
            "engine_refused",
            "the container engine refused the request; the administrators can find the details in the log",
        )
    };
    ApiError::EngineRefused {
        status,
        code,
        message,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_refusals_say_nothing_of_the_engine() {
        for (text, code) in [
            ("failed to create shim: OCI runtime create failed: runc create failed: unable to start container process: exec: \"/nope\": stat /nope: no such file or directory: unknown", "container_start_failed"),
            ("driver failed programming external connectivity on endpoint x (abc): Bind for 0.0.0.0:40001 failed: port is already allocated", "host_network_failed"),
            ("conflict: unable to delete 0123 (cannot be forced) - image has dependent child images", "image_in_use"),
            ("Container 0123 is not running", "container_state"),
            ("something else entirely from dockerd", "engine_refused"),
        ] {
            let e = ApiError::from(BackendError::Refused(text.into()));
            assert_eq!(e.code(), code, "{text}");
            let shown = e.to_string();
            for word in ["OCI", "runtime", "runc", "driver", "0.0.0.0", "dockerd", "0123"] {
                assert!(!shown.contains(word), "{shown}");
            }
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.http_status_code();
        self.log();
        let field = match &self {
            ApiError::Invalid { field, .. } => *field,
            _ => None,
        };
        let body = Body {
            error: Inner {
                code: self.code(),
                message: self.to_string(),
                field,
            },
        };
        let mut resp = (status, axum::Json(body)).into_response();
        resp.headers_mut().extend(self.headers());
        resp
    }
}
