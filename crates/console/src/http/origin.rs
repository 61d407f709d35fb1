//! Keeps the console's credentials away from users' services.
//!
//! Browsers send a host's cookies to every port of that host, so a session cookie set
//! under the name that the links to containers' published ports use would be sent to
//! every student's service a classmate opens. The console therefore never works with
//! cookies under a host's link address: such a request has its cookies removed and may
//! set none; pages redirect to the canonical URL (`WM_PUBLIC_URL`) or explain why they
//! are not served there; API calls with a bearer token still work. Start-up refuses a
//! public URL whose host is a link address (`Config::check_public_url`). `/healthz` and
//! `/metrics` are left alone.

use super::Http;
use axum::extract::{Request, State};
use axum::http::header::{COOKIE, HOST, LOCATION, SET_COOKIE, STRICT_TRANSPORT_SECURITY};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// `Strict-Transport-Security` of a console behind TLS: a year, this name only (its
/// subdomains may well be users' services over plain HTTP).
const HSTS: &str = "max-age=31536000";

/// The middleware: see the module's comment.
pub(super) async fn guard(State(http): State<Http>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if path == "/healthz" || path == "/metrics" {
        return next.run(req).await;
    }
    let host = req
        .headers()
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_string()));
    let addresses = http.system.link_addresses();
    let misdirected = host
        .as_deref()
        .is_some_and(|h| crate::util::is_link_address(h, addresses.iter().map(String::as_str)));
    if !misdirected {
        let mut resp = next.run(req).await;
        if http.config.behind_tls() {
            resp.headers_mut()
                .insert(STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
        }
        return resp;
    }
    let page_headers = req.headers().clone();
    req.headers_mut().remove(COOKIE);
    let mut resp = if path.starts_with("/api/") || path.starts_with("/assets/") {
        // A bearer token is never sent by a browser on its own; a cookie would have been.
        // The stylesheet and script hold nothing of anyone's: the explanation page needs
        // its style.
        next.run(req).await
    } else {
        let wants_page = matches!(*req.method(), Method::GET | Method::HEAD);
        match (&http.config.public_url, wants_page) {
            (Some(url), true) => {
                let here = req
                    .uri()
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_string();
                let to = format!("{}{here}", url.trim_end_matches('/'));
                match HeaderValue::from_str(&to) {
                    Ok(v) => (StatusCode::FOUND, [(LOCATION, v)]).into_response(),
                    Err(_) => super::web::misdirected_page(&page_headers, None),
                }
            }
            (url, _) => super::web::misdirected_page(&page_headers, url.as_deref()),
        }
    };
    resp.headers_mut().remove(SET_COOKIE);
    resp
}
