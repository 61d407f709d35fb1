//! Accounts and who is calling: passwords, logins (under the rate limit, against the
//! department directory or local accounts), sessions and personal tokens, and the
//! [`Caller`] every other use case is given.
//!
//! A token is 32 random bytes; the database keeps only its SHA-256, so a leaked database
//! does not log anyone in. The same token works as the session cookie and as a bearer
//! token.

use super::audit::AuditActor;
use super::ratelimit::LoginLimiter;
use super::Error;
use crate::metrics::{Metrics, OutcomeLabels};
use crate::util::{now, rfc3339};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use utoipa::ToSchema;
use wm_domain::{Role, Scope, UserName};
use wm_store::{Store, Token, TokenKind, User, UserSource};

pub(crate) const MAX_USERNAME_INPUT: usize = 256;
pub(crate) const MAX_PASSWORD_INPUT: usize = 1024;
/// A token's name: 1 to this many characters, none of them a control character.
pub(crate) const MAX_TOKEN_NAME: usize = 64;

/// Hashes a password with Argon2id (on a blocking thread: it is slow on purpose).
pub(crate) async fn hash_password(password: String) -> Result<String, Error> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
    })
    .await
    .map_err(|e| Error::Unexpected(e.into()))?
    .map_err(|e| Error::Unexpected(anyhow::anyhow!("hashing a password: {e}")))
}

/// Checks a password against a stored hash. With no hash (unknown user), a dummy hash is
/// checked instead, so the answer takes as long as for a known user.
pub(crate) async fn verify_password(password: String, hash: Option<String>) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let known = hash.is_some();
    let hash = hash.unwrap_or_else(|| {
        DUMMY
            .get_or_init(|| {
                let salt = SaltString::generate(&mut rand::rngs::OsRng);
                Argon2::default()
                    .hash_password(b"dummy password", &salt)
                    .expect("hashing works")
                    .to_string()
            })
            .clone()
    });
    tokio::task::spawn_blocking(move || {
        let ok = PasswordHash::new(&hash)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false);
        ok && known
    })
    .await
    .unwrap_or(false)
}

/// A new random secret: the token itself, its stored hash, and a public id.
pub(crate) fn new_token() -> (String, String, String) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = format!(
        "wm_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let mut id = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut id);
    (token.clone(), token_hash(&token), hex::encode(id))
}

pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A random password for the first admin account.
pub(crate) fn random_password() -> String {
    let mut bytes = [0u8; 15];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An authenticated caller. Extracting it answers 401 when there is no valid token.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) name: UserName,
    pub(crate) role: Role,
    pub(crate) scope: Scope,
    pub(crate) token_hash: String,
}

impl Caller {
    pub(crate) fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Refuses tokens limited to builds.
    pub(crate) fn require_full_scope(&self) -> Result<(), Error> {
        match self.scope {
            Scope::All => Ok(()),
            Scope::Build => Err(Error::forbidden(
                "build_token",
                [],
                "this token may only be used for image builds",
            )),
        }
    }
}

/// An administrator: the only way to reach admin handlers. Others get 403. Made only by
/// [`Admin::check`], so holding one means the check was passed.
pub(crate) struct Admin {
    _checked: (),
}

impl Admin {
    pub(crate) fn check(caller: &Caller) -> Result<Self, Error> {
        caller.require_full_scope()?;
        if !caller.is_admin() {
            return Err(Error::forbidden(
                "admins_only",
                [],
                "only administrators may do this",
            ));
        }
        Ok(Admin { _checked: () })
    }
}

#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct TokenCreated {
    /// Shown once; only its hash is kept.
    pub(crate) token: String,
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) scope: Scope,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct TokenInfo {
    pub(crate) id: String,
    pub(crate) name: Option<String>,
    pub(crate) scope: Scope,
    pub(crate) created_at: String,
    pub(crate) last_used_at: Option<String>,
}

/// One of the caller's login sessions.
#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct SessionInfo {
    pub(crate) id: String,
    pub(crate) created_at: String,
    pub(crate) last_used_at: Option<String>,
    pub(crate) expires_at: Option<String>,
    /// The session of this request.
    pub(crate) current: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewUser {
    pub(crate) name: String,
    /// At least 8 characters.
    pub(crate) password: String,
    /// `student`, `teacher` or `admin`.
    pub(crate) role: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct UserInfo {
    pub(crate) name: String,
    pub(crate) role: String,
    /// `local` or `ldap`.
    pub(crate) source: String,
    pub(crate) display_name: Option<String>,
    pub(crate) created_at: String,
    /// A disabled account cannot log in.
    pub(crate) disabled: bool,
}

/// `PUT /api/v1/me/password`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordChange {
    pub(crate) current: String,
    /// At least 8 characters.
    pub(crate) new: String,
}

pub(crate) fn user_info(u: &User) -> UserInfo {
    UserInfo {
        name: u.name.to_string(),
        role: u.role.to_string(),
        source: match u.source {
            UserSource::Local => "local".into(),
            UserSource::Ldap => "ldap".into(),
        },
        display_name: u.display_name.clone(),
        created_at: rfc3339(u.created_at),
        disabled: u.disabled,
    }
}

/// Checks a new password's length.
pub(crate) fn check_new_password(pw: &str, field: &'static str) -> Result<(), Error> {
    let chars = pw.chars().count();
    if !(8..=MAX_PASSWORD_INPUT).contains(&chars) {
        return Err(Error::broke(
            field,
            "length",
            [("max", MAX_PASSWORD_INPUT.to_string())],
            format!("a password has 8 to {MAX_PASSWORD_INPUT} characters"),
        ));
    }
    Ok(())
}

/// The accounts of the installation and their sessions and tokens.
pub(crate) struct Accounts {
    store: Store,
    directory: Option<Arc<wm_ldap::Directory>>,
    limiter: LoginLimiter,
    metrics: Arc<Metrics>,
    /// How long a session lasts.
    session_secs: u64,
}

impl Accounts {
    pub(crate) fn new(
        store: Store,
        directory: Option<Arc<wm_ldap::Directory>>,
        limiter: LoginLimiter,
        metrics: Arc<Metrics>,
        session_secs: u64,
    ) -> Self {
        Self {
            store,
            directory,
            limiter,
            metrics,
            session_secs,
        }
    }

    /// How long a session lasts, in seconds.
    pub(crate) fn session_secs(&self) -> u64 {
        self.session_secs
    }

    /// The caller a presented token stands for. `cross_origin_write`: the token came in a
    /// cookie with a request that changes something from another site's page, which is
    /// refused (once the token is known to be valid).
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] for a token that is not (or no longer) valid.
    pub(crate) async fn authenticate(
        &self,
        token: &str,
        cross_origin_write: bool,
        actor: Option<&AuditActor>,
    ) -> Result<Caller, Error> {
        if token.is_empty() || token.len() > 256 {
            return Err(Error::Unauthenticated);
        }
        let hash = token_hash(token);
        let now = now();
        let (t, user): (Token, _) = self
            .store
            .token(&hash, now)
            .await?
            .ok_or(Error::Unauthenticated)?;
        if cross_origin_write {
            return Err(Error::forbidden(
                "cross_origin",
                [],
                "cross-origin request refused",
            ));
        }
        // At most one write a minute per token, not one per request.
        if t.last_used_at.is_none_or(|used| used < now - 60) {
            self.store.touch_token(&hash, now).await?;
        }
        if let Some(actor) = actor {
            actor.set(user.name.as_str());
        }
        Ok(Caller {
            name: user.name,
            role: user.role,
            scope: t.scope,
            token_hash: hash,
        })
    }

    /// Checks a login (under the rate limit) and stores a new session; answers the user and
    /// the session token. Shared by the API and the web login form.
    pub(crate) async fn login(
        &self,
        actor: Option<&AuditActor>,
        addr: Option<std::net::IpAddr>,
        username: &str,
        password: String,
    ) -> Result<(User, String), Error> {
        if username.chars().count() > MAX_USERNAME_INPUT
            || password.chars().count() > MAX_PASSWORD_INPUT
        {
            return Err(Error::refused(
                "invalid_input",
                None,
                "login_too_long",
                [],
                "the user name or password is too long",
            ));
        }
        self.limiter.check(username, addr).await?;
        let checked = self.check_password(actor, username, password).await;
        if matches!(checked, Err(Error::InvalidCredentials)) {
            self.limiter.failed(username, addr).await?;
        }
        let user = checked?;
        if user.disabled {
            return Err(Error::forbidden(
                "disabled",
                [],
                "this account is disabled; ask the administrators",
            ));
        }
        let (token, hash, id) = new_token();
        let now = now();
        let ttl = self.session_secs;
        self.store
            .insert_token(&Token {
                hash,
                id,
                user: user.name.clone(),
                kind: TokenKind::Session,
                name: None,
                scope: Scope::All,
                created_at: now,
                expires_at: Some(now + ttl as i64),
                last_used_at: Some(now),
            })
            .await?;
        Ok((user, token))
    }

    async fn check_password(
        &self,
        actor: Option<&AuditActor>,
        username: &str,
        password: String,
    ) -> Result<User, Error> {
        // A name outside the account-name pattern cannot exist: it fails like a wrong
        // password, before any database or directory call.
        let name = UserName::parse(username).ok();
        if let (Some(n), Some(a)) = (&name, actor) {
            a.set(n.as_str());
        }
        let known = match &name {
            Some(n) => self.store.user(n.as_str()).await?,
            None => None,
        };
        let user = match (name, known, &self.directory) {
            // Local accounts (admins, installations without a directory) are checked here.
            (_, Some(u), _) if u.source == UserSource::Local => {
                let ok = !password.is_empty()
                    && verify_password(password, u.password_hash.clone()).await;
                ok.then_some(u)
            }
            (Some(n), known, Some(dir)) => {
                Some(self.directory_login(dir, &n, &password, known).await?)
            }
            _ => {
                // Same work as for a known name, so timing does not tell names apart.
                verify_password(password, None).await;
                None
            }
        };
        user.ok_or(Error::InvalidCredentials)
    }

    /// Checks a login against the directory and records the person (`known`: their
    /// account as the store has it, which is not written again when the directory says the
    /// same).
    async fn directory_login(
        &self,
        dir: &wm_ldap::Directory,
        name: &UserName,
        password: &str,
        known: Option<User>,
    ) -> Result<User, Error> {
        use wm_ldap::DirectoryError;
        let outcome = dir.authenticate(name, password).await;
        let label = match &outcome {
            Ok(_) => "ok",
            Err(DirectoryError::InvalidCredentials) => "invalid",
            Err(DirectoryError::Unavailable(_)) => "unavailable",
            Err(DirectoryError::Refused(_)) => "refused",
        };
        self.metrics
            .directory_logins
            .get_or_create(&OutcomeLabels { outcome: label })
            .inc();
        self.metrics.directory_up.set(i64::from(!matches!(
            outcome,
            Err(DirectoryError::Unavailable(_))
        )));
        match outcome {
            Ok(du) => {
                let unchanged = known.filter(|u| {
                    u.source == UserSource::Ldap
                        && u.display_name == du.display_name
                        && u.uid_number == du.uid_number
                        && u.role == du.role
                });
                let user = match unchanged {
                    Some(u) => u,
                    None => {
                        self.store
                            .upsert_directory_user(
                                &du.name,
                                du.display_name.as_deref(),
                                du.uid_number,
                                du.role,
                                now(),
                            )
                            .await?
                    }
                };
                // Courses enrolled by directory group follow the groups at each login.
                self.store
                    .sync_group_courses(du.name.as_str(), &du.groups, now())
                    .await?;
                Ok(user)
            }
            Err(DirectoryError::InvalidCredentials) => Err(Error::InvalidCredentials),
            Err(DirectoryError::Unavailable(why)) => {
                tracing::warn!(%why, "directory unavailable");
                Err(Error::unavailable(
                    "directory",
                    [],
                    "the department directory is unavailable; try again later (local accounts and existing sessions still work)",
                ))
            }
            Err(DirectoryError::Refused(why)) => {
                tracing::error!(%why, "the directory refused a login search");
                Err(Error::unavailable(
                    "directory_refused",
                    [],
                    "the department directory refused the request; the administrators can find the details in the log",
                ))
            }
        }
    }

    /// Ends the session, or revokes the bearer token used.
    pub(crate) async fn logout(&self, caller: &Caller) -> Result<(), Error> {
        self.store.delete_token(&caller.token_hash).await?;
        Ok(())
    }

    /// Creates a personal access token of `scope` (`all` when `None`).
    pub(crate) async fn create_token(
        &self,
        caller: &Caller,
        name: &str,
        scope: Option<&str>,
    ) -> Result<TokenCreated, Error> {
        caller.require_full_scope()?;
        let length = name.chars().count();
        if !(1..=MAX_TOKEN_NAME).contains(&length) || name.chars().any(char::is_control) {
            return Err(Error::broke(
                "name",
                "token_name",
                [],
                "a token name is 1 to 64 printable characters",
            ));
        }
        let scope = match scope {
            None => Scope::All,
            Some(s) => Scope::parse(s).map_err(|_| {
                let value: String = s.chars().take(64).collect();
                Error::broke(
                    "scope",
                    "unknown",
                    [("value", value), ("choices", "all, build".to_string())],
                    format!("unknown scope {s:?}; use all or build"),
                )
            })?,
        };
        let (token, hash, id) = new_token();
        self.store
            .insert_token(&Token {
                hash,
                id: id.clone(),
                user: caller.name.clone(),
                kind: TokenKind::Personal,
                name: Some(name.to_string()),
                scope,
                created_at: now(),
                expires_at: None,
                last_used_at: None,
            })
            .await?;
        Ok(TokenCreated {
            token,
            id,
            name: name.to_string(),
            scope,
        })
    }

    /// The caller's personal access tokens (never the secrets).
    pub(crate) async fn tokens(&self, caller: &Caller) -> Result<Vec<TokenInfo>, Error> {
        caller.require_full_scope()?;
        let tokens = self.store.personal_tokens(caller.name.as_str()).await?;
        Ok(tokens
            .into_iter()
            .map(|t| TokenInfo {
                id: t.id,
                name: t.name,
                scope: t.scope,
                created_at: rfc3339(t.created_at),
                last_used_at: t.last_used_at.map(rfc3339),
            })
            .collect())
    }

    /// The caller's login sessions (never the secrets); `current` marks the one asking.
    pub(crate) async fn sessions(&self, caller: &Caller) -> Result<Vec<SessionInfo>, Error> {
        caller.require_full_scope()?;
        let sessions = self
            .store
            .tokens_of(caller.name.as_str(), TokenKind::Session)
            .await?;
        Ok(sessions
            .into_iter()
            .map(|t| SessionInfo {
                current: t.hash == caller.token_hash,
                id: t.id,
                created_at: rfc3339(t.created_at),
                last_used_at: t.last_used_at.map(rfc3339),
                expires_at: t.expires_at.map(rfc3339),
            })
            .collect())
    }

    /// Ends one of the caller's sessions (this one too, if asked).
    pub(crate) async fn end_session(&self, caller: &Caller, id: &str) -> Result<(), Error> {
        caller.require_full_scope()?;
        if self
            .store
            .delete_token_of(caller.name.as_str(), id, TokenKind::Session)
            .await?
        {
            Ok(())
        } else {
            let id: String = id.chars().take(64).collect();
            Err(Error::missing(
                "not_found",
                "session",
                [("id", id.clone())],
                format!("session {id}"),
            ))
        }
    }

    /// Revokes one of the caller's personal access tokens.
    pub(crate) async fn delete_token(&self, caller: &Caller, id: &str) -> Result<(), Error> {
        caller.require_full_scope()?;
        if self
            .store
            .delete_personal_token(caller.name.as_str(), id)
            .await?
        {
            Ok(())
        } else {
            let id: String = id.chars().take(64).collect();
            Err(Error::missing(
                "not_found",
                "token",
                [("id", id.clone())],
                format!("token {id}"),
            ))
        }
    }

    /// Creates a local account.
    pub(crate) async fn create_user(
        &self,
        _admin: &Admin,
        req: NewUser,
    ) -> Result<UserInfo, Error> {
        let name = UserName::parse(&req.name)?;
        let role = Role::parse(&req.role)?;
        check_new_password(&req.password, "password")?;
        let user = User {
            name,
            display_name: None,
            role,
            source: UserSource::Local,
            password_hash: Some(hash_password(req.password).await?),
            uid_number: None,
            created_at: now(),
            disabled: false,
        };
        self.store.insert_user(&user).await?;
        Ok(user_info(&user))
    }

    /// Changes the caller's own password (local accounts). Their other sessions end; this
    /// one and their personal tokens go on.
    ///
    /// # Errors
    /// 409 for a directory account, whose password is the directory's; 400
    /// `wrong_password` when `current` is not the password.
    pub(crate) async fn change_password(
        &self,
        caller: &Caller,
        req: PasswordChange,
    ) -> Result<(), Error> {
        caller.require_full_scope()?;
        if req.current.chars().count() > MAX_PASSWORD_INPUT {
            return Err(Error::broke(
                "current",
                "too_long",
                [],
                "the current password is too long",
            ));
        }
        check_new_password(&req.new, "new")?;
        let user = self
            .store
            .user(caller.name.as_str())
            .await?
            .ok_or(Error::Unauthenticated)?;
        if user.source == UserSource::Ldap {
            return Err(Error::conflict(
                "directory_password",
                [],
                "your account is the department directory's (LDAP): change its password with the department's account service, not here",
            ));
        }
        if !verify_password(req.current, user.password_hash).await {
            return Err(Error::refused(
                "wrong_password",
                Some("current"),
                "wrong",
                [],
                "the current password is not right",
            ));
        }
        let hash = hash_password(req.new).await?;
        self.store
            .set_user_password(caller.name.as_str(), &hash)
            .await?;
        self.store
            .delete_other_sessions(caller.name.as_str(), &caller.token_hash)
            .await?;
        Ok(())
    }

    /// The caller's own account.
    pub(crate) async fn me(&self, caller: &Caller) -> Result<UserInfo, Error> {
        let user = self
            .store
            .user(caller.name.as_str())
            .await?
            .ok_or(Error::Unauthenticated)?;
        Ok(user_info(&user))
    }

    /// Every account.
    pub(crate) async fn users(&self, _admin: &Admin) -> Result<Vec<UserInfo>, Error> {
        Ok(self.store.users().await?.iter().map(user_info).collect())
    }

    /// Creates the local `admin` account on first start, or sets its password when one is
    /// configured. Answers the password it generated, for the caller to show once.
    pub(crate) async fn ensure_admin(
        &self,
        password: Option<&str>,
    ) -> Result<Option<String>, Error> {
        let admin = UserName::parse("admin").expect("valid name");
        match password {
            Some(pw) => {
                let hash = hash_password(pw.to_string()).await?;
                self.store
                    .upsert_local_user(&admin, Role::Admin, &hash, now())
                    .await?;
            }
            None if self.store.user("admin").await?.is_none() => {
                let pw = random_password();
                let hash = hash_password(pw.clone()).await?;
                self.store
                    .upsert_local_user(&admin, Role::Admin, &hash, now())
                    .await?;
                return Ok(Some(pw));
            }
            None => {}
        }
        Ok(None)
    }
}
