//! Every object the backend applies, checked offline against the real Kubernetes schemas
//! of several releases with `kubernetes-validate --strict` (PyPI), which refuses unknown
//! fields as well as wrong types and missing required ones.
//!
//! The validator is found at `WM_KUBE_VALIDATE`, on `PATH`, or in `/opt/wm-venv` (where
//! `scripts/test` installs it). Without it the test is skipped, unless `CI` is set: there
//! it fails.

use std::path::PathBuf;
use std::process::Command;
use wm_domain::{ContainerName, EnvVar, GuestPort, ImageRef, Role, ShortName, UserName};
use wm_kube::{render_manifests, KubeContainerSpec, KubeSettings};

/// The oldest release we support, the one k8s-openapi is built for, and the newest the
/// validator ships.
const VERSIONS: &[&str] = &["1.29.0", "1.33.0", "1.37.0"];

fn validator() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WM_KUBE_VALIDATE") {
        return Some(PathBuf::from(p));
    }
    let on_path = Command::new("kubernetes-validate")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if on_path {
        return Some(PathBuf::from("kubernetes-validate"));
    }
    let venv = PathBuf::from("/opt/wm-venv/bin/kubernetes-validate");
    venv.exists().then_some(venv)
}

#[test]
fn every_generated_object_is_valid_for_each_kubernetes_release() {
    let Some(validator) = validator() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "kubernetes-validate is missing: scripts/test installs it into /opt/wm-venv"
        );
        eprintln!("skipped: kubernetes-validate is missing (scripts/test installs it)");
        return;
    };
    let settings = KubeSettings {
        ingress_class: Some("nginx".into()),
        storage_class: Some("standard".into()),
        volume_size: Some("5Gi".into()),
        domain: "k8s.example.org".into(),
        ..Default::default()
    };
    let mut settings = settings;
    // A GPU in the teacher's quota and on the container: the extended resource's
    // request and limit, checked against the schemas as well.
    settings.resources.teacher.max_gpus = 2;
    let owner = UserName::parse("alice").unwrap();
    let short_name = ShortName::parse("web").unwrap();
    let spec = KubeContainerSpec {
        name: ContainerName::new(&owner, &short_name).unwrap(),
        owner: owner.clone(),
        short_name,
        image: ImageRef::parse("registry.example.org:5000/course/web:1.0").unwrap(),
        env: vec![
            EnvVar::parse("GREETING=hello: world").unwrap(),
            EnvVar::parse("N=007").unwrap(),
        ],
        ports: vec![GuestPort::new(8080).unwrap(), GuestPort::new(22).unwrap()],
        creation_id: "4b4c0a5e-6f43-4f0e-9a55-0ad0e2b1e1a7".into(),
        role: Role::Teacher,
        gpus: 1,
        courses: Vec::new(),
    };
    let yaml = render_manifests(&settings, &owner, Role::Teacher, Some(&spec)).unwrap();
    assert_eq!(
        yaml.matches("nvidia.com/gpu").count(),
        3,
        "the quota, the request and the limit"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("alice.yaml");
    std::fs::write(&file, &yaml).unwrap();
    assert_eq!(
        yaml.matches("\nkind: ").count() + usize::from(yaml.starts_with("kind: ")),
        11
    );

    for version in VERSIONS {
        let out = Command::new(&validator)
            .args(["--strict", "-k", version])
            .arg(&file)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", validator.display()));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "Kubernetes {version} refuses our objects:\n{text}\n--- the objects:\n{yaml}"
        );
        // One line per document: proof that every object was looked at, with the
        // schemas of the release asked for.
        let minor = version.trim_end_matches(".0");
        assert_eq!(
            text.lines()
                .filter(|l| l.contains("passed for resource")
                    && l.ends_with(&format!("against version {minor}")))
                .count(),
            11,
            "Kubernetes {version}:\n{text}"
        );
    }

    // And the validator does refuse what is wrong: a field no schema has.
    let wrong = yaml.replacen("allowPrivilegeEscalation:", "allowPrivilegeEscalations:", 1);
    std::fs::write(&file, wrong).unwrap();
    let out = Command::new(&validator)
        .args(["--strict", "-k", VERSIONS[0]])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a misspelt field passed");
}
