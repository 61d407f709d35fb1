//! What the console keeps on disk is its own, and what the engine says stays in the log
//! (issue 12, item 13): the data directory, database and SIF cache are private to the
//! console's account, CI runner tokens are stored sealed, and engine refusals reach
//! users as fixed sentences.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use wm_testkit::{docker, unique};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

fn chmod(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

/// The database, its `-wal` and `-shm` that exist.
fn db_files(data: &Path) -> Vec<std::path::PathBuf> {
    ["wm.db", "wm.db-wal", "wm.db-shm"]
        .iter()
        .map(|f| data.join(f))
        .filter(|p| p.exists())
        .collect()
}

#[tokio::test]
async fn the_data_directory_database_and_sif_cache_are_private() {
    let root = tempfile::tempdir().unwrap();
    chmod(root.path(), 0o755);
    let data = root.path().join("state");
    let mut config = test_config(&data);
    config.data_dir = data.clone();
    // Made by the console: private from the start.
    let holder = tempfile::tempdir().unwrap();
    let mut app = spawn_with(config.clone(), holder).await;
    let (_, t) = app.student().await;
    assert_eq!(app.get("/api/v1/me", &t).await.0, StatusCode::OK);
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("sif-cache")), 0o700);
    assert_eq!(mode(&data.join("secret.key")), 0o600);
    let files = db_files(&data);
    assert!(files.len() >= 2, "the database and its WAL: {files:?}");
    for f in &files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
    app.stop_server().await;

    // Loosened by someone: tightened at the next start.
    chmod(&data, 0o755);
    chmod(&data.join("sif-cache"), 0o777);
    let cached = data
        .join("sif-cache")
        .join(format!("{}.sif", "a".repeat(64)));
    std::fs::write(&cached, b"not really a SIF").unwrap();
    chmod(&cached, 0o644);
    chmod(&data.join("secret.key"), 0o644);
    for f in db_files(&data) {
        chmod(&f, 0o644);
    }
    let again = wm_console::build(config).await.expect("starts again");
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("sif-cache")), 0o700);
    assert_eq!(mode(&cached), 0o600);
    assert_eq!(mode(&data.join("secret.key")), 0o600);
    for f in db_files(&data) {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
    drop(again);
}

#[tokio::test]
async fn ci_runner_tokens_are_sealed_at_rest() {
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.ci_runner_image = test_image().await.to_string();
    let mut app = spawn_with(config, data).await;
    let (alice, token) = app.student().await;
    let secret = "glrt-sealed-secret-token-1234";
    let (status, ci) = app
        .call(
            Method::PUT,
            "/api/v1/ci",
            Some(&token),
            Some(json!({"gitlab_url": "https://gitlab.example.org/", "token": secret})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ci}");
    assert_eq!(ci["token_hint"], "…1234");

    // The runner got the token itself.
    let runner = app.runner_name(&alice);
    let out = docker(&["exec", &runner, "cat", "/etc/gitlab-runner/config.toml"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(secret));

    // The database holds it sealed: not in the column, nor anywhere in the files.
    let store = wm_store::Store::connect(&app.config.database_url())
        .await
        .unwrap();
    let row = store.ci_settings(&alice).await.unwrap().expect("a row");
    assert!(!row.runner_token.contains(secret), "stored in plain text");
    assert!(row.runner_token.starts_with("v1:"), "sealed");
    for f in db_files(&app.config.data_dir) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{} holds the token",
            f.display()
        );
    }

    // A token an older version stored in plain text is sealed at the next start, and
    // still opens.
    let mut old = row.clone();
    old.runner_token = "glrt-plain-old-token-5678".into();
    store.set_ci_settings(&old).await.unwrap();
    app.stop_server().await;
    let data = std::mem::replace(&mut app.data, tempfile::tempdir().unwrap());
    let restarted = spawn_with(app.config.clone(), data).await;
    let row = store.ci_settings(&alice).await.unwrap().unwrap();
    assert!(
        row.runner_token.starts_with("v1:"),
        "{:?}",
        row.runner_token
    );
    assert!(!row.runner_token.contains("glrt-plain-old"));
    let (_, ci) = restarted.get("/api/v1/ci", &token).await;
    assert_eq!(ci["token_hint"], "…5678");
}

#[tokio::test]
async fn engine_refusals_reach_users_as_fixed_sentences() {
    let app = spawn_app().await;
    test_image().await;
    let (_, token) = app.student().await;
    // An image whose command does not exist: the engine's start fails with
    // "OCI runtime create failed: ... no such file or directory".
    let tag = format!("{}:1", unique("wm-test-nocmd"));
    let _image = RemoveImages(vec![tag.clone()]);
    let dir = tempfile::tempdir().unwrap();
    wm_testkit::build_image(
        dir.path(),
        &tag,
        &format!(
            "FROM {}\nLABEL {}=1\nCMD [\"/no/such/program\"]\n",
            wm_testkit::TEST_IMAGE,
            wm_testkit::TEST_LABEL
        ),
    );

    let (status, body) = app
        .post(
            "/api/v1/containers",
            &token,
            json!({"name": "broken", "image": tag}),
        )
        .await;
    assert!(status.is_client_error(), "{status} {body}");
    assert_eq!(body["error"]["code"], "container_start_failed", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    for word in ["OCI", "runtime", "runc", "/no/such/program", "stat "] {
        assert!(!message.contains(word), "{word} in {message:?}");
    }
    assert!(message.contains("could not start"), "{message}");
}
