//! Files uploaded into a container: where they may go, what they may be called, and the
//! server's temporary files that hold them on the way.

use crate::service::Error;
use crate::util::now;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use utoipa::ToSchema;
use wm_backend::ByteStream;

/// How long an upload waits for a free temporary file before it answers 503.
const WAIT: Duration = Duration::from_secs(5);

#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct Written {
    /// Absolute paths written in the container.
    pub(crate) written: Vec<String>,
}

/// What an upload wrote, and where its archive unpacks.
pub(super) struct Archived {
    pub(super) dir: String,
    written: Vec<String>,
}

impl From<Archived> for Written {
    fn from(a: Archived) -> Self {
        Written { written: a.written }
    }
}

/// The archive of an upload, as it streams to the host; the file goes when dropped.
pub(super) struct Tar {
    pub(super) file: SpoolFile,
    pub(super) stream: ByteStream,
}

/// The server's temporary upload files: at most `upload_max_open_files` at once, across
/// all requests.
pub(crate) struct TempFiles {
    permits: Arc<Semaphore>,
}

/// A temporary file on disk, counted against the server's `upload_max_open_files`. Its
/// descriptor is closed once written, so a request holds at most one open at a time;
/// the permit bounds the files themselves.
pub(crate) struct SpoolFile {
    path: tempfile::TempPath,
    size: u64,
    _permit: OwnedSemaphorePermit,
}

impl SpoolFile {
    /// Its size in bytes.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Where it is, for a use case that takes the file over (a VM image).
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Its bytes, read back.
    pub(crate) async fn stream(&self) -> Result<ByteStream, Error> {
        use futures::StreamExt;
        let file = tokio::fs::File::open(&self.path)
            .await
            .map_err(|e| Error::Unexpected(e.into()))?;
        Ok(tokio_util::io::ReaderStream::new(file).boxed())
    }
}

/// What a download from a container gives: a file's bytes, or a tar archive of anything
/// else (a directory with everything in it, a link).
pub(crate) enum Download {
    File {
        name: String,
        size: u64,
        bytes: ByteStream,
    },
    Archive {
        name: String,
        tar: ByteStream,
    },
}

/// Reads the first entry of the engine's archive of one path: a regular file comes out as
/// its bytes, anything else as the archive itself.
pub(super) async fn unpack_download(path: &str, tar: ByteStream) -> Result<Download, Error> {
    use futures::StreamExt;
    use tokio::io::AsyncReadExt;
    let name = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or("root")
        .to_string();
    let mut reader = tokio_util::io::StreamReader::new(tar);
    let mut seen: Vec<u8> = Vec::new();
    let broken = |e: std::io::Error| Error::Engine(format!("the container's archive: {e}"));
    // Extended headers (PAX, GNU long names) come before the entry they describe.
    for _ in 0..8 {
        let mut header = [0u8; 512];
        reader.read_exact(&mut header).await.map_err(broken)?;
        seen.extend_from_slice(&header);
        let size = tar_size(&header[124..136])
            .ok_or_else(|| Error::Engine("the container's archive has a bad size".into()))?;
        match header[156] {
            b'x' | b'g' | b'L' | b'K' => {
                let padded = size.div_ceil(512) * 512;
                let mut skip = vec![0u8; padded as usize];
                if padded > 1 << 20 {
                    return Err(Error::Engine(
                        "the container's archive has a huge header".into(),
                    ));
                }
                reader.read_exact(&mut skip).await.map_err(broken)?;
                seen.extend_from_slice(&skip);
            }
            b'0' | 0 => {
                let bytes = tokio_util::io::ReaderStream::new(reader.take(size)).boxed();
                return Ok(Download::File { name, size, bytes });
            }
            _ => {
                let rest = tokio_util::io::ReaderStream::new(reader);
                let tar = futures::stream::iter([Ok(bytes::Bytes::from(seen))])
                    .chain(rest)
                    .boxed();
                return Ok(Download::Archive { name, tar });
            }
        }
    }
    Err(Error::Engine(
        "the container's archive has too many headers".into(),
    ))
}

/// A tar header's size field: octal, or base-256 when its first bit is set.
fn tar_size(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 != 0 {
        let mut n: u64 = u64::from(field[0] & 0x7f);
        for b in &field[1..] {
            n = n.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(n);
    }
    let text = std::str::from_utf8(field).ok()?;
    let digits = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(digits, 8).ok()
}

impl TempFiles {
    pub(super) fn new(max: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max)),
        }
    }

    /// Takes one of the server's temporary files, waiting briefly when all are in use.
    async fn permit(&self) -> Result<OwnedSemaphorePermit, Error> {
        match tokio::time::timeout(WAIT, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Error::busy(
                "uploads",
                [],
                "the server is busy receiving other uploads; try again in a few seconds",
            )),
        }
    }

    /// Writes `chunks` into a new temporary file; `on_chunk` may refuse a chunk (a size
    /// limit), which ends the upload.
    pub(crate) async fn spool(
        &self,
        mut chunks: impl futures::Stream<Item = Result<bytes::Bytes, Error>> + Unpin,
        mut on_chunk: impl FnMut(usize) -> Result<(), Error>,
    ) -> Result<SpoolFile, Error> {
        use futures::StreamExt;
        let permit = self.permit().await?;
        let (file, path) = tempfile::NamedTempFile::new()
            .map_err(|e| Error::Unexpected(e.into()))?
            .into_parts();
        let mut out = tokio::fs::File::from_std(file);
        let mut size = 0u64;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            on_chunk(chunk.len())?;
            size += chunk.len() as u64;
            out.write_all(&chunk)
                .await
                .map_err(|e| Error::Unexpected(e.into()))?;
        }
        out.flush().await.map_err(|e| Error::Unexpected(e.into()))?;
        Ok(SpoolFile {
            path,
            size,
            _permit: permit,
        })
    }

    /// The tar archive of `files` for the directory `dir` (checked by
    /// [`parse_container_path`]), to be unpacked where the last of `missing` (parts of
    /// `dir`) are cut off, holding those directories first. The archive holds these
    /// directories and regular files only, with names checked by [`parse_upload_name`]:
    /// nothing in it can point or climb out of the target directory.
    pub(super) async fn archive(
        &self,
        dir: &str,
        missing: &[&str],
        files: &[(String, SpoolFile)],
    ) -> Result<(Archived, Tar), Error> {
        if files.is_empty() {
            return Err(Error::broke("file", "none", [], "the form has no file"));
        }
        for (i, (name, _)) in files.iter().enumerate() {
            parse_upload_name(name)?;
            if files[..i].iter().any(|(n, _)| n == name) {
                return Err(Error::refused(
                    "invalid_file_name",
                    Some("file"),
                    "twice",
                    [("name", name.clone())],
                    format!("the file {name} is given twice"),
                ));
            }
        }
        let written: Vec<String> = files
            .iter()
            .map(|(n, _)| format!("{}/{n}", dir.trim_end_matches('/')))
            .collect();
        let prefix = missing.join("/");
        let below = dir.len() - missing.iter().map(|m| m.len() + 1).sum::<usize>();
        let target = if below == 0 { "/" } else { &dir[..below] }.to_string();
        let dirs: Vec<String> = (1..=missing.len())
            .map(|n| missing[..n].join("/"))
            .collect();
        let sources: Vec<(String, std::path::PathBuf, u64)> = files
            .iter()
            .map(|(n, f)| {
                let name = if prefix.is_empty() {
                    n.clone()
                } else {
                    format!("{prefix}/{n}")
                };
                (name, f.path.to_path_buf(), f.size)
            })
            .collect();
        let permit = self.permit().await?;
        let (archive, size) =
            tokio::task::spawn_blocking(move || -> std::io::Result<(tempfile::TempPath, u64)> {
                let out = tempfile::NamedTempFile::new()?;
                let mut builder = tar::Builder::new(out.reopen()?);
                let mtime = now().max(0) as u64;
                for d in &dirs {
                    let mut header = tar::Header::new_gnu();
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    header.set_mode(0o755);
                    header.set_mtime(mtime);
                    builder.append_data(&mut header, format!("{d}/"), std::io::empty())?;
                }
                for (fname, path, size) in &sources {
                    let mut header = tar::Header::new_gnu();
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(*size);
                    header.set_mode(0o644);
                    header.set_mtime(mtime);
                    builder.append_data(&mut header, fname, std::fs::File::open(path)?)?;
                }
                builder.into_inner()?.flush()?;
                let size = out.as_file().metadata()?.len();
                Ok((out.into_temp_path(), size))
            })
            .await
            .map_err(|e| Error::Unexpected(e.into()))?
            .map_err(|e| Error::Unexpected(e.into()))?;
        let file = tokio::fs::File::open(&archive)
            .await
            .map_err(|e| Error::Unexpected(e.into()))?;
        use futures::StreamExt;
        let stream = tokio_util::io::ReaderStream::new(file).boxed();
        Ok((
            Archived {
                dir: target,
                written,
            },
            Tar {
                file: SpoolFile {
                    path: archive,
                    size,
                    _permit: permit,
                },
                stream,
            },
        ))
    }
}

/// A path in the container: absolute, normalised, without `..`.
pub(super) fn parse_container_path(s: &str) -> Result<String, Error> {
    let bad = |reason: &'static str, m: &str| Error::broke("path", reason, [], m);
    if !s.starts_with('/') {
        return Err(bad(
            "relative",
            "path must be an absolute path in the container, e.g. /tmp",
        ));
    }
    if s.len() > 4096 || s.contains('\0') {
        return Err(bad(
            "too_long",
            "path is too long or contains a NUL character",
        ));
    }
    let mut parts = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(bad("dotdot", "path may not contain '..'")),
            c => parts.push(c),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// A file name from the form: relative, inside the target directory.
pub(crate) fn parse_upload_name(s: &str) -> Result<String, Error> {
    let bad = |why: &str| {
        let value: String = s.chars().take(80).collect();
        Error::refused(
            "invalid_file_name",
            Some("file"),
            "bad_name",
            [("value", value.clone())],
            format!("file name {value:?} {why}"),
        )
    };

    if s.is_empty() {
        return Err(bad("is empty"));
    }
    if s.starts_with('/') || s.starts_with('\\') {
        return Err(bad(
            "is absolute; names must stay inside the target directory",
        ));
    }
    if s.len() > 1024 || s.contains('\0') || s.contains('\\') || s.chars().any(char::is_control) {
        return Err(bad("is too long or contains a control character or '\\'"));
    }
    for c in s.split('/') {
        if c.is_empty() || c == "." || c == ".." {
            return Err(bad(
                "has an empty, '.' or '..' part; names must stay inside the target directory",
            ));
        }
        if c.len() > 255 {
            return Err(bad("has a part longer than 255 bytes"));
        }
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_paths() {
        assert_eq!(parse_container_path("/tmp").unwrap(), "/tmp");
        assert_eq!(parse_container_path("/srv//www/./").unwrap(), "/srv/www");
        assert_eq!(parse_container_path("/").unwrap(), "/");
        for bad in ["tmp", "", "/tmp/../etc", "/a\0b"] {
            assert!(parse_container_path(bad).is_err(), "{bad:?}");
        }
    }

    fn archive(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn stream(bytes: Vec<u8>) -> ByteStream {
        use futures::StreamExt;
        // In small pieces, as a network would bring them.
        let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = bytes
            .chunks(100)
            .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
            .collect();
        futures::stream::iter(chunks).boxed()
    }

    async fn all(s: ByteStream) -> Vec<u8> {
        use futures::StreamExt;
        s.map(|c| c.unwrap().to_vec()).concat().await
    }

    #[tokio::test]
    async fn a_downloaded_file_is_its_bytes_and_a_directory_its_archive() {
        let long = format!("{}.txt", "n".repeat(150));
        let file = archive(&[(&long, tar::EntryType::Regular, b"hello world")]);
        match unpack_download(&format!("/tmp/{long}"), stream(file))
            .await
            .unwrap()
        {
            Download::File { name, size, bytes } => {
                assert_eq!(name, long);
                assert_eq!(size, 11);
                assert_eq!(all(bytes).await, b"hello world");
            }
            Download::Archive { .. } => panic!("a file came out as an archive"),
        }
        let dir = archive(&[
            ("d", tar::EntryType::Directory, b""),
            ("d/a", tar::EntryType::Regular, b"a"),
        ]);
        match unpack_download("/srv/d/", stream(dir.clone()))
            .await
            .unwrap()
        {
            Download::Archive { name, tar } => {
                assert_eq!(name, "d");
                assert_eq!(all(tar).await, dir, "the archive, whole");
            }
            Download::File { .. } => panic!("a directory came out as a file"),
        }
        assert!(unpack_download("/x", stream(vec![0; 100])).await.is_err());
    }

    #[test]
    fn tar_sizes() {
        assert_eq!(tar_size(b"00000000013\0"), Some(11));
        assert_eq!(tar_size(b"           \0"), Some(0));
        let mut big = [0u8; 12];
        big[0] = 0x80;
        big[11] = 1;
        big[10] = 1;
        assert_eq!(tar_size(&big), Some(257));
        assert_eq!(tar_size(b"0000000009x\0"), None);
    }

    #[test]
    fn upload_names() {
        for ok in ["a.txt", "sub/b.txt", ".hidden", "日本語.txt"] {
            assert_eq!(parse_upload_name(ok).unwrap(), ok);
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a\\b",
            "a\0",
            "a\nb",
            &"x".repeat(256),
        ] {
            assert!(parse_upload_name(bad).is_err(), "{bad:?}");
        }
    }
}
