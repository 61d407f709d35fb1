//! Scanning against the real engine, a real local registry and the real ClamAV (with a
//! database of one signature, for the EICAR test file: see `common::eicar_database`):
//! pulled and built images are scanned before anyone may start them, a flagged image is
//! quarantined (listed with its finding, not startable, not a build's base, not
//! exported, deletable) until an administrator releases it, a scan that cannot run holds
//! the image back too, and the scanner is a command a site may replace.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Instant;
use wm_console::config::Scanner;
use wm_testkit::{build_image, unique, Registry};

async fn pull(app: &TestApp, token: &str, image: &str) -> (StatusCode, Vec<Value>) {
    let resp = app
        .client
        .post(app.url("/api/v1/images/pull"))
        .bearer_auth(token)
        .json(&json!({"image": image}))
        .send()
        .await
        .unwrap();
    ndjson(resp).await
}

async fn listed(app: &TestApp, token: &str, reference: &str) -> Value {
    let (status, list) = app.get("/api/v1/images", token).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list.as_array()
        .unwrap()
        .iter()
        .find(|i| i["ref"] == reference)
        .unwrap_or_else(|| panic!("{reference} is not listed: {list}"))
        .clone()
}

/// The scan lines of a pull or build: "scanning with ...", then "scan: ...".
fn scan_lines(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l["status"] == "scanning")
        .map(|l| l["detail"].as_str().unwrap().to_string())
        .collect()
}

/// A local image FROM the test image with the EICAR test file at `/eicar.txt`, pushed to
/// `registry`; answers the reference to pull.
async fn pushed_eicar_image(registry: &Registry) -> String {
    let base = test_image().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("eicar.txt"), EICAR).unwrap();
    let local = format!("wm-test-eicar-{}:1", unique(""));
    build_image(
        dir.path(),
        &local,
        &format!("FROM {base}\nCOPY eicar.txt /eicar.txt\nLABEL whalemountain.build={local}\n"),
    );
    let _local = RemoveImages(vec![local.clone()]);
    registry.push(&local, &format!("course/eicar-{}:1", unique("")))
}

fn registry_config(registry: &Registry, data: &std::path::Path) -> wm_console::Config {
    let mut config = test_config(data);
    config.registries_allowed = Some(format!("{} docker.io", registry.host()));
    // The registry is on loopback: allowed by name, as an administrator would.
    config.docker.egress_allowed = vec![registry.host()];
    config
}

#[tokio::test]
async fn a_pulled_image_with_a_virus_is_quarantined_until_an_administrator_releases_it() {
    let registry = Registry::start();
    let data = tempfile::tempdir().unwrap();
    let app = spawn_with(registry_config(&registry, data.path()), data).await;
    let (_, token) = app.student().await;
    let infected = pushed_eicar_image(&registry).await;
    let clean = registry.push(
        test_image().await,
        &format!("course/clean-{}:1", unique("")),
    );
    let _cleanup = RemoveImages(vec![infected.clone(), clean.clone()]);

    // A clean image: scanned, the time in the progress, and it starts.
    let (status, lines) = pull(&app, &token, &clean).await;
    assert_eq!(status, StatusCode::OK);
    let said = scan_lines(&lines);
    assert_eq!(said[0], "scanning with clamav…", "{lines:?}");
    assert!(
        said[1].starts_with("scan: clean in ") && said[1].ends_with(" s"),
        "{lines:?}"
    );
    let last = lines.last().unwrap();
    assert_eq!(last["status"], "done", "{lines:?}");
    assert_eq!(last["image"]["scan"]["status"], "clean", "{last}");
    assert_eq!(last["image"]["scan"]["scanner"], "clamav");
    assert!(last["image"]["scan"]["seconds"].as_f64().unwrap() > 0.0);
    app.create(&token, json!({"name": "clean", "image": clean}))
        .await;

    // The infected one: flagged, with the finding, in the stream and in the list.
    let (status, lines) = pull(&app, &token, &infected).await;
    assert_eq!(status, StatusCode::OK);
    let said = scan_lines(&lines);
    assert!(
        said[1].starts_with("scan: flagged in ")
            && said[1].contains("/eicar.txt: Eicar-Test-Signature"),
        "{lines:?}"
    );
    let last = lines.last().unwrap();
    assert_eq!(
        last["status"], "done",
        "the pull itself succeeded: {lines:?}"
    );
    let image = listed(&app, &token, &infected).await;
    assert_eq!(image["scan"]["status"], "flagged", "{image}");
    let findings = image["scan"]["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{image}");
    assert!(
        findings[0]
            .as_str()
            .unwrap()
            .starts_with("/eicar.txt: Eicar-Test-Signature"),
        "the finding names the file in the image, not where it was unpacked: {image}"
    );
    assert!(image["scan"]["released_by"].is_null());

    // Not startable, by anyone; not a build's base; not exported.
    for who in [&token, &app.admin] {
        let (status, body) = app
            .post(
                "/api/v1/containers",
                who,
                json!({"name": unique("q"), "image": infected}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["error"]["code"], "image_quarantined", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("quarantined") && message.contains("Eicar-Test-Signature"),
            "{message}"
        );
    }
    let (status, lines) = app
        .build(&token, "onit:1", &format!("FROM {infected}\nLABEL x=1\n"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{lines:?}");
    assert_eq!(lines[0]["error"]["code"], "image_quarantined");
    let resp = app
        .client
        .get(app.url(&format!(
            "/api/v1/images/{}/export?format=docker-archive",
            encode_ref(&infected)
        )))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CONFLICT);

    // The images page shows the finding, in either language, and offers administrators
    // the release.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = post_login_form(&app, &client, "admin", ADMIN_PASSWORD).await;
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    for (lang, word) in [("en", "quarantined"), ("ja", "隔離中")] {
        let html = client
            .get(app.url("/images"))
            .header(reqwest::header::COOKIE, &cookie)
            .header(reqwest::header::ACCEPT_LANGUAGE, lang)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains(word), "{lang}: {html}");
        assert!(html.contains("/eicar.txt: Eicar-Test-Signature"), "{html}");
        assert!(html.contains("action=\"/images/release\""), "{html}");
    }

    // Only an administrator releases it; then it starts.
    let release = format!("/api/v1/admin/images/{}/release", encode_ref(&infected));
    let (status, body) = app.post(&release, &token, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, released) = app.post(&release, &app.admin, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{released}");
    assert_eq!(released["scan"]["status"], "flagged", "{released}");
    assert_eq!(released["scan"]["released_by"], "admin", "{released}");
    assert!(released["scan"]["released_at"].is_string());
    app.create(&token, json!({"name": "released", "image": infected}))
        .await;
    let (_, log) = app.get("/api/v1/admin/audit?limit=100", &app.admin).await;
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "image.release" && e["target"] == infected.as_str()),
        "{log}"
    );

    // The page shows the finding; the metrics count the scans.
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("wm_image_scans_total{result=\"flagged\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("wm_image_scans_total{result=\"clean\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("wm_image_scan_duration_seconds_count 2"));
}

#[tokio::test]
async fn a_build_that_writes_a_virus_is_quarantined_and_its_owner_may_delete_it() {
    let app = spawn_app().await;
    let (owner, token) = app.student().await;
    let base = test_image().await;
    let reference = format!("wm/{owner}/eicar:1");
    let _cleanup = RemoveImages(vec![reference.clone()]);
    let (status, lines) = app
        .build(
            &token,
            "eicar:1",
            &format!("FROM {base}\nRUN printf '%s' '{EICAR}' > /home.txt\n"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let last = lines.last().unwrap();
    assert_eq!(last["status"], "done", "{lines:?}");
    assert_eq!(last["image"]["scan"]["status"], "flagged", "{last}");
    assert!(
        scan_lines(&lines)
            .iter()
            .any(|l| l.contains("/home.txt: Eicar-Test-Signature")),
        "{lines:?}"
    );
    let (status, body) = app
        .post(
            "/api/v1/containers",
            &token,
            json!({"name": "web", "image": reference}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "image_quarantined");

    let (status, _) = app
        .delete(
            &format!("/api/v1/images/{}", encode_ref(&reference)),
            &token,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, list) = app.get("/api/v1/images", &token).await;
    assert!(!list.to_string().contains(&reference), "{list}");
}

#[tokio::test]
async fn an_image_whose_scan_cannot_run_is_not_startable() {
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    // ClamAV without signatures would find nothing and say clean.
    let empty = data.path().join("no-signatures");
    std::fs::create_dir_all(&empty).unwrap();
    config.scan.clamav_database = empty;
    let app = spawn_with(config, data).await;
    let (owner, token) = app.student().await;
    let reference = format!("wm/{owner}/plain:1");
    let _cleanup = RemoveImages(vec![reference.clone()]);
    let (status, lines) = app
        .build(
            &token,
            "plain:1",
            &format!("FROM {}\nLABEL x=1\n", test_image().await),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let scan = &lines.last().unwrap()["image"]["scan"];
    assert_eq!(scan["status"], "error", "{lines:?}");
    assert!(
        scan["findings"][0]
            .as_str()
            .unwrap()
            .contains("has no signatures"),
        "{scan}"
    );
    let (status, body) = app
        .post(
            "/api/v1/containers",
            &token,
            json!({"name": "web", "image": reference}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "image_quarantined");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("could not be scanned"),
        "{body}"
    );
    // The test image itself never came through a pull or build here: it has no scan and
    // stays usable.
    let (_, list) = app.get("/api/v1/images", &app.admin).await;
    let own = list
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["ref"] == wm_testkit::TEST_IMAGE)
        .cloned()
        .unwrap_or_default();
    assert!(own["scan"].is_null(), "{own}");
}

#[tokio::test]
async fn the_scanner_is_a_command_that_takes_a_directory_or_a_tar() {
    let registry = Registry::start();
    let infected = pushed_eicar_image(&registry).await;
    let _cleanup = RemoveImages(vec![infected.clone()]);
    // Two site scanners in shell: one looks into the unpacked directory, one lists the tar.
    let by_dir = [
        "sh",
        "-c",
        r#"if grep -rl EICAR-STANDARD "$1"; then exit 1; fi; exit 0"#,
        "sh",
        "{dir}",
    ];
    let by_tar = [
        "sh",
        "-c",
        r#"if tar -tf "$1" | grep -x eicar.txt; then exit 1; fi; exit 0"#,
        "sh",
        "{tar}",
    ];
    for (words, finding) in [(by_dir, "/eicar.txt"), (by_tar, "eicar.txt")] {
        let data = tempfile::tempdir().unwrap();
        let mut config = registry_config(&registry, data.path());
        config.scan.command = Scanner::Command(words.map(String::from).to_vec());
        let app = spawn_with(config, data).await;
        let (_, token) = app.student().await;
        let (status, lines) = pull(&app, &token, &infected).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(scan_lines(&lines)[0], "scanning with sh…", "{lines:?}");
        let scan = &lines.last().unwrap()["image"]["scan"];
        assert_eq!(scan["status"], "flagged", "{lines:?}");
        assert_eq!(scan["scanner"], "sh");
        assert_eq!(scan["findings"], json!([finding]), "{scan}");
    }
}

/// A copy of the test image (busybox and a page) that shares no layer with any other
/// image, with `extra` bytes of random data besides: each pull of it downloads everything.
fn unshared_image(tag: &str, extra: usize) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("www")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    std::fs::write(root.join("www/index.html"), unique("page")).unwrap();
    let mut data = Vec::with_capacity(extra);
    while data.len() < extra {
        data.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    std::fs::write(root.join("www/data.bin"), &data[..extra]).unwrap();
    build_image(
        dir.path(),
        tag,
        &format!(
            "FROM scratch\nCOPY rootfs /\nLABEL {}=1\nCMD [\"/bin/busybox\", \"true\"]\n",
            wm_testkit::TEST_LABEL
        ),
    );
}

/// Not a timed assertion: prints what scanning adds to a pull (with the one-signature
/// database), scanning off against on, for a copy of the test image and for one with 64 MiB
/// more. Each pull downloads every layer. Run with `--nocapture` to read it.
#[tokio::test]
async fn time_a_scan_adds_to_a_pull() {
    let registry = Registry::start();
    let mut report = Vec::new();
    for (name, extra) in [("test image", 0usize), ("test image + 64 MiB", 64 << 20)] {
        let local = format!("wm-test-timed-{}:1", unique(""));
        unshared_image(&local, extra);
        let remote = registry.push(&local, &format!("course/timed-{}:1", unique("")));
        wm_testkit::docker(&["rmi", "-f", &local]);
        let _cleanup = RemoveImages(vec![remote.clone(), local]);
        for (label, scanner) in [("off", Scanner::Off), ("clamav", Scanner::ClamAv)] {
            let mut pulls = Vec::new();
            let mut scans = Vec::new();
            for _ in 0..3 {
                let data = tempfile::tempdir().unwrap();
                let mut config = registry_config(&registry, data.path());
                config.scan.command = scanner.clone();
                let app = spawn_with(config, data).await;
                let (_, token) = app.student().await;
                wm_testkit::docker(&["rmi", "-f", &remote]);
                let started = Instant::now();
                let (status, lines) = pull(&app, &token, &remote).await;
                pulls.push(started.elapsed().as_secs_f64());
                assert_eq!(status, StatusCode::OK);
                let last = lines.last().unwrap();
                assert_eq!(last["status"], "done", "{lines:?}");
                if let Some(s) = last["image"]["scan"]["seconds"].as_f64() {
                    assert_eq!(last["image"]["scan"]["status"], "clean");
                    scans.push(s);
                }
            }
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            let scan = if scans.is_empty() {
                String::new()
            } else {
                format!(", of which scan {:.2} s", mean(&scans))
            };
            report.push(format!(
                "{name}, scanning {label}: pull {:.2} s (runs {pulls:.2?}){scan}",
                mean(&pulls)
            ));
        }
    }
    println!("{}", report.join("\n"));
}

#[tokio::test]
async fn a_scan_cut_short_by_a_restart_holds_its_image_back() {
    // The store as a console stopped mid-scan left it: the test image `pending`.
    let data = tempfile::tempdir().unwrap();
    let config = test_config(data.path());
    let image = test_image().await;
    let id = wm_testkit::inspect("image", image).unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let store = wm_store::Store::connect(&config.database_url())
        .await
        .unwrap();
    store
        .set_image_scan(&wm_store::ImageScan {
            image_id: id,
            status: wm_store::ScanStatus::Pending,
            findings: Vec::new(),
            scanner: "clamav".into(),
            duration_ms: 0,
            scanned_at: 1,
            released_by: None,
            released_at: None,
        })
        .await
        .unwrap();
    store.close().await;

    let app = spawn_with(config, data).await;
    let (_, token) = app.student().await;
    let (status, body) = app
        .post(
            "/api/v1/containers",
            &token,
            json!({"name": "web", "image": image}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "image_quarantined", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("interrupted by a restart"),
        "{body}"
    );
}

#[tokio::test]
async fn an_image_being_scanned_cannot_be_started_yet() {
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    // A scanner that takes its time, then finds nothing.
    config.scan.command = Scanner::Command(
        ["sh", "-c", "sleep 5", "sh", "{dir}"]
            .map(String::from)
            .to_vec(),
    );
    let app = std::sync::Arc::new(spawn_with(config, data).await);
    let (owner, token) = app.student().await;
    let reference = format!("wm/{owner}/slow:1");
    let _cleanup = RemoveImages(vec![reference.clone()]);
    let building = {
        let (app, token) = (app.clone(), token.clone());
        tokio::spawn(async move {
            app.build(
                &token,
                "slow:1",
                &format!("FROM {}\nLABEL slow=1\n", test_image().await),
            )
            .await
        })
    };
    eventually(60, "the image is being scanned", || {
        let (app, token, reference) = (app.clone(), token.clone(), reference.clone());
        async move {
            let (_, list) = app.get("/api/v1/images", &token).await;
            list.as_array()
                .unwrap()
                .iter()
                .any(|i| i["ref"] == reference.as_str() && i["scan"]["status"] == "pending")
        }
    })
    .await;
    let (status, body) = app
        .post(
            "/api/v1/containers",
            &token,
            json!({"name": "early", "image": reference}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "image_scan_pending", "{body}");
    let (status, lines) = building.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(lines.last().unwrap()["image"]["scan"]["status"], "clean");
    app.create(&token, json!({"name": "later", "image": reference}))
        .await;
}
