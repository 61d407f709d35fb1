//! The one circuit breaker of the console, for the container hosts and the cluster alike.
//!
//! A call or a check that finds its target unreachable closes the gate: calls then answer
//! at once, instead of waiting out the target's time-out, until a health check (every
//! `WM_HOST_CHECK_INTERVAL_SECS`) finds it again.

use std::sync::RwLock;
use wm_backend::{BackendError, Why};

/// What the last check or call found of one target, and what it said of itself.
pub(crate) struct Gate<I> {
    name: String,
    state: RwLock<Seen<I>>,
}

/// A gate's state.
#[derive(Debug, Clone)]
pub(crate) struct Seen<I> {
    /// `None` until the first check.
    pub(crate) up: Option<bool>,
    /// What the target said of itself at its last good check.
    pub(crate) info: Option<I>,
    /// Why it was found down, last.
    pub(crate) error: Option<Why>,
}

impl<I> Default for Seen<I> {
    fn default() -> Self {
        Self {
            up: None,
            info: None,
            error: None,
        }
    }
}

impl<I: Clone> Gate<I> {
    pub(crate) fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            state: RwLock::new(Seen::default()),
        }
    }

    pub(crate) fn read(&self) -> Seen<I> {
        self.state.read().expect("not poisoned").clone()
    }

    /// Whether calls may go through: up, or not checked yet.
    pub(crate) fn is_open(&self) -> bool {
        self.state.read().expect("not poisoned").up != Some(false)
    }

    /// `Ok` while calls may go through; the reason the target is down otherwise.
    pub(crate) fn pass(&self) -> Result<(), BackendError> {
        let s = self.state.read().expect("not poisoned");
        match (s.up, &s.error) {
            (Some(false), why) => Err(BackendError::Unavailable(
                why.clone().unwrap_or_else(|| "no answer".into()),
            )),
            _ => Ok(()),
        }
    }

    /// Notes the outcome of a call: one that found the target unreachable closes the gate.
    pub(crate) fn saw(&self, e: &BackendError) {
        if let BackendError::Unavailable(m) = e {
            self.down(m.clone());
        }
    }

    /// Notes a check that failed with `e`: a backend's keyed sentence is kept as it is (to
    /// be said in the user's language), anything else as its text.
    pub(crate) fn failed(&self, e: &BackendError) {
        self.down(match e {
            BackendError::Unavailable(why) if why.is_keyed() => why.clone(),
            e => e.to_string().into(),
        });
    }

    /// Notes a check or call that found the target unreachable.
    pub(crate) fn down(&self, error: Why) {
        let mut s = self.state.write().expect("not poisoned");
        if s.up != Some(false) {
            tracing::warn!(target = %self.name, %error, "is down");
        }
        s.up = Some(false);
        s.error = Some(error);
    }

    /// Notes a check that the target answered; returns whether it had been down.
    pub(crate) fn up(&self, info: I) -> bool {
        let mut s = self.state.write().expect("not poisoned");
        let was_down = s.up == Some(false);
        if was_down {
            tracing::info!(target = %self.name, "is back");
        }
        *s = Seen {
            up: Some(true),
            info: Some(info),
            error: None,
        };
        was_down
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_that_finds_the_target_unreachable_closes_the_gate_until_a_good_check() {
        let g: Gate<u8> = Gate::new("h");
        assert!(g.is_open() && g.pass().is_ok());
        g.saw(&BackendError::Refused("no".into()));
        assert!(g.is_open(), "a refusal is an answer");
        g.saw(&BackendError::Unavailable("connection refused".into()));
        assert!(!g.is_open());
        match g.pass() {
            Err(BackendError::Unavailable(why)) => assert_eq!(why.text, "connection refused"),
            other => panic!("{other:?}"),
        }
        assert!(g.up(7), "it was down");
        assert!(g.pass().is_ok());
        assert_eq!(g.read().info, Some(7));
        assert!(!g.up(8), "it was up");
    }
}
