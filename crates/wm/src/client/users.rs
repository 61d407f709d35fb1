//! `wm account ...` (one's own password, sessions and tokens) and `wm admin ...` (the
//! accounts, for administrators), over `/api/v1/me/password`, `/sessions`, `/tokens` and
//! `/admin/users`.

use super::api::Lang;
use super::failure::{Failure, Kind};
use super::Session;
use clap::Subcommand;
use serde_json::{json, Map, Value};
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub(crate) enum AccountCommand {
    /// Change your password (local accounts). The current one is taken from WM_PASSWORD
    /// and the new one from WM_NEW_PASSWORD, or asked for.
    Passwd,
    /// List your login sessions; the one of this login is marked.
    Sessions {
        #[arg(long)]
        json: bool,
    },
    /// End one of your sessions.
    EndSession { id: String },
    /// List your personal access tokens.
    Tokens {
        #[arg(long)]
        json: bool,
    },
    /// Revoke one of your personal access tokens.
    Revoke { id: String },
}

#[derive(Subcommand, Debug)]
pub(crate) enum AdminCommand {
    /// List the accounts.
    Users {
        #[arg(long)]
        json: bool,
    },
    /// Create a local account; its password is taken from WM_NEW_PASSWORD, or asked for.
    AddUser {
        name: String,
        /// `student`, `teacher` or `admin`.
        #[arg(long, default_value = "student")]
        role: String,
    },
    /// Change an account's role (`student`, `teacher` or `admin`).
    Role { user: String, role: String },
    /// Reset a local account's password (WM_NEW_PASSWORD, or asked for); its sessions end.
    Passwd { user: String },
    /// Disable an account at once: its sessions and tokens are revoked and its running
    /// containers stopped.
    Disable { user: String },
    /// Enable a disabled account again.
    Enable { user: String },
    /// Delete an account. Refused while it has containers unless --containers delete.
    #[command(
        after_help = "Example:\n  wm admin delete alice --containers delete --images delete --storage delete --yes"
    )]
    Delete {
        user: String,
        /// `refuse` (default) or `delete`.
        #[arg(long, value_name = "WHAT")]
        containers: Option<String>,
        /// `keep` (default) or `delete`.
        #[arg(long, value_name = "WHAT")]
        images: Option<String>,
        /// `keep` (default) or `delete`.
        #[arg(long, value_name = "WHAT")]
        storage: Option<String>,
        /// Confirms the deletion; without it nothing is deleted.
        #[arg(long)]
        yes: bool,
    },
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// A password from the environment variable `var`, or asked for with `prompt`.
fn password(var: &str, prompt: &str) -> Result<String, Failure> {
    match std::env::var(var) {
        Ok(p) => Ok(p),
        Err(_) => rpassword::prompt_password(format!("{prompt}: "))
            .map_err(|e| Failure::new(Kind::Usage, format!("no password: {e} (set {var})"))),
    }
}

fn new_password(lang: Lang) -> Result<String, Failure> {
    password(
        "WM_NEW_PASSWORD",
        lang.pick("New password", "新しいパスワード"),
    )
}

pub(super) async fn account(s: &Session, command: AccountCommand) -> Result<ExitCode, Failure> {
    let api = &s.api;
    let lang = api.lang;
    match command {
        AccountCommand::Passwd => {
            let current = password(
                "WM_PASSWORD",
                lang.pick("Current password", "現在のパスワード"),
            )?;
            let new = new_password(lang)?;
            api.send(
                api.request(reqwest::Method::PUT, &["me", "password"])
                    .json(&json!({ "current": current, "new": new })),
            )
            .await?;
            eprintln!(
                "{}",
                lang.pick(
                    "Password changed; your other sessions were ended.",
                    "パスワードを変更しました。ほかのセッションは終了しました。"
                )
            );
        }
        AccountCommand::Sessions { json } => {
            let list: Value = api.json(api.get(&["sessions"])).await?;
            if json {
                println!("{list:#}");
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = list
                .as_array()
                .into_iter()
                .flatten()
                .map(|x| {
                    vec![
                        text(&x["id"]),
                        text(&x["created_at"]),
                        text(&x["last_used_at"]),
                        text(&x["expires_at"]),
                        if x["current"] == true { "*" } else { "" }.into(),
                    ]
                })
                .collect();
            super::progress::table(&["ID", "CREATED", "LAST USED", "EXPIRES", "CURRENT"], &rows);
        }
        AccountCommand::EndSession { id } => {
            api.send(api.request(reqwest::Method::DELETE, &["sessions", &id]))
                .await?;
        }
        AccountCommand::Tokens { json } => {
            let list: Value = api.json(api.get(&["tokens"])).await?;
            if json {
                println!("{list:#}");
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = list
                .as_array()
                .into_iter()
                .flatten()
                .map(|x| {
                    vec![
                        text(&x["id"]),
                        text(&x["name"]),
                        text(&x["scope"]),
                        text(&x["created_at"]),
                        text(&x["last_used_at"]),
                    ]
                })
                .collect();
            super::progress::table(&["ID", "NAME", "SCOPE", "CREATED", "LAST USED"], &rows);
        }
        AccountCommand::Revoke { id } => {
            api.send(api.request(reqwest::Method::DELETE, &["tokens", &id]))
                .await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `PATCH /api/v1/admin/users/{user}` with `body`; prints the account as it is now.
async fn patch(s: &Session, user: &str, body: Value) -> Result<(), Failure> {
    let u: Value = s
        .api
        .json(
            s.api
                .request(reqwest::Method::PATCH, &["admin", "users", user])
                .json(&body),
        )
        .await?;
    print_user(&u);
    Ok(())
}

fn print_user(u: &Value) {
    println!(
        "{}\t{}\t{}{}",
        text(&u["name"]),
        text(&u["role"]),
        text(&u["source"]),
        if u["disabled"] == true {
            "\tdisabled"
        } else {
            ""
        }
    );
}

pub(super) async fn admin(s: &Session, command: AdminCommand) -> Result<ExitCode, Failure> {
    let api = &s.api;
    let lang = api.lang;
    match command {
        AdminCommand::Users { json } => {
            let list: Value = api.json(api.get(&["admin", "users"])).await?;
            if json {
                println!("{list:#}");
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = list
                .as_array()
                .into_iter()
                .flatten()
                .map(|u| {
                    vec![
                        text(&u["name"]),
                        text(&u["role"]),
                        text(&u["source"]),
                        if u["disabled"] == true { "yes" } else { "" }.into(),
                    ]
                })
                .collect();
            super::progress::table(&["NAME", "ROLE", "SOURCE", "DISABLED"], &rows);
        }
        AdminCommand::AddUser { name, role } => {
            let password = new_password(lang)?;
            let u: Value = api
                .json(
                    api.post(&["admin", "users"])
                        .json(&json!({"name": name, "password": password, "role": role})),
                )
                .await?;
            print_user(&u);
        }
        AdminCommand::Role { user, role } => patch(s, &user, json!({ "role": role })).await?,
        AdminCommand::Passwd { user } => {
            let password = new_password(lang)?;
            patch(s, &user, json!({ "password": password })).await?;
        }
        AdminCommand::Disable { user } => patch(s, &user, json!({ "disabled": true })).await?,
        AdminCommand::Enable { user } => patch(s, &user, json!({ "disabled": false })).await?,
        AdminCommand::Delete {
            user,
            containers,
            images,
            storage,
            yes,
        } => {
            if !yes {
                return Err(Failure::new(
                    Kind::Usage,
                    lang.pick(
                        "deleting an account cannot be undone: add --yes to delete it",
                        "アカウントの削除は取り消せません: 削除するには --yes を付けてください",
                    ),
                ));
            }
            let mut query = Map::new();
            for (key, value) in [
                ("containers", containers),
                ("images", images),
                ("storage", storage),
            ] {
                if let Some(v) = value {
                    query.insert(key.into(), json!(v));
                }
            }
            api.send(
                api.request(reqwest::Method::DELETE, &["admin", "users", &user])
                    .query(&query),
            )
            .await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
