//! The console's own files are the console's alone: the data directory and the SIF cache
//! are `0700`, the SQLite database (with its `-wal` and `-shm`), the secret key and every
//! cached SIF `0600`. They are made so, and anything looser found at start is tightened:
//! the database holds password hashes and the SIF cache users' private images.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` (and missing parents) as `0700`, and tightens it if it is looser.
pub(crate) fn private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    tighten(dir, 0o700)
}

/// Takes group and other permissions away from `path` if it has any; `mode` is what it
/// gets then. A missing path is fine.
pub(crate) fn tighten(path: &Path, mode: u32) -> io::Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.permissions().mode() & 0o077 != 0 => {
            tracing::warn!(path = %path.display(), mode = format!("{:o}", m.permissions().mode() & 0o777), "tightening permissions");
            std::fs::set_permissions(path, Permissions::from_mode(mode))
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates (or truncates) a file only its owner may read.
pub(crate) fn create_private_file(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    tighten(path, 0o600)?;
    Ok(f)
}

/// The file of a `sqlite:` database URL, unless it is in memory.
pub(crate) fn sqlite_path(url: &str) -> Option<&Path> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or("");
    (!path.is_empty() && !path.contains(":memory:")).then(|| Path::new(path))
}

/// Makes the SQLite file `0600` before SQLite first opens it (SQLite gives its `-wal` and
/// `-shm` the database's permissions), and tightens all three if they are looser.
pub(crate) fn sqlite_files(db: &Path) -> io::Result<()> {
    if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            private_dir(parent)?;
        }
    }
    if !db.exists() {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(db)
            .or_else(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => OpenOptions::new().read(true).open(db),
                _ => Err(e),
            })?;
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        tighten(Path::new(&p), 0o600)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls() {
        assert_eq!(
            sqlite_path("sqlite:///var/lib/wm/wm.db?mode=rwc"),
            Some(Path::new("/var/lib/wm/wm.db"))
        );
        assert_eq!(
            sqlite_path("sqlite://data/wm.db"),
            Some(Path::new("data/wm.db"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://x/y"), None);
    }
}
