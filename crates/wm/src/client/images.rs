//! `images`, `pull`, `build`, `share`, `export`: images the caller may use and makes.

use super::failure::{Failure, Kind};
use super::Session;
use futures::StreamExt;
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub(crate) enum ExportFormat {
    Sif,
    DockerArchive,
}

pub(super) async fn list(s: &Session, json: bool) -> Result<ExitCode, Failure> {
    let list: Vec<Value> = s.api.json(s.api.get(&["images"])).await?;
    if json {
        println!("{:#}", Value::Array(list));
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|i| {
            vec![
                i["ref"].as_str().unwrap_or_default().to_string(),
                i["kind"].as_str().unwrap_or_default().to_string(),
                i["owner"].as_str().unwrap_or("-").to_string(),
                super::progress::bytes(i["size"].as_f64().unwrap_or(0.0)),
                i["description"].as_str().unwrap_or_default().to_string(),
            ]
        })
        .collect();
    super::progress::table(&["IMAGE", "KIND", "OWNER", "SIZE", "DESCRIPTION"], &rows);
    Ok(ExitCode::SUCCESS)
}

/// Follows an NDJSON progress answer to its last line, `{status: done, image}` or
/// `{status: error, error}`; `log` prints a line's output (a build's) as it comes.
async fn follow(resp: reqwest::Response, log: bool) -> Result<Value, Failure> {
    let bars = indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::stderr());
    let bar = bars.add(super::progress::spinner());
    // A byte bar per layer being downloaded, by host and layer.
    let mut layers: std::collections::HashMap<String, indicatif::ProgressBar> =
        std::collections::HashMap::new();
    let mut body = resp.bytes_stream();
    let mut pending = Vec::new();
    let mut last = Value::Null;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| Failure::new(Kind::Other, super::api::error_chain(&e)))?;
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let Ok(v) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            if let (true, Some(text)) = (log, v["stream"].as_str()) {
                bar.suspend(|| {
                    let mut out = std::io::stdout();
                    let _ = out.write_all(text.as_bytes());
                    if !text.ends_with('\n') {
                        let _ = out.write_all(b"\n");
                    }
                });
            }
            let step = [&v["host"], &v["status"], &v["layer"], &v["detail"]]
                .iter()
                .filter_map(|f| f.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            if let (Some(layer), Some(total)) = (v["layer"].as_str(), v["total"].as_u64()) {
                let key = format!("{} {layer}", v["host"].as_str().unwrap_or_default());
                let layer_bar = layers.entry(key.clone()).or_insert_with(|| {
                    let b = bars.add(super::progress::bytes_bar(Some(total)));
                    b.set_message(key);
                    b
                });
                layer_bar.set_length(total.max(1));
                layer_bar.set_position(v["current"].as_u64().unwrap_or(0));
            }
            bar.set_message(step);
            last = v;
        }
    }
    bar.finish_and_clear();
    for b in layers.values() {
        b.finish_and_clear();
    }
    match last["status"].as_str() {
        Some("done") => Ok(last),
        Some("error") => Err(Failure::new(
            Kind::Other,
            last["error"]["message"]
                .as_str()
                .unwrap_or("failed")
                .to_string(),
        )),
        _ => Err(Failure::new(
            Kind::Other,
            "the answer ended before the work did",
        )),
    }
}

fn done_image(v: &Value) -> String {
    match &v["image"] {
        Value::String(s) => s.clone(),
        other => other["ref"]
            .as_str()
            .map_or_else(|| other.to_string(), String::from),
    }
}

pub(super) async fn pull(s: &Session, image: &str) -> Result<ExitCode, Failure> {
    let resp = s
        .api
        .send(
            s.api
                .post(&["images", "pull"])
                .json(&json!({ "image": image })),
        )
        .await?;
    println!("{}", done_image(&follow(resp, false).await?));
    Ok(ExitCode::SUCCESS)
}

/// The build context: the directory as a tar, less what its `.dockerignore` excludes
/// (gitignore rules, read by the `ignore` crate).
fn context(dir: &Path) -> Result<Vec<u8>, Failure> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(false);
    let walk = ignore::WalkBuilder::new(dir)
        .standard_filters(false)
        .add_custom_ignore_filename(".dockerignore")
        .sort_by_file_path(|a, b| a.cmp(b))
        .build();
    for entry in walk {
        let entry = entry.map_err(|e| Failure::new(Kind::Other, e.to_string()))?;
        let rel = entry.path().strip_prefix(dir).expect("walked under dir");
        if rel.as_os_str().is_empty() {
            continue;
        }
        tar.append_path_with_name(entry.path(), rel)
            .map_err(|e| Failure::new(Kind::Other, format!("{}: {e}", entry.path().display())))?;
    }
    tar.into_inner().map_err(Failure::from)
}

pub(super) async fn build(s: &Session, dir: &Path, name: &str) -> Result<ExitCode, Failure> {
    if !dir.join("Dockerfile").is_file() {
        return Err(Failure::new(
            Kind::Usage,
            format!(
                "{}: {}",
                dir.display(),
                s.api
                    .lang
                    .pick("has no Dockerfile", "に Dockerfile がありません")
            ),
        ));
    }
    let tar = context(dir)?;
    let form = Form::new()
        .text("name", name.to_string())
        .part("context", Part::bytes(tar).file_name("context.tar"));
    let resp = s
        .api
        .send(s.api.post(&["images", "build"]).multipart(form))
        .await?;
    println!("{}", done_image(&follow(resp, true).await?));
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn share(
    s: &Session,
    image: &str,
    shared: bool,
    description: Option<String>,
) -> Result<ExitCode, Failure> {
    let mut body = json!({ "shared": shared });
    if let Some(d) = description {
        body["description"] = json!(d);
    }
    let i: Value = s
        .api
        .json(
            s.api
                .request(reqwest::Method::PATCH, &["images", image])
                .json(&body),
        )
        .await?;
    println!(
        "{}\tshared={}",
        i["ref"].as_str().unwrap_or(image),
        i["shared"]
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn export(
    s: &Session,
    image: &str,
    format: ExportFormat,
    output: &Path,
) -> Result<ExitCode, Failure> {
    let format = match format {
        ExportFormat::Sif => "sif",
        ExportFormat::DockerArchive => "docker-archive",
    };
    let resp = s
        .api
        .send(
            s.api
                .get(&["images", image, "export"])
                .query(&[("format", format)]),
        )
        .await?;
    super::progress::save(resp, output).await?;
    Ok(ExitCode::SUCCESS)
}
