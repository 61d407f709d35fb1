//! The audit log: every call that changes something, with who made it, what it was,
//! when, and how it ended (the HTTP status, written by `crate::http`'s middleware), and
//! the long operations and reconcile findings the use cases write themselves.

use super::accounts::Admin;
use super::Error;
use crate::util::{new_id, now_micros, rfc3339_micros};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use utoipa::ToSchema;
use wm_store::{AuditEntry, Store};

/// Who made a request, as far as it is known: set by the login and by authentication,
/// read when the request's entry is written.
#[derive(Clone, Default)]
pub(crate) struct AuditActor(Arc<Mutex<Option<String>>>);

impl AuditActor {
    pub(crate) fn set(&self, who: &str) {
        *self.0.lock().expect("not poisoned") = Some(who.to_string());
    }

    pub(crate) fn get(&self) -> Option<String> {
        self.0.lock().expect("not poisoned").clone()
    }
}

#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct AuditEntryView {
    pub(crate) at: String,
    pub(crate) actor: Option<String>,
    pub(crate) action: String,
    pub(crate) target: Option<String>,
    /// HTTP status of the answer.
    pub(crate) result: i64,
    pub(crate) detail: Option<String>,
}

/// The audit log.
#[derive(Clone)]
pub(crate) struct Audit {
    store: Store,
}

impl Audit {
    pub(crate) fn new(store: Store) -> Self {
        Self { store }
    }

    /// Writes one entry; a failure to write is logged, never turned into a failed request.
    pub(crate) async fn record(
        &self,
        actor: Option<String>,
        action: String,
        target: Option<String>,
        result: i64,
        detail: Option<String>,
    ) {
        let entry = AuditEntry {
            id: new_id(),
            at: now_micros(),
            actor,
            action,
            target,
            result,
            detail,
        };
        if let Err(e) = self.store.record_audit(&entry).await {
            tracing::error!(error = ?e, "could not write the audit log");
        }
    }

    /// The newest `limit` entries, newest first.
    pub(crate) async fn newest(
        &self,
        _admin: &Admin,
        limit: i64,
    ) -> Result<Vec<AuditEntryView>, Error> {
        let entries = self.store.audit_log(limit).await?;
        Ok(entries
            .into_iter()
            .map(|e| AuditEntryView {
                at: rfc3339_micros(e.at),
                actor: e.actor,
                action: e.action,
                target: e.target,
                result: e.result,
                detail: e.detail,
            })
            .collect())
    }
}
