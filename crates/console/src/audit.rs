//! The audit log: every call that changes something, with who made it, what it was,
//! when, and how it ended (the HTTP status).

use crate::auth::AuditActor;
use crate::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use wm_store::AuditEntry;

/// Writes one entry; a failure to write is logged, never turned into a failed request.
pub async fn record(
    state: &AppState,
    actor: Option<String>,
    action: String,
    target: Option<String>,
    result: i64,
    detail: Option<String>,
) {
    let entry = AuditEntry {
        id: crate::new_id(),
        at: crate::now_micros(),
        actor,
        action,
        target,
        result,
        detail,
    };
    if let Err(e) = state.store.record_audit(&entry).await {
        tracing::error!(error = ?e, "could not write the audit log");
    }
}

/// Middleware: records every request whose method changes state.
pub async fn audit_mutations(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
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
    let who = actor.0.lock().expect("not poisoned").clone();
    record(
        &state,
        who,
        action,
        Some(target),
        i64::from(resp.status().as_u16()),
        None,
    )
    .await;
    resp
}
