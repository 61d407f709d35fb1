//! The store suite, run against both databases: every case below runs once on a fresh
//! SQLite file and once on a fresh PostgreSQL database.
//!
//! PostgreSQL is found through `WM_TEST_POSTGRES_URL` (the test command starts a server
//! and sets it). Without it the PostgreSQL half fails, never skips.

use std::future::Future;
use wm_domain::{
    Backend, ContainerKey, ContainerName, ContainerStatus, GuestPort, Role, Scope, ShortName,
    StopReason, UserName,
};
use wm_store::{
    AuditEntry, AuditFilter, CiSettings, ContainerRecord, Course, ImageMeta, ImageScan,
    QuotaOverride, ScanStatus, Store, StoreError, Token, TokenKind, User, UserSource,
};

/// A fresh database; dropping the guard removes a PostgreSQL one.
struct TestDb {
    store: Store,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/wm.db", dir.path().display());
    TestDb {
        store: Store::connect(&url).await.unwrap(),
        _dir: Some(dir),
    }
}

async fn postgres() -> (TestDb, String) {
    let admin_url = std::env::var("WM_TEST_POSTGRES_URL").expect(
        "WM_TEST_POSTGRES_URL is not set: run the tests through scripts/test, which starts PostgreSQL",
    );
    let db = format!("wm_test_{}", uuid::Uuid::new_v4().simple());
    raw(&admin_url, &format!("CREATE DATABASE {db}")).await;
    let base = admin_url.rsplit_once('/').unwrap().0;
    let store = Store::connect(&format!("{base}/{db}")).await.unwrap();
    (TestDb { store, _dir: None }, db)
}

/// Runs `case` on both databases.
async fn both<F, Fut>(case: F)
where
    F: Fn(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let s = sqlite().await;
    case(s.store.clone()).await;
    let (p, db) = postgres().await;
    case(p.store.clone()).await;
    p.store.close().await;
    raw(
        &std::env::var("WM_TEST_POSTGRES_URL").unwrap(),
        &format!("DROP DATABASE {db} WITH (FORCE)"),
    )
    .await;
}

/// A bare connection for creating and dropping test databases.
async fn raw(url: &str, sql: &str) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    sqlx::query(sql).execute(&pool).await.unwrap();
    pool.close().await;
}

fn user(name: &str, role: Role) -> User {
    User {
        name: UserName::parse(name).unwrap(),
        display_name: Some(format!("{name} display")),
        role,
        source: UserSource::Local,
        password_hash: Some("hash".into()),
        uid_number: Some(1000),
        created_at: 1_700_000_000,
        disabled: false,
    }
}

fn container(owner: &str, short: &str) -> ContainerRecord {
    let o = UserName::parse(owner).unwrap();
    let s = ShortName::parse(short).unwrap();
    ContainerRecord {
        name: ContainerName::new(&o, &s).unwrap(),
        owner: o,
        short_name: s,
        image: "busybox:latest".into(),
        backend: Backend::Docker,
        host: "h1".into(),
        status: ContainerStatus::Creating,
        env: vec!["A=1".into(), "B=two words".into()],
        engine_id: None,
        created_at: 1_700_000_100,
        ports: Vec::new(),
        memory_bytes: 1 << 30,
        nano_cpus: 1_000_000_000,
        gpus: Vec::new(),
        expires_at: None,
        expiry_set_by: None,
        last_activity_at: None,
        idle_since: None,
        stop_reason: None,
    }
}

/// The key of `owner`'s container `short`.
fn k(owner: &str, short: &str) -> ContainerKey {
    ContainerKey::new(
        &UserName::parse(owner).unwrap(),
        &ShortName::parse(short).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn users_round_trip_and_names_are_unique() {
    both(|s| async move {
        s.insert_user(&user("alice", Role::Student)).await.unwrap();
        s.insert_user(&user("bob", Role::Teacher)).await.unwrap();
        let a = s.user("alice").await.unwrap().unwrap();
        assert_eq!(a.name.as_str(), "alice");
        assert_eq!(a.role, Role::Student);
        assert_eq!(a.source, UserSource::Local);
        assert_eq!(a.display_name.as_deref(), Some("alice display"));
        assert_eq!(a.uid_number, Some(1000));
        assert!(s.user("carol").await.unwrap().is_none());
        let dup = s.insert_user(&user("alice", Role::Admin)).await;
        assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
        let names: Vec<String> = s
            .users()
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.name.to_string())
            .collect();
        assert_eq!(names, ["alice", "bob"]);

        let admin = UserName::parse("admin").unwrap();
        s.upsert_local_user(&admin, Role::Admin, "h1", 5)
            .await
            .unwrap();
        s.upsert_local_user(&admin, Role::Admin, "h2", 6)
            .await
            .unwrap();
        let a = s.user("admin").await.unwrap().unwrap();
        assert_eq!(a.password_hash.as_deref(), Some("h2"));
        assert_eq!(a.created_at, 5);
    })
    .await;
}

#[tokio::test]
async fn directory_users_are_created_then_refreshed() {
    both(|s| async move {
        let tina = UserName::parse("tina").unwrap();
        let u = s
            .upsert_directory_user(&tina, Some("Tina"), Some(2002), Role::Student, 10)
            .await
            .unwrap();
        assert_eq!(u.source, UserSource::Ldap);
        assert_eq!(u.role, Role::Student);
        assert!(u.password_hash.is_none());
        let u = s
            .upsert_directory_user(&tina, Some("Tina T."), Some(2002), Role::Teacher, 20)
            .await
            .unwrap();
        assert_eq!(
            u.role,
            Role::Teacher,
            "roles follow the groups at each login"
        );
        assert_eq!(u.display_name.as_deref(), Some("Tina T."));
        assert_eq!(u.created_at, 10);
        s.insert_user(&user("admin", Role::Admin)).await.unwrap();
        let clash = s
            .upsert_directory_user(
                &UserName::parse("admin").unwrap(),
                None,
                None,
                Role::Admin,
                30,
            )
            .await;
        assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");
        assert_eq!(
            s.user("admin").await.unwrap().unwrap().source,
            UserSource::Local
        );
    })
    .await;
}

#[tokio::test]
async fn tokens_expire_and_are_revoked() {
    both(|s| async move {
        s.insert_user(&user("alice", Role::Student)).await.unwrap();
        let t = Token {
            hash: "h-session".into(),
            id: "id1".into(),
            user: UserName::parse("alice").unwrap(),
            kind: TokenKind::Session,
            name: None,
            scope: Scope::All,
            created_at: 100,
            expires_at: Some(200),
            last_used_at: None,
        };
        s.insert_token(&t).await.unwrap();
        let (found, u) = s.token("h-session", 150).await.unwrap().unwrap();
        assert_eq!(found.id, "id1");
        assert_eq!(found.kind, TokenKind::Session);
        assert_eq!(u.name.as_str(), "alice");
        assert!(
            s.token("h-session", 200).await.unwrap().is_none(),
            "expired"
        );
        assert!(s.token("nope", 150).await.unwrap().is_none());

        s.touch_token("h-session", 160).await.unwrap();
        let (found, _) = s.token("h-session", 170).await.unwrap().unwrap();
        assert_eq!(found.last_used_at, Some(160));

        let pat = Token {
            hash: "h-pat".into(),
            id: "id2".into(),
            kind: TokenKind::Personal,
            name: Some("ci".into()),
            scope: Scope::Build,
            expires_at: None,
            ..t.clone()
        };
        s.insert_token(&pat).await.unwrap();
        let (found, _) = s.token("h-pat", i64::MAX - 1).await.unwrap().unwrap();
        assert_eq!(found.scope, Scope::Build);
        assert_eq!(found.name.as_deref(), Some("ci"));

        let listed = s.personal_tokens("alice").await.unwrap();
        assert_eq!(listed.len(), 1, "sessions are not listed");
        assert_eq!(listed[0].id, "id2");
        assert_eq!(listed[0].name.as_deref(), Some("ci"));
        assert!(
            !s.delete_personal_token("bob", "id2").await.unwrap(),
            "not bob's"
        );
        assert!(
            !s.delete_personal_token("alice", "id1").await.unwrap(),
            "a session"
        );
        assert_eq!(s.purge_expired_tokens(300).await.unwrap(), 1);
        assert!(s.delete_personal_token("alice", "id2").await.unwrap());
        s.insert_token(&pat).await.unwrap();
        s.delete_token("h-pat").await.unwrap();
        assert!(s.token("h-pat", 0).await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn containers_and_port_leases() {
    both(|s| async move {
        s.insert_user(&user("alice", Role::Student)).await.unwrap();
        s.insert_user(&user("bob", Role::Student)).await.unwrap();
        let web = container("alice", "web");
        s.insert_container(&web).await.unwrap();
        assert!(matches!(
            s.insert_container(&web).await,
            Err(StoreError::Conflict(_))
        ));
        s.insert_container(&container("bob", "db")).await.unwrap();

        let g = |n| GuestPort::new(n).unwrap();
        assert!(s
            .lease_port("h1", 40000, &k("alice", "web"), g(80))
            .await
            .unwrap());
        assert!(s
            .lease_port("h1", 40001, &k("alice", "web"), g(22))
            .await
            .unwrap());
        // Taken on h1, free on h2.
        assert!(!s
            .lease_port("h1", 40000, &k("bob", "db"), g(5432))
            .await
            .unwrap());
        assert!(s
            .lease_port("h2", 40000, &k("bob", "db"), g(5432))
            .await
            .unwrap());

        let got = s.container(&k("alice", "web")).await.unwrap().unwrap();
        assert_eq!(got.env, ["A=1", "B=two words"]);
        let ports: Vec<(u16, u16)> = got
            .ports
            .iter()
            .map(|p| (p.guest.get(), p.host_port))
            .collect();
        assert_eq!(ports, [(22, 40001), (80, 40000)]);

        let mine = s.containers(Some("alice")).await.unwrap();
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].ports.len(), 2);
        assert_eq!(s.containers(None).await.unwrap().len(), 2);

        s.set_container_status(&k("alice", "web"), ContainerStatus::Running, Some("abc"))
            .await
            .unwrap();
        s.set_container_status(&k("alice", "web"), ContainerStatus::Exited, None)
            .await
            .unwrap();
        let got = s.container(&k("alice", "web")).await.unwrap().unwrap();
        assert_eq!(got.status, ContainerStatus::Exited);
        assert_eq!(got.engine_id.as_deref(), Some("abc"));
        let counts = s.count_containers_by_status().await.unwrap();
        assert_eq!(
            counts,
            [(ContainerStatus::Creating, 1), (ContainerStatus::Exited, 1)]
        );

        s.mark_container_gone(&k("bob", "db")).await.unwrap();
        let bob = s.container(&k("bob", "db")).await.unwrap().unwrap();
        assert_eq!(bob.status, ContainerStatus::Gone);
        assert!(bob.ports.is_empty(), "a gone container holds no ports");
        assert!(
            s.lease_port("h2", 40000, &k("bob", "db"), g(5432))
                .await
                .unwrap(),
            "its port is free again"
        );
        assert!(
            s.containers_per_host().await.unwrap().is_empty(),
            "neither a gone nor a stopped container counts on its host"
        );
        s.set_container_status(&k("alice", "web"), ContainerStatus::Running, None)
            .await
            .unwrap();
        assert_eq!(
            s.containers_per_host().await.unwrap(),
            [("h1".to_string(), 1)]
        );

        s.delete_container(&k("alice", "web")).await.unwrap();
        assert!(s.container(&k("alice", "web")).await.unwrap().is_none());
        s.insert_container(&web).await.unwrap();
        assert!(
            s.container(&k("alice", "web"))
                .await
                .unwrap()
                .unwrap()
                .ports
                .is_empty(),
            "leases go with the container"
        );
        assert!(s
            .lease_port("h1", 40001, &k("alice", "web"), g(22))
            .await
            .unwrap());
    })
    .await;
}

#[tokio::test]
async fn concurrent_leases_never_share_a_port() {
    both(|s| async move {
        s.insert_user(&user("alice", Role::Student)).await.unwrap();
        for i in 0..8 {
            s.insert_container(&container("alice", &format!("c{i}")))
                .await
                .unwrap();
        }
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    s.lease_port(
                        "h1",
                        45000,
                        &k("alice", &format!("c{i}")),
                        GuestPort::new(80).unwrap(),
                    )
                    .await
                    .unwrap()
                })
            })
            .collect();
        let mut winners = 0;
        for t in tasks {
            winners += usize::from(t.await.unwrap());
        }
        assert_eq!(winners, 1);
    })
    .await;
}

#[tokio::test]
async fn image_scans_are_kept_per_image_and_releases_outlive_rescans() {
    both(|s| async move {
        assert!(s.image_scan("sha256:aa").await.unwrap().is_none());
        let mut scan = ImageScan {
            image_id: "sha256:aa".into(),
            status: ScanStatus::Pending,
            findings: vec![],
            scanner: "clamav".into(),
            duration_ms: 0,
            scanned_at: 10,
            released_by: None,
            released_at: None,
        };
        s.set_image_scan(&scan).await.unwrap();
        assert_eq!(s.image_scan("sha256:aa").await.unwrap(), Some(scan.clone()));
        scan.status = ScanStatus::Flagged;
        scan.findings = vec!["/eicar.txt: Eicar-Test-Signature".into()];
        scan.duration_ms = 1400;
        s.set_image_scan(&scan).await.unwrap();
        assert_eq!(s.image_scans().await.unwrap(), [scan.clone()]);

        assert!(!s.release_image_scan("sha256:bb", "root", 20).await.unwrap());
        assert!(s.release_image_scan("sha256:aa", "root", 20).await.unwrap());
        // A rescan of the same content keeps the release.
        scan.scanned_at = 30;
        s.set_image_scan(&scan).await.unwrap();
        let got = s.image_scan("sha256:aa").await.unwrap().unwrap();
        assert_eq!(got.released_by.as_deref(), Some("root"));
        assert_eq!(got.released_at, Some(20));
        assert_eq!(got.scanned_at, 30);

        let pending = ImageScan {
            image_id: "sha256:cc".into(),
            status: ScanStatus::Pending,
            ..scan.clone()
        };
        s.set_image_scan(&pending).await.unwrap();
        assert_eq!(
            s.fail_pending_image_scans("interrupted", 40).await.unwrap(),
            1
        );
        let failed = s.image_scan("sha256:cc").await.unwrap().unwrap();
        assert_eq!(failed.status, ScanStatus::Error);
        assert_eq!(failed.findings, ["interrupted"]);
        assert_eq!(
            s.image_scan("sha256:aa").await.unwrap().unwrap().status,
            ScanStatus::Flagged
        );
    })
    .await;
}

#[tokio::test]
async fn image_metadata_and_use() {
    both(|s| async move {
        let alice = UserName::parse("alice").unwrap();
        assert!(s.image_meta("wm/alice/web:1").await.unwrap().is_none());
        let mut m = ImageMeta {
            reference: "wm/alice/web:1".into(),
            owner: alice.clone(),
            description: "a web server".into(),
            shared: false,
            updated_at: 5,
        };
        s.set_image_meta(&m).await.unwrap();
        m.shared = true;
        m.description = "shared now".into();
        s.set_image_meta(&m).await.unwrap();
        assert_eq!(
            s.image_meta("wm/alice/web:1").await.unwrap(),
            Some(m.clone())
        );
        assert_eq!(s.all_image_meta().await.unwrap(), [m]);
        s.delete_image_meta("wm/alice/web:1").await.unwrap();
        assert!(s.all_image_meta().await.unwrap().is_empty());

        s.insert_user(&user("alice", Role::Student)).await.unwrap();
        let mut c = container("alice", "web");
        c.image = "wm/alice/web:1".into();
        s.insert_container(&c).await.unwrap();
        s.insert_user(&user("bob", Role::Student)).await.unwrap();
        let mut theirs = container("bob", "web");
        theirs.image = "wm/alice/web:1".into();
        s.insert_container(&theirs).await.unwrap();
        assert_eq!(
            s.image_users("wm/alice/web:1", "alice").await.unwrap(),
            (1, 1)
        );
        assert_eq!(
            s.image_users("busybox:latest", "alice").await.unwrap(),
            (0, 0)
        );
        s.mark_container_gone(&k("alice", "web")).await.unwrap();
        s.mark_container_gone(&k("bob", "web")).await.unwrap();
        assert_eq!(
            s.image_users("wm/alice/web:1", "alice").await.unwrap(),
            (0, 0),
            "gone containers use nothing"
        );
    })
    .await;
}

#[tokio::test]
async fn ci_settings_per_user() {
    both(|s| async move {
        s.insert_user(&user("alice", Role::Student)).await.unwrap();
        assert!(s.ci_settings("alice").await.unwrap().is_none());
        let mut c = CiSettings {
            owner: UserName::parse("alice").unwrap(),
            gitlab_url: "https://gitlab.example.org".into(),
            runner_token: "glrt-first".into(),
            updated_at: 1,
        };
        s.set_ci_settings(&c).await.unwrap();
        c.runner_token = "glrt-second".into();
        c.updated_at = 2;
        s.set_ci_settings(&c).await.unwrap();
        assert_eq!(s.ci_settings("alice").await.unwrap(), Some(c.clone()));
        assert!(!format!("{c:?}").contains("glrt"), "the token never prints");
        assert_eq!(s.all_ci_settings().await.unwrap(), vec![c.clone()]);
        s.delete_ci_settings("alice").await.unwrap();
        assert!(s.all_ci_settings().await.unwrap().is_empty());
        assert!(s.ci_settings("alice").await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn audit_log_newest_first() {
    both(|s| async move {
        for i in 0..5 {
            s.record_audit(&AuditEntry {
                id: format!("a{i}"),
                at: 1000 + i,
                actor: Some("alice".into()),
                action: if i % 2 == 0 {
                    "container.create"
                } else {
                    "container.stop"
                }
                .into(),
                target: Some(format!("alice-c{i}")),
                result: 201,
                detail: None,
                source: Some("192.0.2.1".into()),
            })
            .await
            .unwrap();
        }
        let log = s.audit_log(3).await.unwrap();
        let ids: Vec<&str> = log.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["a4", "a3", "a2"]);
        assert_eq!(log[0].result, 201);
        assert_eq!(log[0].actor.as_deref(), Some("alice"));
        assert_eq!(log[0].source.as_deref(), Some("192.0.2.1"));

        let ids = |log: Vec<AuditEntry>| log.into_iter().map(|e| e.id).collect::<Vec<_>>();
        let f = |edit: &dyn Fn(&mut AuditFilter)| {
            let mut f = AuditFilter {
                limit: 100,
                ..AuditFilter::default()
            };
            edit(&mut f);
            f
        };
        let search = |f: AuditFilter| {
            let s = s.clone();
            async move { s.audit_search(&f).await.unwrap() }
        };
        assert_eq!(
            ids(search(f(&|f| f.action = Some("container.stop".into()))).await),
            ["a3", "a1"]
        );
        assert_eq!(
            ids(search(f(&|f| f.action = Some("container.".into()))).await).len(),
            5
        );
        assert_eq!(
            ids(search(f(&|f| f.target = Some("alice-c2".into()))).await),
            ["a2"]
        );
        assert!(search(f(&|f| f.actor = Some("bob".into())))
            .await
            .is_empty());
        // A page: older than a4, at or after 1001, two at most.
        assert_eq!(
            ids(search(f(&|f| {
                f.until = Some(1004);
                f.since = Some(1001);
                f.limit = 2;
            }))
            .await),
            ["a3", "a2"]
        );
    })
    .await;
}

#[tokio::test]
async fn courses_members_and_accounts() {
    both(|s| async move {
        for (n, r) in [
            ("teach", Role::Teacher),
            ("stud", Role::Student),
            ("other", Role::Student),
        ] {
            s.insert_user(&user(n, r)).await.unwrap();
        }
        let name = |n: &str| UserName::parse(n).unwrap();
        let course = Course {
            id: "c1".into(),
            name: "Networks".into(),
            term: Some("2026 spring".into()),
            owner: name("teach"),
            ends_at: Some(1_800_000_000),
            ldap_group: None,
            host_labels: vec!["gpu".into()],
            created_at: 1,
            members: Vec::new(),
            join_code: None,
        };
        s.insert_course(&course).await.unwrap();
        s.add_course_members("c1", &[name("stud")], 2)
            .await
            .unwrap();
        // Enrolling twice changes nothing.
        s.add_course_members("c1", &[name("stud")], 3)
            .await
            .unwrap();
        let got = s.course("c1").await.unwrap().unwrap();
        assert_eq!(got.members, [name("stud")]);
        assert_eq!(
            s.courses(Some("teach"), Some("teach")).await.unwrap().len(),
            1
        );
        assert_eq!(
            s.courses(Some("stud"), Some("stud")).await.unwrap().len(),
            1
        );
        assert!(s
            .courses(Some("other"), Some("other"))
            .await
            .unwrap()
            .is_empty());
        assert_eq!(s.courses(None, None).await.unwrap().len(), 1);
        assert!(s.remove_course_member("c1", "stud").await.unwrap());
        assert!(!s.remove_course_member("c1", "stud").await.unwrap());

        // Enrolment by directory group follows the groups; enrolment by name stays.
        let mut grouped = course.clone();
        grouped.id = "c2".into();
        grouped.ldap_group = Some("os".into());
        s.insert_course(&grouped).await.unwrap();
        s.add_course_members("c2", &[name("other")], 4)
            .await
            .unwrap();
        for u in ["stud", "other"] {
            s.sync_group_courses(u, &["os".into()], 5).await.unwrap();
        }
        assert_eq!(
            s.course("c2").await.unwrap().unwrap().members,
            [name("other"), name("stud")]
        );
        for u in ["stud", "other"] {
            s.sync_group_courses(u, &[], 6).await.unwrap();
        }
        assert_eq!(
            s.course("c2").await.unwrap().unwrap().members,
            [name("other")]
        );

        // Disabling revokes every token, and a disabled user's token does not authenticate.
        s.insert_token(&Token {
            hash: "h1".into(),
            id: "i1".into(),
            user: name("stud"),
            kind: TokenKind::Personal,
            name: Some("t".into()),
            scope: Scope::All,
            created_at: 1,
            expires_at: None,
            last_used_at: None,
        })
        .await
        .unwrap();
        assert!(s.token("h1", 2).await.unwrap().is_some());
        assert!(s.set_user_disabled("stud", true).await.unwrap());
        assert!(s.token("h1", 2).await.unwrap().is_none());
        assert!(s.user("stud").await.unwrap().unwrap().disabled);
        assert!(s.set_user_disabled("stud", false).await.unwrap());
        assert!(!s.user("stud").await.unwrap().unwrap().disabled);
        assert!(s.set_user_role("stud", Role::Teacher).await.unwrap());
        assert_eq!(s.user("stud").await.unwrap().unwrap().role, Role::Teacher);

        // Deleting the teacher takes their course with it.
        assert!(s.delete_user("teach").await.unwrap());
        assert!(s.course("c1").await.unwrap().is_none());
        assert!(s.user("teach").await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn migrations_are_idempotent() {
    both(|s| async move {
        s.ping().await.unwrap();
    })
    .await;
    // Connecting twice to the same SQLite file runs the migrator twice.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/wm.db", dir.path().display());
    let a = Store::connect(&url).await.unwrap();
    a.insert_user(&user("alice", Role::Student)).await.unwrap();
    a.close().await;
    let b = Store::connect(&url).await.unwrap();
    assert!(b.user("alice").await.unwrap().is_some());
}

#[tokio::test]
async fn drained_hosts() {
    both(|s| async move {
        assert!(s.drained_hosts().await.unwrap().is_empty());
        s.set_host_drained("h2", true, 1).await.unwrap();
        s.set_host_drained("h2", true, 2).await.unwrap();
        s.set_host_drained("h1", true, 3).await.unwrap();
        assert_eq!(s.drained_hosts().await.unwrap(), ["h1", "h2"]);
        s.set_host_drained("h1", false, 4).await.unwrap();
        s.set_host_drained("h3", false, 5).await.unwrap();
        assert_eq!(s.drained_hosts().await.unwrap(), ["h2"]);
    })
    .await;
}

/// User names may hold '-': `ab-c`'s `web` and `ab`'s `c-web` are both `ab-c-web` to
/// people, and must be two containers here, each with its own ports.
#[tokio::test]
async fn one_full_name_two_owners() {
    both(|s| async move {
        s.insert_user(&user("ab-c", Role::Student)).await.unwrap();
        s.insert_user(&user("ab", Role::Student)).await.unwrap();
        let first = container("ab-c", "web");
        let second = container("ab", "c-web");
        assert_eq!(first.name, second.name);
        s.insert_container(&first).await.unwrap();
        s.insert_container(&second)
            .await
            .expect("another owner's container of the same full name is no conflict");
        assert!(matches!(
            s.insert_container(&second).await,
            Err(StoreError::Conflict(_))
        ));
        let g = |n| GuestPort::new(n).unwrap();
        assert!(s
            .lease_port("h1", 41000, &k("ab-c", "web"), g(80))
            .await
            .unwrap());
        assert!(s
            .lease_port("h1", 41001, &k("ab", "c-web"), g(80))
            .await
            .unwrap());

        let named = s.containers_named("ab-c-web").await.unwrap();
        let owners: Vec<&str> = named.iter().map(|c| c.owner.as_str()).collect();
        assert_eq!(owners, ["ab", "ab-c"]);
        assert_eq!(named[0].ports[0].host_port, 41001);
        assert_eq!(named[1].ports[0].host_port, 41000);
        let mine = s.containers(Some("ab")).await.unwrap();
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].short_name.as_str(), "c-web");
        assert_eq!(mine[0].ports.len(), 1);

        s.set_container_status(&k("ab", "c-web"), ContainerStatus::Running, Some("id2"))
            .await
            .unwrap();
        assert_eq!(
            s.container(&k("ab-c", "web"))
                .await
                .unwrap()
                .unwrap()
                .status,
            ContainerStatus::Creating,
            "a status goes to its own container only"
        );
        s.mark_container_gone(&k("ab-c", "web")).await.unwrap();
        assert_eq!(
            s.container(&k("ab", "c-web"))
                .await
                .unwrap()
                .unwrap()
                .ports
                .len(),
            1,
            "the other owner's ports stay"
        );
        s.delete_container(&k("ab-c", "web")).await.unwrap();
        assert!(s.container(&k("ab-c", "web")).await.unwrap().is_none());
        assert_eq!(s.containers_named("ab-c-web").await.unwrap().len(), 1);
    })
    .await;
}

/// A database made by a version that keyed containers by full name keeps its
/// containers and their ports through the upgrade.
#[tokio::test]
async fn upgrade_keeps_containers_keyed_by_full_name() {
    // The migrations of that version, applied to a fresh database of each kind.
    let old = tempfile::tempdir().unwrap();
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for f in std::fs::read_dir(&here).unwrap() {
        let f = f.unwrap();
        let name = f.file_name().to_string_lossy().to_string();
        if name.as_str() < "0005" {
            std::fs::copy(f.path(), old.path().join(&name)).unwrap();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite://{}/wm.db?mode=rwc", dir.path().display());
    let pg_admin = std::env::var("WM_TEST_POSTGRES_URL").expect("WM_TEST_POSTGRES_URL");
    let pg_db = format!("wm_test_{}", uuid::Uuid::new_v4().simple());
    raw(&pg_admin, &format!("CREATE DATABASE {pg_db}")).await;
    let pg_url = format!("{}/{pg_db}", pg_admin.rsplit_once('/').unwrap().0);
    for url in [&sqlite_url, &pg_url] {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(url).await.unwrap();
        sqlx::migrate::Migrator::new(old.path())
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap();
        for sql in [
            "INSERT INTO users (name, role, source, created_at) VALUES ('ab-c', 'student', 'local', 1)",
            "INSERT INTO containers (name, owner, short_name, image, backend, host, status, env, engine_id, created_at) \
             VALUES ('ab-c-web', 'ab-c', 'web', 'busybox', 'docker', 'h1', 'running', '[]', 'e1', 2)",
            "INSERT INTO port_leases (host, host_port, container, guest_port) VALUES ('h1', 42000, 'ab-c-web', 80)",
        ] {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        pool.close().await;

        let s = Store::connect(url).await.unwrap();
        let c = s.container(&k("ab-c", "web")).await.unwrap().unwrap();
        assert_eq!(c.name.as_str(), "ab-c-web");
        assert_eq!(c.status, ContainerStatus::Running);
        assert_eq!(c.engine_id.as_deref(), Some("e1"));
        assert_eq!(c.ports.len(), 1);
        assert_eq!(c.ports[0].host_port, 42000);
        // The lease still holds its port, and still goes with its container.
        assert!(!s
            .lease_port("h1", 42000, &k("ab-c", "web"), GuestPort::new(81).unwrap())
            .await
            .unwrap());
        s.insert_user(&user("ab", Role::Student)).await.unwrap();
        s.insert_container(&container("ab", "c-web")).await.unwrap();
        s.delete_container(&k("ab-c", "web")).await.unwrap();
        assert!(s
            .lease_port("h1", 42000, &k("ab", "c-web"), GuestPort::new(80).unwrap())
            .await
            .unwrap());
        s.close().await;
    }
    raw(&pg_admin, &format!("DROP DATABASE {pg_db} WITH (FORCE)")).await;
}

/// A status, backend or scope the product does not know, written behind the store's back,
/// is an error naming the row and the value, not a panic and not a silent default.
#[tokio::test]
async fn unknown_words_in_rows_are_corrupt_rows() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/wm.db", dir.path().display());
    let s = Store::connect(&url).await.unwrap();
    s.insert_user(&user("alice", Role::Student)).await.unwrap();
    s.insert_container(&container("alice", "web"))
        .await
        .unwrap();
    assert_eq!(
        s.container(&k("alice", "web"))
            .await
            .unwrap()
            .unwrap()
            .backend,
        Backend::Docker
    );

    raw(&url, "UPDATE containers SET status = 'sleeping'").await;
    match s.container(&k("alice", "web")).await {
        Err(StoreError::Corrupt(m)) => {
            assert!(m.contains("alice-web") && m.contains("sleeping"), "{m}")
        }
        other => panic!("expected a corrupt row, got {other:?}"),
    }
    assert!(matches!(
        s.count_containers_by_status().await,
        Err(StoreError::Corrupt(_))
    ));

    raw(
        &url,
        "UPDATE containers SET status = 'running', backend = 'podman'",
    )
    .await;
    match s.containers(Some("alice")).await {
        Err(StoreError::Corrupt(m)) => assert!(m.contains("podman"), "{m}"),
        other => panic!("expected a corrupt row, got {other:?}"),
    }
    s.close().await;
}

#[tokio::test]
async fn gpu_places_are_leased_once_and_go_with_their_container() {
    both(|s| async move {
        s.insert_user(&user("alice", Role::Student)).await.unwrap();
        s.insert_user(&user("bob", Role::Student)).await.unwrap();
        let mut a = container("alice", "train");
        a.gpus = vec!["g0".into()];
        s.insert_container_with_gpus(&a, &[("g0".into(), 0)])
            .await
            .unwrap();
        // The same place again: a conflict, and nothing of bob's container is kept.
        let b = container("bob", "train");
        assert!(matches!(
            s.insert_container_with_gpus(&b, &[("g0".into(), 0)]).await,
            Err(StoreError::Conflict(what)) if what.starts_with("place 0 of GPU g0")
        ));
        assert!(s.container(&k("bob", "train")).await.unwrap().is_none());
        // Another place of the same GPU is free.
        s.insert_container_with_gpus(&b, &[("g0".into(), 1)])
            .await
            .unwrap();
        let got = s.container(&k("alice", "train")).await.unwrap().unwrap();
        assert_eq!(got.gpus, ["g0"]);
        assert_eq!(got.memory_bytes, 1 << 30);
        let listed = s.containers(Some("bob")).await.unwrap();
        assert_eq!(listed[0].gpus, ["g0"]);
        let usage = s.usage(Some("alice")).await.unwrap();
        assert_eq!(usage.len(), 1);
        assert_eq!(usage[0].1.gpus, 1);
        assert_eq!(usage[0].1.containers, 1);
        assert_eq!(usage[0].1.running, 1, "creating counts as running");
        assert_eq!(usage[0].1.memory_bytes, 1 << 30);
        assert_eq!(
            s.memory_per_host().await.unwrap(),
            vec![("h1".to_string(), 2 << 30)]
        );
        // Gone: the place is free again; deleted: the record too.
        s.mark_container_gone(&k("alice", "train")).await.unwrap();
        assert_eq!(s.gpu_leases(None).await.unwrap().len(), 1);
        assert!(s
            .lease_gpu("h1", "g0", 0, &k("bob", "train"))
            .await
            .unwrap());
        assert!(!s
            .lease_gpu("h1", "g0", 0, &k("alice", "train"))
            .await
            .unwrap());
        s.delete_container(&k("bob", "train")).await.unwrap();
        assert!(s.gpu_leases(None).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn quota_overrides_round_trip() {
    both(|s| async move {
        s.insert_user(&user("alice", Role::Student)).await.unwrap();
        let name = UserName::parse("alice").unwrap();
        assert!(s.quota_override("alice").await.unwrap().is_none());
        let q = QuotaOverride {
            containers: Some(10),
            gpus: Some(-1),
            ..QuotaOverride::default()
        };
        s.set_quota_override(&name, &q, 1).await.unwrap();
        assert_eq!(s.quota_override("alice").await.unwrap(), Some(q));
        let q2 = QuotaOverride {
            running: Some(1),
            ..QuotaOverride::default()
        };
        s.set_quota_override(&name, &q2, 2).await.unwrap();
        assert_eq!(s.quota_overrides().await.unwrap(), vec![(name, q2)]);
        s.delete_quota_override("alice").await.unwrap();
        assert!(s.quota_override("alice").await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn expiry_idleness_and_stop_reasons() {
    both(|s| async move {
        s.insert_user(&user("alice", Role::Student)).await.unwrap();
        let mut c = container("alice", "web");
        c.expires_at = Some(1_800_000_000);
        c.expiry_set_by = Some("alice".into());
        s.insert_container(&c).await.unwrap();
        let key = k("alice", "web");
        let got = s.container(&key).await.unwrap().unwrap();
        assert_eq!(got.expires_at, Some(1_800_000_000));
        assert_eq!(got.expiry_set_by.as_deref(), Some("alice"));
        assert_eq!((got.idle_since, got.stop_reason), (None, None));

        s.set_container_expiry(&key, Some(1_900_000_000), Some("admin"))
            .await
            .unwrap();
        s.set_container_idle_since(&key, Some(1_700_000_500))
            .await
            .unwrap();
        let got = s.containers(Some("alice")).await.unwrap().remove(0);
        assert_eq!(got.expires_at, Some(1_900_000_000));
        assert_eq!(got.expiry_set_by.as_deref(), Some("admin"));
        assert_eq!(got.idle_since, Some(1_700_000_500));

        s.touch_container(&key, 1_700_000_600).await.unwrap();
        let got = s.container(&key).await.unwrap().unwrap();
        assert_eq!(got.last_activity_at, Some(1_700_000_600));
        assert_eq!(got.idle_since, None, "activity ends idleness");

        s.set_container_idle_since(&key, Some(1_700_000_700))
            .await
            .unwrap();
        s.set_container_stop_reason(&key, Some(StopReason::Idle))
            .await
            .unwrap();
        let got = s.container(&key).await.unwrap().unwrap();
        assert_eq!(got.stop_reason, Some(StopReason::Idle));
        assert_eq!(got.idle_since, None);
        s.set_container_stop_reason(&key, None).await.unwrap();
        s.set_container_expiry(&key, None, None).await.unwrap();
        let got = s.container(&key).await.unwrap().unwrap();
        assert_eq!(
            (got.stop_reason, got.expires_at, got.expiry_set_by),
            (None, None, None)
        );
        assert_eq!(s.images_in_use().await.unwrap(), ["busybox:latest"]);
    })
    .await;
}

#[tokio::test]
async fn storage_usage_is_kept_per_host_and_summed() {
    both(|s| async move {
        s.set_storage_usage("alice", &[("h1", 100)], 1)
            .await
            .unwrap();
        s.set_storage_usage("alice", &[("h2", 50)], 2)
            .await
            .unwrap();
        // A new measurement replaces the old one; several hosts at once.
        s.set_storage_usage("alice", &[("h1", 300)], 3)
            .await
            .unwrap();
        s.set_storage_usage("bob", &[("h1", 7), ("h2", 9)], 3)
            .await
            .unwrap();
        assert_eq!(
            s.storage_usage("alice").await.unwrap(),
            vec![("h1".to_string(), 300, 3), ("h2".to_string(), 50, 2)]
        );
        let usage = s.usage(Some("alice")).await.unwrap();
        assert_eq!(usage.len(), 1);
        assert_eq!(usage[0].1.storage_bytes, 350);
        assert_eq!(usage[0].1.containers, 0);
        let all = s.usage(None).await.unwrap();
        assert_eq!(
            all.iter()
                .find(|(u, _)| u.as_str() == "bob")
                .unwrap()
                .1
                .storage_bytes,
            16
        );
        s.delete_storage_usage("alice", "h1").await.unwrap();
        assert_eq!(s.usage(Some("alice")).await.unwrap()[0].1.storage_bytes, 50);
    })
    .await;
}

#[tokio::test]
async fn storage_is_remeasured_where_containers_are_or_were() {
    both(|s| async move {
        s.insert_user(&user("alice", Role::Student)).await.unwrap();
        s.insert_user(&user("bob", Role::Student)).await.unwrap();
        let hosts = |s: Store| async move {
            let mut h: Vec<String> = s
                .storage_written_on("alice")
                .await
                .unwrap()
                .into_iter()
                .collect();
            h.sort();
            h
        };
        s.set_storage_usage("alice", &[("h1", 10), ("h2", 20)], 5)
            .await
            .unwrap();
        assert!(hosts(s.clone()).await.is_empty(), "measured, no container");
        // A container on h1 writes there; bob's does not count for alice.
        s.insert_container(&container("alice", "web"))
            .await
            .unwrap();
        let mut db = container("bob", "db");
        db.host = "h2".into();
        s.insert_container(&db).await.unwrap();
        assert_eq!(hosts(s.clone()).await, ["h1"]);
        // Gone from h1 (deleted, or vanished from its host): h1 stays to measure, with its
        // last figure, until measured again.
        s.delete_container(&k("alice", "web")).await.unwrap();
        assert_eq!(hosts(s.clone()).await, ["h1"]);
        assert_eq!(s.usage(Some("alice")).await.unwrap()[0].1.storage_bytes, 30);
        s.set_storage_usage("alice", &[("h1", 40)], 6)
            .await
            .unwrap();
        assert!(hosts(s.clone()).await.is_empty());
        // A host never measured for alice gets a figure to measure.
        let mut lab = container("alice", "lab");
        lab.host = "h3".into();
        s.insert_container(&lab).await.unwrap();
        s.mark_container_gone(&k("alice", "lab")).await.unwrap();
        s.delete_container(&k("alice", "lab")).await.unwrap();
        assert_eq!(hosts(s.clone()).await, ["h3"]);
        assert_eq!(
            s.storage_usage("alice").await.unwrap(),
            vec![
                ("h1".to_string(), 40, 6),
                ("h2".to_string(), 20, 5),
                ("h3".to_string(), 0, 0)
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn vms_images_ports_and_usage() {
    use wm_store::{PortLease, VmImageRecord, VmRecord};
    both(|s| async move {
        let alice = UserName::parse("alice").unwrap();
        let name = |n: &str| wm_domain::ShortName::parse(n).unwrap();
        let image = VmImageRecord {
            owner: alice.clone(),
            name: name("debian"),
            format: "qcow2".into(),
            virtual_size: 10 << 20,
            size: 3 << 20,
            host: "h1".into(),
            created_at: 1,
        };
        s.insert_vm_image(&image).await.unwrap();
        assert!(matches!(
            s.insert_vm_image(&image).await,
            Err(StoreError::Conflict(_))
        ));
        let vm = VmRecord {
            owner: alice.clone(),
            short_name: name("os"),
            template: "small".into(),
            image_owner: alice.clone(),
            image: name("debian"),
            host: "h1".into(),
            status: "shutoff".into(),
            vcpus: 2,
            memory_bytes: 256 << 20,
            disk_bytes: 10 << 20,
            created_at: 2,
            ports: vec![PortLease {
                guest: wm_domain::GuestPort::new(22).unwrap(),
                host_port: 40022,
            }],
        };
        s.insert_vm(&vm).await.unwrap();
        // The port is taken: a second VM with it is refused and nothing of it is kept.
        let mut other = vm.clone();
        other.short_name = name("os2");
        assert!(matches!(
            s.insert_vm(&other).await,
            Err(StoreError::Conflict(_))
        ));
        assert!(s.vm(&other.key()).await.unwrap().is_none());
        // Ports lent after the record was made: the same rule.
        other.ports.clear();
        s.insert_vm(&other).await.unwrap();
        assert!(matches!(
            s.lease_vm_ports(&other.key(), "h1", &vm.ports).await,
            Err(StoreError::Conflict(_))
        ));
        assert!(s.vm(&other.key()).await.unwrap().unwrap().ports.is_empty());
        s.delete_vm(&other.key()).await.unwrap();
        assert!(!s
            .delete_vm_image_unused(&alice, &name("debian"))
            .await
            .unwrap());

        let u = |s: Store| async move { s.usage(Some("alice")).await.unwrap()[0].1 };
        let before = u(s.clone()).await;
        assert_eq!(before.ports, 1);
        assert_eq!(before.storage_bytes, (10 << 20) + (3 << 20));
        assert_eq!(before.memory_bytes, 0);
        s.set_vm_status(&vm.key(), "running").await.unwrap();
        let running = u(s.clone()).await;
        assert_eq!(running.nano_cpus, 2_000_000_000);
        assert_eq!(running.memory_bytes, 256 << 20);
        assert_eq!(running.running, 1);

        let got = s.vm(&vm.key()).await.unwrap().unwrap();
        assert_eq!(got.ports, vm.ports);
        assert_eq!(s.vms(Some(&alice)).await.unwrap().len(), 1);
        s.delete_vm(&vm.key()).await.unwrap();
        other.short_name = name("os3");
        s.insert_vm(&other).await.unwrap();
        s.lease_vm_ports(&other.key(), "h1", &vm.ports)
            .await
            .unwrap();
        assert_eq!(s.vm(&other.key()).await.unwrap().unwrap().ports, vm.ports);
        s.delete_vm(&other.key()).await.unwrap();
        assert!(s
            .delete_vm_image_unused(&alice, &name("debian"))
            .await
            .unwrap());
        assert!(s.vm_images(None).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn course_join_codes_image_names_and_quotas() {
    both(|s| async move {
        for (n, r) in [("teach", Role::Teacher), ("stud", Role::Student)] {
            s.insert_user(&user(n, r)).await.unwrap();
        }
        let name = |n: &str| UserName::parse(n).unwrap();
        let course = |id: &str, ends_at: Option<i64>| Course {
            id: id.into(),
            name: "Networks".into(),
            term: None,
            owner: name("teach"),
            ends_at,
            ldap_group: None,
            host_labels: Vec::new(),
            created_at: 1,
            members: Vec::new(),
            join_code: None,
        };
        s.insert_course(&course("c1", None)).await.unwrap();
        s.insert_course(&course("c2", Some(1_000))).await.unwrap();

        // A join code finds its course; two courses never share one; none finds nothing.
        assert!(s
            .set_course_join_code("c1", Some("ABCDEFGHJK"))
            .await
            .unwrap());
        let found = s.course_by_join_code("ABCDEFGHJK").await.unwrap().unwrap();
        assert_eq!(found.id, "c1");
        assert_eq!(found.join_code.as_deref(), Some("ABCDEFGHJK"));
        let taken = s.set_course_join_code("c2", Some("ABCDEFGHJK")).await;
        assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
        assert!(s.set_course_join_code("c2", None).await.unwrap());
        assert!(s.set_course_join_code("c1", None).await.unwrap());
        assert!(s.course_by_join_code("ABCDEFGHJK").await.unwrap().is_none());
        assert!(!s.set_course_join_code("nope", None).await.unwrap());

        // A course's name for an image stays while the share does.
        let shared = |courses: &[&str]| courses.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        s.set_image_courses("wm/teach/ex:3", "teach", &shared(&["c1", "c2"]))
            .await
            .unwrap();
        assert!(s
            .set_course_image_note("c1", "wm/teach/ex:3", Some("Exercise 3"), Some("use it"))
            .await
            .unwrap());
        assert!(!s
            .set_course_image_note("c1", "wm/teach/other:1", Some("x"), None)
            .await
            .unwrap());
        s.set_image_courses("wm/teach/ex:3", "teach", &shared(&["c1"]))
            .await
            .unwrap();
        let images = s.course_images("c1").await.unwrap();
        assert_eq!(images.len(), 1);
        assert_eq!(images[0].title.as_deref(), Some("Exercise 3"));
        assert_eq!(images[0].note.as_deref(), Some("use it"));
        assert!(s.course_images("c2").await.unwrap().is_empty());
        s.add_course_members("c1", &[name("stud")], 2)
            .await
            .unwrap();
        let seen = s.image_courses_for("stud").await.unwrap();
        assert_eq!(seen, images);
        s.set_image_courses("wm/teach/ex:3", "teach", &[])
            .await
            .unwrap();
        s.set_image_courses("wm/teach/ex:3", "teach", &shared(&["c1"]))
            .await
            .unwrap();
        assert_eq!(s.course_images("c1").await.unwrap()[0].title, None);

        // Course quotas: a member's, of running courses only.
        let q = QuotaOverride {
            containers: Some(4),
            gpus: Some(-1),
            ..Default::default()
        };
        s.set_course_quota("c1", &q, 3).await.unwrap();
        s.set_course_quota("c2", &QuotaOverride::default(), 3)
            .await
            .unwrap();
        assert_eq!(s.course_quota("c1").await.unwrap(), Some(q));
        s.add_course_members("c2", &[name("stud")], 2)
            .await
            .unwrap();
        let of = s.member_course_quotas(Some("stud"), 500).await.unwrap();
        assert_eq!(of.len(), 2, "{of:?}");
        let later = s.member_course_quotas(Some("stud"), 2_000).await.unwrap();
        assert_eq!(later, vec![(name("stud"), q)], "c2 has ended");
        assert_eq!(s.member_course_quotas(None, 2_000).await.unwrap(), later);
        assert!(s
            .member_course_quotas(Some("teach"), 500)
            .await
            .unwrap()
            .is_empty());
        s.delete_course_quota("c1").await.unwrap();
        assert_eq!(s.course_quota("c1").await.unwrap(), None);
        assert!(s
            .member_course_quotas(Some("stud"), 2_000)
            .await
            .unwrap()
            .is_empty());
    })
    .await;
}

/// Failed logins are counted per kind, pair, user name and address, over the window asked
/// for, and forgotten once older than the caller says.
#[tokio::test]
async fn login_failures_are_counted_and_forgotten() {
    both(|s| async move {
        for (kind, user, addr, at) in [
            ("login", "alice", "10.0.0.1", 1_000),
            ("login", "alice", "10.0.0.1", 2_000),
            ("login", "alice", "10.0.0.2", 3_000),
            ("login", "bob", "10.0.0.1", 4_000),
            ("join", "alice", "10.0.0.1", 5_000),
        ] {
            s.record_login_failure(kind, user, addr, at, 0)
                .await
                .unwrap();
        }
        let f = s
            .login_failures("login", "alice", "10.0.0.1", 0)
            .await
            .unwrap();
        assert_eq!(f.pair, vec![1_000, 2_000]);
        assert_eq!(f.user, vec![1_000, 2_000, 3_000]);
        assert_eq!(
            f.names,
            vec![("alice".to_string(), 2_000), ("bob".to_string(), 4_000)]
        );
        // Only failures since the window's start count.
        let f = s
            .login_failures("login", "alice", "10.0.0.1", 1_500)
            .await
            .unwrap();
        assert_eq!(f.pair, vec![2_000]);
        // The join codes' failures are their own.
        let j = s
            .login_failures("join", "alice", "10.0.0.1", 0)
            .await
            .unwrap();
        assert_eq!(j.pair, vec![5_000]);
        assert_eq!(j.names, vec![("alice".to_string(), 5_000)]);
        // A new failure forgets those before the time given.
        s.record_login_failure("login", "carol", "", 6_000, 3_500)
            .await
            .unwrap();
        let f = s
            .login_failures("login", "alice", "10.0.0.1", 0)
            .await
            .unwrap();
        assert!(f.pair.is_empty() && f.user.is_empty(), "{f:?}");
        assert_eq!(f.names, vec![("bob".to_string(), 4_000)]);
        let unknown = s.login_failures("login", "carol", "", 0).await.unwrap();
        assert_eq!(unknown.pair, vec![6_000]);
    })
    .await;
}

/// On SQLite the one process leads and its own locks suffice: there is no lease to
/// take, and a lock is granted at once, also twice.
#[tokio::test]
async fn sqlite_has_no_lease_and_free_locks() {
    let s = sqlite().await;
    assert!(!s.store.is_postgres());
    assert!(s.store.leader_lease().await.unwrap().is_none());
    let a = s.store.lock("user alice").await.unwrap();
    let b = s.store.lock("user alice").await.unwrap();
    drop((a, b));
}

/// The count of advisory locks held in the database, read on a connection of its own.
async fn advisory_locks(url: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
         WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    n
}

/// Polls `f` until it holds, at most 100 times 100 ms apart.
async fn eventually<F, Fut>(what: &str, f: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..100 {
        if f().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{what} never came true");
}

/// On PostgreSQL one connection at a time holds the leader lease; it passes to another
/// when the holder's connection closes. A lock is held in the database until dropped, and
/// a second one of the same name waits for it.
#[tokio::test]
async fn postgres_lease_passes_on_and_locks_exclude() {
    let (p, db) = postgres().await;
    let admin = std::env::var("WM_TEST_POSTGRES_URL").unwrap();
    let url = format!("{}/{db}", admin.rsplit_once('/').unwrap().0);
    let s = p.store.clone();
    assert!(s.is_postgres());

    // Two consoles on one database.
    let other = Store::connect(&url).await.unwrap();
    let mut first = s
        .leader_lease()
        .await
        .unwrap()
        .expect("a lease on PostgreSQL");
    let mut second = other.leader_lease().await.unwrap().unwrap();
    // One console has one lease connection at a time.
    assert!(matches!(s.leader_lease().await, Err(StoreError::Held(_))));
    assert!(first.try_take().await.unwrap());
    assert!(!second.try_take().await.unwrap());
    first.check().await.unwrap();
    first.close().await;
    let second = std::sync::Arc::new(tokio::sync::Mutex::new(second));
    eventually("the second connection takes the lease", || {
        let second = second.clone();
        async move { second.lock().await.try_take().await.unwrap() }
    })
    .await;
    std::sync::Arc::into_inner(second)
        .unwrap()
        .into_inner()
        .close()
        .await;
    other.close().await;
    eventually("the lease is released", || async {
        advisory_locks(&url).await == 0
    })
    .await;

    let held = s.lock("user alice").await.unwrap();
    assert_eq!(advisory_locks(&url).await, 1);
    // Another name is not held up.
    let other = s.lock("user bob").await.unwrap();
    assert_eq!(advisory_locks(&url).await, 2);
    drop(other);
    let waiter = tokio::spawn({
        let s = s.clone();
        async move { s.lock("user alice").await.unwrap() }
    });
    // The waiter is queued behind the holder: its lock is asked for, not granted.
    eventually("the second lock waits", || async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        pool.close().await;
        waiting == 1
    })
    .await;
    assert!(!waiter.is_finished());
    drop(held);
    let again = waiter.await.unwrap();
    drop(again);
    eventually("every lock is released", || async {
        advisory_locks(&url).await == 0
    })
    .await;

    p.store.close().await;
    raw(&admin, &format!("DROP DATABASE {db} WITH (FORCE)")).await;
}

/// `wm migrate-store`: a SQLite store's rows, copied into an empty PostgreSQL one, read
/// back the same there (users, sessions, containers with their port leases, quotas,
/// failed logins); a store that holds anything is refused, and left as it was.
#[tokio::test]
async fn a_sqlite_store_is_copied_into_an_empty_postgresql_one() {
    let dir = tempfile::tempdir().unwrap();
    let from = format!("sqlite://{}/wm.db", dir.path().display());
    let s = Store::connect(&from).await.unwrap();
    s.insert_user(&user("alice", Role::Student)).await.unwrap();
    s.insert_user(&user("bob", Role::Teacher)).await.unwrap();
    s.insert_token(&Token {
        hash: "h-session".into(),
        id: "id1".into(),
        user: UserName::parse("alice").unwrap(),
        kind: TokenKind::Session,
        name: None,
        scope: Scope::All,
        created_at: 100,
        expires_at: Some(4_000_000_000),
        last_used_at: None,
    })
    .await
    .unwrap();
    s.insert_container(&container("alice", "web"))
        .await
        .unwrap();
    assert!(s
        .lease_port("h1", 42000, &k("alice", "web"), GuestPort::new(80).unwrap())
        .await
        .unwrap());
    let q = QuotaOverride {
        containers: Some(7),
        ..QuotaOverride::default()
    };
    s.set_quota_override(&UserName::parse("bob").unwrap(), &q, 1)
        .await
        .unwrap();
    s.record_login_failure("login", "alice", "10.0.0.1", 5_000, 0)
        .await
        .unwrap();
    s.close().await;

    let admin = std::env::var("WM_TEST_POSTGRES_URL").expect("WM_TEST_POSTGRES_URL");
    let db = format!("wm_test_{}", uuid::Uuid::new_v4().simple());
    raw(&admin, &format!("CREATE DATABASE {db}")).await;
    let to = format!("{}/{db}", admin.rsplit_once('/').unwrap().0);
    let copied = wm_store::copy_store(&from, &to).await.unwrap();
    let count = |t: &str| copied.iter().find(|(n, _)| n == t).map(|(_, n)| *n);
    assert_eq!(count("users"), Some(2));
    assert_eq!(count("containers"), Some(1));
    assert_eq!(count("port_leases"), Some(1));

    let p = Store::connect(&to).await.unwrap();
    let (token, owner) = p.token("h-session", 200).await.unwrap().unwrap();
    assert_eq!((token.id.as_str(), owner.name.as_str()), ("id1", "alice"));
    assert_eq!(p.user("bob").await.unwrap().unwrap().role, Role::Teacher);
    let c = p.container(&k("alice", "web")).await.unwrap().unwrap();
    assert_eq!(c.env, vec!["A=1".to_string(), "B=two words".to_string()]);
    assert_eq!(c.ports.len(), 1);
    assert_eq!(c.ports[0].host_port, 42000);
    // The lease still holds its port there.
    assert!(!p
        .lease_port("h1", 42000, &k("alice", "web"), GuestPort::new(81).unwrap())
        .await
        .unwrap());
    assert_eq!(p.quota_override("bob").await.unwrap(), Some(q));
    let f = p
        .login_failures("login", "alice", "10.0.0.1", 0)
        .await
        .unwrap();
    assert_eq!(f.pair, vec![5_000]);

    // Again into the same: refused, nothing doubled.
    match wm_store::copy_store(&from, &to).await {
        Err(StoreError::Backup(m)) => assert!(m.contains("not empty"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(p.users().await.unwrap().len(), 2);
    // Only into PostgreSQL.
    let other = tempfile::tempdir().unwrap();
    let into_sqlite = format!("sqlite://{}/wm.db", other.path().display());
    assert!(matches!(
        wm_store::copy_store(&from, &into_sqlite).await,
        Err(StoreError::Backup(_))
    ));
    p.close().await;
    raw(&admin, &format!("DROP DATABASE {db} WITH (FORCE)")).await;
}

/// A create in flight is its console's: another console sees it cut short only once that
/// console is gone (on PostgreSQL, its lease connection closed; on SQLite, any other
/// process), and not once the create ended.
#[tokio::test]
async fn creates_in_flight_are_cut_short_when_their_console_goes() {
    // SQLite: a second process on the same file is the one after a crash.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/wm.db", dir.path().display());
    let first = Store::connect(&url).await.unwrap();
    first
        .insert_user(&user("alice", Role::Student))
        .await
        .unwrap();
    first
        .insert_container_with_gpus(&container("alice", "web"), &[])
        .await
        .unwrap();
    first
        .insert_container_with_gpus(&container("alice", "db"), &[])
        .await
        .unwrap();
    assert!(first.creates_cut_short().await.unwrap().is_empty());
    first.create_ended(&k("alice", "db")).await.unwrap();
    let after = Store::connect(&url).await.unwrap();
    assert_eq!(
        after.creates_cut_short().await.unwrap(),
        vec![k("alice", "web")]
    );
    // Its record deleted, the create is forgotten with it.
    after.delete_container(&k("alice", "web")).await.unwrap();
    assert!(after.creates_cut_short().await.unwrap().is_empty());

    // PostgreSQL: alive while its lease connection is open.
    let (p, db) = postgres().await;
    let admin = std::env::var("WM_TEST_POSTGRES_URL").unwrap();
    let url = format!("{}/{db}", admin.rsplit_once('/').unwrap().0);
    let other = Store::connect(&url).await.unwrap();
    let s = p.store.clone();
    let lease = s.leader_lease().await.unwrap().unwrap();
    s.insert_user(&user("alice", Role::Student)).await.unwrap();
    s.insert_container_with_gpus(&container("alice", "web"), &[])
        .await
        .unwrap();
    assert!(other.creates_cut_short().await.unwrap().is_empty());
    assert!(s.creates_cut_short().await.unwrap().is_empty());
    lease.close().await;
    let other = std::sync::Arc::new(other);
    eventually("the create is seen cut short", || {
        let other = other.clone();
        async move { other.creates_cut_short().await.unwrap() == vec![k("alice", "web")] }
    })
    .await;
    s.create_ended(&k("alice", "web")).await.unwrap();
    assert!(other.creates_cut_short().await.unwrap().is_empty());
    other.close().await;
    s.close().await;
    raw(&admin, &format!("DROP DATABASE {db} WITH (FORCE)")).await;
}

/// A leader whose lease connection the server ends (a restart, `pg_terminate_backend`)
/// learns it at its next check, and the lease is free for another console.
#[tokio::test]
async fn a_broken_lease_connection_is_noticed_and_frees_the_lease() {
    let (p, db) = postgres().await;
    let admin = std::env::var("WM_TEST_POSTGRES_URL").unwrap();
    let url = format!("{}/{db}", admin.rsplit_once('/').unwrap().0);
    let other = Store::connect(&url).await.unwrap();
    let mut leader = p.store.leader_lease().await.unwrap().unwrap();
    assert!(leader.try_take().await.unwrap());
    leader.check().await.unwrap();
    // The lease's key, 0x776d6c656164, as pg_locks shows a bigint key: high and low halves.
    raw(
        &url,
        "SELECT pg_terminate_backend(pid) FROM pg_locks \
         WHERE locktype = 'advisory' AND classid = 30573 AND objid = 1818583396",
    )
    .await;
    assert!(leader.check().await.is_err());
    let mut next = other.leader_lease().await.unwrap().unwrap();
    let next = std::sync::Arc::new(tokio::sync::Mutex::new(&mut next));
    eventually("another console takes the lease", || {
        let next = next.clone();
        async move { next.lock().await.try_take().await.unwrap() }
    })
    .await;
    drop(next);
    other.close().await;
    p.store.close().await;
    raw(&admin, &format!("DROP DATABASE {db} WITH (FORCE)")).await;
}
