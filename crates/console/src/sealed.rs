//! Secrets the console must keep readable (CI runner tokens) are stored sealed: AEAD
//! (ChaCha20-Poly1305 from `ring`) under a key of 32 random bytes in a file of its own
//! (`WM_SECRET_KEY_FILE`, default `<data_dir>/secret.key`, made `0600` on first start), so
//! a copy of the database alone reveals none of them. Each value is bound to its row (the
//! associated data), so a sealed value moved to another user's row does not open.
//!
//! A sealed value is `v1:` and the base64 of nonce and ciphertext. A value without the
//! prefix is an old plain one: [`Sealer::seal_plain_ci_tokens`] rewrites those at start.

use crate::permissions;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use std::path::Path;

const PREFIX: &str = "v1:";

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("cannot read or create the secret key file {path}: {source}")]
    KeyFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the secret key file {0} must hold 64 hex digits (32 bytes)")]
    BadKey(String),
    #[error("a sealed value does not open with this secret key (was the key file replaced?)")]
    Open,
}

pub(crate) struct Sealer {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl Sealer {
    /// Reads the key from `path`, creating it (`0600`, 32 random bytes as hex) when it
    /// does not exist, and tightening it if its permissions are looser.
    pub(crate) fn from_key_file(path: &Path) -> Result<Self, SealError> {
        let io = |source| SealError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        let rng = SystemRandom::new();
        if !path.exists() {
            let mut key = [0u8; 32];
            rng.fill(&mut key)
                .map_err(|_| io(std::io::Error::other("no randomness")))?;
            use std::io::Write;
            let mut f = permissions::create_private_file(path).map_err(io)?;
            f.write_all(hex::encode(key).as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
            tracing::info!(path = %path.display(), "created the secret key");
        }
        permissions::tighten(path, 0o600).map_err(io)?;
        let text = std::fs::read_to_string(path).map_err(io)?;
        let bytes = hex::decode(text.trim())
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| SealError::BadKey(path.display().to_string()))?;
        let key = UnboundKey::new(&CHACHA20_POLY1305, &bytes)
            .map_err(|_| SealError::BadKey(path.display().to_string()))?;
        Ok(Self {
            key: LessSafeKey::new(key),
            rng,
        })
    }

    /// Seals `plain`, bound to `context` (e.g. `ci:<owner>`).
    pub(crate) fn seal(&self, context: &str, plain: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .expect("the system has randomness");
        let mut buf = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut buf,
            )
            .expect("sealing cannot fail for a short value");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        format!("{PREFIX}{}", STANDARD.encode(out))
    }

    /// Opens what [`Sealer::seal`] made with the same `context`; an old plain value comes
    /// back as it is.
    pub(crate) fn open(&self, context: &str, stored: &str) -> Result<String, SealError> {
        let Some(b64) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_string());
        };
        let raw = STANDARD.decode(b64).map_err(|_| SealError::Open)?;
        if raw.len() < NONCE_LEN {
            return Err(SealError::Open);
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let mut buf = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| SealError::Open)?;
        String::from_utf8(plain.to_vec()).map_err(|_| SealError::Open)
    }

    pub(crate) fn is_sealed(stored: &str) -> bool {
        stored.starts_with(PREFIX)
    }

    /// Rewrites every CI runner token still stored in plain text, sealed. Runs at start.
    pub(crate) async fn seal_plain_ci_tokens(
        &self,
        store: &wm_store::Store,
    ) -> Result<usize, wm_store::StoreError> {
        let mut n = 0;
        for mut c in store.all_ci_settings().await? {
            if !Self::is_sealed(&c.runner_token) {
                c.runner_token = self.seal(&ci_context(c.owner.as_str()), &c.runner_token);
                store.set_ci_settings(&c).await?;
                n += 1;
            }
        }
        if n > 0 {
            tracing::info!(count = n, "sealed CI runner tokens stored in plain text");
        }
        Ok(n)
    }
}

/// The associated data of a user's CI runner token.
pub(crate) fn ci_context(owner: &str) -> String {
    format!("ci-runner-token:{owner}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let s = Sealer::from_key_file(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let sealed = s.seal("ci-runner-token:alice", "glrt-secret");
        assert!(!sealed.contains("glrt-secret"));
        assert_ne!(
            sealed,
            s.seal("ci-runner-token:alice", "glrt-secret"),
            "fresh nonces"
        );
        assert_eq!(
            s.open("ci-runner-token:alice", &sealed).unwrap(),
            "glrt-secret"
        );
        assert!(
            s.open("ci-runner-token:bob", &sealed).is_err(),
            "bound to its row"
        );
        assert_eq!(s.open("x", "plain-old").unwrap(), "plain-old");
        // The same key file opens it again; another key does not.
        let again = Sealer::from_key_file(&path).unwrap();
        assert_eq!(
            again.open("ci-runner-token:alice", &sealed).unwrap(),
            "glrt-secret"
        );
        let other = Sealer::from_key_file(&dir.path().join("other.key")).unwrap();
        assert!(other.open("ci-runner-token:alice", &sealed).is_err());
    }
}
