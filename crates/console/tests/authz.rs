//! The authorization matrix: every operation of `/api/v1/openapi.json`, tried by every
//! kind of caller, against the real engine.
//!
//! The operations are read from the document the server serves, so a new route without
//! its row in [`rule`] fails this test, and so does a row whose route is gone. Each row
//! says who the operation is for; the expected status of each caller follows from that
//! and from the one rule of the product: another user's resource answers exactly like a
//! missing one. Callers that are refused must change nothing: the owner's resources are
//! checked after every refused cell.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::collections::BTreeSet;
use wm_testkit::unique;

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    /// The owner's personal token, revoked.
    Revoked,
    /// The owner's token limited to builds (for CI).
    BuildToken,
    /// Another student.
    Student,
    /// The teacher of a course the owner is enrolled in: no rights over the owner's things
    /// but those of the course's routes.
    Teacher,
    /// The owner of the resources in the path.
    Owner,
    Admin,
}

const EVERYONE: [Who; 7] = [
    Who::Anonymous,
    Who::Revoked,
    Who::BuildToken,
    Who::Student,
    Who::Teacher,
    Who::Owner,
    Who::Admin,
];

/// Who an operation is for.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Anyone, signed in or not (login, the document itself).
    Public,
    /// Any signed-in caller, acting on their own things (lists, creates, their settings).
    Own,
    /// Like [`Kind::Own`], and build-scope tokens too.
    OwnOrBuild,
    /// The resource in the path is the owner's: others get 404, admins may act.
    Owned,
    /// The owner's only: admins are told it is not theirs to change.
    OwnerOnly,
    /// The owner's only, and nobody else even sees it (personal tokens).
    Personal,
    /// Any valid token, build-scope ones too: who am I, and ending one's own session.
    AnyToken,
    /// Like [`Kind::Own`] on an installation where the operation's backend is enabled;
    /// here (no Kubernetes) every signed-in caller is told it is not.
    OwnBackendOff,
    /// Administrators only.
    AdminOnly,
    /// Like [`Kind::Owned`], for a WebSocket route asked without upgrade headers: the
    /// owner and admins get 400 `websocket_required` after the ownership check.
    OwnedWebSocket,
    /// Teachers and administrators (creating a course).
    Teaching,
    /// The course in the path: its teacher, its members (the owner) and admins see it.
    CourseVisible,
    /// The course in the path, for its teacher and admins: its member (the owner) is
    /// told only the teacher may, anyone else that there is no such course.
    CourseTeacher,
}

/// What a cell expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Exactly this status.
    Is(u16),
    /// The handler ran for this caller: a 2xx.
    Success,
}

/// The rows: (method, path) → who it is for. Every operation in the document has one.
fn rule(method: &str, path: &str) -> Option<Kind> {
    use Kind::*;
    Some(match (method, path) {
        ("post", "/api/v1/login") => Public,
        ("get", "/api/v1/openapi.json") => Public,
        ("get", "/healthz") | ("get", "/metrics") => Public,
        ("post", "/api/v1/logout") => AnyToken,
        ("get", "/api/v1/me") => AnyToken,
        ("post", "/api/v1/tokens") | ("get", "/api/v1/tokens") => Own,
        ("delete", "/api/v1/tokens/{id}") => Personal,
        ("post", "/api/v1/admin/users") | ("get", "/api/v1/admin/users") => AdminOnly,
        ("post", "/api/v1/admin/reconcile") => AdminOnly,
        ("get", "/api/v1/admin/audit") => AdminOnly,
        ("get", "/api/v1/admin/hosts") => AdminOnly,
        ("patch", "/api/v1/admin/hosts/{id}") => AdminOnly,
        ("get", "/api/v1/admin/cleanup") | ("post", "/api/v1/admin/cleanup") => AdminOnly,
        ("get", "/api/v1/admin/quotas") => AdminOnly,
        ("get", "/api/v1/admin/users/{name}/quota") => AdminOnly,
        ("put", "/api/v1/admin/users/{name}/quota") => AdminOnly,
        ("delete", "/api/v1/admin/users/{name}/quota") => AdminOnly,
        ("post", "/api/v1/admin/images/{ref}/release") => AdminOnly,
        ("post", "/api/v1/containers") | ("get", "/api/v1/containers") => Own,
        ("get", "/api/v1/containers/{name}") => Owned,
        ("delete", "/api/v1/containers/{name}") => Owned,
        ("patch", "/api/v1/containers/{name}") => Owned,
        ("post", "/api/v1/containers/{name}/start") => Owned,
        ("post", "/api/v1/containers/{name}/stop") => Owned,
        ("post", "/api/v1/containers/{name}/exec") => Owned,
        ("post", "/api/v1/containers/{name}/files") => Owned,
        ("get", "/api/v1/containers/{name}/files") => Owned,
        ("get", "/api/v1/storage") => Own,
        ("get", "/api/v1/storage/files")
        | ("post", "/api/v1/storage/files")
        | ("delete", "/api/v1/storage/files") => Own,
        ("get", "/api/v1/admin/users/{name}/storage") => AdminOnly,
        ("delete", "/api/v1/admin/users/{name}/storage") => AdminOnly,
        ("get", "/api/v1/containers/{name}/logs") => Owned,
        ("get", "/api/v1/containers/{name}/terminal") => OwnedWebSocket,
        ("get", "/api/v1/images") => Own,
        ("post", "/api/v1/images/pull") => Own,
        ("post", "/api/v1/images/build") => OwnOrBuild,
        ("patch", "/api/v1/images/{ref}") => OwnerOnly,
        ("delete", "/api/v1/images/{ref}") => Owned,
        ("get", "/api/v1/images/{ref}/export") => Owned,
        ("post", "/api/v1/images/{ref}/sif") => Owned,
        ("put", "/api/v1/ci") | ("get", "/api/v1/ci") | ("delete", "/api/v1/ci") => Own,
        ("get", "/api/v1/ci/gitlab-ci.yml") => Own,
        ("get", "/api/v1/kubeconfig") => OwnBackendOff,
        ("put", "/api/v1/me/password") => Own,
        ("get", "/api/v1/sessions") => Own,
        ("delete", "/api/v1/sessions/{id}") => Personal,
        ("patch", "/api/v1/admin/users/{name}") => AdminOnly,
        ("delete", "/api/v1/admin/users/{name}") => AdminOnly,
        ("get", "/api/v1/admin/audit/export") => AdminOnly,
        ("post", "/api/v1/courses") => Teaching,
        ("get", "/api/v1/courses") => Own,
        ("get", "/api/v1/courses/{id}") => CourseVisible,
        ("post", "/api/v1/courses/{id}/members") => CourseTeacher,
        ("delete", "/api/v1/courses/{id}/members/{user}") => CourseTeacher,
        ("get", "/api/v1/courses/{id}/containers") => CourseTeacher,
        ("post", "/api/v1/courses/{id}/containers/{name}/stop") => CourseTeacher,
        ("post", "/api/v1/courses/{id}/containers/{name}/start") => CourseTeacher,
        ("get", "/api/v1/courses/{id}/containers/{name}/logs") => CourseTeacher,
        ("get", "/api/v1/courses/{id}/containers/{name}") => CourseTeacher,
        ("post", "/api/v1/courses/join") => Own,
        ("put", "/api/v1/courses/{id}/join-code") => CourseTeacher,
        ("delete", "/api/v1/courses/{id}/join-code") => CourseTeacher,
        ("get", "/api/v1/courses/{id}/images") => CourseVisible,
        ("put", "/api/v1/courses/{id}/images") => CourseTeacher,
        ("put", "/api/v1/courses/{id}/quota") | ("delete", "/api/v1/courses/{id}/quota") => {
            AdminOnly
        }
        ("post", "/api/v1/vm-images") | ("get", "/api/v1/vm-images") => Own,
        // Image names are each owner's own: another's name is a missing one of theirs.
        ("delete", "/api/v1/vm-images/{name}") => Personal,
        ("get", "/api/v1/vm-templates") => Own,
        ("post", "/api/v1/vms") | ("get", "/api/v1/vms") => Own,
        ("get", "/api/v1/vms/{name}") | ("delete", "/api/v1/vms/{name}") => Owned,
        ("post", "/api/v1/vms/{name}/start") | ("post", "/api/v1/vms/{name}/destroy") => Owned,
        ("get", "/api/v1/vms/{name}/xml") | ("get", "/api/v1/vms/{name}/console.log") => Owned,
        ("get", "/api/v1/vms/{name}/console") => OwnedWebSocket,
        _ => return None,
    })
}

/// The status each caller gets for an operation of `kind`.
fn expected(kind: Kind, who: Who, path: &str) -> Expect {
    use Expect::*;
    use Who::*;
    let not_signed_in = matches!(who, Anonymous | Revoked);
    match kind {
        // Login is tried with a wrong password: the same answer for everyone.
        Kind::Public if path == "/api/v1/login" => Is(401),
        Kind::Public => Success,
        _ if not_signed_in => Is(401),
        Kind::OwnOrBuild | Kind::AnyToken => Success,
        _ if who == BuildToken => Is(403),
        Kind::Own => Success,
        Kind::OwnBackendOff => Is(404),
        Kind::Personal => match who {
            Owner => Success,
            _ => Is(404),
        },
        Kind::Owned => match who {
            Owner | Admin => Success,
            _ => Is(404),
        },
        Kind::OwnedWebSocket => match who {
            Owner | Admin => Is(400),
            _ => Is(404),
        },
        Kind::OwnerOnly => match who {
            Owner => Success,
            Admin => Is(403),
            _ => Is(404),
        },
        Kind::AdminOnly => match who {
            Admin => Success,
            _ => Is(403),
        },
        Kind::Teaching => match who {
            Teacher | Admin => Success,
            _ => Is(403),
        },
        Kind::CourseVisible => match who {
            Teacher | Owner | Admin => Success,
            _ => Is(404),
        },
        Kind::CourseTeacher => match who {
            Teacher | Admin => Success,
            Owner => Is(403),
            _ => Is(404),
        },
    }
}

/// The callers' tokens and the owner's resources.
struct World {
    app: TestApp,
    owner: String,
    owner_token: String,
    tokens: Vec<(Who, Option<String>)>,
    container: String,
    image: String,
    host: String,
    /// The teacher's course, the owner enrolled in it.
    course: String,
    /// The join code of another course of the teacher's, which every caller may join.
    join_code: String,
    /// The teacher's image, shared with the course: the one the course names.
    course_image: String,
    /// A token of the owner that stays valid: the `{id}` of refused token deletes.
    kept_token_id: String,
    /// Where the VMs' disks are; removed, with the domains, when the matrix ends.
    vm_storage: std::path::PathBuf,
}

impl Drop for World {
    fn drop(&mut self) {
        wm_testkit::remove_vms(&self.app.instance, &self.vm_storage);
    }
}

/// A disk image for the VM routes: never booted for long, so blank will do.
fn blank_disk() -> reqwest::multipart::Part {
    reqwest::multipart::Part::bytes(vec![0u8; 1 << 20]).file_name("disk.img")
}

impl World {
    fn token(&self, who: Who) -> Option<&str> {
        self.tokens
            .iter()
            .find(|(w, _)| *w == who)
            .and_then(|(_, t)| t.as_deref())
    }

    /// The owner's container, created again if an earlier cell removed it.
    async fn ensure_container(&self) {
        let (status, _) = self
            .app
            .get(
                &format!("/api/v1/containers/{}", self.container),
                &self.owner_token,
            )
            .await;
        if status == StatusCode::NOT_FOUND {
            self.app
                .create(
                    &self.owner_token,
                    json!({"name": "web", "image": test_image().await}),
                )
                .await;
        }
    }

    /// The owner's image, built again if an earlier cell removed it.
    async fn ensure_image(&self) {
        let (_, images) = self.app.get("/api/v1/images", &self.owner_token).await;
        let present = images
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["ref"] == self.image.as_str());
        if !present {
            let (status, lines) = self
                .app
                .build(
                    &self.owner_token,
                    "authz:1",
                    &format!("FROM {}\nLABEL authz=1\n", test_image().await),
                )
                .await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(lines.last().unwrap()["status"], "done", "{lines:?}");
        }
    }

    /// The owner in the teacher's course (again, after a cell that took them out).
    async fn ensure_enrolled(&self) {
        let (status, c) = self
            .app
            .post(
                &format!("/api/v1/courses/{}/members", self.course),
                self.token(Who::Teacher).unwrap(),
                json!({"users": [self.owner]}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{c}");
    }

    /// Uploads a VM image `name` as the caller of `token`.
    async fn upload_vm_image(&self, token: &str, name: &str) {
        let form = reqwest::multipart::Form::new()
            .text("name", name.to_string())
            .part("file", blank_disk());
        let (status, body) = self.app.post_form("/api/v1/vm-images", token, form).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// The owner's VM `web` (its full name is the container's) and its image, named like
    /// the container too, defined again if an earlier cell removed them; powered off.
    async fn ensure_vm(&self) {
        let (_, images) = self.app.get("/api/v1/vm-images", &self.owner_token).await;
        if !images.to_string().contains(&self.container) {
            self.upload_vm_image(&self.owner_token, &self.container)
                .await;
        }
        let path = format!("/api/v1/vms/{}", self.container);
        let (status, _) = self.app.get(&path, &self.owner_token).await;
        if status == StatusCode::NOT_FOUND {
            let (status, vm) = self
                .app
                .post(
                    "/api/v1/vms",
                    &self.owner_token,
                    json!({"name": "web", "template": "small", "image": self.container}),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{vm}");
        }
        let (status, vm) = self
            .app
            .post(&format!("{path}/destroy"), &self.owner_token, json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{vm}");
    }

    /// Puts the owner's things back as they were after a cell that may change them.
    async fn restore(&self) {
        self.ensure_enrolled().await;
        self.ensure_vm().await;
        self.ensure_container().await;
        let (status, c) = self
            .app
            .post(
                &format!("/api/v1/containers/{}/start", self.container),
                &self.owner_token,
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{c}");
        self.ensure_image().await;
    }

    /// A fresh token of the owner, with its id.
    async fn fresh_owner_token(&self) -> (String, String) {
        let (status, t) = self
            .app
            .post(
                "/api/v1/tokens",
                &self.owner_token,
                json!({"name": unique("t")}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{t}");
        (
            t["token"].as_str().unwrap().to_string(),
            t["id"].as_str().unwrap().to_string(),
        )
    }

    /// What the owner has is still there and unchanged: checked after every refusal.
    async fn owner_unharmed(&self, after: &str) {
        let (status, c) = self
            .app
            .get(
                &format!("/api/v1/containers/{}", self.container),
                &self.owner_token,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{after} removed the container: {c}");
        assert_eq!(c["status"], "running", "{after} changed the container: {c}");
        let (_, images) = self.app.get("/api/v1/images", &self.owner_token).await;
        let image = images
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["ref"] == self.image.as_str())
            .unwrap_or_else(|| panic!("{after} removed the image"))
            .clone();
        assert_eq!(image["shared"], false, "{after} shared the image");
        assert_eq!(image["description"], "", "{after} described the image");
        let (status, _) = self.app.get("/api/v1/me", &self.owner_token).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{after} revoked the owner's session"
        );
        let (_, tokens) = self.app.get("/api/v1/tokens", &self.owner_token).await;
        assert!(
            tokens.to_string().contains(&self.kept_token_id),
            "{after} revoked the owner's token"
        );
        let (status, _) = self
            .app
            .get("/api/v1/storage/files?path=/keep.txt", &self.owner_token)
            .await;
        assert_eq!(status, StatusCode::OK, "{after} removed the owner's file");
        let (_, course) = self
            .app
            .get(
                &format!("/api/v1/courses/{}", self.course),
                &self.owner_token,
            )
            .await;
        assert_eq!(
            course["members"],
            json!([self.owner]),
            "{after} changed the course"
        );
        let (_, me) = self.app.get("/api/v1/me", &self.owner_token).await;
        assert_eq!(me["role"], "student", "{after} changed the owner's role");
        let (status, vm) = self
            .app
            .get(
                &format!("/api/v1/vms/{}", self.container),
                &self.owner_token,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{after} removed the VM: {vm}");
        assert_eq!(vm["status"], "shutoff", "{after} started the VM: {vm}");
        let (_, images) = self.app.get("/api/v1/vm-images", &self.owner_token).await;
        assert!(
            images.to_string().contains(&self.container),
            "{after} removed the VM image"
        );
    }
}

async fn world() -> World {
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.ci_runner_image = test_image().await.to_string();
    let vm_storage = std::path::Path::new("/var/lib/libvirt/images").join(&config.docker.instance);
    config.vm.enabled = Some(true);
    config.vm.domain_type = Some("qemu".into());
    config.vm.storage_dir = vm_storage.clone();
    let app = spawn_with(config, data).await;
    let (owner, owner_token) = app.student().await;
    let (_, student) = app.student().await;
    let (_, teacher) = app.user("tc", "teacher").await;

    let (status, build) = app
        .post(
            "/api/v1/tokens",
            &owner_token,
            json!({"name": "ci", "scope": "build"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{build}");
    let (status, revoked) = app
        .post("/api/v1/tokens", &owner_token, json!({"name": "old"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = app
        .delete(
            &format!("/api/v1/tokens/{}", revoked["id"].as_str().unwrap()),
            &owner_token,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, kept) = app
        .post("/api/v1/tokens", &owner_token, json!({"name": "kept"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let (_, hosts) = app.get("/api/v1/admin/hosts", &app.admin).await;
    let host = hosts[0]["id"].as_str().unwrap().to_string();
    let (status, course) = app
        .post("/api/v1/courses", &teacher, json!({"name": "authz"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{course}");
    let course = course["id"].as_str().unwrap().to_string();
    let (status, open) = app
        .post("/api/v1/courses", &teacher, json!({"name": "open"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{open}");
    let (status, open) = app
        .call(
            Method::PUT,
            &format!("/api/v1/courses/{}/join-code", open["id"].as_str().unwrap()),
            Some(&teacher),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{open}");
    let join_code = open["join_code"].as_str().unwrap().to_string();
    let (status, lines) = app
        .build(
            &teacher,
            "authz-course:1",
            &format!("FROM {}\nLABEL authz=course\n", test_image().await),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(lines.last().unwrap()["status"], "done", "{lines:?}");
    let (_, me) = app.get("/api/v1/me", &teacher).await;
    let course_image = format!("wm/{}/authz-course:1", me["name"].as_str().unwrap());
    let (status, shared) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/images/{}", encode_ref(&course_image)),
            Some(&teacher),
            Some(json!({"courses": [course]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{shared}");
    let tokens = vec![
        (Who::Anonymous, None),
        (Who::Revoked, revoked["token"].as_str().map(String::from)),
        (Who::BuildToken, build["token"].as_str().map(String::from)),
        (Who::Student, Some(student)),
        (Who::Teacher, Some(teacher)),
        (Who::Owner, Some(owner_token.clone())),
        (Who::Admin, Some(app.admin.clone())),
    ];
    let w = World {
        container: format!("{owner}-web"),
        image: format!("wm/{owner}/authz:1"),
        owner,
        owner_token,
        tokens,
        host,
        course,
        join_code,
        course_image,
        kept_token_id: kept["id"].as_str().unwrap().to_string(),
        vm_storage,
        app,
    };
    w.ensure_enrolled().await;
    w.ensure_vm().await;
    w.ensure_container().await;
    w.ensure_image().await;
    let form = reqwest::multipart::Form::new().text("path", "/").part(
        "file",
        reqwest::multipart::Part::bytes(b"mine".to_vec()).file_name("keep.txt"),
    );
    let r = w
        .app
        .client
        .post(w.app.url("/api/v1/storage/files"))
        .bearer_auth(&w.owner_token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    w
}

/// The id of the session marked `current` in a list of sessions.
fn current_session(sessions: &serde_json::Value) -> String {
    sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// One request of the matrix: the path's parameters filled in, and a body that the
/// operation accepts from a caller it is for.
async fn request(w: &World, method: &str, path: &str, who: Who) -> reqwest::RequestBuilder {
    let positive = matches!(who, Who::Owner | Who::Admin);
    let mut concrete = if path.starts_with("/api/v1/admin/users/{name}") {
        path.replace("{name}", &w.owner)
    } else if path == "/api/v1/vm-images/{name}" && positive && who == Who::Owner {
        // Deleting works on an image made for the purpose (the VM uses the other one).
        let name = unique("i");
        w.upload_vm_image(&w.owner_token, &name).await;
        format!("/api/v1/vm-images/{name}")
    } else {
        path.to_string()
    };
    concrete = concrete
        .replace("{name}", &w.container)
        .replace("{ref}", &encode_ref(&w.image));
    if path == "/api/v1/tokens/{id}" {
        // Deleting works on a token made for the purpose; refused deletes aim at one
        // that must survive.
        let id = if positive && method == "delete" {
            w.fresh_owner_token().await.1
        } else {
            w.kept_token_id.clone()
        };
        concrete = concrete.replace("{id}", &id);
    }
    if path == "/api/v1/sessions/{id}" {
        // Ending works on a session of the owner's made for the purpose; refused ends aim
        // at the owner's own session, which must survive.
        let token = if who == Who::Owner {
            w.app.login(&w.owner, "password-123").await
        } else {
            w.owner_token.clone()
        };
        let (_, sessions) = w.app.get("/api/v1/sessions", &token).await;
        let id = current_session(&sessions);
        concrete = concrete.replace("{id}", &id);
    }
    if path.starts_with("/api/v1/courses/{id}") {
        concrete = concrete
            .replace("{id}", &w.course)
            .replace("{user}", &w.owner);
    }
    concrete = concrete.replace("{id}", &w.host);
    if path == "/api/v1/images/{ref}/export" {
        concrete.push_str("?format=docker-archive");
    }
    if path == "/api/v1/containers/{name}/files" && method == "get" {
        concrete.push_str("?path=/etc");
    }
    if path == "/api/v1/storage/files" && method == "get" {
        concrete.push_str("?path=/");
    }
    if path == "/api/v1/admin/users/{name}" && method == "delete" && positive {
        // As for storage: the owner must survive; a user made for the purpose goes.
        let (fresh, _) = w.app.user("gone", "student").await;
        concrete = format!("/api/v1/admin/users/{fresh}");
    }
    if path == "/api/v1/admin/users/{name}/storage" && method == "delete" && positive {
        // Deleting works on a user made for the purpose (the owner has containers, which
        // keep their storage); refused deletes aim at the owner's, which must survive.
        let (fresh, _) = w.app.user("gone", "student").await;
        concrete = format!("/api/v1/admin/users/{fresh}/storage");
    }
    let mut token = w.token(who).map(String::from);
    if path == "/api/v1/storage/files" && method == "delete" {
        // Each caller deletes a file of their own storage, put there for the purpose.
        let name = unique("d");
        if let Some(t) = token
            .as_deref()
            .filter(|_| matches!(who, Who::Student | Who::Teacher | Who::Owner | Who::Admin))
        {
            let form = reqwest::multipart::Form::new().text("path", "/").part(
                "file",
                reqwest::multipart::Part::bytes(b"x".to_vec()).file_name(name.clone()),
            );
            let r = w
                .app
                .client
                .post(w.app.url("/api/v1/storage/files"))
                .bearer_auth(t)
                .multipart(form)
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                StatusCode::CREATED,
                "{}",
                r.text().await.unwrap()
            );
        }
        concrete.push_str(&format!("?path=/{name}"));
    }
    if path == "/api/v1/logout" && token.is_some() && who != Who::Revoked {
        // Logging out revokes the token used: use one made for the purpose.
        let (maker, scope) = match who {
            Who::BuildToken => (Who::Owner, "build"),
            other => (other, "all"),
        };
        let (status, t) = w
            .app
            .post(
                "/api/v1/tokens",
                w.token(maker).unwrap(),
                json!({"name": unique("l"), "scope": scope}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{t}");
        token = t["token"].as_str().map(String::from);
    }
    let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let mut req = w.app.client.request(m, w.app.url(&concrete));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let image = test_image().await;
    if (method, path) == ("post", "/api/v1/vms") {
        // Each caller defines from an image of their own, put there for the purpose.
        let name = unique("i");
        if let Some(t) = w
            .token(who)
            .filter(|_| matches!(who, Who::Student | Who::Teacher | Who::Owner | Who::Admin))
        {
            w.upload_vm_image(t, &name).await;
        }
        return req.json(&json!({"name": unique("v"), "template": "small", "image": name}));
    }
    match (method, path) {
        ("post", "/api/v1/login") => req.json(&json!({"username": w.owner, "password": "wrong"})),
        ("post", "/api/v1/tokens") => req.json(&json!({"name": unique("t")})),
        ("post", "/api/v1/admin/users") => req.json(&json!({
            "name": unique("u"), "password": "password-123", "role": "student"})),
        ("patch", "/api/v1/admin/hosts/{id}") => req.json(&json!({"drained": false})),
        ("put", "/api/v1/admin/users/{name}/quota") => req.json(&json!({"containers": -1})),
        // Refused callers try to take the owner's access; the admin's cell changes nothing.
        ("patch", "/api/v1/admin/users/{name}") if who == Who::Admin => req.json(&json!({})),
        ("patch", "/api/v1/admin/users/{name}") => {
            req.json(&json!({"disabled": true, "role": "admin"}))
        }
        // The same password again: a change that leaves every caller able to log in.
        ("put", "/api/v1/me/password") => req.json(&json!({
            "current": if who == Who::Admin { ADMIN_PASSWORD } else { "password-123" },
            "new": if who == Who::Admin { ADMIN_PASSWORD } else { "password-123" }})),
        ("post", "/api/v1/courses") => req.json(&json!({"name": unique("c")})),
        ("post", "/api/v1/courses/{id}/members") => req.json(&json!({"users": [w.owner]})),
        ("post", "/api/v1/courses/join") => req.json(&json!({"code": w.join_code})),
        ("put", "/api/v1/courses/{id}/images") => req.json(&json!({
            "image": w.course_image, "title": "exercise", "note": "authz"})),
        ("put", "/api/v1/courses/{id}/quota") => req.json(&json!({"containers": 100})),
        ("post", "/api/v1/vm-images") => req.multipart(
            reqwest::multipart::Form::new()
                .text("name", unique("i"))
                .part("file", blank_disk()),
        ),
        ("post", "/api/v1/containers") => req.json(&json!({"name": unique("m"), "image": image})),
        ("post", "/api/v1/containers/{name}/exec") => req.json(&json!({"cmd": ["true"]})),
        ("patch", "/api/v1/containers/{name}") => req.json(&json!({"expires_at": null})),
        ("post", "/api/v1/containers/{name}/files") | ("post", "/api/v1/storage/files") => req
            .multipart(reqwest::multipart::Form::new().text("path", "/").part(
                "file",
                reqwest::multipart::Part::bytes(b"x".to_vec()).file_name(unique("f")),
            )),
        ("post", "/api/v1/images/pull") => req.json(&json!({"image": image})),
        ("post", "/api/v1/images/build") => req.multipart(
            reqwest::multipart::Form::new()
                .text("name", unique("b"))
                .text("dockerfile", format!("FROM {image}\n")),
        ),
        // Changes that a refused caller must not make: checked by `owner_unharmed`. The
        // owner's own cell puts them back.
        ("patch", "/api/v1/images/{ref}") => req.json(&json!({"description": "", "shared": false})),
        ("put", "/api/v1/ci") => req.json(&json!({
            "gitlab_url": "https://gitlab.example.org", "token": "glrt-authz-matrix-0001"})),
        _ => req,
    }
}

#[tokio::test]
async fn every_operation_answers_every_caller_as_the_rules_say() {
    let w = world().await;
    let (status, doc) = w
        .app
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                operations.push((method.clone(), path.clone()));
            }
        }
    }
    let unruled: Vec<_> = operations
        .iter()
        .filter(|(m, p)| rule(m, p).is_none())
        .collect();
    assert!(
        unruled.is_empty(),
        "operations without a row in the authorization matrix: {unruled:?}"
    );
    let documented: BTreeSet<(String, String)> = operations.iter().cloned().collect();
    assert!(
        operations.len() >= 35,
        "the document lists {} operations",
        operations.len()
    );

    let mut failures = Vec::new();
    let mut cells = 0;
    for (method, path) in &operations {
        let kind = rule(method, path).unwrap();
        for who in EVERYONE {
            let want = expected(kind, who, path);
            if want == Expect::Success {
                // A cell that may remove the owner's things runs on fresh ones.
                w.ensure_vm().await;
                w.ensure_container().await;
                w.ensure_image().await;
            }
            let resp = request(&w, method, path, who).await.send().await.unwrap();
            let got = resp.status().as_u16();
            // Streams report their own outcome in their last line; the status is what
            // the matrix is about. Reading the body lets the operation finish.
            let body = resp.text().await.unwrap_or_default();
            cells += 1;
            let ok = match want {
                Expect::Is(s) => got == s,
                Expect::Success => (200..300).contains(&got),
            };
            if !ok {
                failures.push(format!(
                    "{} {path} as {who:?}: expected {want:?}, got {got}: {}",
                    method.to_uppercase(),
                    body.chars().take(200).collect::<String>()
                ));
            }
            if want == Expect::Success {
                w.restore().await;
            } else if !matches!(kind, Kind::Public) {
                w.owner_unharmed(&format!("{} {path} as {who:?}", method.to_uppercase()))
                    .await;
            }
        }
    }
    // Another user's resource answers exactly as a missing one: same status, same code.
    let missing = format!("{}-nothing-here", w.owner);
    for (method, path) in &documented {
        if !matches!(
            rule(method, path),
            Some(Kind::Owned | Kind::OwnerOnly | Kind::Personal)
        ) || path.contains("{id}")
        {
            continue;
        }
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let theirs = path
            .replace("{name}", &w.container)
            .replace("{ref}", &encode_ref(&w.image));
        let nothing = path
            .replace("{name}", &missing)
            .replace("{ref}", &encode_ref(&format!("wm/{}/nothing:1", w.owner)));
        let student = w.token(Who::Student).unwrap();
        let (s1, b1) = w.app.call(m.clone(), &theirs, Some(student), None).await;
        let (s2, b2) = w.app.call(m, &nothing, Some(student), None).await;
        assert_eq!(s1, s2, "{method} {path}: {b1} / {b2}");
        assert_eq!(
            b1["error"]["code"], b2["error"]["code"],
            "{method} {path}: {b1} / {b2}"
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {cells} cells differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    w.owner_unharmed("the whole matrix").await;
}
