//! The error of every use case: what went wrong, in a sentence a user can read, with a
//! machine code. `crate::http` turns it into an HTTP answer; nothing here knows HTTP.

use crate::hosts::HostsError;
use wm_backend::{BackendError, Why};
use wm_domain::ParseError;
use wm_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// Input that does not parse; `field` names it where one field is at fault.
    #[error("{said}")]
    Invalid {
        code: &'static str,
        field: Option<&'static str>,
        said: Said,
    },
    #[error("authentication required: log in or send a bearer token")]
    Unauthenticated,
    #[error("wrong user name or password")]
    InvalidCredentials,
    #[error("{0}")]
    Forbidden(Said),
    /// Also what another user's resource looks like; `what` says which, as in
    /// "container x" (the sentence is "{what} not found").
    #[error("{what} not found")]
    NotFound { code: &'static str, what: Said },
    /// A path that does not exist (in the user's storage or in a container), in a
    /// sentence that says so.
    #[error("{0}")]
    FileNotFound(Said),
    /// A user's storage could not be prepared or reached; the sentence says what failed.
    #[error("{0}")]
    Storage(Said),
    #[error("{0}")]
    Conflict(Said),
    /// The container's expiry date has passed: it stays stopped until it is deleted,
    /// unless someone allowed to extends it.
    #[error(
        "container {name} expired at {at}; it cannot be started unless its expiry is extended"
    )]
    Expired { name: String, at: String },
    /// A full name that several owners' containers share, asked for by an administrator
    /// without saying whose (`?owner=`).
    #[error("{0}")]
    Ambiguous(Said),
    #[error("the request body is larger than the limit of {0} bytes")]
    TooLarge(usize),
    /// Too large for a reason the sentence names (an unpacked build context).
    #[error("{0}")]
    TooLargeBecause(Said),
    /// Too many failed logins for the user name or the address; try again later.
    #[error("too many failed logins; try again in {retry_after_secs} seconds")]
    RateLimited { retry_after_secs: u64 },
    /// The server is at one of its own limits for a moment (temporary upload files);
    /// answered 503 with `Retry-After`.
    #[error("{0}")]
    Busy(Said),
    /// A dependency (the container engine) cannot be used right now.
    #[error("{0}")]
    Unavailable(Said),
    #[error("the container engine failed; the administrators can find the details in the log")]
    Engine(String),
    /// The engine refused a request: a fixed sentence by kind ([`engine_refusal`]); the
    /// engine's own text, which names runtimes, drivers and paths, goes only to the log.
    #[error("{message}")]
    EngineRefused {
        kind: Refusal,
        code: &'static str,
        message: &'static str,
        detail: String,
    },
    /// Over one of the caller's quotas; nothing was done.
    #[error("{}", quota_message(*kind, *limit, *used, *asked))]
    Quota {
        kind: QuotaKind,
        limit: i64,
        used: i64,
        asked: i64,
    },
    /// The image cannot be removed while containers use it: the owner's own, or other
    /// users' (counted, never named).
    #[error("{}", in_use_message(.0))]
    ImageInUse(crate::service::images::ImageUsers),
    /// The image may not be used until its scan allows it (see `images::scan`).
    #[error("{}", hold_message(image, hold))]
    Quarantined {
        image: String,
        hold: crate::service::images::Hold,
    },
    #[error("an internal error occurred; the administrators can find the details in the log")]
    Unexpected(#[source] anyhow::Error),
}

/// What an error says: its English sentence, and the rule (a reason and the values the
/// sentence names) by which the console's other languages say it. Made only here, by the
/// constructors of [`Error`], each of which is held to the list of known sayings
/// ([`super::said::SAYINGS`]): no error reaches a user without a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Said {
    message: String,
    rule: Rule,
}

impl Said {
    pub(crate) fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for Said {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// `english` with the key `reason` of `code` (and `field`), checked against the list of
/// known sayings in debug builds (every test): a saying nobody can translate fails there.
fn say(
    code: &'static str,
    field: Option<&'static str>,
    reason: &'static str,
    params: impl Into<Vec<(&'static str, String)>>,
    english: impl Into<String>,
) -> Said {
    let rule = Rule {
        reason,
        params: params.into(),
    };
    debug_assert!(
        super::said::known(code, field, &rule),
        "no saying ({code}, {field:?}, {reason}) with the params {:?} in service::said::SAYINGS",
        rule.params
    );
    Said {
        message: english.into(),
        rule,
    }
}

/// A backend's sentence `why` said as the error `code` (of `field`): by its own key when
/// this console knows that reason for the code ([`super::said::backend_rule`]), else by
/// the `generic` saying, which names `why`'s English text among its `params`. `english`
/// is the message either way.
fn said_by_backend<const N: usize>(
    code: &'static str,
    field: Option<&'static str>,
    why: &Why,
    generic: &'static str,
    params: [(&'static str, String); N],
    english: impl Into<String>,
) -> Said {
    match super::said::backend_rule(code, field, why) {
        Some(rule) => Said {
            message: english.into(),
            rule,
        },
        None => say(code, field, generic, params, english),
    }
}

fn in_use_message(u: &crate::service::images::ImageUsers) -> String {
    let image = &u.reference;
    match (u.own, u.others) {
        (0, n) => format!(
            "{n} container{} of other users use {image}; it can be deleted when they have deleted {}: ask them, or wait until they expire{}",
            if n == 1 { "" } else { "s" },
            if n == 1 { "it" } else { "them" },
            if u.shared { "; stop sharing it so that nobody starts new ones" } else { "" }
        ),
        (n, 0) => format!(
            "{n} container{} of yours use{} {image}; delete {} first",
            if n == 1 { "" } else { "s" },
            if n == 1 { "s" } else { "" },
            if n == 1 { "it" } else { "them" },
        ),
        (n, m) => format!(
            "{n} container{} of yours and {m} of other users use {image}; delete yours first, and ask them to delete theirs or wait until they expire",
            if n == 1 { "" } else { "s" },
        ),
    }
}

fn hold_message(image: &str, hold: &crate::service::images::Hold) -> String {
    use crate::service::images::Hold;
    let first = |f: &[String]| match f {
        [] => String::new(),
        [one] => one.clone(),
        [one, rest @ ..] => format!("{one} (and {} more)", rest.len()),
    };
    match hold {
        Hold::Flagged(f) => format!(
            "image {image} is quarantined: the scan found {}; delete it, or ask an administrator to release it",
            first(f)
        ),
        Hold::Failed(f) => format!(
            "image {image} is quarantined: it could not be scanned ({}); pull or build it again to rescan it, or ask an administrator to release it",
            first(f)
        ),
        Hold::Pending => format!("image {image} is being scanned; try again when the scan has finished"),
    }
}

/// What a quota counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QuotaKind {
    Containers,
    Running,
    Cpus,
    Memory,
    Gpus,
    Ports,
    Builds,
    Storage,
}

impl QuotaKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            QuotaKind::Containers => "containers",
            QuotaKind::Running => "running",
            QuotaKind::Cpus => "cpus",
            QuotaKind::Memory => "memory",
            QuotaKind::Gpus => "gpus",
            QuotaKind::Ports => "ports",
            QuotaKind::Builds => "builds",
            QuotaKind::Storage => "storage",
        }
    }

    /// An amount of it as people read it: `1.5 CPUs`, `512 MiB`, `3 containers`.
    pub(crate) fn amount(self, n: i64) -> String {
        match self {
            QuotaKind::Cpus => {
                let c = n as f64 / 1e9;
                format!("{} CPU{}", trim_number(c), if c == 1.0 { "" } else { "s" })
            }
            QuotaKind::Memory | QuotaKind::Storage => human_bytes(n),
            other => {
                let word = match other {
                    QuotaKind::Containers => "container",
                    QuotaKind::Running => "running container",
                    QuotaKind::Gpus => "GPU",
                    QuotaKind::Ports => "host port",
                    _ => "build",
                };
                format!("{n} {word}{}", if n == 1 { "" } else { "s" })
            }
        }
    }
}

/// `1`, `0.5`, `1.25`: no trailing zeros.
pub(crate) fn trim_number(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Bytes in the largest binary unit that keeps a whole or short number.
pub(crate) fn human_bytes(n: i64) -> String {
    const UNITS: [(&str, i64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (unit, size) in UNITS {
        if n >= size {
            return format!("{} {unit}", trim_number(n as f64 / size as f64));
        }
    }
    format!("{n} B")
}

fn quota_message(kind: QuotaKind, limit: i64, used: i64, asked: i64) -> String {
    if asked == 0 {
        // Already over it (storage that containers filled): nothing new may start.
        return format!(
            "over your quota of {}: {} in use of {}; free some up first, or ask a teacher or an administrator",
            kind.as_str(),
            kind.amount(used),
            kind.amount(limit)
        );
    }
    format!(
        "over your quota of {}: {} in use of {}, and this needs {} more; stop or delete something, or ask a teacher or an administrator",
        kind.as_str(),
        kind.amount(used),
        kind.amount(limit),
        kind.amount(asked)
    )
}

/// Which rule of a field an input broke (`empty`, `bad_char`, ...) and the values its
/// sentence names: what a language other than English needs to say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    pub(crate) reason: &'static str,
    pub(crate) params: Vec<(&'static str, String)>,
}

impl Error {
    /// Input of `field` that breaks its rule `reason`: `english` says it in English, the
    /// console's other languages by the field, the reason and the `params`.
    pub(crate) fn broke<const N: usize>(
        field: &'static str,
        reason: &'static str,
        params: [(&'static str, String); N],
        english: impl Into<String>,
    ) -> Self {
        Self::refused("invalid_input", Some(field), reason, params, english)
    }

    /// Input refused with a code of its own (`invalid_expiry`, `unsupported_for_backend`,
    /// ...), of `field` where one is at fault.
    pub(crate) fn refused<const N: usize>(
        code: &'static str,
        field: Option<&'static str>,
        reason: &'static str,
        params: [(&'static str, String); N],
        english: impl Into<String>,
    ) -> Self {
        Self::Invalid {
            code,
            field,
            said: say(code, field, reason, params, english),
        }
    }

    /// Something `what` (in English, as "container x") that is not there or not the
    /// caller's, with a code of its own (`image_not_found`, ...) or `not_found`.
    pub(crate) fn missing<const N: usize>(
        code: &'static str,
        reason: &'static str,
        params: [(&'static str, String); N],
        what: impl Into<String>,
    ) -> Self {
        Self::NotFound {
            code,
            what: say(code, None, reason, params, what),
        }
    }

    /// A thing of the kind `reason` (`container`, `page`), in English the same word, that
    /// is not there or not the caller's, named by nothing more.
    pub(crate) fn not_found(reason: &'static str) -> Self {
        Self::missing("not_found", reason, [], reason)
    }

    pub(crate) fn forbidden<const N: usize>(
        reason: &'static str,
        params: [(&'static str, String); N],
        english: impl Into<String>,
    ) -> Self {
        Self::Forbidden(say("forbidden", None, reason, params, english))
    }

    pub(crate) fn conflict<const N: usize>(
        reason: &'static str,
        params: [(&'static str, String); N],
        english: impl Into<String>,
    ) -> Self {
        Self::Conflict(say("conflict", None, reason, params, english))
    }

    pub(crate) fn storage<const N: usize>(
        reason: &'static str,
        params: [(&'static str, String); N],
        english: impl Into<String>,
    ) -> Self {
        Self::Storage(say("storage_unavailable", None, reason, params, english))
    }

    pub(crate) fn ambiguous<const N: usize>(
        reason: &'static str,
        params: [(&'static str, String); N],
        english: impl Into<String>,
    ) -> Self {
        Self::Ambiguous(say("ambiguous_name", None, reason, params, english))
    }

    pub(crate) fn too_large_because<const N: usize>(
        reason: &'static str,
        params: [(&'static str, String); N],
        english: impl Into<String>,
    ) -> Self {
        Self::TooLargeBecause(say("payload_too_large", None, reason, params, english))
    }

    pub(crate) fn busy<const N: usize>(
        reason: &'static str,
        params: [(&'static str, String); N],
        english: impl Into<String>,
    ) -> Self {
        Self::Busy(say("busy", None, reason, params, english))
    }

    pub(crate) fn unavailable<const N: usize>(
        reason: &'static str,
        params: [(&'static str, String); N],
        english: impl Into<String>,
    ) -> Self {
        Self::Unavailable(say("unavailable", None, reason, params, english))
    }

    /// A backend's sentence `why` refused with `code` (of `field`): said by `why`'s key
    /// when this console knows it, else by the saying `generic`, which puts `why`'s text
    /// in its place `{why}`; in English, `why`'s text.
    pub(crate) fn refused_by_backend(
        code: &'static str,
        field: Option<&'static str>,
        generic: &'static str,
        why: &Why,
    ) -> Self {
        Self::Invalid {
            code,
            field,
            said: said_by_backend(
                code,
                field,
                why,
                generic,
                [("why", why.text.clone())],
                &why.text,
            ),
        }
    }

    /// A backend's sentence `why` refusing what the caller may do: by `why`'s key when
    /// this console knows it, else by the saying `policy` with `why`'s text.
    pub(crate) fn forbidden_by_backend(why: &Why) -> Self {
        Self::Forbidden(said_by_backend(
            "forbidden",
            None,
            why,
            "policy",
            [("why", why.text.clone())],
            &why.text,
        ))
    }

    /// A backend's sentence `why` as a conflict: by `why`'s key when this console knows it,
    /// else by the saying `generic` with these `params` (one of them `why`'s text).
    pub(crate) fn conflict_by_backend<const N: usize>(
        why: &Why,
        generic: &'static str,
        params: [(&'static str, String); N],
        english: impl Into<String>,
    ) -> Self {
        Self::Conflict(said_by_backend(
            "conflict", None, why, generic, params, english,
        ))
    }

    /// A backend's sentence `why` as a dependency that cannot be used now: by `why`'s key
    /// when this console knows it, else by the saying `generic` with these `params`.
    pub(crate) fn unavailable_by_backend<const N: usize>(
        why: &Why,
        generic: &'static str,
        params: [(&'static str, String); N],
        english: impl Into<String>,
    ) -> Self {
        Self::Unavailable(said_by_backend(
            "unavailable",
            None,
            why,
            generic,
            params,
            english,
        ))
    }

    /// The key its sentence is found by in the console's languages — the field at fault,
    /// else the code — with the rule it broke; `None` for an error whose code says all
    /// (`unauthenticated`, `internal`, an engine's refusal).
    pub(crate) fn said(&self) -> Option<(&'static str, Rule)> {
        use crate::service::images::Hold;
        let rule =
            |reason: &'static str, params: Vec<(&'static str, String)>| Rule { reason, params };
        let code = self.code();
        Some(match self {
            Error::Invalid { field, said, .. } => (field.unwrap_or(code), said.rule.clone()),
            Error::NotFound { what: s, .. }
            | Error::Forbidden(s)
            | Error::FileNotFound(s)
            | Error::Storage(s)
            | Error::Conflict(s)
            | Error::Ambiguous(s)
            | Error::TooLargeBecause(s)
            | Error::Busy(s)
            | Error::Unavailable(s) => (code, s.rule.clone()),
            Error::Expired { name, at } => (
                code,
                rule("expired", vec![("name", name.clone()), ("at", at.clone())]),
            ),
            Error::TooLarge(max) => (code, rule("body", vec![("max", max.to_string())])),
            Error::RateLimited { retry_after_secs } => (
                code,
                rule("logins", vec![("seconds", retry_after_secs.to_string())]),
            ),
            Error::Quota {
                kind,
                limit,
                used,
                asked,
            } => (
                code,
                rule(
                    if *asked == 0 { "over_now" } else { "over" },
                    vec![
                        ("kind", kind.as_str().to_string()),
                        ("limit", limit.to_string()),
                        ("used", used.to_string()),
                        ("asked", asked.to_string()),
                    ],
                ),
            ),
            Error::ImageInUse(u) => (
                code,
                rule(
                    match (u.own, u.others) {
                        (0, _) => "others",
                        (_, 0) => "own",
                        _ => "both",
                    },
                    vec![
                        ("image", u.reference.clone()),
                        ("own", u.own.to_string()),
                        ("others", u.others.to_string()),
                    ],
                ),
            ),
            Error::Quarantined { image, hold } => {
                let first = |f: &[String]| f.first().cloned().unwrap_or_default();
                let image = ("image", image.clone());
                match hold {
                    Hold::Flagged(f) => (code, rule("flagged", vec![image, ("finding", first(f))])),
                    Hold::Failed(f) => (code, rule("failed", vec![image, ("finding", first(f))])),
                    Hold::Pending => (code, rule("pending", vec![image])),
                }
            }
            Error::Unauthenticated
            | Error::InvalidCredentials
            | Error::Engine(_)
            | Error::EngineRefused { .. }
            | Error::Unexpected(_) => return None,
        })
    }

    /// Logs what the administrators must see, once, when the error becomes an answer.
    pub(crate) fn log(&self) {
        match self {
            Error::Unexpected(e) => tracing::error!(error = ?e, "request failed"),
            Error::Engine(m) => tracing::error!(engine_error = %m, "container engine error"),
            Error::EngineRefused { code, detail, .. } => {
                tracing::warn!(code, engine_error = %detail, "the container engine refused")
            }
            Error::Unavailable(m) => tracing::warn!(%m, "dependency unavailable"),
            Error::Storage(m) => tracing::warn!(%m, "storage unavailable"),
            Error::Busy(m) => tracing::warn!(%m, "at a limit"),
            _ => {}
        }
    }

    pub(crate) fn code(&self) -> &'static str {
        match self {
            Error::Invalid { code, .. } => code,
            Error::Unauthenticated => "unauthenticated",
            Error::InvalidCredentials => "invalid_credentials",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound { code, .. } => code,
            Error::Conflict(_) => "conflict",
            Error::Expired { .. } => "container_expired",
            Error::Ambiguous(_) => "ambiguous_name",
            Error::TooLarge(_) | Error::TooLargeBecause(_) => "payload_too_large",
            Error::RateLimited { .. } => "rate_limited",
            Error::Unavailable(_) => "unavailable",
            Error::Busy(_) => "busy",
            Error::Engine(_) => "engine_error",
            Error::EngineRefused { code, .. } => code,
            Error::Quota { .. } => "quota_exceeded",
            Error::FileNotFound(_) => "file_not_found",
            Error::Storage(_) => "storage_unavailable",
            Error::ImageInUse(_) => "image_in_use",
            Error::Quarantined {
                hold: crate::service::images::Hold::Pending,
                ..
            } => "image_scan_pending",
            Error::Quarantined { .. } => "image_quarantined",
            Error::Unexpected(_) => "internal",
        }
    }
}

impl From<ParseError> for Error {
    fn from(e: ParseError) -> Self {
        let code = "invalid_input";
        let field = Some(e.field);
        let rule = Rule {
            reason: e.reason,
            params: e.params,
        };
        debug_assert!(
            super::said::known(code, field, &rule),
            "no saying ({code}, {field:?}, {}) with the params {:?} in service::said::SAYINGS",
            rule.reason,
            rule.params
        );
        Self::Invalid {
            code,
            field,
            said: Said {
                message: e.message,
                rule,
            },
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => Error::conflict(
                "exists",
                [("what", what.clone())],
                format!("{what} exists already"),
            ),
            other => Error::Unexpected(other.into()),
        }
    }
}

impl From<HostsError> for Error {
    fn from(e: HostsError) -> Self {
        match e {
            HostsError::Unavailable {
                reason,
                params,
                message,
            } => Error::Unavailable(say("unavailable", None, reason, params, message)),
            HostsError::Down { host, why, message } => Error::unavailable_by_backend(
                &why,
                "host_down_why",
                [("host", host), ("why", why.text.clone())],
                message,
            ),
            HostsError::Store(e) => e.into(),
        }
    }
}

impl From<BackendError> for Error {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::Unavailable(why) => Error::unavailable_by_backend(
                &why,
                "host",
                [("why", why.text.clone())],
                format!("the container host is unavailable ({why}); try again later"),
            ),
            BackendError::Exhausted(why) => Error::unavailable_by_backend(
                &why,
                "exhausted",
                [("why", why.text.clone())],
                &why.text,
            ),
            BackendError::NoSuchContainer => Error::not_found("container"),
            BackendError::NoSuchImage(r) => Error::missing(
                "image_not_found",
                "image",
                [("image", r.clone())],
                format!("image {r}"),
            ),
            // The engine's text names its objects; the sentence stays ours.
            BackendError::NameTaken(_) => Error::conflict(
                "host_name_taken",
                [],
                "the host already has a container or network of that name that is not yours; ask an administrator",
            ),
            BackendError::Policy(why) => Error::refused_by_backend("policy", None, "policy", &why),
            BackendError::NoSuchFile(why) => Error::FileNotFound(said_by_backend(
                "file_not_found",
                None,
                &why,
                "engine",
                [("why", why.text.clone())],
                &why.text,
            )),
            BackendError::Storage(why) => Error::Storage(said_by_backend(
                "storage_unavailable",
                None,
                &why,
                "engine",
                [("why", why.text.clone())],
                &why.text,
            )),
            // The backend's own sentence, when this console knows it; else the engine's
            // text, which the user is told only by its kind.
            BackendError::Refused(why) => match super::said::backend_rule("conflict", None, &why) {
                Some(rule) => Error::Conflict(Said {
                    message: why.text,
                    rule,
                }),
                None => engine_refusal(why.text),
            },
            BackendError::Engine(m) => Error::Engine(m),
        }
    }
}

/// The kinds of an engine's refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The image's command cannot be run.
    CannotStart,
    /// The host could not set up networks or ports.
    HostNetwork,
    /// The host could not prepare the container's storage (its mounts).
    Storage,
    /// An image used by a container or other images.
    InUse,
    NotFound,
    /// The container is not in a state that allows the call.
    State,
    Other,
}

/// What an engine's refusal means for the user, sorted by kind from the engine's text.
pub(crate) fn engine_refusal(detail: String) -> Error {
    let m = detail.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| m.contains(n));
    let (kind, code, message) = if has(&[
        "bind source path does not exist",
        "invalid mount config",
        "error while mounting volume",
    ]) {
        (
            Refusal::Storage,
            "storage_unavailable",
            "the host could not prepare the container's storage (a directory to mount is missing or cannot be used); tell an administrator",
        )
    } else if has(&[
        "oci runtime",
        "runtime create failed",
        "starting container process",
        "executable file not found",
        "exec format error",
        "no such file or directory",
        "permission denied",
    ]) {
        (
            Refusal::CannotStart,
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
            Refusal::HostNetwork,
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
            Refusal::InUse,
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
            Refusal::NotFound,
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
            Refusal::State,
            "container_state",
            "the container is not in a state that allows this now; reload and try again",
        )
    } else {
        (
            Refusal::Other,
            "engine_refused",
            "the container engine refused the request; the administrators can find the details in the log",
        )
    };
    Error::EngineRefused {
        kind,
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
            ("invalid mount config for type \"bind\": bind source path does not exist: /srv/home/alice", "storage_unavailable"),
            ("something else entirely from dockerd", "engine_refused"),
        ] {
            let e = Error::from(BackendError::Refused(text.into()));
            assert_eq!(e.code(), code, "{text}");
            let shown = e.to_string();
            for word in ["OCI", "runtime", "runc", "driver", "0.0.0.0", "dockerd", "0123", "/srv"] {
                assert!(!shown.contains(word), "{shown}");
            }
        }
    }
}
