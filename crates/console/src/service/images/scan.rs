//! Scanning images before anyone may start them.
//!
//! After a pull or a build succeeds, the image's flattened file system (exported from a
//! never-started container on the host, see `ContainerBackend::image_filesystem`) is given
//! to the configured scanner: ClamAV's `clamscan` by default, or a site's command (Trivy,
//! Grype, ...) that takes a directory (`{dir}`) or a tar file (`{tar}`). Scans are kept per
//! image id, so every reference of one content shares one scan.
//!
//! Who may start what ([`hold`]): an image with no scan record (it never came through a pull
//! or build here: an administrator loaded it, or scanning was off) is usable; `clean` is
//! usable; `flagged` and `error` are quarantined until an administrator releases them (or,
//! for `error`, a new pull or build scans it clean); `pending` is refused until its scan
//! ends. A console stopped mid-scan leaves `pending`: at start-up those become `error`
//! ("the scan was interrupted"), so nothing unscanned slips through and nothing waits for
//! ever.
//!
//! The tar is unpacked into a private temporary directory under `<data_dir>/scans`: only
//! directories and regular files, never outside it (no `..`, no links followed or made, no
//! device nodes), within `scan.max_bytes`, and removed afterwards whatever happens. The
//! whole scan, export included, has `scan.timeout_secs`; at most `scan.concurrency` run at
//! once (each ClamAV run holds its signatures in memory).

use super::{Error, Host};
use crate::config::{ScanSettings, Scanner};
use crate::metrics::{Metrics, ScanLabels};
use crate::util::{now, rfc3339};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use utoipa::ToSchema;
use wm_backend::ByteStream;
use wm_domain::ImageRef;
use wm_store::{ImageScan, ScanStatus};

/// Most findings kept of one scan, and most characters of each.
const MAX_FINDINGS: usize = 100;
const MAX_FINDING_CHARS: usize = 500;

/// An image's scan as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct Scan {
    /// `pending`, `clean`, `flagged` or `error`.
    pub(crate) status: String,
    /// What the scanner found (`/eicar.txt: Eicar-Test-Signature`), or why it could not
    /// scan.
    pub(crate) findings: Vec<String>,
    /// `clamav`, or the configured command's program.
    pub(crate) scanner: String,
    /// How long the scan took.
    pub(crate) seconds: f64,
    /// RFC 3339.
    pub(crate) scanned_at: String,
    /// The administrator who released the image from quarantine.
    pub(crate) released_by: Option<String>,
    /// RFC 3339.
    pub(crate) released_at: Option<String>,
}

impl From<&ImageScan> for Scan {
    fn from(s: &ImageScan) -> Self {
        Scan {
            status: s.status.as_str().into(),
            findings: s.findings.clone(),
            scanner: s.scanner.clone(),
            seconds: s.duration_ms as f64 / 1000.0,
            scanned_at: rfc3339(s.scanned_at),
            released_by: s.released_by.clone(),
            released_at: s.released_at.map(rfc3339),
        }
    }
}

/// Why an image may not be used now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Hold {
    /// The scanner found something: the findings.
    Flagged(Vec<String>),
    /// The scan could not run: why.
    Failed(Vec<String>),
    Pending,
}

/// Whether an image with this scan record may be used; see the module's comment.
pub(crate) fn hold(scan: Option<&ImageScan>) -> Option<Hold> {
    let scan = scan?;
    if scan.released_at.is_some() {
        return None;
    }
    match scan.status {
        ScanStatus::Clean => None,
        ScanStatus::Pending => Some(Hold::Pending),
        ScanStatus::Flagged => Some(Hold::Flagged(scan.findings.clone())),
        ScanStatus::Error => Some(Hold::Failed(scan.findings.clone())),
    }
}

/// The outcome of running the scanner once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub(crate) status: ScanStatus,
    pub(crate) findings: Vec<String>,
}

impl Verdict {
    fn error(why: impl Into<String>) -> Self {
        Verdict {
            status: ScanStatus::Error,
            findings: vec![why.into()],
        }
    }
}

/// The configured scanner, and where it unpacks images.
pub(crate) struct Scans {
    settings: ScanSettings,
    work: PathBuf,
    metrics: Arc<Metrics>,
    /// One permit per scan that may run at once (`scan.concurrency`).
    turns: tokio::sync::Semaphore,
}

impl Scans {
    /// `work` is emptied: what is there is left from scans a stopped console never
    /// finished.
    pub(crate) fn new(settings: ScanSettings, work: PathBuf, metrics: Arc<Metrics>) -> Self {
        if work.exists() {
            if let Err(e) = std::fs::remove_dir_all(&work) {
                tracing::warn!(dir = %work.display(), error = %e, "could not empty the scans' directory");
            }
        }
        Self {
            turns: tokio::sync::Semaphore::new(settings.concurrency),
            settings,
            work,
            metrics,
        }
    }

    /// Whether images are scanned at all.
    pub(crate) fn enabled(&self) -> bool {
        self.settings.command != Scanner::Off
    }

    /// The scanner's name as records and progress lines show it.
    pub(crate) fn name(&self) -> String {
        match &self.settings.command {
            Scanner::Off => "off".into(),
            Scanner::ClamAv => "clamav".into(),
            Scanner::Command(words) => Path::new(&words[0])
                .file_name()
                .map_or_else(|| words[0].clone(), |n| n.to_string_lossy().into_owned()),
        }
    }

    /// Waits until one more scan may run; it may while the answer is held.
    pub(crate) async fn turn(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.turns
            .acquire()
            .await
            .expect("the semaphore is never closed")
    }

    /// Scans an image's file system (a tar stream) and counts the outcome. Never fails:
    /// whatever goes wrong is a verdict of `error`.
    pub(crate) async fn scan(&self, filesystem: ByteStream) -> (Verdict, Duration) {
        let started = Instant::now();
        let timeout = Duration::from_secs(self.settings.timeout_secs);
        let cancel = Arc::new(AtomicBool::new(false));
        let verdict =
            match tokio::time::timeout(timeout, self.run(filesystem, cancel.clone())).await {
                Ok(v) => v,
                Err(_) => {
                    cancel.store(true, Ordering::Relaxed);
                    Verdict::error(format!(
                        "the scan did not finish within {} seconds",
                        timeout.as_secs()
                    ))
                }
            };
        let took = started.elapsed();
        self.metrics
            .image_scans
            .get_or_create(&ScanLabels {
                result: verdict.status.as_str(),
            })
            .inc();
        self.metrics.image_scan_seconds.observe(took.as_secs_f64());
        (verdict, took)
    }

    async fn run(&self, filesystem: ByteStream, cancel: Arc<AtomicBool>) -> Verdict {
        if let Scanner::ClamAv = self.settings.command {
            if let Err(why) = check_clamav_database(&self.settings.clamav_database) {
                drop(filesystem);
                return Verdict::error(why);
            }
        }
        let words = match &self.settings.command {
            Scanner::Off => return Verdict::error("scanning is off"),
            Scanner::ClamAv => vec![
                "clamscan".to_string(),
                "--recursive".into(),
                "--infected".into(),
                "--no-summary".into(),
                "--stdout".into(),
                "--follow-dir-symlinks=0".into(),
                "--follow-file-symlinks=0".into(),
                format!("--database={}", self.settings.clamav_database.display()),
                "{dir}".into(),
            ],
            Scanner::Command(words) => words.clone(),
        };
        let wants_tar = words.iter().any(|w| w.contains("{tar}"));
        let wants_dir = words.iter().any(|w| w.contains("{dir}"));
        if let Err(e) = std::fs::create_dir_all(&self.work) {
            return Verdict::error(format!("cannot make the scans' directory: {e}"));
        }
        let temp = match tempfile::Builder::new()
            .prefix("scan-")
            .tempdir_in(&self.work)
        {
            Ok(t) => Arc::new(t),
            Err(e) => return Verdict::error(format!("cannot make a directory to scan in: {e}")),
        };
        let root = temp.path().join("rootfs");
        let tar_file = temp.path().join("image.tar");
        // Unpacking (and writing the tar) is blocking work; the directory lives as long as
        // the last of this task and the blocking one.
        let unpacking = {
            let temp = temp.clone();
            let root = root.clone();
            let tar_file = tar_file.clone();
            let max = self.settings.max_bytes;
            let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(
                filesystem.map_err(std::io::Error::other),
            ));
            let cancel = cancel.clone();
            tokio::task::spawn_blocking(move || {
                let reader = Cancellable {
                    inner: reader,
                    cancel,
                };
                let r = unpack(reader, &root, &tar_file, wants_dir, wants_tar, max);
                drop(temp);
                r
            })
        };
        match unpacking.await {
            Ok(Ok(())) => {}
            Ok(Err(why)) => return Verdict::error(why),
            Err(e) => return Verdict::error(format!("unpacking the image failed: {e}")),
        }
        let dir_text = root.display().to_string();
        let tar_text = tar_file.display().to_string();
        let args: Vec<String> = words
            .iter()
            .map(|w| w.replace("{dir}", &dir_text).replace("{tar}", &tar_text))
            .collect();
        let output = tokio::process::Command::new(&args[0])
            .args(&args[1..])
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
            .await;
        let tidy = |text: &[u8]| -> Vec<String> {
            String::from_utf8_lossy(text)
                .lines()
                .map(|l| {
                    l.replace(&dir_text, "")
                        .replace(&tar_text, "image.tar")
                        .trim()
                        .to_string()
                })
                .filter(|l| !l.is_empty())
                .collect()
        };
        let output = match output {
            Ok(o) => o,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Verdict::error(format!(
                    "the scanner {} is not installed on the console's machine",
                    args[0]
                ))
            }
            Err(e) => return Verdict::error(format!("the scanner {} did not run: {e}", args[0])),
        };
        let stdout = tidy(&output.stdout);
        let verdict = match output.status.code() {
            Some(0) => Verdict {
                status: ScanStatus::Clean,
                findings: Vec::new(),
            },
            Some(1) => {
                let findings = if self.settings.command == Scanner::ClamAv {
                    stdout
                        .iter()
                        .filter_map(|l| l.strip_suffix(" FOUND").map(str::to_string))
                        .collect()
                } else {
                    stdout
                };
                Verdict {
                    status: ScanStatus::Flagged,
                    findings: if findings.is_empty() {
                        vec!["the scanner reported a finding without naming it".into()]
                    } else {
                        findings
                    },
                }
            }
            code => {
                let stderr = tidy(&output.stderr);
                let last: Vec<&String> = stderr.iter().rev().take(3).rev().collect();
                Verdict::error(format!(
                    "the scanner {} failed ({}){}{}",
                    args[0],
                    code.map_or_else(|| "killed".to_string(), |c| format!("exit {c}")),
                    if last.is_empty() { "" } else { ": " },
                    last.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(" / ")
                ))
            }
        };
        drop(temp);
        capped(verdict)
    }

    /// A record of `image_id` as scanned now.
    pub(crate) fn record(&self, image_id: &str, verdict: &Verdict, took: Duration) -> ImageScan {
        ImageScan {
            image_id: image_id.to_string(),
            status: verdict.status,
            findings: verdict.findings.clone(),
            scanner: self.name(),
            duration_ms: took.as_millis().min(i64::MAX as u128) as i64,
            scanned_at: now(),
            released_by: None,
            released_at: None,
        }
    }
}

impl super::Images {
    /// Scans what a pull or build just made, once per distinct image id among `hosts`,
    /// telling `tx` how it goes. The scan runs to its end even when nobody listens any
    /// more: an image must not stay `pending`.
    pub(super) async fn scan_new(
        &self,
        image: &ImageRef,
        hosts: &[Arc<Host>],
        tx: &tokio::sync::mpsc::Sender<Value>,
    ) {
        if !self.scans.enabled() {
            return;
        }
        let mut done: Vec<String> = Vec::new();
        for host in hosts {
            let Ok(Some(info)) = host.backend.image(image.as_str()).await else {
                continue;
            };
            if done.contains(&info.id) {
                continue;
            }
            done.push(info.id.clone());
            let _ = tx
                .send(json!({
                    "status": "scanning",
                    "host": host.id,
                    "detail": format!("scanning with {}…", self.scans.name()),
                }))
                .await;
            let record = self.scan_one(host, &info.id).await;
            let detail = match record.status {
                ScanStatus::Clean => {
                    format!("scan: clean in {:.1} s", record.duration_ms as f64 / 1000.0)
                }
                other => format!(
                    "scan: {} in {:.1} s: {}",
                    other.as_str(),
                    record.duration_ms as f64 / 1000.0,
                    record.findings.join("; ")
                ),
            };
            let _ = tx
                .send(json!({
                    "status": "scanning",
                    "host": host.id,
                    "detail": detail,
                    "scan": Scan::from(&record),
                }))
                .await;
        }
    }

    /// Scans one image on `host` and records the result; `pending` while it runs.
    async fn scan_one(&self, host: &Host, image_id: &str) -> ImageScan {
        let pending = self.scans.record(
            image_id,
            &Verdict {
                status: ScanStatus::Pending,
                findings: Vec::new(),
            },
            Duration::ZERO,
        );
        if let Err(e) = self.store.set_image_scan(&pending).await {
            tracing::error!(error = ?e, image = image_id, "could not record a scan as pending");
        }
        // The export waits for the turn too: nothing is made on the host before.
        let turn = self.scans.turn().await;
        let (verdict, took) = match host.backend.image_filesystem(image_id).await {
            Ok(filesystem) => self.scans.scan(filesystem).await,
            Err(e) => (
                Verdict::error(format!(
                    "the image's file system could not be read from host {}: {e}",
                    host.id
                )),
                Duration::ZERO,
            ),
        };
        drop(turn);
        let record = self.scans.record(image_id, &verdict, took);
        tracing::info!(
            image = image_id,
            host = %host.id,
            status = record.status.as_str(),
            seconds = took.as_secs_f64(),
            findings = ?record.findings,
            "image scanned"
        );
        if let Err(e) = self.store.set_image_scan(&record).await {
            tracing::error!(error = ?e, image = image_id, "could not record a scan");
        }
        record
    }

    /// Scans an image a container's start pulled onto `host` when its content was never
    /// scanned (the registry's tag may have moved since), then applies its scan.
    pub(super) async fn scan_pulled(&self, host: &Host, image: &ImageRef) -> Result<(), Error> {
        if !self.scans.enabled() {
            return Ok(());
        }
        let Some(info) = host.backend.image(image.as_str()).await? else {
            return Ok(());
        };
        if self.store.image_scan(&info.id).await?.is_none() {
            self.scan_one(host, &info.id).await;
        }
        self.check_scan(&info.id, image.as_str()).await
    }
}

fn capped(mut v: Verdict) -> Verdict {
    let more = v.findings.len().saturating_sub(MAX_FINDINGS);
    v.findings.truncate(MAX_FINDINGS);
    for f in &mut v.findings {
        if f.chars().count() > MAX_FINDING_CHARS {
            *f = f.chars().take(MAX_FINDING_CHARS).collect::<String>() + "…";
        }
    }
    if more > 0 {
        v.findings.push(format!("… and {more} more"));
    }
    v
}

/// ClamAV with no signatures scans nothing and answers clean: that must be an error.
fn check_clamav_database(dir: &Path) -> Result<(), String> {
    const KINDS: [&str; 12] = [
        "cvd", "cld", "cud", "ndb", "hdb", "hsb", "mdb", "msb", "ldb", "cdb", "ndu", "ldu",
    ];
    let entries = std::fs::read_dir(dir).map_err(|e| {
        format!(
            "the ClamAV database {} cannot be read ({e}); run freshclam or set WM_SCAN_CLAMAV_DATABASE",
            dir.display()
        )
    })?;
    let has_signatures = entries.flatten().any(|e| {
        e.path()
            .extension()
            .is_some_and(|x| KINDS.contains(&x.to_string_lossy().as_ref()))
    });
    if has_signatures {
        Ok(())
    } else {
        Err(format!(
            "the ClamAV database {} has no signatures; run freshclam or set WM_SCAN_CLAMAV_DATABASE",
            dir.display()
        ))
    }
}

/// A reader that fails once the scan it serves has been given up.
struct Cancellable<R> {
    inner: R,
    cancel: Arc<AtomicBool>,
}

impl<R: Read> Read for Cancellable<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("the scan was given up"));
        }
        self.inner.read(buf)
    }
}

/// Unpacks the tar into `root` (when `to_dir`) and copies it to `tar_file` (when `to_tar`),
/// within `max` bytes of file content.
fn unpack(
    reader: impl Read,
    root: &Path,
    tar_file: &Path,
    to_dir: bool,
    to_tar: bool,
    max: u64,
) -> Result<(), String> {
    let mut reader = reader;
    if to_tar && !to_dir {
        let mut out = std::fs::File::create(tar_file)
            .map_err(|e| format!("cannot write the image's tar: {e}"))?;
        let copied = std::io::copy(&mut (&mut reader).take(max + 1), &mut out)
            .map_err(|e| format!("reading the image's file system failed: {e}"))?;
        if copied > max {
            return Err(too_large(max));
        }
        return Ok(());
    }
    if to_tar {
        // Both: keep the tar as it streams by, then unpack the copy.
        unpack(reader, root, tar_file, false, true, max.saturating_mul(2))?;
        let file =
            std::fs::File::open(tar_file).map_err(|e| format!("cannot read the tar: {e}"))?;
        return unpack(
            std::io::BufReader::new(file),
            root,
            tar_file,
            true,
            false,
            max,
        );
    }
    std::fs::create_dir_all(root).map_err(|e| format!("cannot make {}: {e}", root.display()))?;
    let mut archive = tar::Archive::new(reader);
    let mut total: u64 = 0;
    let entries = archive
        .entries()
        .map_err(|e| format!("the image's file system is not a tar: {e}"))?;
    for entry in entries {
        let mut entry =
            entry.map_err(|e| format!("reading the image's file system failed: {e}"))?;
        let Some(relative) = entry.path().ok().and_then(|p| confined(&p)) else {
            continue;
        };
        let target = root.join(&relative);
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                std::fs::create_dir_all(&target)
                    .map_err(|e| format!("cannot make {}: {e}", relative.display()))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                total = total.saturating_add(entry.size());
                if total > max {
                    return Err(too_large(max));
                }
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| format!("cannot make {}: {e}", parent.display()))?;
                }
                // Only directories and regular files are ever made under `root`, so no
                // path here passes through a link.
                let mut out = std::fs::File::create(&target)
                    .map_err(|e| format!("cannot write {}: {e}", relative.display()))?;
                std::io::copy(&mut entry, &mut out)
                    .map_err(|e| format!("reading {} failed: {e}", relative.display()))?;
            }
            // Links (a hard link's content is scanned under its first name), devices,
            // FIFOs: nothing to scan, and nothing to make.
            _ => {}
        }
    }
    Ok(())
}

fn too_large(max: u64) -> String {
    format!(
        "the image's file system is larger than the scan limit of {max} bytes (WM_SCAN_MAX_BYTES)"
    )
}

/// The path of a tar entry inside the unpacking root, or `None` for one that would leave it.
fn confined(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            Component::ParentDir => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            if *kind == tar::EntryType::Symlink {
                h.set_link_name("/etc/passwd").unwrap();
            }
            // Written raw: the builder itself refuses `..`, an archive from a host need not.
            let name = path.as_bytes();
            h.as_old_mut().name[..name.len()].copy_from_slice(name);
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn unpacking_keeps_files_and_directories_inside_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        let tar = tar_of(&[
            ("etc/", tar::EntryType::Directory, b""),
            ("etc/hostname", tar::EntryType::Regular, b"box\n"),
            ("/abs/file", tar::EntryType::Regular, b"abs"),
            ("../escape", tar::EntryType::Regular, b"out"),
            ("a/../../escape2", tar::EntryType::Regular, b"out"),
            ("etc/link", tar::EntryType::Symlink, b""),
            ("dev/null", tar::EntryType::Char, b""),
        ]);
        unpack(
            &tar[..],
            &root,
            &dir.path().join("x.tar"),
            true,
            false,
            1 << 20,
        )
        .unwrap();
        assert_eq!(std::fs::read(root.join("etc/hostname")).unwrap(), b"box\n");
        assert_eq!(std::fs::read(root.join("abs/file")).unwrap(), b"abs");
        assert!(!dir.path().join("escape").exists());
        assert!(!dir.path().join("escape2").exists());
        assert!(std::fs::symlink_metadata(root.join("etc/link")).is_err());
        assert!(!root.join("dev/null").exists());
    }

    #[test]
    fn unpacking_stops_at_the_size_limit() {
        let dir = tempfile::tempdir().unwrap();
        let tar = tar_of(&[("big", tar::EntryType::Regular, &[7u8; 4096])]);
        let err = unpack(
            &tar[..],
            &dir.path().join("r"),
            &dir.path().join("x.tar"),
            true,
            false,
            1000,
        )
        .unwrap_err();
        assert!(err.contains("scan limit"), "{err}");
        let err = unpack(
            &tar[..],
            &dir.path().join("r"),
            &dir.path().join("x.tar"),
            false,
            true,
            1000,
        )
        .unwrap_err();
        assert!(err.contains("scan limit"), "{err}");
    }

    #[test]
    fn released_clean_and_unscanned_images_are_usable() {
        let mut s = ImageScan {
            image_id: "sha256:a".into(),
            status: ScanStatus::Flagged,
            findings: vec!["/x: Eicar".into()],
            scanner: "clamav".into(),
            duration_ms: 1,
            scanned_at: 1,
            released_by: None,
            released_at: None,
        };
        assert_eq!(hold(None), None);
        assert_eq!(
            hold(Some(&s)),
            Some(Hold::Flagged(vec!["/x: Eicar".into()]))
        );
        s.status = ScanStatus::Pending;
        assert_eq!(hold(Some(&s)), Some(Hold::Pending));
        s.status = ScanStatus::Error;
        assert!(matches!(hold(Some(&s)), Some(Hold::Failed(_))));
        s.released_at = Some(2);
        assert_eq!(hold(Some(&s)), None);
        s.released_at = None;
        s.status = ScanStatus::Clean;
        assert_eq!(hold(Some(&s)), None);
    }

    #[test]
    fn an_empty_clamav_database_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_clamav_database(dir.path())
            .unwrap_err()
            .contains("no signatures"));
        assert!(check_clamav_database(&dir.path().join("missing")).is_err());
        std::fs::write(dir.path().join("test.ndb"), "x").unwrap();
        assert!(check_clamav_database(dir.path()).is_ok());
    }
}
