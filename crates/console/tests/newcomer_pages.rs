//! The console as a newcomer meets it (issue 21, items 6–10), in a real headless Chromium,
//! in English and Japanese: environment values with spaces in the create form, the backend
//! choice and the login page's words, times in the reader's own zone, links to host ports
//! an administrator is warned about, and the admin page's hosts memory and add-user form.
//! Screenshots at desktop and phone width go to `<target>/screenshots/`.

mod common;

use common::browser::{shot, wait_for_url};
use common::*;
use serde_json::{json, Value};
use wm_testkit::browser::Browser;
use wm_testkit::{Slapd, LDAP_SUFFIX};

const EN: &str = "en-US,en";
const JA: &str = "ja,en;q=0.5";

/// The status of the page the browser shows, as the server answered it.
async fn page_status(b: &Browser) -> u64 {
    b.execute("return performance.getEntriesByType('navigation')[0].responseStatus;")
        .await
        .as_u64()
        .expect("a navigation status")
}

/// Scrolls the first element matching `css` to the top of the window, for a screenshot.
async fn scroll_to(b: &Browser, css: &str) {
    b.execute(&format!(
        "document.querySelector({}).scrollIntoView();",
        Value::String(css.to_string())
    ))
    .await;
}

/// A value with spaces, quoted as a shell would, makes one variable; bad quoting comes back
/// on the form with the input kept and a 400, in the reader's language.
#[tokio::test]
async fn environment_values_with_spaces_in_the_create_form() {
    let app = spawn_app().await;
    let image = test_image().await;
    let (alice, alice_t) = app.student().await;
    for (lang, accept, said) in [
        ("en", EN, "never closed"),
        ("ja", JA, "引用符（\" または '）が閉じられていません"),
    ] {
        let b = Browser::start(accept).await;
        log_in(&b, &app, &alice, "password-123").await;
        b.goto(&app.url("/containers/new")).await;
        assert!(
            b.text("#env-hint").await.contains("MSG=\"hello world\""),
            "{lang}: the hint shows how to quote"
        );
        b.fill("#name", &format!("env-{lang}")).await;
        b.fill("#image", image).await;
        b.fill("#env", "MSG=\"hello world").await;
        b.click("form[action='/containers/new'] button[type=submit]")
            .await;
        let invalid = b.find("#env[aria-invalid=true]").await;
        assert_eq!(page_status(&b).await, 400, "{lang}");
        assert_eq!(
            b.attr(&invalid, "value").await.as_deref(),
            Some("MSG=\"hello world"),
            "{lang}: the input is kept"
        );
        let error = b.text("#env-error").await;
        assert!(error.contains(said), "{lang}: {error}");
        let name = b.find("#name").await;
        assert_eq!(
            b.attr(&name, "value").await.as_deref(),
            Some(format!("env-{lang}").as_str())
        );
        shot(&b, &format!("newcomer-env-quote-{lang}")).await;

        // Closed, with single quotes and a backslash too: three variables.
        b.fill(
            "#env",
            "MSG=\"hello world\" GREETING='good day' DIR=/my\\ files",
        )
        .await;
        b.click("form[action='/containers/new'] button[type=submit]")
            .await;
        wait_for_url(&b, "notice=created").await;
        let (_, c) = app
            .get(&format!("/api/v1/containers/{alice}-env-{lang}"), &alice_t)
            .await;
        assert_eq!(
            c["env"],
            json!(["MSG=hello world", "GREETING=good day", "DIR=/my files"]),
            "{c}"
        );
        b.goto(&app.url(&format!("/containers/{alice}-env-{lang}")))
            .await;
        let env: Vec<String> = {
            let mut out = Vec::new();
            for e in b.find_all("dl.facts dd code").await {
                out.push(b.element_text(&e).await);
            }
            out
        };
        assert!(env.contains(&"MSG=hello world".to_string()), "{env:?}");
    }
    // The API reads the string form the same way, and refuses bad quoting alike.
    let (status, body) = app
        .post(
            "/api/v1/containers",
            &alice_t,
            json!({"name": "api", "image": image, "env": "A='x y' B=\"1 2\""}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["env"], json!(["A=x y", "B=1 2"]));
    let (status, body) = app
        .post(
            "/api/v1/containers",
            &alice_t,
            json!({"name": "api2", "image": image, "env": "A='x y"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "env", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("never closed"),
        "{body}"
    );
}

/// Without a cluster there is nothing to choose and no backend is shown; with one, both
/// are explained. The login page speaks of department accounts only with a directory.
#[tokio::test]
async fn the_backend_is_a_choice_only_with_a_cluster_and_the_login_names_the_accounts_there_are() {
    let app = spawn_app().await;
    let (alice, alice_t) = app.student().await;
    app.create(
        &alice_t,
        json!({"name": "one", "image": test_image().await}),
    )
    .await;
    for (lang, accept, intro) in [
        ("en", EN, "the user name and password you were given"),
        ("ja", JA, "配布されたユーザー名とパスワード"),
    ] {
        let b = Browser::start(accept).await;
        b.goto(&app.url("/login")).await;
        let said = b.text("#login-intro").await;
        assert!(said.contains(intro), "{lang}: {said}");
        assert!(
            !said.contains("department") && !said.contains("学科"),
            "{lang}: {said}"
        );
        shot(&b, &format!("newcomer-login-local-{lang}")).await;
        log_in(&b, &app, &alice, "password-123").await;
        b.goto(&app.url("/containers/new")).await;
        assert!(b.find_all("#backend").await.is_empty(), "{lang}");
        assert!(b.find_all("#backend-hint").await.is_empty(), "{lang}");
        scroll_to(&b, "form[action='/containers/new'] button[type=submit]").await;
        shot(&b, &format!("newcomer-new-container-{lang}")).await;
        b.goto(&app.url("/containers")).await;
        assert!(b.find_all("td[data-label]").await.len() > 1);
        let head = b.text("table.cards thead").await;
        assert!(
            !head.contains("Backend") && !head.contains("バックエンド"),
            "{lang}: {head}"
        );
        b.goto(&app.url(&format!("/containers/{alice}-one"))).await;
        let facts = b.text("dl.facts").await;
        assert!(
            !facts.contains("Backend") && !facts.contains("バックエンド"),
            "{lang}: {facts}"
        );
    }

    // With a cluster: two choices, each explained in plain words.
    let server = wm_testkit::kube_apiserver::KubeApiServer::start().await;
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.kube = Some(kube_settings(&server, data.path()));
    let kube = spawn_with(config, data).await;
    let (bob, _) = kube.student().await;
    for (lang, accept, docker, kubernetes) in [
        ("en", EN, "on one of the department's machines", "kubectl"),
        ("ja", JA, "学科のマシンで動き", "学科のクラスターで動き"),
    ] {
        let b = Browser::start(accept).await;
        log_in(&b, &kube, &bob, "password-123").await;
        b.goto(&kube.url("/containers/new")).await;
        assert_eq!(b.find_all("#backend option").await.len(), 2, "{lang}");
        let hint = b.text("#backend-hint").await;
        assert!(
            hint.contains(docker) && hint.contains(kubernetes),
            "{lang}: {hint}"
        );
        scroll_to(&b, "#backend").await;
        shot(&b, &format!("newcomer-backend-choice-{lang}")).await;
    }

    // With a directory, its accounts are named.
    let slapd = Slapd::start("");
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.ldap = Some(
        serde_json::from_value(json!({
            "url": slapd.url(),
            "base_dn": format!("ou=people,{LDAP_SUFFIX}"),
            "timeout_secs": 2,
        }))
        .unwrap(),
    );
    let directory = spawn_with(config, data).await;
    for (lang, accept, intro, account) in [
        ("en", EN, "department account", "department account"),
        ("ja", JA, "学科のアカウント", "学科アカウント"),
    ] {
        let b = Browser::start(accept).await;
        b.goto(&directory.url("/login")).await;
        let said = b.text("#login-intro").await;
        assert!(said.contains(intro), "{lang}: {said}");
        shot(&b, &format!("newcomer-login-directory-{lang}")).await;
        log_in(&b, &directory, "admin", ADMIN_PASSWORD).await;
        b.goto(&directory.url("/admin")).await;
        let hint = b.text("#add-user-hint").await;
        assert!(hint.contains(account), "{lang}: {hint}");
    }
}

/// The local time a `<time>` should show in Tokyo (UTC+9, no summer time), date and
/// minutes.
fn tokyo(datetime: &str) -> String {
    use time::format_description::well_known::Rfc3339;
    let at = time::OffsetDateTime::parse(datetime, &Rfc3339)
        .unwrap_or_else(|e| panic!("{datetime:?}: {e}"))
        .to_offset(time::UtcOffset::from_hms(9, 0, 0).unwrap());
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute()
    )
}

/// Every time on the page: its `datetime` and its text.
async fn times(b: &Browser) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in b.find_all("time").await {
        let at = b.attr(&e, "datetime").await.expect("a datetime");
        out.push((at, b.element_text(&e).await));
    }
    out
}

/// Every page with times shows them in the reader's zone, saying which; without
/// JavaScript they say UTC.
#[tokio::test]
async fn times_are_in_the_readers_zone_on_every_page() {
    let app = spawn_app().await;
    let image = test_image().await;
    let (teacher, teacher_t) = app.user("tch", "teacher").await;
    let c = app
        .create(&teacher_t, json!({"name": "clock", "image": image}))
        .await;
    let full = c["name"].as_str().unwrap().to_string();
    let built = format!("wm/{teacher}/clock:1");
    let _images = RemoveImages(vec![built.clone()]);
    let (_, lines) = app
        .build(&teacher_t, "clock:1", &format!("FROM {image}\n"))
        .await;
    assert_eq!(lines.last().unwrap()["status"], "done", "{lines:?}");
    let (status, course) = app
        .post(
            "/api/v1/courses",
            &teacher_t,
            json!({"name": "Clocks", "ends_at": "2099-03-31T23:59:00+09:00"}),
        )
        .await;
    assert_eq!(status, 201, "{course}");
    let course = course["id"].as_str().unwrap().to_string();
    let teacher_pages = [
        "/containers".to_string(),
        format!("/containers/{full}"),
        "/images".into(),
        "/account".into(),
        "/courses".into(),
        format!("/courses/{course}"),
    ];
    let admin_pages = ["/admin", "/admin/audit"];

    for (lang, accept, zone) in [("en", EN, "GMT+9"), ("ja", JA, "JST")] {
        let b = Browser::start(accept).await;
        b.time_zone("Asia/Tokyo").await;
        for (who, password, pages) in [
            (teacher.as_str(), "password-123", teacher_pages.to_vec()),
            (
                "admin",
                ADMIN_PASSWORD,
                admin_pages.iter().map(|p| p.to_string()).collect(),
            ),
        ] {
            log_in(&b, &app, who, password).await;
            for page in &pages {
                b.goto(&app.url(page)).await;
                let seen = times(&b).await;
                assert!(!seen.is_empty(), "{lang} {page}: no times");
                for (at, text) in seen {
                    assert_eq!(
                        text,
                        format!("{} {zone}", tokyo(&at)),
                        "{lang} {page}: {at}"
                    );
                }
            }
            if who == "admin" {
                scroll_to(&b, "time").await;
                shot(&b, &format!("newcomer-times-audit-{lang}")).await;
            } else {
                b.goto(&app.url("/containers")).await;
                shot(&b, &format!("newcomer-times-containers-{lang}")).await;
            }
            log_out(&b).await;
        }
        // Without JavaScript the page says the time is UTC.
        b.scripts(false).await;
        log_in(&b, &app, &teacher, "password-123").await;
        b.goto(&app.url(&format!("/containers/{full}"))).await;
        let seen = times(&b).await;
        assert!(!seen.is_empty());
        for (at, text) in seen {
            assert!(at.ends_with('Z'), "{at}");
            assert_eq!(
                text,
                format!("{} UTC", at[..16].replace('T', " ")),
                "{lang}"
            );
        }
        shot(&b, &format!("newcomer-times-utc-{lang}")).await;
    }
}

/// Links go to an address users can reach by default, and an administrator is warned
/// when a host's links point at a name other computers likely cannot reach.
#[tokio::test]
async fn links_to_host_ports_go_where_users_can_reach_and_doubtful_ones_are_flagged() {
    // By default: this machine's address, not its bare name, and no warning.
    let app = spawn_app().await;
    let (_, alice_t) = app.student().await;
    let c = app
        .create(
            &alice_t,
            json!({"name": "web", "image": test_image().await, "ports": "80"}),
        )
        .await;
    let address = c["address"].as_str().unwrap();
    assert_eq!(
        address,
        wm_console::app::default_link_address(&app.config.docker.host_name)
    );
    assert_ne!(address, app.config.docker.host_name, "{c}");
    let b = Browser::start(EN).await;
    log_in(&b, &app, "admin", ADMIN_PASSWORD).await;
    b.goto(&app.url("/admin")).await;
    b.find("section[aria-labelledby=hosts-h] table").await;
    assert!(b.find_all("[data-link-warning]").await.is_empty());

    // Links on this machine's bare name (`vm`), and on a name that resolves nowhere.
    for (address, en, ja) in [
        (
            None,
            vec!["is this machine itself", "is a name without a domain"],
            vec!["このマシン自身", "ドメインのない名前"],
        ),
        (
            Some("wm-links.invalid"),
            vec!["does not resolve"],
            vec!["名前解決できません"],
        ),
    ] {
        let data = tempfile::tempdir().unwrap();
        let mut config = test_config(data.path());
        let address = address.map_or_else(|| config.docker.host_name.clone(), str::to_string);
        config.docker.address = Some(address.clone());
        let app = spawn_with(config, data).await;
        let host = app.config.docker.host_name.clone();
        for (lang, accept, why) in [("en", EN, &en), ("ja", JA, &ja)] {
            let b = Browser::start(accept).await;
            log_in(&b, &app, "admin", ADMIN_PASSWORD).await;
            b.goto(&app.url("/admin")).await;
            let warning = b.text(&format!("[data-link-warning='{host}']")).await;
            assert!(
                warning.contains(&address) && warning.contains("WM_HOST_ADDRESS"),
                "{lang}: {warning}"
            );
            assert!(
                why.iter().any(|w| warning.contains(w)),
                "{lang}: {warning} says none of {why:?}"
            );
            if address.ends_with(".invalid") {
                shot(&b, &format!("newcomer-link-warning-{lang}")).await;
            }
        }
    }
}

/// The hosts table shows each host's memory; the add-user form's name box is as wide and
/// styled as the other fields, at desktop and phone width, and its hint speaks of no
/// department accounts when there is no directory.
#[tokio::test]
async fn the_admin_page_shows_host_memory_and_a_styled_add_user_form() {
    let app = spawn_app().await;
    eventually(30, "the host's memory is known", || async {
        let (_, hosts) = app.get("/api/v1/admin/hosts", &app.admin).await;
        hosts[0]["memory_total"].as_i64().is_some_and(|m| m > 0)
    })
    .await;
    let (_, hosts) = app.get("/api/v1/admin/hosts", &app.admin).await;
    let host = hosts[0]["id"].as_str().unwrap().to_string();
    for (lang, accept, heading) in [
        ("en", EN, "Memory (committed / total)"),
        ("ja", JA, "メモリ（割当済み / 合計）"),
    ] {
        let b = Browser::start(accept).await;
        log_in(&b, &app, "admin", ADMIN_PASSWORD).await;
        b.goto(&app.url("/admin")).await;
        let head = b.text("section[aria-labelledby=hosts-h] thead").await;
        assert!(head.contains(heading), "{lang}: {head}");
        let memory = b.text(&format!("[data-host-memory='{host}']")).await;
        let total = memory.split(" / ").nth(1).unwrap_or("");
        assert!(
            total.starts_with(|c: char| c.is_ascii_digit())
                && (total.ends_with("GiB") || total.ends_with("MiB")),
            "{lang}: {memory:?}"
        );
        // Without a directory there are no department accounts to speak of.
        let hint = b.text("#add-user-hint").await;
        assert!(
            !hint.contains("department") && !hint.contains("学科"),
            "{lang}: {hint}"
        );
        for width in [1280, 375] {
            b.viewport(width, 900, width < 500).await;
            let style: Value = b
                .execute(
                    "const s = (id) => { const e = document.getElementById(id); const c = getComputedStyle(e); \
                     return {width: e.getBoundingClientRect().width, border: c.borderTopWidth, radius: c.borderTopLeftRadius, padding: c.paddingLeft}; }; \
                     return {name: s('new-name'), password: s('new-password')};",
                )
                .await;
            assert_eq!(
                style["name"], style["password"],
                "{lang} at {width}: {style}"
            );
            assert!(
                style["name"]["width"].as_f64().unwrap() > 250.0,
                "{lang} at {width}: {style}"
            );
        }
        b.viewport(1280, 900, false).await;
        scroll_to(&b, "#add-user-h").await;
        shot(&b, &format!("newcomer-admin-add-user-{lang}")).await;
        scroll_to(&b, "#hosts-h").await;
        shot(&b, &format!("newcomer-admin-hosts-{lang}")).await;
    }
}
