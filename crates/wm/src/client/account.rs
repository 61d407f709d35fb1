//! `login`, `logout`, `whoami`, `quota`, `kubeconfig`: the caller's account.

use super::api::{Api, Lang};
use super::config::{self, Login};
use super::failure::{Failure, Kind};
use super::Session;
use serde_json::{json, Value};
use std::process::ExitCode;

pub(super) async fn login(
    url: &str,
    user: Option<String>,
    token: Option<String>,
    lang: Lang,
) -> Result<ExitCode, Failure> {
    let url = url.trim_end_matches('/').to_string();
    let (token, user) = match token {
        // A token someone made: check it and learn whose it is.
        Some(token) => {
            let api = Api::new(&url, Some(token.clone()), lang)?;
            let me: Value = api.json(api.get(&["me"])).await?;
            (token, me["name"].as_str().unwrap_or_default().to_string())
        }
        None => {
            let user = user.expect("clap requires --user without --token");
            let password = match std::env::var("WM_PASSWORD") {
                Ok(p) => p,
                Err(_) => {
                    rpassword::prompt_password(format!("{}: ", lang.pick("Password", "パスワード")))
                        .map_err(|e| {
                            Failure::new(Kind::Usage, format!("no password: {e} (set WM_PASSWORD)"))
                        })?
                }
            };
            let api = Api::new(&url, None, lang)?;
            let answer: Value = api
                .json(
                    api.post(&["login"])
                        .json(&json!({"username": user, "password": password})),
                )
                .await?;
            let token = answer["token"].as_str().unwrap_or_default().to_string();
            let user = answer["user"]["name"].as_str().unwrap_or(&user).to_string();
            (token, user)
        }
    };
    let path = config::save(&Login {
        url: url.clone(),
        user: user.clone(),
        token,
    })?;
    eprintln!(
        "{} {url} {} {user} ({})",
        lang.pick("Logged in to", "ログインしました:"),
        lang.pick("as", "ユーザー"),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn logout(s: &Session) -> Result<ExitCode, Failure> {
    match s.api.send(s.api.post(&["logout"])).await {
        // Already revoked or expired: forgetting it is all that is left to do.
        Ok(_) => {}
        Err(e) if e.kind == Kind::NotLoggedIn => {}
        Err(e) => return Err(e),
    }
    config::remove()?;
    Ok(ExitCode::SUCCESS)
}

async fn me(s: &Session) -> Result<Value, Failure> {
    s.api.json(s.api.get(&["me"])).await
}

pub(super) async fn whoami(s: &Session, json: bool) -> Result<ExitCode, Failure> {
    let me = me(s).await?;
    if json {
        println!("{me:#}");
    } else {
        println!(
            "{} ({})",
            me["name"].as_str().unwrap_or(""),
            me["role"].as_str().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn quota(s: &Session, json: bool) -> Result<ExitCode, Failure> {
    let me = me(s).await?;
    if json {
        println!("{:#}", json!({"quota": me["quota"], "usage": me["usage"]}));
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = [
        "containers",
        "running",
        "cpus",
        "memory",
        "gpus",
        "ports",
        "builds",
        "storage",
    ]
    .iter()
    .map(|k| {
        let bytes = matches!(*k, "memory" | "storage");
        let show = |v: &Value| match v {
            Value::Null => "-".to_string(),
            v if bytes => v.as_f64().map_or(v.to_string(), super::progress::bytes),
            v => v.to_string(),
        };
        vec![k.to_string(), show(&me["usage"][k]), show(&me["quota"][k])]
    })
    .collect();
    super::progress::table(&["RESOURCE", "USED", "LIMIT"], &rows);
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn kubeconfig(s: &Session) -> Result<ExitCode, Failure> {
    let text = s
        .api
        .send(s.api.get(&["kubeconfig"]))
        .await?
        .text()
        .await
        .map_err(|e| Failure::new(Kind::Other, e.to_string()))?;
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}
