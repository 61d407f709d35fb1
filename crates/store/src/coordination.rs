//! What lets several consoles share one database: the leader lease (which console runs
//! the periodic work), locks that order one user's admissions or the placements across
//! consoles, the creates each console has in flight, and the failed logins the rate
//! limits count.
//!
//! Each console (each [`Store`]) has a name of its own, and on PostgreSQL holds the
//! advisory lock of that name on its lease connection while it runs: a console whose lock
//! is free is gone, and the creates it had in flight were cut short.
//!
//! On PostgreSQL the lease and the locks are advisory locks: the lease a session lock on
//! a connection of its own, outside the pool, so that it goes when that connection
//! closes (the console died, or the network between them broke); a lock a transaction
//! lock, released when the transaction ends. On SQLite an installation is one process
//! (the console locks its data directory): that process always leads, and the console's
//! own locks are enough.

use super::{Result, Store, StoreError};
use sqlx::AnyConnection;
use sqlx::{Any, Connection, Row, Transaction};
use std::collections::BTreeMap;
use wm_domain::ContainerKey;

/// The advisory lock key of the leader lease ("wmlead" in ASCII).
const LEADER_KEY: i64 = 0x776d_6c65_6164;

/// The name of the lock the console `console` holds while it runs.
fn console_lock(console: &str) -> String {
    format!("console {console}")
}

/// The leader lease of a PostgreSQL database, tried and held on a connection of its own.
pub struct LeaderLease {
    conn: AnyConnection,
}

impl LeaderLease {
    /// Takes the lease when no other connection holds it; `Ok(false)` when one does.
    /// Taking it again while holding it is harmless (the lock counts, and goes with
    /// the connection anyway).
    pub async fn try_take(&mut self) -> Result<bool> {
        let row = sqlx::query("SELECT pg_try_advisory_lock($1)")
            .bind(LEADER_KEY)
            .fetch_one(&mut self.conn)
            .await?;
        Ok(row.try_get::<bool, _>(0)?)
    }

    /// Whether the connection (and so the lease, when taken) still holds.
    pub async fn check(&mut self) -> Result<()> {
        self.conn.ping().await?;
        Ok(())
    }

    /// Gives the lease up by closing its connection.
    pub async fn close(self) {
        let _ = self.conn.close().await;
    }
}

/// A lock across the consoles of a PostgreSQL database, held until dropped (then its
/// transaction rolls back, which releases it); nothing on SQLite.
pub struct DbLock {
    /// In a mutex only to be `Sync`: it is never touched again.
    _tx: Option<std::sync::Mutex<Transaction<'static, Any>>>,
}

/// The failures counted against one attempt, each a time in Unix milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginFailures {
    /// Of the user name from the address, oldest first.
    pub pair: Vec<i64>,
    /// Of the user name from any address, oldest first.
    pub user: Vec<i64>,
    /// The user names that failed from the address, each with its latest failure.
    pub names: Vec<(String, i64)>,
}

impl Store {
    /// Whether the database is PostgreSQL (else SQLite).
    pub fn is_postgres(&self) -> bool {
        !self.url.starts_with("sqlite:")
    }

    /// A connection of its own for the leader lease; `None` on SQLite, where the one
    /// process always leads.
    pub async fn leader_lease(&self) -> Result<Option<LeaderLease>> {
        if !self.is_postgres() {
            return Ok(None);
        }
        let mut conn = AnyConnection::connect(&self.url).await?;
        // Not waited for: a connection of this console's that broke on our side may hold
        // it until the server notices; the caller tries again later.
        let row = sqlx::query("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
            .bind(self.console_lock())
            .fetch_one(&mut conn)
            .await?;
        if !row.try_get::<bool, _>(0)? {
            let _ = conn.close().await;
            return Err(StoreError::Held(
                "an earlier connection of this console still holds its lock".into(),
            ));
        }
        Ok(Some(LeaderLease { conn }))
    }

    /// The name of the lock this console holds while it runs.
    fn console_lock(&self) -> String {
        console_lock(&self.console)
    }

    /// The create of `key` ended (made, or its record deleted with the failure).
    pub async fn create_ended(&self, key: &ContainerKey) -> Result<()> {
        sqlx::query("DELETE FROM creates_in_flight WHERE owner = $1 AND short_name = $2")
            .bind(key.owner.as_str())
            .bind(key.short.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The containers whose create was cut short: the console making them is gone. On
    /// PostgreSQL that is a console whose lock is free (taken here for a moment to know);
    /// on SQLite any console but this one, as one runs at a time. A console whose lease
    /// connection is broken for the moment looks gone too: its creates may be settled
    /// by the reconcile while they end, and the create's own end then writes the last
    /// word.
    pub async fn creates_cut_short(&self) -> Result<Vec<ContainerKey>> {
        let rows = sqlx::query("SELECT owner, short_name, console FROM creates_in_flight")
            .fetch_all(&self.pool)
            .await?;
        let mut gone: BTreeMap<String, bool> = BTreeMap::new();
        let mut keys = Vec::new();
        for r in rows {
            let console: String = r.try_get(2)?;
            if console == *self.console {
                continue;
            }
            let is_gone = match gone.get(&console) {
                Some(g) => *g,
                None => {
                    let g =
                        !self.is_postgres() || self.lock_is_free(&console_lock(&console)).await?;
                    gone.insert(console.clone(), g);
                    g
                }
            };
            if is_gone {
                let owner = super::parse_user_name(r.try_get(0)?)?;
                let short: String = r.try_get(1)?;
                let short = wm_domain::ShortName::parse(&short).map_err(|e| {
                    StoreError::Corrupt(format!("short name of a create in flight: {e}"))
                })?;
                keys.push(
                    ContainerKey::new(&owner, &short)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                );
            }
        }
        Ok(keys)
    }

    /// Whether no session holds the advisory lock `name` (PostgreSQL).
    async fn lock_is_free(&self, name: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
        let free = row.try_get::<bool, _>(0)?;
        tx.rollback().await?;
        Ok(free)
    }

    /// Waits for the lock `name` across consoles, and holds it until the answer is
    /// dropped. Each console orders its own callers first, so that one console holds
    /// at most one connection waiting per name.
    pub async fn lock(&self, name: &str) -> Result<DbLock> {
        if !self.is_postgres() {
            return Ok(DbLock { _tx: None });
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT 1 FROM (SELECT pg_advisory_xact_lock(hashtextextended($1, 0))) AS l")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        Ok(DbLock {
            _tx: Some(std::sync::Mutex::new(tx)),
        })
    }

    /// Counts a failed login (`kind` `login`) or join code (`join`) of `user` from
    /// `address` at `at_ms`, and forgets failures from before `forget_before_ms`.
    pub async fn record_login_failure(
        &self,
        kind: &str,
        user: &str,
        address: &str,
        at_ms: i64,
        forget_before_ms: i64,
    ) -> Result<()> {
        sqlx::query("DELETE FROM login_failures WHERE at_ms < $1")
            .bind(forget_before_ms)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO login_failures (kind, user_name, address, at_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(kind)
        .bind(user)
        .bind(address)
        .bind(at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The failures of kind `kind` since `since_ms` that count against `user` from
    /// `address`.
    pub async fn login_failures(
        &self,
        kind: &str,
        user: &str,
        address: &str,
        since_ms: i64,
    ) -> Result<LoginFailures> {
        let times = |rows: Vec<sqlx::any::AnyRow>| -> Result<Vec<i64>> {
            Ok(rows
                .iter()
                .map(|r| r.try_get::<i64, _>(0))
                .collect::<Result<_, _>>()?)
        };
        let pair = sqlx::query(
            "SELECT at_ms FROM login_failures \
             WHERE kind = $1 AND user_name = $2 AND address = $3 AND at_ms >= $4 ORDER BY at_ms",
        )
        .bind(kind)
        .bind(user)
        .bind(address)
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        let of_user = sqlx::query(
            "SELECT at_ms FROM login_failures \
             WHERE kind = $1 AND user_name = $2 AND at_ms >= $3 ORDER BY at_ms",
        )
        .bind(kind)
        .bind(user)
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        let names = sqlx::query(
            "SELECT user_name, MAX(at_ms) FROM login_failures \
             WHERE kind = $1 AND address = $2 AND at_ms >= $3 GROUP BY user_name ORDER BY user_name",
        )
        .bind(kind)
        .bind(address)
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?)))
        .collect::<Result<_, sqlx::Error>>()?;
        Ok(LoginFailures {
            pair: times(pair)?,
            user: times(of_user)?,
            names,
        })
    }
}
