//! `wm cp`: files between this computer, a container (`NAME:/path`) and the caller's
//! personal storage (`~/path`), files and whole folders both ways.

use super::failure::{Failure, Kind};
use super::Session;
use reqwest::multipart::{Form, Part};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// One side of a copy.
#[derive(Debug, PartialEq)]
enum Place {
    Local(PathBuf),
    /// A short name and an absolute path in the container.
    Container(String, String),
    /// A path relative to the storage's root.
    Storage(String),
}

impl Place {
    fn parse(s: &str) -> Place {
        if s == "~" {
            return Place::Storage(String::new());
        }
        if let Some(rest) = s.strip_prefix("~/") {
            return Place::Storage(rest.to_string());
        }
        // `NAME:/path`; a local path with a colon is written `./a:b`.
        match s.split_once(':') {
            Some((name, path))
                if !name.is_empty() && !name.contains('/') && path.starts_with('/') =>
            {
                Place::Container(name.to_string(), path.to_string())
            }
            _ => Place::Local(PathBuf::from(s)),
        }
    }
}

/// A remote destination: a folder and the file's name in it. `dir/` keeps the source's name.
fn split_remote<'a>(path: &'a str, source_name: &'a str) -> (&'a str, &'a str) {
    if path.is_empty() || path.ends_with('/') {
        return (path.trim_end_matches('/'), source_name);
    }
    match path.rsplit_once('/') {
        Some((dir, name)) => (dir, name),
        None => ("", path),
    }
}

pub(super) async fn cp(s: &Session, src: &str, dst: &str) -> Result<ExitCode, Failure> {
    let usage = |m: &str| Err(Failure::new(Kind::Usage, m.to_string()));
    match (Place::parse(src), Place::parse(dst)) {
        (Place::Local(_), Place::Local(_)) => usage(s.api.lang.pick(
            "one side must be a container (NAME:/path) or your storage (~/path)",
            "どちらかはコンテナ (NAME:/path) か個人ストレージ (~/path) にしてください",
        )),
        (Place::Local(from), to) => upload(s, &from, to).await,
        (from, Place::Local(to)) => download(s, from, &to).await,
        _ => usage(s.api.lang.pick(
            "copy through this computer: one side must be a local path",
            "片方はローカルのパスにしてください",
        )),
    }
}

async fn upload(s: &Session, from: &Path, to: Place) -> Result<ExitCode, Failure> {
    let source_name = from
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("file")
        .to_string();
    let path = match &to {
        Place::Container(_, path) | Place::Storage(path) => path.as_str(),
        Place::Local(_) => unreachable!("cp checks that one side is remote"),
    };
    let (dir, name) = split_remote(path, &source_name);
    let dir = if dir.is_empty() && matches!(to, Place::Container(..)) {
        "/"
    } else {
        dir
    };
    // Each file by its name in `dir`: a folder goes up as `cp -r` would copy it, as `NAME`
    // in `DIR` with its subfolders (the API makes the folders a file's name holds).
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    let meta = std::fs::metadata(from)
        .map_err(|e| Failure::new(Kind::Other, format!("{}: {e}", from.display())))?;
    if meta.is_file() {
        files.push((from.to_path_buf(), name.to_string()));
    } else {
        let walk = ignore::WalkBuilder::new(from)
            .standard_filters(false)
            .sort_by_file_path(|a, b| a.cmp(b))
            .build();
        for entry in walk {
            let entry = entry.map_err(|e| Failure::new(Kind::Other, e.to_string()))?;
            if !entry.file_type().is_some_and(|t| t.is_file()) {
                continue;
            }
            let rel = entry.path().strip_prefix(from).expect("walked under from");
            let rel = rel.to_str().ok_or_else(|| {
                Failure::new(
                    Kind::Usage,
                    format!("{}: not UTF-8", entry.path().display()),
                )
            })?;
            files.push((entry.path().to_path_buf(), format!("{name}/{rel}")));
        }
    }
    let total = files
        .iter()
        .map(|(local, _)| std::fs::metadata(local).map_or(0, |m| m.len()))
        .sum();
    let bar = super::progress::bytes_bar(Some(total));
    let mut form = Form::new().text("path", dir.to_string());
    for (local, file_name) in files {
        let file = tokio::fs::File::open(&local)
            .await
            .map_err(|e| Failure::new(Kind::Other, format!("{}: {e}", local.display())))?;
        let len = file.metadata().await?.len();
        let body = reqwest::Body::wrap_stream(counted(file, bar.clone()));
        form = form.part(
            "file",
            Part::stream_with_length(body, len).file_name(file_name),
        );
    }
    let request = match &to {
        Place::Container(short, _) => s.api.post(&["containers", &s.full_name(short), "files"]),
        _ => s.api.post(&["storage", "files"]),
    };
    s.api.send(request.multipart(form)).await?;
    bar.finish_and_clear();
    Ok(ExitCode::SUCCESS)
}

/// A folder of the storage, with its subfolders, into `local`.
async fn storage_folder(s: &Session, remote: &str, local: &Path) -> Result<(), Failure> {
    let mut folders = vec![(
        remote.trim_end_matches('/').to_string(),
        local.to_path_buf(),
    )];
    while let Some((remote, local)) = folders.pop() {
        let listing = s
            .api
            .send(s.api.get(&["storage", "files"]).query(&[("path", &remote)]))
            .await?;
        if listing.headers().contains_key("x-wm-truncated") {
            eprintln!(
                "wm: ~/{remote}: {}",
                s.api.lang.pick(
                    "too many entries; only the first were listed and copied",
                    "項目が多すぎるため、最初の一部だけをコピーしました"
                )
            );
        }
        let entries: Vec<serde_json::Value> = listing
            .json()
            .await
            .map_err(|e| Failure::new(Kind::Other, format!("unexpected answer: {e}")))?;
        std::fs::create_dir_all(&local)
            .map_err(|e| Failure::new(Kind::Other, format!("{}: {e}", local.display())))?;
        for e in entries {
            let name = e["name"].as_str().unwrap_or_default();
            // A name is one path component; anything else is not written here.
            if name.is_empty() || name == "." || name == ".." || name.contains('/') {
                continue;
            }
            let child = if remote.is_empty() {
                name.to_string()
            } else {
                format!("{remote}/{name}")
            };
            match e["type"].as_str() {
                Some("dir") => folders.push((child, local.join(name))),
                Some("file") => {
                    let resp = s
                        .api
                        .send(s.api.get(&["storage", "files"]).query(&[("path", &child)]))
                        .await?;
                    super::progress::save(resp, &local.join(name)).await?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// A file's bytes as a body stream, counted on the bar.
pub(super) fn counted(
    file: tokio::fs::File,
    bar: indicatif::ProgressBar,
) -> impl futures::Stream<Item = std::io::Result<bytes::Bytes>> {
    futures::stream::unfold((file, bar), |(mut file, bar)| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                bar.inc(n as u64);
                Some((Ok(bytes::Bytes::from(buf)), (file, bar)))
            }
            Err(e) => Some((Err(e), (file, bar))),
        }
    })
}

async fn download(s: &Session, from: Place, to: &Path) -> Result<ExitCode, Failure> {
    let (request, path) = match &from {
        Place::Container(name, path) => (
            s.api.get(&["containers", &s.full_name(name), "files"]),
            path.clone(),
        ),
        Place::Storage(path) => (s.api.get(&["storage", "files"]), path.clone()),
        Place::Local(_) => unreachable!("cp checks that one side is remote"),
    };
    let resp = s.api.send(request.query(&[("path", &path)])).await?;
    let kind = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if kind.starts_with("application/json") {
        // The storage answers a folder with its listing: fetched file by file.
        let name = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
        storage_folder(s, &path, &to.join(name)).await?;
        return Ok(ExitCode::SUCCESS);
    }
    if kind.starts_with("application/x-tar") {
        // A folder from a container: unpacked into the destination.
        let data = super::progress::read(resp).await?;
        std::fs::create_dir_all(to)?;
        tar::Archive::new(data.as_slice())
            .unpack(to)
            .map_err(|e| Failure::new(Kind::Other, format!("{}: {e}", to.display())))?;
        return Ok(ExitCode::SUCCESS);
    }
    let target = if to.is_dir() {
        let name = path
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("file");
        to.join(name)
    } else {
        to.to_path_buf()
    };
    super::progress::save(resp, &target).await?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places() {
        assert_eq!(
            Place::parse("web:/tmp/a"),
            Place::Container("web".into(), "/tmp/a".into())
        );
        assert_eq!(Place::parse("~/d/a.txt"), Place::Storage("d/a.txt".into()));
        assert_eq!(Place::parse("~"), Place::Storage(String::new()));
        assert_eq!(Place::parse("./a:/b"), Place::Local("./a:/b".into()));
        assert_eq!(
            Place::parse("C:relative"),
            Place::Local("C:relative".into())
        );
        assert_eq!(split_remote("/tmp/", "a.txt"), ("/tmp", "a.txt"));
        assert_eq!(split_remote("/tmp/b.txt", "a.txt"), ("/tmp", "b.txt"));
        assert_eq!(split_remote("", "a.txt"), ("", "a.txt"));
        assert_eq!(split_remote("d/b", "a.txt"), ("d", "b"));
    }
}
