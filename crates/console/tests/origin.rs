//! No user's service ever receives the console's session (issue 12, item 2): the console
//! works with cookies only under a name that links to published ports do not use, its
//! session cookie is `SameSite=Strict` (and `__Host-`/`Secure` behind TLS), and start-up
//! refuses a public URL on a link address. The browser test follows a real link from the
//! containers page to a container that records every request it receives.

mod common;

use common::*;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::json;
use wm_testkit::browser::Browser;
use wm_testkit::{docker, unique};

/// A console whose links to published ports use `127.0.0.1`, the name the tests' own
/// client uses; the browser must use `localhost`.
fn linked_on_loopback(data: &std::path::Path) -> wm_console::Config {
    let mut c = test_config(data);
    c.docker.address = Some("127.0.0.1".into());
    c
}

/// An image whose port 80 writes every request it receives (request line and headers)
/// to `/tmp/requests.log`, answering a small page.
fn recorder_image() -> (String, RemoveImages) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rec.sh"),
        "#!/bin/sh\n\
         while IFS= read -r line; do\n\
           echo \"$line\" >> /tmp/requests.log\n\
           case \"$line\" in \"\"|\"$(printf '\\r')\") break;; esac\n\
         done\n\
         echo -- >> /tmp/requests.log\n\
         printf 'HTTP/1.0 200 OK\\r\\nContent-Type: text/html\\r\\nConnection: close\\r\\n\\r\\n<p id=\"recorded\">recorded</p>\\r\\n'\n",
    )
    .unwrap();
    let tag = format!("{}:1", unique("wm-test-recorder"));
    wm_testkit::build_image(
        dir.path(),
        &tag,
        &format!(
            "FROM {}\nCOPY rec.sh /rec.sh\nRUN chmod 755 /rec.sh && touch /tmp/requests.log\n\
             LABEL {}=1\nCMD [\"nc\", \"-ll\", \"-p\", \"80\", \"-e\", \"/rec.sh\"]\n",
            wm_testkit::TEST_IMAGE,
            wm_testkit::TEST_LABEL
        ),
    );
    (tag.clone(), RemoveImages(vec![tag]))
}

/// What the recorder has received so far.
fn recorded(container: &str) -> String {
    let out = docker(&["exec", container, "cat", "/tmp/requests.log"]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn a_link_followed_from_the_console_never_carries_the_session() {
    let data = tempfile::tempdir().unwrap();
    let app = spawn_with(linked_on_loopback(data.path()), data).await;
    test_image().await;
    let (recorder, _image) = tokio::task::spawn_blocking(recorder_image).await.unwrap();
    let (alice, alice_t) = app.student().await;
    let c = app
        .create(
            &alice_t,
            json!({"name": "rec", "image": recorder, "ports": "80"}),
        )
        .await;
    let full = app.engine_name(&alice, "rec");
    assert_eq!(c["address"], "127.0.0.1", "{c}");
    let link = format!("http://127.0.0.1:{}/", c["ports"][0]["host"]);
    eventually(30, "the recorder answers", || async {
        app.client
            .get(&link)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;

    // Alice logs in where the console is served, and opens her link from the list.
    let console = app.base.replace("127.0.0.1", "localhost");
    let b = Browser::start("en-US,en").await;
    b.goto(&format!("{console}/login")).await;
    b.fill("#username", &alice).await;
    b.fill("#password", "password-123").await;
    b.click("form[action='/login'] button[type=submit]").await;
    b.find("form[action='/logout']").await;
    assert!(
        b.cookies()
            .await
            .iter()
            .any(|c| c.starts_with("wm_session=")),
        "logged in at the console's name: {:?}",
        b.cookies().await
    );
    b.goto(&format!("{console}/containers")).await;
    b.click(&format!("a[href='{link}']")).await;
    b.find("#recorded").await;

    // The console's page under the link address explains instead of logging in, and
    // leaves no cookie at all there.
    let misdirected = app.base.clone();
    b.goto(&format!("{misdirected}/login")).await;
    assert!(
        b.text("#misdirected").await.contains("WM_PUBLIC_URL"),
        "{}",
        b.source().await
    );
    assert_eq!(
        b.find_all("#password").await.len(),
        0,
        "no login form there"
    );
    assert_eq!(
        b.cookies().await,
        Vec::<String>::new(),
        "no cookie under the link address"
    );
    b.goto(&link).await;
    b.find("#recorded").await;

    let log = recorded(&full);
    assert!(
        log.contains("GET / HTTP/1.1"),
        "the browser's visits: {log}"
    );
    assert!(
        log.lines().filter(|l| l.starts_with("GET /")).count() >= 3,
        "the checks and both visits were recorded: {log}"
    );
    assert!(
        !log.contains("wm_session") && !log.contains("wm_login") && !log.contains(&alice_t),
        "a container received a console cookie: {log}"
    );
}

#[tokio::test]
async fn under_a_link_address_cookies_are_neither_set_nor_honoured() {
    let data = tempfile::tempdir().unwrap();
    let app = spawn_with(linked_on_loopback(data.path()), data).await;
    let (_, alice_t) = app.student().await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // The tests' client uses 127.0.0.1: the link address.
    let login = no_redirects
        .post(app.url("/api/v1/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    assert!(login.headers().get(SET_COOKIE).is_none());
    let page = no_redirects.get(app.url("/login")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::MISDIRECTED_REQUEST);
    assert!(page.headers().get(SET_COOKIE).is_none());
    assert!(page.text().await.unwrap().contains("WM_PUBLIC_URL"));
    let ja = no_redirects
        .get(app.url("/containers"))
        .header("accept-language", "ja")
        .send()
        .await
        .unwrap();
    assert!(ja.text().await.unwrap().contains("コンソール"));
    // The explanation keeps its style: the stylesheet is served there, without cookies.
    let css = no_redirects
        .get(app.url("/assets/console.css"))
        .header(COOKIE, format!("wm_session={alice_t}"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), StatusCode::OK);
    assert!(css.headers().get(SET_COOKIE).is_none());
    // A form post does not log in either.
    let post = no_redirects
        .post(app.url("/login"))
        .form(&[("username", "admin"), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert!(post.headers().get(SET_COOKIE).is_none());
    assert_ne!(post.status(), StatusCode::SEE_OTHER);
    // A session cookie is not honoured there; a bearer token is.
    let me = no_redirects
        .get(app.url("/api/v1/me"))
        .header(COOKIE, format!("wm_session={alice_t}"))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    let (status, _) = app.get("/api/v1/me", &alice_t).await;
    assert_eq!(status, StatusCode::OK);
    let page = no_redirects
        .get(app.url("/containers"))
        .header(COOKIE, format!("wm_session={alice_t}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::MISDIRECTED_REQUEST);
    // Under the console's own name, the cookie works, and is SameSite=Strict.
    let own = app.base.replace("127.0.0.1", "localhost");
    let me = no_redirects
        .get(format!("{own}/api/v1/me"))
        .header(COOKIE, format!("wm_session={alice_t}"))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    let login = no_redirects
        .post(format!("{own}/api/v1/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie = login.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(cookie.starts_with("wm_session="), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    // Health and metrics are the same under any name.
    for path in ["/healthz", "/metrics"] {
        let r = no_redirects.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn pages_under_a_link_address_redirect_to_the_public_url() {
    let data = tempfile::tempdir().unwrap();
    let mut config = linked_on_loopback(data.path());
    let port = wm_testkit::free_port();
    config.listen = format!("127.0.0.1:{port}").parse().unwrap();
    config.public_url = Some(format!("http://localhost:{port}"));
    let app = spawn_with(config, data).await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirects
        .get(app.url("/containers?x=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(
        r.headers()[LOCATION],
        format!("http://localhost:{port}/containers?x=1").as_str()
    );
    assert!(r.headers().get(SET_COOKIE).is_none());
}

#[tokio::test]
async fn start_up_refuses_a_public_url_on_a_link_address() {
    let data = tempfile::tempdir().unwrap();
    let mut config = linked_on_loopback(data.path());
    config.public_url = Some("http://127.0.0.1:8080/".into());
    let err = match wm_console::build(config).await {
        Ok(_) => panic!("the console started with its public URL on the link address"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("WM_PUBLIC_URL") && err.contains("WM_HOST_ADDRESS"),
        "{err}"
    );
    // The default link address of `wm serve` is not a name the console is browsed under.
    let mut config = test_config(data.path());
    config.docker.address = None;
    let default = wm_console::app::default_link_address(&config.docker.host_name);
    assert_ne!(default, "localhost");
    assert!(!default.starts_with("127."), "{default}");
    config.public_url = Some(format!("https://{default}/"));
    assert!(wm_console::build(config).await.is_err());
}

#[tokio::test]
async fn behind_tls_the_session_cookie_is_host_only_secure_and_strict() {
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.secure_cookies = true;
    let app = spawn_with(config, data).await;
    let (alice, alice_t) = app.student().await;
    let login = app
        .client
        .post(app.url("/api/v1/login"))
        .json(&json!({"username": alice, "password": "password-123"}))
        .send()
        .await
        .unwrap();
    let cookie = login.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(cookie.starts_with("__Host-wm_session="), "{cookie}");
    for part in ["; Secure", "; Path=/", "SameSite=Strict", "HttpOnly"] {
        assert!(cookie.contains(part), "{part} in {cookie}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
    assert!(login
        .headers()
        .get("strict-transport-security")
        .is_some_and(|v| v.to_str().unwrap().contains("max-age=")));
    let me = |c: String| {
        app.client
            .get(app.url("/api/v1/me"))
            .header(COOKIE, c)
            .send()
    };
    let ok = me(format!("__Host-wm_session={alice_t}")).await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let plain = me(format!("wm_session={alice_t}")).await.unwrap();
    assert_eq!(
        plain.status(),
        StatusCode::UNAUTHORIZED,
        "a cookie any plain-HTTP page could have set is not honoured"
    );
}
