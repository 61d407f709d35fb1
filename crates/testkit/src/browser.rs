//! A real headless Chromium for browser tests, driven over the W3C WebDriver protocol.
//!
//! Debian's `chromium` and `chromium-driver` are used as installed (`scripts/test`
//! installs them); nothing is downloaded. The protocol is a handful of JSON calls, spoken
//! here with the `reqwest` the tests already use rather than a client crate.

use base64::Engine;
use serde_json::{json, Value};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The key of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A chromedriver on a free loopback port with one browser session; both end on drop.
pub struct Browser {
    driver: Child,
    http: reqwest::Client,
    session: String,
    _profile: tempfile::TempDir,
}

/// An element of the current page.
#[derive(Clone, Debug)]
pub struct Element(String);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium that asks for pages in `accept_language`.
    pub async fn start(accept_language: &str) -> Browser {
        assert!(
            Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists(),
            "install chromium and chromium-driver (scripts/test does)"
        );
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let ready = http
                .get(format!("{base}/status"))
                .send()
                .await
                .ok()
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ready {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                    "--disable-gpu", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                    format!("--lang={}", accept_language.split(',').next().unwrap_or("en")),
                ],
                "prefs": {"intl.accept_languages": accept_language},
            }
        }}});
        let resp: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .unwrap();
        let id = resp["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {resp}"))
            .to_string();
        Browser {
            driver,
            http,
            session: format!("{base}/session/{id}"),
            _profile: profile,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.session));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("chromedriver answers");
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "WebDriver {method} {path}: {v}");
        v["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    /// Every cookie the browser holds for the current page's site, `HttpOnly` ones
    /// included, as `name=value` strings.
    pub async fn cookies(&self) -> Vec<String> {
        self.get("/cookie")
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|c| {
                format!(
                    "{}={}",
                    c["name"].as_str().unwrap_or(""),
                    c["value"].as_str().unwrap_or("")
                )
            })
            .collect()
    }

    pub async fn url(&self) -> String {
        self.get("/url")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn source(&self) -> String {
        self.get("/source")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// All elements matching a CSS selector, now.
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let found = self
            .post("/elements", json!({"using": "css selector", "value": css}))
            .await;
        found
            .as_array()
            .unwrap_or_else(|| panic!("elements {css}: {found}"))
            .iter()
            .map(|e| {
                Element(
                    e[ELEMENT]
                        .as_str()
                        .expect("an element reference")
                        .to_string(),
                )
            })
            .collect()
    }

    /// The first element matching a CSS selector, waiting up to ten seconds for it.
    pub async fn find(&self, css: &str) -> Element {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(e) = self.find_all(css).await.into_iter().next() {
                return e;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no element {css} on {}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clears a field and types into it (a file input takes a path).
    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        if self.attr(&e, "type").await.as_deref() != Some("file") {
            self.post(&format!("/element/{}/clear", e.0), json!({}))
                .await;
        }
        self.post(&format!("/element/{}/value", e.0), json!({ "text": text }))
            .await;
    }

    pub async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.click_element(&e).await;
    }

    /// Types into whatever has the keyboard focus (`\n` is the Enter key).
    pub async fn type_keys(&self, text: &str) {
        let active = self.get("/element/active").await;
        let id = active[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no focused element: {active}"));
        let keys = text.replace('\n', "\u{E007}");
        self.post(&format!("/element/{id}/value"), json!({ "text": keys }))
            .await;
    }

    pub async fn click_element(&self, e: &Element) {
        self.post(&format!("/element/{}/click", e.0), json!({}))
            .await;
    }

    pub async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.element_text(&e).await
    }

    pub async fn element_text(&self, e: &Element) -> String {
        self.get(&format!("/element/{}/text", e.0))
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn attr(&self, e: &Element, name: &str) -> Option<String> {
        self.get(&format!("/element/{}/attribute/{name}", e.0))
            .await
            .as_str()
            .map(String::from)
    }

    /// Runs a script in the page and answers what it returns.
    pub async fn execute(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": []}))
            .await
    }

    /// Emulates a viewport of `width` × `height` CSS pixels (a phone when `mobile`).
    pub async fn viewport(&self, width: u32, height: u32, mobile: bool) {
        self.post(
            "/goog/cdp/execute",
            json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": {
                "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile
            }}),
        )
        .await;
    }

    /// Runs the page's clocks in the time zone `id` (`Asia/Tokyo`), as if the computer were
    /// set to it; it holds for the pages that follow.
    pub async fn time_zone(&self, id: &str) {
        self.post(
            "/goog/cdp/execute",
            json!({"cmd": "Emulation.setTimezoneOverride", "params": {"timezoneId": id}}),
        )
        .await;
    }

    /// Turns the pages' scripts off (or on again), as for a reader without JavaScript.
    pub async fn scripts(&self, enabled: bool) {
        self.post(
            "/goog/cdp/execute",
            json!({"cmd": "Emulation.setScriptExecutionDisabled", "params": {"value": !enabled}}),
        )
        .await;
    }

    /// Whether the page is wider than the viewport (it would scroll sideways).
    pub async fn scrolls_sideways(&self) -> bool {
        self.execute("return document.documentElement.scrollWidth > window.innerWidth;")
            .await
            .as_bool()
            .unwrap_or(true)
    }

    /// Saves a PNG of the viewport.
    pub async fn screenshot(&self, path: &Path) {
        use std::io::Write;
        let b64 = self.get("/screenshot").await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().expect("a screenshot"))
            .expect("base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::File::create(path)
            .and_then(|mut f| f.write_all(&png))
            .unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The session's end closes its browser; killing chromedriver alone would leave the
        // browser running, a child of nobody. Drop may run outside any runtime, so the
        // request is written by hand on a blocking socket.
        end_session(&self.session);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// `DELETE` of a WebDriver session URL (`http://127.0.0.1:PORT/session/ID`), waiting a
/// few seconds at most for the answer.
fn end_session(url: &str) {
    use std::io::{Read, Write};
    let Some(rest) = url.strip_prefix("http://") else {
        return;
    };
    let Some((host, path)) = rest.split_once('/') else {
        return;
    };
    let Ok(mut conn) = std::net::TcpStream::connect(host) else {
        return;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!(
        "DELETE /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if conn.write_all(request.as_bytes()).is_ok() {
        let _ = conn.read_to_end(&mut Vec::new());
    }
}
