//! The one place where errors become HTTP answers.
//!
//! Every answer that is not a success has the shape
//! `{"error": {"code": "<machine_code>", "message": "<human sentence>"}}` (plus `field` when
//! one input was wrong, and `reason` and `params`: the key of the sentence, by which the
//! console says it in the reader's language). A 5xx says nothing internal; the cause chain
//! goes to the log, once.

use super::web::Lang;
use crate::service::{Error, Refusal};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// What an HTTP handler fails with: a use case's error, or one of the transport's own.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error(transparent)]
    Service(#[from] Error),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    MethodNotAllowed(String),
}

/// The error shape of every 4xx and 5xx answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Clone, Serialize, ToSchema)]
pub(crate) struct ErrorDetail {
    code: String,
    message: String,
    /// The input at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    /// Which rule of `field` the input broke (`empty`, `bad_char`, `too_long`, ...), or
    /// which case of the code it is (`container_taken`, ...): with `code` and `field`,
    /// what a client needs to say it in its own words.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// The values the message names (`value`, `char`, `max`, ...), by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    params: Option<std::collections::BTreeMap<String, String>>,
}

impl ApiError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ApiError::Service(e) => service_status(e),
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
        }
    }
}

/// The status of a use case's error.
pub(crate) fn service_status(e: &Error) -> StatusCode {
    match e {
        Error::Invalid { .. } => StatusCode::BAD_REQUEST,
        Error::Unauthenticated | Error::InvalidCredentials => StatusCode::UNAUTHORIZED,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::NotFound { .. } | Error::FileNotFound(_) => StatusCode::NOT_FOUND,
        Error::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Conflict(_) | Error::Ambiguous(_) | Error::Expired { .. } => StatusCode::CONFLICT,
        Error::TooLarge(_) | Error::TooLargeBecause(_) => StatusCode::PAYLOAD_TOO_LARGE,
        Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        Error::Unavailable(_) | Error::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Engine(_) => StatusCode::BAD_GATEWAY,
        Error::EngineRefused { kind, .. } => match kind {
            Refusal::CannotStart => StatusCode::UNPROCESSABLE_ENTITY,
            Refusal::HostNetwork | Refusal::Storage => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::NotFound => StatusCode::NOT_FOUND,
            Refusal::InUse | Refusal::State | Refusal::Other => StatusCode::CONFLICT,
        },
        Error::Quota { .. } | Error::ImageInUse(_) => StatusCode::CONFLICT,
        Error::Quarantined { .. } => StatusCode::CONFLICT,
        Error::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl ApiError {
    pub(crate) fn code(&self) -> &'static str {
        match self {
            ApiError::Service(e) => e.code(),
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
        }
    }

    /// Headers every answer of this error carries, whatever its body (JSON or a page).
    pub(crate) fn headers(&self) -> Vec<(header::HeaderName, HeaderValue)> {
        match self {
            ApiError::Service(Error::Unauthenticated | Error::InvalidCredentials) => {
                vec![(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))]
            }
            ApiError::Service(Error::RateLimited { retry_after_secs }) => {
                vec![(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs))]
            }
            ApiError::Service(Error::Busy(_)) => {
                vec![(header::RETRY_AFTER, HeaderValue::from(5))]
            }
            _ => Vec::new(),
        }
    }

    /// Logs what the administrators must see, once, when the error becomes an answer.
    pub(crate) fn log(&self) {
        if let ApiError::Service(e) = self {
            e.log();
        }
    }

    /// Whether it says nothing but "an internal error occurred".
    pub(crate) fn is_internal(&self) -> bool {
        matches!(self, ApiError::Service(Error::Unexpected(_)))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        self.log();
        let field = match &self {
            ApiError::Service(Error::Invalid { field, .. }) => field.map(str::to_string),
            _ => None,
        };
        let rule = match &self {
            ApiError::Service(e) => e.said().map(|(_, rule)| rule),
            _ => None,
        };
        let detail = ErrorDetail {
            code: self.code().to_string(),
            message: self.to_string(),
            field,
            reason: rule.as_ref().map(|r| r.reason.to_string()),
            params: rule.filter(|r| !r.params.is_empty()).map(|r| {
                r.params
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect()
            }),
        };
        // For `localize`: what the error says in each of the console's other languages.
        let explained = match &self {
            ApiError::Service(e) => Explained(
                Lang::ALL
                    .iter()
                    .filter_map(|&l| l.explain(e).map(|s| (l, s)))
                    .collect(),
            ),
            _ => Explained(Vec::new()),
        };
        let mut resp = (
            status,
            axum::Json(ErrorBody {
                error: detail.clone(),
            }),
        )
            .into_response();
        resp.headers_mut().extend(self.headers());
        // For `localize`, which knows the reader's language.
        resp.extensions_mut().insert(detail);
        resp.extensions_mut().insert(explained);
        resp
    }
}

/// An error's sentences in the languages other than English (see [`Lang::explain`]).
#[derive(Clone)]
struct Explained(Vec<(Lang, String)>);

/// Error answers in the reader's language (`Accept-Language`, or the console's language
/// switch): the message is the sentence of the error's code in that language with, after
/// it, what this error says, keyed by its code, field and reason (`ErrorDetail`); an
/// error whose code says all has only the sentence. English answers as they are.
pub(crate) async fn localize(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let lang = Lang::from_headers(req.headers());
    let resp = next.run(req).await;
    if lang == Lang::En {
        return resp;
    }
    let Some(detail) = resp.extensions().get::<ErrorDetail>().cloned() else {
        return resp;
    };
    let said = resp
        .extensions()
        .get::<Explained>()
        .and_then(|x| x.0.iter().find(|(l, _)| *l == lang))
        .map(|(_, s)| s.clone());
    let message = match (lang.t().error_known(&detail.code), said) {
        (Some(sentence), Some(said)) => format!("{sentence}（{said}）"),
        (Some(sentence), None) => sentence.to_string(),
        (None, Some(said)) => said,
        (None, None) => return resp,
    };
    let (mut parts, _) = resp.into_parts();
    let body = serde_json::to_vec(&ErrorBody {
        error: ErrorDetail { message, ..detail },
    })
    .expect("an error body serializes");
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wm_backend::BackendError;

    #[test]
    fn engine_refusals_answer_by_kind() {
        for (text, status) in [
            (
                "OCI runtime create failed: exec: \"/nope\": no such file or directory",
                422,
            ),
            (
                "Bind for 0.0.0.0:40001 failed: port is already allocated",
                503,
            ),
            ("image has dependent child images", 409),
            ("Container 0123 is not running", 409),
            ("something else entirely", 409),
        ] {
            let e = ApiError::from(Error::from(BackendError::Refused(text.into())));
            assert_eq!(e.status().as_u16(), status, "{text}");
        }
    }
}
