//! Shared by the integration tests and the benchmark: the busybox test image (built
//! locally, `FROM scratch`, since no registry can be reached), small Docker CLI helpers,
//! and a stand-in Kubernetes API server ([`kube_apiserver`]), since no cluster can be had.
//!
//! Everything built or created here carries the label `whalemountain.test=1`, which the
//! test command removes at the end of a run.

pub mod browser;
pub mod kube_apiserver;

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Once;

/// busybox with `sh` and `httpd`; serves `/www` on port 80 by default.
pub const TEST_IMAGE: &str = "wm-test-busybox:1";
pub const TEST_LABEL: &str = "whalemountain.test";

/// Builds [`TEST_IMAGE`] unless the engine has it. Built from a prepared root, so the build
/// runs no container.
pub fn ensure_test_image() -> &'static str {
    static BUILT: Once = Once::new();
    BUILT.call_once(build_test_image);
    TEST_IMAGE
}

fn build_test_image() {
    if docker(&["image", "inspect", TEST_IMAGE]).status.success() {
        return;
    }
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "/bin/busybox is missing: install busybox-static (scripts/test does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("rootfs");
    for d in ["bin", "tmp", "www", "etc"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    let list = Command::new(busybox).arg("--list").output().unwrap();
    for applet in String::from_utf8(list.stdout).unwrap().lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
    }
    std::fs::write(root.join("www/index.html"), "hello from whalemountain\n").unwrap();
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    build_image(
        dir.path(),
        TEST_IMAGE,
        &format!(
            "FROM scratch\nCOPY rootfs /\nLABEL {TEST_LABEL}=1\nENV PATH=/bin\n\
             CMD [\"/bin/httpd\", \"-f\", \"-p\", \"80\", \"-h\", \"/www\"]\n"
        ),
    );
}

/// Builds an image FROM the test image with extra labels.
pub fn build_labelled_image(tag: &str, labels: &[(&str, &str)]) {
    ensure_test_image();
    let dir = tempfile::tempdir().unwrap();
    // One LABEL step with a nonce: no build-cache image is shared with another test's
    // build, so removing one test's image never pulls a layer from under another.
    let mut dockerfile = format!(
        "FROM {TEST_IMAGE}\nLABEL {TEST_LABEL}=1 whalemountain.build={}",
        unique("")
    );
    for (k, v) in labels {
        dockerfile.push_str(&format!(" {k}={v}"));
    }
    dockerfile.push('\n');
    build_image(dir.path(), tag, &dockerfile);
}

/// Builds `tag` from `dockerfile`, written into `context` beside what is there, with the
/// classic builder; panics with the engine's words when the build fails.
pub fn build_image(context: &Path, tag: &str, dockerfile: &str) {
    std::fs::write(context.join("Dockerfile"), dockerfile).unwrap();
    let out = Command::new("docker")
        .args(["build", "-q", "-t", tag])
        .arg(context)
        // The classic builder needs nothing from a registry for these Dockerfiles.
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .expect("the docker CLI runs");
    assert!(
        out.status.success(),
        "building {tag} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI runs")
}

/// `docker <kind> inspect <name>` as JSON, or `None` when there is no such object.
pub fn inspect(kind: &str, name: &str) -> Option<Value> {
    let out = docker(&[kind, "inspect", name]);
    if !out.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.get(0).cloned()
}

/// Removes every container, network and volume labelled `label=value`.
pub fn remove_labelled(label: &str, value: &str) {
    let filter = format!("label={label}={value}");
    let ids = docker(&["ps", "-aq", "--filter", &filter]);
    let ids: Vec<String> = String::from_utf8_lossy(&ids.stdout)
        .lines()
        .map(String::from)
        .collect();
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(ids.iter().map(String::as_str));
        docker(&args);
    }
    let nets = docker(&["network", "ls", "-q", "--filter", &filter]);
    for id in String::from_utf8_lossy(&nets.stdout).lines() {
        docker(&["network", "rm", id]);
    }
    // Users' storage volumes, once their containers are gone.
    let volumes = docker(&["volume", "ls", "-q", "--filter", &filter]);
    for name in String::from_utf8_lossy(&volumes.stdout).lines() {
        docker(&["volume", "rm", name]);
    }
}

/// Waits until the program `child` (started with its standard error piped) logs that it is
/// listening; answers what it logged until then. Panics, with that, after `secs` seconds.
/// Its later lines are read and dropped, so it never blocks on a full pipe.
pub fn wait_until_listening(child: &mut std::process::Child, secs: u64) -> String {
    use std::io::{BufRead, BufReader};
    let stderr = child.stderr.take().expect("standard error is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut said = String::new();
    loop {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(secs))
            .unwrap_or_else(|_| panic!("the program did not start; it said:\n{said}"));
        said.push_str(&line);
        said.push('\n');
        if line.contains("listening on") {
            return said;
        }
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `prefix` and eight random hex digits.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// A real OpenLDAP `slapd` on a loopback port, with its own configuration and database
/// in a temporary directory; killed when dropped. Starts in well under a second.
pub struct Slapd {
    child: Option<std::process::Child>,
    dir: tempfile::TempDir,
    pub port: u16,
    /// With [`Slapd::start_tls`]: the `ldaps://` port.
    pub tls_port: Option<u16>,
}

/// The directory every test starts from: `dc=example,dc=org`, people under `ou=people`,
/// groups under `ou=groups`.
pub const LDAP_SUFFIX: &str = "dc=example,dc=org";
pub const LDAP_ADMIN_DN: &str = "cn=admin,dc=example,dc=org";
pub const LDAP_ADMIN_PASSWORD: &str = "directory-admin";

impl Slapd {
    /// Starts slapd with the base entries plus `ldif` (entries separated by blank lines).
    pub fn start(ldif: &str) -> Slapd {
        Self::start_inner(ldif, false)
    }

    /// Like [`Slapd::start`], also serving `ldaps://` and StartTLS with a certificate for
    /// 127.0.0.1 signed by a CA made for this server ([`Slapd::ca_file`]).
    pub fn start_tls(ldif: &str) -> Slapd {
        Self::start_inner(ldif, true)
    }

    /// The PEM file of the CA that signed the TLS certificate.
    pub fn ca_file(&self) -> std::path::PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn tls_url(&self) -> String {
        format!(
            "ldaps://127.0.0.1:{}",
            self.tls_port.expect("started with TLS")
        )
    }

    fn start_inner(ldif: &str, tls: bool) -> Slapd {
        for tool in ["/usr/sbin/slapd", "/usr/sbin/slapadd"] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: install slapd (scripts/test does)"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        std::fs::create_dir(&db).unwrap();
        let tls_conf = if tls {
            make_certificates(dir.path());
            format!(
                "TLSCACertificateFile {d}/ca.pem\nTLSCertificateFile {d}/server.pem\nTLSCertificateKeyFile {d}/server.key\n",
                d = dir.path().display()
            )
        } else {
            String::new()
        };
        let conf = format!(
            "{tls_conf}include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/nis.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             pidfile {dir}/slapd.pid\n\
             database mdb\n\
             maxsize 104857600\n\
             suffix \"{LDAP_SUFFIX}\"\n\
             rootdn \"{LDAP_ADMIN_DN}\"\n\
             rootpw {LDAP_ADMIN_PASSWORD}\n\
             directory {db}\n\
             access to attrs=userPassword by self write by anonymous auth by * none\n\
             access to * by * read\n",
            dir = dir.path().display(),
            db = db.display(),
        );
        std::fs::write(dir.path().join("slapd.conf"), conf).unwrap();
        let base = format!(
            "dn: {LDAP_SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
             dn: ou=people,{LDAP_SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n\
             dn: ou=groups,{LDAP_SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n\n{ldif}\n"
        );
        std::fs::write(dir.path().join("data.ldif"), base).unwrap();
        let out = Command::new("/usr/sbin/slapadd")
            .arg("-f")
            .arg(dir.path().join("slapd.conf"))
            .arg("-l")
            .arg(dir.path().join("data.ldif"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "slapadd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut s = Slapd {
            child: None,
            dir,
            port: free_port(),
            tls_port: tls.then(free_port),
        };
        s.resume();
        s
    }

    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// Stops the server, as an outage would.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port with the same data.
    pub fn resume(&mut self) {
        self.stop();
        let child = Command::new("/usr/sbin/slapd")
            .arg("-f")
            .arg(self.dir.path().join("slapd.conf"))
            .arg("-h")
            .arg(match self.tls_port {
                Some(_) => format!("{} {}", self.url(), self.tls_url()),
                None => self.url(),
            })
            // In the foreground, so that killing the child stops the server.
            .args(["-d", "0"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("slapd runs");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "slapd did not listen within 10 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// In `dir`, with the openssl tool: a CA (`ca.pem`, `ca.key`), a server certificate for
/// 127.0.0.1 (`server.pem`, `server.key`) and a client certificate (`client.pem`,
/// `client.key`), both signed by the CA.
pub fn make_certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=whalemountain test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=whalemountain console",
        "-keyout",
        "client.key",
        "-out",
        "client.csr",
    ]);
    std::fs::write(
        dir.join("client.ext"),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "client.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "client.ext",
        "-out",
        "client.pem",
    ]);
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A real registry (Debian's `docker-registry`) on a loopback port, storing into a
/// temporary directory; stopped when dropped. The engine trusts 127.0.0.0/8 without TLS.
pub struct Registry {
    child: std::process::Child,
    _dir: tempfile::TempDir,
    pub port: u16,
}

impl Registry {
    pub fn start() -> Registry {
        Self::start_inner(None)
    }

    /// A registry that wants a login (htpasswd, bcrypt, made with Debian's apache2-utils).
    pub fn start_with_login(user: &str, password: &str) -> Registry {
        Self::start_inner(Some((user, password)))
    }

    fn start_inner(login: Option<(&str, &str)>) -> Registry {
        assert!(
            Path::new("/usr/bin/docker-registry").exists(),
            "/usr/bin/docker-registry is missing: install docker-registry (scripts/test does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let auth = match login {
            Some((user, password)) => {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", user, password])
                    .output()
                    .expect("htpasswd runs (install apache2-utils; scripts/test does)");
                assert!(out.status.success());
                let file = dir.path().join("htpasswd");
                std::fs::write(&file, out.stdout).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                    file.display()
                )
            }
            None => String::new(),
        };
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker-registry runs");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the registry did not listen within 10 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Registry {
            child,
            _dir: dir,
            port,
        }
    }

    /// `127.0.0.1:<port>`, as it appears in image references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Pushes a local image under `name` (e.g. `team/tool:1`); returns the full reference.
    /// The local tag made for the push is removed again.
    pub fn push(&self, local: &str, name: &str) -> String {
        self.push_as(local, name, None)
    }

    /// Like [`Registry::push`], logged in with `login` for the push only (the CLI's
    /// login is removed again).
    pub fn push_as(&self, local: &str, name: &str, login: Option<(&str, &str)>) -> String {
        let reference = format!("{}/{name}", self.host());
        assert!(docker(&["tag", local, &reference]).status.success());
        if let Some((user, password)) = login {
            let out = docker(&["login", &self.host(), "-u", user, "-p", password]);
            assert!(
                out.status.success(),
                "docker login: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let out = docker(&["push", &reference]);
        if login.is_some() {
            docker(&["logout", &self.host()]);
        }
        assert!(
            out.status.success(),
            "docker push: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        docker(&["rmi", &reference]);
        reference
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `virsh -c qemu:///system` with `args`.
pub fn virsh(args: &[&str]) -> std::process::Output {
    std::process::Command::new("virsh")
        .args(["-q", "-c", "qemu:///system"])
        .args(args)
        .output()
        .expect("virsh runs")
}

/// Whether libvirt's system daemon answers.
pub fn libvirt_answers() -> bool {
    std::process::Command::new("virsh")
        .args(["-q", "-c", "qemu:///system", "version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Powers off and undefines every domain whose name starts with `<instance>.` (what a
/// test's console defines), and removes `storage_dir`.
pub fn remove_vms(instance: &str, storage_dir: &std::path::Path) {
    let prefix = format!("{instance}.");
    let names = virsh(&["list", "--all", "--name"]);
    for name in String::from_utf8_lossy(&names.stdout)
        .lines()
        .map(str::trim)
        .filter(|n| n.starts_with(&prefix))
    {
        virsh(&["destroy", name]);
        virsh(&["undefine", name]);
    }
    let _ = std::fs::remove_dir_all(storage_dir);
}

/// The small bootable disk of `scripts/vm-test-disk` (made once, cached under the target
/// directory): Debian's kernel and a busybox initramfs that prints `WM-GUEST-READY` on
/// the serial console and serves HTTP on port 80.
pub fn vm_test_disk() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let out = std::process::Command::new(root.join("scripts/vm-test-disk"))
        .arg(target.join("vm-test-disk"))
        .output()
        .expect("scripts/vm-test-disk runs");
    assert!(
        out.status.success(),
        "scripts/vm-test-disk failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}
