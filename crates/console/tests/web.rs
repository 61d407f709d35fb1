//! The web console in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`): log in, create a container from the form, find its host port in
//! the list, run a command, upload a file, build and share an image, delete the
//! container, in English and Japanese; a screenshot of each main page at desktop and
//! phone width goes to `<target>/screenshots/`. Without a browser: the CSRF refusals,
//! ownership and the login rate limit.

mod common;

use common::*;
use reqwest::header::{COOKIE, ORIGIN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use wm_testkit::browser::Browser;

/// Waits until the browser has followed a post's redirect to a URL with `part`.
async fn wait_for_url(b: &Browser, part: &str) {
    for _ in 0..100 {
        if b.url().await.contains(part) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!(
        "the browser never got to a URL with {part}: {}",
        b.url().await
    );
}

/// Builds an image through the API; answers the last NDJSON line.
async fn api_build(app: &TestApp, token: &str, name: &str, dockerfile: &str) -> Value {
    let (_, lines) = app.build(token, name, dockerfile).await;
    lines
        .last()
        .cloned()
        .expect("the build answers at least one line")
}

#[tokio::test]
async fn a_student_works_through_the_console_in_a_browser() {
    let app = spawn_app().await;
    let image = test_image().await;
    let (alice, alice_t) = app.student().await;
    let (bob, _) = app.student().await;
    let shared_ref = format!("wm/{alice}/shared:1");
    let built_ref = format!("wm/{alice}/tool:1");
    let _images = RemoveImages(vec![shared_ref.clone(), built_ref.clone()]);
    let done = api_build(&app, &alice_t, "shared:1", &format!("FROM {image}\n")).await;
    assert_eq!(done["status"], "done", "{done}");

    let b = Browser::start("en-US,en").await;
    b.goto(&app.url("/")).await;
    assert!(b.url().await.ends_with("/login"), "{}", b.url().await);
    let lang = b.execute("return document.documentElement.lang;").await;
    assert_eq!(lang, "en");
    shot(&b, "login").await;
    // A wrong password comes back on the form, in words.
    b.fill("#username", &alice).await;
    b.fill("#password", "not-the-password").await;
    b.click("form[action='/login'] button[type=submit]").await;
    assert!(b
        .text("#login-error")
        .await
        .contains("Wrong user name or password"));
    log_in(&b, &app, &alice, "password-123").await;
    assert!(b.url().await.ends_with("/containers"));

    // The form: a wrong field is marked, the input kept; then the container is made.
    b.goto(&app.url("/containers/new")).await;
    b.fill("#name", "web").await;
    b.fill("#image", image).await;
    b.fill("#env", "MSG=hello").await;
    b.fill("#ports", "http").await;
    b.click("form[action='/containers/new'] button[type=submit]")
        .await;
    let invalid = b.find("#ports[aria-invalid=true]").await;
    assert_eq!(b.attr(&invalid, "value").await.as_deref(), Some("http"));
    assert!(b.text("#ports-error").await.contains("port numbers"));
    let name_field = b.find("#name").await;
    assert_eq!(b.attr(&name_field, "value").await.as_deref(), Some("web"));
    shot(&b, "new-container-errors").await;
    b.fill("#ports", "80").await;
    b.click("form[action='/containers/new'] button[type=submit]")
        .await;
    b.find("p.notice").await;
    let full = format!("{alice}-web");
    let (_, listed) = app.get("/api/v1/containers", &alice_t).await;
    let c = &listed[0];
    assert_eq!(c["name"], full.as_str());
    let link = format!(
        "http://{}:{}/",
        c["address"].as_str().unwrap(),
        c["ports"][0]["host"]
    );
    let a = b.find(&format!("a[href='{link}']")).await;
    assert!(b
        .element_text(&a)
        .await
        .contains(&c["ports"][0]["host"].to_string()));
    shot(&b, "containers").await;

    // Its page: upload a file, then run a command that reads it.
    b.click(&format!("a[href='/containers/{full}']")).await;
    let upload = tempfile::tempdir().unwrap();
    let file = upload.path().join("hello.txt");
    std::fs::write(&file, "uploaded through the browser\n").unwrap();
    b.fill("#path", "/tmp").await;
    b.fill("#file", file.to_str().unwrap()).await;
    b.click(&format!("form[action='/containers/{full}/files'] button"))
        .await;
    assert!(b.text("p.notice").await.contains("uploaded"));
    b.fill("#cmd", "cat /tmp/hello.txt; echo \"$MSG\"").await;
    b.click(&format!("form[action='/containers/{full}/exec'] button"))
        .await;
    assert_eq!(b.text("#exit-code").await, "0");
    let out = b.text("#stdout").await;
    assert!(out.contains("uploaded through the browser"), "{out}");
    assert!(out.contains("hello"), "{out}");
    shot(&b, "container-detail").await;

    // Images: build one on the page (live log through the script), share the other.
    b.goto(&app.url("/images")).await;
    b.fill("#build-name", "tool:1").await;
    b.fill(
        "#build-dockerfile",
        &format!("FROM {image}\nRUN echo tool > /tool.txt\n"),
    )
    .await;
    b.click("form[action='/images/build'] button[type=submit]")
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let outcome = b.text("#build-progress .outcome").await;
        if outcome.contains("Finished") {
            assert!(outcome.contains(&built_ref), "{outcome}");
            break;
        }
        assert!(!outcome.contains("Failed"), "{outcome}");
        assert!(
            std::time::Instant::now() < deadline,
            "the build did not finish"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let log = b.text("#build-progress ol").await;
    assert!(log.contains("Step 1/"), "the build log streams: {log}");
    b.goto(&app.url("/images")).await;
    let own = b.text("section[aria-labelledby=own-h]").await;
    assert!(
        own.contains(&shared_ref) && own.contains(&built_ref),
        "{own}"
    );
    // The form of the shared:1 entry (entries are sorted by reference).
    let entries = b.find_all("section[aria-labelledby=own-h] li.image").await;
    let mut shared_form = None;
    for (n, e) in entries.iter().enumerate() {
        if b.element_text(e).await.contains(&shared_ref) {
            shared_form = Some(n);
        }
    }
    let n = shared_form.expect("the shared image is listed");
    b.fill(&format!("#desc-{n}"), "a shared test image").await;
    b.click(&format!("#shared-{n}")).await;
    let save = b
        .find_all("section[aria-labelledby=own-h] form[action='/images/edit'] button")
        .await;
    b.click_element(&save[n]).await;
    assert!(b.text("p.notice").await.contains("Saved"));
    shot(&b, "images").await;

    // CI and the Japanese pages.
    b.goto(&app.url("/ci")).await;
    assert!(b.text("#ci-state").await.contains("Not configured"));
    shot(&b, "ci").await;
    b.click("a[hreflang=ja]").await;
    b.find("html[lang=ja]").await;
    assert!(b.url().await.ends_with("/ci"));
    assert!(b.text("#ci-state").await.contains("未設定"));
    b.goto(&app.url("/containers")).await;
    assert!(b.text("h1").await.contains("コンテナ"));
    shot(&b, "containers-ja").await;
    b.goto(&app.url("/containers/new")).await;
    shot(&b, "new-container-ja").await;

    // Delete, with the confirmation step.
    b.goto(&app.url("/containers")).await;
    b.click(&format!("a[href='/containers/{full}/delete']"))
        .await;
    b.click(&format!(
        "form[action='/containers/{full}/delete'] button.danger"
    ))
    .await;
    assert!(b.text("p.notice").await.contains("削除しました"));
    assert!(b
        .find_all(&format!("a[href='/containers/{full}']"))
        .await
        .is_empty());
    assert!(app.engine_containers().is_empty());
    b.click("a[hreflang=en]").await;
    b.find("html[lang=en]").await;
    log_out(&b).await;

    // Bob sees alice's image among those shared by others, with its description.
    log_in(&b, &app, &bob, "password-123").await;
    b.goto(&app.url("/images")).await;
    let shared = b.text("section[aria-labelledby=shared-h]").await;
    assert!(shared.contains(&shared_ref), "{shared}");
    assert!(shared.contains("a shared test image"), "{shared}");
    assert!(
        !shared.contains(&built_ref),
        "unshared images stay private: {shared}"
    );
    shot(&b, "images-other-user").await;
    // Not a page of alice's: the admin page and her containers are closed to bob.
    b.goto(&app.url("/admin")).await;
    b.find("div.error").await;
    log_out(&b).await;

    log_in(&b, &app, "admin", ADMIN_PASSWORD).await;
    b.goto(&app.url("/admin")).await;
    let users = b.text("section[aria-labelledby=users-h]").await;
    assert!(users.contains(&alice) && users.contains(&bob), "{users}");
    shot(&b, "admin").await;
}

/// The session cookie and the CSRF token of a page, as the browser would hold them.
async fn page_token(app: &TestApp, cookie: &str, path: &str) -> String {
    let html = app
        .client
        .get(app.url(path))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a token")
        + 19;
    html[at..at + 64].to_string()
}

#[tokio::test]
async fn posts_without_the_token_or_from_elsewhere_change_nothing() {
    let app = spawn_app().await;
    let image = test_image().await;
    let (alice, alice_t) = app.student().await;
    let (_, bob_t) = app.student().await;
    app.create(&alice_t, json!({"name": "keep", "image": image}))
        .await;
    let full = format!("{alice}-keep");
    let cookie = format!("wm_session={alice_t}");
    let token = page_token(&app, &cookie, "/containers").await;
    let delete = format!("/containers/{full}/delete");
    let post = |form: Vec<(&'static str, String)>, origin: Option<&'static str>| {
        let mut req = app
            .client
            .post(app.url(&delete))
            .header(COOKIE, cookie.clone())
            .form(&form);
        if let Some(o) = origin {
            req = req.header(ORIGIN, o);
        }
        req.send()
    };
    for (form, origin) in [
        (vec![], None),
        (vec![("csrf", "0".repeat(64))], None),
        (vec![("csrf", token.clone())], Some("http://evil.example")),
    ] {
        let resp = post(form, origin).await.unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let (status, _) = app
            .get(&format!("/api/v1/containers/{full}"), &alice_t)
            .await;
        assert_eq!(status, StatusCode::OK, "the container is still there");
    }
    // Another student's token does not fit alice's session, and her pages are a 404 to him.
    let bobs = page_token(&app, &format!("wm_session={bob_t}"), "/containers").await;
    assert_ne!(bobs, token);
    let resp = app
        .client
        .get(app.url(&format!("/containers/{full}")))
        .header(COOKIE, format!("wm_session={bob_t}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(!resp.text().await.unwrap().contains("keep</"));
    // A login form posted without its own cookie token is refused too.
    let resp = app
        .client
        .post(app.url("/login"))
        .form(&[("username", alice.as_str()), ("password", "password-123")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(resp.headers().get("set-cookie").is_none());

    // With the token, from our own origin, it happens.
    let resp = post(vec![("csrf", token)], None).await.unwrap();
    assert!(resp.status().is_redirection() || resp.status().is_success());
    let (status, _) = app
        .get(&format!("/api/v1/containers/{full}"), &alice_t)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn failed_logins_are_limited_per_user_and_address() {
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.login_rate_limit = 3;
    let app = spawn_with(config, data).await;
    let (alice, _) = app.student().await;
    let login = |user: String, pw: &'static str| {
        app.client
            .post(app.url("/api/v1/login"))
            .json(&json!({"username": user, "password": pw}))
            .send()
    };
    for _ in 0..3 {
        let r = login(alice.clone(), "wrong-password").await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // Refused now, even with the right password; Retry-After says for how long.
    let r = login(alice.clone(), "password-123").await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // Only that name from that address is: another name from it is checked as usual.
    let r = login("someone".into(), "x").await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // The web form answers the same, with the reason on the page.
    let r = post_login_form(&app, &app.client, alice.as_str(), "password-123").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    assert!(r.text().await.unwrap().contains("Too many failed logins"));
}

#[tokio::test]
async fn pulls_and_builds_stream_into_the_page_without_javascript() {
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    // Nothing listens there: allowed by name, the engine tries and fails.
    config.docker.egress_allowed = vec!["127.0.0.1:9".into()];
    let app = spawn_with(config, data).await;
    let image = test_image().await;
    let (alice, alice_t) = app.student().await;
    let reference = format!("wm/{alice}/plain:1");
    let _images = RemoveImages(vec![reference.clone()]);
    let cookie = format!("wm_session={alice_t}");
    let token = page_token(&app, &cookie, "/images").await;
    // The token comes first, as the page's form sends it; an empty context is no context.
    let form = reqwest::multipart::Form::new()
        .text("csrf", token.clone())
        .text("name", "plain:1")
        .text(
            "dockerfile",
            format!("FROM {image}\nRUN echo plain > /plain.txt\n"),
        )
        .part(
            "context",
            reqwest::multipart::Part::bytes(Vec::new()).file_name(""),
        );
    let resp = app
        .client
        .post(app.url("/images/build"))
        .header(COOKIE, cookie.clone())
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = resp.text().await.unwrap();
    assert!(html.contains("Step 1/"), "{html}");
    assert!(
        html.contains(&format!("Finished. <code>{reference}</code>")),
        "{html}"
    );
    assert!(html.trim_end().ends_with("</html>"));

    // Without the token first, nothing is built.
    let form = reqwest::multipart::Form::new()
        .text("name", "sneaky:1")
        .text("dockerfile", format!("FROM {image}\n"));
    let resp = app
        .client
        .post(app.url("/images/build"))
        .header(COOKIE, cookie.clone())
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(wm_testkit::inspect("image", &format!("wm/{alice}/sneaky:1")).is_none());

    // A pull that cannot reach its registry ends with its reason on the page.
    let resp = app
        .client
        .post(app.url("/images/pull"))
        .header(COOKIE, cookie)
        .form(&[("csrf", token.as_str()), ("image", "127.0.0.1:9/none:1")])
        .send()
        .await
        .unwrap();
    let html = resp.text().await.unwrap();
    assert!(html.contains("class=\"bad\""), "{html}");
    assert!(
        html.contains("the registry could not be reached"),
        "told by its reason: {html}"
    );
}

/// Waits until the progress box of a form ends; answers its outcome line.
async fn outcome(b: &Browser, id: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let text = b.text(&format!("#{id} .outcome")).await;
        if !text.is_empty() {
            return text;
        }
        assert!(std::time::Instant::now() < deadline, "{id} did not end");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_pull_shows_its_progress_live_in_the_browser() {
    let registry = wm_testkit::Registry::start();
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.registries_allowed = Some(registry.host());
    config.docker.egress_allowed = vec![registry.host()];
    let app = spawn_with(config, data).await;
    let (alice, _) = app.student().await;
    let remote = registry.push(
        test_image().await,
        &format!("course/pulled-{}:1", wm_testkit::unique("")),
    );
    let _images = RemoveImages(vec![remote.clone()]);

    let b = Browser::start("ja,en;q=0.5").await;
    log_in(&b, &app, &alice, "password-123").await;
    b.goto(&app.url("/images")).await;
    b.find("html[lang=ja]").await;
    b.fill("#pull-image", &remote).await;
    b.click("form[action='/images/pull'] button[type=submit]")
        .await;
    let done = outcome(&b, "pull-progress").await;
    assert!(
        done.contains("完了しました") && done.contains(&remote),
        "{done}"
    );
    let log = b.text("#pull-progress ol").await;
    assert!(!log.is_empty(), "progress lines show");
    let value = b
        .execute("return document.querySelector('#pull-progress progress').value;")
        .await;
    assert_eq!(value, 100, "the bar is full at the end");
    shot(&b, "images-pull-ja").await;

    // A refused pull says why, without leaving the page.
    b.goto(&app.url("/images")).await;
    b.fill("#pull-image", "elsewhere.example.org/x:1").await;
    b.click("form[action='/images/pull'] button[type=submit]")
        .await;
    let refused = outcome(&b, "pull-progress").await;
    assert!(refused.contains("失敗しました"), "{refused}");
    assert!(b.url().await.ends_with("/images"));

    // One the registry fails is told by its reason, in the reader's language.
    b.goto(&app.url("/images")).await;
    let missing = format!(
        "{}/course/missing-{}:1",
        registry.host(),
        wm_testkit::unique("")
    );
    b.fill("#pull-image", &missing).await;
    b.click("form[action='/images/pull'] button[type=submit]")
        .await;
    let failed = outcome(&b, "pull-progress").await;
    assert!(
        failed.contains("失敗しました") && failed.contains("レジストリにイメージが見つかりません"),
        "{failed}"
    );

    // An unknown page is a page, in the reader's language.
    b.goto(&app.url("/no-such-page")).await;
    assert!(b.text("div.error").await.contains("見つかりません"));
}

#[tokio::test]
async fn a_sif_download_shows_its_conversion_first() {
    let app = spawn_app().await;
    let (alice, token) = app.student().await;
    let reference = format!("wm/{alice}/hpc:1");
    let _images = RemoveImages(vec![reference.clone()]);
    let last = api_build(
        &app,
        &token,
        "hpc:1",
        &format!("FROM {}\n", test_image().await),
    )
    .await;
    assert_eq!(last["status"], "done", "{last}");

    let b = Browser::start("en").await;
    log_in(&b, &app, &alice, "password-123").await;
    b.goto(&app.url("/images")).await;
    let link = format!(
        "a[data-sif='/api/v1/images/{}/sif']",
        encode_ref(&reference)
    );
    b.click(&link).await;
    // The script converts (one conversion), then sends the browser to the download.
    let (app_ref, b_ref) = (&app, &b);
    eventually(
        60,
        "the conversion runs and the download starts",
        || async move {
            let (_, metrics) = app_ref.call(Method::GET, "/metrics", None, None).await;
            metrics
                .as_str()
                .unwrap()
                .contains("wm_sif_conversions_total{outcome=\"ok\"} 1")
                && b_ref.text(".sif-progress").await.is_empty()
        },
    )
    .await;
    assert!(
        b.url().await.ends_with("/images"),
        "a download does not leave the page"
    );
}

#[tokio::test]
async fn the_ci_page_sets_up_and_removes_a_runner() {
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    // No GitLab runner image can be had here: the busybox image stands in for it.
    config.ci_runner_image = test_image().await.to_string();
    let app = spawn_with(config, data).await;
    let (alice, _) = app.student().await;
    let b = Browser::start("en").await;
    log_in(&b, &app, &alice, "password-123").await;
    b.goto(&app.url("/ci")).await;
    b.fill("#gitlab_url", "https://gitlab.example.org").await;
    b.fill("#token", "glrt-browser-secret-7777").await;
    b.click("form[action='/ci'] button[type=submit]").await;
    b.find("dl#ci-state").await;
    let state = b.text("#ci-state").await;
    assert!(
        state.contains("…7777") && state.contains("running"),
        "{state}"
    );
    assert!(
        !b.source().await.contains("glrt-browser-secret"),
        "the token is not shown again"
    );
    shot(&b, "ci-configured").await;
    let runner = app.runner_name(&alice);
    assert!(wm_testkit::inspect("container", &runner).is_some());

    // A build token for GitLab's WM_TOKEN, shown once; it may build and nothing else.
    b.click("form[action='/ci/build-token'] button[type=submit]")
        .await;
    let token = b.text("#build-token").await;
    assert!(token.starts_with("wm_"), "{token}");
    assert_eq!(
        app.get("/api/v1/containers", &token).await.0,
        StatusCode::FORBIDDEN
    );
    shot(&b, "ci-build-token").await;
    b.goto(&app.url("/ci")).await;

    b.click("form[action='/ci/delete'] button[type=submit]")
        .await;
    b.find("p#ci-state").await;
    assert!(wm_testkit::inspect("container", &runner).is_none());
}

#[tokio::test]
async fn admins_add_accounts_and_reconcile_from_the_admin_page() {
    let app = spawn_app().await;
    let b = Browser::start("en").await;
    log_in(&b, &app, "admin", ADMIN_PASSWORD).await;
    b.goto(&app.url("/admin")).await;
    let name = wm_testkit::unique("w");
    b.fill("#new-name", &name).await;
    b.fill("#new-password", "a-new-password").await;
    b.click("form[action='/admin/users'] button[type=submit]")
        .await;
    wait_for_url(&b, "notice=user-created").await;
    assert!(b.text("p.notice").await.contains("account was created"));
    assert_eq!(
        app.login(&name, "a-new-password").await.len(),
        46,
        "the account works"
    );
    // The page before has a notice too: wait for the one this click leads to.
    b.click("form[action='/admin/reconcile'] button[type=submit]")
        .await;
    wait_for_url(&b, "notice=reconciled").await;
    assert!(b
        .text("p.notice")
        .await
        .contains("checked against the Docker host"));
    shot(&b, "admin-forms").await;

    // The hosts table: drain the one host, then put it back in service.
    b.click("form[action$='/drain'] button[type=submit]").await;
    wait_for_url(&b, "notice=host-changed").await;
    assert!(b
        .text("section[aria-labelledby=hosts-h] table")
        .await
        .contains("drained"));
    let (_, hosts) = app.get("/api/v1/admin/hosts", &app.admin).await;
    assert_eq!(hosts[0]["drained"], true, "{hosts}");
    b.click("form[action$='/drain'] button[type=submit]").await;
    eventually(10, "the host back in service", || async {
        let (_, hosts) = app.get("/api/v1/admin/hosts", &app.admin).await;
        hosts[0]["drained"] == false
    })
    .await;

    // A bad account is refused on the page and not created.
    b.fill("#new-name", "Bad Name").await;
    b.fill("#new-password", "a-new-password").await;
    b.click("form[action='/admin/users'] button[type=submit]")
        .await;
    b.find("div.error").await;
    let (_, users) = app.get("/api/v1/admin/users", &app.admin).await;
    assert!(!users.to_string().contains("Bad Name"));

    // A student's post to the same route, with a valid form token of their own, is refused.
    let (_, token) = app.student().await;
    let cookie = format!("wm_session={token}");
    let csrf = page_token(&app, &cookie, "/containers").await;
    let resp = app
        .client
        .post(app.url("/admin/users"))
        .header(COOKIE, &cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("name", "mallory"),
            ("password", "a-new-password"),
            ("role", "admin"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let (_, users) = app.get("/api/v1/admin/users", &app.admin).await;
    assert!(!users.to_string().contains("mallory"));
}

#[tokio::test]
async fn kubernetes_containers_and_the_kubeconfig_in_the_console() {
    let server = wm_testkit::kube_apiserver::KubeApiServer::start().await;
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.kube = Some(kube_settings(&server, data.path()));
    let app = spawn_with(config, data).await;
    let (alice, _) = app.student().await;
    let b = Browser::start("en").await;
    log_in(&b, &app, &alice, "password-123").await;

    b.goto(&app.url("/containers/new")).await;
    b.fill("#name", "web").await;
    b.fill("#image", "nginx:1.27").await;
    b.fill("#ports", "80").await;
    b.click("#backend option[value=kubernetes]").await;
    b.click("form[action='/containers/new'] button[type=submit]")
        .await;
    wait_for_url(&b, "notice=created").await;
    let url = format!("http://web.{alice}.ie.example.org/");
    let link = b.find(&format!("a[href='{url}']")).await;
    assert_eq!(b.element_text(&link).await, url);
    let download = b.find("a[href='/api/v1/kubeconfig']").await;
    assert_eq!(
        b.attr(&download, "download").await.as_deref(),
        Some("kubeconfig.yaml")
    );
    assert!(b
        .text("#kubeconfig-hint")
        .await
        .contains("your own Kubernetes namespace"));
    shot(&b, "containers-kubernetes").await;

    // Its page says how to reach it with kubectl instead of offering exec and uploads.
    b.goto(&app.url(&format!("/containers/{alice}-web"))).await;
    assert!(b
        .text("section[aria-labelledby=kubectl-h] pre")
        .await
        .contains(&format!("exec -it deploy/{alice}-web")));
    assert!(b.find_all("form[action$='/exec']").await.is_empty());
    assert!(server
        .object("deployments", &alice, &format!("{alice}-web"))
        .is_some());
}

/// The terminal on the container page, in the Japanese console: typing into a shell and
/// reading its answer, a reload that ends the old session's processes and opens a new one,
/// the exit told in words, live logs, and a stopped container that offers no terminal.
#[tokio::test]
async fn the_container_page_has_a_terminal() {
    const SCREEN: &str = "[data-terminal] .xterm-accessibility-tree";
    let app = spawn_app().await;
    let (alice, token) = app.student().await;
    let c = app
        .create(&token, json!({"name": "sh", "image": test_image().await}))
        .await;
    let full = c["name"].as_str().unwrap().to_string();
    let b = Browser::start("ja,en;q=0.5").await;
    log_in(&b, &app, &alice, "password-123").await;
    let page = app.url(&format!("/containers/{full}"));
    b.goto(&page).await;
    assert!(b.text("#terminal-h").await.contains("ターミナル"));
    b.find(SCREEN).await;
    b.click("[data-terminal]").await;
    b.type_keys("echo $((6*7))-ok\n").await;
    shows(&b, SCREEN, "42-ok").await;
    shot(&b, "terminal").await;

    // A reload ends the session and everything in it; the new page has a new session.
    b.click("[data-terminal]").await;
    b.type_keys("sleep 4242\n").await;
    eventually(60, "the terminal's sleep runs", || async {
        app.processes(&token, &full).await.contains("sleep 4242")
    })
    .await;
    b.goto(&page).await;
    eventually(60, "the old session's sleep is gone", || async {
        !app.processes(&token, &full).await.contains("sleep 4242")
    })
    .await;
    b.find(SCREEN).await;
    b.click("[data-terminal]").await;
    b.type_keys("echo again-$((1+1))\n").await;
    shows(&b, SCREEN, "again-2").await;
    b.type_keys("exit 7\n").await;
    shows(
        &b,
        "#terminal-status",
        "セッションが終了しました（終了コード 7）",
    )
    .await;
    let again = b.find("#terminal-again").await;
    assert_eq!(b.attr(&again, "hidden").await, None, "the button shows");

    // The logs follow live: a line written after the page loaded appears in it.
    b.click("a[data-follow-logs]").await;
    app.post(
        &format!("/api/v1/containers/{full}/exec"),
        &token,
        json!({"cmd": "echo later-line > /proc/1/fd/1"}),
    )
    .await;
    shows(&b, "#logs", "later-line").await;

    // The one-shot form says it has a time limit; a stopped container has no terminal.
    assert!(b.text("#cmd-hint").await.contains("60 秒"));
    let (status, _) = app
        .post(
            &format!("/api/v1/containers/{full}/stop"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    b.goto(&page).await;
    let source = b.source().await;
    assert!(
        source.contains("ターミナルを開くには、コンテナを起動してください")
            && !source.contains("data-terminal"),
        "{source}"
    );
}
