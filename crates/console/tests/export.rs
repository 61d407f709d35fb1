//! Image downloads for HPC nodes: docker-archive and SIF, checked with the reference tools.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::process::Command;
use wm_testkit::{build_labelled_image, unique};

async fn download(
    app: &TestApp,
    token: &str,
    reference: &str,
    format: &str,
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let resp = app
        .client
        .get(app.url(&format!(
            "/api/v1/images/{}/export?format={format}",
            encode_ref(reference)
        )))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    (status, headers, resp.bytes().await.unwrap().to_vec())
}

fn siftool_list(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("image.sif");
    std::fs::write(&file, bytes).unwrap();
    let out = Command::new("siftool")
        .arg("list")
        .arg(&file)
        .output()
        .expect("siftool runs (install siftool)");
    assert!(
        out.status.success(),
        "siftool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn conversions(app: &TestApp) -> String {
    let (_, metrics) = app.call(Method::GET, "/metrics", None, None).await;
    metrics
        .as_str()
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("wm_sif_conversions_total"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn docker_archive_download() {
    let app = spawn_app().await;
    let (_, token) = app.student().await;
    let image = test_image().await;
    let (status, headers, bytes) = download(&app, &token, image, "docker-archive").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-disposition"]
        .to_str()
        .unwrap()
        .contains("wm-test-busybox_1.tar"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("image.tar");
    std::fs::write(&file, &bytes).unwrap();
    let out = Command::new("tar").arg("-tf").arg(&file).output().unwrap();
    let listing = String::from_utf8(out.stdout).unwrap();
    assert!(listing.lines().any(|l| l == "manifest.json"), "{listing}");
    let (status, _, body) = download(&app, &token, image, "zip").await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "{}",
        String::from_utf8_lossy(&body)
    );
}

#[tokio::test]
async fn sif_is_converted_once_and_served_from_the_cache() {
    let app = spawn_app().await;
    let (_, token) = app.student().await;
    // An image of this test's own, so no other test's conversion counts.
    let tag = format!("wm-test-sif-{}:1", unique(""));
    let _cleanup = RemoveImages(vec![tag.clone()]);
    build_labelled_image(&tag, &[("course", "hpc")]);
    app.call(
        Method::POST,
        "/api/v1/admin/reconcile",
        Some(&app.admin),
        None,
    )
    .await;

    // Two at once: one conversion.
    let (a, b) = tokio::join!(
        download(&app, &token, &tag, "sif"),
        download(&app, &token, &tag, "sif")
    );
    assert_eq!(a.0, StatusCode::OK, "{}", String::from_utf8_lossy(&a.2));
    assert_eq!(b.0, StatusCode::OK);
    assert_eq!(a.2, b.2, "the same file");
    assert!(a.2.starts_with(b"#!/usr/bin/env run-singularity"));
    let listing = siftool_list(&a.2);
    assert!(listing.contains("Squashfs"), "{listing}");
    assert_eq!(
        conversions(&app).await,
        "wm_sif_conversions_total{outcome=\"ok\"} 1"
    );

    // With progress: served from the cache, no new conversion.
    let resp = app
        .client
        .post(app.url(&format!("/api/v1/images/{}/sif", encode_ref(&tag))))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["status"], "done", "{text}");
    assert_eq!(last["size"], a.2.len());
    assert_eq!(
        conversions(&app).await,
        "wm_sif_conversions_total{outcome=\"ok\"} 1"
    );
    let cache = app.data.path().join("sif-cache");
    let leftovers: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".sif"))
        .collect();
    assert!(leftovers.is_empty(), "nothing partial stays: {leftovers:?}");
    // Private to the console's account, from the start (issue 12, item 13).
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&cache), 0o700);
    for e in std::fs::read_dir(&cache).unwrap() {
        let p = e.unwrap().path();
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
}

#[tokio::test]
async fn progress_lines_for_a_new_conversion() {
    let app = spawn_app().await;
    let (_, token) = app.student().await;
    let tag = format!("wm-test-sif-{}:1", unique(""));
    let _cleanup = RemoveImages(vec![tag.clone()]);
    build_labelled_image(&tag, &[]);
    app.call(
        Method::POST,
        "/api/v1/admin/reconcile",
        Some(&app.admin),
        None,
    )
    .await;
    let resp = app
        .client
        .post(app.url(&format!("/api/v1/images/{}/sif", encode_ref(&tag))))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let text = resp.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for stage in ["reading", "scanning", "squashing", "writing"] {
        assert!(
            lines.iter().any(|l| l["stage"] == stage),
            "{stage} in {text}"
        );
    }
    let last = lines.last().unwrap();
    assert_eq!(last["status"], "done");
    let resp = app
        .client
        .get(app.url(last["download"].as_str().unwrap()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.bytes().await.unwrap().len() as u64,
        last["size"].as_u64().unwrap()
    );
}

#[tokio::test]
async fn private_images_export_only_for_their_owner_or_when_shared() {
    let app = spawn_app().await;
    let (alice, alice_t) = app.student().await;
    let (_, bob_t) = app.student().await;
    let private = format!("wm/{alice}/secret:1");
    let _cleanup = RemoveImages(vec![private.clone()]);
    build_labelled_image(
        &private,
        &[("wm.owner", &alice), ("wm.instance", &app.instance)],
    );
    app.call(
        Method::POST,
        "/api/v1/admin/reconcile",
        Some(&app.admin),
        None,
    )
    .await;
    for format in ["docker-archive", "sif"] {
        let (status, _, _) = download(&app, &bob_t, &private, format).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{format}");
    }
    let (status, _, _) = download(&app, &alice_t, &private, "docker-archive").await;
    assert_eq!(status, StatusCode::OK);
    app.call(
        Method::PATCH,
        &format!("/api/v1/images/{}", encode_ref(&private)),
        Some(&alice_t),
        Some(json!({"shared": true})),
    )
    .await;
    let (status, _, _) = download(&app, &bob_t, &private, "docker-archive").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_cache_evicts_the_oldest_beyond_its_cap() {
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.sif_cache_max_bytes = 1;
    let app = spawn_with(config, data).await;
    let (_, token) = app.student().await;
    let (first, second) = (
        format!("wm-test-sif-{}:1", unique("")),
        format!("wm-test-sif-{}:1", unique("")),
    );
    let _cleanup = RemoveImages(vec![first.clone(), second.clone()]);
    build_labelled_image(&first, &[("which", "first")]);
    build_labelled_image(&second, &[("which", "second")]);
    app.call(
        Method::POST,
        "/api/v1/admin/reconcile",
        Some(&app.admin),
        None,
    )
    .await;
    let cache = app.data.path().join("sif-cache");
    let count = || {
        std::fs::read_dir(&cache)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "sif")
            })
            .count()
    };
    assert_eq!(
        download(&app, &token, &first, "sif").await.0,
        StatusCode::OK
    );
    assert_eq!(count(), 1);
    assert_eq!(
        download(&app, &token, &second, "sif").await.0,
        StatusCode::OK
    );
    assert_eq!(count(), 1, "the older one was evicted");
    assert_eq!(
        download(&app, &token, &first, "sif").await.0,
        StatusCode::OK
    );
    assert_eq!(
        conversions(&app).await,
        "wm_sif_conversions_total{outcome=\"ok\"} 3"
    );
}
