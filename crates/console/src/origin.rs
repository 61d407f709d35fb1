//! Keeps the console's credentials away from users' services.
//!
//! Browsers send a host's cookies to every port of that host, so a session cookie set
//! under the name that the links to containers' published ports use would be sent to
//! every student's service a classmate opens. The console therefore never works with
//! cookies under a host's link address: such a request has its cookies removed and may
//! set none; pages redirect to the canonical URL (`WM_PUBLIC_URL`) or explain why they
//! are not served there; API calls with a bearer token still work. Start-up refuses a
//! public URL whose host is a link address. `/healthz` and `/metrics` are left alone.

use crate::config::{Config, ConfigError};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::header::{COOKIE, HOST, LOCATION, SET_COOKIE, STRICT_TRANSPORT_SECURITY};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// `Strict-Transport-Security` of a console behind TLS: a year, this name only (its
/// subdomains may well be users' services over plain HTTP).
const HSTS: &str = "max-age=31536000";

/// A host as compared here: lowercase, without IPv6 brackets or a final dot.
pub fn normalize(host: &str) -> String {
    host.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// The host of `host[:port]` (or `[v6]:port`), normalized.
pub fn host_without_port(authority: &str) -> String {
    let a = authority.trim();
    let host = if let Some(rest) = a.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else if a.matches(':').count() == 1 {
        a.split(':').next().unwrap_or("")
    } else {
        // No port, or a bare IPv6 address.
        a
    };
    normalize(host)
}

/// Whether `host` (as a request names it) is one of the link `addresses`.
pub fn is_link_address<'a>(host: &str, mut addresses: impl Iterator<Item = &'a str>) -> bool {
    let host = host_without_port(host);
    !host.is_empty() && addresses.any(|a| host_without_port(a) == host)
}

/// Refuses a public URL whose host is where published ports are linked: the browser
/// would send the console's cookies to every container.
pub fn check_public_url(config: &Config, addresses: &[String]) -> Result<(), ConfigError> {
    let Some(public) = config.public_host() else {
        return Ok(());
    };
    match addresses.iter().find(|a| host_without_port(a) == public) {
        Some(a) => Err(ConfigError::new(format!(
            "WM_PUBLIC_URL (public_url) has the host {public}, which is also the address \
             links to containers' published ports use ({a}, from WM_HOST_ADDRESS / \
             docker.address, or the host of an agent's URL in WM_AGENTS): browsers would \
             send the console's session to every container. Serve the console under \
             another name, or give the hosts another WM_HOST_ADDRESS"
        ))),
        None => Ok(()),
    }
}

/// The middleware: see the module's comment.
pub async fn guard(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
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
    let addresses: Vec<String> = state.hosts.all().iter().map(|h| h.address()).collect();
    let misdirected = host
        .as_deref()
        .is_some_and(|h| is_link_address(h, addresses.iter().map(String::as_str)));
    if !misdirected {
        let mut resp = next.run(req).await;
        if state.config.behind_tls() {
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
        match (&state.config.public_url, wants_page) {
            (Some(url), true) => {
                let here = req
                    .uri()
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_string();
                let to = format!("{}{here}", url.trim_end_matches('/'));
                match HeaderValue::from_str(&to) {
                    Ok(v) => (StatusCode::FOUND, [(LOCATION, v)]).into_response(),
                    Err(_) => crate::web::misdirected_page(&page_headers, None),
                }
            }
            (url, _) => crate::web::misdirected_page(&page_headers, url.as_deref()),
        }
    };
    resp.headers_mut().remove(SET_COOKIE);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_compare_without_port_case_or_brackets() {
        assert_eq!(host_without_port("VM:8080"), "vm");
        assert_eq!(host_without_port("[::1]:80"), "::1");
        assert_eq!(host_without_port("::1"), "::1");
        assert_eq!(host_without_port("192.0.2.2"), "192.0.2.2");
        assert_eq!(host_without_port("wm.example.org.:443"), "wm.example.org");
        let links = ["127.0.0.1", "Blade1"];
        assert!(is_link_address("127.0.0.1:4000", links.into_iter()));
        assert!(is_link_address("blade1", links.into_iter()));
        assert!(!is_link_address("localhost:4000", links.into_iter()));
        assert!(!is_link_address("", links.into_iter()));
    }
}
