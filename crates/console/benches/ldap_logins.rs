//! Logins per second and the median login time against a real slapd: through the
//! console's API (search, groups, bind, account upsert, session) and, side by side, the
//! directory check alone.
//!
//! `cargo bench -p wm-console --bench ldap_logins` (N from `WM_BENCH_N`, default 400;
//! 8 at a time).

use futures::stream::{self, StreamExt};
use serde_json::json;
use std::time::{Duration, Instant};
use wm_console::config::{Config, Secret};
use wm_domain::UserName;
use wm_testkit::{Slapd, LDAP_SUFFIX};

const CONCURRENCY: usize = 8;
const USERS: usize = 20;

fn ldif() -> String {
    let mut people: Vec<String> = (0..USERS)
        .map(|i| {
            format!(
                "dn: uid=bench{i},ou=people,{LDAP_SUFFIX}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n\
                 cn: bench {i}\nsn: bench\nuid: bench{i}\nuidNumber: {}\ngidNumber: 2000\n\
                 homeDirectory: /home/bench{i}\nuserPassword: bench-password\n",
                3000 + i
            )
        })
        .collect();
    people.push(format!(
        "dn: cn=teachers,ou=groups,{LDAP_SUFFIX}\nobjectClass: posixGroup\ncn: teachers\ngidNumber: 3000\nmemberUid: bench1\n"
    ));
    people.join("\n")
}

fn report(what: &str, mut times: Vec<Duration>, wall: Duration) {
    times.sort();
    let n = times.len();
    println!(
        "{what:<34}{:>10.0}/s{:>10.2}ms{:>10.2}ms",
        n as f64 / wall.as_secs_f64(),
        times[n / 2].as_secs_f64() * 1e3,
        times[n * 99 / 100].as_secs_f64() * 1e3
    );
}

async fn timed<F, Fut>(n: usize, f: F) -> (Vec<Duration>, Duration)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let start = Instant::now();
    let times: Vec<Duration> = stream::iter(0..n)
        .map(|i| {
            let fut = f(i);
            async move {
                let t = Instant::now();
                fut.await;
                t.elapsed()
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    (times, start.elapsed())
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("WM_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let slapd = Slapd::start(&ldif());
    let settings: wm_ldap::LdapSettings = serde_json::from_value(json!({
        "url": slapd.url(),
        "base_dn": format!("ou=people,{LDAP_SUFFIX}"),
        "group_base_dn": format!("ou=groups,{LDAP_SUFFIX}"),
        "teacher_group": "teachers",
        "admin_group": "admins",
    }))
    .unwrap();

    let data = tempfile::tempdir().unwrap();
    let mut config = Config::load(
        None,
        [
            ("WM_LISTEN", "127.0.0.1:0".to_string()),
            ("WM_DATA_DIR", data.path().display().to_string()),
            ("WM_INSTANCE", wm_testkit::unique("bench")),
            ("WM_LOG", "warn".to_string()),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    )
    .unwrap();
    config.admin_password = Some(Secret::new("bench-admin-password"));
    config.ldap = Some(settings.clone());
    let app = wm_console::build(config).await.unwrap();
    let url = format!("http://127.0.0.1:{}/api/v1/login", app.port());
    tokio::spawn(app.run_until(std::future::pending()));
    let client = reqwest::Client::new();

    let directory = wm_ldap::Directory::new(settings).unwrap();
    let names: Vec<UserName> = (0..USERS)
        .map(|i| UserName::parse(&format!("bench{i}")).unwrap())
        .collect();
    // Warm up both paths (first logins create the accounts).
    for name in &names {
        directory
            .authenticate(name, "bench-password")
            .await
            .unwrap();
        let r = client
            .post(&url)
            .json(&json!({"username": name.as_str(), "password": "bench-password"}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    let (api, api_wall) = timed(n, |i| {
        let (client, url, name) = (client.clone(), url.clone(), names[i % USERS].clone());
        async move {
            let r = client
                .post(url)
                .json(&json!({"username": name.as_str(), "password": "bench-password"}))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{}", r.status());
        }
    })
    .await;
    let (raw, raw_wall) = timed(n, |i| {
        let (directory, name) = (&directory, names[i % USERS].clone());
        async move {
            directory
                .authenticate(&name, "bench-password")
                .await
                .unwrap();
        }
    })
    .await;

    println!("\n{n} logins, {CONCURRENCY} at a time, against slapd on loopback");
    println!("{:<34}{:>12}{:>12}{:>12}", "", "logins", "median", "p99");
    report("POST /api/v1/login (directory)", api, api_wall);
    report("directory check alone", raw, raw_wall);
}
