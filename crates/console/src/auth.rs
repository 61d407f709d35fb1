//! Who is calling: passwords, session and personal tokens, and the [`Caller`] extractor.
//!
//! A token is 32 random bytes; the database keeps only its SHA-256, so a leaked database
//! does not log anyone in. The same token works as the session cookie and as a bearer
//! token.

use crate::error::ApiError;
use crate::state::AppState;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN};
use axum::http::request::Parts;
use axum::http::Method;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use wm_domain::{Role, UserName};
use wm_store::{Token, TokenKind};

/// The session cookie's name, the one place it is spelt. Behind TLS it carries the
/// `__Host-` prefix ([`session_cookie_name`]): browsers then accept it only when `Secure`,
/// for the whole host and no other, so no plain-HTTP service can set or read it.
macro_rules! session_cookie {
    () => {
        "wm_session"
    };
}
pub const SESSION_COOKIE: &str = session_cookie!();
const HOST_SESSION_COOKIE: &str = concat!("__Host-", session_cookie!());

/// The name of the session cookie under `config`.
pub fn session_cookie_name(config: &crate::config::Config) -> &'static str {
    if config.behind_tls() {
        HOST_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

/// Hashes a password with Argon2id (on a blocking thread: it is slow on purpose).
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
    })
    .await
    .map_err(|e| ApiError::Unexpected(e.into()))?
    .map_err(|e| ApiError::Unexpected(anyhow::anyhow!("hashing a password: {e}")))
}

/// Checks a password against a stored hash. With no hash (unknown user), a dummy hash is
/// checked instead, so the answer takes as long as for a known user.
pub async fn verify_password(password: String, hash: Option<String>) -> bool {
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
pub fn new_token() -> (String, String, String) {
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

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A random password for the first admin account.
pub fn random_password() -> String {
    let mut bytes = [0u8; 15];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What a token may do (one of the domain's words).
pub use wm_domain::Scope;

/// An authenticated caller. Extracting it answers 401 when there is no valid token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: UserName,
    pub role: Role,
    pub scope: Scope,
    pub token_hash: String,
    pub token_kind: TokenKind,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Refuses tokens limited to builds.
    pub fn require_full_scope(&self) -> Result<(), ApiError> {
        match self.scope {
            Scope::All => Ok(()),
            Scope::Build => Err(ApiError::Forbidden(
                "this token may only be used for image builds".into(),
            )),
        }
    }
}

/// Where the audit middleware learns who made a request.
#[derive(Clone, Default)]
pub struct AuditActor(pub Arc<Mutex<Option<String>>>);

impl AuditActor {
    pub fn set(&self, who: &str) {
        *self.0.lock().expect("not poisoned") = Some(who.to_string());
    }
}

/// The value of the cookie `name`, if the request sent it.
pub fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The token sent with the request: bearer first, then the session cookie.
pub fn presented_token(parts: &Parts, cookie_name: &str) -> Option<(String, bool)> {
    if let Some(v) = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(t) = v.strip_prefix("Bearer ") {
            return Some((t.trim().to_string(), false));
        }
    }
    cookie(&parts.headers, cookie_name).map(|v| (v, true))
}

/// A cookie-authenticated request that changes something must come from our own pages:
/// when the browser names an origin, its host must be ours.
pub(crate) fn same_origin(parts: &Parts) -> bool {
    let Some(origin) = parts.headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = parts.headers.get(HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, h)| h);
    matches!((origin_host, host), (Some(o), Some(h)) if o == h)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (token, from_cookie) = presented_token(parts, session_cookie_name(&state.config))
            .ok_or(ApiError::Unauthenticated)?;
        if token.is_empty() || token.len() > 256 {
            return Err(ApiError::Unauthenticated);
        }
        let hash = token_hash(&token);
        let now = crate::now();
        let (t, user): (Token, _) = state
            .store
            .token(&hash, now)
            .await?
            .ok_or(ApiError::Unauthenticated)?;
        let unsafe_method = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if from_cookie && unsafe_method && !same_origin(parts) {
            return Err(ApiError::Forbidden("cross-origin request refused".into()));
        }
        // At most one write a minute per token, not one per request.
        if t.last_used_at.is_none_or(|used| used < now - 60) {
            state.store.touch_token(&hash, now).await?;
        }
        if let Some(actor) = parts.extensions.get::<AuditActor>() {
            actor.set(user.name.as_str());
        }
        Ok(Caller {
            name: user.name,
            role: user.role,
            scope: t.scope,
            token_hash: hash,
            token_kind: t.kind,
        })
    }
}

/// An administrator: the only way to reach admin handlers. Others get 403. Made only by
/// [`Admin::check`], so holding one means the check was passed.
pub struct Admin {
    _checked: (),
}

impl Admin {
    pub fn check(caller: &Caller) -> Result<Self, ApiError> {
        caller.require_full_scope()?;
        if !caller.is_admin() {
            return Err(ApiError::Forbidden(
                "only administrators may do this".into(),
            ));
        }
        Ok(Admin { _checked: () })
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Admin::check(&Caller::from_request_parts(parts, state).await?)
    }
}
