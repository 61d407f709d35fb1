//! The middleware that writes every call that changes something to the audit log, with
//! who made it (as authentication or the login learnt it) and the HTTP status it got.

use super::Http;
use crate::service::audit::AuditActor;
use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

/// Records every request whose method changes state, and every WebSocket session
/// (`GET /api/v1/containers/{name}/terminal`, answered 101 when it opened).
pub(super) async fn audit_mutations(
    State(http): State<Http>,
    mut req: Request,
    next: Next,
) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        && !super::extract::is_websocket_upgrade(req.headers())
    {
        return next.run(req).await;
    }
    let actor = AuditActor::default();
    req.extensions_mut().insert(actor.clone());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let action = format!("{} {route}", req.method());
    let target = req.uri().path().to_string();
    let resp = next.run(req).await;
    http.audit
        .record(
            actor.get(),
            action,
            Some(target),
            i64::from(resp.status().as_u16()),
            None,
        )
        .await;
    resp
}
