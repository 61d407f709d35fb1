//! Login rate limiting, counted in the database: every console of an installation sees
//! the failures of the others (a load balancer may send each attempt elsewhere), and a
//! restart forgets nothing.
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
//! Attempts checked at the same moment may each pass before any of them is counted, on
//! one console or several: a burst gets a few more tries than the limit, never many.
//! The times are the consoles' clocks; keep them synchronized (NTP).

use super::Error;
use std::net::IpAddr;
use wm_store::Store;

/// The window, in milliseconds.
const WINDOW_MS: i64 = 60_000;

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

/// What the failures are of, as the store keeps them apart.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Attempts {
    Logins,
    JoinCodes,
}

pub(crate) struct LoginLimiter {
    store: Store,
    kind: Attempts,
    limits: LoginLimits,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// With `limit` used up by the failures at `times` (oldest first), the milliseconds until
/// enough of them leave the window to bring the count under it.
fn used_up(times: &[i64], limit: u32, now: i64) -> Option<i64> {
    let limit = limit as usize;
    if limit > 0 && times.len() >= limit {
        let leaves = times[times.len() - limit];
        Some(WINDOW_MS - (now - leaves))
    } else {
        None
    }
}

impl LoginLimiter {
    pub(crate) fn new(store: Store, kind: Attempts, limits: LoginLimits) -> Self {
        Self {
            store,
            kind,
            limits,
        }
    }

    fn off(&self) -> bool {
        self.limits.pair == 0
    }

    fn kind(&self) -> &'static str {
        match self.kind {
            Attempts::Logins => "login",
            Attempts::JoinCodes => "join",
        }
    }

    /// Refuses the attempt when the pair, the user name or the address used up its
    /// failures.
    pub(crate) async fn check(&self, user: &str, addr: Addr) -> Result<(), Error> {
        if self.off() {
            return Ok(());
        }
        let now = now_ms();
        let f = self
            .store
            .login_failures(
                self.kind(),
                &user.to_lowercase(),
                &address(addr),
                now - WINDOW_MS,
            )
            .await?;
        let mut names: Vec<i64> = f.names.iter().map(|(_, t)| *t).collect();
        names.sort();
        let wait = [
            used_up(&f.pair, self.limits.pair, now),
            used_up(&f.user, self.limits.user, now),
            used_up(&names, self.limits.address, now),
        ]
        .into_iter()
        .flatten()
        .max();
        match wait {
            Some(ms) if ms > 0 => Err(Error::RateLimited {
                retry_after_secs: ms as u64 / 1000 + 1,
            }),
            _ => Ok(()),
        }
    }

    /// Counts a failed attempt against the pair, the user name and the address.
    pub(crate) async fn failed(&self, user: &str, addr: Addr) -> Result<(), Error> {
        if self.off() {
            return Ok(());
        }
        let now = now_ms();
        self.store
            .record_login_failure(
                self.kind(),
                &user.to_lowercase(),
                &address(addr),
                now,
                now - WINDOW_MS,
            )
            .await?;
        Ok(())
    }
}

/// An address as the store keeps it: '' when unknown.
fn address(addr: Addr) -> String {
    addr.map(|a| a.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A limiter of logins over a fresh database, and the directory that holds it.
    async fn limiter(pair: u32, user: u32, address: u32) -> (LoginLimiter, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}/wm.db", dir.path().display()))
            .await
            .unwrap();
        let limits = LoginLimits {
            pair,
            user,
            address,
        };
        (LoginLimiter::new(store, Attempts::Logins, limits), dir)
    }

    #[tokio::test]
    async fn a_pair_is_limited_alone() {
        let (l, _dir) = limiter(2, 5, 50).await;
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        l.failed("alice", Some(a)).await.unwrap();
        assert!(l.check("alice", Some(a)).await.is_ok());
        l.failed("Alice", Some(a)).await.unwrap();
        assert!(matches!(
            l.check("alice", Some(a)).await,
            Err(Error::RateLimited { retry_after_secs }) if (1..=61).contains(&retry_after_secs)
        ));
        // Alice from elsewhere, and anyone else from the same address, still may.
        assert!(l.check("alice", Some(b)).await.is_ok());
        assert!(l.check("bob", Some(a)).await.is_ok());
    }

    #[tokio::test]
    async fn a_user_is_limited_across_addresses() {
        let (l, _dir) = limiter(2, 5, 50).await;
        for i in 0..5 {
            l.failed("alice", Some(IpAddr::from([10, 0, 0, i])))
                .await
                .unwrap();
        }
        assert!(l
            .check("alice", Some("10.9.9.9".parse().unwrap()))
            .await
            .is_err());
        assert!(l
            .check("bob", Some("10.0.0.1".parse().unwrap()))
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn an_address_is_limited_by_distinct_names() {
        let (l, _dir) = limiter(10, 50, 3).await;
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        // Many typos of one name are one name.
        for _ in 0..9 {
            l.failed("alice", Some(a)).await.unwrap();
        }
        assert!(l.check("bob", Some(a)).await.is_ok());
        l.failed("bob", Some(a)).await.unwrap();
        l.failed("carol", Some(a)).await.unwrap();
        assert!(l.check("dave", Some(a)).await.is_err());
        assert!(l
            .check("dave", Some("10.0.0.2".parse().unwrap()))
            .await
            .is_ok());
    }

    /// Two limiters over one database (two consoles) count the same failures; join codes
    /// are counted apart from logins.
    #[tokio::test]
    async fn consoles_share_the_count() {
        let (one, _dir) = limiter(2, 5, 50).await;
        let other = LoginLimiter::new(one.store.clone(), Attempts::Logins, one.limits);
        let joins = LoginLimiter::new(one.store.clone(), Attempts::JoinCodes, one.limits);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        one.failed("alice", Some(a)).await.unwrap();
        other.failed("alice", Some(a)).await.unwrap();
        assert!(one.check("alice", Some(a)).await.is_err());
        assert!(other.check("alice", Some(a)).await.is_err());
        assert!(joins.check("alice", Some(a)).await.is_ok());
    }

    #[tokio::test]
    async fn zero_turns_it_off() {
        let (off, _dir) = limiter(0, 0, 0).await;
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        for i in 0..100 {
            off.failed(&format!("x{i}"), Some(a)).await.unwrap();
        }
        assert!(off.check("x1", Some(a)).await.is_ok());
    }
}
