//! Virtual machines against the real libvirt system daemon and QEMU (software emulation
//! here): a small bootable disk is uploaded through the API, checked with qemu-img,
//! defined from a template, started, read on its serial console and reached on a
//! forwarded port, then destroyed and undefined. Another user finds none of it, and
//! images that would let a guest read host files are refused.
//!
//! Every domain a test defines is named `<instance>.<owner>.<name>` with the test's own
//! instance, under the test's own storage directory; [`VmApp`] removes them when dropped,
//! also when the test fails.

mod common;

use common::vm::spawn_vm_app;
use common::ws::{open, open_with, read_until_within, type_in};
use common::{eventually, TestApp};
use reqwest::header::COOKIE;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;

async fn upload(app: &TestApp, token: &str, name: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
    let form = reqwest::multipart::Form::new()
        .text("name", name.to_string())
        .part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name("disk"),
        );
    app.post_form("/api/v1/vm-images", token, form).await
}

/// Defines `name` from the template `tiny` and the caller's `image`.
async fn define(app: &TestApp, token: &str, name: &str, image: &str) -> (StatusCode, Value) {
    app.post(
        "/api/v1/vms",
        token,
        json!({"name": name, "template": "tiny", "image": image}),
    )
    .await
}

async fn text(app: &TestApp, path: &str, token: &str) -> (StatusCode, String) {
    let resp = app
        .client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

#[tokio::test]
async fn a_real_guest_boots_answers_and_goes_and_nobody_else_sees_it() {
    let Some(app) = spawn_vm_app(None).await else {
        return;
    };
    let disk = tokio::task::spawn_blocking(wm_testkit::vm_test_disk)
        .await
        .unwrap();
    let (alice, token) = app.student().await;
    let (_bob, other) = app.student().await;

    let (status, image) = upload(&app, &token, "busybox", std::fs::read(&disk).unwrap()).await;
    assert_eq!(status, StatusCode::CREATED, "{image}");
    assert_eq!(image["format"], "qcow2");
    assert_eq!(image["owner"], alice.as_str());
    assert!(
        image["virtual_size"].as_i64().unwrap() >= 32 << 20,
        "{image}"
    );

    let (status, templates) = app.get("/api/v1/vm-templates", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(templates[0]["name"], "tiny");
    assert_eq!(templates[0]["memory"], 192 << 20);

    let (status, vm) = app
        .post(
            "/api/v1/vms",
            &token,
            json!({"name": "os", "template": "tiny", "image": "busybox", "ports": [80]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{vm}");
    let name = format!("{alice}-os");
    assert_eq!(vm["name"], name.as_str());
    assert_eq!(vm["status"], "shutoff");
    assert_eq!(vm["vcpus"], 1);
    assert_eq!(vm["memory"], 192 << 20);
    let host_port = vm["ports"][0]["host"].as_u64().unwrap() as u16;
    assert_eq!(vm["ports"][0]["guest"], 80);
    let range = common::port_range(&app.config);
    assert!((range.first..=range.last).contains(&host_port), "{vm}");

    // The domain is ours, generated: our metadata, the template's sizes, its own disk.
    let (status, xml) = text(&app, &format!("/api/v1/vms/{name}/xml"), &token).await;
    assert_eq!(status, StatusCode::OK, "{xml}");
    assert!(xml.contains("<domain type='qemu'"), "{xml}");
    assert!(xml.contains(wm_libvirt::NS), "{xml}");
    assert!(!xml.contains("hostdev"), "{xml}");
    assert!(
        xml.contains(&format!(
            "{}/vms/{alice}/os/disk.qcow2",
            app.storage.display()
        )),
        "{xml}"
    );

    // Another user finds nothing of it, whatever they try.
    for path in [
        format!("/api/v1/vms/{name}"),
        format!("/api/v1/vms/{name}/xml"),
        format!("/api/v1/vms/{name}/console.log"),
    ] {
        let (status, body) = app.get(&path, &other).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    for path in [
        format!("/api/v1/vms/{name}/start"),
        format!("/api/v1/vms/{name}/destroy"),
    ] {
        let (status, body) = app.post(&path, &other, json!({})).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    let (status, _) = app.delete(&format!("/api/v1/vms/{name}"), &other).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.delete("/api/v1/vm-images/busybox", &other).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        open_with(
            &app,
            &format!("/api/v1/vms/{name}/console"),
            &[(AUTHORIZATION, format!("Bearer {other}"))]
        )
        .await
        .err(),
        Some(404)
    );
    let (_, theirs) = app.get("/api/v1/vms", &other).await;
    assert_eq!(theirs, json!([]));
    let (_, their_images) = app.get("/api/v1/vm-images", &other).await;
    assert_eq!(their_images, json!([]));
    // Nor may they define a VM from it.
    let (status, body) = define(&app, &other, "os", "busybox").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // Start: the guest prints its marker on the serial console, its port answers.
    let (status, vm) = app
        .post(&format!("/api/v1/vms/{name}/start"), &token, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{vm}");
    assert_eq!(vm["status"], "running");
    eventually(
        240,
        "the guest's marker in the serial transcript",
        || async {
            let (_, log) = text(&app, &format!("/api/v1/vms/{name}/console.log"), &token).await;
            log.contains("WM-GUEST-READY")
        },
    )
    .await;
    let page = format!("http://127.0.0.1:{host_port}/");
    eventually(60, "the forwarded port answers", || async {
        match reqwest::get(&page).await {
            Ok(r) => r
                .text()
                .await
                .is_ok_and(|t| t.contains("whalemountain test guest")),
            Err(_) => false,
        }
    })
    .await;

    // The serial console, both ways.
    let mut ws = open(&app, &format!("/api/v1/vms/{name}/console"), &token).await;
    type_in(&mut ws, "\necho wm-$((6*7))\n").await;
    read_until_within(&mut ws, "wm-42", 60).await;
    drop(ws);

    // The VM's page carries the browser terminal on the same session.
    let page = app
        .client
        .get(app.url(&format!("/vms/{name}")))
        .header(COOKIE, format!("wm_session={token}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&format!("data-terminal=\"/api/v1/vms/{name}/console\""))
            || page.contains("terminal-missing"),
        "{page}"
    );
    assert!(
        page.contains("WM-GUEST-READY"),
        "the transcript on the page: {page}"
    );

    // An image in use stays.
    let (status, body) = app.delete("/api/v1/vm-images/busybox", &token).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let (status, vm) = app
        .post(&format!("/api/v1/vms/{name}/destroy"), &token, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{vm}");
    assert_eq!(vm["status"], "shutoff");
    let (_, vm) = app.get(&format!("/api/v1/vms/{name}"), &token).await;
    assert_eq!(vm["status"], "shutoff");

    let (status, _) = app.delete(&format!("/api/v1/vms/{name}"), &token).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let domain = format!("{}.{alice}.os", app.instance);
    assert!(!wm_testkit::virsh(&["dominfo", &domain]).status.success());
    assert!(!app.storage.join("vms").join(&alice).join("os").exists());
    let (status, _) = app.get(&format!("/api/v1/vms/{name}"), &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.delete("/api/v1/vm-images/busybox", &token).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(!app
        .storage
        .join("images")
        .join(&alice)
        .join("busybox")
        .exists());
}

#[tokio::test]
async fn images_that_name_host_files_are_refused() {
    let Some(app) = spawn_vm_app(None).await else {
        return;
    };
    let (_, token) = app.student().await;
    let dir = tempfile::tempdir().unwrap();
    // A qcow2 whose backing file is a host file: the guest would read /etc/passwd.
    let backed = std::fs::read(common::vm::qemu_img_create(
        dir.path(),
        &["-f", "qcow2", "-F", "raw", "-b", "/etc/passwd"],
    ))
    .unwrap();
    let (status, body) = upload(&app, &token, "backed", backed).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_image");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("backing file"),
        "{body}"
    );
    // A qcow2 whose data lives in an external file.
    let data_file = dir.path().join("data.raw");
    let external = std::fs::read(common::vm::qemu_img_create(
        dir.path(),
        &[
            "-f",
            "qcow2",
            "-o",
            &format!("data_file={}", data_file.display()),
        ],
    ))
    .unwrap();
    let (status, body) = upload(&app, &token, "external", external).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("data file"),
        "{body}"
    );
    let (_, images) = app.get("/api/v1/vm-images", &token).await;
    assert_eq!(images, json!([]));
    assert!(
        !app.storage.join("images").exists()
            || std::fs::read_dir(app.storage.join("images"))
                .unwrap()
                .all(|d| std::fs::read_dir(d.unwrap().path())
                    .unwrap()
                    .next()
                    .is_none())
    );
}

#[tokio::test]
async fn bad_input_is_refused_with_a_reason_and_changes_nothing() {
    let Some(app) = spawn_vm_app(Some(4 << 20)).await else {
        return;
    };
    let (alice, token) = app.student().await;
    let dir = tempfile::tempdir().unwrap();
    let raw = vec![0u8; 1 << 20];

    let (status, body) = upload(&app, &token, "Bad_Name", raw.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let vmdk = std::fs::read(common::vm::qemu_img_create(dir.path(), &["-f", "vmdk"])).unwrap();
    let (status, body) = upload(&app, &token, "vmdk", vmdk).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("only qcow2 and raw"),
        "{body}"
    );
    let (status, body) = upload(&app, &token, "empty", Vec::new()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = upload(&app, &token, "words", b"only words, no disk".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_image", "{body}");
    let (status, body) = upload(&app, &token, "huge", vec![0u8; 5 << 20]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let (_, images) = app.get("/api/v1/vm-images", &token).await;
    assert_eq!(images, json!([]));

    // A raw image is accepted as raw; its name once.
    let (status, body) = upload(&app, &token, "plain", raw.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["format"], "raw");
    let (status, body) = upload(&app, &token, "plain", raw).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    for (req, want) in [
        (
            json!({"name": "Bad_Name", "template": "tiny", "image": "plain"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"name": "vm", "template": "huge", "image": "plain"}),
            StatusCode::NOT_FOUND,
        ),
        (
            json!({"name": "vm", "template": "tiny", "image": "nothing"}),
            StatusCode::NOT_FOUND,
        ),
        (
            json!({"name": "vm", "template": "tiny", "image": "plain", "ports": [0]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"name": "vm", "template": "tiny", "image": "plain", "ports": "http"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"name": "vm", "template": "tiny", "image": "plain", "xml": "<domain/>"}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (status, body) = app.post("/api/v1/vms", &token, req.clone()).await;
        assert_eq!(status, want, "{req}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    }
    let (_, vms) = app.get("/api/v1/vms", &token).await;
    assert_eq!(vms, json!([]));
    let prefix = format!("{}.{alice}.", app.instance);
    let listed = wm_testkit::virsh(&["list", "--all", "--name"]);
    assert!(!String::from_utf8_lossy(&listed.stdout).contains(&prefix));

    // Defined once; the name is then taken.
    let (status, body) = define(&app, &token, "vm", "plain").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = define(&app, &token, "vm", "plain").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    // Not running: no console.
    let status = open_with(
        &app,
        &format!("/api/v1/vms/{alice}-vm/console"),
        &[(AUTHORIZATION, format!("Bearer {token}"))],
    )
    .await
    .err();
    assert_eq!(status, Some(409));

    // The web console lists it beside the containers, in both languages, and shows its
    // page to its owner only.
    let page = |path: String, token: String, lang: &'static str| {
        let req = app
            .client
            .get(app.url(&path))
            .header(COOKIE, format!("wm_session={token}; wm_lang={lang}"));
        async move {
            let resp = req.send().await.unwrap();
            (resp.status(), resp.text().await.unwrap())
        }
    };
    let (status, en) = page("/containers".into(), token.clone(), "en").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        en.contains("Virtual machines") && en.contains(&format!("{alice}-vm")),
        "{en}"
    );
    assert!(en.contains("powered off"), "{en}");
    let (_, ja) = page("/containers".into(), token.clone(), "ja").await;
    assert!(ja.contains("仮想マシン") && ja.contains("電源オフ"), "{ja}");
    let (status, vm_page) = page(format!("/vms/{alice}-vm"), token.clone(), "en").await;
    assert_eq!(status, StatusCode::OK, "{vm_page}");
    assert!(
        vm_page.contains("Domain XML") && vm_page.contains("&lt;domain type="),
        "{vm_page}"
    );
    let (_, other) = app.student().await;
    let (status, _) = page(format!("/vms/{alice}-vm"), other.clone(), "ja").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, theirs) = page("/containers".into(), other, "en").await;
    assert!(!theirs.contains(&format!("{alice}-vm")));

    // A domain undefined behind the console's back shows as gone, and undefining it again
    // still removes the record.
    let domain = format!("{}.{alice}.vm", app.instance);
    assert!(wm_testkit::virsh(&["undefine", &domain]).status.success());
    let (_, vm) = app.get(&format!("/api/v1/vms/{alice}-vm"), &token).await;
    assert_eq!(vm["status"], "gone", "{vm}");
    let (status, _) = app.delete(&format!("/api/v1/vms/{alice}-vm"), &token).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, vms) = app.get("/api/v1/vms", &token).await;
    assert_eq!(vms, json!([]));
    // Every change is in the audit log.
    let (_, audit) = app.get("/api/v1/admin/audit", &app.admin).await;
    let audit = audit.to_string();
    assert!(
        audit.contains(r#""action":"vm.create""#)
            && audit.contains(&format!(r#""action":"vm.delete","actor":"{alice}""#))
            && audit.contains(&format!(r#""target":"{alice}-vm""#)),
        "{audit}"
    );
}

#[tokio::test]
async fn quotas_count_vcpus_memory_and_disk() {
    let Some(app) = spawn_vm_app(None).await else {
        return;
    };
    let (alice, token) = app.student().await;
    let quota = format!("/api/v1/admin/users/{alice}/quota");
    let put = |body: Value| app.call(reqwest::Method::PUT, &quota, Some(&app.admin), Some(body));
    // Disk: an image past the storage quota is refused, and nothing is kept.
    let (status, q) = put(json!({"storage": 1 << 20})).await;
    assert_eq!(status, StatusCode::OK, "{q}");
    let (status, body) = upload(&app, &token, "big", vec![0u8; 2 << 20]).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "quota_exceeded");
    let (_, images) = app.get("/api/v1/vm-images", &token).await;
    assert_eq!(images, json!([]));
    let (status, q) = put(json!({"storage": 1 << 30, "memory": 128 << 20})).await;
    assert_eq!(status, StatusCode::OK, "{q}");
    let (status, body) = upload(&app, &token, "small", vec![0u8; 1 << 20]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, me) = app.get("/api/v1/me", &token).await;
    assert!(me["usage"]["storage"].as_i64().unwrap() >= 1 << 20, "{me}");
    let (status, body) = define(&app, &token, "vm", "small").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Memory (and vCPUs): a VM of 192 MiB does not start under a quota of 128 MiB.
    let (status, body) = app
        .post(&format!("/api/v1/vms/{alice}-vm/start"), &token, json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "quota_exceeded");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("memory"),
        "{body}"
    );
    let (_, vm) = app.get(&format!("/api/v1/vms/{alice}-vm"), &token).await;
    assert_eq!(vm["status"], "shutoff");
    let (_, me) = app.get("/api/v1/me", &token).await;
    assert_eq!(me["usage"]["memory"], 0, "{me}");
}
