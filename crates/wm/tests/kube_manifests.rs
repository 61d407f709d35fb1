//! `wm kube manifests`: what an administrator reviews or applies by hand.

use std::process::{Command, Output};

fn manifests(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wm"));
    cmd.args(["kube", "manifests"])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn prints_every_object_for_a_user_and_a_container() {
    let out = manifests(
        &[
            "--user",
            "alice",
            "--container",
            "web",
            "--image",
            "nginx:1.27",
            "--ports",
            "80 8080",
            "--env",
            "GREETING=hello",
        ],
        &[
            ("WM_KUBE_DOMAIN", "ie.example.org"),
            ("WM_KUBE_VOLUME_SIZE", "5Gi"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).unwrap();
    let kinds: Vec<&str> = yaml
        .lines()
        .filter_map(|l| l.strip_prefix("kind: "))
        .collect();
    for kind in [
        "Namespace",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ResourceQuota",
        "LimitRange",
        "NetworkPolicy",
        "PersistentVolumeClaim",
        "Deployment",
        "Service",
        "Ingress",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing: {kinds:?}");
    }
    assert_eq!(
        yaml.matches("\n---\n").count() + 1,
        kinds.len(),
        "one document each"
    );
    assert!(
        yaml.contains("web.alice.ie.example.org"),
        "the configured domain"
    );
    assert!(yaml.contains("GREETING"));

    // The user's objects alone.
    let out = manifests(&["--user", "alice"], &[]);
    assert!(out.status.success());
    let yaml = String::from_utf8(out.stdout).unwrap();
    assert!(!yaml.contains("kind: Deployment"));
    assert!(yaml.contains("kind: Namespace"));
}

#[test]
fn invalid_input_exits_non_zero_with_a_clear_message() {
    for (args, says) in [
        (vec!["--user", "Bad_Name"], "user name"),
        (vec!["--user", "kube-system"], "kube-system"),
        (
            vec![
                "--user",
                "alice",
                "--container",
                "web",
                "--image",
                "nginx",
                "--ports",
                "70000",
            ],
            "port",
        ),
        (
            vec![
                "--user",
                "alice",
                "--container",
                "web",
                "--image",
                "nginx",
                "--env",
                "=x",
            ],
            "env",
        ),
        (
            vec!["--user", "alice", "--container", "Web!", "--image", "nginx"],
            "name",
        ),
        (vec!["--user", "alice", "--container", "web"], "--image"),
    ] {
        let out = manifests(&args, &[("RUST_BACKTRACE", "0")]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(out.stdout.is_empty(), "{args:?} printed objects");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    let out = manifests(&["--user", "alice"], &[("WM_KUBE_DOMAIN", "not a domain")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("domain"));
}
