//! The `docker save` archive: spooled entry by entry into files of a private directory
//! (`manifest.json` is written last by Docker, so nothing can be decided while streaming),
//! then `manifest.json` and the image config are read from the spool.
//!
//! Docker 20.10 writes `<id>/layer.tar` and makes a layer that repeats an earlier one a
//! symlink to it; newer engines write an OCI layout (`blobs/sha256/<digest>`). Both list
//! their config and layers in `manifest.json`, which is all this module relies on.

use crate::{report, Progress, ProgressFn, SifError};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

/// A spooled image: its layer files, lowest first, and its config.
pub(crate) struct SpooledImage {
    pub layers: Vec<PathBuf>,
    pub config: ImageConfig,
}

/// The parts of the image config (`application/vnd.oci.image.config.v1+json`) a SIF needs.
#[derive(Debug, Deserialize)]
pub(crate) struct ImageConfig {
    pub architecture: String,
    #[serde(default)]
    pub config: RunConfig,
}

/// The `config` object of an image config; Docker writes `null` for unset lists.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RunConfig {
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestEntry {
    config: String,
    layers: Vec<String>,
}

/// An archive member: its data in a spool file, or a symlink to another member.
enum Member {
    File(PathBuf),
    Link(String),
}

/// Spool progress is reported at most this often.
const REPORT_EVERY: u64 = 8 << 20;

/// Copies every member of `archive` into `dir` and reads the manifest and config.
pub(crate) fn spool(
    archive: impl Read,
    dir: &Path,
    progress: &mut ProgressFn<'_>,
) -> Result<SpooledImage, SifError> {
    std::fs::create_dir(dir).map_err(SifError::io("creating the spool directory"))?;
    let mut members = HashMap::new();
    let mut tar = tar::Archive::new(archive);
    let entries = tar.entries().map_err(SifError::io("reading the archive"))?;
    let mut bytes = 0u64;
    let mut reported = 0u64;
    let mut buf = vec![0u8; 64 << 10];
    report(progress, Progress::Spooling { bytes })?;
    for entry in entries {
        let mut entry = entry.map_err(SifError::io("reading the archive"))?;
        let name = member_name(&entry.path().map_err(SifError::io("reading the archive"))?);
        let kind = entry.header().entry_type();
        if kind.is_symlink() {
            let target = entry
                .link_name()
                .map_err(SifError::io("reading the archive"))?
                .ok_or_else(|| SifError::InvalidArchive(format!("symlink {name} has no target")))?;
            // Docker's links are relative to the linking member's directory.
            let parent = Path::new(&name).parent().unwrap_or(Path::new(""));
            let target = member_name(&parent.join(target));
            members.insert(name, Member::Link(target));
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        let path = dir.join(members.len().to_string());
        let mut file = File::create(&path).map_err(SifError::io("spooling the archive"))?;
        loop {
            let n = entry
                .read(&mut buf)
                .map_err(SifError::io("reading the archive"))?;
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n])
                .map_err(SifError::io("spooling the archive"))?;
            bytes += n as u64;
            if bytes - reported >= REPORT_EVERY {
                reported = bytes;
                report(progress, Progress::Spooling { bytes })?;
            }
        }
        members.insert(name, Member::File(path));
    }
    report(progress, Progress::Spooling { bytes })?;

    let manifest: Vec<ManifestEntry> = read_json(&members, "manifest.json")?;
    let [image] = <[ManifestEntry; 1]>::try_from(manifest)
        .map_err(|entries| SifError::ImageCount(entries.len()))?;
    let config = read_json(&members, &image.config)?;
    let layers = image
        .layers
        .iter()
        .map(|l| resolve(&members, l).map(Path::to_path_buf))
        .collect::<Result<_, _>>()?;
    Ok(SpooledImage { layers, config })
}

/// A member name as `manifest.json` spells it: relative, `/`-separated, no `.` parts.
fn member_name(path: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    parts.join("/")
}

/// The spool file of member `name`, following symlinks between members.
fn resolve<'a>(members: &'a HashMap<String, Member>, name: &str) -> Result<&'a Path, SifError> {
    let mut name = member_name(Path::new(name));
    // A bound on symlink chains, so a loop in a hostile archive ends.
    for _ in 0..16 {
        match members.get(&name) {
            Some(Member::File(path)) => return Ok(path),
            Some(Member::Link(target)) => name = target.clone(),
            None => return Err(SifError::InvalidArchive(format!("{name} is missing"))),
        }
    }
    Err(SifError::InvalidArchive(format!("{name}: too many links")))
}

fn read_json<T: serde::de::DeserializeOwned>(
    members: &HashMap<String, Member>,
    name: &str,
) -> Result<T, SifError> {
    let file = File::open(resolve(members, name)?).map_err(SifError::io("reading the spool"))?;
    serde_json::from_reader(std::io::BufReader::new(file))
        .map_err(|e| SifError::InvalidArchive(format!("{name}: {e}")))
}
