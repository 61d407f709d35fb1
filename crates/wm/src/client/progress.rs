//! Output helpers: plain tables and byte sizes for people, progress bars on stderr only
//! when it is a terminal (so scripts' logs stay clean).

use super::failure::{Failure, Kind};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::Write;
use std::path::Path;

pub(super) fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}   "));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// `1.5 GiB`.
pub(super) fn bytes(n: f64) -> String {
    indicatif::BinaryBytes(n.max(0.0) as u64).to_string()
}

/// A bar of bytes when the total is known, else a counter of them.
pub(super) fn bytes_bar(total: Option<u64>) -> ProgressBar {
    let bar = match total {
        Some(t) => ProgressBar::new(t).with_style(
            ProgressStyle::with_template(
                "{bar:40} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {eta} {msg}",
            )
            .expect("a valid template"),
        ),
        None => ProgressBar::no_length().with_style(
            ProgressStyle::with_template("{spinner} {binary_bytes} {binary_bytes_per_sec}")
                .expect("a valid template"),
        ),
    };
    bar.set_draw_target(ProgressDrawTarget::stderr());
    bar
}

/// A line that shows the latest step.
pub(super) fn spinner() -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_draw_target(ProgressDrawTarget::stderr());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// Writes an answer's body to a file, with a bar; a failed download leaves no half file
/// behind to be mistaken for a whole one.
pub(super) async fn save(resp: reqwest::Response, output: &Path) -> Result<(), Failure> {
    let bar = bytes_bar(resp.content_length());
    let written = write_body(resp, output, &bar).await;
    bar.finish_and_clear();
    if written.is_err() {
        let _ = std::fs::remove_file(output);
    }
    written
}

async fn write_body(
    resp: reqwest::Response,
    output: &Path,
    bar: &ProgressBar,
) -> Result<(), Failure> {
    let io = |e: std::io::Error| Failure::new(Kind::Other, format!("{}: {e}", output.display()));
    let mut file = std::fs::File::create(output).map_err(io)?;
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| Failure::new(Kind::Other, super::api::error_chain(&e)))?;
        bar.inc(chunk.len() as u64);
        file.write_all(&chunk).map_err(io)?;
    }
    file.sync_all().map_err(io)
}

/// An answer's whole body, with a bar.
pub(super) async fn read(resp: reqwest::Response) -> Result<Vec<u8>, Failure> {
    let bar = bytes_bar(resp.content_length());
    let mut body = resp.bytes_stream();
    let mut data = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| Failure::new(Kind::Other, super::api::error_chain(&e)))?;
        bar.inc(chunk.len() as u64);
        data.extend_from_slice(&chunk);
    }
    bar.finish_and_clear();
    Ok(data)
}
