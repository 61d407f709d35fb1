//! Builds confined like containers.
//!
//! The engine's classic `/build` runs each `RUN` step in a container of its own, with the
//! memory, swap and CPU limits, network and cgroup parent the request names, but it has
//! no process limit. A process limit is set on a cgroup made for each build
//! ([`BuildCgroup`]) that the build's `cgroupparent` points at: every `RUN` container is
//! created under it, so the limit counts all of their processes. bollard's build options
//! have no `cgroupparent`, so the request is sent here ([`post_build`]) over the engine's
//! socket.

use bollard::models::BuildInfo;
use bytes::{Buf, Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use std::path::{Path, PathBuf};
use std::time::Duration;
use wm_backend::BackendError;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// One build's cgroup with `pids.max` set; [`BuildCgroup::remove`] takes it away.
#[derive(Debug)]
pub(crate) struct BuildCgroup {
    /// The build's `cgroupparent`: `/<parent>/<id>`.
    path: String,
    version: u8,
}

impl BuildCgroup {
    /// Makes `<parent>/<id>` with `pids.max = pids` for an engine on this machine whose
    /// cgroup driver is `driver` and cgroup version `version` (as `docker info` says).
    ///
    /// # Errors
    /// A sentence for the user naming what is wrong; the build must not run then.
    pub(crate) fn create(
        parent: &str,
        driver: &str,
        version: &str,
        pids: i64,
    ) -> Result<BuildCgroup, String> {
        if driver != "cgroupfs" {
            return Err(format!(
                "the Docker engine uses the {driver} cgroup driver, and builds are limited through cgroupfs cgroups"
            ));
        }
        sweep(parent, version);
        let id = format!("build-{}", uuid::Uuid::new_v4().simple());
        let path = format!("/{parent}/{id}");
        let io = |what: &Path, e: std::io::Error| format!("{}: {e}", what.display());
        match version {
            "2" => {
                let root = Path::new(CGROUP_ROOT);
                let parent_dir = root.join(parent);
                std::fs::create_dir_all(&parent_dir).map_err(|e| io(&parent_dir, e))?;
                for dir in [root, parent_dir.as_path()] {
                    let control = dir.join("cgroup.subtree_control");
                    let enabled = std::fs::read_to_string(&control).unwrap_or_default();
                    if !enabled.split_whitespace().any(|c| c == "pids") {
                        std::fs::write(&control, "+pids").map_err(|e| io(&control, e))?;
                    }
                }
                let dir = parent_dir.join(&id);
                std::fs::create_dir(&dir).map_err(|e| io(&dir, e))?;
                let max = dir.join("pids.max");
                if let Err(e) = std::fs::write(&max, pids.to_string()) {
                    let _ = std::fs::remove_dir(&dir);
                    return Err(io(&max, e));
                }
                Ok(BuildCgroup { path, version: 2 })
            }
            _ => {
                let dir = Path::new(CGROUP_ROOT).join("pids").join(parent).join(&id);
                std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
                let max = dir.join("pids.max");
                if let Err(e) = std::fs::write(&max, pids.to_string()) {
                    let _ = std::fs::remove_dir(&dir);
                    return Err(io(&max, e));
                }
                Ok(BuildCgroup { path, version: 1 })
            }
        }
    }

    /// The value of the build's `cgroupparent`.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// The directories of this cgroup: one per hierarchy on v1 (the runtime makes it in
    /// every controller's), one on v2.
    fn dirs(&self) -> Vec<PathBuf> {
        let rel = self.path.trim_start_matches('/');
        if self.version == 2 {
            return vec![Path::new(CGROUP_ROOT).join(rel)];
        }
        std::fs::read_dir(CGROUP_ROOT)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path().join(rel))
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Removes the cgroup once the build's last container is gone (a cancelled build's
    /// container goes a moment after the build's connection); gives up after a minute
    /// and logs it.
    pub(crate) async fn remove(self) {
        for _ in 0..120 {
            let left: Vec<PathBuf> = self
                .dirs()
                .into_iter()
                .filter(|d| remove_tree(d).is_err())
                .collect();
            if left.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        tracing::warn!(cgroup = %self.path, "a build's cgroup could not be removed");
    }
}

/// Removes the cgroups of builds whose process ended before it could remove them: only
/// those untouched for a day, so a running build's cgroup (empty between two steps, and
/// re-made without `pids.max` by the runtime if removed) is never taken.
fn sweep(parent: &str, version: &str) {
    const STALE: Duration = Duration::from_secs(24 * 3600);
    let root = Path::new(CGROUP_ROOT);
    let base = if version == "2" {
        root.join(parent)
    } else {
        root.join("pids").join(parent)
    };
    let Ok(entries) = std::fs::read_dir(&base) else {
        return;
    };
    for e in entries.filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        let stale = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE);
        if !name.starts_with("build-") || !stale {
            continue;
        }
        let cgroup = BuildCgroup {
            path: format!("/{parent}/{name}"),
            version: if version == "2" { 2 } else { 1 },
        };
        for dir in cgroup.dirs() {
            let _ = remove_tree(&dir);
        }
    }
}

/// Removes a cgroup directory and the (empty) cgroups under it, deepest first.
fn remove_tree(dir: &Path) -> std::io::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let p = entry?.path();
        if p.is_dir() {
            remove_tree(&p)?;
        }
    }
    std::fs::remove_dir(dir)
}

/// `POST /build` on the engine at the unix socket `socket`, API version `version`
/// (`1.41`), with `query` (values already JSON where the API wants JSON) and a plain or
/// gzipped tar `context`: the engine's build messages, one per item.
pub(crate) async fn post_build(
    socket: &str,
    version: &str,
    query: &[(&str, String)],
    context: Bytes,
) -> Result<BoxStream<'static, Result<BuildInfo, BackendError>>, BackendError> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|e| BackendError::Unavailable(format!("{socket}: {e}").into()))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| BackendError::Unavailable(e.to_string().into()))?;
    tokio::spawn(async move {
        // Ends when the response is read or dropped (which cancels the build).
        let _ = conn.await;
    });
    let q: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    let req = http::Request::post(format!("/v{version}/build?{}", q.join("&")))
        .header(http::header::HOST, "docker")
        .header(http::header::CONTENT_TYPE, "application/x-tar")
        .body(Full::new(context))
        .map_err(|e| BackendError::Engine(e.to_string()))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| BackendError::Unavailable(e.to_string().into()))?;
    let status = resp.status();
    let body = resp.into_body();
    if !status.is_success() {
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["message"].as_str().map(String::from))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        return Err(if status.is_client_error() {
            BackendError::Refused(message.into())
        } else {
            BackendError::Engine(message)
        });
    }
    let lines = futures::stream::unfold(
        (body, BytesMut::new(), false),
        |(mut body, mut buf, mut done)| async move {
            loop {
                if let Some(i) = buf.iter().position(|&b| b == b'\n') {
                    let line = buf.split_to(i + 1);
                    let line = &line[..line.len() - 1];
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    let item = serde_json::from_slice::<BuildInfo>(line).map_err(|e| {
                        BackendError::Engine(format!("an unreadable build message: {e}"))
                    });
                    return Some((item, (body, buf, done)));
                }
                if done {
                    if buf.iter().all(u8::is_ascii_whitespace) {
                        return None;
                    }
                    let rest = buf.split().freeze();
                    let item = serde_json::from_slice::<BuildInfo>(&rest).map_err(|e| {
                        BackendError::Engine(format!("an unreadable build message: {e}"))
                    });
                    return Some((item, (body, buf, true)));
                }
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Ok(mut data) = frame.into_data() {
                            while data.has_remaining() {
                                let chunk = data.chunk();
                                buf.extend_from_slice(chunk);
                                let n = chunk.len();
                                data.advance(n);
                            }
                        }
                    }
                    Some(Err(e)) => {
                        return Some((
                            Err(BackendError::Unavailable(wm_backend::Why::new(
                                "build_broke",
                                [],
                                format!("the build's connection broke: {e}"),
                            ))),
                            (body, BytesMut::new(), true),
                        ))
                    }
                    None => done = true,
                }
            }
        },
    );
    Ok(lines.boxed())
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_query_values() {
        assert_eq!(super::encode("a b/{\"x\":1}"), "a%20b%2F%7B%22x%22%3A1%7D");
    }
}
