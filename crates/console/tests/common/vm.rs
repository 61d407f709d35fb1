//! A console lending VMs from the real libvirt system daemon (software emulation), for the
//! VM tests: its domains and disks go when it is dropped, also when the test fails.

use super::{spawn_with, test_config, TestApp};
use std::path::{Path, PathBuf};

/// A console lending VMs, whose domains and disks go when it is dropped.
pub struct VmApp {
    pub app: TestApp,
    pub storage: PathBuf,
}

impl Drop for VmApp {
    fn drop(&mut self) {
        wm_testkit::remove_vms(&self.app.instance, &self.storage);
    }
}

impl std::ops::Deref for VmApp {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.app
    }
}

/// The console, or `None` (outside CI) when libvirt is not here; under `CI=true` a
/// missing libvirt fails the test.
pub async fn spawn_vm_app(image_max_bytes: Option<u64>) -> Option<VmApp> {
    if !wm_testkit::libvirt_answers() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "libvirt's system daemon does not answer (scripts/test starts it)"
        );
        eprintln!("skipped: libvirt's system daemon does not answer");
        return None;
    }
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    // Under /var/lib/libvirt/images, whose mode lets libvirt's QEMU user reach the disks.
    let storage = Path::new("/var/lib/libvirt/images").join(&config.docker.instance);
    config.vm.enabled = Some(true);
    config.vm.domain_type = Some("qemu".into());
    config.vm.storage_dir = storage.clone();
    if let Some(max) = image_max_bytes {
        config.vm.image_max_bytes = max;
    }
    config.vm.templates = vec![wm_console::config::VmTemplateSettings {
        name: "tiny".into(),
        vcpus: 1,
        memory: "192m".into(),
        nic: wm_backend::vm::NicModel::E1000,
        disk_bus: wm_backend::vm::DiskBus::Virtio,
        description: Some("for the tests".into()),
    }];
    let app = spawn_with(config, data).await;
    Some(VmApp { app, storage })
}

/// `qemu-img create` of 16 MiB into `dir` with `args`; the image's path.
pub fn qemu_img_create(dir: &Path, args: &[&str]) -> PathBuf {
    let file = dir.join(format!("made-{}.img", args.join("").replace('/', "_")));
    let out = std::process::Command::new("qemu-img")
        .arg("create")
        .arg("-q")
        .args(args)
        .arg(&file)
        .arg("16M")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    file
}
