//! Helpers of the browser tests: screenshots at desktop and phone width, and waiting for
//! a post's redirect.

use std::path::PathBuf;
use wm_testkit::browser::Browser;

/// Where screenshots go: `<target>/screenshots/`.
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
