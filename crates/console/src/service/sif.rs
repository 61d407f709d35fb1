//! Images for Singularity/Apptainer: `docker save` archives, and SIF files written here
//! (by `wm-sif`) without root and without Apptainer.
//!
//! A SIF is cached by image id in `<data_dir>/sif-cache`, under a size cap, evicted
//! oldest-first. Concurrent requests for one image convert it once: the second waits for
//! the first and is served from the cache. A conversion writes `<id>.<random>.partial` and
//! renames it when complete; a failed one removes it, and leftovers of a crash are removed
//! at start, so the cache never serves a partial file.

use super::accounts::Caller;
use super::images::{Image, Images, Lines};
use super::Error;
use crate::hosts::Hosts;
use crate::metrics::{Metrics, OutcomeLabels};
use crate::util::new_id;
use futures::StreamExt;
use serde_json::json;
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use tokio::sync::{Mutex, Semaphore};
use wm_backend::ByteStream;

/// At most this many conversions run at once; more wait their turn.
const PARALLEL_CONVERSIONS: usize = 2;

pub(crate) struct SifCache {
    dir: PathBuf,
    hosts: Arc<Hosts>,
    images: Arc<Images>,
    metrics: Arc<Metrics>,
    max_bytes: u64,
    in_flight: std::sync::Mutex<HashMap<String, Arc<Mutex<()>>>>,
    slots: Semaphore,
}

impl SifCache {
    /// Opens the cache directory, removing what an interrupted conversion left.
    pub(crate) fn open(
        dir: PathBuf,
        max_bytes: u64,
        hosts: Arc<Hosts>,
        images: Arc<Images>,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Self> {
        crate::permissions::private_dir(&dir)?;
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".sif") {
                crate::permissions::tighten(&entry.path(), 0o600)?;
            }
            if name.ends_with(".partial") || name.starts_with(".tmp") {
                let path = entry.path();
                let _ = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
            }
        }
        Ok(Self {
            dir,
            hosts,
            images,
            metrics,
            max_bytes,
            in_flight: Default::default(),
            slots: Semaphore::new(PARALLEL_CONVERSIONS),
        })
    }

    fn path_of(&self, id: &str) -> PathBuf {
        self.dir
            .join(format!("{}.sif", id.trim_start_matches("sha256:")))
    }

    /// The SIF of `image`, converting it unless cached. `progress` sees the conversion's
    /// stages; it is not called for a cache hit.
    async fn get(
        &self,
        image: &Image,
        progress: impl FnMut(wm_sif::Progress) + Send + 'static,
    ) -> Result<PathBuf, Error> {
        let lock = self
            .in_flight
            .lock()
            .expect("not poisoned")
            .entry(image.id.clone())
            .or_default()
            .clone();
        let one_at_a_time = lock.lock().await;
        let found = self.get_one_at_a_time(image, progress).await;
        drop(one_at_a_time);
        // The map holds only images someone is converting or waiting for: the entry goes
        // with its last holder (the map's own and ours are the two left then).
        let mut in_flight = self.in_flight.lock().expect("not poisoned");
        if in_flight
            .get(&image.id)
            .is_some_and(|l| Arc::ptr_eq(l, &lock) && Arc::strong_count(l) <= 2)
        {
            in_flight.remove(&image.id);
        }
        found
    }

    async fn get_one_at_a_time(
        &self,
        image: &Image,
        mut progress: impl FnMut(wm_sif::Progress) + Send + 'static,
    ) -> Result<PathBuf, Error> {
        let path = self.path_of(&image.id);
        let cached = path.clone();
        let hit = tokio::task::spawn_blocking(move || {
            // Used now: the eviction is oldest-first by last use.
            std::fs::File::options()
                .append(true)
                .open(&cached)
                .and_then(|f| f.set_modified(std::time::SystemTime::now()))
                .is_ok()
        })
        .await
        .map_err(|e| Error::Unexpected(e.into()))?;
        if hit {
            return Ok(path);
        }
        let _slot = self.slots.acquire().await.expect("never closed");
        let archive = self.source(image)?.save_image(&image.id).await?;
        let partial = self.dir.join(format!(
            "{}.{}.partial",
            image.id.trim_start_matches("sha256:"),
            new_id()
        ));
        let workdir = self.dir.clone();
        let out_path = partial.clone();
        let converted = tokio::task::spawn_blocking(move || {
            let reader =
                tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(archive));
            let file =
                crate::permissions::create_private_file(&out_path).map_err(|e| e.to_string())?;
            let mut out = std::io::BufWriter::new(file);
            let summary = wm_sif::docker_archive_to_sif(reader, &workdir, &mut out, &mut |p| {
                progress(p);
                ControlFlow::Continue(())
            })
            .map_err(|e| e.to_string())?;
            use std::io::Write;
            out.flush().map_err(|e| e.to_string())?;
            Ok::<_, String>(summary)
        })
        .await
        .map_err(|e| Error::Unexpected(e.into()))?;
        let outcome = if converted.is_ok() { "ok" } else { "error" };
        self.metrics
            .sif_conversions
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
        match converted {
            Ok(summary) => {
                tokio::fs::rename(&partial, &path)
                    .await
                    .map_err(|e| Error::Unexpected(e.into()))?;
                tracing::info!(image = %image.reference, bytes = summary.sif_bytes, "converted to SIF");
                let (dir, max, keep) = (self.dir.clone(), self.max_bytes, path.clone());
                tokio::task::spawn_blocking(move || evict(&dir, max, &keep))
                    .await
                    .map_err(|e| Error::Unexpected(e.into()))?;
                Ok(path)
            }
            Err(why) => {
                let _ = tokio::fs::remove_file(&partial).await;
                tracing::error!(image = %image.reference, %why, "SIF conversion failed");
                Err(Error::Engine(format!(
                    "converting {} to SIF: {why}",
                    image.reference
                )))
            }
        }
    }
}

/// One file of the SIF cache.
#[derive(Debug, Clone)]
pub(crate) struct SifEntry {
    pub(crate) path: PathBuf,
    /// The image id it was made from (`sha256:...`).
    pub(crate) image_id: String,
    pub(crate) size: u64,
    /// Unix seconds of its last use (a conversion or a download).
    pub(crate) last_used: i64,
}

impl SifCache {
    /// The cache's size cap, in bytes.
    pub(crate) fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Every complete file of the cache, least recently used first.
    pub(crate) async fn entries(&self) -> Vec<SifEntry> {
        let dir = self.dir.clone();
        let listed = tokio::task::spawn_blocking(move || {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                return Vec::new();
            };
            let mut out: Vec<SifEntry> = entries
                .flatten()
                .filter_map(|e| {
                    let path = e.path();
                    let stem = path
                        .file_name()?
                        .to_str()?
                        .strip_suffix(".sif")?
                        .to_string();
                    let m = e.metadata().ok()?;
                    let last_used = m
                        .modified()
                        .ok()?
                        .duration_since(std::time::UNIX_EPOCH)
                        .ok()?
                        .as_secs() as i64;
                    Some(SifEntry {
                        path,
                        image_id: format!("sha256:{stem}"),
                        size: m.len(),
                        last_used,
                    })
                })
                .collect();
            out.sort_by(|a, b| (a.last_used, &a.path).cmp(&(b.last_used, &b.path)));
            out
        })
        .await;
        listed.unwrap_or_default()
    }
}

impl SifCache {
    /// A host that has the image and answers now.
    fn source(&self, image: &Image) -> Result<Arc<dyn wm_backend::ContainerBackend>, Error> {
        let mut last = None;
        for host in &image.hosts {
            match self.hosts.reach(host).map_err(Error::from) {
                Ok(b) => return Ok(b),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            Error::unavailable(
                "no_host_has",
                [("image", image.reference.to_string())],
                format!("no host has {} now", image.reference),
            )
        }))
    }

    /// The one image a path's `{ref}` names, under the same rules as starting a container
    /// (its scan included).
    async fn one_image(&self, caller: &Caller, raw: &str) -> Result<Image, Error> {
        caller.require_full_scope()?;
        let image = self
            .images
            .resolve(caller, raw)
            .await?
            .into_iter()
            .next()
            .expect("resolve finds at least one");
        // A quarantined image leaves the installation no more than it starts.
        self.images.check_scan(&image.id, raw).await?;
        Ok(image)
    }

    /// The image as a `docker save` archive, streamed from a host that has it.
    pub(crate) async fn docker_archive(
        &self,
        caller: &Caller,
        raw: &str,
    ) -> Result<(Image, ByteStream), Error> {
        let image = self.one_image(caller, raw).await?;
        let archive = self.source(&image)?.save_image(&image.reference).await?;
        Ok((image, archive))
    }

    /// The image's SIF file, converted now unless cached.
    pub(crate) async fn sif_file(
        &self,
        caller: &Caller,
        raw: &str,
    ) -> Result<(Image, PathBuf), Error> {
        let image = self.one_image(caller, raw).await?;
        let path = self.get(&image, |_| {}).await?;
        Ok((image, path))
    }

    /// Converts the image to SIF with live progress; the last line names where to
    /// download it.
    /// Convert an image to SIF with live progress; then download it from `download`.
    pub(crate) async fn convert(
        self: &Arc<Self>,
        caller: &Caller,
        raw: &str,
    ) -> Result<Lines, Error> {
        let image = self.one_image(caller, raw).await?;
        let this = self.clone();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
        let progress_tx = tx.clone();
        tokio::spawn(async move {
            let report = move |p: wm_sif::Progress| {
                let line = match p {
                    wm_sif::Progress::Spooling { bytes } => {
                        json!({"status": "converting", "stage": "reading", "bytes": bytes})
                    }
                    wm_sif::Progress::Scanning { layer, layers } => {
                        json!({"status": "converting", "stage": "scanning", "layer": layer, "layers": layers})
                    }
                    wm_sif::Progress::Squashing {
                        layer,
                        layers,
                        bytes,
                    } => {
                        json!({"status": "converting", "stage": "squashing", "layer": layer, "layers": layers, "bytes": bytes})
                    }
                    wm_sif::Progress::Writing { bytes, total } => {
                        json!({"status": "converting", "stage": "writing", "current": bytes, "total": total})
                    }
                    _ => return,
                };
                let _ = progress_tx.send(line);
            };
            let last = match this.get(&image, report).await {
                Ok(path) => json!({
                    "size": tokio::fs::metadata(&path).await.map(|m| m.len()).unwrap_or(0),
                    "status": "done",
                    "download": format!(
                        "/api/v1/images/{}/export?format=sif",
                        image.reference.replace('/', "%2F").replace(':', "%3A")
                    ),
                }),
                Err(e) => {
                    json!({"status": "error", "error": {"code": e.code(), "message": e.to_string()}})
                }
            };
            let _ = tx.send(last);
        });
        Ok(
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) })
                .boxed(),
        )
    }
}

/// Removes the least recently used files of the cache in `dir` until it fits `max_bytes`;
/// `keep` (the file just made) stays even if it alone is over the cap.
fn evict(dir: &FsPath, max_bytes: u64, keep: &FsPath) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "sif"))
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            Some((m.modified().ok()?, m.len(), e.path()))
        })
        .collect();
    files.sort();
    let mut total: u64 = files.iter().map(|(_, len, _)| len).sum();
    for (_, len, path) in files {
        if total <= max_bytes {
            break;
        }
        if path != keep && std::fs::remove_file(&path).is_ok() {
            tracing::info!(file = %path.display(), "evicted from the SIF cache");
            total -= len;
        }
    }
}
