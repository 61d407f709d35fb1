//! The domain XML: generated from a [`VmSpec`] and the host's own settings, never taken
//! from a user. The only host path in it is the VM's own directory (its disk, its serial
//! socket and transcript); there are no host devices. Our metadata (namespace [`NS`])
//! lets [`read_meta`] find owner and name again after any restart.

use wm_backend::vm::{DiskBus, Forward, NicModel, VmSpec};
use wm_domain::GuestPort;
use wm_domain::{ContainerKey, ShortName, UserName};

/// The namespace of our metadata element.
pub const NS: &str = "urn:whalemountain:vm:1";

/// What the host adds to a spec.
pub(crate) struct HostPart<'a> {
    pub(crate) domain_name: &'a str,
    pub(crate) domain_type: &'a str,
    pub(crate) instance: &'a str,
    pub(crate) disk: &'a str,
    pub(crate) serial_socket: &'a str,
    pub(crate) serial_log: &'a str,
    pub(crate) publish_address: &'a str,
    /// The host ports lent to the spec's guest ports, in its order.
    pub(crate) forwards: &'a [Forward],
}

/// Our metadata, as read back from a domain.
#[derive(Debug)]
pub(crate) struct Meta {
    pub(crate) instance: String,
    pub(crate) key: ContainerKey,
    pub(crate) template: String,
    pub(crate) image: String,
    pub(crate) forwards: Vec<Forward>,
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// The domain of `spec` on this host.
///
/// The network is QEMU's user-mode stack with `restrict=on`: the guest reaches nothing,
/// not the host, not other guests, not the outside; only the forwarded host ports reach
/// it. libvirt 9 can forward ports of user-mode networking only with passt, so the
/// netdev is given on QEMU's command line (numbers only, made here).
pub(crate) fn domain_xml(spec: &VmSpec, host: &HostPart<'_>) -> String {
    let memory_kib = spec.memory_bytes / 1024;
    let (bus, dev) = match spec.disk_bus {
        DiskBus::Virtio => ("virtio", "vda"),
        DiskBus::Sata => ("sata", "sda"),
    };
    let nic = match spec.nic {
        NicModel::Virtio => "virtio-net-pci",
        NicModel::E1000 => "e1000",
    };
    let mut netdev = "user,id=wmnet0,restrict=on".to_string();
    for f in host.forwards {
        netdev.push_str(&format!(
            ",hostfwd=tcp:{}:{}-:{}",
            host.publish_address,
            f.host,
            f.guest.get()
        ));
    }
    format!(
        r#"<domain type='{domain_type}' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>{name}</name>
  <metadata>
    <wm:vm xmlns:wm='{NS}'>
      <wm:instance>{instance}</wm:instance>
      <wm:owner>{owner}</wm:owner>
      <wm:name>{short}</wm:name>
      <wm:template>{template}</wm:template>
      <wm:image>{image_owner}/{image}</wm:image>
      <wm:forwards>{forwards}</wm:forwards>
    </wm:vm>
  </metadata>
  <memory unit='KiB'>{memory_kib}</memory>
  <vcpu>{vcpus}</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <boot dev='hd'/>
  </os>
  <features>
    <acpi/>
  </features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{disk}'/>
      <target dev='{dev}' bus='{bus}'/>
    </disk>
    <serial type='unix'>
      <source mode='bind' path='{socket}'/>
      <log file='{log}' append='on'/>
      <target port='0'/>
    </serial>
    <console type='unix'>
      <source mode='bind' path='{socket}'/>
      <target type='serial' port='0'/>
    </console>
    <memballoon model='none'/>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-netdev'/>
    <qemu:arg value='{netdev}'/>
    <qemu:arg value='-device'/>
    <qemu:arg value='{nic},netdev=wmnet0,bus=pci.0,addr=0x1f'/>
  </qemu:commandline>
</domain>
"#,
        domain_type = esc(host.domain_type),
        name = esc(host.domain_name),
        instance = esc(host.instance),
        owner = esc(spec.key.owner.as_str()),
        short = esc(spec.key.short.as_str()),
        template = esc(&spec.template),
        image_owner = esc(spec.image.owner.as_str()),
        image = esc(spec.image.name.as_str()),
        vcpus = spec.vcpus,
        disk = esc(host.disk),
        socket = esc(host.serial_socket),
        log = esc(host.serial_log),
        netdev = esc(&netdev),
        forwards = host
            .forwards
            .iter()
            .map(|f| format!("{}:{}", f.guest.get(), f.host))
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// Our metadata in a domain's XML.
pub(crate) fn read_meta(xml: &str) -> Option<Meta> {
    let start = xml.find(NS)?;
    let rest = &xml[start..];
    let field = |tag: &str| -> Option<String> {
        // libvirt keeps the element but may choose the prefix: match any `prefix:tag`.
        let open = rest.find(&format!(":{tag}>"))? + tag.len() + 2;
        let close = rest[open..].find("</")? + open;
        Some(unescape(&rest[open..close]))
    };
    let owner = UserName::parse(&field("owner")?).ok()?;
    let short = ShortName::parse(&field("name")?).ok()?;
    let key = ContainerKey::new(&owner, &short).ok()?;
    // `guest:host` pairs; a domain defined before forwards were recorded has none.
    let forwards = field("forwards")
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|pair| {
            let (guest, host) = pair.split_once(':')?;
            Some(Forward {
                guest: GuestPort::new(guest.parse().ok()?).ok()?,
                host: host.parse().ok()?,
            })
        })
        .collect();
    Some(Meta {
        instance: field("instance")?,
        key,
        template: field("template")?,
        image: field("image")?,
        forwards,
    })
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&apos;", "'")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use wm_backend::vm::{DiskFormat, VmImageKey};

    fn spec() -> VmSpec {
        let owner = UserName::parse("alice").unwrap();
        VmSpec {
            key: ContainerKey::new(&owner, &ShortName::parse("os1").unwrap()).unwrap(),
            template: "small<&>".into(),
            image: VmImageKey {
                owner: owner.clone(),
                name: ShortName::parse("debian").unwrap(),
            },
            image_format: DiskFormat::Qcow2,
            vcpus: 2,
            memory_bytes: 256 << 20,
            nic: NicModel::E1000,
            disk_bus: DiskBus::Virtio,
            ports: vec![GuestPort::new(80).unwrap()],
        }
    }

    fn forwards() -> Vec<Forward> {
        vec![Forward {
            guest: GuestPort::new(80).unwrap(),
            host: 40001,
        }]
    }

    fn host(forwards: &[Forward]) -> HostPart<'_> {
        HostPart {
            domain_name: "wm.alice.os1",
            domain_type: "qemu",
            instance: "wm",
            disk: "/var/lib/wm/vms/alice/os1/disk.qcow2",
            serial_socket: "/var/lib/wm/vms/alice/os1/serial.sock",
            serial_log: "/var/lib/wm/vms/alice/os1/console.log",
            publish_address: "0.0.0.0",
            forwards,
        }
    }

    #[test]
    fn the_domain_has_our_settings_and_nothing_of_the_users_but_names() {
        let xml = domain_xml(&spec(), &host(&forwards()));
        assert!(xml.contains("<domain type='qemu'"));
        assert!(xml.contains("<memory unit='KiB'>262144</memory>"));
        assert!(xml.contains("<vcpu>2</vcpu>"));
        assert!(xml.contains("<acpi/>"), "libvirt 9 with QEMU 10 needs ACPI");
        assert!(xml.contains("restrict=on,hostfwd=tcp:0.0.0.0:40001-:80"));
        assert!(xml.contains("small&lt;&amp;&gt;"));
        assert!(!xml.contains("hostdev"));
        // One host path: the VM's own directory.
        for line in xml.lines().filter(|l| l.contains("='/")) {
            assert!(line.contains("/var/lib/wm/vms/alice/os1/"), "{line}");
        }
    }

    #[test]
    fn metadata_reads_back() {
        let xml = domain_xml(&spec(), &host(&forwards())).replace("wm:", "ns0:");
        let meta = read_meta(&xml).unwrap();
        assert_eq!(meta.instance, "wm");
        assert_eq!(meta.key.to_string(), "alice-os1");
        assert_eq!(meta.template, "small<&>");
        assert_eq!(meta.image, "alice/debian");
        assert_eq!(meta.forwards, forwards());
    }
}
