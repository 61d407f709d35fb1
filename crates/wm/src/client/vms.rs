//! `wm vm ...`: the caller's virtual machines by short name, as the department's earlier
//! ie-virsh offered them (`define`, `undefine`, `start`, `destroy`, `dumpxml`, `list`,
//! `console`), and their disk images (`images`, `upload`).

use super::failure::{Failure, Kind};
use super::Session;
use clap::Subcommand;
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub(crate) enum VmCommand {
    /// Define a VM from a template and one of your disk images (not started).
    #[command(
        after_help = "Example:\n  wm vm define os --template small --image debian -p 22 -p 80"
    )]
    Define {
        /// The short name; the VM's full name is `<you>-NAME`.
        name: String,
        #[arg(long, value_name = "T")]
        template: String,
        #[arg(long, value_name = "I")]
        image: String,
        /// A guest port forwarded from a host port; repeatable.
        #[arg(short, long = "port", value_name = "PORT")]
        port: Vec<u16>,
    },
    /// Remove a VM with its disk.
    Undefine { name: String },
    /// Power a VM on.
    Start { name: String },
    /// Power a VM off at once.
    Destroy { name: String },
    /// Print the domain XML that runs.
    Dumpxml { name: String },
    /// The serial console (leave with Ctrl-]); `--log` prints the transcript instead.
    #[command(after_help = "Examples:\n  wm vm console os\n  wm vm console --log os")]
    Console {
        name: String,
        #[arg(long)]
        log: bool,
    },
    /// List your VMs.
    List {
        #[arg(long)]
        json: bool,
    },
    /// List your disk images.
    Images {
        #[arg(long)]
        json: bool,
    },
    /// Upload a disk image (qcow2 or raw; no backing file).
    #[command(after_help = "Example:\n  wm vm upload debian.qcow2 --name debian")]
    Upload {
        file: PathBuf,
        #[arg(long, value_name = "NAME")]
        name: String,
    },
    /// Delete one of your disk images.
    Rmi { name: String },
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn ports(v: &Value) -> String {
    v["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| format!("{}->{}", p["guest"], p["host"]))
        .collect::<Vec<_>>()
        .join(",")
}

fn print_json(v: Value) -> ExitCode {
    println!("{v:#}");
    ExitCode::SUCCESS
}

pub(super) async fn run(s: &Session, command: VmCommand) -> Result<ExitCode, Failure> {
    let api = &s.api;
    match command {
        VmCommand::Define {
            name,
            template,
            image,
            port,
        } => {
            let body = json!({"name": name, "template": template, "image": image, "ports": port});
            let v: Value = api.json(api.post(&["vms"]).json(&body)).await?;
            println!("{name}\t{}\t{}", text(&v["status"]), ports(&v));
        }
        VmCommand::Undefine { name } => {
            api.send(api.request(reqwest::Method::DELETE, &["vms", &s.full_name(&name)]))
                .await?;
        }
        VmCommand::Start { name } => power(s, &name, "start").await?,
        VmCommand::Destroy { name } => power(s, &name, "destroy").await?,
        VmCommand::Dumpxml { name } => {
            let xml = api
                .send(api.get(&["vms", &s.full_name(&name), "xml"]))
                .await?
                .text()
                .await
                .map_err(|e| Failure::new(Kind::Other, e.to_string()))?;
            print!("{xml}");
        }
        VmCommand::Console { name, log: true } => {
            let bytes = api
                .send(api.get(&["vms", &s.full_name(&name), "console.log"]))
                .await?
                .bytes()
                .await
                .map_err(|e| Failure::new(Kind::Other, e.to_string()))?;
            use std::io::Write;
            std::io::stdout().write_all(&bytes)?;
        }
        VmCommand::Console { name, log: false } => {
            return super::terminal::serial(s, &name).await;
        }
        VmCommand::List { json } => {
            let list: Vec<Value> = api.json(api.get(&["vms"])).await?;
            if json {
                return Ok(print_json(Value::Array(list)));
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|v| {
                    vec![
                        s.short_name(v["name"].as_str().unwrap_or_default())
                            .to_string(),
                        text(&v["template"]),
                        text(&v["image"]),
                        text(&v["status"]),
                        text(&v["address"]),
                        ports(v),
                    ]
                })
                .collect();
            super::progress::table(
                &["NAME", "TEMPLATE", "IMAGE", "STATUS", "ADDRESS", "PORTS"],
                &rows,
            );
        }
        VmCommand::Images { json } => {
            let list: Vec<Value> = api.json(api.get(&["vm-images"])).await?;
            if json {
                return Ok(print_json(Value::Array(list)));
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|i| {
                    vec![
                        text(&i["name"]),
                        text(&i["format"]),
                        text(&i["virtual_size"]),
                        text(&i["size"]),
                        text(&i["host"]),
                        text(&i["created_at"]),
                    ]
                })
                .collect();
            super::progress::table(
                &["NAME", "FORMAT", "VIRTUAL SIZE", "SIZE", "HOST", "CREATED"],
                &rows,
            );
        }
        VmCommand::Upload { file, name } => {
            let f = tokio::fs::File::open(&file)
                .await
                .map_err(|e| Failure::new(Kind::Usage, format!("{}: {e}", file.display())))?;
            let len = f.metadata().await?.len();
            let bar = super::progress::bytes_bar(Some(len));
            let body = reqwest::Body::wrap_stream(super::files::counted(f, bar.clone()));
            let form = Form::new().text("name", name.clone()).part(
                "file",
                Part::stream_with_length(body, len).file_name("disk"),
            );
            let v: Value = api.json(api.post(&["vm-images"]).multipart(form)).await?;
            bar.finish_and_clear();
            println!(
                "{name}\t{}\t{}",
                text(&v["format"]),
                text(&v["virtual_size"])
            );
        }
        VmCommand::Rmi { name } => {
            api.send(api.request(reqwest::Method::DELETE, &["vm-images", &name]))
                .await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `start` or `destroy`.
async fn power(s: &Session, name: &str, verb: &str) -> Result<(), Failure> {
    let v: Value = s
        .api
        .json(s.api.post(&["vms", &s.full_name(name), verb]))
        .await?;
    println!("{name}\t{}", text(&v["status"]));
    Ok(())
}
