//! Each user's storage on this host, and the file operations on it.
//!
//! A user's storage is a Docker named volume (`<instance>-<owner>-data`, the default) or a
//! directory `<root>/<owner>` on the host (the department's home directories), mounted at
//! the same path (`/data`) in every container of theirs. It is made on first use and
//! outlives every container.
//!
//! The console reads and writes it without a container: here, on the host's file system,
//! through descriptors opened with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
//! RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)`, so the kernel itself keeps every path inside
//! the storage, whatever links or mounts a container made in it.

use bytes::Bytes;
use futures::StreamExt;
use rustix::fd::OwnedFd;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;
use wm_backend::{why, BackendError, ByteStream, FileEntry, FileKind, StoragePath, Why};

/// Most entries one listing answers.
pub const MAX_LIST: usize = 10_000;
/// Deepest directory tree a removal or a measurement walks.
const MAX_DEPTH: usize = 512;

/// What a user's storage is on this host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// A Docker named volume per user.
    #[default]
    Volume,
    /// A directory per user under `root`.
    Directory,
    /// No storage: containers keep their data in their own layer only.
    Off,
}

/// `[docker.storage]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSettings {
    /// `volume`, `directory` or `off` (`WM_STORAGE`).
    pub kind: StorageKind,
    /// Where it is mounted in every container (`WM_STORAGE_PATH`).
    pub path: String,
    /// For `directory`: the host directory holding one directory per user
    /// (`WM_STORAGE_ROOT`), e.g. `/home`.
    pub root: Option<String>,
    /// Owner of a user's new directory (`WM_STORAGE_OWNER`): `account`, the host account
    /// of the user's name when the host knows one (else `uid`/`gid`), or `fixed`.
    pub owner: OwnerRule,
    /// The numeric owner of new directories and files when no account applies
    /// (`WM_STORAGE_UID`, `WM_STORAGE_GID`).
    pub uid: u32,
    pub gid: u32,
}

/// Who owns a user's new directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OwnerRule {
    #[default]
    Account,
    Fixed,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            kind: StorageKind::Volume,
            path: "/data".into(),
            root: None,
            owner: OwnerRule::Account,
            uid: 0,
            gid: 0,
        }
    }
}

impl StorageSettings {
    pub(crate) fn validate(&self, forbidden: &[&str]) -> Result<(), String> {
        let clean = |p: &str| {
            p.starts_with('/')
                && p.len() <= 1024
                && !p.contains('\0')
                && p.split('/').all(|c| c != "." && c != "..")
        };
        let path = self.path.trim_end_matches('/');
        if !clean(&self.path) || path.is_empty() || ["/proc", "/sys", "/dev"].contains(&path) {
            return Err(format!(
                "storage path {:?} must be an absolute directory in the container, not / or a system directory",
                self.path
            ));
        }
        match (self.kind, &self.root) {
            (StorageKind::Directory, None) => {
                Err("storage kind directory needs a root (WM_STORAGE_ROOT)".into())
            }
            (StorageKind::Directory, Some(root)) => {
                let r = root.trim_end_matches('/');
                let forbidden_here = |f: &&str| {
                    r == *f
                        || f.starts_with(&format!("{r}/"))
                        || (*f != "/" && r.starts_with(&format!("{f}/")))
                };
                if !clean(root) || r.is_empty() || forbidden.iter().any(forbidden_here) {
                    Err(format!(
                        "storage root {root:?} must be an absolute host directory, not a system directory"
                    ))
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }
}

/// A path in the storage, relative to its root: `""` is the root.
///
/// # Errors
/// [`BackendError::Policy`] for `..`, NUL, or parts too long.
pub fn relative(path: &str) -> Result<String, BackendError> {
    if path.len() > 4096 || path.contains('\0') {
        return Err(BackendError::Policy(Why::new(
            "path_invalid",
            [],
            "the path is too long or contains a NUL character",
        )));
    }
    let mut parts = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(BackendError::Policy(why::path_dotdot())),
            c if c.len() > 255 => {
                return Err(BackendError::Policy(Why::new(
                    "path_part_too_long",
                    [],
                    "a part of the path is longer than 255 bytes",
                )))
            }
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_XDEV);

fn io(e: Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e.raw_os_error())
}

/// What the user is told of a failed file operation on `rel`.
fn failed(rel: &str, e: Errno) -> BackendError {
    let shown = if rel.is_empty() { "/" } else { rel };
    match e {
        Errno::NOENT => BackendError::NoSuchFile(why::storage_missing(shown)),
        Errno::LOOP | Errno::XDEV => BackendError::NoSuchFile(Why::new(
            "storage_link",
            [("path", shown.to_string())],
            format!("{shown} goes through a symbolic link or a mount; links are not followed"),
        )),
        Errno::NOTDIR => BackendError::NoSuchFile(Why::new(
            "storage_not_dir",
            [("path", shown.to_string())],
            format!("a part of {shown} is not a directory"),
        )),
        Errno::ISDIR => BackendError::Refused(why::storage_is_dir(shown)),
        Errno::EXIST => BackendError::Refused(Why::new(
            "storage_exists",
            [("path", shown.to_string())],
            format!("{shown} exists and is not a directory"),
        )),
        Errno::NOSPC | Errno::DQUOT => BackendError::Exhausted(Why::new(
            "storage_disk_full",
            [],
            "the host's disk for storage is full; tell an administrator",
        )),
        Errno::NAMETOOLONG => BackendError::Policy(Why::new(
            "name_too_long",
            [("path", shown.to_string())],
            format!("{shown}: a name is too long"),
        )),
        e => BackendError::Engine(format!("storage: {shown}: {}", io(e))),
    }
}

/// The storage's root directory.
pub(crate) fn open_root(root: &Path) -> Result<OwnedFd, BackendError> {
    rustix::fs::open(
        root,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )
    .map_err(|e| {
        BackendError::Storage(Why::new(
            "storage_unopenable",
            [],
            format!("your storage cannot be opened on this host ({})", io(e)),
        ))
    })
}

fn beneath(dir: &OwnedFd, rel: &str, flags: OFlags, mode: Mode) -> Result<OwnedFd, Errno> {
    rustix::fs::openat2(
        dir,
        if rel.is_empty() { "." } else { rel },
        flags | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        mode,
        RESOLVE,
    )
}

fn open_dir(dir: &OwnedFd, rel: &str) -> Result<OwnedFd, Errno> {
    beneath(dir, rel, OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty())
}

fn split(rel: &str) -> (&str, &str) {
    rel.rsplit_once('/').unwrap_or(("", rel))
}

fn kind_of(t: FileType) -> FileKind {
    match t {
        FileType::RegularFile => FileKind::File,
        FileType::Directory => FileKind::Dir,
        FileType::Symlink => FileKind::Symlink,
        _ => FileKind::Other,
    }
}

/// A directory's entries, or a file's size.
pub(crate) fn stat(root: &OwnedFd, rel: &str) -> Result<StoragePath, BackendError> {
    let st = if rel.is_empty() {
        rustix::fs::fstat(root)
    } else {
        let (parent, name) = split(rel);
        let p = open_dir(root, parent).map_err(|e| failed(rel, e))?;
        rustix::fs::statat(&p, name, AtFlags::SYMLINK_NOFOLLOW)
    }
    .map_err(|e| failed(rel, e))?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => {
            let fd = open_dir(root, rel).map_err(|e| failed(rel, e))?;
            let (entries, truncated) = list(&fd).map_err(|e| failed(rel, e))?;
            Ok(StoragePath::Dir { entries, truncated })
        }
        FileType::RegularFile => Ok(StoragePath::File {
            size: st.st_size,
            modified: st.st_mtime,
        }),
        FileType::Symlink => Err(failed(rel, Errno::LOOP)),
        _ => Err(BackendError::NoSuchFile(Why::new(
            "storage_odd",
            [("path", rel.to_string())],
            format!("{rel} is neither a file nor a directory"),
        ))),
    }
}

fn list(dir: &OwnedFd) -> Result<(Vec<FileEntry>, bool), Errno> {
    let mut out = Vec::new();
    let mut truncated = false;
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        if out.len() == MAX_LIST {
            truncated = true;
            break;
        }
        let Ok(st) = rustix::fs::statat(dir, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW) else {
            continue; // removed meanwhile
        };
        let kind = kind_of(FileType::from_raw_mode(st.st_mode));
        out.push(FileEntry {
            name: String::from_utf8_lossy(name).into_owned(),
            kind,
            size: if kind == FileKind::File {
                st.st_size
            } else {
                0
            },
            modified: st.st_mtime,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((out, truncated))
}

/// A regular file's bytes.
pub(crate) fn read(root: &OwnedFd, rel: &str) -> Result<ByteStream, BackendError> {
    if rel.is_empty() {
        return Err(failed(rel, Errno::ISDIR));
    }
    // Non-blocking, so that a FIFO a container made cannot hold the call.
    let fd = beneath(root, rel, OFlags::RDONLY | OFlags::NONBLOCK, Mode::empty())
        .map_err(|e| failed(rel, e))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| failed(rel, e))?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => {}
        FileType::Directory => return Err(failed(rel, Errno::ISDIR)),
        _ => {
            return Err(BackendError::NoSuchFile(Why::new(
                "storage_not_file",
                [("path", rel.to_string())],
                format!("{rel} is not a regular file"),
            )))
        }
    }
    let file = tokio::fs::File::from_std(std::fs::File::from(fd));
    Ok(tokio_util::io::ReaderStream::new(file).boxed())
}

/// Writes a file atomically (a temporary name, then a rename over the old one), making
/// the directories on the way, owned by `owner`.
pub(crate) async fn write(
    root: OwnedFd,
    rel: String,
    owner: (u32, u32),
    mut body: ByteStream,
) -> Result<i64, BackendError> {
    if rel.is_empty() {
        return Err(failed(&rel, Errno::ISDIR));
    }
    let (parent, name) = split(&rel);
    let (parent, name) = (parent.to_string(), name.to_string());
    let tmp = format!(".{name}.wm-{}", uuid::Uuid::new_v4().simple());
    let (dir, fd) = {
        let (rel, tmp) = (rel.clone(), tmp.clone());
        tokio::task::spawn_blocking(move || -> Result<(OwnedFd, OwnedFd), BackendError> {
            let dir = make_dirs(&root, &parent, owner).map_err(|e| failed(&rel, e))?;
            let fd = beneath(
                &dir,
                &tmp,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL,
                Mode::from_raw_mode(0o644),
            )
            .map_err(|e| failed(&rel, e))?;
            let _ = rustix::fs::fchown(&fd, Some(uid(owner.0)), Some(gid(owner.1)));
            Ok((dir, fd))
        })
        .await
        .map_err(|e| BackendError::Engine(e.to_string()))??
    };
    let mut file = tokio::fs::File::from_std(std::fs::File::from(fd));
    let mut written: i64 = 0;
    let outcome: Result<(), BackendError> = async {
        while let Some(chunk) = body.next().await {
            let chunk: Bytes =
                chunk.map_err(|e| BackendError::Refused(why::upload_broke(&rel, e)))?;
            written += chunk.len() as i64;
            file.write_all(&chunk)
                .await
                .map_err(|e| match e.raw_os_error() {
                    Some(n) => failed(&rel, Errno::from_raw_os_error(n)),
                    None => BackendError::Engine(e.to_string()),
                })?;
        }
        file.flush()
            .await
            .map_err(|e| BackendError::Engine(e.to_string()))?;
        Ok(())
    }
    .await;
    drop(file);
    tokio::task::spawn_blocking(move || match outcome {
        Ok(()) => rustix::fs::renameat(&dir, &tmp, &dir, &name).map_err(|e| {
            let _ = rustix::fs::unlinkat(&dir, &tmp, AtFlags::empty());
            failed(&rel, e)
        }),
        Err(e) => {
            let _ = rustix::fs::unlinkat(&dir, &tmp, AtFlags::empty());
            Err(e)
        }
    })
    .await
    .map_err(|e| BackendError::Engine(e.to_string()))??;
    Ok(written)
}

fn uid(n: u32) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw(n)
}

fn gid(n: u32) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(n)
}

/// Opens `rel` under `root`, making each missing directory on the way.
fn make_dirs(root: &OwnedFd, rel: &str, owner: (u32, u32)) -> Result<OwnedFd, Errno> {
    let mut dir = open_dir(root, "")?;
    for part in rel.split('/').filter(|p| !p.is_empty()) {
        match rustix::fs::mkdirat(&dir, part, Mode::from_raw_mode(0o755)) {
            Ok(()) => {
                let _ = rustix::fs::chownat(
                    &dir,
                    part,
                    Some(uid(owner.0)),
                    Some(gid(owner.1)),
                    AtFlags::SYMLINK_NOFOLLOW,
                );
            }
            Err(Errno::EXIST) => {}
            Err(e) => return Err(e),
        }
        dir = open_dir(&dir, part)?;
    }
    Ok(dir)
}

/// Removes a file, a link or a directory tree. Never the root.
pub(crate) fn remove(root: &OwnedFd, rel: &str) -> Result<(), BackendError> {
    if rel.is_empty() {
        return Err(BackendError::Policy(why::storage_root()));
    }
    let (parent, name) = split(rel);
    let p = open_dir(root, parent).map_err(|e| failed(rel, e))?;
    remove_at(&p, name, 0).map_err(|e| failed(rel, e))
}

fn remove_at(dir: &OwnedFd, name: &str, depth: usize) -> Result<(), Errno> {
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return rustix::fs::unlinkat(dir, name, AtFlags::empty());
    }
    if depth > MAX_DEPTH {
        return Err(Errno::LOOP);
    }
    let child = open_dir(dir, name)?;
    loop {
        // Read a batch of names, then remove them: removing while reading may skip some.
        let mut names = Vec::new();
        for entry in rustix::fs::Dir::read_from(&child)? {
            let entry = entry?;
            let n = entry.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push(entry.file_name().to_owned());
            }
            if names.len() >= 1024 {
                break;
            }
        }
        if names.is_empty() {
            break;
        }
        for n in names {
            match n.to_str() {
                Ok(s) => remove_at(&child, s, depth + 1)?,
                Err(_) => {
                    // A name that is not UTF-8: unlink it or recurse by its bytes.
                    let st = rustix::fs::statat(&child, n.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)?;
                    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                        return Err(Errno::INVAL);
                    }
                    rustix::fs::unlinkat(&child, n.as_c_str(), AtFlags::empty())?;
                }
            }
        }
    }
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
}

/// Bytes of the regular files in the tree (their apparent sizes).
pub(crate) fn usage(root: &OwnedFd) -> Result<i64, BackendError> {
    fn walk(dir: &OwnedFd, depth: usize) -> Result<i64, Errno> {
        let mut total = 0i64;
        for entry in rustix::fs::Dir::read_from(dir)? {
            let entry = entry?;
            let n = entry.file_name();
            if n.to_bytes() == b"." || n.to_bytes() == b".." {
                continue;
            }
            let Ok(st) = rustix::fs::statat(dir, n, AtFlags::SYMLINK_NOFOLLOW) else {
                continue;
            };
            match FileType::from_raw_mode(st.st_mode) {
                FileType::RegularFile => total += st.st_size,
                FileType::Directory if depth < MAX_DEPTH => {
                    if let Ok(child) = rustix::fs::openat2(
                        dir,
                        n,
                        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                        Mode::empty(),
                        RESOLVE,
                    ) {
                        total += walk(&child, depth + 1)?;
                    }
                }
                _ => {}
            }
        }
        Ok(total)
    }
    walk(root, 0).map_err(|e| failed("", e))
}

/// The owner a user's new directory gets: their host account's when the rule says so and
/// the host has one (`id` asks the host's name service, LDAP included), else the settings'.
pub(crate) async fn owner_ids(s: &StorageSettings, user: &str) -> (u32, u32) {
    if s.owner == OwnerRule::Account {
        let id = |flag: &'static str| {
            let user = user.to_string();
            async move {
                let out = tokio::process::Command::new("id")
                    .arg(flag)
                    .arg("--")
                    .arg(user)
                    .output()
                    .await
                    .ok()?;
                if !out.status.success() {
                    return None;
                }
                String::from_utf8(out.stdout)
                    .ok()?
                    .trim()
                    .parse::<u32>()
                    .ok()
            }
        };
        if let (Some(u), Some(g)) = (id("-u").await, id("-g").await) {
            return (u, g);
        }
    }
    (s.uid, s.gid)
}

/// `<root>/<owner>` for directory storage.
pub(crate) fn directory_of(root: &str, owner: &str) -> PathBuf {
    Path::new(root).join(owner)
}

/// Makes `<root>/<owner>` if it is missing (mode 0700, owned as `owner_ids` says).
pub(crate) fn ensure_directory(
    root: &str,
    owner: &str,
    ids: (u32, u32),
) -> Result<(), BackendError> {
    let r = rustix::fs::open(
        root,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        tracing::warn!(root, error = %io(e), "the storage root cannot be opened");
        BackendError::Storage(Why::new(
            "storage_root_missing",
            [],
            "your storage could not be prepared: the host's storage directory is missing or cannot be used; tell an administrator",
        ))
    })?;
    match rustix::fs::mkdirat(&r, owner, Mode::from_raw_mode(0o700)) {
        Ok(()) => {
            rustix::fs::chownat(&r, owner, Some(uid(ids.0)), Some(gid(ids.1)), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| {
                    let _ = rustix::fs::unlinkat(&r, owner, AtFlags::REMOVEDIR);
                    tracing::warn!(root, owner, error = %io(e), "a user's storage directory cannot be given its owner");
                    BackendError::Storage(Why::new(
                        "storage_not_given",
                        [],
                        "your storage could not be prepared: its directory cannot be given to you; tell an administrator",
                    ))
                })
        }
        Err(Errno::EXIST) => {
            let st = rustix::fs::statat(&r, owner, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| failed("", e))?;
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                Ok(())
            } else {
                Err(BackendError::Storage(Why::new(
                    "storage_name_taken",
                    [],
                    "your storage could not be prepared: something that is not a directory has its name; tell an administrator",
                )))
            }
        }
        Err(e) => {
            tracing::warn!(root, owner, error = %io(e), "a user's storage directory cannot be made");
            Err(BackendError::Storage(Why::new(
                "storage_unmade",
                [],
                format!(
                    "your storage could not be prepared: its directory cannot be made ({}); tell an administrator",
                    io(e)
                ),
            )))
        }
    }
}

/// Removes `<root>/<owner>` with everything in it.
pub(crate) fn remove_directory(root: &str, owner: &str) -> Result<(), BackendError> {
    let r = rustix::fs::open(
        root,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| failed("", e))?;
    match remove_at(&r, owner, 0) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(failed("", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> (tempfile::TempDir, OwnedFd) {
        let d = tempfile::tempdir().unwrap();
        let fd = open_root(d.path()).unwrap();
        (d, fd)
    }

    fn bytes(s: &'static str) -> ByteStream {
        futures::stream::iter([Ok(Bytes::from_static(s.as_bytes()))]).boxed()
    }

    async fn read_all(s: ByteStream) -> Vec<u8> {
        s.map(|c| c.unwrap().to_vec()).concat().await
    }

    #[test]
    fn relative_paths() {
        assert_eq!(relative("/").unwrap(), "");
        assert_eq!(relative("").unwrap(), "");
        assert_eq!(relative("/a//b/./c/").unwrap(), "a/b/c");
        for bad in ["../x", "a/../../b", "a\0b"] {
            assert!(relative(bad).is_err(), "{bad:?}");
        }
        assert!(relative(&"x".repeat(256)).is_err());
    }

    #[tokio::test]
    async fn write_list_read_remove() {
        let (d, fd) = root();
        let n = write(
            fd.try_clone().unwrap(),
            "a/b/c.txt".into(),
            (0, 0),
            bytes("hello"),
        )
        .await
        .unwrap();
        assert_eq!(n, 5);
        let fd = open_root(d.path()).unwrap();
        match stat(&fd, "a/b").unwrap() {
            StoragePath::Dir { entries, truncated } => {
                assert!(!truncated);
                assert_eq!(entries.len(), 1);
                assert_eq!(entries[0].name, "c.txt");
                assert_eq!(entries[0].kind, FileKind::File);
                assert_eq!(entries[0].size, 5);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(read_all(read(&fd, "a/b/c.txt").unwrap()).await, b"hello");
        assert_eq!(usage(&fd).unwrap(), 5);
        // Replaced whole, no temporary file left.
        write(
            fd.try_clone().unwrap(),
            "a/b/c.txt".into(),
            (0, 0),
            bytes("hi"),
        )
        .await
        .unwrap();
        assert_eq!(usage(&fd).unwrap(), 2);
        remove(&fd, "a").unwrap();
        assert!(matches!(stat(&fd, "a"), Err(BackendError::NoSuchFile(_))));
        assert!(remove(&fd, "").is_err());
    }

    #[tokio::test]
    async fn links_out_of_the_storage_are_never_followed() {
        let (d, fd) = root();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s3cret").unwrap();
        std::os::unix::fs::symlink(outside.path(), d.path().join("out")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), d.path().join("s")).unwrap();
        std::os::unix::fs::symlink("/etc", d.path().join("etc")).unwrap();
        // Listed as links, never read through, written through or removed through.
        match stat(&fd, "").unwrap() {
            StoragePath::Dir { entries, .. } => {
                assert!(
                    entries.iter().all(|e| e.kind == FileKind::Symlink),
                    "{entries:?}"
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(read(&fd, "s"), Err(BackendError::NoSuchFile(_))));
        assert!(matches!(
            read(&fd, "out/secret"),
            Err(BackendError::NoSuchFile(_))
        ));
        assert!(matches!(stat(&fd, "out"), Err(BackendError::NoSuchFile(_))));
        assert!(matches!(
            stat(&fd, "etc/passwd"),
            Err(BackendError::NoSuchFile(_))
        ));
        assert!(write(
            fd.try_clone().unwrap(),
            "out/new".into(),
            (0, 0),
            bytes("x")
        )
        .await
        .is_err());
        assert!(!outside.path().join("new").exists());
        assert!(remove(&fd, "out/secret").is_err());
        // Removing the link removes the link only.
        remove(&fd, "s").unwrap();
        remove(&fd, "out").unwrap();
        assert!(outside.path().join("secret").exists());
        // A FIFO does not hold a read.
        rustix::fs::mknodat(&fd, "fifo", FileType::Fifo, Mode::from_raw_mode(0o644), 0).unwrap();
        assert!(matches!(
            read(&fd, "fifo"),
            Err(BackendError::NoSuchFile(_))
        ));
        assert_eq!(usage(&fd).unwrap(), 0);
    }

    #[test]
    fn settings_are_checked() {
        let ok = StorageSettings::default();
        assert!(ok.validate(&["/etc"]).is_ok());
        for bad in [
            StorageSettings {
                path: "/".into(),
                ..ok.clone()
            },
            StorageSettings {
                path: "data".into(),
                ..ok.clone()
            },
            StorageSettings {
                path: "/a/../b".into(),
                ..ok.clone()
            },
            StorageSettings {
                kind: StorageKind::Directory,
                ..ok.clone()
            },
            StorageSettings {
                kind: StorageKind::Directory,
                root: Some("/etc".into()),
                ..ok.clone()
            },
            StorageSettings {
                kind: StorageKind::Directory,
                root: Some("/".into()),
                ..ok.clone()
            },
        ] {
            assert!(bad.validate(&["/", "/etc"]).is_err(), "{bad:?}");
        }
    }
}
