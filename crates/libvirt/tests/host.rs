//! The libvirt backend against the real system daemon: what it defines carries our
//! metadata, which `list` reads back from libvirt's own copy of the XML (as after a
//! restart), and undefine removes the domain and the VM's disk, also when repeated. Its
//! forwarded ports come from the pool of the host's containers, and go back to a new
//! pool from the metadata after a restart.

use std::sync::Arc;
use wm_backend::ports::{PortPool, PortRange};
use wm_backend::vm::{DiskBus, DiskFormat, NicModel, VmBackend, VmImageKey, VmSpec, VmState};
use wm_domain::{ContainerKey, GuestPort, ShortName, UserName};
use wm_libvirt::{Libvirt, LibvirtSettings};

/// Removes the test's domains and directory, also when the test fails.
struct Cleanup(String, std::path::PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let names = std::process::Command::new("virsh")
            .args(["-q", "-c", "qemu:///system", "list", "--all", "--name"])
            .output();
        if let Ok(out) = names {
            for name in String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|n| n.starts_with(&format!("{}.", self.0)))
            {
                let _ = std::process::Command::new("virsh")
                    .args(["-q", "-c", "qemu:///system", "undefine", name.trim()])
                    .output();
            }
        }
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

#[tokio::test]
async fn defined_domains_are_found_again_from_their_metadata() {
    let answers = std::process::Command::new("virsh")
        .args(["-q", "-c", "qemu:///system", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !answers {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "libvirt's system daemon does not answer (scripts/test starts it)"
        );
        return;
    }
    let instance = format!("lv{}", std::process::id());
    let storage = std::path::Path::new("/var/lib/libvirt/images").join(&instance);
    let _cleanup = Cleanup(instance.clone(), storage.clone());
    // Four ports: one another program holds, the VM's two and one for a container. The
    // VM's are never bound: it is not started.
    let range = PortRange {
        first: 47_101,
        last: 47_104,
    };
    let libvirt = |ports: Arc<PortPool>| {
        Libvirt::new(LibvirtSettings {
            uri: "qemu:///system".into(),
            domain_type: "qemu".into(),
            storage_dir: storage.clone(),
            instance: instance.clone(),
            publish_address: "127.0.0.1".into(),
            ports,
        })
    };
    let pool = Arc::new(PortPool::new(range));
    let host = libvirt(pool.clone());
    let owner = UserName::parse("alice").unwrap();
    let image = VmImageKey {
        owner: owner.clone(),
        name: ShortName::parse("blank").unwrap(),
    };
    let upload = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(upload.path(), vec![0u8; 1 << 20]).unwrap();
    let info = host.import_image(&image, upload.path()).await.unwrap();
    assert_eq!(info.format, DiskFormat::Raw);

    let key = ContainerKey::new(&owner, &ShortName::parse("os").unwrap()).unwrap();
    let spec = VmSpec {
        key: key.clone(),
        template: "small".into(),
        image: image.clone(),
        image_format: DiskFormat::Raw,
        vcpus: 1,
        memory_bytes: 128 << 20,
        nic: NicModel::Virtio,
        disk_bus: DiskBus::Sata,
        ports: vec![GuestPort::new(22).unwrap(), GuestPort::new(80).unwrap()],
    };
    let other_program = std::net::TcpListener::bind("127.0.0.1:47101").unwrap();
    let forwards = host.define(&spec).await.unwrap();
    drop(other_program);
    let lent: Vec<u16> = forwards.iter().map(|f| f.host).collect();
    assert!(
        !lent.contains(&47_101),
        "a port another program holds is skipped: {lent:?}"
    );
    assert_eq!(forwards.len(), 2);
    assert_eq!(forwards[0].guest.get(), 22);
    assert!(lent.iter().all(|p| range.contains(*p)), "{lent:?}");
    // A container of the same host gets the one port left, and no more.
    let container_port = pool.lend("alice-web", 1).unwrap();
    assert!(!lent.contains(&container_port[0]));
    assert!(pool.lend("alice-web2", 1).is_err());
    pool.release("alice-web");
    assert_eq!(host.state(&key).await.unwrap(), VmState::Shutoff);
    let found = host.list().await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].key, key);
    assert_eq!(found[0].template, "small");
    assert_eq!(found[0].image, "alice/blank");
    assert_eq!(found[0].forwards, forwards);
    // After a restart, a new pool learns the VM's ports from listing its domains.
    let restarted_pool = Arc::new(PortPool::new(range));
    let restarted = libvirt(restarted_pool.clone());
    assert_eq!(restarted.list().await.unwrap()[0].forwards, forwards);
    let after_restart = restarted_pool.lend("alice-web", 2).unwrap();
    assert!(
        after_restart.iter().all(|p| !lent.contains(p)),
        "{after_restart:?}"
    );
    assert!(restarted_pool.lend("alice-web2", 1).is_err());
    let xml = host.dumpxml(&key).await.unwrap();
    assert!(xml.contains(wm_libvirt::NS), "{xml}");
    assert!(xml.contains("bus='sata'"), "{xml}");

    host.undefine(&key).await.unwrap();
    host.undefine(&key).await.unwrap();
    assert_eq!(host.state(&key).await.unwrap(), VmState::Gone);
    assert!(host.list().await.unwrap().is_empty());
    assert!(!storage.join("vms/alice/os").exists());
    // Undefined: its ports are the containers' again.
    assert_eq!(pool.lend("alice-web", 3).unwrap().len(), 3);
    host.remove_image(&image).await.unwrap();
    host.remove_image(&image).await.unwrap();
}
