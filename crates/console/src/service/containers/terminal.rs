//! Interactive sessions: a TTY in a running container, counted per user.

use super::{cluster, parse_cmd, Containers, OwnedContainer};
use crate::service::accounts::Caller;
use crate::service::Error;
use crate::util::now;
use prometheus_client::metrics::gauge::Gauge;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use wm_backend::{Terminal, TerminalRequest};
use wm_domain::{Backend, ContainerStatus, UserName};

/// Largest window either way, in characters.
const MAX_SIZE: u16 = 1000;

/// Open sessions, per user, with the `wm_terminal_sessions` gauge.
pub(crate) struct Sessions {
    open: Mutex<HashMap<UserName, usize>>,
    gauge: Gauge,
    max_per_user: usize,
}

impl Sessions {
    pub(crate) fn new(max_per_user: usize, gauge: Gauge) -> Arc<Self> {
        Arc::new(Self {
            open: Mutex::default(),
            gauge,
            max_per_user,
        })
    }

    pub(crate) fn enter(self: &Arc<Self>, user: &UserName) -> Result<Seat, Error> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(user.clone()).or_default();
        if *n >= self.max_per_user {
            return Err(Error::busy(
                "terminals",
                [("max", self.max_per_user.to_string())],
                format!(
                    "you already have {} terminal sessions open; close one first",
                    self.max_per_user
                ),
            ));
        }
        *n += 1;
        self.gauge.inc();
        Ok(Seat {
            sessions: self.clone(),
            user: user.clone(),
        })
    }
}

/// One open session's place in [`Sessions`], given back when dropped.
pub(crate) struct Seat {
    sessions: Arc<Sessions>,
    user: UserName,
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut open = self
            .sessions
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.user);
            }
        }
        self.sessions.gauge.dec();
    }
}

/// A started session: the backend's terminal, holding its user's seat until dropped.
/// Dropping the terminal's input ends the session and kills what it started.
pub(crate) struct TerminalSession {
    pub(crate) terminal: Terminal,
    pub(crate) seat: Seat,
}

/// What a session is asked to be: the command line (`None`: the shell) and window size.
pub(crate) struct TerminalAsk {
    pub(crate) cmd: Option<String>,
    pub(crate) cols: u16,
    pub(crate) rows: u16,
}

/// Refuses window sizes out of 1..=1000.
pub(crate) fn check_size(cols: u16, rows: u16) -> Result<(), Error> {
    if !(1..=MAX_SIZE).contains(&cols) {
        return Err(Error::broke(
            "cols",
            "out_of_range",
            [],
            "cols must be between 1 and 1000",
        ));
    }
    if !(1..=MAX_SIZE).contains(&rows) {
        return Err(Error::broke(
            "rows",
            "out_of_range",
            [],
            "rows must be between 1 and 1000",
        ));
    }
    Ok(())
}

impl Containers {
    /// Starts an interactive session in the caller's running container. A session is
    /// activity: the container is not idle.
    ///
    /// # Errors
    /// 400 for a bad size or command, or a cluster container; 409 when it is not running;
    /// 503 when the caller has as many sessions open as allowed.
    pub(crate) async fn terminal(
        &self,
        caller: &Caller,
        c: &OwnedContainer,
        ask: TerminalAsk,
    ) -> Result<TerminalSession, Error> {
        caller.require_full_scope()?;
        check_size(ask.cols, ask.rows)?;
        let cmd = ask.cmd.map(|s| parse_cmd(Value::String(s))).transpose()?;
        if c.record.backend == Backend::Kubernetes {
            return Err(cluster::unsupported(
                "terminal",
                "a terminal",
                "kubectl exec -it",
            ));
        }
        if c.record.status != ContainerStatus::Running {
            return Err(Error::conflict(
                "not_running",
                [("name", c.record.name.to_string())],
                format!("container {} is not running; start it first", c.record.name),
            ));
        }
        let seat = self.sessions.enter(&caller.name)?;
        let req = TerminalRequest {
            cmd,
            cols: ask.cols,
            rows: ask.rows,
        };
        let terminal = self.docker.terminal(c, &req).await?;
        self.store.touch_container(&c.key(), now()).await?;
        Ok(TerminalSession { terminal, seat })
    }
}
