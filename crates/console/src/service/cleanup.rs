//! The clean-up of what fills the hosts' and the console's disks: users' images that no
//! container uses, older than `WM_IMAGE_MAX_AGE`, and SIF files of the cache unused for
//! `WM_SIF_CACHE_MAX_AGE` or beyond its size cap.
//!
//! # Guarantees
//! An image is never removed while a container of any status (its record, or a container
//! on its host) names it by a tag or by id; public images (no owner) and images shared by
//! their owner are never removed; nothing is forced, so the engine refuses an image in use
//! that we did not know of. The dry run ([`Cleanup::report`]) lists exactly what a run
//! would remove at that moment, and why.

use super::accounts::Admin;
use super::audit::Audit;
use super::sif::SifCache;
use super::{human_bytes, Error};
use crate::config::ReclaimSettings;
use crate::hosts::Hosts;
use crate::metrics::{CleanupLabels, Metrics};
use crate::util::{now, rfc3339};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Arc;
use utoipa::ToSchema;
use wm_domain::ImageRef;
use wm_store::Store;

/// What a clean-up removes (dry run) or removed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct CleanupReport {
    /// `true` for the dry run: nothing was removed.
    pub(crate) dry_run: bool,
    /// `WM_IMAGE_MAX_AGE` in seconds; `null`: images are not cleaned up.
    pub(crate) image_max_age_secs: Option<i64>,
    /// `WM_SIF_CACHE_MAX_AGE` in seconds; `null`: SIF files go only beyond the cap.
    pub(crate) sif_max_age_secs: Option<i64>,
    pub(crate) images: Vec<ImageRemoval>,
    pub(crate) sif: Vec<SifRemoval>,
    /// Bytes freed (or that would be), images and SIF files together.
    pub(crate) bytes: i64,
    /// Removals that failed (a run only).
    pub(crate) errors: Vec<String>,
}

/// One image of one host.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct ImageRemoval {
    pub(crate) host: String,
    pub(crate) id: String,
    /// Its tags: each is removed, and the image goes with its last one.
    pub(crate) references: Vec<String>,
    pub(crate) owner: String,
    pub(crate) size: i64,
    /// RFC 3339.
    pub(crate) created_at: String,
    pub(crate) reason: String,
    /// A run removed it.
    pub(crate) removed: bool,
}

/// One file of the SIF cache.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct SifRemoval {
    /// The image it was made from.
    pub(crate) image_id: String,
    pub(crate) size: i64,
    /// RFC 3339.
    pub(crate) last_used: String,
    pub(crate) reason: String,
    pub(crate) removed: bool,
}

/// The clean-up of images and SIF files.
pub(crate) struct Cleanup {
    store: Store,
    hosts: Arc<Hosts>,
    sif: Arc<SifCache>,
    audit: Audit,
    metrics: Arc<Metrics>,
    settings: ReclaimSettings,
}

impl Cleanup {
    pub(crate) fn new(
        store: Store,
        hosts: Arc<Hosts>,
        sif: Arc<SifCache>,
        audit: Audit,
        metrics: Arc<Metrics>,
        settings: ReclaimSettings,
    ) -> Self {
        Self {
            store,
            hosts,
            sif,
            audit,
            metrics,
            settings,
        }
    }

    /// What a clean-up would remove now, and why (administrators; audited).
    pub(crate) async fn report(&self, admin: &Admin) -> Result<CleanupReport, Error> {
        let _ = admin;
        let report = self.plan(now()).await?;
        self.audit
            .record(
                None,
                "cleanup.report".into(),
                None,
                200,
                Some(summary(&report)),
            )
            .await;
        Ok(report)
    }

    /// Runs the clean-up now (administrators); what the worker runs periodically.
    pub(crate) async fn run_now(&self, admin: &Admin) -> Result<CleanupReport, Error> {
        let _ = admin;
        self.run().await
    }

    /// Removes what [`Cleanup::report`] lists; each removal is audited.
    pub(crate) async fn run(&self) -> Result<CleanupReport, Error> {
        let mut report = self.plan(now()).await?;
        report.dry_run = false;
        let mut freed = 0i64;
        for img in &mut report.images {
            let Ok(backend) = self.hosts.reach(&img.host) else {
                report.errors.push(format!(
                    "{} on {}: the host does not answer",
                    img.id, img.host
                ));
                continue;
            };
            let mut ok = true;
            for tag in &img.references {
                let removed = match ImageRef::parse(tag) {
                    Ok(r) => backend.remove_image(&r).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                match removed {
                    Ok(()) => {
                        if let Err(e) = self.store.delete_image_meta(tag).await {
                            tracing::warn!(image = %tag, error = %e, "could not remove the image's metadata");
                        }
                    }
                    Err(e) => {
                        ok = false;
                        report.errors.push(format!("{tag} on {}: {e}", img.host));
                    }
                }
            }
            img.removed = ok;
            if ok {
                freed += img.size;
                self.count("image", img.size);
                self.audit
                    .record(
                        None,
                        "image.cleanup".into(),
                        Some(img.references.join(" ")),
                        200,
                        Some(format!(
                            "{} of {} on {}, {}: {}",
                            img.id,
                            img.owner,
                            img.host,
                            human_bytes(img.size),
                            img.reason
                        )),
                    )
                    .await;
            }
        }
        let entries = self.sif.entries().await;
        for s in &mut report.sif {
            let Some(entry) = entries.iter().find(|e| e.image_id == s.image_id) else {
                continue;
            };
            match tokio::fs::remove_file(&entry.path).await {
                Ok(()) => {
                    s.removed = true;
                    freed += s.size;
                    self.count("sif", s.size);
                    self.audit
                        .record(
                            None,
                            "sif.cleanup".into(),
                            Some(s.image_id.clone()),
                            200,
                            Some(format!("{}: {}", human_bytes(s.size), s.reason)),
                        )
                        .await;
                }
                Err(e) => report.errors.push(format!("SIF of {}: {e}", s.image_id)),
            }
        }
        report.bytes = freed;
        if !report.images.is_empty() || !report.sif.is_empty() {
            tracing::info!(summary = %summary(&report), "cleaned up");
        }
        Ok(report)
    }

    fn count(&self, kind: &'static str, bytes: i64) {
        let l = CleanupLabels { kind };
        self.metrics.cleanup_removed.get_or_create(&l).inc();
        self.metrics
            .cleanup_freed_bytes
            .get_or_create(&l)
            .inc_by(bytes.max(0) as u64);
    }

    /// What is due for removal at `now`.
    async fn plan(&self, now: i64) -> Result<CleanupReport, Error> {
        let mut report = CleanupReport {
            dry_run: true,
            image_max_age_secs: self.settings.image_max_age.map(|a| a.as_secs()),
            sif_max_age_secs: self.settings.sif_max_age.map(|a| a.as_secs()),
            images: Vec::new(),
            sif: Vec::new(),
            bytes: 0,
            errors: Vec::new(),
        };
        if let Some(max_age) = self.settings.image_max_age {
            report.images = self.plan_images(now, max_age.as_secs()).await?;
        }
        report.sif = self.plan_sif(now).await;
        report.bytes = report.images.iter().map(|i| i.size).sum::<i64>()
            + report.sif.iter().map(|s| s.size).sum::<i64>();
        Ok(report)
    }

    async fn plan_images(&self, now: i64, max_age: i64) -> Result<Vec<ImageRemoval>, Error> {
        // Every reference a container names, from the records (any status) and from the
        // hosts themselves: an image is in use under its tag or its id.
        let mut used: HashSet<String> = HashSet::new();
        let note = |used: &mut HashSet<String>, reference: String| {
            if let Ok(r) = ImageRef::parse(&reference) {
                used.insert(r.as_str().to_string());
            }
            used.insert(reference);
        };
        for reference in self.store.images_in_use().await? {
            note(&mut used, reference);
        }
        let shared: HashSet<String> = self
            .store
            .all_image_meta()
            .await?
            .into_iter()
            .filter(|m| m.shared)
            .map(|m| m.reference)
            .collect();
        let mut out = Vec::new();
        for host in self.hosts.all() {
            let Ok(backend) = self.hosts.reach(&host.id) else {
                continue;
            };
            // A host whose containers cannot be listed is not cleaned up: we could not
            // tell which images they use.
            let (Ok(images), Ok(containers)) = (backend.images().await, backend.list().await)
            else {
                continue;
            };
            for c in containers {
                note(&mut used, c.image);
            }
            let is_used = |reference: &str| {
                used.contains(reference)
                    || ImageRef::parse(reference).is_ok_and(|r| used.contains(r.as_str()))
            };
            for img in images {
                let Some(owner) = img.owner.clone() else {
                    continue;
                };
                if img.foreign || img.tags.is_empty() || now - img.created_at < max_age {
                    continue;
                }
                if is_used(&img.id) || img.tags.iter().any(|t| is_used(t) || shared.contains(t)) {
                    continue;
                }
                out.push(ImageRemoval {
                    host: host.id.clone(),
                    id: img.id.clone(),
                    references: img.tags.clone(),
                    owner,
                    size: img.size,
                    created_at: rfc3339(img.created_at),
                    reason: format!(
                        "made {} days ago, no container uses it, not shared",
                        (now - img.created_at) / 86400
                    ),
                    removed: false,
                });
            }
        }
        Ok(out)
    }

    async fn plan_sif(&self, now: i64) -> Vec<SifRemoval> {
        let entries = self.sif.entries().await;
        let mut total: u64 = entries.iter().map(|e| e.size).sum();
        let cap = self.sif.max_bytes();
        let mut out = Vec::new();
        // Least recently used first: the old ones, then the oldest of the rest while the
        // cache is over its cap.
        for e in entries {
            let idle = now - e.last_used;
            let reason = match self.settings.sif_max_age {
                Some(age) if idle >= age.as_secs() => {
                    format!("not used for {} days", idle / 86400)
                }
                _ if total > cap => {
                    format!("the cache is over its cap of {}", human_bytes(cap as i64))
                }
                _ => continue,
            };
            total = total.saturating_sub(e.size);
            out.push(SifRemoval {
                image_id: e.image_id,
                size: e.size as i64,
                last_used: rfc3339(e.last_used),
                reason,
                removed: false,
            });
        }
        out
    }
}

fn summary(r: &CleanupReport) -> String {
    format!(
        "{} images, {} SIF files, {}",
        r.images.len(),
        r.sif.len(),
        human_bytes(r.bytes)
    )
}
