//! What the browser tests share: screenshots at desktop and phone width, waits, and the
//! CSRF token a page's forms carry.

use super::TestApp;
use reqwest::header::COOKIE;
use std::path::PathBuf;
use wm_testkit::browser::Browser;

/// Where the screenshots go: `<target>/screenshots/`.
pub fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("screenshots")
}

/// A screenshot at desktop width and one at 375 px, where the page must not scroll
/// sideways.
pub async fn shot(b: &Browser, name: &str) {
    let dir = screenshots();
    b.viewport(1280, 900, false).await;
    b.screenshot(&dir.join(format!("{name}-desktop.png"))).await;
    b.viewport(375, 812, true).await;
    assert!(
        !b.scrolls_sideways().await,
        "{name} scrolls sideways at 375 px"
    );
    b.screenshot(&dir.join(format!("{name}-375.png"))).await;
    b.viewport(1280, 900, false).await;
}

/// Waits until the browser has followed a post's redirect to a URL with `part`.
pub async fn wait_for_url(b: &Browser, part: &str) {
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

/// The session cookie and the CSRF token of a page, as the browser would hold them.
pub async fn page_token(app: &TestApp, cookie: &str, path: &str) -> String {
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

/// Waits until the progress box of a form ends; answers its outcome line.
pub async fn outcome(b: &Browser, id: &str) -> String {
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
