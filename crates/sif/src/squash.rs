//! Packing the flattened tree into a squashfs image: the tar stream of [`crate::flatten`]
//! goes to the stdin of `mksquashfs - <image> -tar`, which takes owners, modes, times and
//! hard links from the tar headers, so nothing needs root.

use crate::flatten;
use crate::runtime::Synthetic;
use crate::{ProgressFn, SifError};
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running `mksquashfs`, killed and reaped if it is still running when dropped (on error
/// or cancellation).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            // Only this child, by its handle; it may have just ended by itself.
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Writes the squashfs image of `layers` plus `synthetic` to `image`. `temp` holds what
/// mksquashfs says; `now` is the root directory's time.
pub(crate) fn mksquashfs(
    layers: &[PathBuf],
    synthetic: &[Synthetic],
    image: &Path,
    temp: &Path,
    now: u64,
    progress: &mut ProgressFn<'_>,
) -> Result<(), SifError> {
    let plan = flatten::plan(layers, synthetic, progress)?;

    let stderr_path = temp.join("mksquashfs.stderr");
    let stderr = File::create(&stderr_path).map_err(SifError::io("creating a log file"))?;
    let mut child = Running(
        Command::new("mksquashfs")
            .arg("-")
            .arg(image)
            .args(["-tar", "-noappend", "-no-progress", "-quiet"])
            // A tar stream has no entry for the root; Docker's root is root's and 0755.
            .args(["-root-mode", "755", "-root-uid", "0", "-root-gid", "0"])
            .args(["-root-time", &now.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => SifError::MksquashfsMissing,
                _ => SifError::Io {
                    context: "starting mksquashfs",
                    source: e,
                },
            })?,
    );
    let stdin = child.0.stdin.take().expect("stdin is piped");
    let mut tar = tar::Builder::new(BufWriter::with_capacity(1 << 20, stdin));
    // On success the builder ends the archive and closes stdin; on error the closure owning it
    // is dropped unrun, which closes stdin too. Either way mksquashfs sees the end of its
    // input, so waiting for it below cannot hang.
    let streamed =
        flatten::emit(&plan, layers, synthetic, now, &mut tar, progress).and_then(|()| {
            tar.into_inner()
                .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
                .map(drop)
                .map_err(SifError::io("writing to mksquashfs"))
        });
    if let Err(SifError::Cancelled) = streamed {
        return Err(SifError::Cancelled);
    }
    let status = child
        .0
        .wait()
        .map_err(SifError::io("waiting for mksquashfs"))?;
    if !status.success() {
        // mksquashfs's own words explain a broken pipe better than the pipe does.
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        return Err(SifError::Mksquashfs {
            status: status.to_string(),
            stderr: stderr.trim().to_owned(),
        });
    }
    streamed
}
