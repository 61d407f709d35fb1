//! The API document tells the truth: schemathesis (PyPI, the standard OpenAPI fuzzer, in
//! `/opt/wm-venv` where `scripts/test` installs it) against a live `wm serve` on the real
//! engine and libvirt, every operation, every check, and the stateful phase following the
//! document's links from creates to what they make; once as a student and once as an
//! administrator.
//! `tests/api/schemathesis.toml` names the few places the document cannot say more, and why.
//!
//! The administrator's pass leaves out what acts on the shared engine beyond this
//! installation: deleting any image (an admin may delete images other installations and
//! other tests use) and the image clean-up; and deleting a user's storage (see below).

use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};

const SCHEMATHESIS: &str = "/opt/wm-venv/bin/schemathesis";
const PASSWORD: &str = "contract-admin-password";

struct Serve {
    child: std::process::Child,
    instance: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        wm_testkit::remove_labelled("wm.instance", &self.instance);
        wm_testkit::remove_vms(&self.instance, &vm_storage(&self.instance));
    }
}

/// Where the serve keeps its VM disks: under libvirt's images directory, whose mode lets
/// libvirt's QEMU user reach them.
fn vm_storage(instance: &str) -> std::path::PathBuf {
    Path::new("/var/lib/libvirt/images").join(instance)
}

async fn token(base: &str, user: &str, password: &str) -> String {
    let v: Value = reqwest::Client::new()
        .post(format!("{base}/api/v1/login"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["token"].as_str().expect("a token").to_string()
}

/// Runs one schemathesis pass; answers whether it found nothing, and what it printed. A
/// run that ends in an error of schemathesis itself (a Python exception in its generator,
/// seen once here) and reports no finding about the API is run once more.
fn fuzz(base: &str, token: &str, exclude: &[&str], scratch: &Path) -> (bool, String) {
    let (ok, said) = fuzz_once(base, token, exclude, scratch);
    if !ok && said.contains("Runtime Error") && !said.contains("= FAILURES =") {
        let (ok, again) = fuzz_once(base, token, exclude, scratch);
        return (
            ok,
            format!("{said}\n--- run again after schemathesis's own error ---\n{again}"),
        );
    }
    (ok, said)
}

fn fuzz_once(base: &str, token: &str, exclude: &[&str], scratch: &Path) -> (bool, String) {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/schemathesis.toml");
    let mut cmd = Command::new(SCHEMATHESIS);
    cmd.arg("--config-file")
        .arg(config)
        .arg("--no-color")
        .arg("run")
        .arg(format!("{base}/api/v1/openapi.json"))
        // Every check is on by default; the configuration turns a check off or widens its
        // expected statuses only for the operations it names (a `--checks` here would
        // override those).
        .args(["--workers", "2", "--seed", "20261201"])
        .args(["--max-examples", "40", "--request-timeout", "60"])
        // Path parameters the generator cannot put in a URL (`/`, `..`) are filtered out;
        // for a free string parameter that is often, and says nothing about the API.
        .args(["--suppress-health-check", "filter_too_much"])
        .arg("--header")
        .arg(format!("Authorization: Bearer {token}"))
        // Ending the session would leave the rest of the run without one.
        .args(["--exclude-path", "/api/v1/logout"]);
    for name in exclude {
        cmd.args(["--exclude-name", name]);
    }
    // Its cache of examples goes to the scratch folder, not the source tree.
    let out = cmd
        .current_dir(scratch)
        .stdin(Stdio::null())
        .output()
        .expect("schemathesis runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn schemathesis_finds_nothing() {
    assert!(
        Path::new(SCHEMATHESIS).exists(),
        "{SCHEMATHESIS} is missing: scripts/test installs it"
    );
    assert!(
        wm_testkit::libvirt_answers(),
        "libvirt's system daemon does not answer (scripts/test starts it)"
    );
    wm_testkit::ensure_test_image();
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("wm.toml");
    let instance = wm_testkit::unique("api");
    std::fs::write(
        &config,
        // The engine is shared with every other test: a slow answer is not the API's fault.
        // VMs are on, with small uploads and one small template; fuzzed images that boot
        // are removed with the serve.
        format!(
            "[docker]\ncall_timeout_secs = 60\n[docker.labels]\n\"{}\" = \"1\"\n\
             [vm]\nenabled = true\ndomain_type = \"qemu\"\nstorage_dir = \"{}\"\n\
             image_max_bytes = 1048576\n\
             [[vm.templates]]\nname = \"tiny\"\nvcpus = 1\nmemory = \"128m\"\n\
             nic = \"e1000\"\ndisk_bus = \"virtio\"\n",
            wm_testkit::TEST_LABEL,
            vm_storage(&instance).display()
        ),
    )
    .unwrap();
    let listen = format!("127.0.0.1:{}", wm_testkit::free_port());
    let first = 40000 + (std::process::id() % 90) * 200;
    let mut child = Command::new(env!("CARGO_BIN_EXE_wm"))
        .args(["serve", "--config"])
        .arg(&config)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("WM_DATA_DIR", data.path())
        .env("WM_INSTANCE", &instance)
        .env("WM_LISTEN", &listen)
        .env("WM_ADMIN_PASSWORD", PASSWORD)
        .env("WM_PORT_RANGE", format!("{first}-{}", first + 199))
        .env("WM_MEMORY_LIMIT", "64m")
        .env("WM_CPU_LIMIT", "0.5")
        .env("WM_LOGIN_RATE_LIMIT", "0")
        .env("WM_SCAN_COMMAND", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wm_testkit::wait_until_listening(&mut child, 60);
    let serve = Serve { child, instance };
    let base = format!("http://{listen}");

    let admin = token(&base, "admin", PASSWORD).await;
    let made = reqwest::Client::new()
        .post(format!("{base}/api/v1/admin/users"))
        .bearer_auth(&admin)
        .json(&json!({"name": "fuzzer", "password": "fuzzer-password", "role": "student"}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);
    let student = token(&base, "fuzzer", "fuzzer-password").await;

    let (student_ok, student_said) = fuzz(&base, &student, &[], data.path());
    let (admin_ok, admin_said) = fuzz(
        &base,
        &admin,
        &[
            "DELETE /api/v1/images/{ref}",
            "POST /api/v1/admin/cleanup",
            // The storage is measured again at the next GET, which answers an empty one
            // on each host rather than 404 (the stateful phase's use-after-free check).
            "DELETE /api/v1/admin/users/{name}/storage",
        ],
        data.path(),
    );
    drop(serve);
    assert!(student_ok, "as a student:\n{student_said}");
    assert!(admin_ok, "as an administrator:\n{admin_said}");
}
