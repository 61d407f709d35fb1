//! The Debian package and the container image, installed and started as a department's
//! sysadmins would: the package with `dpkg -i` in a throwaway Debian container (a
//! `debootstrap` root that `scripts/test` imports as `wm-test-debian:bookworm`), the
//! service started the documented systemd-free way; the image built from the Dockerfile.

use std::path::{Path, PathBuf};
use std::process::Command;
use wm_testkit::{docker, unique, TEST_LABEL};

const BASE: &str = "wm-test-debian:bookworm";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn base_image() {
    assert!(
        docker(&["image", "inspect", BASE]).status.success(),
        "no {BASE}: scripts/test makes it with debootstrap"
    );
}

/// Runs `docker ARGS` and expects success; answers its output.
fn ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A container or image removed on drop, also when the test fails.
struct Gone(&'static str, String);

impl Drop for Gone {
    fn drop(&mut self) {
        docker(&[self.0, "rm", "-f", &self.1]);
    }
}

fn address(container: &str) -> String {
    ok(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        container,
    ])
    .trim()
    .to_string()
}

/// Waits until `http://ADDR:8080/healthz` answers; answers its JSON.
async fn healthy(addr: &str) -> serde_json::Value {
    let url = format!("http://{addr}:8080/healthz");
    for _ in 0..150 {
        if let Ok(r) = reqwest::get(&url).await {
            return r.json().await.unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("{url} never answered");
}

#[tokio::test]
async fn the_debian_package_installs_and_serves() {
    base_image();
    let out = tempfile::tempdir().unwrap();
    let built = Command::new(repo().join("scripts/package-deb"))
        .args(["--binary", env!("CARGO_BIN_EXE_wm"), "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let deb = PathBuf::from(String::from_utf8(built.stdout).unwrap().trim());
    let contents = Command::new("dpkg-deb")
        .arg("--contents")
        .arg(&deb)
        .output()
        .unwrap();
    let contents = String::from_utf8_lossy(&contents.stdout);
    for f in [
        "./usr/bin/wm",
        "./lib/systemd/system/wm-serve.service",
        "./lib/systemd/system/wm-console.service",
        "./lib/systemd/system/wm-agent-docker.service",
        "./lib/systemd/system/wm-agent-kubernetes.service",
        "./etc/whalemountain/wm.toml",
        "./usr/share/doc/whalemountain/copyright",
    ] {
        assert!(contents.contains(f), "{f} missing:\n{contents}");
    }

    let name = unique("wm-deb-");
    let _gone = Gone("container", name.clone());
    let mount = format!("{}:/pkg:ro", out.path().display());
    ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        &format!("{TEST_LABEL}=1"),
        "-v",
        &mount,
        BASE,
        "sleep",
        "600",
    ]);
    let file = format!("/pkg/{}", deb.file_name().unwrap().to_string_lossy());
    ok(&["exec", &name, "dpkg", "-i", &file]);
    // The system user, its private data directory, the configuration readable by it only.
    let user = ok(&["exec", &name, "getent", "passwd", "whalemountain"]);
    assert!(user.contains("/var/lib/whalemountain"), "{user}");
    let modes = ok(&[
        "exec",
        &name,
        "stat",
        "-c",
        "%U %a %n",
        "/var/lib/whalemountain",
        "/etc/whalemountain/wm.toml",
    ]);
    assert!(
        modes.contains("whalemountain 700 /var/lib/whalemountain"),
        "{modes}"
    );
    assert!(
        modes.contains("root 640 /etc/whalemountain/wm.toml"),
        "{modes}"
    );

    // Started as the README says for a machine without systemd (a container).
    ok(&[
        "exec", "-d", "-e", "WM_DOCKER_HOST=unix:///nonexistent/docker.sock", "-e",
        "WM_ADMIN_PASSWORD=package-admin-password", &name, "sh", "-c",
        "echo $$ > /run/wm.pid; exec runuser -u whalemountain -- wm serve --config /etc/whalemountain/wm.toml",
    ]);
    let health = healthy(&address(&name)).await;
    assert_eq!(health["status"], "ok", "{health}");
    let files = ok(&[
        "exec",
        &name,
        "stat",
        "-c",
        "%U %a",
        "/var/lib/whalemountain/wm.db",
    ]);
    assert_eq!(files.trim(), "whalemountain 600");

    // Removing keeps the data; reinstalling (an upgrade in place) keeps it too.
    ok(&["exec", &name, "sh", "-c", "kill $(cat /run/wm.pid)"]);
    ok(&["exec", &name, "dpkg", "-r", "whalemountain"]);
    ok(&["exec", &name, "test", "-f", "/var/lib/whalemountain/wm.db"]);
    ok(&["exec", &name, "test", "!", "-e", "/usr/bin/wm"]);
    ok(&["exec", &name, "dpkg", "-i", &file]);
    ok(&["exec", &name, "wm", "--version"]);
}

#[tokio::test]
async fn the_container_image_builds_and_serves() {
    base_image();
    // The context as the Dockerfile expects it, with a binary without debug information.
    let ctx = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(ctx.path().join("target/release")).unwrap();
    std::fs::create_dir_all(ctx.path().join("packaging")).unwrap();
    let strip = Command::new("objcopy")
        .args(["--strip-debug", env!("CARGO_BIN_EXE_wm")])
        .arg(ctx.path().join("target/release/wm"))
        .status()
        .unwrap();
    assert!(strip.success());
    std::fs::copy(
        repo().join("packaging/wm.toml"),
        ctx.path().join("packaging/wm.toml"),
    )
    .unwrap();
    std::fs::copy(repo().join("Dockerfile"), ctx.path().join("Dockerfile")).unwrap();
    let tag = format!("{}:1", unique("wm-image-"));
    let _image = Gone("image", tag.clone());
    ok(&[
        "build",
        "-q",
        "--label",
        &format!("{TEST_LABEL}=1"),
        "--build-arg",
        &format!("BASE={BASE}"),
        "-t",
        &tag,
        &ctx.path().display().to_string(),
    ]);
    let version = ok(&[
        "run",
        "--rm",
        "--label",
        &format!("{TEST_LABEL}=1"),
        &tag,
        "--version",
    ]);
    assert!(version.starts_with("wm "), "{version}");
    let name = unique("wm-img-");
    let _gone = Gone("container", name.clone());
    ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        &format!("{TEST_LABEL}=1"),
        "-e",
        "WM_DOCKER_HOST=unix:///nonexistent/docker.sock",
        "-e",
        "WM_ADMIN_PASSWORD=image-admin-password",
        &tag,
        "serve",
        "--config",
        "/etc/whalemountain/wm.toml",
    ]);
    let health = healthy(&address(&name)).await;
    assert_eq!(health["status"], "ok", "{health}");
    let user = ok(&["exec", &name, "id", "-un"]);
    assert_eq!(user.trim(), "whalemountain");
}
