//! The middleware that writes every call that changes something to the audit log: who
//! made it (as authentication or the login learnt it), the action as a dotted verb
//! (`container.create`), the resource's name, the HTTP status it got and the client's
//! address.

use super::client_addr::client_address;
use super::extract::{presented_token_in, session_cookie_name};
use super::Http;
use crate::service::audit::{AuditActor, RequestRecord};
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use std::net::SocketAddr;

/// The dotted verb of a route (the API's, without `/api/v1`, or a page's form).
fn action(method: &Method, route: &str) -> String {
    let m = method.as_str();
    let known = match (m, route) {
        ("POST", "/login") => "session.login",
        ("POST", "/logout") => "session.logout",
        ("PUT", "/me/password") | ("POST", "/account/password") => "user.password",
        ("POST", "/tokens") | ("POST", "/ci/build-token") => "token.create",
        ("DELETE", "/tokens/{id}") | ("POST", "/account/tokens/revoke") => "token.revoke",
        ("DELETE", "/sessions/{id}") | ("POST", "/account/sessions/end") => "session.end",
        ("POST", "/admin/users") => "user.create",
        ("PATCH", "/admin/users/{name}") | ("POST", "/admin/users/{name}") => "user.update",
        ("DELETE", "/admin/users/{name}") => "user.delete",
        ("PUT", "/admin/users/{name}/quota") | ("POST", "/admin/quota") => "quota.set",
        ("DELETE", "/admin/users/{name}/quota") => "quota.clear",
        ("DELETE", "/admin/users/{name}/storage") => "storage.delete",
        ("POST", "/admin/reconcile") => "host.reconcile",
        ("PATCH", "/admin/hosts/{id}") | ("POST", "/admin/hosts/{id}/drain") => "host.drain",
        ("POST", "/admin/cleanup") => "cleanup.run",
        ("POST", "/admin/images/{ref}/release") | ("POST", "/images/release") => "image.release",
        ("POST", "/containers") | ("POST", "/containers/new") => "container.create",
        ("PATCH", "/containers/{name}") | ("POST", "/containers/{name}/expiry") => {
            "container.expiry"
        }
        ("DELETE", "/containers/{name}") | ("POST", "/containers/{name}/delete") => {
            "container.delete"
        }
        ("POST", "/containers/{name}/files") => "container.upload",
        ("POST", "/images/pull") => "image.pull",
        ("POST", "/images/build") => "image.build",
        ("PATCH", "/images/{ref}") | ("POST", "/images/edit") => "image.update",
        ("DELETE", "/images/{ref}") | ("POST", "/images/delete") => "image.delete",
        ("POST", "/images/{ref}/sif") => "image.sif",
        ("POST", "/storage/files") => "storage.upload",
        ("DELETE", "/storage/files") | ("POST", "/files/delete") => "storage.remove",
        ("PUT", "/ci") | ("POST", "/ci") => "ci.set",
        ("DELETE", "/ci") | ("POST", "/ci/delete") => "ci.delete",
        ("POST", "/courses") => "course.create",
        ("POST", "/courses/{id}/members") => "course.enrol",
        ("DELETE", "/courses/{id}/members/{user}") => "course.unenrol",
        ("GET", "/courses/{id}/containers") => "course.containers",
        ("POST", "/courses/join") => "course.join",
        ("PUT", "/courses/{id}/join-code") | ("POST", "/courses/{id}/join-code") => {
            "course.join_code"
        }
        ("DELETE", "/courses/{id}/join-code") | ("POST", "/courses/{id}/join-code/delete") => {
            "course.join_code_delete"
        }
        ("PUT", "/courses/{id}/images") | ("POST", "/courses/{id}/images") => "course.image",
        ("PUT", "/courses/{id}/quota") => "course.quota",
        ("DELETE", "/courses/{id}/quota") => "course.quota_clear",
        ("GET", "/courses/{id}/containers/{name}") => "container.view",
        ("GET", "/containers/{name}/terminal") => "container.terminal_start",
        _ => "",
    };
    if !known.is_empty() {
        return known.to_string();
    }
    // The rest name their resource first and their verb last:
    // `/containers/{name}/stop` and `/courses/{id}/containers/{name}/stop` are
    // `container.stop`, `/containers/{name}/exec` is `container.exec`.
    let literals: Vec<&str> = route
        .split('/')
        .filter(|s| !s.is_empty() && !s.starts_with('{') && *s != "admin")
        .collect();
    let resource = match literals.as_slice() {
        [.., r, _] | [r] => r.trim_end_matches('s'),
        [] => "request",
    };
    let verb = match (literals.as_slice(), m) {
        ([.., v], _) if literals.len() > 1 => v,
        (_, "POST") => "create",
        (_, "PATCH") => "update",
        (_, "PUT") => "set",
        (_, "DELETE") => "delete",
        _ => "read",
    };
    format!("{resource}.{verb}")
}

/// Whether a request is audited: every one that changes something, every WebSocket
/// session, and every look of a teacher at a member's container.
fn audited(req: &Request, route: &str) -> bool {
    !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        || super::extract::is_websocket_upgrade(req.headers())
        || route.starts_with("/api/v1/courses/{id}/containers")
        || route.starts_with("/courses/{id}/containers/")
}

/// Records every audited request (see [`audited`]).
pub(super) async fn audit_mutations(
    State(http): State<Http>,
    req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    if !audited(&req, route.as_deref().unwrap_or("")) {
        return next.run(req).await;
    }
    let actor = AuditActor::default();
    let mut req = req;
    req.extensions_mut().insert(actor.clone());
    let source = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| client_address(c.0.ip(), req.headers(), &http.config.trusted_proxies));
    // The resource: the last parameter of the path (`{name}`, `{ref}`, `{user}`).
    let (mut parts, body) = req.into_parts();
    let param = RawPathParams::from_request_parts(&mut parts, &http)
        .await
        .ok()
        .and_then(|p| p.iter().last().map(|(_, v)| v.to_string()));
    let req = Request::from_parts(parts, body);
    let action = match &route {
        Some(r) => action(req.method(), r.strip_prefix("/api/v1").unwrap_or(r)),
        None => "request.unmatched".to_string(),
    };
    let request_line = format!(
        "{} {}",
        req.method(),
        req.uri().path_and_query().map_or("", |p| p.as_str())
    );
    // No handler authenticates a request no route took: the entry still says who sent it.
    let token = route
        .is_none()
        .then(|| presented_token_in(req.headers(), session_cookie_name(&http.config)))
        .flatten();
    let resp = next.run(req).await;
    if let Some((token, _)) = token {
        let _ = http
            .accounts
            .authenticate(&token, false, Some(&actor))
            .await;
    }
    let (noted_action, noted_target, noted_detail) = actor.notes();
    http.audit
        .record_request(RequestRecord {
            actor: actor.get(),
            action: noted_action.unwrap_or(action),
            target: param.or(noted_target),
            result: i64::from(resp.status().as_u16()),
            detail: Some(match noted_detail {
                Some(d) => format!("{request_line}: {d}"),
                None => request_line,
            }),
            source,
        })
        .await;
    resp
}

#[cfg(test)]
mod tests {
    use super::action;
    use axum::http::Method;

    #[test]
    fn routes_are_dotted_verbs() {
        let cases = [
            (Method::POST, "/containers", "container.create"),
            (Method::POST, "/containers/{name}/stop", "container.stop"),
            (Method::POST, "/containers/{name}/exec", "container.exec"),
            (
                Method::GET,
                "/containers/{name}/terminal",
                "container.terminal_start",
            ),
            (
                Method::POST,
                "/courses/{id}/containers/{name}/stop",
                "container.stop",
            ),
            (
                Method::GET,
                "/courses/{id}/containers/{name}/logs",
                "container.logs",
            ),
            (Method::POST, "/courses/{id}/members", "course.enrol"),
            (Method::POST, "/courses/join", "course.join"),
            (Method::PUT, "/courses/{id}/join-code", "course.join_code"),
            (
                Method::GET,
                "/courses/{id}/containers/{name}",
                "container.view",
            ),
            (Method::PATCH, "/admin/users/{name}", "user.update"),
            (Method::POST, "/login", "session.login"),
            (Method::POST, "/vms", "vm.create"),
            (Method::DELETE, "/vms/{name}", "vm.delete"),
            (Method::POST, "/vms/{name}/start", "vm.start"),
        ];
        for (m, route, want) in cases {
            assert_eq!(action(&m, route), want, "{m} {route}");
        }
    }
}
