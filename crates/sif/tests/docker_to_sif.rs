//! Converts a real multi-layer image from the local Docker engine and checks the SIF with the
//! real tools: `siftool` reads the header and descriptor, `unsquashfs` extracts the partition,
//! and the extracted tree is compared with `docker export` of a container of the same image.
//! Runs as root (ownership is restored by unsquashfs only for root, and the runtime scripts
//! are run in a chroot of the extracted tree).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::ops::ControlFlow;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use wm_sif::{docker_archive_to_sif, Progress, SifError};
use wm_testkit::{docker, ensure_test_image, unique, TEST_LABEL};

/// Removes the image and container a test made, also when it fails.
struct Cleanup {
    image: String,
    container: Option<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(c) = &self.container {
            docker(&["rm", "-f", c]);
        }
        docker(&["rmi", "-f", &self.image]);
    }
}

/// Layers that exercise whiteouts, an opaque directory, links, modes and owners.
const DOCKERFILE: &str = r#"
LABEL org.example.course="containers 101"
RUN mkdir -p /data/gone-dir /data/opq/old-sub \
 && echo lower > /data/lower.txt && echo bye > /data/gone.txt && echo x > /data/gone-dir/x \
 && echo old > /data/opq/old.txt && echo oldsub > /data/opq/old-sub/f \
 && echo shared > /data/orig && ln /data/orig /data/hard \
 && ln -s /data/lower.txt /data/sym && ln -s ../lower.txt /data/opq-rel
RUN rm -rf /data/gone.txt /data/gone-dir /data/opq && mkdir /data/opq && echo new > /data/opq/new.txt
RUN echo suid > /data/suid && chmod 4755 /data/suid \
 && mkdir /data/sticky && chmod 1777 /data/sticky \
 && echo secret > /data/secret && chmod 0600 /data/secret \
 && mkdir /data/owned && echo mine > /data/owned/f && ln /data/owned/f /data/owned/f2 \
 && chown -R 1000:1000 /data/owned && mkfifo /data/fifo && rm /data/orig
ENV GREETING="hello 'quoted' \$world" PATH=/bin:/usr/local/bin
WORKDIR /work
ENTRYPOINT ["/bin/echo", "entry"]
CMD ["default arg"]
"#;

fn build_image(tag: &str) {
    let base = ensure_test_image();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {base}\nLABEL {TEST_LABEL}=1\n{DOCKERFILE}"),
    )
    .unwrap();
    let out = Command::new("docker")
        .args(["build", "-q", "-t", tag])
        .arg(dir.path())
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `docker save` streamed straight into the conversion.
fn convert(
    image: &str,
    workdir: &Path,
    sif: &Path,
    progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<wm_sif::SifSummary, SifError> {
    let mut save = Command::new("docker")
        .args(["save", image])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufWriter::new(std::fs::File::create(sif).unwrap());
    let result = docker_archive_to_sif(save.stdout.take().unwrap(), workdir, &mut out, progress);
    // A cancelled conversion stops reading; docker save then fails on the closed pipe.
    let _ = save.wait();
    result
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// What is compared of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Item {
    kind: char,
    mode: u32,
    uid: u64,
    gid: u64,
    /// Symlink target, or file content.
    data: Vec<u8>,
    /// Regular files and symlinks only: directories' times are touched by Docker's init layer.
    mtime: Option<u64>,
}

/// The tree of `docker export`, and its hard-link groups.
fn exported(container: &str) -> (BTreeMap<String, Item>, BTreeSet<BTreeSet<String>>) {
    let mut export = Command::new("docker")
        .args(["export", container])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut items = BTreeMap::new();
    let mut links: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut tar = tar::Archive::new(export.stdout.take().unwrap());
    for e in tar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().display().to_string();
        let path = path.trim_end_matches('/').to_string();
        if path.is_empty() || path == "." {
            continue;
        }
        let h = e.header().clone();
        let link = e
            .link_name()
            .unwrap()
            .map(|l| l.display().to_string().into_bytes());
        let (kind, data) = match h.entry_type() {
            tar::EntryType::Directory => ('d', Vec::new()),
            tar::EntryType::Symlink => ('l', link.unwrap()),
            tar::EntryType::Link => {
                let target = String::from_utf8(link.unwrap()).unwrap();
                links
                    .entry(target.clone())
                    .or_insert_with(|| BTreeSet::from([target.clone()]))
                    .insert(path.clone());
                let original = items.get(&target).cloned();
                items.insert(path, original.expect("a hard link follows its target"));
                continue;
            }
            tar::EntryType::Regular => {
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                ('f', data)
            }
            _ => ('?', Vec::new()),
        };
        let mtime = matches!(kind, 'f' | 'l').then(|| h.mtime().unwrap());
        items.insert(
            path,
            Item {
                kind,
                mode: h.mode().unwrap() & 0o7777,
                uid: h.uid().unwrap(),
                gid: h.gid().unwrap(),
                data,
                mtime,
            },
        );
    }
    assert!(export.wait().unwrap().success());
    (items, links.into_values().collect())
}

/// The tree `unsquashfs` extracted under `root`, and its hard-link groups.
fn extracted(root: &Path) -> (BTreeMap<String, Item>, BTreeSet<BTreeSet<String>>) {
    let mut items = BTreeMap::new();
    let mut inodes: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let path: PathBuf = e.unwrap().path();
            let name = path.strip_prefix(root).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let (kind, data) = if meta.is_dir() {
                stack.push(path.clone());
                ('d', Vec::new())
            } else if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                ('l', target.display().to_string().into_bytes())
            } else if meta.is_file() {
                inodes.entry(meta.ino()).or_default().insert(name.clone());
                ('f', std::fs::read(&path).unwrap())
            } else {
                ('?', Vec::new())
            };
            let mtime = matches!(kind, 'f' | 'l').then(|| meta.mtime() as u64);
            items.insert(
                name,
                Item {
                    kind,
                    mode: meta.mode() & 0o7777,
                    uid: meta.uid().into(),
                    gid: meta.gid().into(),
                    data,
                    mtime,
                },
            );
        }
    }
    let groups = inodes.into_values().filter(|g| g.len() > 1).collect();
    (items, groups)
}

/// What Docker adds to every container's file system.
fn added_by_docker(path: &str) -> bool {
    [
        ".dockerenv",
        "etc/hosts",
        "etc/hostname",
        "etc/resolv.conf",
        "etc/mtab",
    ]
    .contains(&path)
        || ["dev", "proc", "sys"]
            .iter()
            .any(|d| path == *d || path.starts_with(&format!("{d}/")))
}

/// What the runtime layout adds to the image.
fn added_for_apptainer(path: &str) -> bool {
    path == ".singularity.d"
        || path.starts_with(".singularity.d/")
        || [
            "singularity",
            ".run",
            ".exec",
            ".shell",
            ".test",
            "environment",
            "etc/hosts",
            "etc/resolv.conf",
            "dev",
            "proc",
            "sys",
            "home",
            "root",
            "var",
            "var/tmp",
        ]
        .contains(&path)
}

#[test]
fn a_multi_layer_image_becomes_a_sif_apptainer_can_run() {
    let image = unique("wm-sif-test:");
    let mut cleanup = Cleanup {
        image: image.clone(),
        container: None,
    };
    build_image(&image);
    let work = tempfile::tempdir().unwrap();
    let workdir = work.path().join("work");
    std::fs::create_dir(&workdir).unwrap();
    let sif = work.path().join("image.sif");

    let mut seen = Vec::new();
    let summary = convert(&image, &workdir, &sif, &mut |p| {
        seen.push(p);
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(
        std::fs::read_dir(&workdir).unwrap().count(),
        0,
        "temporary files are removed"
    );
    assert_eq!(summary.arch.as_str(), "amd64");
    assert!(summary.layers >= 4, "{summary:?}");
    assert_eq!(summary.sif_bytes, std::fs::metadata(&sif).unwrap().len());
    assert_eq!(summary.sif_bytes, 32768 + summary.squashfs_bytes);
    assert!(matches!(seen.first(), Some(Progress::Spooling { .. })));
    assert!(seen.contains(&Progress::Scanning {
        layer: summary.layers,
        layers: summary.layers
    }));
    assert!(seen
        .iter()
        .any(|p| matches!(p, Progress::Squashing { layer, .. } if *layer == summary.layers)));
    assert_eq!(
        seen.last(),
        Some(&Progress::Writing {
            bytes: summary.squashfs_bytes,
            total: summary.squashfs_bytes
        })
    );

    // siftool reads what we wrote as sylabs/sif does.
    let sif_arg = sif.to_str().unwrap();
    let header = run("siftool", &["header", sif_arg]);
    assert!(header.contains(&summary.id.to_string()), "{header}");
    assert!(header.contains("amd64"), "{header}");
    let list = run("siftool", &["list", sif_arg]);
    let row = list
        .lines()
        .find(|l| l.contains("FS"))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(
        row.contains("Squashfs") && row.contains("*System") && row.contains("amd64"),
        "{list}"
    );
    let info = run("siftool", &["info", "1", sif_arg]);
    assert!(
        info.contains("Squashfs") && info.contains("*System"),
        "{info}"
    );
    assert!(info.contains("amd64"), "{info}");
    let partition = work.path().join("partition.squashfs");
    let dumped = Command::new("siftool")
        .args(["dump", "1", sif_arg])
        .stdout(std::fs::File::create(&partition).unwrap())
        .status()
        .unwrap();
    assert!(dumped.success());
    assert_eq!(
        std::fs::metadata(&partition).unwrap().len(),
        summary.squashfs_bytes
    );
    let root = work.path().join("rootfs");
    run(
        "unsquashfs",
        &[
            "-q",
            "-n",
            "-d",
            root.to_str().unwrap(),
            partition.to_str().unwrap(),
        ],
    );

    // The same tree as Docker's, apart from what each runtime adds.
    let out = docker(&["create", "--label", &format!("{TEST_LABEL}=1"), &image]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let container = String::from_utf8(out.stdout).unwrap().trim().to_string();
    cleanup.container = Some(container.clone());
    let (mut docker_tree, docker_links) = exported(&container);
    let (mut sif_tree, sif_links) = extracted(&root);
    assert_eq!(docker_tree.get("data/fifo").map(|i| i.kind), Some('?'));
    docker_tree.retain(|p, i| !added_by_docker(p) && i.kind != '?');
    let ours: BTreeMap<_, _> = sif_tree
        .iter()
        .filter(|(p, _)| added_for_apptainer(p) && !docker_tree.contains_key(*p))
        .map(|(p, i)| (p.clone(), i.clone()))
        .collect();
    sif_tree.retain(|p, _| !ours.contains_key(p) && !added_by_docker(p));
    let only_docker: Vec<_> = docker_tree
        .keys()
        .filter(|p| !sif_tree.contains_key(*p))
        .collect();
    let only_sif: Vec<_> = sif_tree
        .keys()
        .filter(|p| !docker_tree.contains_key(*p))
        .collect();
    assert!(
        only_docker.is_empty(),
        "missing from the SIF: {only_docker:?}"
    );
    assert!(only_sif.is_empty(), "not in the image: {only_sif:?}");
    for (path, item) in &docker_tree {
        assert_eq!(Some(item), sif_tree.get(path), "{path}");
    }
    assert_eq!(docker_links, sif_links);

    // The layers did what the Dockerfile says, so the comparison above means something.
    let item = |p: &str| docker_tree.get(p).unwrap_or_else(|| panic!("{p}"));
    assert!(!docker_tree.contains_key("data/gone.txt"));
    assert!(!docker_tree.contains_key("data/gone-dir"));
    assert!(!docker_tree.contains_key("data/opq/old.txt"));
    // Not `data/opq/old-sub`: Docker 20.10 on fuse-overlayfs leaves that whiteout out of the
    // layer, so Docker itself keeps it (and so does the SIF, as compared above). This engine
    // writes whiteouts for the recreated directory's old files, not `.wh..wh..opq`; opaque
    // markers are covered by the unit tests of the flattening.
    assert!(!docker_tree.contains_key("data/orig"));
    assert_eq!(item("data/opq/new.txt").data, b"new\n");
    assert_eq!(item("data/hard").data, b"shared\n");
    assert_eq!(item("data/sym").data, b"/data/lower.txt");
    assert_eq!(item("data/suid").mode, 0o4755);
    assert_eq!(item("data/sticky").mode, 0o1777);
    assert_eq!(item("data/secret").mode, 0o600);
    assert_eq!(
        (item("data/owned/f").uid, item("data/owned/f").gid),
        (1000, 1000)
    );
    assert!(docker_links.contains(&BTreeSet::from([
        "data/owned/f".to_string(),
        "data/owned/f2".to_string()
    ])));

    // The runtime layout.
    for (path, kind, mode) in [
        (".singularity.d/runscript", 'f', 0o755),
        (".singularity.d/env/10-docker2singularity.sh", 'f', 0o755),
        (".singularity.d/actions/run", 'f', 0o755),
        (".singularity.d/libs", 'd', 0o755),
        (".singularity.d/labels.json", 'f', 0o644),
        ("singularity", 'l', 0o777),
        ("home", 'd', 0o755),
        ("var/tmp", 'd', 0o755),
    ] {
        let i = ours
            .get(path)
            .unwrap_or_else(|| panic!("{path} in {:?}", ours.keys()));
        assert_eq!((i.kind, i.mode, i.uid, i.gid), (kind, mode, 0, 0), "{path}");
    }
    assert_eq!(ours["singularity"].data, b".singularity.d/runscript");
    assert_eq!(
        ours["environment"].data,
        b".singularity.d/env/90-environment.sh"
    );
    for p in ["etc/hosts", "etc/resolv.conf"] {
        let meta = std::fs::symlink_metadata(root.join(p)).unwrap();
        assert!(
            meta.is_file() && meta.len() == 0 && meta.mode() & 0o7777 == 0o644,
            "{p}"
        );
    }
    let runscript = String::from_utf8(ours[".singularity.d/runscript"].data.clone()).unwrap();
    assert!(
        runscript.contains("OCI_ENTRYPOINT='\"/bin/echo\" \"entry\"'"),
        "{runscript}"
    );
    assert!(
        runscript.contains("OCI_CMD='\"default arg\"'"),
        "{runscript}"
    );
    assert!(runscript.contains("cd '/work' || exit 1"), "{runscript}");
    let env = String::from_utf8(
        ours[".singularity.d/env/10-docker2singularity.sh"]
            .data
            .clone(),
    )
    .unwrap();
    assert!(env.contains("export PATH='/bin:/usr/local/bin'"), "{env}");
    let labels: serde_json::Value =
        serde_json::from_slice(&ours[".singularity.d/labels.json"].data).unwrap();
    assert_eq!(labels["org.example.course"], "containers 101");

    // What `apptainer run` and `exec` do, done by hand in a chroot of the tree: the action
    // scripts source the environment and start the runscript.
    let chroot = |args: &[&str]| {
        let out = Command::new("chroot")
            .arg(&root)
            .args(args)
            .env_clear()
            // Also what the shells in the chroot start with; the image's PATH replaces it.
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(chroot(&["/bin/sh", "/.run"]), "entry default arg\n");
    // Apptainer evaluates the caller's arguments once more, unless asked not to.
    assert_eq!(chroot(&["/bin/sh", "/.run", "it's", "$x"]), "entry it's \n");
    assert_eq!(
        chroot(&[
            "/bin/sh",
            "-c",
            "APPTAINER_NO_EVAL=1 exec /bin/sh /.run \"it's\" '$x'"
        ]),
        "entry it's $x\n"
    );
    assert_eq!(
        chroot(&[
            "/bin/sh",
            "/.exec",
            "/bin/sh",
            "-c",
            "echo \"$GREETING|$PATH\""
        ]),
        "hello 'quoted' $world|/bin:/usr/local/bin\n"
    );
}

#[test]
fn a_cancelled_conversion_leaves_nothing_behind() {
    let image = unique("wm-sif-cancel:");
    let _cleanup = Cleanup {
        image: image.clone(),
        container: None,
    };
    build_image(&image);
    let work = tempfile::tempdir().unwrap();
    let sif = work.path().join("image.sif");
    let workdir = work.path().join("work");
    std::fs::create_dir(&workdir).unwrap();
    let result = convert(&image, &workdir, &sif, &mut |p| match p {
        Progress::Squashing { layer: 2, .. } => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    });
    assert!(matches!(result, Err(SifError::Cancelled)), "{result:?}");
    assert_eq!(std::fs::read_dir(&workdir).unwrap().count(), 0);
}

#[test]
fn not_a_docker_archive_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_mode(0o644);
    tar.append_data(&mut h, "hello.txt", &b"hi"[..]).unwrap();
    let archive = tar.into_inner().unwrap();
    let mut out = Vec::new();
    let result = docker_archive_to_sif(archive.as_slice(), work.path(), &mut out, &mut |_| {
        ControlFlow::Continue(())
    });
    assert!(
        matches!(&result, Err(SifError::InvalidArchive(m)) if m.contains("manifest.json")),
        "{result:?}"
    );
    assert!(out.is_empty());
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0);
}
