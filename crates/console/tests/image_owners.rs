//! Which images are public when installations share one engine (issue 12, item 7): only
//! tagged images with no owner mark at all, outside the namespace of images built here.
//! Another installation's images, images with a stray `wm.owner`, and the untagged
//! intermediate images of a build are nobody's to list or run.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use wm_testkit::{build_labelled_image, docker, unique};

fn listed<'a>(images: &'a Value, reference: &str) -> Option<&'a Value> {
    images
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["ref"] == reference)
}

#[tokio::test]
async fn images_marked_by_another_installation_or_owner_are_not_public() {
    let app = spawn_app().await;
    let image = test_image().await;
    let (alice, _) = app.student().await;
    let (_, bob_t) = app.student().await;
    // Another installation's private image, an image of another installation without an
    // owner, and one carrying the owner label of one of our users but not our instance
    // and in no namespace of ours.
    let theirs = format!("{}:1", unique("wm-test-theirs"));
    let other_instance = format!("{}:1", unique("wm-test-instance"));
    let stray_owner = format!("{}:1", unique("wm-test-owned"));
    let _images = RemoveImages(vec![
        theirs.clone(),
        other_instance.clone(),
        stray_owner.clone(),
    ]);
    let (t, o, s, a) = (
        theirs.clone(),
        other_instance.clone(),
        stray_owner.clone(),
        alice.clone(),
    );
    tokio::task::spawn_blocking(move || {
        build_labelled_image(&t, &[("wm.owner", &a), ("wm.instance", "elsewhere")]);
        build_labelled_image(&o, &[("wm.instance", "elsewhere")]);
        build_labelled_image(&s, &[("wm.owner", &a)]);
    })
    .await
    .unwrap();
    app.post("/api/v1/admin/reconcile", &app.admin, json!({}))
        .await;

    let (status, bobs) = app.get("/api/v1/images", &bob_t).await;
    assert_eq!(status, StatusCode::OK, "{bobs}");
    // The public test image is listed and runnable: the rule is not "nothing is public".
    assert_eq!(
        listed(&bobs, image).expect("the test image")["kind"],
        "public"
    );
    app.create(&bob_t, json!({"name": "ok", "image": image}))
        .await;
    for reference in [&theirs, &other_instance, &stray_owner] {
        assert!(
            listed(&bobs, reference).is_none(),
            "{reference} listed for a student: {bobs}"
        );
        let (status, body) = app
            .post(
                "/api/v1/containers",
                &bob_t,
                json!({"name": unique("c"), "image": reference}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{reference}: {body}");
        assert_eq!(body["error"]["code"], "image_not_found");
    }
    // Not even the user the stray label names: it is not this installation's image.
    let alice_t = app.login(&alice, "password-123").await;
    let (status, body) = app
        .post(
            "/api/v1/containers",
            &alice_t,
            json!({"name": "stray", "image": stray_owner}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // An administrator sees them as "other" and cannot run or remove them either.
    let (_, all) = app.get("/api/v1/images", &app.admin).await;
    for reference in [&theirs, &other_instance, &stray_owner] {
        let i = listed(&all, reference).unwrap_or_else(|| panic!("{reference}: {all}"));
        assert_eq!(i["kind"], "other", "{i}");
        let (status, _) = app
            .post(
                "/api/v1/containers",
                &app.admin,
                json!({"name": unique("c"), "image": reference}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{reference}");
        let (status, _) = app
            .delete(
                &format!("/api/v1/images/{}", encode_ref(reference)),
                &app.admin,
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{reference}");
    }
}

#[tokio::test]
async fn an_intermediate_image_of_a_build_is_nobody_elses() {
    let app = spawn_app().await;
    let image = test_image().await;
    let (alice, alice_t) = app.student().await;
    let (_, bob_t) = app.student().await;
    let reference = format!("wm/{alice}/secret:1");
    let _images = RemoveImages(vec![reference.clone()]);
    let (status, lines) = app
        .build(
            &alice_t,
            "secret:1",
            &format!(
                "FROM {image}\nRUN echo {} > /secret\nRUN echo more > /more\n",
                unique("nonce")
            ),
        )
        .await;
    let done = lines.last().unwrap();
    assert_eq!(done["status"], "done", "{status} {lines:?}");
    // The final image's parent is the untagged layer of the first RUN step: alice's
    // content without her owner label.
    let parent = wm_testkit::inspect("image", &reference).unwrap()["Parent"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(parent.starts_with("sha256:"), "{parent}");
    let tags = wm_testkit::inspect("image", &parent).unwrap()["RepoTags"].clone();
    assert_eq!(tags, json!([]), "an untagged intermediate image");
    let (status, body) = app
        .post(
            "/api/v1/containers",
            &bob_t,
            json!({"name": "peek", "image": parent}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "image_not_found");
    assert!(
        !app.engine_containers().iter().any(|c| c.ends_with("-peek")),
        "nothing was created on the engine"
    );
    // The tagged image itself stays alice's alone.
    let (status, _) = app
        .post(
            "/api/v1/containers",
            &bob_t,
            json!({"name": "peek2", "image": reference}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    docker(&["rmi", "-f", &reference]);
}
