//! Converts a Docker image, as the byte stream of `docker save`, into a SIF file that
//! Apptainer (or SingularityCE) can run, without root and without Apptainer installed.
//!
//! The steps, each in its own module:
//!
//! 1. `archive`: spool the `docker save` stream into a private temporary directory (its
//!    `manifest.json` comes last, so nothing can be decided before the end), then read the
//!    manifest and the image config. Both the Docker 20.10 layout (`<id>/layer.tar`) and the
//!    OCI layout of newer engines (`blobs/sha256/<digest>`) are described by `manifest.json`.
//! 2. `flatten`: read the layers once to learn which entry of which layer survives at each
//!    path (whiteouts, opaque directories, replaced directories), then read them again and
//!    write the survivors as one flattened tar stream.
//! 3. `runtime`: the Apptainer runtime layout (`/.singularity.d`, the runscript built from
//!    ENTRYPOINT and CMD, the environment from ENV, the mount points) joins that stream as a
//!    last, synthetic layer.
//! 4. `squash`: `mksquashfs -tar` turns the stream into a squashfs image in the temporary
//!    directory.
//! 5. `sif`: a SIF v1 global header and descriptor table, then the squashfs as the primary
//!    system partition, are written to the caller's `impl Write`.
//!
//! # Why `mksquashfs -tar`
//!
//! Ownership, modes (setuid, sticky), mtimes, symlinks and hard links have to survive without
//! root. Extracting into a staging tree cannot `chown` as an ordinary user, and carrying the
//! metadata beside it as `-pf` pseudo definitions leaves symlink mtimes, unreadable modes and
//! odd file names to work around. squashfs-tools 4.5.1 (Debian bookworm's `1:4.5.1-1`) reads
//! a tar stream on stdin with `-tar`, taking every attribute from the tar headers, so the
//! flattened layers are streamed straight into it: no staging copy of the image on disk, no
//! privilege, and hard links, duplicate detection and parallel compression come from the same
//! tool Apptainer itself uses. A pure Rust writer (`backhand`) was the alternative; it does not
//! write hard links and would add a large dependency tree for less.
//!
//! # Memory
//!
//! File data is only ever streamed through fixed buffers. What grows with the image is the
//! map of surviving paths built while flattening: a path and a few integers per file.

mod archive;
mod flatten;
mod runtime;
mod sif;
mod squash;

use std::fs::File;
use std::io::{Read, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

pub use sif::SifArch;

/// How far a conversion is. Reported often enough to drive a progress bar; answering
/// [`ControlFlow::Break`] cancels the conversion.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Progress {
    /// Copying the `docker save` stream into the work directory: bytes read so far.
    Spooling { bytes: u64 },
    /// Reading the headers of layer `layer` (from 1) of `layers` to learn the final tree.
    Scanning { layer: usize, layers: usize },
    /// Packing layer `layer` (from 1) of `layers` into squashfs; `bytes` of file data so far,
    /// over all layers.
    Squashing {
        layer: usize,
        layers: usize,
        bytes: u64,
    },
    /// Copying the squashfs image into the SIF output: `bytes` of `total`.
    Writing { bytes: u64, total: u64 },
}

/// What a successful conversion produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SifSummary {
    /// The SIF file's unique id (its global header `ID`).
    pub id: uuid::Uuid,
    /// The architecture of the image and of the primary partition.
    pub arch: SifArch,
    /// How many layers were flattened.
    pub layers: usize,
    /// Size of the squashfs partition.
    pub squashfs_bytes: u64,
    /// Size of everything written to the output.
    pub sif_bytes: u64,
}

/// Why a conversion failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SifError {
    /// Reading the archive, the work directory or writing the output failed.
    #[error("I/O error while {context}")]
    Io {
        context: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The input is not a `docker save` archive this crate understands.
    #[error("not a usable docker save archive: {0}")]
    InvalidArchive(String),
    /// `manifest.json` lists no image or several; one image per archive is supported.
    #[error("the archive holds {0} images, expected exactly one")]
    ImageCount(usize),
    /// A layer is neither a plain nor a gzip-compressed tar.
    #[error("layer {layer} is compressed in a format other than gzip")]
    UnsupportedCompression { layer: String },
    /// The image config names an architecture SIF has no code for.
    #[error("architecture {0:?} has no SIF code")]
    UnsupportedArchitecture(String),
    /// `mksquashfs` is not installed (Debian package `squashfs-tools`).
    #[error("mksquashfs was not found: install squashfs-tools")]
    MksquashfsMissing,
    /// `mksquashfs` failed; `stderr` is what it said.
    #[error("mksquashfs failed ({status}): {stderr}")]
    Mksquashfs { status: String, stderr: String },
    /// The progress callback asked to stop.
    #[error("the conversion was cancelled")]
    Cancelled,
}

impl SifError {
    fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> SifError {
        move |source| SifError::Io { context, source }
    }
}

/// A progress callback; [`ControlFlow::Break`] cancels.
pub type ProgressFn<'a> = dyn FnMut(Progress) -> ControlFlow<()> + 'a;

/// Converts the `docker save` stream `archive` into a SIF file written to `out`.
///
/// `workdir` must exist and have room for about twice the image: a private temporary
/// directory is made in it for the spooled archive and the squashfs image. Synchronous and
/// long: run it on a blocking thread.
///
/// # Guarantees
///
/// The temporary directory and everything in it is removed when this returns, on success,
/// error or cancellation alike. Memory use does not grow with file or layer sizes.
///
/// # Errors
///
/// Any [`SifError`]; [`SifError::Cancelled`] when `progress` answered `Break`. On error `out`
/// may hold part of a SIF file: the caller discards it.
///
/// # Caveats
///
/// Device nodes, FIFOs and sockets in the layers are left out (Apptainer mounts its own
/// `/dev`), as are extended attributes (file capabilities included). A hard link whose
/// original is deleted in a higher layer keeps its content, as in Docker. The Dockerfile
/// `WORKDIR` is honoured by the runscript only (`apptainer run`), as Apptainer's maintainers
/// recommend; `exec` and `shell` start in the caller's directory as usual.
pub fn docker_archive_to_sif(
    archive: impl Read,
    workdir: &Path,
    out: &mut impl Write,
    progress: &mut ProgressFn<'_>,
) -> Result<SifSummary, SifError> {
    let temp = tempfile::Builder::new()
        .prefix(".wm-sif-")
        .tempdir_in(workdir)
        .map_err(SifError::io("creating the work directory"))?;
    let image = archive::spool(archive, &temp.path().join("spool"), progress)?;
    let arch = SifArch::parse(&image.config.architecture)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());

    let layout = runtime::layout(&image.config.config);
    let squashfs: PathBuf = temp.path().join("rootfs.squashfs");
    squash::mksquashfs(
        &image.layers,
        &layout,
        &squashfs,
        temp.path(),
        now,
        progress,
    )?;

    let mut squashfs = File::open(&squashfs).map_err(SifError::io("opening the squashfs"))?;
    let squashfs_bytes = squashfs
        .metadata()
        .map_err(SifError::io("reading the squashfs size"))?
        .len();
    let id = uuid::Uuid::new_v4();
    let sif_bytes = sif::write(
        out,
        &mut squashfs,
        squashfs_bytes,
        &sif::Image {
            id,
            arch,
            created: i64::try_from(now).unwrap_or(i64::MAX),
        },
        progress,
    )?;
    Ok(SifSummary {
        id,
        arch,
        layers: image.layers.len(),
        squashfs_bytes,
        sif_bytes,
    })
}

/// Reports `p`, turning a `Break` into [`SifError::Cancelled`].
fn report(progress: &mut ProgressFn<'_>, p: Progress) -> Result<(), SifError> {
    match progress(p) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(()) => Err(SifError::Cancelled),
    }
}
