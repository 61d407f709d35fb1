//! Courses in a real headless Chromium: a teacher makes a join code and a student joins
//! with it (a wrong code first); the teacher names an image for the course and the
//! student finds it, named, at the top of the create form; the teacher opens a member's
//! container read only (no command, terminal or file forms) and is told a container
//! outside the course does not exist. Screenshots of the pages go to
//! `<target>/screenshots/`.

mod common;

use common::browser::*;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use wm_testkit::browser::Browser;

#[tokio::test]
async fn in_the_browser_students_join_by_code_and_a_teacher_looks_without_touching() {
    let app = spawn_app().await;
    let (teacher, tt) = app.user("tc", "teacher").await;
    let (student, st) = app.student().await;
    let (outsider, ot) = app.student().await;
    let image = test_image().await;
    let (status, course) = app
        .post(
            "/api/v1/courses",
            &tt,
            json!({"name": "演習B", "term": "2026 前期"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{course}");
    let id = course["id"].as_str().unwrap().to_string();
    let course_url = app.url(&format!("/courses/{id}"));
    let dockerfile = format!("FROM {image}\nLABEL course=1\n");
    let (status, _) = app.build(&tt, "ex:3", &dockerfile).await;
    assert_eq!(status, StatusCode::OK);
    let reference = format!("wm/{teacher}/ex:3");
    let (status, body) = app
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/images/{}", encode_ref(&reference)),
            Some(&tt),
            Some(json!({"courses": [id]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let lab = app
        .create(&st, json!({"name": "lab", "image": image, "ports": [80]}))
        .await["name"]
        .as_str()
        .unwrap()
        .to_string();
    let theirs = app
        .create(&ot, json!({"name": "lab", "image": image}))
        .await["name"]
        .as_str()
        .unwrap()
        .to_string();
    let b = Browser::start("ja,en;q=0.5").await;

    // The teacher makes a join code and names the image for the course.
    log_in(&b, &app, &teacher, "password-123").await;
    b.goto(&course_url).await;
    page_has(&b, "参加コードはありません").await;
    b.click("form[action$='/join-code'] button[type=submit]")
        .await;
    page_has(&b, "参加コードを変更しました").await;
    let code = b.text("#course-join-code").await;
    assert_eq!(code.len(), 11, "{code}");
    let row = format!("tr[data-image='{reference}']");
    b.fill(&format!("{row} input[name=title]"), "演習3").await;
    b.fill(&format!("{row} input[name=note]"), "演習3ではこれを使う")
        .await;
    b.click(&format!("{row} button[type=submit]")).await;
    page_has(&b, "保存しました").await;
    shot(&b, "course-teacher").await;
    log_out(&b).await;

    // The student: a wrong code changes nothing; the right one enrols them.
    log_in(&b, &app, &student, "password-123").await;
    b.goto(&app.url("/courses")).await;
    page_has(&b, "コースはまだありません").await;
    b.fill("#join-code", "WRONG-CODE2").await;
    b.click("form[action='/courses/join'] button[type=submit]")
        .await;
    page_has(&b, "参加コードが正しくありません").await;
    let (_, c) = app.get(&format!("/api/v1/courses/{id}"), &tt).await;
    assert_eq!(c["members"], json!([]));
    b.goto(&app.url("/courses")).await;
    b.fill("#join-code", &code.to_lowercase()).await;
    b.click("form[action='/courses/join'] button[type=submit]")
        .await;
    page_has(&b, "コースに参加しました").await;
    page_has(&b, "演習3ではこれを使う").await;
    assert!(
        !b.source().await.contains(&code),
        "a member is not shown the code"
    );
    // The create form: the course's image first, with its name and note.
    b.goto(&app.url("/containers/new")).await;
    let listed = b.text("#course-image-list").await;
    assert!(
        listed.contains("演習3") && listed.contains(&reference),
        "{listed}"
    );
    let first = b.find("#image-list option").await;
    assert_eq!(
        b.attr(&first, "value").await.as_deref(),
        Some(reference.as_str())
    );
    assert!(b
        .attr(&first, "label")
        .await
        .unwrap_or_default()
        .contains("演習3"));
    shot(&b, "course-new-container").await;
    log_out(&b).await;

    // The teacher's table shows the member's container with its usage; its view is read
    // only.
    log_in(&b, &app, &teacher, "password-123").await;
    b.goto(&course_url).await;
    let cells = b.text(&format!("tr[data-container='{lab}']")).await;
    assert!(cells.contains(image) && cells.contains("MiB"), "{cells}");
    b.click(&format!("tr[data-container='{lab}'] a[href$='/{lab}']"))
        .await;
    page_has(&b, "閲覧専用").await;
    // Measured: an amount in use, not a dash, out of the container's limit.
    let facts = b.text("#usage-memory").await;
    assert!(
        !facts.starts_with('—') && facts.contains(" / 64 MiB"),
        "{facts}"
    );
    b.find("#logs-h").await;
    let source = b.source().await;
    for forbidden in ["/exec", "/files", "/terminal", "/delete", "/expiry"] {
        assert!(
            !source.contains(&format!("{lab}{forbidden}")),
            "{forbidden} on the read-only page"
        );
    }
    shot(&b, "course-member-container").await;

    // Outside the course: the same page as a container that does not exist.
    b.goto(&app.url(&format!("/courses/{id}/containers/{theirs}")))
        .await;
    page_has(&b, "見つかりません").await;
    let outside = b.source().await;
    b.goto(&app.url(&format!("/courses/{id}/containers/{outsider}-nothing")))
        .await;
    page_has(&b, "見つかりません").await;
    assert!(!outside.contains(image), "nothing of the container shows");
    let (_, joins) = app
        .get(
            &format!("/api/v1/admin/audit?actor={student}&action=course.join"),
            &app.admin,
        )
        .await;
    let results: Vec<(Value, Value)> = joins
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["result"].clone(), e["target"].clone()))
        .collect();
    assert!(results.contains(&(json!(303), json!(id))), "{joins}");
    assert!(results.iter().any(|(r, _)| r == 400), "{joins}");
    let (_, log) = app
        .get(
            &format!("/api/v1/admin/audit?actor={teacher}&action=container.view"),
            &app.admin,
        )
        .await;
    let entries = log.as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e["target"] == lab.as_str() && e["result"] == 200),
        "{log}"
    );
    assert!(
        entries
            .iter()
            .any(|e| e["target"] == theirs.as_str() && e["result"] == 404),
        "{log}"
    );
}
