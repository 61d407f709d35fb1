//! Login rate limiting: failed attempts per user name and per client address in a sliding
//! minute, kept in memory (a restart forgets them, which only ever lets more through).
//!
//! Only failures count, so people who type their password right are never slowed down,
//! while a guesser is refused (429, with `Retry-After`) even when a later guess is right.
//! The address is the TCP peer: behind a reverse proxy every client shares the proxy's
//! address and the per-user limit does the work.

use crate::error::ApiError;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);

/// Past this many tracked keys, keys without a recent failure are dropped.
const PRUNE_AT: usize = 10_000;

pub struct LoginLimiter {
    per_minute: u32,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

/// The client address of a request, when the server recorded it.
pub struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

impl LoginLimiter {
    /// `per_minute` failures allowed per key; 0 turns the limiter off.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            failures: Mutex::default(),
        }
    }

    fn keys(user: &str, addr: Option<IpAddr>) -> Vec<String> {
        let mut keys = vec![format!("user:{}", user.to_lowercase())];
        keys.extend(addr.map(|a| format!("addr:{a}")));
        keys
    }

    /// Refuses the attempt when the user name or the address used up its failures.
    pub fn check(&self, user: &str, addr: Option<IpAddr>) -> Result<(), ApiError> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut map = self.failures.lock().expect("not poisoned");
        let mut wait = Duration::ZERO;
        for key in Self::keys(user, addr) {
            if let Some(times) = map.get_mut(&key) {
                while times.front().is_some_and(|t| now - *t >= WINDOW) {
                    times.pop_front();
                }
                if times.len() >= self.per_minute as usize {
                    let oldest = *times.front().expect("not empty");
                    wait = wait.max(WINDOW - (now - oldest));
                }
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(ApiError::RateLimited {
                retry_after_secs: wait.as_secs() + 1,
            })
        }
    }

    /// Counts a failed attempt against the user name and the address.
    pub fn failed(&self, user: &str, addr: Option<IpAddr>) {
        if self.per_minute == 0 {
            return;
        }
        let now = Instant::now();
        let mut map = self.failures.lock().expect("not poisoned");
        if map.len() > PRUNE_AT {
            map.retain(|_, times| times.back().is_some_and(|t| now - *t < WINDOW));
        }
        for key in Self::keys(user, addr) {
            map.entry(key).or_default().push_back(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_user_and_per_address() {
        let l = LoginLimiter::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        l.failed("alice", Some(a));
        assert!(l.check("alice", Some(a)).is_ok());
        l.failed("Alice", Some(b));
        // The user is used up from any address; the first address is not, for others.
        assert!(matches!(
            l.check("alice", Some(b)),
            Err(ApiError::RateLimited { retry_after_secs }) if (1..=61).contains(&retry_after_secs)
        ));
        assert!(l.check("bob", Some(a)).is_ok());
        l.failed("carol", Some(a));
        assert!(l.check("dave", Some(a)).is_err());
        let off = LoginLimiter::new(0);
        for _ in 0..100 {
            off.failed("x", Some(a));
        }
        assert!(off.check("x", Some(a)).is_ok());
    }
}
