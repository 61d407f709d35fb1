//! Each user's storage: a volume (or a directory) per Docker host, mounted in every
//! container of theirs, that outlives the containers. Users list, upload, download and
//! delete its files here without a container; writes are checked against their storage
//! quota first. Administrators see and delete a user's storage.
//!
//! The file calls use one host's storage: the one `host` names, else the first host of the
//! configuration that answers and keeps storage.

use super::accounts::{Admin, Caller};
use super::containers::{parse_upload_name, SpoolFile, Written};
use super::quotas::{Measure, Quotas};
use super::Error;
use crate::hosts::{Host, Hosts};
use crate::util::{now, rfc3339};
use serde::Serialize;
use std::sync::Arc;
use utoipa::ToSchema;
use wm_backend::{ByteStream, FileKind, StoragePath};
use wm_domain::UserName;
use wm_store::Store;

/// `GET /api/v1/storage`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StorageView {
    /// Bytes in the user's storage, on every host, as measured now.
    pub(crate) used: i64,
    /// Their storage quota in bytes; `null` is unlimited.
    pub(crate) quota: Option<i64>,
    /// Where every container of theirs finds it; `null` when no host keeps storage.
    pub(crate) mount_path: Option<String>,
    /// The host the file calls use unless they name another (`?host=`).
    pub(crate) host: Option<String>,
    /// The storage on each host that keeps some.
    pub(crate) volumes: Vec<VolumeView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct VolumeView {
    pub(crate) host: String,
    pub(crate) used: i64,
    /// RFC 3339: when `used` was measured.
    pub(crate) measured_at: String,
}

/// One entry of a directory listing.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FileView {
    pub(crate) name: String,
    /// `file`, `dir`, `symlink` (made by a container; never followed) or `other`.
    #[serde(rename = "type")]
    pub(crate) kind: String,
    /// Bytes; 0 for anything but a file.
    pub(crate) size: i64,
    /// RFC 3339.
    pub(crate) modified: String,
}

/// What a path of the storage holds.
pub(crate) enum Found {
    Dir {
        entries: Vec<FileView>,
        truncated: bool,
    },
    File {
        name: String,
        size: i64,
        bytes: ByteStream,
    },
}

pub(crate) struct Storage {
    store: Store,
    hosts: Arc<Hosts>,
    quotas: Arc<Quotas>,
}

fn kind_name(k: FileKind) -> &'static str {
    match k {
        FileKind::File => "file",
        FileKind::Dir => "dir",
        FileKind::Symlink => "symlink",
        FileKind::Other => "other",
    }
}

/// The longest storage path taken, in characters.
pub(crate) const MAX_PATH: usize = 4096;

/// The longest part of a storage path, in characters (and, as the file system counts,
/// in bytes: a part of many-byte characters may be refused sooner).
const MAX_PART: usize = 255;

/// One part of [`PATH_PATTERN`]: 1 to 255 characters, no slash or control character,
/// not `..` (`.` is allowed and means nothing).
macro_rules! path_part {
    () => {
        concat!(
            "(?:\\.\\.[^/\\x00-\\x1f\\x7f-\\x9f]{1,253}",
            "|\\.[^/.\\x00-\\x1f\\x7f-\\x9f][^/\\x00-\\x1f\\x7f-\\x9f]{0,253}",
            "|\\.",
            "|[^/.\\x00-\\x1f\\x7f-\\x9f][^/\\x00-\\x1f\\x7f-\\x9f]{0,254})"
        )
    };
}

/// [`parse_storage_path`]'s rule as a regular expression (the API document's; with
/// [`MAX_PATH`] as its length).
pub(crate) const PATH_PATTERN: &str = concat!("^/*(?:", path_part!(), "/+)*", path_part!(), "?$");

/// A path in the storage as users give it (`/notes/a.txt`, `notes/a.txt`): relative,
/// normalised, without `..`.
fn parse_storage_path(s: &str) -> Result<String, Error> {
    let bad = |reason: &'static str, m: &str| Error::broke("path", reason, [], m);
    if s.chars().count() > MAX_PATH || s.chars().any(char::is_control) {
        return Err(bad(
            "too_long",
            "path is too long or contains a control character",
        ));
    }
    let mut parts = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(bad("dotdot", "path may not contain '..'")),
            c if c.chars().count() > MAX_PART || c.len() > MAX_PART => {
                return Err(bad(
                    "part_too_long",
                    "a part of the path is longer than 255 characters",
                ))
            }
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

impl Storage {
    pub(crate) fn new(store: Store, hosts: Arc<Hosts>, quotas: Arc<Quotas>) -> Self {
        Self {
            store,
            hosts,
            quotas,
        }
    }

    fn keeps_storage(h: &Host) -> bool {
        h.info().is_some_and(|i| i.storage_path.is_some())
    }

    /// The host the file calls of this request use.
    fn host(&self, host: Option<&str>) -> Result<Arc<Host>, Error> {
        match host {
            Some(id) => {
                let h = self.hosts.get(id).ok_or_else(|| {
                    let id: String = id.chars().take(64).collect();
                    Error::missing(
                        "not_found",
                        "host",
                        [("name", id.clone())],
                        format!("host {id}"),
                    )
                })?;
                self.hosts.reach(id)?;
                if !Self::keeps_storage(h) {
                    return Err(Error::storage(
                        "host_keeps_none",
                        [("host", id.to_string())],
                        format!("host {id} keeps no storage for users"),
                    ));
                }
                Ok(h.clone())
            }
            None => {
                let usable = self.hosts.answering()?;
                usable
                    .into_iter()
                    .find(|h| Self::keeps_storage(h))
                    .ok_or_else(|| {
                        Error::storage(
                            "no_host",
                            [],
                            "no host that answers now keeps storage for users",
                        )
                    })
            }
        }
    }

    /// The caller's storage: its size on every host (measured now), quota and mount path.
    pub(crate) async fn overview(&self, caller: &Caller) -> Result<StorageView, Error> {
        caller.require_full_scope()?;
        self.quotas
            .measure_storage(&caller.name, Measure::Everywhere)
            .await;
        let (quota, _) = self.quotas.mine(caller).await?;
        let measured = self.store.storage_usage(caller.name.as_str()).await?;
        let default = self.host(None).ok();
        let mount_path = default
            .as_ref()
            .and_then(|h| h.info())
            .and_then(|i| i.storage_path)
            .or_else(|| {
                self.hosts
                    .all()
                    .iter()
                    .find_map(|h| h.info().and_then(|i| i.storage_path))
            });
        Ok(StorageView {
            used: measured.iter().map(|(_, b, _)| b).sum(),
            quota: quota.storage_bytes,
            mount_path,
            host: default.map(|h| h.id.clone()),
            volumes: measured
                .into_iter()
                .map(|(host, used, at)| VolumeView {
                    host,
                    used,
                    measured_at: rfc3339(at),
                })
                .collect(),
        })
    }

    /// A directory's listing, or a file's bytes.
    pub(crate) async fn get(
        &self,
        caller: &Caller,
        path: &str,
        host: Option<&str>,
    ) -> Result<Found, Error> {
        caller.require_full_scope()?;
        let rel = parse_storage_path(path)?;
        let h = self.host(host)?;
        match h.backend.storage_stat(&caller.name, &rel).await? {
            StoragePath::Dir { entries, truncated } => Ok(Found::Dir {
                entries: entries
                    .into_iter()
                    .map(|e| FileView {
                        name: e.name,
                        kind: kind_name(e.kind).into(),
                        size: e.size,
                        modified: rfc3339(e.modified),
                    })
                    .collect(),
                truncated,
            }),
            StoragePath::File { size, .. } => Ok(Found::File {
                name: rel.rsplit('/').next().unwrap_or_default().to_string(),
                size,
                bytes: h.backend.storage_read(&caller.name, &rel).await?,
            }),
        }
    }

    /// Writes uploaded files into the directory `dir`, after checking the caller's storage
    /// quota against their total size; nothing is written when it would go over.
    pub(crate) async fn upload(
        &self,
        caller: &Caller,
        dir: &str,
        files: Vec<(String, SpoolFile)>,
        host: Option<&str>,
    ) -> Result<Written, Error> {
        caller.require_full_scope()?;
        let dir = parse_storage_path(dir)?;
        if files.is_empty() {
            return Err(Error::broke("file", "none", [], "the form has no file"));
        }
        for (name, _) in &files {
            parse_upload_name(name)?;
        }
        let h = self.host(host)?;
        let total: i64 = files.iter().map(|(_, f)| f.size() as i64).sum();
        // One user's writes one at a time, from the check until they are measured.
        let admitted = self.quotas.admit(&caller.name).await?;
        self.quotas
            .measure_storage(&caller.name, Measure::Everywhere)
            .await;
        self.quotas
            .check_storage(&admitted, &caller.name, caller.role, total)
            .await?;
        let mut written = Vec::with_capacity(files.len());
        let mut outcome = Ok(());
        for (name, file) in &files {
            let path = if dir.is_empty() {
                name.clone()
            } else {
                format!("{dir}/{name}")
            };
            let r = async {
                let bytes = file.stream().await?;
                h.backend
                    .storage_write(&caller.name, &path, bytes)
                    .await
                    .map_err(Error::from)
            }
            .await;
            match r {
                Ok(_) => written.push(format!("/{path}")),
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
        }
        self.remeasure(&caller.name, &h).await;
        outcome?;
        Ok(Written { written })
    }

    /// Removes a file, a link or a directory with everything in it.
    pub(crate) async fn delete(
        &self,
        caller: &Caller,
        path: &str,
        host: Option<&str>,
    ) -> Result<(), Error> {
        caller.require_full_scope()?;
        let rel = parse_storage_path(path)?;
        if rel.is_empty() {
            return Err(Error::forbidden(
                "storage_root",
                [],
                "the root of your storage cannot be deleted; delete what is in it",
            ));
        }
        let h = self.host(host)?;
        let r = h.backend.storage_remove(&caller.name, &rel).await;
        self.remeasure(&caller.name, &h).await;
        Ok(r?)
    }

    async fn remeasure(&self, user: &UserName, h: &Host) {
        match h.backend.storage_usage(user).await {
            Ok(b) => {
                if let Err(e) = self
                    .store
                    .set_storage_usage(user.as_str(), &[(&h.id, b)], now())
                    .await
                {
                    tracing::warn!(error = %e, "a storage measurement cannot be recorded");
                }
            }
            Err(e) => {
                tracing::warn!(host = %h.id, error = %e, "a user's storage cannot be measured")
            }
        }
    }

    /// A user's storage on every host, for administrators.
    pub(crate) async fn of_user(
        &self,
        _admin: &Admin,
        user: &str,
    ) -> Result<Vec<VolumeView>, Error> {
        let name = self.person(user).await?;
        self.quotas
            .measure_storage(&name, Measure::Everywhere)
            .await;
        Ok(self
            .store
            .storage_usage(name.as_str())
            .await?
            .into_iter()
            .map(|(host, used, at)| VolumeView {
                host,
                used,
                measured_at: rfc3339(at),
            })
            .collect())
    }

    /// Deletes a user's storage on every host that answers, with everything in it: the
    /// administrator's decision when a user leaves. Refused while they have containers.
    pub(crate) async fn delete_user_storage(
        &self,
        _admin: &Admin,
        user: &str,
    ) -> Result<(), Error> {
        let name = self.person(user).await?;
        for h in self
            .hosts
            .answering()?
            .iter()
            .filter(|h| Self::keeps_storage(h))
        {
            h.backend.storage_delete(&name).await?;
            self.store
                .delete_storage_usage(name.as_str(), &h.id)
                .await?;
        }
        Ok(())
    }

    async fn person(&self, user: &str) -> Result<UserName, Error> {
        let not_found = || {
            let name: String = user.chars().take(64).collect();
            Error::missing(
                "not_found",
                "user",
                [("name", name.clone())],
                format!("user {name}"),
            )
        };
        let name = UserName::parse(user).map_err(|_| not_found())?;
        self.store
            .user(name.as_str())
            .await?
            .map(|u| u.name)
            .ok_or_else(not_found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_paths() {
        assert_eq!(parse_storage_path("/").unwrap(), "");
        assert_eq!(parse_storage_path("").unwrap(), "");
        assert_eq!(parse_storage_path("/a//b/./c/").unwrap(), "a/b/c");
        assert_eq!(
            parse_storage_path("notes/日本語.txt").unwrap(),
            "notes/日本語.txt"
        );
        for bad in ["../x", "a/../../b", "a\0b", "a\nb"] {
            assert!(parse_storage_path(bad).is_err(), "{bad:?}");
        }
        assert!(parse_storage_path(&"x".repeat(256)).is_err());
    }

    /// The API document's pattern says what the parser does (for characters of one byte;
    /// the file system counts a part's bytes).
    #[test]
    fn the_documented_pattern_agrees() {
        let re = regex::Regex::new(PATH_PATTERN).unwrap();
        let mut inputs = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..5 {
            last = last
                .iter()
                .flat_map(|s| "a./\n".chars().map(move |c| format!("{s}{c}")))
                .collect();
            inputs.extend(last.iter().cloned());
        }
        for n in [253, 254, 255, 256] {
            for prefix in ["", ".", ".."] {
                let part = format!("{prefix}{}", "x".repeat(n - prefix.len()));
                inputs.push(part.clone());
                inputs.push(format!("/a/{part}/b"));
            }
        }
        inputs.push("a/".repeat(2048));
        inputs.push(format!("{}b", "a/".repeat(2048)));
        for s in &inputs {
            let documented = re.is_match(s) && s.chars().count() <= MAX_PATH;
            assert_eq!(documented, parse_storage_path(s).is_ok(), "{s:?}");
        }
    }
}
