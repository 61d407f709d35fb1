//! `wm course ...`: the courses one teaches or is enrolled in, over `/api/v1/courses`.

use super::failure::Failure;
use super::Session;
use clap::Subcommand;
use serde_json::{json, Map, Value};
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub(crate) enum CourseCommand {
    /// List the courses you teach or are enrolled in (administrators: every course).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a course: its teacher, members, and (for its teacher) its join code.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Create a course (teachers and administrators); prints its id.
    #[command(
        after_help = "Example:\n  wm course create 'Operating systems' --term '2026 spring' --ends-at 2026-07-31T23:59:00+09:00"
    )]
    Create {
        name: String,
        #[arg(long)]
        term: Option<String>,
        /// RFC 3339: the members' containers expire then.
        #[arg(long, value_name = "TIME")]
        ends_at: Option<String>,
        /// A directory group whose members are enrolled at their login.
        #[arg(long, value_name = "GROUP")]
        ldap_group: Option<String>,
        /// A host label the members' containers need by default; repeatable.
        #[arg(long = "host-label", value_name = "LABEL")]
        host_label: Vec<String>,
    },
    /// Enrol people by user name (the course's teacher).
    #[command(after_help = "Example:\n  wm course enrol 3f2a9c1b0d4e alice bob")]
    Enrol {
        id: String,
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Take someone out of the course (the course's teacher).
    Unenrol { id: String, user: String },
    /// Enrol yourself with the join code your teacher gave.
    #[command(after_help = "Example:\n  wm course join ABCDE-FGHJK")]
    Join { code: String },
    /// Make a new join code for the course, or turn it off with --off (the course's
    /// teacher); prints the code.
    Code {
        id: String,
        #[arg(long)]
        off: bool,
    },
    /// The members' containers (the course's teacher).
    Containers {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn print_json(v: &Value) -> ExitCode {
    println!("{v:#}");
    ExitCode::SUCCESS
}

fn members(c: &Value) -> usize {
    c["members"].as_array().map_or(0, Vec::len)
}

pub(super) async fn run(s: &Session, command: CourseCommand) -> Result<ExitCode, Failure> {
    let api = &s.api;
    match command {
        CourseCommand::List { json } => {
            let list: Value = api.json(api.get(&["courses"])).await?;
            if json {
                return Ok(print_json(&list));
            }
            let rows: Vec<Vec<String>> = list
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    vec![
                        text(&c["id"]),
                        text(&c["name"]),
                        text(&c["term"]),
                        text(&c["owner"]),
                        members(c).to_string(),
                        text(&c["ends_at"]),
                    ]
                })
                .collect();
            super::progress::table(&["ID", "NAME", "TERM", "TEACHER", "MEMBERS", "ENDS"], &rows);
        }
        CourseCommand::Show { id, json } => {
            let c: Value = api.json(api.get(&["courses", &id])).await?;
            if json {
                return Ok(print_json(&c));
            }
            show(&c);
        }
        CourseCommand::Create {
            name,
            term,
            ends_at,
            ldap_group,
            host_label,
        } => {
            let mut body = Map::new();
            body.insert("name".into(), json!(name));
            for (key, value) in [
                ("term", term),
                ("ends_at", ends_at),
                ("ldap_group", ldap_group),
            ] {
                if let Some(v) = value {
                    body.insert(key.into(), json!(v));
                }
            }
            if !host_label.is_empty() {
                body.insert("host_labels".into(), json!(host_label));
            }
            let c: Value = api.json(api.post(&["courses"]).json(&body)).await?;
            println!("{}", text(&c["id"]));
        }
        CourseCommand::Enrol { id, users } => {
            let c: Value = api
                .json(
                    api.post(&["courses", &id, "members"])
                        .json(&json!({ "users": users })),
                )
                .await?;
            show(&c);
        }
        CourseCommand::Unenrol { id, user } => {
            let c: Value = api
                .json(api.request(reqwest::Method::DELETE, &["courses", &id, "members", &user]))
                .await?;
            show(&c);
        }
        CourseCommand::Join { code } => {
            let c: Value = api
                .json(
                    api.post(&["courses", "join"])
                        .json(&json!({ "code": code })),
                )
                .await?;
            println!("{}\t{}", text(&c["id"]), text(&c["name"]));
        }
        CourseCommand::Code { id, off } => {
            let method = if off {
                reqwest::Method::DELETE
            } else {
                reqwest::Method::PUT
            };
            let c: Value = api
                .json(api.request(method, &["courses", &id, "join-code"]))
                .await?;
            if !off {
                println!("{}", text(&c["join_code"]));
            }
        }
        CourseCommand::Containers { id, json } => {
            let list: Value = api.json(api.get(&["courses", &id, "containers"])).await?;
            if json {
                return Ok(print_json(&list));
            }
            let rows: Vec<Vec<String>> = list
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    let memory = c["usage"]["memory"]
                        .as_f64()
                        .map_or("-".into(), super::progress::bytes);
                    let cpu = c["usage"]["cpu_seconds"]
                        .as_f64()
                        .map_or("-".into(), |s| format!("{s:.1}s"));
                    vec![
                        text(&c["name"]),
                        text(&c["owner"]),
                        text(&c["image"]),
                        text(&c["host"]),
                        text(&c["status"]),
                        text(&c["created_at"]),
                        cpu,
                        memory,
                    ]
                })
                .collect();
            super::progress::table(
                &[
                    "NAME", "OWNER", "IMAGE", "HOST", "STATUS", "CREATED", "CPU", "MEMORY",
                ],
                &rows,
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A course in a few lines.
fn show(c: &Value) {
    println!("{}\t{}", text(&c["id"]), text(&c["name"]));
    println!("teacher\t{}", text(&c["owner"]));
    println!("term\t{}", text(&c["term"]));
    println!("ends\t{}", text(&c["ends_at"]));
    if !c["join_code"].is_null() {
        println!("join code\t{}", text(&c["join_code"]));
    }
    let names: Vec<String> = c["members"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    println!("members\t{}", names.join(" "));
}
