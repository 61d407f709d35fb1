//! Logins against a real OpenLDAP slapd started for each test.

use std::time::{Duration, Instant};
use wm_domain::{Role, UserName};
use wm_ldap::{BindPassword, Directory, DirectoryError, LdapSettings};
use wm_testkit::{Slapd, LDAP_ADMIN_DN, LDAP_ADMIN_PASSWORD, LDAP_SUFFIX};

/// "cn=Seán O'Brien\, Jr.,ou=people,dc=example,dc=org": a comma, an apostrophe and a
/// non-ASCII letter in the DN.
const OBRIEN_DN: &str = "cn=Se\u{e1}n O'Brien\\, Jr.,ou=people,dc=example,dc=org";
const OBRIEN_PASSWORD: &str = "p\u{e4}ssw\u{f6}rd with spaces";

fn b64(s: &str) -> String {
    // Tiny base64 for the LDIF's non-ASCII values.
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &c)| n | u32::from(c) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn person(uid: &str, number: u32, password: &str) -> String {
    format!(
        "dn: uid={uid},ou=people,{LDAP_SUFFIX}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n\
         cn: {uid} person\nsn: {uid}\ndisplayName: {uid} display\nuid: {uid}\nuidNumber: {number}\n\
         gidNumber: 2000\nhomeDirectory: /home/{uid}\nuserPassword: {password}\n"
    )
}

fn directory_ldif() -> String {
    [
        person("alice", 2001, "alice-password"),
        person("tina", 2002, "tina-password"),
        person("adam", 2003, "adam-password"),
        person("uma", 2004, "uma-password"),
        format!(
            "dn:: {}\nobjectClass: inetOrgPerson\ncn: Se\u{e1}n O'Brien, Jr.\nsn: O'Brien\nuid: o.brien\nuserPassword:: {}\n",
            b64(OBRIEN_DN),
            b64(OBRIEN_PASSWORD)
        ),
        // Two entries answer to "twin": neither may log in.
        format!("dn: ou=more,ou=people,{LDAP_SUFFIX}\nobjectClass: organizationalUnit\nou: more\n"),
        person("twin", 2005, "twin-password"),
        format!(
            "dn: uid=twin,ou=more,ou=people,{LDAP_SUFFIX}\nobjectClass: inetOrgPerson\ncn: twin\nsn: twin\nuid: twin\nuserPassword: twin-password\n"
        ),
        format!(
            "dn: cn=teachers,ou=groups,{LDAP_SUFFIX}\nobjectClass: posixGroup\ncn: teachers\ngidNumber: 3000\nmemberUid: tina\n"
        ),
        format!(
            "dn:: {}\nobjectClass: groupOfNames\ncn: admins\nmember: uid=adam,ou=people,{LDAP_SUFFIX}\nmember:: {}\n",
            b64(&format!("cn=admins,ou=groups,{LDAP_SUFFIX}")),
            b64(OBRIEN_DN)
        ),
        format!("dn: ou=more,ou=groups,{LDAP_SUFFIX}\nobjectClass: organizationalUnit\nou: more\n"),
        format!(
            "dn: cn=teachers,ou=more,ou=groups,{LDAP_SUFFIX}\nobjectClass: groupOfUniqueNames\ncn: teachers\nuniqueMember: uid=uma,ou=people,{LDAP_SUFFIX}\n"
        ),
        // A group of the wrong name does not make anyone a teacher.
        format!(
            "dn: cn=other,ou=groups,{LDAP_SUFFIX}\nobjectClass: posixGroup\ncn: other\ngidNumber: 3001\nmemberUid: alice\n"
        ),
    ]
    .join("\n")
}

fn settings(url: &str) -> LdapSettings {
    LdapSettings {
        url: url.to_string(),
        base_dn: format!("ou=people,{LDAP_SUFFIX}"),
        user_filter: "(uid={username})".into(),
        bind_dn: None,
        bind_password: None,
        bind_password_file: None,
        group_base_dn: Some(format!("ou=groups,{LDAP_SUFFIX}")),
        teacher_group: Some("teachers".into()),
        admin_group: Some("admins".into()),
        starttls: false,
        ca_file: None,
        timeout_secs: 2,
    }
}

fn name(s: &str) -> UserName {
    UserName::parse(s).unwrap()
}

#[tokio::test]
async fn roles_come_from_every_kind_of_group() {
    let slapd = Slapd::start(&directory_ldif());
    let dir = Directory::new(settings(&slapd.url())).unwrap();
    for (user, password, role) in [
        ("alice", "alice-password", Role::Student),
        ("tina", "tina-password", Role::Teacher),
        ("adam", "adam-password", Role::Admin),
        ("uma", "uma-password", Role::Teacher),
        ("o.brien", OBRIEN_PASSWORD, Role::Admin),
    ] {
        let u = dir
            .authenticate(&name(user), password)
            .await
            .unwrap_or_else(|e| panic!("{user}: {e}"));
        assert_eq!(u.role, role, "{user}");
        assert_eq!(u.name.as_str(), user);
    }
    let alice = dir
        .authenticate(&name("alice"), "alice-password")
        .await
        .unwrap();
    assert_eq!(alice.display_name.as_deref(), Some("alice display"));
    assert_eq!(alice.uid_number, Some(2001));
    assert_eq!(alice.dn, format!("uid=alice,ou=people,{LDAP_SUFFIX}"));
    let obrien = dir
        .authenticate(&name("o.brien"), OBRIEN_PASSWORD)
        .await
        .unwrap();
    assert_eq!(
        obrien.display_name.as_deref(),
        Some("Se\u{e1}n O'Brien, Jr.")
    );

    // Without group settings everyone is a student.
    let mut plain = settings(&slapd.url());
    plain.teacher_group = None;
    plain.admin_group = None;
    let dir = Directory::new(plain).unwrap();
    let u = dir
        .authenticate(&name("adam"), "adam-password")
        .await
        .unwrap();
    assert_eq!(u.role, Role::Student);
}

#[tokio::test]
async fn every_wrong_login_fails_alike() {
    let slapd = Slapd::start(&directory_ldif());
    let dir = Directory::new(settings(&slapd.url())).unwrap();
    for (user, password) in [
        ("alice", "wrong"),
        ("alice", ""),
        ("alice", "*"),
        ("alice", "alice-password "),
        ("nobody", "alice-password"),
        ("twin", "twin-password"),
        ("o.brien", "password"),
    ] {
        let r = dir.authenticate(&name(user), password).await;
        assert_eq!(
            r,
            Err(DirectoryError::InvalidCredentials),
            "{user:?}/{password:?}"
        );
    }
}

#[tokio::test]
async fn a_search_account_may_be_required() {
    let slapd = Slapd::start(&directory_ldif());
    let mut s = settings(&slapd.url());
    s.bind_dn = Some(LDAP_ADMIN_DN.into());
    s.bind_password = Some(BindPassword::new(LDAP_ADMIN_PASSWORD));
    let dir = Directory::new(s.clone()).unwrap();
    assert_eq!(
        dir.authenticate(&name("tina"), "tina-password")
            .await
            .unwrap()
            .role,
        Role::Teacher
    );
    dir.check().await.unwrap();

    s.bind_password = Some(BindPassword::new("not-the-password"));
    let dir = Directory::new(s).unwrap();
    let r = dir.authenticate(&name("tina"), "tina-password").await;
    assert!(matches!(r, Err(DirectoryError::Refused(_))), "{r:?}");
    assert!(dir.check().await.is_err());
}

#[tokio::test]
async fn an_outage_is_unavailable_and_recovery_is_seen() {
    let mut slapd = Slapd::start(&directory_ldif());
    let dir = Directory::new(settings(&slapd.url())).unwrap();
    dir.authenticate(&name("alice"), "alice-password")
        .await
        .unwrap();
    dir.check().await.unwrap();

    slapd.stop();
    let t = Instant::now();
    let r = dir.authenticate(&name("alice"), "alice-password").await;
    assert!(matches!(r, Err(DirectoryError::Unavailable(_))), "{r:?}");
    assert!(
        t.elapsed() < Duration::from_secs(7),
        "answered within the time-out"
    );
    assert!(matches!(
        dir.check().await,
        Err(DirectoryError::Unavailable(_))
    ));

    slapd.resume();
    dir.authenticate(&name("alice"), "alice-password")
        .await
        .unwrap();
}

#[tokio::test]
async fn a_directory_that_never_answers_times_out() {
    // Accepts connections and says nothing.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            open.push(s);
        }
    });
    let mut s = settings(&format!("ldap://127.0.0.1:{port}"));
    s.timeout_secs = 1;
    let dir = Directory::new(s).unwrap();
    let t = Instant::now();
    let r = dir.authenticate(&name("alice"), "alice-password").await;
    assert!(matches!(r, Err(DirectoryError::Unavailable(_))), "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    held.abort();
}

#[tokio::test]
async fn ldaps_and_starttls_with_the_departments_ca() {
    let slapd = Slapd::start_tls(&directory_ldif());
    let ca = slapd.ca_file();
    let mut ldaps = settings(&slapd.tls_url());
    ldaps.ca_file = Some(ca.clone());
    let dir = Directory::new(ldaps.clone()).unwrap();
    assert_eq!(
        dir.authenticate(&name("tina"), "tina-password")
            .await
            .unwrap()
            .role,
        Role::Teacher
    );
    let mut starttls = settings(&slapd.url());
    starttls.starttls = true;
    starttls.ca_file = Some(ca);
    let dir = Directory::new(starttls).unwrap();
    dir.authenticate(&name("alice"), "alice-password")
        .await
        .unwrap();
    dir.check().await.unwrap();

    // A certificate from another CA is not trusted.
    let other = Slapd::start_tls("");
    ldaps.ca_file = Some(other.ca_file());
    let dir = Directory::new(ldaps).unwrap();
    let r = dir.authenticate(&name("alice"), "alice-password").await;
    assert!(matches!(r, Err(DirectoryError::Unavailable(_))), "{r:?}");
}

#[test]
fn settings_are_checked() {
    let ok = settings("ldap://127.0.0.1:1");
    Directory::new(ok.clone()).unwrap();
    let cases: Vec<(LdapSettings, &str)> = vec![
        (
            LdapSettings {
                url: "http://x".into(),
                ..ok.clone()
            },
            "ldap://",
        ),
        (
            LdapSettings {
                url: "ldaps://x".into(),
                starttls: true,
                ..ok.clone()
            },
            "StartTLS",
        ),
        (
            LdapSettings {
                user_filter: "uid={username}".into(),
                ..ok.clone()
            },
            "user_filter",
        ),
        (
            LdapSettings {
                user_filter: "(uid=*)".into(),
                ..ok.clone()
            },
            "user_filter",
        ),
        (
            LdapSettings {
                base_dn: " ".into(),
                ..ok.clone()
            },
            "base_dn",
        ),
        (
            LdapSettings {
                bind_dn: Some("cn=x".into()),
                ..ok.clone()
            },
            "bind_password",
        ),
        (
            LdapSettings {
                ca_file: Some("/nonexistent.pem".into()),
                ..ok.clone()
            },
            "CA file",
        ),
        (
            LdapSettings {
                timeout_secs: 0,
                ..ok.clone()
            },
            "timeout",
        ),
    ];
    for (s, expect) in cases {
        let e = Directory::new(s).unwrap_err();
        assert!(e.contains(expect), "{e}");
    }
}
