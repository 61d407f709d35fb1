//! The stored login: `$XDG_CONFIG_HOME/wm/config.toml` (else `~/.config/wm/`), a file only
//! its owner may read, in a directory only its owner may enter, because it holds a token.

use super::failure::{Failure, Kind};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Login {
    pub(crate) url: String,
    pub(crate) user: String,
    pub(crate) token: String,
}

fn dir() -> Result<PathBuf, Failure> {
    let base =
        match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
            Some(x) => PathBuf::from(x),
            None => PathBuf::from(std::env::var_os("HOME").ok_or_else(|| {
                Failure::new(Kind::Other, "neither XDG_CONFIG_HOME nor HOME is set")
            })?)
            .join(".config"),
        };
    Ok(base.join("wm"))
}

fn file() -> Result<PathBuf, Failure> {
    Ok(dir()?.join("config.toml"))
}

/// The stored login, if there is one.
pub(crate) fn load() -> Result<Option<Login>, Failure> {
    let path = file()?;
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text)
            .map(Some)
            .map_err(|e| Failure::new(Kind::Other, format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Failure::new(
            Kind::Other,
            format!("{}: {e}", path.display()),
        )),
    }
}

/// Stores the login, replacing the file whole (written beside it, then renamed).
pub(crate) fn save(login: &Login) -> Result<PathBuf, Failure> {
    let dir = dir()?;
    let io = |e: std::io::Error| Failure::new(Kind::Other, format!("{}: {e}", dir.display()));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(io)?;
    // An existing directory keeps its mode with `create`; the token needs 0700.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    let path = dir.join("config.toml");
    let tmp = dir.join(".config.toml.tmp");
    let text = toml::to_string(login).expect("a login serializes");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    Ok(path)
}

/// Forgets the stored login; no login is not an error.
pub(crate) fn remove() -> Result<(), Failure> {
    let path = file()?;
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Failure::new(
            Kind::Other,
            format!("{}: {e}", path.display()),
        )),
    }
}
