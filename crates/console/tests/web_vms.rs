//! Virtual machines in the browser (real headless Chromium, English and Japanese, against the
//! real libvirt system daemon): from the containers page to the new-VM page, an image that
//! names a host file refused on the page with the name kept, a good image uploaded and
//! listed, a VM name refused and then a VM defined from the form, and the VM and the image
//! deleted after a confirmation. Another user reaches none of it. Screenshots at desktop
//! and phone width go to `<target>/screenshots/`.

mod common;

use common::browser::{page_token, shot, wait_for_url};
use common::vm::{qemu_img_create, spawn_vm_app};
use common::*;
use reqwest::header::COOKIE;
use reqwest::StatusCode;
use wm_testkit::browser::Browser;

const EN: &str = "en-US,en";
const JA: &str = "ja,en;q=0.5";

/// The status of the page the browser shows, as the server answered it.
async fn page_status(b: &Browser) -> u64 {
    b.execute("return performance.getEntriesByType('navigation')[0].responseStatus;")
        .await
        .as_u64()
        .expect("a navigation status")
}

#[tokio::test]
async fn a_student_uploads_an_image_and_defines_and_deletes_a_vm_in_the_browser() {
    let Some(app) = spawn_vm_app(None).await else {
        return;
    };
    let files = tempfile::tempdir().unwrap();
    let good = qemu_img_create(files.path(), &["-f", "qcow2"])
        .display()
        .to_string();
    let bad = qemu_img_create(
        files.path(),
        &["-f", "qcow2", "-F", "raw", "-b", "/etc/passwd"],
    )
    .display()
    .to_string();
    let (alice, _) = app.student().await;
    let (bob, _) = app.student().await;
    for (lang, accept, refused_word) in [
        ("en", EN, "This was not done"),
        ("ja", JA, "実行されませんでした"),
    ] {
        let b = Browser::start(accept).await;
        log_in(&b, &app, &alice, "password-123").await;
        b.goto(&app.url("/containers")).await;
        b.click("a[href='/vms/new']").await;
        wait_for_url(&b, "/vms/new").await;
        assert!(
            b.find_all("#vm-define").await.is_empty(),
            "{lang}: no image yet, no define form"
        );
        shot(&b, &format!("vm-new-empty-{lang}")).await;

        // An image that names a host file: refused on the page, the name kept.
        let image = format!("disk-{lang}");
        b.fill("#vm-image-name", &image).await;
        b.fill("#vm-image-file", &bad).await;
        b.click("#vm-upload button[type=submit]").await;
        let alert = b.text("#vm-upload-error").await;
        assert!(alert.contains(refused_word), "{lang}: {alert}");
        assert!(
            !alert.contains("internal error") && !alert.contains("内部エラー"),
            "{lang}: a refused image is the user's input, not our failure: {alert}"
        );
        assert_eq!(page_status(&b).await, 400, "{lang}");
        let name = b.find("#vm-image-name").await;
        assert_eq!(
            b.attr(&name, "value").await.as_deref(),
            Some(image.as_str())
        );
        shot(&b, &format!("vm-upload-refused-{lang}")).await;

        // A self-contained image: kept and listed, with the host it went to.
        b.fill("#vm-image-file", &good).await;
        b.click("#vm-upload button[type=submit]").await;
        wait_for_url(&b, "notice=vm-image-uploaded").await;
        let row = b.text(&format!("tr[data-vm-image='{image}']")).await;
        assert!(row.contains("qcow2"), "{lang}: {row}");

        // A name that is no DNS label: refused on the form, what was typed kept.
        b.fill("#vm-name", "Bad Name").await;
        b.fill("#vm-ports", "22").await;
        b.click("#vm-define button[type=submit]").await;
        b.find("#vm-name[aria-invalid=true]").await;
        assert_eq!(page_status(&b).await, 400, "{lang}");
        let ports = b.find("#vm-ports").await;
        assert_eq!(b.attr(&ports, "value").await.as_deref(), Some("22"));
        assert!(b.text("#vm-define-error").await.contains(refused_word));
        shot(&b, &format!("vm-define-refused-{lang}")).await;

        let short = format!("os-{lang}");
        let vm = format!("{alice}-{short}");
        b.fill("#vm-name", &short).await;
        b.click("#vm-define button[type=submit]").await;
        wait_for_url(&b, &format!("/vms/{vm}?notice=vm-defined")).await;
        assert!(b.text("p.notice").await.len() > 4, "{lang}: a notice");
        let facts = b.text("dl.facts").await;
        assert!(facts.contains(&image), "{lang}: {facts}");
        shot(&b, &format!("vm-defined-{lang}")).await;

        // Another user reaches nothing of it from their own session.
        let bob_cookie = format!("wm_session={}", app.login(&bob, "password-123").await);
        for path in [
            format!("/vms/{vm}"),
            format!("/vms/{vm}/delete"),
            format!("/vms/images/{image}/delete"),
        ] {
            let resp = app
                .client
                .get(app.url(&path))
                .header(COOKIE, &bob_cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
        }
        let csrf = page_token(&app, &bob_cookie, "/containers").await;
        let resp = app
            .client
            .post(app.url(&format!("/vms/{vm}/delete")))
            .header(COOKIE, &bob_cookie)
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);

        // The image is in use: deleting it is refused on the images' page, saying why.
        b.goto(&app.url(&format!("/vms/images/{image}/delete")))
            .await;
        b.click("form.card button.danger").await;
        b.find("#vm-images-error").await;
        assert_eq!(page_status(&b).await, 409, "{lang}");

        // Delete the VM, after a confirmation.
        b.goto(&app.url(&format!("/vms/{vm}"))).await;
        b.click(&format!("a[href='/vms/{vm}/delete']")).await;
        wait_for_url(&b, "/delete").await;
        shot(&b, &format!("vm-delete-confirm-{lang}")).await;
        b.click("form.card button.danger").await;
        wait_for_url(&b, "notice=vm-deleted").await;
        let domain = format!("{}.{alice}.{short}", app.instance);
        assert!(!wm_testkit::virsh(&["dominfo", &domain]).status.success());

        // Then the image.
        b.goto(&app.url("/vms/new")).await;
        b.click(&format!("a[href='/vms/images/{image}/delete']"))
            .await;
        b.click("form.card button.danger").await;
        wait_for_url(&b, "notice=vm-image-deleted").await;
        assert!(b
            .find_all(&format!("tr[data-vm-image='{image}']"))
            .await
            .is_empty());
        assert!(!app
            .storage
            .join("images")
            .join(&alice)
            .join(&image)
            .exists());
    }
}
