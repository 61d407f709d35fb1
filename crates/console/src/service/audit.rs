//! The audit log: every call that changes something, with who made it, what it was (a
//! dotted verb: `container.create`, `course.enrol`, `user.disable`), on which resource,
//! from which address, when, and how it ended (the HTTP status, written by
//! `crate::http`'s middleware), and the long operations and reconcile findings the use
//! cases write themselves.

use super::accounts::Admin;
use super::Error;
use crate::util::{new_id, now_micros, rfc3339_micros};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use utoipa::ToSchema;
use wm_store::{AuditEntry, AuditFilter, Store};

/// What a request's entry will say, as far as it is known: who made it (set by the login
/// and by authentication), and what a handler adds (the resource it created, a more
/// precise action, the command it ran). Read when the request's entry is written.
#[derive(Clone, Default)]
pub(crate) struct AuditActor(Arc<Mutex<Notes>>);

#[derive(Default)]
struct Notes {
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    detail: Option<String>,
}

impl AuditActor {
    fn with<T>(&self, f: impl FnOnce(&mut Notes) -> T) -> T {
        f(&mut self.0.lock().expect("not poisoned"))
    }

    pub(crate) fn set(&self, who: &str) {
        self.with(|n| n.actor = Some(who.to_string()));
    }

    pub(crate) fn get(&self) -> Option<String> {
        self.with(|n| n.actor.clone())
    }

    /// A more precise action than the route's (`user.disable` for a user's update).
    pub(crate) fn set_action(&self, action: &str) {
        self.with(|n| n.action = Some(action.to_string()));
    }

    /// The resource, where the path does not name it (what a create made).
    pub(crate) fn set_target(&self, target: &str) {
        self.with(|n| n.target = Some(target.to_string()));
    }

    /// What was done, in a few words (the command run).
    pub(crate) fn set_detail(&self, detail: String) {
        self.with(|n| n.detail = Some(detail));
    }

    /// The action, target and detail handlers set.
    pub(crate) fn notes(&self) -> (Option<String>, Option<String>, Option<String>) {
        self.with(|n| (n.action.clone(), n.target.clone(), n.detail.clone()))
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
    /// The client's address, for entries of requests.
    pub(crate) source: Option<String>,
}

/// Which entries to read (`GET /api/v1/admin/audit`): every field given narrows it.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    /// Who acted (a user name).
    pub(crate) actor: Option<String>,
    /// A dotted verb (`container.stop`), or a prefix ending in `.` (`course.`).
    pub(crate) action: Option<String>,
    /// The resource's name.
    pub(crate) target: Option<String>,
    /// RFC 3339: entries at or after.
    pub(crate) since: Option<String>,
    /// RFC 3339: entries before.
    pub(crate) until: Option<String>,
    /// At most 1000 (the export: 100000); default 100 (the export: 10000).
    pub(crate) limit: Option<u32>,
    /// An entry's `at`: the page of entries older than it (page backwards with the last
    /// `at` of the page before).
    pub(crate) before: Option<String>,
}

/// What a request's entry says, as the HTTP middleware learnt it.
pub(crate) struct RequestRecord {
    pub(crate) actor: Option<String>,
    pub(crate) action: String,
    pub(crate) target: Option<String>,
    pub(crate) result: i64,
    pub(crate) detail: Option<String>,
    pub(crate) source: Option<IpAddr>,
}

/// An RFC 3339 time of a filter, in Unix microseconds.
fn micros(value: Option<&str>, field: &'static str) -> Result<Option<i64>, Error> {
    value
        .map(|v| {
            time::OffsetDateTime::parse(v.trim(), &time::format_description::well_known::Rfc3339)
                .map(|t| (t.unix_timestamp_nanos() / 1000) as i64)
                .map_err(|_| {
                    Error::broke(
                        field,
                        "not_a_time",
                        [],
                        format!("{field} is a date and time like 2026-04-01T09:00:00+09:00"),
                    )
                })
        })
        .transpose()
}

/// A filter value: at most 256 characters, empty as absent.
fn filter_text(value: Option<String>, field: &'static str) -> Result<Option<String>, Error> {
    match value {
        Some(v) if v.chars().count() > 256 => Err(Error::broke(
            field,
            "too_long",
            [],
            format!("{field} is at most 256 characters"),
        )),

        Some(v) if v.trim().is_empty() => Ok(None),
        other => Ok(other),
    }
}

impl AuditQuery {
    /// The store's filter; `max` and `default` bound the number of entries.
    fn filter(self, default: u32, max: u32) -> Result<AuditFilter, Error> {
        let until = micros(self.until.as_deref(), "until")?;
        let before = micros(self.before.as_deref(), "before")?;
        Ok(AuditFilter {
            actor: filter_text(self.actor, "actor")?,
            action: filter_text(self.action, "action")?,
            target: filter_text(self.target, "target")?,
            since: micros(self.since.as_deref(), "since")?,
            until: match (until, before) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            limit: i64::from(self.limit.unwrap_or(default).clamp(1, max)),
        })
    }
}

fn view(e: AuditEntry) -> AuditEntryView {
    AuditEntryView {
        at: rfc3339_micros(e.at),
        actor: e.actor,
        action: e.action,
        target: e.target,
        result: e.result,
        detail: e.detail,
        source: e.source,
    }
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
        self.write(AuditEntry {
            id: new_id(),
            at: now_micros(),
            actor,
            action,
            target,
            result,
            detail,
            source: None,
        })
        .await;
    }

    /// Writes the entry of a request.
    pub(crate) async fn record_request(&self, r: RequestRecord) {
        self.write(AuditEntry {
            id: new_id(),
            at: now_micros(),
            actor: r.actor,
            action: r.action,
            target: r.target,
            result: r.result,
            detail: r.detail,
            source: r.source.map(|a| a.to_string()),
        })
        .await;
    }

    async fn write(&self, entry: AuditEntry) {
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
        Ok(entries.into_iter().map(view).collect())
    }

    /// The newest entries the query keeps, newest first (at most 1000 a page).
    pub(crate) async fn search(
        &self,
        _admin: &Admin,
        q: AuditQuery,
    ) -> Result<Vec<AuditEntryView>, Error> {
        let entries = self.store.audit_search(&q.filter(100, 1000)?).await?;
        Ok(entries.into_iter().map(view).collect())
    }

    /// The entries the query keeps as JSON lines, oldest first, for a log system (at most
    /// 100000 at once; page with `before`).
    pub(crate) async fn export(&self, _admin: &Admin, q: AuditQuery) -> Result<String, Error> {
        let mut entries = self.store.audit_search(&q.filter(10_000, 100_000)?).await?;
        entries.reverse();
        let mut out = String::new();
        for e in entries {
            out.push_str(
                &serde_json::to_string(&view(e)).map_err(|e| Error::Unexpected(e.into()))?,
            );
            out.push('\n');
        }
        Ok(out)
    }
}
