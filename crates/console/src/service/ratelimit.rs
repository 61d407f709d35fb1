//! Login rate limiting, kept in memory (a restart forgets them,
//! which only ever lets more through).
//!
//! Only failures count, so people who type their password right are never slowed down by
//! their own past, and one person's typos cost nobody else their login. Three limits, each
//! over a sliding minute:
//!
//! - failures of one user name from one address (`login_rate_limit`): a student's typos
//!   lock only that pair;
//! - failures of one user name from all addresses (`login_user_rate_limit`, higher): one
//!   account guessed from many addresses;
//! - distinct user names failing from one address (`login_address_rate_limit`): a password
//!   spray. A class behind one unconfigured proxy makes a few typos, not fifty names' worth.
//!
//! A refused attempt answers 429 with `Retry-After`, even when its password is right.

use super::Error;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);

/// Past this many tracked keys in a map, keys without a recent failure are dropped.
const PRUNE_AT: usize = 10_000;

/// Failures allowed in a minute; 0 in `pair` turns every limit off.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoginLimits {
    /// One user name from one address.
    pub(crate) pair: u32,
    /// One user name from all addresses.
    pub(crate) user: u32,
    /// Distinct user names from one address.
    pub(crate) address: u32,
}

type Addr = Option<IpAddr>;

#[derive(Default)]
struct Failures {
    pairs: HashMap<(String, Addr), VecDeque<Instant>>,
    users: HashMap<String, VecDeque<Instant>>,
    /// Per address, the last failure of each user name.
    addresses: HashMap<Addr, HashMap<String, Instant>>,
}

pub(crate) struct LoginLimiter {
    limits: LoginLimits,
    failures: Mutex<Failures>,
}

/// Drops failures older than the window; with `limit` used up, the time until the
/// oldest leaves it.
fn used_up(times: &mut VecDeque<Instant>, limit: u32, now: Instant) -> Option<Duration> {
    while times.front().is_some_and(|t| now - *t >= WINDOW) {
        times.pop_front();
    }
    if limit > 0 && times.len() >= limit as usize {
        let oldest = *times.front().expect("not empty");
        Some(WINDOW - (now - oldest))
    } else {
        None
    }
}

impl LoginLimiter {
    pub(crate) fn new(limits: LoginLimits) -> Self {
        Self {
            limits,
            failures: Mutex::default(),
        }
    }

    fn off(&self) -> bool {
        self.limits.pair == 0
    }

    /// Refuses the attempt when the pair, the user name or the address used up its
    /// failures.
    pub(crate) fn check(&self, user: &str, addr: Addr) -> Result<(), Error> {
        if self.off() {
            return Ok(());
        }
        let user = user.to_lowercase();
        let now = Instant::now();
        let mut f = self.failures.lock().expect("not poisoned");
        let mut wait = Duration::ZERO;
        if let Some(times) = f.pairs.get_mut(&(user.clone(), addr)) {
            wait = wait.max(used_up(times, self.limits.pair, now).unwrap_or_default());
        }
        if let Some(times) = f.users.get_mut(&user) {
            wait = wait.max(used_up(times, self.limits.user, now).unwrap_or_default());
        }
        if let Some(names) = f.addresses.get_mut(&addr) {
            names.retain(|_, t| now - *t < WINDOW);
            let limit = self.limits.address as usize;
            if limit > 0 && names.len() >= limit {
                // Refused until enough names age out to bring the count under the limit.
                let mut times: Vec<Instant> = names.values().copied().collect();
                times.sort();
                let leaves = times[names.len() - limit];
                wait = wait.max(WINDOW - (now - leaves));
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(Error::RateLimited {
                retry_after_secs: wait.as_secs() + 1,
            })
        }
    }

    /// Counts a failed attempt against the pair, the user name and the address.
    pub(crate) fn failed(&self, user: &str, addr: Addr) {
        if self.off() {
            return;
        }
        let user = user.to_lowercase();
        let now = Instant::now();
        let mut f = self.failures.lock().expect("not poisoned");
        let recent = |t: &VecDeque<Instant>| t.back().is_some_and(|t| now - *t < WINDOW);
        if f.pairs.len() > PRUNE_AT {
            f.pairs.retain(|_, t| recent(t));
        }
        if f.users.len() > PRUNE_AT {
            f.users.retain(|_, t| recent(t));
        }
        if f.addresses.len() > PRUNE_AT {
            f.addresses
                .retain(|_, names| names.values().any(|t| now - *t < WINDOW));
        }
        f.pairs
            .entry((user.clone(), addr))
            .or_default()
            .push_back(now);
        f.users.entry(user.clone()).or_default().push_back(now);
        let names = f.addresses.entry(addr).or_default();
        // One sprayer can invent names without end; keep the count, not every name.
        if names.len() > PRUNE_AT {
            names.retain(|_, t| now - *t < WINDOW);
        }
        names.insert(user, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(pair: u32, user: u32, address: u32) -> LoginLimiter {
        LoginLimiter::new(LoginLimits {
            pair,
            user,
            address,
        })
    }

    #[test]
    fn a_pair_is_limited_alone() {
        let l = limiter(2, 5, 50);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        l.failed("alice", Some(a));
        assert!(l.check("alice", Some(a)).is_ok());
        l.failed("Alice", Some(a));
        assert!(matches!(
            l.check("alice", Some(a)),
            Err(Error::RateLimited { retry_after_secs }) if (1..=61).contains(&retry_after_secs)
        ));
        // Alice from elsewhere, and anyone else from the same address, still may.
        assert!(l.check("alice", Some(b)).is_ok());
        assert!(l.check("bob", Some(a)).is_ok());
    }

    #[test]
    fn a_user_is_limited_across_addresses() {
        let l = limiter(2, 5, 50);
        for i in 0..5 {
            l.failed("alice", Some(IpAddr::from([10, 0, 0, i])));
        }
        assert!(l.check("alice", Some("10.9.9.9".parse().unwrap())).is_err());
        assert!(l.check("bob", Some("10.0.0.1".parse().unwrap())).is_ok());
    }

    #[test]
    fn an_address_is_limited_by_distinct_names() {
        let l = limiter(10, 50, 3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        // Many typos of one name are one name.
        for _ in 0..9 {
            l.failed("alice", Some(a));
        }
        assert!(l.check("bob", Some(a)).is_ok());
        l.failed("bob", Some(a));
        l.failed("carol", Some(a));
        assert!(l.check("dave", Some(a)).is_err());
        assert!(l.check("dave", Some("10.0.0.2".parse().unwrap())).is_ok());
    }

    #[test]
    fn zero_turns_it_off() {
        let off = limiter(0, 0, 0);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        for i in 0..100 {
            off.failed(&format!("x{i}"), Some(a));
        }
        assert!(off.check("x1", Some(a)).is_ok());
    }
}
