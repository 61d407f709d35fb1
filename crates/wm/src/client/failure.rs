//! Why a client command failed, and the exit code that tells a script.
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | success |
//! | 1 | any other error (network, server, local files) |
//! | 2 | usage: a wrong argument, or input the server rejected as invalid (400) |
//! | 3 | not logged in, or the login is no longer valid (401) |
//! | 4 | not found (404) |
//! | 5 | refused: not allowed, conflicts, quota or rate limits (403, 409, 413, 429) |
//!
//! `wm exec` exits with the command's own code instead.

use std::fmt;
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Other,
    Usage,
    NotLoggedIn,
    NotFound,
    Refused,
}

impl Kind {
    pub(crate) fn exit_code(self) -> u8 {
        match self {
            Kind::Other => 1,
            Kind::Usage => 2,
            Kind::NotLoggedIn => 3,
            Kind::NotFound => 4,
            Kind::Refused => 5,
        }
    }

    /// The kind of an error answer's status.
    pub(crate) fn of_status(status: reqwest::StatusCode) -> Kind {
        match status.as_u16() {
            400 | 422 => Kind::Usage,
            401 => Kind::NotLoggedIn,
            404 => Kind::NotFound,
            403 | 409 | 413 | 429 => Kind::Refused,
            _ => Kind::Other,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) kind: Kind,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn exit(&self) -> ExitCode {
        eprintln!("wm: {}", self.message);
        ExitCode::from(self.kind.exit_code())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::new(Kind::Other, e.to_string())
    }
}
