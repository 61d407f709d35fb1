//! Persistence for the console: users, tokens, containers, port leases, audit log.
//!
//! One set of migrations and one set of queries serve SQLite (the embedded default) and
//! PostgreSQL, through sqlx's `Any` driver: the SQL here sticks to what both accept, and
//! every query uses `$n` placeholders, which both understand.
//!
//! Rows are parsed into domain types on the way out, so a corrupted row is an error
//! here, not a surprise further up.

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;
use wm_domain::{
    Backend, ContainerKey, ContainerName, ContainerStatus, GuestPort, Role, Scope, StopReason,
    UserName,
};

mod coordination;
mod copy;
mod vms;

pub use coordination::{DbLock, LeaderLease, LoginFailures};
pub use copy::copy_store;
pub use vms::{VmImageRecord, VmRecord};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A row with that key exists already.
    #[error("already exists: {0}")]
    Conflict(String),
    /// A stored value does not parse: the database was changed behind our back.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("migrating the database failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database was migrated by a newer `wm`: running this one on it could lose data.
    #[error(
        "the database's schema is at migration {found}, newer than this wm knows (up to {known}): \
         run the wm version that upgraded it, or restore a backup taken before the upgrade"
    )]
    NewerSchema { found: i64, known: i64 },
    /// A backup, restore or copy of the store could not be made.
    #[error("{0}")]
    Backup(String),
    /// A lock this needs is held elsewhere for now: try again later.
    #[error("{0}")]
    Held(String),
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The newest migration this binary carries.
pub fn schema_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// The newest migration applied to the database; `None` for a new one.
async fn applied_version(pool: &AnyPool) -> Option<i64> {
    // No table yet (a new database) reads as none.
    sqlx::query("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(pool)
        .await
        .ok()
        .and_then(|row| row.try_get::<Option<i64>, _>(0).ok().flatten())
}

/// Refuses a database a newer `wm` migrated (older ones are migrated forward at start).
async fn check_schema_version(pool: &AnyPool) -> Result<()> {
    let known = schema_version();
    // Read on a connection of its own, closed before the migrations run: a pooled SQLite
    // connection that read the old schema would go on answering from it afterwards
    // (`SELECT *` of a table the migrations changed came back short).
    let mut conn = pool.acquire().await?;
    let applied = sqlx::query("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(&mut *conn)
        .await
        .ok()
        .and_then(|row| row.try_get::<Option<i64>, _>(0).ok().flatten());
    conn.close().await?;
    match applied {
        Some(found) if found > known => Err(StoreError::NewerSchema { found, known }),
        _ => Ok(()),
    }
}

/// The file of a `sqlite:` URL.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
}

/// Writes a consistent copy of the store at `url` to `dest`, also while consoles use it:
/// SQLite's `VACUUM INTO` (one read transaction, so one moment's state), or `pg_dump`'s
/// custom format for PostgreSQL (one snapshot). `dest` must not exist.
pub async fn backup(url: &str, dest: &std::path::Path) -> Result<()> {
    if dest.exists() {
        return Err(StoreError::Backup(format!(
            "{} exists already: name a new file",
            dest.display()
        )));
    }
    if let Some(db) = sqlite_file(url) {
        if !db.exists() {
            return Err(StoreError::Backup(format!(
                "no database at {}",
                db.display()
            )));
        }
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .connect(&format!("sqlite://{}?mode=ro", db.display()))
            .await?;
        sqlx::query("VACUUM INTO $1")
            .bind(dest.display().to_string())
            .execute(&pool)
            .await?;
        pool.close().await;
        return Ok(());
    }
    let out = tokio::process::Command::new("pg_dump")
        .args(["--format=custom", "--no-owner", "--file"])
        .arg(dest)
        .arg(url)
        .output()
        .await
        .map_err(|e| {
            StoreError::Backup(format!(
                "pg_dump did not run ({e}): install postgresql-client"
            ))
        })?;
    if !out.status.success() {
        return Err(StoreError::Backup(format!(
            "pg_dump failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Loads a copy made by [`backup`] into the store at `url`, replacing what it holds. The
/// caller makes sure no console uses it. A copy of a newer schema is refused; an older
/// one is migrated forward at the next start, as after an upgrade.
pub async fn restore(url: &str, src: &std::path::Path) -> Result<()> {
    if !src.is_file() {
        return Err(StoreError::Backup(format!(
            "no backup at {}",
            src.display()
        )));
    }
    if let Some(db) = sqlite_file(url) {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .connect(&format!("sqlite://{}?mode=ro", src.display()))
            .await
            .map_err(|e| {
                StoreError::Backup(format!("{} is not a SQLite backup: {e}", src.display()))
            })?;
        let version = applied_version(&pool).await;
        pool.close().await;
        match version {
            None => {
                return Err(StoreError::Backup(format!(
                    "{} is not a backup of whalemountain (no migrations in it)",
                    src.display()
                )))
            }
            Some(found) if found > schema_version() => {
                return Err(StoreError::NewerSchema {
                    found,
                    known: schema_version(),
                })
            }
            Some(_) => {}
        }
        // Into place in one rename; the old database's journal files go with it.
        let parent = db.parent().unwrap_or(std::path::Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| StoreError::Backup(e.to_string()))?;
        let staged = parent.join(".wm-restore.db");
        std::fs::copy(src, &staged).map_err(|e| StoreError::Backup(e.to_string()))?;
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
        std::fs::rename(&staged, &db).map_err(|e| StoreError::Backup(e.to_string()))?;
        return Ok(());
    }
    let out = tokio::process::Command::new("pg_restore")
        .args([
            "--clean",
            "--if-exists",
            "--no-owner",
            "--single-transaction",
            "--dbname",
        ])
        .arg(url)
        .arg(src)
        .output()
        .await
        .map_err(|e| {
            StoreError::Backup(format!(
                "pg_restore did not run ({e}): install postgresql-client"
            ))
        })?;
    if !out.status.success() {
        return Err(StoreError::Backup(format!(
            "pg_restore failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserSource {
    Local,
    Ldap,
}

impl UserSource {
    fn as_str(&self) -> &'static str {
        match self {
            UserSource::Local => "local",
            UserSource::Ldap => "ldap",
        }
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub name: UserName,
    pub display_name: Option<String>,
    pub role: Role,
    pub source: UserSource,
    pub password_hash: Option<String>,
    pub uid_number: Option<i64>,
    pub created_at: i64,
    /// A disabled account cannot log in, and has no sessions or tokens.
    pub disabled: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Session,
    Personal,
}

impl TokenKind {
    fn as_str(self) -> &'static str {
        match self {
            TokenKind::Session => "session",
            TokenKind::Personal => "personal",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Token {
    /// SHA-256 of the secret, hex.
    pub hash: String,
    /// Public identifier, safe to show and to revoke by.
    pub id: String,
    pub user: UserName,
    pub kind: TokenKind,
    pub name: Option<String>,
    pub scope: Scope,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortLease {
    pub guest: GuestPort,
    pub host_port: u16,
}

#[derive(Debug, Clone)]
pub struct ContainerRecord {
    /// The full name, `<owner>-<short name>`: what people see, not unique.
    pub name: ContainerName,
    pub owner: UserName,
    pub short_name: wm_domain::ShortName,
    pub image: String,
    pub backend: Backend,
    pub host: String,
    pub status: ContainerStatus,
    pub env: Vec<String>,
    pub engine_id: Option<String>,
    pub created_at: i64,
    pub ports: Vec<PortLease>,
    /// Its memory limit, in bytes.
    pub memory_bytes: i64,
    /// Its CPU limit, in billionths of a CPU.
    pub nano_cpus: i64,
    /// The GPUs it holds on its host (their ids), from the GPU leases.
    pub gpus: Vec<String>,
    /// When it expires (Unix seconds): it is stopped then, and deleted after a grace period.
    pub expires_at: Option<i64>,
    /// Who set the expiry (a user name).
    pub expiry_set_by: Option<String>,
    /// When it was last used through the console (an exec), Unix seconds.
    pub last_activity_at: Option<i64>,
    /// Since when the reclaim worker has seen it idle, Unix seconds.
    pub idle_since: Option<i64>,
    /// Why the console itself stopped it; cleared when it is started again.
    pub stop_reason: Option<StopReason>,
}

impl ContainerRecord {
    /// The container's identity: owner and short name.
    pub fn key(&self) -> ContainerKey {
        ContainerKey {
            owner: self.owner.clone(),
            short: self.short_name.clone(),
        }
    }
}

/// One container's place on one GPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuLease {
    pub host: String,
    pub gpu: String,
    /// Which of the GPU's `share` places.
    pub slot: i64,
    pub owner: UserName,
    pub short_name: String,
}

/// What a user holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Containers that are not gone.
    pub containers: i64,
    /// Containers running or on their way to it.
    pub running: i64,
    /// CPU and memory limits of those, summed.
    pub nano_cpus: i64,
    pub memory_bytes: i64,
    /// GPU places held.
    pub gpus: i64,
    /// Host ports held.
    pub ports: i64,
    /// Bytes in the user's storage, on every host, as last measured.
    pub storage_bytes: i64,
}

/// An administrator's overrides of a user's quota; `None` keeps the role's value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaOverride {
    pub containers: Option<i64>,
    pub running: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub memory_bytes: Option<i64>,
    pub gpus: Option<i64>,
    pub ports: Option<i64>,
    pub builds: Option<i64>,
    pub storage_bytes: Option<i64>,
}

fn quota_from_row(r: &AnyRow) -> Result<QuotaOverride> {
    Ok(QuotaOverride {
        containers: r.try_get("containers")?,
        running: r.try_get("running")?,
        nano_cpus: r.try_get("nano_cpus")?,
        memory_bytes: r.try_get("memory_bytes")?,
        gpus: r.try_get("gpus")?,
        ports: r.try_get("ports")?,
        builds: r.try_get("builds")?,
        storage_bytes: r.try_get("storage_bytes")?,
    })
}

/// The live statuses as an SQL list: running or on the way to it, on a Docker host or
/// the cluster.
fn live_statuses() -> String {
    status_list(|s| s.is_live() || s == ContainerStatus::Pending)
}

/// The statuses `keep` keeps, as an SQL list; the words are the enum's own, never user
/// input.
fn status_list(keep: impl Fn(ContainerStatus) -> bool) -> String {
    ContainerStatus::ALL
        .iter()
        .copied()
        .filter(|s| keep(*s))
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A user's GitLab runner settings.
#[derive(Clone, PartialEq, Eq)]
pub struct CiSettings {
    pub owner: UserName,
    pub gitlab_url: String,
    pub runner_token: String,
    pub updated_at: i64,
}

impl std::fmt::Debug for CiSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CiSettings")
            .field("owner", &self.owner)
            .field("gitlab_url", &self.gitlab_url)
            .finish_non_exhaustive()
    }
}

/// A description and a sharing flag, kept per image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageMeta {
    pub reference: String,
    pub owner: UserName,
    pub description: String,
    pub shared: bool,
    pub updated_at: i64,
}

/// Where an image's scan stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanStatus {
    /// Pulled or built, not scanned yet (or being scanned).
    Pending,
    Clean,
    /// The scanner found something: the image is quarantined.
    Flagged,
    /// The scan could not run or did not finish.
    Error,
}

impl ScanStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ScanStatus::Pending => "pending",
            ScanStatus::Clean => "clean",
            ScanStatus::Flagged => "flagged",
            ScanStatus::Error => "error",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "pending" => ScanStatus::Pending,
            "clean" => ScanStatus::Clean,
            "flagged" => ScanStatus::Flagged,
            "error" => ScanStatus::Error,
            other => return Err(StoreError::Corrupt(format!("scan status {other:?}"))),
        })
    }
}

/// The last scan of one image (by id), and an administrator's release of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageScan {
    /// `sha256:...`.
    pub image_id: String,
    pub status: ScanStatus,
    /// What the scanner reported, one line each (`/eicar.txt: Eicar-Signature`); for an
    /// error, why the scan did not run.
    pub findings: Vec<String>,
    /// Which scanner (`clamav`, or the configured command's program).
    pub scanner: String,
    pub duration_ms: i64,
    /// Unix seconds.
    pub scanned_at: i64,
    pub released_by: Option<String>,
    /// Unix seconds.
    pub released_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub id: String,
    /// Unix microseconds.
    pub at: i64,
    pub actor: Option<String>,
    /// A dotted verb: `container.create`, `user.disable`...
    pub action: String,
    pub target: Option<String>,
    pub result: i64,
    pub detail: Option<String>,
    /// The client's address, for requests.
    pub source: Option<String>,
}

/// Which audit entries to read: each field given narrows the search.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    /// An action, or a prefix ending in `.` (`container.`).
    pub action: Option<String>,
    pub target: Option<String>,
    /// Unix microseconds, inclusive.
    pub since: Option<i64>,
    /// Unix microseconds, exclusive.
    pub until: Option<i64>,
    pub limit: i64,
}

/// A course: a teacher's class, and who is enrolled.
#[derive(Debug, Clone)]
pub struct Course {
    pub id: String,
    pub name: String,
    pub term: Option<String>,
    pub owner: UserName,
    /// Unix seconds.
    pub ends_at: Option<i64>,
    pub ldap_group: Option<String>,
    /// Host labels the members' containers need unless they say otherwise.
    pub host_labels: Vec<String>,
    pub created_at: i64,
    /// Sorted by name.
    pub members: Vec<UserName>,
    /// The code that enrols whoever enters it; `None`: the course takes none.
    pub join_code: Option<String>,
}

/// An image shared with a course, with the course's own name and note for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CourseShare {
    pub reference: String,
    /// Whose image it is.
    pub owner: String,
    pub course: String,
    /// The course's name for it ("exercise 3").
    pub title: Option<String>,
    /// The course's note on it ("use this for exercise 3").
    pub note: Option<String>,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// Where it connects: the leader lease opens a connection of its own there.
    url: std::sync::Arc<str>,
    /// This process's name among the consoles of the database (see `coordination`).
    console: std::sync::Arc<str>,
}

impl Store {
    /// Connects and brings the schema up to date.
    ///
    /// `url` is `sqlite://path` (the file is created if missing) or `postgres://...`.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let is_sqlite = url.starts_with("sqlite:");
        let url = if is_sqlite && !url.contains("mode=") {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}mode=rwc")
        } else {
            url.to_string()
        };
        // SQLite takes one writer at a time and makes the others wait by polling its lock
        // with sleeps of up to 100 ms (the busy timeout): under concurrent writes a login
        // or a create waited up to seconds for nothing. With one connection the console's
        // queries queue in order in-process instead; each is short, since a commit does
        // not wait for the disk (below).
        let pool = AnyPoolOptions::new()
            .max_connections(if is_sqlite { 1 } else { 10 })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if is_sqlite {
                        // WAL lets other processes (a backup) read while the console
                        // writes; the busy timeout makes them wait instead of failing.
                        // With WAL, synchronous = NORMAL commits without waiting for the
                        // disk (it syncs at checkpoints): the database stays whole after
                        // any crash, and a power cut can undo the last commits.
                        conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;")
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        check_schema_version(&pool).await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self {
            pool,
            url: url.into(),
            console: uuid::Uuid::new_v4().simple().to_string().into(),
        })
    }

    /// Closes every connection; waits for them to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    // --- users -------------------------------------------------------------------------

    pub async fn insert_user(&self, u: &User) -> Result<()> {
        sqlx::query(
            "INSERT INTO users (name, display_name, role, source, password_hash, uid_number, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(u.name.as_str())
        .bind(u.display_name.clone())
        .bind(u.role.as_str())
        .bind(u.source.as_str())
        .bind(u.password_hash.clone())
        .bind(u.uid_number)
        .bind(u.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, format!("user {}", u.name)))?;
        Ok(())
    }

    pub async fn user(&self, name: &str) -> Result<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| user_from_row(&r)).transpose()
    }

    pub async fn users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query("SELECT * FROM users ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(user_from_row).collect()
    }

    /// Sets a local account's password and role, creating the account if needed.
    pub async fn upsert_local_user(
        &self,
        name: &UserName,
        role: Role,
        password_hash: &str,
        now: i64,
    ) -> Result<()> {
        let updated = sqlx::query(
            "UPDATE users SET password_hash = $1, role = $2 WHERE name = $3 AND source = 'local'",
        )
        .bind(password_hash)
        .bind(role.as_str())
        .bind(name.as_str())
        .execute(&self.pool)
        .await?
        .rows_affected();
        if updated == 0 {
            self.insert_user(&User {
                name: name.clone(),
                display_name: None,
                role,
                source: UserSource::Local,
                password_hash: Some(password_hash.to_string()),
                uid_number: None,
                created_at: now,
                disabled: false,
            })
            .await?;
        }
        Ok(())
    }

    /// Records a person the directory vouched for: created on first login, name, uid
    /// number and role refreshed at every login.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when a local account has that name: the two are never
    /// merged.
    pub async fn upsert_directory_user(
        &self,
        name: &UserName,
        display_name: Option<&str>,
        uid_number: Option<i64>,
        role: Role,
        now: i64,
    ) -> Result<User> {
        let updated = sqlx::query(
            "UPDATE users SET display_name = $1, uid_number = $2, role = $3 \
             WHERE name = $4 AND source = 'ldap'",
        )
        .bind(display_name)
        .bind(uid_number)
        .bind(role.as_str())
        .bind(name.as_str())
        .execute(&self.pool)
        .await?
        .rows_affected();
        if updated == 0 {
            self.insert_user(&User {
                name: name.clone(),
                display_name: display_name.map(String::from),
                role,
                source: UserSource::Ldap,
                password_hash: None,
                uid_number,
                created_at: now,
                disabled: false,
            })
            .await?;
        }
        self.user(name.as_str())
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("user {name} vanished")))
    }

    // --- tokens ------------------------------------------------------------------------

    pub async fn insert_token(&self, t: &Token) -> Result<()> {
        sqlx::query(
            "INSERT INTO tokens (hash, id, user_name, kind, name, scope, created_at, expires_at, last_used_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&t.hash)
        .bind(&t.id)
        .bind(t.user.as_str())
        .bind(t.kind.as_str())
        .bind(t.name.clone())
        .bind(t.scope.as_str())
        .bind(t.created_at)
        .bind(t.expires_at)
        .bind(t.last_used_at)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, "token".into()))?;
        Ok(())
    }

    /// The unexpired token with this hash and its user.
    pub async fn token(&self, hash: &str, now: i64) -> Result<Option<(Token, User)>> {
        let row = sqlx::query(
            "SELECT t.hash, t.id, t.user_name, t.kind, t.name AS token_name, t.scope, \
                    t.created_at AS token_created_at, t.expires_at, t.last_used_at, u.* \
             FROM tokens t JOIN users u ON u.name = t.user_name \
             WHERE t.hash = $1 AND (t.expires_at IS NULL OR t.expires_at > $2) AND u.disabled = 0",
        )
        .bind(hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some((token_from_row(&r)?, user_from_row(&r)?)))
    }

    /// Records that a token was used at `now`.
    pub async fn touch_token(&self, hash: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE tokens SET last_used_at = $1 WHERE hash = $2")
            .bind(now)
            .bind(hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A user's personal access tokens, newest first.
    pub async fn personal_tokens(&self, user: &str) -> Result<Vec<Token>> {
        self.tokens_of(user, TokenKind::Personal).await
    }

    /// A user's tokens of one kind (sessions or personal tokens), newest first.
    pub async fn tokens_of(&self, user: &str, kind: TokenKind) -> Result<Vec<Token>> {
        let rows = sqlx::query(
            "SELECT * FROM tokens WHERE user_name = $1 AND kind = $2 ORDER BY created_at DESC, id",
        )
        .bind(user)
        .bind(kind.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    /// Revokes one of `user`'s personal tokens by its public id; `false` when they have
    /// none with that id.
    pub async fn delete_personal_token(&self, user: &str, id: &str) -> Result<bool> {
        self.delete_token_of(user, id, TokenKind::Personal).await
    }

    /// Revokes one of `user`'s tokens of one kind by its public id; `false` when they have
    /// none with that id.
    pub async fn delete_token_of(&self, user: &str, id: &str, kind: TokenKind) -> Result<bool> {
        Ok(
            sqlx::query("DELETE FROM tokens WHERE user_name = $1 AND id = $2 AND kind = $3")
                .bind(user)
                .bind(id)
                .bind(kind.as_str())
                .execute(&self.pool)
                .await?
                .rows_affected()
                > 0,
        )
    }

    pub async fn delete_token(&self, hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM tokens WHERE hash = $1")
            .bind(hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes expired tokens; returns how many.
    pub async fn purge_expired_tokens(&self, now: i64) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM tokens WHERE expires_at IS NOT NULL AND expires_at <= $1")
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    // --- containers ----------------------------------------------------------------------

    /// Inserts the container; [`StoreError::Conflict`] when its owner has one of that
    /// short name. This is what reserves a name against concurrent creates.
    pub async fn insert_container(&self, c: &ContainerRecord) -> Result<()> {
        self.insert_container_with_gpus(c, &[]).await
    }

    pub async fn container(&self, key: &ContainerKey) -> Result<Option<ContainerRecord>> {
        let row = sqlx::query("SELECT * FROM containers WHERE owner = $1 AND short_name = $2")
            .bind(key.owner.as_str())
            .bind(key.short.as_str())
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut c = container_from_row(&row)?;
        c.ports = self.ports_of(key).await?;
        c.gpus = self.gpus_of(key).await?;
        Ok(Some(c))
    }

    /// Every container whose full name is `name`, whoever owns it: several when user
    /// names make `<owner>-<short name>` the same for different owners.
    pub async fn containers_named(&self, name: &str) -> Result<Vec<ContainerRecord>> {
        let rows = sqlx::query("SELECT * FROM containers WHERE name = $1 ORDER BY owner")
            .bind(name)
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut c = container_from_row(r)?;
            c.ports = self.ports_of(&c.key()).await?;
            c.gpus = self.gpus_of(&c.key()).await?;
            out.push(c);
        }
        Ok(out)
    }

    /// Containers of one owner, or everyone's, ordered by name, with their ports.
    pub async fn containers(&self, owner: Option<&str>) -> Result<Vec<ContainerRecord>> {
        let rows = match owner {
            Some(o) => {
                sqlx::query("SELECT * FROM containers WHERE owner = $1 ORDER BY name")
                    .bind(o)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("SELECT * FROM containers ORDER BY name, owner")
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        let leases = match owner {
            Some(o) => sqlx::query(
                "SELECT owner, short_name, guest_port, host_port FROM port_leases WHERE owner = $1",
            )
            .bind(o)
            .fetch_all(&self.pool)
            .await?,
            None => {
                sqlx::query("SELECT owner, short_name, guest_port, host_port FROM port_leases")
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        let mut by_container: BTreeMap<(String, String), Vec<PortLease>> = BTreeMap::new();
        for l in &leases {
            by_container
                .entry((l.try_get("owner")?, l.try_get("short_name")?))
                .or_default()
                .push(lease_from_row(l)?);
        }
        let mut gpus_by_container: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for l in self.gpu_leases(owner).await? {
            gpus_by_container
                .entry((l.owner.to_string(), l.short_name.clone()))
                .or_default()
                .push(l.gpu);
        }
        rows.iter()
            .map(|r| {
                let mut c = container_from_row(r)?;
                let key = (c.owner.to_string(), c.short_name.to_string());
                c.ports = by_container.remove(&key).unwrap_or_default();
                c.ports.sort_by_key(|p| p.guest);
                c.gpus = gpus_by_container.remove(&key).unwrap_or_default();
                c.gpus.sort();
                Ok(c)
            })
            .collect()
    }

    pub async fn set_container_status(
        &self,
        key: &ContainerKey,
        status: ContainerStatus,
        engine_id: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE containers SET status = $1, engine_id = COALESCE($2, engine_id) \
             WHERE owner = $3 AND short_name = $4",
        )
        .bind(status.as_str())
        .bind(engine_id)
        .bind(key.owner.as_str())
        .bind(key.short.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Sets (or with `None` removes) the container's expiry, and who set it.
    pub async fn set_container_expiry(
        &self,
        key: &ContainerKey,
        expires_at: Option<i64>,
        set_by: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE containers SET expires_at = $1, expiry_set_by = $2 \
             WHERE owner = $3 AND short_name = $4",
        )
        .bind(expires_at)
        .bind(set_by)
        .bind(key.owner.as_str())
        .bind(key.short.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The container was used through the console at `at`: it is not idle.
    pub async fn touch_container(&self, key: &ContainerKey, at: i64) -> Result<()> {
        sqlx::query(
            "UPDATE containers SET last_activity_at = $1, idle_since = NULL \
             WHERE owner = $2 AND short_name = $3",
        )
        .bind(at)
        .bind(key.owner.as_str())
        .bind(key.short.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Since when the container is idle; `None`: it is not.
    pub async fn set_container_idle_since(
        &self,
        key: &ContainerKey,
        since: Option<i64>,
    ) -> Result<()> {
        sqlx::query("UPDATE containers SET idle_since = $1 WHERE owner = $2 AND short_name = $3")
            .bind(since)
            .bind(key.owner.as_str())
            .bind(key.short.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records why the console stopped the container (`None` when it is started again:
    /// the reason and the idle time go).
    pub async fn set_container_stop_reason(
        &self,
        key: &ContainerKey,
        reason: Option<StopReason>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE containers SET stop_reason = $1, idle_since = NULL \
             WHERE owner = $2 AND short_name = $3",
        )
        .bind(reason.map(StopReason::as_str))
        .bind(key.owner.as_str())
        .bind(key.short.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks a container as gone from its host and releases its ports and GPUs, in one
    /// step.
    pub async fn mark_container_gone(&self, key: &ContainerKey) -> Result<()> {
        self.release_ports_and(
            key,
            "UPDATE containers SET status = 'gone' WHERE owner = $1 AND short_name = $2",
        )
        .await
    }

    /// Deletes the container and its port leases.
    pub async fn delete_container(&self, key: &ContainerKey) -> Result<()> {
        self.release_ports_and(
            key,
            "DELETE FROM containers WHERE owner = $1 AND short_name = $2",
        )
        .await
    }

    /// Releases a container's ports and GPUs and runs `then` (binding the owner as `$1` and the
    /// short name as `$2`), in one transaction.
    async fn release_ports_and(&self, key: &ContainerKey, then: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        // What the container wrote into its owner's storage since the last measurement is
        // unseen: that host's figure is measured again before it is trusted
        // (`storage_written_on`).
        sqlx::query(
            "INSERT INTO storage_usage (owner, host, bytes, measured_at, stale) \
             SELECT owner, host, 0, 0, 1 FROM containers WHERE owner = $1 AND short_name = $2 \
             ON CONFLICT (owner, host) DO UPDATE SET stale = 1",
        )
        .bind(key.owner.as_str())
        .bind(key.short.as_str())
        .execute(&mut *tx)
        .await?;
        for leases in ["port_leases", "gpu_leases"] {
            // The table names are ours, never user input.
            sqlx::query(&format!(
                "DELETE FROM {leases} WHERE owner = $1 AND short_name = $2"
            ))
            .bind(key.owner.as_str())
            .bind(key.short.as_str())
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(then)
            .bind(key.owner.as_str())
            .bind(key.short.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// How many containers are in each status.
    pub async fn count_containers_by_status(&self) -> Result<Vec<(ContainerStatus, i64)>> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM containers GROUP BY status ORDER BY status",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let status: String = r.try_get("status")?;
                let status = ContainerStatus::parse(&status)
                    .map_err(|e| StoreError::Corrupt(format!("container status: {e}")))?;
                Ok((status, r.try_get("n")?))
            })
            .collect()
    }

    /// Containers running or on their way to it (being created, restarting, paused), per
    /// host: what placement balances.
    pub async fn containers_per_host(&self) -> Result<Vec<(String, i64)>> {
        let sql = format!(
            "SELECT host, COUNT(*) AS n FROM containers WHERE status IN ({}) GROUP BY host",
            status_list(ContainerStatus::is_live)
        );
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| Ok((r.try_get("host")?, r.try_get("n")?)))
            .collect()
    }

    // --- hosts -----------------------------------------------------------------------------

    pub async fn drained_hosts(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT host FROM drained_hosts ORDER BY host")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("host")?)).collect()
    }

    /// Drains `host` (no new containers go there) or puts it back in service.
    pub async fn set_host_drained(&self, host: &str, drained: bool, now: i64) -> Result<()> {
        if drained {
            sqlx::query(
                "INSERT INTO drained_hosts (host, since) VALUES ($1, $2) ON CONFLICT (host) DO NOTHING",
            )
            .bind(host)
            .bind(now)
            .execute(&self.pool)
            .await?;
        } else {
            sqlx::query("DELETE FROM drained_hosts WHERE host = $1")
                .bind(host)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    // --- port leases ---------------------------------------------------------------------

    /// Leases `host_port` on `host` to a container. `Ok(false)` when another container
    /// holds it: the primary key decides, so two concurrent callers never both win.
    pub async fn lease_port(
        &self,
        host: &str,
        host_port: u16,
        container: &ContainerKey,
        guest: GuestPort,
    ) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO port_leases (host, host_port, owner, short_name, guest_port) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(host)
        .bind(i64::from(host_port))
        .bind(container.owner.as_str())
        .bind(container.short.as_str())
        .bind(i64::from(guest.get()))
        .execute(&self.pool)
        .await;
        match r {
            Ok(_) => Ok(true),
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn ports_of(&self, container: &ContainerKey) -> Result<Vec<PortLease>> {
        self.leases_in("port_leases", container).await
    }

    /// The leases of one container or VM in `table` (ours, never user input).
    async fn leases_in(&self, table: &str, container: &ContainerKey) -> Result<Vec<PortLease>> {
        let rows = sqlx::query(&format!(
            "SELECT guest_port, host_port FROM {table} \
             WHERE owner = $1 AND short_name = $2 ORDER BY guest_port"
        ))
        .bind(container.owner.as_str())
        .bind(container.short.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(lease_from_row).collect()
    }

    // --- GPU leases ------------------------------------------------------------------------

    /// Records the container and leases it the GPU places `gpus` (`(gpu, slot)`) on its
    /// host, noting this console as the one making it ([`Store::create_ended`] when it is
    /// made), in one transaction. [`StoreError::Conflict`] when its owner has a container
    /// of that short name or a place is taken: the primary keys decide, so of two
    /// concurrent callers one gets the conflict and nothing of its is kept.
    pub async fn insert_container_with_gpus(
        &self,
        c: &ContainerRecord,
        gpus: &[(String, i64)],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO containers (name, owner, short_name, image, backend, host, status, env, engine_id, created_at, memory_bytes, nano_cpus, expires_at, expiry_set_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(c.name.as_str())
        .bind(c.owner.as_str())
        .bind(c.short_name.as_str())
        .bind(&c.image)
        .bind(c.backend.as_str())
        .bind(&c.host)
        .bind(c.status.as_str())
        .bind(serde_json::to_string(&c.env).expect("strings serialize"))
        .bind(c.engine_id.clone())
        .bind(c.created_at)
        .bind(c.memory_bytes)
        .bind(c.nano_cpus)
        .bind(c.expires_at)
        .bind(c.expiry_set_by.clone())
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict(e, format!("container {}", c.name)))?;
        for (gpu, slot) in gpus {
            sqlx::query(
                "INSERT INTO gpu_leases (host, gpu, slot, owner, short_name) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&c.host)
            .bind(gpu)
            .bind(*slot)
            .bind(c.owner.as_str())
            .bind(c.short_name.as_str())
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict(e, format!("place {slot} of GPU {gpu} on {}", c.host)))?;
        }
        sqlx::query(
            "INSERT INTO creates_in_flight (owner, short_name, console) VALUES ($1, $2, $3)",
        )
        .bind(c.owner.as_str())
        .bind(c.short_name.as_str())
        .bind(&*self.console)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Leases one GPU place to an existing container (an adopted one); `Ok(false)` when
    /// the place is taken.
    pub async fn lease_gpu(
        &self,
        host: &str,
        gpu: &str,
        slot: i64,
        container: &ContainerKey,
    ) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO gpu_leases (host, gpu, slot, owner, short_name) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(host)
        .bind(gpu)
        .bind(slot)
        .bind(container.owner.as_str())
        .bind(container.short.as_str())
        .execute(&self.pool)
        .await;
        match r {
            Ok(_) => Ok(true),
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The GPU leases of one owner, or everyone's.
    pub async fn gpu_leases(&self, owner: Option<&str>) -> Result<Vec<GpuLease>> {
        let rows = match owner {
            Some(o) => {
                sqlx::query("SELECT * FROM gpu_leases WHERE owner = $1 ORDER BY host, gpu, slot")
                    .bind(o)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("SELECT * FROM gpu_leases ORDER BY host, gpu, slot")
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter()
            .map(|r| {
                Ok(GpuLease {
                    host: r.try_get("host")?,
                    gpu: r.try_get("gpu")?,
                    slot: r.try_get("slot")?,
                    owner: parse_user_name(r.try_get("owner")?)?,
                    short_name: r.try_get("short_name")?,
                })
            })
            .collect()
    }

    async fn gpus_of(&self, container: &ContainerKey) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT gpu FROM gpu_leases WHERE owner = $1 AND short_name = $2 ORDER BY gpu",
        )
        .bind(container.owner.as_str())
        .bind(container.short.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("gpu")?)).collect()
    }

    /// The memory limits of the live containers on each host (those running or on their
    /// way to it), summed: what placement commits a host's memory to.
    pub async fn memory_per_host(&self) -> Result<Vec<(String, i64)>> {
        let sql = format!(
            "SELECT host, CAST(SUM(memory_bytes) AS BIGINT) AS m FROM containers WHERE status IN ({}) GROUP BY host",
            live_statuses()
        );
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("host")?,
                    r.try_get::<Option<i64>, _>("m")?.unwrap_or(0),
                ))
            })
            .collect()
    }

    // --- quotas ------------------------------------------------------------------------------

    /// What each user holds (one owner's, or everyone's who holds anything).
    pub async fn usage(&self, owner: Option<&str>) -> Result<Vec<(UserName, Usage)>> {
        let mut by_owner: BTreeMap<String, Usage> = BTreeMap::new();
        let live = live_statuses();
        let filter = if owner.is_some() {
            "WHERE owner = $1"
        } else {
            ""
        };
        let and = if owner.is_some() {
            "AND owner = $1"
        } else {
            ""
        };
        // (what it counts, the query): several queries may add to one figure (a running VM
        // holds CPUs and memory as a container does).
        let queries = [
            (0, format!(
                "SELECT owner, COUNT(*) AS n FROM containers WHERE status <> 'gone' {and} GROUP BY owner"
            )),
            (1, format!(
                "SELECT owner, COUNT(*) AS n FROM containers WHERE status IN ({live}) {and} GROUP BY owner"
            )),
            (2, format!(
                "SELECT owner, CAST(SUM(nano_cpus) AS BIGINT) AS n FROM containers WHERE status IN ({live}) {and} GROUP BY owner"
            )),
            (3, format!(
                "SELECT owner, CAST(SUM(memory_bytes) AS BIGINT) AS n FROM containers WHERE status IN ({live}) {and} GROUP BY owner"
            )),
            (4, format!("SELECT owner, COUNT(*) AS n FROM gpu_leases {filter} GROUP BY owner")),
            (5, format!("SELECT owner, COUNT(*) AS n FROM port_leases {filter} GROUP BY owner")),
            (5, format!("SELECT owner, COUNT(*) AS n FROM vm_port_leases {filter} GROUP BY owner")),
            (6, format!(
                "SELECT owner, CAST(SUM(bytes) AS BIGINT) AS n FROM storage_usage {filter} GROUP BY owner"
            )),
            (1, format!(
                "SELECT owner, COUNT(*) AS n FROM vms WHERE status = 'running' {and} GROUP BY owner"
            )),
            (2, format!(
                "SELECT owner, CAST(SUM(vcpus) * 1000000000 AS BIGINT) AS n FROM vms WHERE status = 'running' {and} GROUP BY owner"
            )),
            (3, format!(
                "SELECT owner, CAST(SUM(memory_bytes) AS BIGINT) AS n FROM vms WHERE status = 'running' {and} GROUP BY owner"
            )),
            // A VM's disk may grow to its image's virtual size; an image takes its file.
            (6, format!(
                "SELECT owner, CAST(SUM(disk_bytes) AS BIGINT) AS n FROM vms {filter} GROUP BY owner"
            )),
            (6, format!(
                "SELECT owner, CAST(SUM(size) AS BIGINT) AS n FROM vm_images {filter} GROUP BY owner"
            )),
        ];
        for (i, sql) in &queries {
            let mut q = sqlx::query(sql);
            if let Some(o) = owner {
                q = q.bind(o);
            }
            for r in q.fetch_all(&self.pool).await? {
                let who: String = r.try_get("owner")?;
                let n: i64 = r.try_get::<Option<i64>, _>("n")?.unwrap_or(0);
                let u = by_owner.entry(who).or_default();
                match i {
                    0 => u.containers += n,
                    1 => u.running += n,
                    2 => u.nano_cpus += n,
                    3 => u.memory_bytes += n,
                    4 => u.gpus += n,
                    5 => u.ports += n,
                    _ => u.storage_bytes += n,
                }
            }
        }
        by_owner
            .into_iter()
            .map(|(o, u)| Ok((parse_user_name(o)?, u)))
            .collect()
    }

    /// A user's quota overrides, if an administrator set any.
    pub async fn quota_override(&self, user: &str) -> Result<Option<QuotaOverride>> {
        let row = sqlx::query("SELECT * FROM quotas WHERE user_name = $1")
            .bind(user)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(quota_from_row).transpose()
    }

    /// Every user's quota overrides.
    pub async fn quota_overrides(&self) -> Result<Vec<(UserName, QuotaOverride)>> {
        let rows = sqlx::query("SELECT * FROM quotas ORDER BY user_name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    parse_user_name(r.try_get("user_name")?)?,
                    quota_from_row(r)?,
                ))
            })
            .collect()
    }

    /// Sets a user's quota overrides (all of them: a `None` keeps the role's value).
    pub async fn set_quota_override(
        &self,
        user: &UserName,
        q: &QuotaOverride,
        now: i64,
    ) -> Result<()> {
        self.upsert_quota("quotas", "user_name", user.as_str(), q, now)
            .await
    }

    /// Writes a row of quota values to `table` (`quotas` or `course_quotas`), keyed by
    /// its `key` column: the one statement both kinds of quota are set with.
    async fn upsert_quota(
        &self,
        table: &'static str,
        key: &'static str,
        id: &str,
        q: &QuotaOverride,
        now: i64,
    ) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO {table} ({key}, containers, running, nano_cpus, memory_bytes, gpus, ports, builds, storage_bytes, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT ({key}) DO UPDATE SET containers = excluded.containers, \
             running = excluded.running, nano_cpus = excluded.nano_cpus, \
             memory_bytes = excluded.memory_bytes, gpus = excluded.gpus, ports = excluded.ports, \
             builds = excluded.builds, storage_bytes = excluded.storage_bytes, \
             updated_at = excluded.updated_at"
        ))
        .bind(id)
        .bind(q.containers)
        .bind(q.running)
        .bind(q.nano_cpus)
        .bind(q.memory_bytes)
        .bind(q.gpus)
        .bind(q.ports)
        .bind(q.builds)
        .bind(q.storage_bytes)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes a user's overrides: the role's quota applies again.
    pub async fn delete_quota_override(&self, user: &str) -> Result<()> {
        sqlx::query("DELETE FROM quotas WHERE user_name = $1")
            .bind(user)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // --- storage ------------------------------------------------------------------------------

    /// Records what a user's storage measured at `at` on each host of `measured`
    /// (`(host, bytes)`), in one transaction: one commit for all the hosts.
    pub async fn set_storage_usage(
        &self,
        owner: &str,
        measured: &[(&str, i64)],
        at: i64,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for (host, bytes) in measured {
            sqlx::query(
                "INSERT INTO storage_usage (owner, host, bytes, measured_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (owner, host) DO UPDATE \
                 SET bytes = excluded.bytes, measured_at = excluded.measured_at, stale = 0",
            )
            .bind(owner)
            .bind(*host)
            .bind(*bytes)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// What a user's storage measured on each host: `(host, bytes, measured_at)`.
    pub async fn storage_usage(&self, owner: &str) -> Result<Vec<(String, i64, i64)>> {
        let rows = sqlx::query(
            "SELECT host, bytes, measured_at FROM storage_usage WHERE owner = $1 ORDER BY host",
        )
        .bind(owner)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("host")?,
                    r.try_get("bytes")?,
                    r.try_get("measured_at")?,
                ))
            })
            .collect()
    }

    /// The hosts where a user's storage may have changed since it was last measured there:
    /// those that hold one of the user's containers (mounted in each), and those where one
    /// was removed since (`stale`). Elsewhere it changes only through the console's
    /// storage calls, which measure what they wrote.
    pub async fn storage_written_on(&self, owner: &str) -> Result<HashSet<String>> {
        let rows = sqlx::query(
            "SELECT host FROM containers WHERE owner = $1 \
             UNION SELECT host FROM storage_usage WHERE owner = $1 AND stale = 1",
        )
        .bind(owner)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("host")?)).collect()
    }

    /// Forgets a user's storage on a host (it was deleted).
    pub async fn delete_storage_usage(&self, owner: &str, host: &str) -> Result<()> {
        sqlx::query("DELETE FROM storage_usage WHERE owner = $1 AND host = $2")
            .bind(owner)
            .bind(host)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // --- image metadata --------------------------------------------------------------------

    pub async fn image_meta(&self, reference: &str) -> Result<Option<ImageMeta>> {
        let row = sqlx::query("SELECT * FROM image_meta WHERE reference = $1")
            .bind(reference)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(image_meta_from_row).transpose()
    }

    pub async fn all_image_meta(&self) -> Result<Vec<ImageMeta>> {
        let rows = sqlx::query("SELECT * FROM image_meta ORDER BY reference")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(image_meta_from_row).collect()
    }

    /// Creates or replaces the metadata of one reference.
    pub async fn set_image_meta(&self, m: &ImageMeta) -> Result<()> {
        sqlx::query(
            "INSERT INTO image_meta (reference, owner, description, shared, updated_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (reference) DO UPDATE SET owner = excluded.owner, \
             description = excluded.description, shared = excluded.shared, \
             updated_at = excluded.updated_at",
        )
        .bind(&m.reference)
        .bind(m.owner.as_str())
        .bind(&m.description)
        .bind(i64::from(m.shared))
        .bind(m.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn delete_image_meta(&self, reference: &str) -> Result<()> {
        for q in [
            "DELETE FROM image_meta WHERE reference = $1",
            "DELETE FROM image_courses WHERE reference = $1",
        ] {
            sqlx::query(q).bind(reference).execute(&self.pool).await?;
        }
        Ok(())
    }

    /// Shares `owner`'s image with exactly these courses (none: with no course). A share
    /// that stays keeps the course's name and note for the image.
    pub async fn set_image_courses(
        &self,
        reference: &str,
        owner: &str,
        courses: &[String],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query("SELECT course, owner FROM image_courses WHERE reference = $1")
            .bind(reference)
            .fetch_all(&mut *tx)
            .await?;
        for r in &rows {
            let course: String = r.try_get("course")?;
            let was: String = r.try_get("owner")?;
            if !courses.contains(&course) || was != owner {
                sqlx::query("DELETE FROM image_courses WHERE reference = $1 AND course = $2")
                    .bind(reference)
                    .bind(&course)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        for c in courses {
            sqlx::query(
                "INSERT INTO image_courses (reference, owner, course) VALUES ($1, $2, $3) \
                 ON CONFLICT (reference, course) DO NOTHING",
            )
            .bind(reference)
            .bind(owner)
            .bind(c)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The course shares `user` may use or made: images shared with a course they teach
    /// or are enrolled in, and their own images' shares.
    pub async fn image_courses_for(&self, user: &str) -> Result<Vec<CourseShare>> {
        let rows = sqlx::query(
            "SELECT i.reference, i.owner, i.course, i.title, i.note FROM image_courses i \
             JOIN courses c ON c.id = i.course \
             WHERE i.owner = $1 OR c.owner = $1 OR EXISTS \
             (SELECT 1 FROM course_members m WHERE m.course = c.id AND m.user_name = $1) \
             ORDER BY i.reference, i.course",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(course_share_from_row).collect()
    }

    /// The images shared with a course, by reference.
    pub async fn course_images(&self, course: &str) -> Result<Vec<CourseShare>> {
        let rows = sqlx::query(
            "SELECT reference, owner, course, title, note FROM image_courses \
             WHERE course = $1 ORDER BY reference",
        )
        .bind(course)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(course_share_from_row).collect()
    }

    /// Sets the course's name and note for an image shared with it (`None`: none);
    /// `false` when the image is not shared with the course.
    pub async fn set_course_image_note(
        &self,
        course: &str,
        reference: &str,
        title: Option<&str>,
        note: Option<&str>,
    ) -> Result<bool> {
        Ok(sqlx::query(
            "UPDATE image_courses SET title = $1, note = $2 WHERE course = $3 AND reference = $4",
        )
        .bind(title)
        .bind(note)
        .bind(course)
        .bind(reference)
        .execute(&self.pool)
        .await?
        .rows_affected()
            > 0)
    }

    /// Every image reference a container uses, in any status (gone ones too: their
    /// record still names it until it is deleted).
    pub async fn images_in_use(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT DISTINCT image FROM containers ORDER BY image")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>("image")?))
            .collect()
    }

    // --- image scans ----------------------------------------------------------------------

    /// Records a scan of an image: its status, findings, scanner and time. A release of the
    /// same image stays: the content is the same.
    pub async fn set_image_scan(&self, scan: &ImageScan) -> Result<()> {
        let findings = serde_json::to_string(&scan.findings)
            .map_err(|e| StoreError::Corrupt(format!("findings: {e}")))?;
        sqlx::query(
            "INSERT INTO image_scans (image_id, status, findings, scanner, duration_ms, scanned_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (image_id) DO UPDATE SET status = excluded.status, \
             findings = excluded.findings, scanner = excluded.scanner, \
             duration_ms = excluded.duration_ms, scanned_at = excluded.scanned_at",
        )
        .bind(&scan.image_id)
        .bind(scan.status.as_str())
        .bind(findings)
        .bind(&scan.scanner)
        .bind(scan.duration_ms)
        .bind(scan.scanned_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn image_scan(&self, image_id: &str) -> Result<Option<ImageScan>> {
        let row = sqlx::query("SELECT * FROM image_scans WHERE image_id = $1")
            .bind(image_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(image_scan_from_row).transpose()
    }

    pub async fn image_scans(&self) -> Result<Vec<ImageScan>> {
        let rows = sqlx::query("SELECT * FROM image_scans ORDER BY image_id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(image_scan_from_row).collect()
    }

    /// Marks an image's scan released by `by`; false when the image has no scan.
    pub async fn release_image_scan(&self, image_id: &str, by: &str, at: i64) -> Result<bool> {
        Ok(sqlx::query(
            "UPDATE image_scans SET released_by = $1, released_at = $2 WHERE image_id = $3",
        )
        .bind(by)
        .bind(at)
        .bind(image_id)
        .execute(&self.pool)
        .await?
        .rows_affected()
            > 0)
    }

    /// Turns every `pending` scan into an `error` with `reason`: at start-up, the scans a
    /// stopped console left unfinished. Returns how many.
    pub async fn fail_pending_image_scans(&self, reason: &str, at: i64) -> Result<u64> {
        let findings = serde_json::to_string(&[reason])
            .map_err(|e| StoreError::Corrupt(format!("findings: {e}")))?;
        Ok(sqlx::query(
            "UPDATE image_scans SET status = 'error', findings = $1, scanned_at = $2 \
             WHERE status = 'pending'",
        )
        .bind(findings)
        .bind(at)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// Whether a container that is not gone was made from `image`.
    /// How many containers (not gone) use `image`: `owner`'s own, and other users'.
    pub async fn image_users(&self, image: &str, owner: &str) -> Result<(i64, i64)> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(CASE WHEN owner = $2 THEN 1 ELSE 0 END), 0) AS BIGINT) AS own, \
                    CAST(COALESCE(SUM(CASE WHEN owner = $2 THEN 0 ELSE 1 END), 0) AS BIGINT) AS others \
             FROM containers WHERE image = $1 AND status <> 'gone'",
        )
        .bind(image)
        .bind(owner)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("own")?, row.try_get("others")?))
    }

    // --- CI settings ---------------------------------------------------------------------

    pub async fn ci_settings(&self, owner: &str) -> Result<Option<CiSettings>> {
        let row = sqlx::query("SELECT * FROM ci_settings WHERE owner = $1")
            .bind(owner)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(CiSettings {
                owner: parse_user_name(r.try_get("owner")?)?,
                gitlab_url: r.try_get("gitlab_url")?,
                runner_token: r.try_get("runner_token")?,
                updated_at: r.try_get("updated_at")?,
            })
        })
        .transpose()
    }

    /// Every user's CI settings (for rewriting them, e.g. sealing old plain tokens).
    pub async fn all_ci_settings(&self) -> Result<Vec<CiSettings>> {
        let rows = sqlx::query("SELECT * FROM ci_settings ORDER BY owner")
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok(CiSettings {
                    owner: parse_user_name(r.try_get("owner")?)?,
                    gitlab_url: r.try_get("gitlab_url")?,
                    runner_token: r.try_get("runner_token")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    pub async fn set_ci_settings(&self, c: &CiSettings) -> Result<()> {
        sqlx::query(
            "INSERT INTO ci_settings (owner, gitlab_url, runner_token, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (owner) DO UPDATE SET gitlab_url = excluded.gitlab_url, \
             runner_token = excluded.runner_token, updated_at = excluded.updated_at",
        )
        .bind(c.owner.as_str())
        .bind(&c.gitlab_url)
        .bind(&c.runner_token)
        .bind(c.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn delete_ci_settings(&self, owner: &str) -> Result<()> {
        sqlx::query("DELETE FROM ci_settings WHERE owner = $1")
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // --- audit -----------------------------------------------------------------------------

    pub async fn record_audit(&self, e: &AuditEntry) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_log (id, at, actor, action, target, result, detail, source) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&e.id)
        .bind(e.at)
        .bind(e.actor.clone())
        .bind(&e.action)
        .bind(e.target.clone())
        .bind(e.result)
        .bind(e.detail.clone())
        .bind(e.source.clone())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The newest `limit` entries, newest first.
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditEntry>> {
        self.audit_search(&AuditFilter {
            limit,
            ..AuditFilter::default()
        })
        .await
    }

    /// The newest entries that `f` keeps, newest first, at most `f.limit`.
    pub async fn audit_search(&self, f: &AuditFilter) -> Result<Vec<AuditEntry>> {
        // Every condition is always there, switched off by a NULL parameter: one
        // statement for every combination, and nothing but placeholders in it.
        let action_prefix = f
            .action
            .as_deref()
            .filter(|a| a.ends_with('.'))
            .map(|a| format!("{}%", a.replace('%', "")));
        let action_exact = f.action.clone().filter(|a| !a.ends_with('.'));
        let rows = sqlx::query(
            "SELECT * FROM audit_log WHERE \
             ($1 IS NULL OR actor = $1) AND ($2 IS NULL OR action = $2) AND \
             ($3 IS NULL OR action LIKE $3) AND ($4 IS NULL OR target = $4) AND \
             ($5 IS NULL OR at >= $5) AND ($6 IS NULL OR at < $6) \
             ORDER BY at DESC, id DESC LIMIT $7",
        )
        .bind(f.actor.clone())
        .bind(action_exact)
        .bind(action_prefix)
        .bind(f.target.clone())
        .bind(f.since)
        .bind(f.until)
        .bind(f.limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    target: r.try_get("target")?,
                    result: r.try_get("result")?,
                    detail: r.try_get("detail")?,
                    source: r.try_get("source")?,
                })
            })
            .collect()
    }

    // --- accounts ----------------------------------------------------------------------

    /// Changes an account's role; `false` when there is no such account.
    pub async fn set_user_role(&self, name: &str, role: Role) -> Result<bool> {
        Ok(sqlx::query("UPDATE users SET role = $1 WHERE name = $2")
            .bind(role.as_str())
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected()
            > 0)
    }

    /// Sets a local account's password hash; `false` when there is no such local account.
    pub async fn set_user_password(&self, name: &str, hash: &str) -> Result<bool> {
        Ok(
            sqlx::query("UPDATE users SET password_hash = $1 WHERE name = $2 AND source = 'local'")
                .bind(hash)
                .bind(name)
                .execute(&self.pool)
                .await?
                .rows_affected()
                > 0,
        )
    }

    /// Disables (or enables) an account. Disabling also revokes every session and token
    /// of it, in the same transaction: nothing signed in survives it.
    pub async fn set_user_disabled(&self, name: &str, disabled: bool) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let found = sqlx::query("UPDATE users SET disabled = $1 WHERE name = $2")
            .bind(i64::from(disabled))
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        if disabled {
            sqlx::query("DELETE FROM tokens WHERE user_name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(found)
    }

    /// Ends every session of `user` but the one whose hash is `keep`.
    pub async fn delete_other_sessions(&self, user: &str, keep: &str) -> Result<u64> {
        Ok(sqlx::query(
            "DELETE FROM tokens WHERE user_name = $1 AND kind = 'session' AND hash <> $2",
        )
        .bind(user)
        .bind(keep)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// Deletes an account with its tokens, quota, CI settings, storage records, courses
    /// and enrolments, and the descriptions of its images. Its containers must be gone
    /// first ([`StoreError::Conflict`] otherwise).
    pub async fn delete_user(&self, name: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let left: i64 = sqlx::query("SELECT COUNT(*) AS n FROM containers WHERE owner = $1")
            .bind(name)
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        if left > 0 {
            return Err(StoreError::Conflict(format!(
                "{name} still has {left} containers"
            )));
        }
        for q in [
            "DELETE FROM storage_usage WHERE owner = $1",
            "DELETE FROM image_meta WHERE owner = $1",
            "DELETE FROM image_courses WHERE owner = $1",
        ] {
            sqlx::query(q).bind(name).execute(&mut *tx).await?;
        }
        let found = sqlx::query("DELETE FROM users WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        tx.commit().await?;
        Ok(found)
    }

    // --- courses -----------------------------------------------------------------------

    pub async fn insert_course(&self, c: &Course) -> Result<()> {
        sqlx::query(
            "INSERT INTO courses (id, name, term, owner, ends_at, ldap_group, host_labels, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&c.id)
        .bind(&c.name)
        .bind(c.term.clone())
        .bind(c.owner.as_str())
        .bind(c.ends_at)
        .bind(c.ldap_group.clone())
        .bind(serde_json::to_string(&c.host_labels).expect("strings serialise"))
        .bind(c.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, format!("course {}", c.id)))?;
        Ok(())
    }

    /// One course with its members.
    pub async fn course(&self, id: &str) -> Result<Option<Course>> {
        let row = sqlx::query("SELECT * FROM courses WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(r) = row else { return Ok(None) };
        let mut c = course_from_row(&r)?;
        c.members = self.course_members(id).await?;
        Ok(Some(c))
    }

    /// Courses with their members: those `owner` teaches and those `member` is enrolled
    /// in (either or both given), or every course when neither is.
    pub async fn courses(&self, owner: Option<&str>, member: Option<&str>) -> Result<Vec<Course>> {
        let rows = sqlx::query(
            "SELECT * FROM courses c WHERE ($1 IS NULL AND $2 IS NULL) OR c.owner = $1 OR \
             EXISTS (SELECT 1 FROM course_members m WHERE m.course = c.id AND m.user_name = $2) \
             ORDER BY c.created_at DESC, c.id",
        )
        .bind(owner)
        .bind(member)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut c = course_from_row(r)?;
            c.members = self.course_members(&c.id).await?;
            out.push(c);
        }
        Ok(out)
    }

    async fn course_members(&self, id: &str) -> Result<Vec<UserName>> {
        let rows = sqlx::query(
            "SELECT user_name FROM course_members WHERE course = $1 ORDER BY user_name",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| parse_user_name(r.try_get("user_name")?))
            .collect()
    }

    /// Enrols users in a course, all or none; enrolling someone twice changes nothing.
    pub async fn add_course_members(&self, id: &str, users: &[UserName], now: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for u in users {
            sqlx::query(
                "INSERT INTO course_members (course, user_name, added_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (course, user_name) DO NOTHING",
            )
            .bind(id)
            .bind(u.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Keeps `user`'s enrolments by directory group in step with `groups` (the `cn`s of
    /// their groups now): enrolled in every course of one of those groups, and out of
    /// those they were enrolled in by a group they have left. Enrolments by name stay.
    pub async fn sync_group_courses(&self, user: &str, groups: &[String], now: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query("SELECT id, ldap_group FROM courses WHERE ldap_group IS NOT NULL")
            .fetch_all(&mut *tx)
            .await?;
        for r in &rows {
            let id: String = r.try_get("id")?;
            let group: String = r.try_get("ldap_group")?;
            if groups.contains(&group) {
                sqlx::query(
                    "INSERT INTO course_members (course, user_name, added_at, via_group) \
                     VALUES ($1, $2, $3, 1) ON CONFLICT (course, user_name) DO NOTHING",
                )
                .bind(&id)
                .bind(user)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            } else {
                sqlx::query(
                    "DELETE FROM course_members WHERE course = $1 AND user_name = $2 AND via_group = 1",
                )
                .bind(&id)
                .bind(user)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Takes a user out of a course; `false` when they were not in it.
    pub async fn remove_course_member(&self, id: &str, user: &str) -> Result<bool> {
        Ok(
            sqlx::query("DELETE FROM course_members WHERE course = $1 AND user_name = $2")
                .bind(id)
                .bind(user)
                .execute(&self.pool)
                .await?
                .rows_affected()
                > 0,
        )
    }

    /// Sets (or with `None` removes) the course's join code; a code another course has
    /// is a [`StoreError::Conflict`].
    pub async fn set_course_join_code(&self, id: &str, code: Option<&str>) -> Result<bool> {
        Ok(
            sqlx::query("UPDATE courses SET join_code = $1 WHERE id = $2")
                .bind(code)
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(|e| conflict(e, "join code".into()))?
                .rows_affected()
                > 0,
        )
    }

    /// The course that takes this join code.
    pub async fn course_by_join_code(&self, code: &str) -> Result<Option<Course>> {
        let row = sqlx::query("SELECT id FROM courses WHERE join_code = $1")
            .bind(code)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(r) => self.course(&r.try_get::<String, _>("id")?).await,
            None => Ok(None),
        }
    }

    /// The course's quota for its members, if an administrator set one.
    pub async fn course_quota(&self, id: &str) -> Result<Option<QuotaOverride>> {
        let row = sqlx::query("SELECT * FROM course_quotas WHERE course = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(quota_from_row).transpose()
    }

    /// Sets the course's quota (all of it: a `None` keeps the role's value).
    pub async fn set_course_quota(&self, id: &str, q: &QuotaOverride, now: i64) -> Result<()> {
        self.upsert_quota("course_quotas", "course", id, q, now)
            .await
    }

    /// Removes the course's quota.
    pub async fn delete_course_quota(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM course_quotas WHERE course = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The quotas of the courses each member is enrolled in that have not ended at `now`
    /// (`user` given: that user's only).
    pub async fn member_course_quotas(
        &self,
        user: Option<&str>,
        now: i64,
    ) -> Result<Vec<(UserName, QuotaOverride)>> {
        let rows = sqlx::query(
            "SELECT m.user_name, q.* FROM course_quotas q \
             JOIN courses c ON c.id = q.course \
             JOIN course_members m ON m.course = q.course \
             WHERE ($1 IS NULL OR m.user_name = $1) AND (c.ends_at IS NULL OR c.ends_at > $2) \
             ORDER BY m.user_name, q.course",
        )
        .bind(user)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    parse_user_name(r.try_get("user_name")?)?,
                    quota_from_row(r)?,
                ))
            })
            .collect()
    }
}

fn course_from_row(r: &AnyRow) -> Result<Course> {
    Ok(Course {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        term: r.try_get("term")?,
        owner: parse_user_name(r.try_get("owner")?)?,
        ends_at: r.try_get("ends_at")?,
        ldap_group: r.try_get("ldap_group")?,
        host_labels: serde_json::from_str(&r.try_get::<String, _>("host_labels")?)
            .map_err(|e| StoreError::Corrupt(format!("host labels of a course: {e}")))?,
        created_at: r.try_get("created_at")?,
        members: Vec::new(),
        join_code: r.try_get("join_code")?,
    })
}

fn course_share_from_row(r: &AnyRow) -> Result<CourseShare> {
    Ok(CourseShare {
        reference: r.try_get("reference")?,
        owner: r.try_get("owner")?,
        course: r.try_get("course")?,
        title: r.try_get("title")?,
        note: r.try_get("note")?,
    })
}

fn conflict(e: sqlx::Error, what: String) -> StoreError {
    match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(what),
        other => other.into(),
    }
}

fn parse_user_name(s: String) -> Result<UserName> {
    UserName::parse(&s).map_err(|e| StoreError::Corrupt(format!("user name {s:?}: {e}")))
}

fn user_from_row(r: &AnyRow) -> Result<User> {
    let role: String = r.try_get("role")?;
    let source: String = r.try_get("source")?;
    Ok(User {
        name: parse_user_name(r.try_get("name")?)?,
        display_name: r.try_get("display_name")?,
        role: Role::parse(&role).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        source: match source.as_str() {
            "local" => UserSource::Local,
            "ldap" => UserSource::Ldap,
            other => return Err(StoreError::Corrupt(format!("user source {other:?}"))),
        },
        password_hash: r.try_get("password_hash")?,
        uid_number: r.try_get("uid_number")?,
        created_at: r.try_get("created_at")?,
        disabled: r.try_get::<i64, _>("disabled")? != 0,
    })
}

/// Reads a token from a row of `tokens`, or of the join in [`Store::token`], where the
/// token's `name` and `created_at` are renamed to keep them apart from the user's.
fn token_from_row(r: &AnyRow) -> Result<Token> {
    let (name_col, created_col) = if r.try_column("token_name").is_ok() {
        ("token_name", "token_created_at")
    } else {
        ("name", "created_at")
    };
    Ok(Token {
        hash: r.try_get("hash")?,
        id: r.try_get("id")?,
        user: parse_user_name(r.try_get("user_name")?)?,
        kind: match r.try_get::<String, _>("kind")?.as_str() {
            "session" => TokenKind::Session,
            "personal" => TokenKind::Personal,
            other => return Err(StoreError::Corrupt(format!("token kind {other:?}"))),
        },
        name: r.try_get(name_col)?,
        scope: {
            let s: String = r.try_get("scope")?;
            Scope::parse(&s).map_err(|e| StoreError::Corrupt(format!("token scope: {e}")))?
        },
        created_at: r.try_get(created_col)?,
        expires_at: r.try_get("expires_at")?,
        last_used_at: r.try_get("last_used_at")?,
    })
}

fn container_from_row(r: &AnyRow) -> Result<ContainerRecord> {
    let name: String = r.try_get("name")?;
    let env: String = r.try_get("env")?;
    Ok(ContainerRecord {
        name: ContainerName::parse(&name)
            .map_err(|e| StoreError::Corrupt(format!("container name: {e}")))?,
        owner: parse_user_name(r.try_get("owner")?)?,
        short_name: {
            let s: String = r.try_get("short_name")?;
            wm_domain::ShortName::parse(&s)
                .map_err(|e| StoreError::Corrupt(format!("short name of {name}: {e}")))?
        },
        image: r.try_get("image")?,
        backend: {
            let s: String = r.try_get("backend")?;
            Backend::parse(&s)
                .map_err(|e| StoreError::Corrupt(format!("backend of {name}: {e}")))?
        },
        host: r.try_get("host")?,
        status: {
            let s: String = r.try_get("status")?;
            ContainerStatus::parse(&s)
                .map_err(|e| StoreError::Corrupt(format!("status of {name}: {e}")))?
        },
        env: serde_json::from_str(&env)
            .map_err(|e| StoreError::Corrupt(format!("env of {name}: {e}")))?,
        engine_id: r.try_get("engine_id")?,
        created_at: r.try_get("created_at")?,
        ports: Vec::new(),
        memory_bytes: r.try_get("memory_bytes")?,
        nano_cpus: r.try_get("nano_cpus")?,
        gpus: Vec::new(),
        expires_at: r.try_get("expires_at")?,
        expiry_set_by: r.try_get("expiry_set_by")?,
        last_activity_at: r.try_get("last_activity_at")?,
        idle_since: r.try_get("idle_since")?,
        stop_reason: r
            .try_get::<Option<String>, _>("stop_reason")?
            .map(|s| {
                StopReason::parse(&s)
                    .map_err(|e| StoreError::Corrupt(format!("stop reason of {name}: {e}")))
            })
            .transpose()?,
    })
}

fn image_meta_from_row(r: &AnyRow) -> Result<ImageMeta> {
    Ok(ImageMeta {
        reference: r.try_get("reference")?,
        owner: parse_user_name(r.try_get("owner")?)?,
        description: r.try_get("description")?,
        shared: r.try_get::<i64, _>("shared")? != 0,
        updated_at: r.try_get("updated_at")?,
    })
}

fn image_scan_from_row(r: &AnyRow) -> Result<ImageScan> {
    let findings: String = r.try_get("findings")?;
    Ok(ImageScan {
        image_id: r.try_get("image_id")?,
        status: ScanStatus::parse(&r.try_get::<String, _>("status")?)?,
        findings: serde_json::from_str(&findings)
            .map_err(|e| StoreError::Corrupt(format!("findings: {e}")))?,
        scanner: r.try_get("scanner")?,
        duration_ms: r.try_get("duration_ms")?,
        scanned_at: r.try_get("scanned_at")?,
        released_by: r.try_get("released_by")?,
        released_at: r.try_get("released_at")?,
    })
}

fn lease_from_row(r: &AnyRow) -> Result<PortLease> {
    let guest: i64 = r.try_get("guest_port")?;
    let host: i64 = r.try_get("host_port")?;
    Ok(PortLease {
        guest: GuestPort::new(guest).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        host_port: u16::try_from(host)
            .map_err(|_| StoreError::Corrupt(format!("host port {host}")))?,
    })
}
