//! Extractors whose rejections answer in the API's error shape instead of axum's plain
//! text.

use super::{ApiError, Http};
use crate::service::accounts::{Admin, Caller};
use crate::service::audit::AuditActor;
use crate::service::Error;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use serde::de::DeserializeOwned;

/// A JSON body: an object, whose fields the type names. Malformed JSON, another kind of
/// value (serde would take an array for a struct's fields in order), wrong types, unknown
/// fields and oversized bodies are 4xx answers that name the problem.
pub(crate) struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let value = match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(v)) => v,
            Err(rejection) => return Err(json_rejection(rejection)),
        };
        if !value.is_object() {
            return Err(Error::refused(
                "invalid_input",
                None,
                "not_an_object",
                [],
                "the body must be a JSON object",
            )
            .into());
        }
        serde_json::from_value(value)
            .map(Self)
            .map_err(|e| body_error(e.to_string()).into())
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    let e = match r {
        JsonRejection::JsonDataError(e) => body_error(inner_message(&e.body_text())),
        JsonRejection::JsonSyntaxError(e) => {
            let why = inner_message(&e.body_text());
            Error::refused(
                "malformed_json",
                None,
                "syntax",
                [("why", why.clone())],
                format!("the body is not valid JSON: {why}"),
            )
        }
        JsonRejection::MissingJsonContentType(_) => {
            return ApiError::UnsupportedMediaType(
                "send the body as JSON with Content-Type: application/json".into(),
            )
        }
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Error::TooLarge(super::JSON_BODY_LIMIT)
        }
        other => body_error(other.body_text()),
    };
    e.into()
}

/// A body or query that does not have the shape the operation takes; `why` is serde's
/// sentence, which names the field and the position.
fn body_error(why: String) -> Error {
    Error::refused("invalid_input", None, "shape", [("why", why.clone())], why)
}

/// axum prefixes serde's message with its own sentence; keep serde's part, which names
/// the field and the position.
fn inner_message(text: &str) -> String {
    text.split_once(": ")
        .map_or(text, |(_, rest)| rest)
        .to_string()
}

/// A query string, with 400 answers in the API's shape.
pub(crate) struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Self(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                Err(body_error(inner_message(&e.body_text())).into())
            }
            Err(other) => Err(body_error(other.body_text()).into()),
        }
    }
}

/// The session cookie's name, the one place it is spelt. Behind TLS it carries the
/// `__Host-` prefix ([`session_cookie_name`]): browsers then accept it only when `Secure`,
/// for the whole host and no other, so no plain-HTTP service can set or read it.
macro_rules! session_cookie {
    () => {
        "wm_session"
    };
}
pub(crate) const SESSION_COOKIE: &str = session_cookie!();
const HOST_SESSION_COOKIE: &str = concat!("__Host-", session_cookie!());

/// The name of the session cookie under `config`.
pub(crate) fn session_cookie_name(config: &crate::config::Config) -> &'static str {
    if config.behind_tls() {
        HOST_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

/// The session cookie: `SameSite=Strict`, so no request started by another site (a
/// crafted link included) carries it; `__Host-` and `Secure` behind TLS.
pub(crate) fn session_cookie(
    config: &crate::config::Config,
    value: &str,
    max_age: u64,
) -> axum::http::HeaderValue {
    let secure = if config.behind_tls() { "; Secure" } else { "" };
    let name = session_cookie_name(config);
    axum::http::HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("cookie characters are ASCII")
}

/// The value of the cookie `name`, if the request sent it.
pub(crate) fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The token sent with the request: bearer first, then the session cookie.
pub(crate) fn presented_token(parts: &Parts, cookie_name: &str) -> Option<(String, bool)> {
    presented_token_in(&parts.headers, cookie_name)
}

/// [`presented_token`] from the headers alone.
pub(crate) fn presented_token_in(
    headers: &axum::http::HeaderMap,
    cookie_name: &str,
) -> Option<(String, bool)> {
    if let Some(v) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        if let Some(t) = v.strip_prefix("Bearer ") {
            return Some((t.trim().to_string(), false));
        }
    }
    cookie(headers, cookie_name).map(|v| (v, true))
}

/// A request that asks to become a WebSocket.
pub(crate) fn is_websocket_upgrade(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// A cookie-authenticated request that changes something must come from our own pages:
/// when the browser names an origin, its host must be ours.
pub(crate) fn same_origin(parts: &Parts) -> bool {
    let Some(origin) = parts.headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = parts.headers.get(HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, h)| h);
    matches!((origin_host, host), (Some(o), Some(h)) if o == h)
}

/// An authenticated caller; 401 without a valid token, 403 for a cookie sent with a
/// cross-origin request that changes something.
impl FromRequestParts<Http> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, http: &Http) -> Result<Self, ApiError> {
        let (token, from_cookie) = presented_token(parts, session_cookie_name(&http.config))
            .ok_or(Error::Unauthenticated)?;
        // A WebSocket handshake is a GET that opens a session: a cookie may not open one
        // from another site's page (cross-site WebSocket hijacking).
        let unsafe_method = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS)
            || is_websocket_upgrade(&parts.headers);
        let cross_origin_write = from_cookie && unsafe_method && !same_origin(parts);
        let actor = parts.extensions.get::<AuditActor>();
        Ok(http
            .accounts
            .authenticate(&token, cross_origin_write, actor)
            .await?)
    }
}

/// An administrator: the only way to reach admin handlers. Others get 403.
impl FromRequestParts<Http> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, http: &Http) -> Result<Self, ApiError> {
        Ok(Admin::check(
            &Caller::from_request_parts(parts, http).await?,
        )?)
    }
}
