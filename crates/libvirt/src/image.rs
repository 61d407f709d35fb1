//! Uploaded disk images, checked with `qemu-img info` before anything boots them.
//!
//! A qcow2 can name a backing file or an external data file: a path on the host, which
//! the guest would then read (or write). Only self-contained qcow2 and raw images pass.

use serde::Deserialize;
use std::path::Path;
use std::time::Duration;
use wm_backend::vm::{DiskFormat, DiskInfo};
use wm_backend::Why;

/// Why an image is refused: a sentence for its uploader, with its key.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{0}")]
    Refused(Why),
    #[error("qemu-img failed: {0}")]
    Tool(String),
}

#[derive(Deserialize)]
struct Info {
    format: String,
    #[serde(rename = "virtual-size")]
    virtual_size: u64,
    #[serde(rename = "actual-size", default)]
    actual_size: u64,
    #[serde(rename = "backing-filename")]
    backing_filename: Option<String>,
    #[serde(rename = "full-backing-filename")]
    full_backing_filename: Option<String>,
    #[serde(rename = "format-specific")]
    format_specific: Option<serde_json::Value>,
}

/// Reads the image at `path` and refuses any but a self-contained qcow2 or raw.
///
/// # Errors
/// [`ImageError::Refused`] for another format, a backing file, an external data file;
/// [`ImageError::Tool`] when `qemu-img` cannot run or gives no answer.
pub async fn inspect(path: &Path) -> Result<DiskInfo, ImageError> {
    // `-U`: no lock needed to read; the backing chain is never opened by `info` alone.
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new("qemu-img")
            .args(["info", "-U", "--output=json"])
            .arg(path)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| ImageError::Tool("qemu-img info took longer than 60 s".into()))?
    .map_err(|e| ImageError::Tool(format!("cannot run qemu-img: {e}")))?;
    if !out.status.success() {
        return Err(ImageError::Refused(Why::new(
            "image_unreadable",
            [],
            "the file is not a disk image qemu-img can read",
        )));
    }
    let len = tokio::fs::metadata(path)
        .await
        .map_err(|e| ImageError::Tool(format!("cannot read the image: {e}")))?
        .len();
    check(&out.stdout, len)
}

/// `len`: the file's length in bytes (qemu-img rounds a raw image's size up to a sector).
fn check(json: &[u8], len: u64) -> Result<DiskInfo, ImageError> {
    let info: Info = serde_json::from_slice(json)
        .map_err(|e| ImageError::Tool(format!("unexpected qemu-img output: {e}")))?;
    let format = DiskFormat::parse(&info.format).ok_or_else(|| {
        ImageError::Refused(Why::new(
            "image_format",
            [("format", info.format.clone())],
            format!(
                "the image is {}; only qcow2 and raw images are accepted",
                info.format
            ),
        ))
    })?;
    if info.backing_filename.is_some() || info.full_backing_filename.is_some() {
        return Err(ImageError::Refused(Why::new(
            "image_backing_file",
            [],
            "the image names a backing file; upload a self-contained image (qemu-img convert -O qcow2 in.qcow2 out.qcow2)",
        )));
    }
    let data_file = info
        .format_specific
        .as_ref()
        .and_then(|f| f.get("data"))
        .and_then(|d| d.get("data-file"));
    if data_file.is_some() {
        return Err(ImageError::Refused(Why::new(
            "image_data_file",
            [],
            "the image names an external data file; upload a self-contained image",
        )));
    }
    if info.virtual_size == 0 {
        return Err(ImageError::Refused(Why::new(
            "image_empty",
            [],
            "the image is empty",
        )));
    }
    // Any file reads as raw; a disk is whole sectors, so this is what tells a stray file.
    if format == DiskFormat::Raw && !len.is_multiple_of(512) {
        return Err(ImageError::Refused(Why::new(
            "image_not_disk",
            [],
            "the file is neither a qcow2 image nor a raw disk (whose size is a multiple of 512 bytes)",
        )));
    }
    Ok(DiskInfo {
        format,
        virtual_size: info.virtual_size,
        size: info.actual_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_backing_files_data_files_and_other_formats() {
        let backed = br#"{"format":"qcow2","virtual-size":1048576,"actual-size":200704,"backing-filename":"/etc/shadow","full-backing-filename":"/etc/shadow","backing-filename-format":"raw"}"#;
        assert!(
            matches!(check(backed, 4096), Err(ImageError::Refused(m)) if m.contains("backing file"))
        );
        let data = br#"{"format":"qcow2","virtual-size":1048576,"format-specific":{"type":"qcow2","data":{"compat":"1.1","data-file":"/dev/sda"}}}"#;
        assert!(
            matches!(check(data, 4096), Err(ImageError::Refused(m)) if m.contains("data file"))
        );
        let vmdk = br#"{"format":"vmdk","virtual-size":1048576}"#;
        assert!(matches!(check(vmdk, 4096), Err(ImageError::Refused(m)) if m.contains("vmdk")));
        let stray = br#"{"format":"raw","virtual-size":512}"#;
        assert!(matches!(check(stray, 28), Err(ImageError::Refused(m)) if m.contains("512")));
        assert!(check(stray, 512).is_ok());
        let fine = br#"{"format":"qcow2","virtual-size":1048576,"actual-size":4096,"format-specific":{"type":"qcow2","data":{"compat":"1.1"}}}"#;
        let info = check(fine, 4096).unwrap();
        assert_eq!(info.format, DiskFormat::Qcow2);
        assert_eq!(info.virtual_size, 1048576);
    }
}
