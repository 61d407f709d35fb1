//! A build context as the engine will read it: unpacked (a gzipped one counted while it
//! expands, so a small upload cannot expand into gigabytes), its `Dockerfile` found the
//! way the classic builder finds it, and the context written again with another
//! `Dockerfile` (the one pinned to the images that were checked).

use std::io::Read;

/// Largest Dockerfile read.
const MAX_DOCKERFILE: u64 = 1 << 20;

/// Why a context is refused; each is a sentence for the user.
#[derive(Debug, thiserror::Error)]
pub(super) enum ContextError {
    #[error("the build context unpacks to more than {0} bytes, the limit for an unpacked context (WM_BUILD_CONTEXT_MAX_UNPACKED_BYTES)")]
    TooLarge(u64),
    /// Not an archive the builder can use: `reason` keys the sentence, `path` names the
    /// Dockerfile at fault where one is.
    #[error("{message}")]
    Invalid {
        reason: &'static str,
        path: Option<String>,
        message: String,
    },
}

/// An unpacked context (a plain tar) and its Dockerfile's text.
pub(super) struct Context {
    tar: Vec<u8>,
    pub dockerfile: String,
}

/// A path in the archive as the engine extracts it: `./a/../Dockerfile` is `Dockerfile`.
fn clean(path: &[u8]) -> String {
    let path = String::from_utf8_lossy(path);
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// Whether an entry is the context's Dockerfile (or the lower-case one the builder falls
/// back to).
fn is_dockerfile(path: &str) -> bool {
    path == "Dockerfile" || path == "dockerfile"
}

/// Unpacks `raw` (a tar, or a gzipped tar) counting at most `max` bytes.
///
/// # Errors
/// Over `max` unpacked bytes; not a tar; no `Dockerfile` at its root, or one that is
/// not a regular file.
pub(super) fn unpack(raw: &[u8], max: u64) -> Result<Context, ContextError> {
    let mut tar = Vec::new();
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut dec = flate2::read::GzDecoder::new(raw).take(max + 1);
        dec.read_to_end(&mut tar)
            .map_err(|e| ContextError::Invalid {
                reason: "not_gzip",
                path: None,
                message: format!("the context is not a valid gzip stream: {e}"),
            })?;
    } else {
        tar.extend_from_slice(raw);
    }
    if tar.len() as u64 > max {
        return Err(ContextError::TooLarge(max));
    }
    let bad = |reason: &'static str, m: String| ContextError::Invalid {
        reason,
        path: None,
        message: m,
    };
    let bad_file = |reason: &'static str, path: &str, m: String| ContextError::Invalid {
        reason,
        path: Some(path.to_string()),
        message: m,
    };
    let mut upper = None;
    let mut lower = None;
    let mut archive = tar::Archive::new(tar.as_slice());
    for entry in archive
        .entries()
        .map_err(|e| bad("not_tar", format!("the context is not a tar archive: {e}")))?
    {
        let mut entry = entry.map_err(|e| {
            bad(
                "not_tar",
                format!("the context is not a valid tar archive: {e}"),
            )
        })?;
        let path = clean(&entry.path_bytes());
        if !is_dockerfile(&path) {
            continue;
        }
        let text = if entry.header().entry_type().is_file() {
            if entry.size() > MAX_DOCKERFILE {
                return Err(bad_file(
                    "dockerfile_too_large",
                    &path,
                    format!("the {path} is larger than {MAX_DOCKERFILE} bytes"),
                ));
            }
            let mut s = String::new();
            entry.read_to_string(&mut s).map_err(|_| {
                bad_file("not_utf8", &path, format!("the {path} is not UTF-8 text"))
            })?;
            Some(s)
        } else {
            None
        };
        // The last entry of a name is the one extraction leaves.
        if path == "Dockerfile" {
            upper = Some(text);
        } else {
            lower = Some(text);
        }
    }
    let found = upper.or(lower).ok_or_else(|| {
        bad(
            "no_dockerfile",
            "the context has no Dockerfile at its root".into(),
        )
    })?;
    let dockerfile = found.ok_or_else(|| {
        bad(
            "dockerfile_not_file",
            "the context's Dockerfile must be a regular file (not a link or a directory)".into(),
        )
    })?;
    Ok(Context { tar, dockerfile })
}

impl Context {
    /// A context of only a Dockerfile (the API's `dockerfile` field).
    pub(super) fn from_dockerfile(text: String) -> Context {
        Context {
            tar: tar::Builder::new(Vec::new())
                .into_inner()
                .unwrap_or_default(),
            dockerfile: text,
        }
    }

    /// The context as a plain tar with `dockerfile` as its `Dockerfile`: every other
    /// entry as it was, the Dockerfile last, so nothing in the archive can replace it.
    pub(super) fn with_dockerfile(&self, dockerfile: &str) -> Result<Vec<u8>, std::io::Error> {
        let mut out = tar::Builder::new(Vec::with_capacity(self.tar.len() + 1024));
        let mut archive = tar::Archive::new(self.tar.as_slice());
        for entry in archive.entries()? {
            let mut entry = entry?;
            // Written as the engine extracts it (no `..`, which the tar crate refuses).
            let path = clean(&entry.path_bytes());
            if path.is_empty() || is_dockerfile(&path) {
                continue;
            }
            let mut header = entry.header().clone();
            match entry.link_name_bytes() {
                Some(link)
                    if header.entry_type().is_symlink() || header.entry_type().is_hard_link() =>
                {
                    let link = String::from_utf8_lossy(&link).into_owned();
                    out.append_link(&mut header, &path, &link)?;
                }
                _ => out.append_data(&mut header, &path, &mut entry)?,
            }
        }
        let mut header = tar::Header::new_gnu();
        header.set_size(dockerfile.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(crate::util::now().max(0) as u64);
        header.set_entry_type(tar::EntryType::Regular);
        out.append_data(&mut header, "Dockerfile", dockerfile.as_bytes())?;
        out.into_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            // Written raw: the tar crate refuses `..`, an uploaded archive may have it.
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn finds_and_replaces_the_dockerfile() {
        let raw = tar_of(&[
            ("./Dockerfile", b"FROM a\n"),
            ("sub/x", b"x"),
            ("sub/../Dockerfile", b"FROM b\n"),
        ]);
        let ctx = unpack(&raw, 1 << 20).unwrap();
        assert_eq!(ctx.dockerfile, "FROM b\n");
        let out = ctx.with_dockerfile("FROM sha256:1\n").unwrap();
        let again = unpack(&out, 1 << 20).unwrap();
        assert_eq!(again.dockerfile, "FROM sha256:1\n");
        let names: Vec<String> = tar::Archive::new(out.as_slice())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["sub/x", "Dockerfile"]);
        assert!(
            ctx.with_dockerfile("x").is_ok(),
            "an entry with .. is written cleaned"
        );
        // The lower-case name the builder falls back to.
        let ctx = unpack(&tar_of(&[("dockerfile", b"FROM c\n")]), 1 << 20).unwrap();
        assert_eq!(ctx.dockerfile, "FROM c\n");
        assert!(unpack(&tar_of(&[("x", b"x")]), 1 << 20).is_err());
    }

    #[test]
    fn counts_while_unpacking() {
        let raw = tar_of(&[("Dockerfile", b"FROM a\n"), ("zeros", &vec![0u8; 1 << 20])]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut gz, &raw).unwrap();
        let gz = gz.finish().unwrap();
        assert!(gz.len() < 10_000);
        assert!(matches!(
            unpack(&gz, 512 << 10),
            Err(ContextError::TooLarge(_))
        ));
        assert!(unpack(&gz, 2 << 20).is_ok());
    }

    #[test]
    fn refuses_a_linked_dockerfile() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "Dockerfile", "secret").unwrap();
        let raw = b.into_inner().unwrap();
        assert!(unpack(&raw, 1 << 20).is_err());
    }
}
