//! `ps`, `run`, `start`, `stop`, `rm`, `exec`, `logs`: the caller's containers by short name.

use super::failure::{Failure, Kind};
use super::Session;
use clap::Args;
use futures::StreamExt;
use serde_json::{json, Map, Value};
use std::io::Write;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub(crate) struct RunArgs {
    /// The short name; the container's full name is `<you>-NAME`.
    name: String,
    #[arg(long)]
    image: String,
    /// An environment variable, `KEY=value`; repeatable.
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// A port the container listens on, published on its host; repeatable.
    #[arg(short, long = "port", value_name = "PORT")]
    port: Vec<u16>,
    #[arg(long, value_name = "N")]
    gpus: Option<u32>,
    #[arg(long, value_name = "N")]
    cpus: Option<f64>,
    /// `512m`, `2g`, or bytes.
    #[arg(long, value_name = "SIZE")]
    memory: Option<String>,
    /// `docker` (default) or `kubernetes`.
    #[arg(long, value_name = "B")]
    backend: Option<String>,
}

fn ports(c: &Value) -> String {
    c["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| match p["host"].as_u64() {
            Some(h) => format!("{}->{h}", p["guest"]),
            None => p["guest"].to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

pub(super) async fn ps(s: &Session, json: bool) -> Result<ExitCode, Failure> {
    let list: Vec<Value> = s.api.json(s.api.get(&["containers"])).await?;
    if json {
        println!("{:#}", Value::Array(list));
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|c| {
            vec![
                s.short_name(c["name"].as_str().unwrap_or_default())
                    .to_string(),
                text(&c["image"]),
                text(&c["status"]),
                text(&c["address"]),
                ports(c),
            ]
        })
        .collect();
    super::progress::table(&["NAME", "IMAGE", "STATUS", "ADDRESS", "PORTS"], &rows);
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn run(s: &Session, a: RunArgs) -> Result<ExitCode, Failure> {
    let mut body = Map::new();
    body.insert("name".into(), json!(a.name));
    body.insert("image".into(), json!(a.image));
    body.insert("env".into(), json!(a.env));
    body.insert("ports".into(), json!(a.port));
    for (k, v) in [
        ("gpus", a.gpus.map(|g| json!(g))),
        ("cpus", a.cpus.map(|c| json!(c))),
        ("memory", a.memory.map(|m| json!(m))),
        ("backend", a.backend.map(|b| json!(b))),
    ] {
        if let Some(v) = v {
            body.insert(k.into(), v);
        }
    }
    let c: Value = s
        .api
        .json(s.api.post(&["containers"]).json(&Value::Object(body)))
        .await?;
    println!("{}\t{}\t{}", a.name, text(&c["status"]), ports(&c));
    Ok(ExitCode::SUCCESS)
}

/// `start` or `stop`.
pub(super) async fn action(s: &Session, name: &str, verb: &str) -> Result<ExitCode, Failure> {
    let c: Value = s
        .api
        .json(s.api.post(&["containers", &s.full_name(name), verb]))
        .await?;
    println!("{name}\t{}", text(&c["status"]));
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn rm(s: &Session, name: &str) -> Result<ExitCode, Failure> {
    s.api
        .send(
            s.api
                .request(reqwest::Method::DELETE, &["containers", &s.full_name(name)]),
        )
        .await?;
    Ok(ExitCode::SUCCESS)
}

/// Exit status of a command the server stopped at its time limit, as `timeout(1)`'s.
const TIMED_OUT: u8 = 124;

pub(super) async fn exec(s: &Session, name: &str, cmd: Vec<String>) -> Result<ExitCode, Failure> {
    let r: Value = s
        .api
        .json(
            s.api
                .post(&["containers", &s.full_name(name), "exec"])
                .json(&json!({ "cmd": cmd })),
        )
        .await?;
    std::io::stdout().write_all(text(&r["stdout"]).as_bytes())?;
    std::io::stderr().write_all(text(&r["stderr"]).as_bytes())?;
    let lang = s.api.lang;
    if r["truncated"].as_bool() == Some(true) {
        eprintln!(
            "wm: {}",
            lang.pick(
                "output truncated at the server's limit",
                "出力がサーバーの上限で切り詰められました"
            )
        );
    }
    if r["timed_out"].as_bool() == Some(true) {
        eprintln!(
            "wm: {}",
            lang.pick(
                "the command was stopped at the server's time limit",
                "コマンドはサーバーの制限時間で停止されました"
            )
        );
        return Ok(ExitCode::from(TIMED_OUT));
    }
    // A shell's convention: the low byte of the status.
    Ok(ExitCode::from(r["exit_code"].as_i64().unwrap_or(1) as u8))
}

pub(super) async fn logs(
    s: &Session,
    name: &str,
    follow: bool,
    tail: u32,
) -> Result<ExitCode, Failure> {
    let mut query = vec![("tail", tail.to_string())];
    if follow {
        query.push(("follow", "true".into()));
    }
    let resp = s
        .api
        .send(
            s.api
                .get(&["containers", &s.full_name(name), "logs"])
                .query(&query),
        )
        .await?;
    let mut body = resp.bytes_stream();
    let mut out = std::io::stdout();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| Failure::new(Kind::Other, super::api::error_chain(&e)))?;
        out.write_all(&chunk)?;
        out.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}
