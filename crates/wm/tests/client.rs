//! `wm` as a command-line client: the real binary against a live `wm serve`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

const PASSWORD: &str = "admin-password";

/// `wm serve` on the local engine, with everything it makes labelled and removed on drop.
struct Console {
    child: Child,
    url: String,
    instance: String,
    _data: tempfile::TempDir,
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        wm_testkit::remove_labelled("wm.instance", &self.instance);
    }
}

impl Console {
    fn start(extra: &[(&str, &str)]) -> Console {
        wm_testkit::ensure_test_image();
        let data = tempfile::tempdir().unwrap();
        let config = data.path().join("wm.toml");
        std::fs::write(
            &config,
            format!("[docker.labels]\n\"{}\" = \"1\"\n", wm_testkit::TEST_LABEL),
        )
        .unwrap();
        let instance = wm_testkit::unique("cli");
        let listen = format!("127.0.0.1:{}", wm_testkit::free_port());
        let mut child = Command::new(env!("CARGO_BIN_EXE_wm"))
            .args(["serve", "--config"])
            .arg(&config)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("WM_DATA_DIR", data.path())
            .env("WM_INSTANCE", &instance)
            .env("WM_LISTEN", &listen)
            .env("WM_ADMIN_PASSWORD", PASSWORD)
            .env("WM_MEMORY_LIMIT", "64m")
            .env("WM_CPU_LIMIT", "0.5")
            .env("WM_LOGIN_RATE_LIMIT", "0")
            // Scanning has its own tests; here a built image is usable at once.
            .env("WM_SCAN_COMMAND", "off")
            .env("WM_LOG", "info")
            .envs(extra.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wm_testkit::wait_until_listening(&mut child, 60);
        Console {
            child,
            url: format!("http://{listen}"),
            instance,
            _data: data,
        }
    }
}

/// The client, with its own config directory and no login from the environment.
struct Wm {
    home: tempfile::TempDir,
}

impl Wm {
    fn new() -> Wm {
        Wm {
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn config_dir(&self) -> PathBuf {
        self.home.path().join("xdg/wm")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = self.environment(Command::new(env!("CARGO_BIN_EXE_wm")));
        cmd.args(args);
        cmd
    }

    /// A command with the client's environment only, and no input.
    fn environment(&self, mut cmd: Command) -> Command {
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("xdg"))
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs and expects success; answers stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "wm {args:?}: {:?}\n{}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Removes an image built by a test, also when it fails.
struct ImageGuard(String);

impl Drop for ImageGuard {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            wm_testkit::docker(&["rmi", "-f", &self.0]);
        }
    }
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_session_from_the_command_line() {
    let registry = wm_testkit::Registry::start();
    let host = registry.host();
    let console = Console::start(&[
        ("WM_REGISTRIES_ALLOWED", host.as_str()),
        // The registry is on loopback: allowed by name, as an administrator would.
        ("WM_EGRESS_ALLOWED", host.as_str()),
    ]);
    let wm = Wm::new();
    let url = console.url.as_str();

    // Not logged in: exit 3, and the message in the locale's language.
    let out = wm.run(&["ps"]);
    assert_eq!(code(&out), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("wm login"), "{}", stderr(&out));
    let out = wm.cmd(&["ps"]).env("LANG", "ja_JP.UTF-8").output().unwrap();
    assert_eq!(code(&out), Some(3));
    assert!(
        stderr(&out).contains("ログインしていません"),
        "{}",
        stderr(&out)
    );

    // A wrong password: exit 3 with the server's message.
    let out = wm
        .cmd(&["login", "--url", url, "--user", "admin"])
        .env("WM_PASSWORD", "not-the-password")
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(3), "{}", stderr(&out));
    assert!(!wm.config_dir().join("config.toml").exists());

    let out = wm
        .cmd(&["login", "--url", url, "--user", "admin"])
        .env("WM_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let config = wm.config_dir().join("config.toml");
    assert_eq!(mode(&config), 0o600);
    assert_eq!(mode(&wm.config_dir()), 0o700);
    assert!(wm.ok(&["whoami"]).starts_with("admin (admin)"));

    // run → ps → exec.
    let image = wm_testkit::TEST_IMAGE;
    wm.ok(&[
        "run",
        "web",
        "--image",
        image,
        "-e",
        "GREETING=hi",
        "-p",
        "80",
    ]);
    // The name is taken: refused, exit 5; in a Japanese locale the server says so in
    // Japanese, its detail too.
    let out = wm.run(&["run", "web", "--image", image]);
    assert_eq!(code(&out), Some(5), "{}", stderr(&out));
    let out = wm
        .cmd(&["run", "web", "--image", image])
        .env("LANG", "ja_JP.UTF-8")
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("現在の状態"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("web という名前のコンテナはすでにあります"),
        "{}",
        stderr(&out)
    );
    let table = wm.ok(&["ps"]);
    assert!(table.starts_with("NAME"), "{table}");
    let row = table.lines().find(|l| l.starts_with("web ")).expect(&table);
    assert!(row.contains("running"), "{table}");
    let list: serde_json::Value = serde_json::from_str(&wm.ok(&["ps", "--json"])).unwrap();
    assert_eq!(list[0]["name"], "admin-web", "{list}");

    let out = wm.run(&[
        "exec",
        "web",
        "--",
        "sh",
        "-c",
        "echo $GREETING; echo oops >&2; exit 3",
    ]);
    assert_eq!(code(&out), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    assert_eq!(stderr(&out), "oops\n");
    let out = wm.run(&["exec", "nothing-here", "--", "true"]);
    assert_eq!(code(&out), Some(4), "{}", stderr(&out));

    // cp up and down, to the container and to the personal storage.
    let local = tempfile::tempdir().unwrap();
    let file = local.path().join("notes.txt");
    std::fs::write(&file, "some notes\n").unwrap();
    let file_s = file.to_str().unwrap();
    wm.ok(&["cp", file_s, "web:/tmp/"]);
    assert_eq!(
        wm.ok(&["exec", "web", "--", "cat", "/tmp/notes.txt"]),
        "some notes\n"
    );
    let back = local.path().join("back.txt");
    wm.ok(&["cp", "web:/tmp/notes.txt", back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "some notes\n");
    // A folder comes down as its files.
    let folder = local.path().join("tmp-copy");
    wm.ok(&["cp", "web:/tmp", folder.to_str().unwrap()]);
    assert!(
        walk_has(&folder, "notes.txt"),
        "{:?}",
        std::fs::read_dir(&folder).unwrap().collect::<Vec<_>>()
    );

    wm.ok(&["cp", file_s, "~/cli/"]);
    let stored = local.path().join("stored.txt");
    wm.ok(&["cp", "~/cli/notes.txt", stored.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&stored).unwrap(), "some notes\n");
    // A folder goes up with its subfolders.
    let proj = local.path().join("proj");
    std::fs::create_dir_all(proj.join("sub")).unwrap();
    std::fs::write(proj.join("a.txt"), "a\n").unwrap();
    std::fs::write(proj.join("sub/b.txt"), "b\n").unwrap();
    wm.ok(&["cp", proj.to_str().unwrap(), "web:/tmp/"]);
    assert_eq!(
        wm.ok(&[
            "exec",
            "web",
            "--",
            "cat",
            "/tmp/proj/a.txt",
            "/tmp/proj/sub/b.txt"
        ]),
        "a\nb\n"
    );
    wm.ok(&["cp", proj.to_str().unwrap(), "~/"]);
    let b = local.path().join("b.txt");
    wm.ok(&["cp", "~/proj/sub/b.txt", b.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&b).unwrap(), "b\n");
    let down = local.path().join("down");
    wm.ok(&["cp", "~/proj", down.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(down.join("proj/sub/b.txt")).unwrap(),
        "b\n"
    );
    assert_eq!(
        std::fs::read_to_string(down.join("proj/a.txt")).unwrap(),
        "a\n"
    );
    let out = wm.run(&["cp", file_s, stored.to_str().unwrap()]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));

    // logs.
    wm.ok(&[
        "exec",
        "web",
        "--",
        "sh",
        "-c",
        "echo to-the-log > /proc/1/fd/1",
    ]);
    let logs = wm.ok(&["logs", "web"]);
    assert!(logs.contains("to-the-log"), "{logs}");
    // -f: the recent lines, then what the container writes later.
    let mut follower = wm
        .cmd(&["logs", "-f", "web"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(follower.stdout.take().unwrap());
    let mut followed = String::new();
    while !followed.contains("to-the-log") {
        assert!(stdout.read_line(&mut followed).unwrap() > 0, "{followed}");
    }
    wm.ok(&[
        "exec",
        "web",
        "--",
        "sh",
        "-c",
        "echo written-later > /proc/1/fd/1",
    ]);
    while !followed.contains("written-later") {
        assert!(stdout.read_line(&mut followed).unwrap() > 0, "{followed}");
    }
    let _ = follower.kill();
    let _ = follower.wait();

    // stop, start, rm.
    assert!(wm.ok(&["stop", "web"]).contains("exited"));
    assert!(wm.ok(&["start", "web"]).contains("running"));

    // build with a .dockerignore, share, export.
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {image}\nCOPY . /ctx/\n"),
    )
    .unwrap();
    std::fs::write(ctx.path().join("kept.txt"), "kept\n").unwrap();
    std::fs::write(ctx.path().join("secret.txt"), "secret\n").unwrap();
    std::fs::write(ctx.path().join(".dockerignore"), "secret.txt\n").unwrap();
    let name = wm_testkit::unique("cli");
    let built = wm.ok(&[
        "build",
        ctx.path().to_str().unwrap(),
        "--name",
        &format!("{name}:1"),
    ]);
    let built_ref = built.lines().last().unwrap_or_default().trim().to_string();
    let _image = ImageGuard(built_ref.clone());
    assert!(built_ref.contains(&name), "{built}");
    let listing = wm_testkit::docker(&[
        "run",
        "--rm",
        "--label",
        &format!("{}=1", wm_testkit::TEST_LABEL),
        &built_ref,
        "ls",
        "/ctx",
    ]);
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.contains("kept.txt"), "{listing}");
    assert!(!listing.contains("secret.txt"), "{listing}");
    let images = wm.ok(&["images"]);
    assert!(images.contains(&built_ref), "{images}");
    let images: serde_json::Value = serde_json::from_str(&wm.ok(&["images", "--json"])).unwrap();
    assert!(images
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["ref"] == built_ref.as_str()));
    assert!(wm
        .ok(&["share", &built_ref, "--description", "for the class"])
        .contains("shared=true"));
    assert!(wm
        .ok(&["share", &built_ref, "--off"])
        .contains("shared=false"));
    let archive = local.path().join("image.tar");
    wm.ok(&[
        "export",
        &built_ref,
        "--format",
        "docker-archive",
        "-o",
        archive.to_str().unwrap(),
    ]);
    let mut entries = tar::Archive::new(std::fs::File::open(&archive).unwrap());
    assert!(entries
        .entries()
        .unwrap()
        .any(|e| e.unwrap().path().unwrap().to_string_lossy() == "manifest.json"));

    // pull, with its progress on stderr.
    let remote = registry.push(image, &format!("course/{}:1", wm_testkit::unique("tool-")));
    let _pulled = ImageGuard(remote.clone());
    let pulled = wm.ok(&["pull", &remote]);
    assert!(pulled.contains(&remote), "{pulled}");
    assert!(wm.ok(&["images"]).contains(&remote));
    let out = wm.run(&["pull", &format!("{host}/course/missing:1")]);
    assert_eq!(code(&out), Some(1), "{}", stderr(&out));

    // quota, completions.
    let quota = wm.ok(&["quota"]);
    assert!(
        quota
            .lines()
            .any(|l| l.starts_with("containers") && l.contains('1')),
        "{quota}"
    );
    assert!(!wm.ok(&["completions", "bash"]).is_empty());

    wm.ok(&["rm", "web"]);
    assert!(!wm.ok(&["ps"]).contains("web"));

    // Scripts: the token from the environment, without the stored login.
    let token: toml::Value = toml::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    let token = token["token"].as_str().unwrap().to_string();
    let other = Wm::new();
    let out = other
        .cmd(&["whoami"])
        .env("WM_URL", url)
        .env("WM_TOKEN", &token)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("admin"),
        "{}",
        stderr(&out)
    );

    // logout revokes the token.
    wm.ok(&["logout"]);
    assert!(!config.exists());
    let out = other
        .cmd(&["whoami"])
        .env("WM_URL", url)
        .env("WM_TOKEN", &token)
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(3), "{}", stderr(&out));
}

fn walk_has(dir: &Path, name: &str) -> bool {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .any(|e| e.file_name() == name || (e.path().is_dir() && walk_has(&e.path(), name)))
}

/// Runs `wm ARGS` under a real pseudo-terminal (tests/pty_session.py) and plays `steps`;
/// answers the exit status and everything the terminal showed.
fn in_a_terminal(wm: &Wm, args: &[&str], steps: serde_json::Value) -> (Option<i64>, String) {
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pty_session.py");
    let out = wm
        .environment(Command::new("python3"))
        .arg(driver)
        .arg(steps.to_string())
        .arg(env!("CARGO_BIN_EXE_wm"))
        .args(args)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the driver answers JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        )
    });
    let output = v["output"].as_str().unwrap_or_default().to_string();
    assert!(
        v["missing"].is_null(),
        "never saw {}: {output:?}",
        v["missing"]
    );
    (v["status"].as_i64(), output)
}

/// `wm exec -it` and `wm attach` in a pseudo-terminal: typing into a shell in the container
/// and reading its answer, the terminal's size and a resize reaching the container, the
/// shell's exit status becoming wm's, and a clear refusal without a terminal.
#[test]
fn interactive_sessions_in_a_terminal() {
    let console = Console::start(&[]);
    let url = console.url.as_str();
    let wm = Wm::new();
    let out = wm
        .cmd(&["login", "--url", url, "--user", "admin"])
        .env("WM_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    wm.ok(&["run", "tty", "--image", wm_testkit::ensure_test_image()]);

    let (status, shown) = in_a_terminal(
        &wm,
        &["exec", "-it", "tty"],
        serde_json::json!([
            ["size", 30, 100],
            ["send", "echo $((6*7))-ok\r"],
            ["expect", "42-ok"],
            ["send", "stty size\r"],
            ["expect", "30 100"],
            // The new size travels beside the keys (a resize call of its own on the
            // engine), so the shell may read a command typed at once before it.
            ["size", 40, 120],
            ["retry", "stty size\r", "40 120"],
            ["send", "exit 3\r"],
        ]),
    );
    assert_eq!(status, Some(3), "{shown:?}");

    let (status, shown) = in_a_terminal(
        &wm,
        &["attach", "tty"],
        serde_json::json!([["send", "cd /tmp && pwd && exit\r"], ["expect", "/tmp\r\n"]]),
    );
    assert_eq!(status, Some(0), "{shown:?}");

    // A command of its own, with an argument the shell must not split.
    let (status, shown) = in_a_terminal(
        &wm,
        &[
            "exec",
            "-it",
            "tty",
            "--",
            "sh",
            "-c",
            "echo \"$0\"; exit 4",
            "two words",
        ],
        serde_json::json!([["expect", "two words"]]),
    );
    assert_eq!(status, Some(4), "{shown:?}");

    // Not a terminal: a usage error that says what to do instead.
    let out = wm.run(&["exec", "-it", "tty"]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("not a terminal"), "{}", stderr(&out));
    let out = wm.run(&["exec", "tty"]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    let (status, shown) = in_a_terminal(&wm, &["attach", "nothing-here"], serde_json::json!([]));
    assert_eq!(status, Some(4), "{shown:?}");
}

/// `wm vm ...` against a console lending VMs on the real libvirt: upload the test guest's
/// disk, define from the default template, start, read the serial transcript, dumpxml,
/// destroy and undefine; a bad image is refused with the console's reason.
#[test]
fn virtual_machines_from_the_command_line() {
    if !wm_testkit::libvirt_answers() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "libvirt's system daemon does not answer (scripts/test starts it)"
        );
        eprintln!("skipped: libvirt's system daemon does not answer");
        return;
    }
    let storage = Path::new("/var/lib/libvirt/images").join(wm_testkit::unique("cli"));
    let storage_env = storage.display().to_string();
    let console = Console::start(&[
        ("WM_VM", "true"),
        ("WM_VM_DOMAIN_TYPE", "qemu"),
        ("WM_VM_STORAGE_DIR", &storage_env),
    ]);
    struct Vms<'a>(&'a Console, PathBuf);
    impl Drop for Vms<'_> {
        fn drop(&mut self) {
            wm_testkit::remove_vms(&self.0.instance, &self.1);
        }
    }
    let _vms = Vms(&console, storage.clone());
    let wm = Wm::new();
    let out = wm
        .cmd(&["login", "--url", &console.url, "--user", "admin"])
        .env("WM_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let disk = wm_testkit::vm_test_disk();
    let shown = wm.ok(&["vm", "upload", disk.to_str().unwrap(), "--name", "guest"]);
    assert!(shown.contains("guest\tqcow2"), "{shown}");
    let junk = wm.home.path().join("junk.img");
    std::fs::write(&junk, "not a disk image, only words").unwrap();
    let out = wm.run(&["vm", "upload", junk.to_str().unwrap(), "--name", "junk"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("neither a qcow2 image nor a raw disk"),
        "{}",
        stderr(&out)
    );
    let images = wm.ok(&["vm", "images"]);
    assert!(
        images.contains("guest") && images.contains("HOST"),
        "{images}"
    );

    wm.ok(&[
        "vm",
        "define",
        "os",
        "--template",
        "small",
        "--image",
        "guest",
        "-p",
        "80",
    ]);
    let list = wm.ok(&["vm", "list"]);
    assert!(list.contains("os") && list.contains("shutoff"), "{list}");
    let xml = wm.ok(&["vm", "dumpxml", "os"]);
    assert!(xml.contains("<domain type='qemu'"), "{xml}");
    assert!(wm.ok(&["vm", "start", "os"]).contains("running"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(240);
    loop {
        let log = wm.ok(&["vm", "console", "--log", "os"]);
        if log.contains("WM-GUEST-READY") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no marker in: {log}");
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    // The serial console in a terminal, left with Ctrl-] as in virsh.
    let (status, shown) = in_a_terminal(
        &wm,
        &["vm", "console", "os"],
        serde_json::json!([
            ["expect", "Ctrl-]"],
            ["send", "\r"],
            ["send", "echo wm-$((6*7))\r"],
            ["expect", "wm-42"],
            ["send", "\u{1d}"],
        ]),
    );
    assert_eq!(status, Some(0), "{shown:?}");
    assert!(wm.ok(&["vm", "destroy", "os"]).contains("shutoff"));
    wm.ok(&["vm", "undefine", "os"]);
    assert!(!wm.ok(&["vm", "list"]).contains("os"));
    wm.ok(&["vm", "rmi", "guest"]);
    let out = wm.run(&["vm", "start", "os"]);
    assert!(!out.status.success());
}

/// `wm login` as `user` with `password`, into this client's config.
fn log_in(wm: &Wm, url: &str, user: &str, password: &str) {
    let out = wm
        .cmd(&["login", "--url", url, "--user", user])
        .env("WM_PASSWORD", password)
        .output()
        .unwrap();
    assert!(out.status.success(), "login as {user}: {}", stderr(&out));
}

#[test]
fn courses_and_accounts_from_the_command_line() {
    let console = Console::start(&[]);
    let url = console.url.as_str();
    let admin = Wm::new();
    log_in(&admin, url, "admin", PASSWORD);
    for (name, role) in [
        ("teach", "teacher"),
        ("stud", "student"),
        ("late", "student"),
    ] {
        let out = admin
            .cmd(&["admin", "add-user", name, "--role", role])
            .env("WM_NEW_PASSWORD", "password-123")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let users = admin.ok(&["admin", "users"]);
    assert!(
        users
            .lines()
            .any(|l| l.starts_with("teach ") && l.contains("teacher")),
        "{users}"
    );

    // The teacher: a course, its join code, an enrolment by name.
    let teacher = Wm::new();
    log_in(&teacher, url, "teach", "password-123");
    let id = teacher
        .ok(&[
            "course",
            "create",
            "Operating systems",
            "--term",
            "2026 spring",
        ])
        .trim()
        .to_string();
    assert_eq!(id.len(), 12, "{id}");
    let join_code = teacher.ok(&["course", "code", &id]).trim().to_string();
    assert_eq!(join_code.len(), 11, "{join_code}");
    let shown = teacher.ok(&["course", "show", &id]);
    assert!(
        shown.contains(&join_code) && shown.contains("teacher\tteach"),
        "{shown}"
    );
    teacher.ok(&["course", "enrol", &id, "late"]);
    let out = teacher.run(&["course", "enrol", &id, "nobody-here"]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));

    // The student joins with the code (a wrong one is refused) and runs a container.
    let student = Wm::new();
    log_in(&student, url, "stud", "password-123");
    let out = student.run(&["course", "join", "WRONG-CODE2"]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert!(student.ok(&["course", "join", &join_code]).contains(&id));
    let list = student.ok(&["course", "list"]);
    assert!(
        list.contains("Operating systems") && list.contains("teach"),
        "{list}"
    );
    let out = student.run(&["course", "containers", &id]);
    assert_eq!(code(&out), Some(5), "only the teacher: {}", stderr(&out));
    student.ok(&["run", "lab", "--image", wm_testkit::TEST_IMAGE]);

    // The teacher sees the members and their containers, with what they use.
    let course: serde_json::Value =
        serde_json::from_str(&teacher.ok(&["course", "show", &id, "--json"])).unwrap();
    assert_eq!(course["members"], serde_json::json!(["late", "stud"]));
    let table = teacher.ok(&["course", "containers", &id]);
    let row = table
        .lines()
        .find(|l| l.starts_with("stud-lab"))
        .expect(&table);
    assert!(row.contains("running"), "{table}");
    let rows: serde_json::Value =
        serde_json::from_str(&teacher.ok(&["course", "containers", &id, "--json"])).unwrap();
    assert!(rows[0]["usage"]["memory"].as_u64().unwrap() > 0, "{rows}");
    teacher.ok(&["course", "unenrol", &id, "late"]);
    teacher.ok(&["course", "code", &id, "--off"]);
    let late = Wm::new();
    log_in(&late, url, "late", "password-123");
    let refused = late.run(&["course", "join", &join_code]);
    assert_eq!(code(&refused), Some(2), "{}", stderr(&refused));

    // The student's account: a second session ended from the first, the password changed.
    let second = Wm::new();
    log_in(&second, url, "stud", "password-123");
    let sessions: serde_json::Value =
        serde_json::from_str(&student.ok(&["account", "sessions", "--json"])).unwrap();
    let others: Vec<&str> = sessions
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["current"] == false)
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(others.len(), 1, "{sessions}");
    assert!(student.ok(&["account", "sessions"]).contains('*'));
    student.ok(&["account", "end-session", others[0]]);
    assert_eq!(code(&second.run(&["whoami"])), Some(3));
    assert!(student.ok(&["account", "tokens"]).starts_with("ID"));
    let out = student.run(&["account", "revoke", "no-such-token"]);
    assert_eq!(code(&out), Some(4), "{}", stderr(&out));
    let out = student
        .cmd(&["account", "passwd"])
        .env("WM_PASSWORD", "wrong-password")
        .env("WM_NEW_PASSWORD", "another-pass-1")
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    let out = student
        .cmd(&["account", "passwd"])
        .env("WM_PASSWORD", "password-123")
        .env("WM_NEW_PASSWORD", "another-pass-1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    log_in(&second, url, "stud", "another-pass-1");

    // The administrator: role, disable and enable, a reset password, delete.
    assert!(admin
        .ok(&["admin", "role", "stud", "teacher"])
        .contains("teacher"));
    assert!(admin.ok(&["admin", "disable", "stud"]).contains("disabled"));
    assert_eq!(code(&second.run(&["whoami"])), Some(3));
    let out = student
        .cmd(&["login", "--url", url, "--user", "stud"])
        .env("WM_PASSWORD", "another-pass-1")
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(5), "{}", stderr(&out));
    admin.ok(&["admin", "enable", "stud"]);
    let out = admin
        .cmd(&["admin", "passwd", "stud"])
        .env("WM_NEW_PASSWORD", "reset-pass-22")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    log_in(&student, url, "stud", "reset-pass-22");
    let out = admin.run(&["admin", "role", "stud", "king"]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    let out = admin.run(&["admin", "delete", "stud"]);
    assert_eq!(code(&out), Some(2), "no --yes: {}", stderr(&out));
    let out = admin.run(&["admin", "delete", "stud", "--yes"]);
    assert_eq!(code(&out), Some(5), "containers left: {}", stderr(&out));
    assert!(admin.ok(&["admin", "users"]).contains("stud "));
    admin.ok(&["admin", "delete", "stud", "--containers", "delete", "--yes"]);
    assert!(!admin.ok(&["admin", "users"]).contains("stud "));
    assert_eq!(code(&student.run(&["whoami"])), Some(3));
}
