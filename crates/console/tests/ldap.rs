//! Department logins through the API, against a real slapd.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};
use wm_testkit::{unique, Slapd, LDAP_ADMIN_DN, LDAP_ADMIN_PASSWORD, LDAP_SUFFIX};

fn person(uid: &str, password: &str) -> String {
    format!(
        "dn: uid={uid},ou=people,{LDAP_SUFFIX}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n\
         cn: {uid} person\nsn: {uid}\ndisplayName: {uid} display\nuid: {uid}\nuidNumber: 2001\n\
         gidNumber: 2000\nhomeDirectory: /home/{uid}\nuserPassword: {password}\n"
    )
}

/// A directory with a student and a teacher whose names are unique to the test, so
/// their containers cannot collide with another test's on the shared engine.
fn directory() -> (Slapd, String, String) {
    let (student, teacher) = (unique("ds"), unique("dt"));
    let ldif = [
        person(&student, "student-password"),
        person(&teacher, "teacher-password"),
        format!(
            "dn: cn=teachers,ou=groups,{LDAP_SUFFIX}\nobjectClass: posixGroup\ncn: teachers\ngidNumber: 3000\nmemberUid: {teacher}\n"
        ),
        format!(
            "dn: cn=admins,ou=groups,{LDAP_SUFFIX}\nobjectClass: groupOfNames\ncn: admins\nmember: {LDAP_ADMIN_DN}\n"
        ),
    ]
    .join("\n");
    (Slapd::start(&ldif), student, teacher)
}

async fn spawn_with_directory(slapd: &Slapd) -> TestApp {
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.ldap = Some(
        serde_json::from_value(json!({
            "url": slapd.url(),
            "base_dn": format!("ou=people,{LDAP_SUFFIX}"),
            "group_base_dn": format!("ou=groups,{LDAP_SUFFIX}"),
            "teacher_group": "teachers",
            "admin_group": "admins",
            "timeout_secs": 2,
        }))
        .unwrap(),
    );
    spawn_with(config, data).await
}

/// Changes the directory as its administrators would, with the OpenLDAP tools.
fn ldap_modify(slapd: &Slapd, tool: &str, input: &str) {
    let mut child = Command::new(tool)
        .args([
            "-x",
            "-H",
            &slapd.url(),
            "-D",
            LDAP_ADMIN_DN,
            "-w",
            LDAP_ADMIN_PASSWORD,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{tool}: {e} (install ldap-utils; scripts/test does)"));
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "{tool} failed");
}

async fn login(app: &TestApp, user: &str, password: &str) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        "/api/v1/login",
        None,
        Some(json!({"username": user, "password": password})),
    )
    .await
}

#[tokio::test]
async fn department_accounts_log_in_with_roles_from_groups() {
    let (slapd, student, teacher) = directory();
    let app = spawn_with_directory(&slapd).await;

    let (status, body) = login(&app, &student, "student-password").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"], json!({"name": student, "role": "student"}));
    let (status, body) = login(&app, &teacher, "teacher-password").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["role"], "teacher");

    // Created in our database on first login.
    let (_, users) = app.get("/api/v1/admin/users", &app.admin).await;
    let record = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == student.as_str())
        .expect("recorded");
    assert_eq!(record["source"], "ldap");
    assert_eq!(record["display_name"], format!("{student} display"));

    // Groups are read at every login.
    ldap_modify(
        &slapd,
        "ldapmodify",
        &format!("dn: cn=teachers,ou=groups,{LDAP_SUFFIX}\nchangetype: modify\nadd: memberUid\nmemberUid: {student}\n"),
    );
    let (_, body) = login(&app, &student, "student-password").await;
    assert_eq!(body["user"]["role"], "teacher");

    // The local admin account is not looked up in the directory.
    assert_eq!(login(&app, "admin", ADMIN_PASSWORD).await.0, StatusCode::OK);
}

#[tokio::test]
async fn wrong_logins_and_injections_fail_like_a_wrong_password() {
    let (slapd, student, _) = directory();
    let app = spawn_with_directory(&slapd).await;
    for (user, password) in [
        (student.as_str(), "wrong"),
        (student.as_str(), ""),
        ("*", "student-password"),
        ("x)(|(uid=*", "student-password"),
        (&format!("{student})(uid=*"), "student-password"),
        (&format!("{}*", &student[..3]), "student-password"),
        ("nobody", "student-password"),
        (&format!("uid={student},ou=people"), "student-password"),
    ] {
        let (status, body) = login(&app, user, password).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{user:?}/{password:?}: {body}"
        );
        assert_eq!(body["error"]["code"], "invalid_credentials");
    }
    let (status, _) = login(&app, &"a".repeat(1000), "x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = login(&app, &student, &"p".repeat(5000)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_person_removed_from_the_directory_cannot_log_in_and_keeps_containers() {
    let (slapd, student, _) = directory();
    let app = spawn_with_directory(&slapd).await;
    let (_, body) = login(&app, &student, "student-password").await;
    let token = body["token"].as_str().unwrap().to_string();
    app.create(&token, json!({"name": "kept", "image": test_image().await}))
        .await;
    ldap_modify(
        &slapd,
        "ldapdelete",
        &format!("uid={student},ou=people,{LDAP_SUFFIX}\n"),
    );
    assert_eq!(
        login(&app, &student, "student-password").await.0,
        StatusCode::UNAUTHORIZED
    );
    let (_, all) = app.get("/api/v1/containers?all=true", &app.admin).await;
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == format!("{student}-kept")),
        "their containers stay until an admin decides: {all}"
    );
}

#[tokio::test]
async fn a_directory_outage_is_503_and_everything_else_keeps_working() {
    let (mut slapd, student, _) = directory();
    let app = spawn_with_directory(&slapd).await;
    let (_, body) = login(&app, &student, "student-password").await;
    let session = body["token"].as_str().unwrap().to_string();
    let (_, health) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(health["ldap"]["reachable"], true, "{health}");

    slapd.stop();
    let t = Instant::now();
    let (status, body) = login(&app, &student, "student-password").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("directory"));
    assert!(t.elapsed() < Duration::from_secs(8), "within the time-out");
    // Local accounts and existing sessions keep working.
    assert_eq!(login(&app, "admin", ADMIN_PASSWORD).await.0, StatusCode::OK);
    assert_eq!(app.get("/api/v1/me", &session).await.0, StatusCode::OK);
    // The outage shows.
    let (status, health) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["ldap"]["reachable"], false, "{health}");
    let (_, metrics) = app.call(Method::GET, "/metrics", None, None).await;
    let metrics = metrics.as_str().unwrap();
    assert!(metrics.contains("wm_ldap_up 0"), "{metrics}");
    assert!(
        metrics.contains("wm_ldap_logins_total{outcome=\"unavailable\"} 1"),
        "{metrics}"
    );

    slapd.resume();
    let (status, _) = login(&app, &student, "student-password").await;
    assert_eq!(status, StatusCode::OK);
    let (_, metrics) = app.call(Method::GET, "/metrics", None, None).await;
    assert!(metrics.as_str().unwrap().contains("wm_ldap_up 1"));
}

#[tokio::test]
async fn course_groups_follow_the_directory_at_each_login_and_passwords_stay_there() {
    let (slapd, student, teacher) = directory();
    let app = spawn_with_directory(&slapd).await;
    let group = unique("os");
    ldap_modify(
        &slapd,
        "ldapadd",
        &format!(
            "dn: cn={group},ou=groups,{LDAP_SUFFIX}\nobjectClass: posixGroup\ncn: {group}\ngidNumber: 3100\nmemberUid: {student}\n"
        ),
    );
    let tt = app.login(&teacher, "teacher-password").await;
    let (status, course) = app
        .post(
            "/api/v1/courses",
            &tt,
            json!({"name": "OS", "ldap_group": group}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{course}");
    let path = format!("/api/v1/courses/{}", course["id"].as_str().unwrap());

    // In the group: enrolled at login.
    let st = app.login(&student, "student-password").await;
    assert_eq!(app.get(&path, &tt).await.1["members"], json!([student]));

    // Their password is the directory's: the console says where to change it.
    let (status, body) = app
        .call(
            Method::PUT,
            "/api/v1/me/password",
            Some(&st),
            Some(json!({"current": "student-password", "new": "another-password"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("directory"));

    // Out of the group: out of the course at the next login.
    ldap_modify(
        &slapd,
        "ldapmodify",
        &format!("dn: cn={group},ou=groups,{LDAP_SUFFIX}\nchangetype: modify\ndelete: memberUid\nmemberUid: {student}\n"),
    );
    app.login(&student, "student-password").await;
    assert_eq!(app.get(&path, &tt).await.1["members"], json!([]));
}
