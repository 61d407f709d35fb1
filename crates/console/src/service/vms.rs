//! Lending virtual machines (the job of the department's earlier ie-virsh): disk images
//! uploaded by users, VMs defined from the administrators' templates, their power, the
//! serial console and its transcript.
//!
//! Ownership is a value, as for containers: operations on a VM take an [`OwnedVm`], which
//! only [`Vms::load`] makes, for its owner or an administrator; anyone else's VM answers
//! as a missing one (404). Users never give XML: the host generates the domain from the
//! template, the image and its own settings.

use crate::config::{parse_size, Config, VmTemplateSettings};
use crate::hosts::{Hosts, Need};
use crate::service::accounts::Caller;
use crate::service::containers::{parse_ports, Seat, Sessions, SpoolFile};
use crate::service::quotas::{Ask, Quotas};
use crate::service::Error;
use crate::util::{now, rfc3339};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use utoipa::ToSchema;
use wm_backend::vm::{DiskFormat, VmBackend, VmImageKey, VmSpec, VmState};
use wm_backend::{BackendError, Terminal};
use wm_domain::{ContainerKey, ShortName, UserName};
use wm_store::{PortLease, Store, StoreError, VmImageRecord, VmRecord};

/// An uploaded disk image.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct VmImage {
    pub(crate) name: String,
    pub(crate) owner: String,
    /// `qcow2` or `raw`.
    pub(crate) format: String,
    /// The size the guest sees, in bytes.
    pub(crate) virtual_size: i64,
    /// The bytes the file takes.
    pub(crate) size: i64,
    /// The id of the host that keeps it; its VMs run there.
    pub(crate) host: String,
    /// RFC 3339.
    pub(crate) created_at: String,
}

impl From<&VmImageRecord> for VmImage {
    fn from(i: &VmImageRecord) -> Self {
        Self {
            name: i.name.to_string(),
            owner: i.owner.to_string(),
            format: i.format.clone(),
            virtual_size: i.virtual_size,
            size: i.size,
            host: i.host.clone(),
            created_at: rfc3339(i.created_at),
        }
    }
}

/// A template as users see it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct VmTemplate {
    pub(crate) name: String,
    pub(crate) vcpus: u32,
    /// Bytes.
    pub(crate) memory: i64,
    /// `virtio` or `e1000`.
    pub(crate) nic: String,
    /// `virtio` or `sata`.
    pub(crate) disk_bus: String,
    pub(crate) description: Option<String>,
}

/// A guest port and the host port forwarded to it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct VmPort {
    pub(crate) guest: u16,
    pub(crate) host: u16,
}

/// A VM as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct Vm {
    /// The full name, `<owner>-<name>`.
    pub(crate) name: String,
    pub(crate) owner: String,
    pub(crate) template: String,
    /// The image its disk was made from.
    pub(crate) image: String,
    /// The id of the host it is defined on.
    pub(crate) host: String,
    /// Where its forwarded ports are reached.
    pub(crate) address: String,
    /// libvirt's state: `shutoff`, `running`, `paused`, `crashed`; `gone` when the domain
    /// was removed behind our back, `unknown` when the host does not answer.
    pub(crate) status: String,
    pub(crate) vcpus: i64,
    /// Bytes.
    pub(crate) memory: i64,
    /// The most its disk may grow to, in bytes.
    pub(crate) disk: i64,
    pub(crate) ports: Vec<VmPort>,
    /// RFC 3339.
    pub(crate) created_at: String,
}

/// `POST /api/v1/vms`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateVm {
    /// Short name: a DNS label; the full name is `<owner>-<name>`.
    pub(crate) name: String,
    /// A template's name (`GET /api/v1/vm-templates`).
    pub(crate) template: String,
    /// One of the caller's images (`GET /api/v1/vm-images`).
    pub(crate) image: String,
    /// Guest ports to forward: `"22 80"` or `[22, 80]`.
    #[schema(value_type = Option<Object>)]
    #[serde(default)]
    pub(crate) ports: Option<Value>,
}

/// A VM the caller may act on.
pub(crate) struct OwnedVm {
    record: VmRecord,
}

impl OwnedVm {
    pub(crate) fn key(&self) -> ContainerKey {
        self.record.key()
    }
}

/// An open serial console, holding its user's terminal seat until dropped.
pub(crate) struct ConsoleSession {
    pub(crate) terminal: Terminal,
    pub(crate) seat: Seat,
}

/// A host that may lend VMs: `wm serve`'s own libvirt, or a docker agent's.
pub(crate) struct VmHost {
    pub(crate) backend: Arc<dyn VmBackend>,
    /// The id of the container host on the same machine: a VM's ports are that host's,
    /// reached at its address.
    pub(crate) id: String,
    /// `wm serve`'s own libvirt, which lends VMs whenever the console runs. An agent's
    /// lends them while the agent answers and says so (`HostInfo.vms`).
    pub(crate) local: bool,
}

pub(crate) struct Vms {
    store: Store,
    vm_hosts: Vec<VmHost>,
    /// The container hosts: their health, addresses and placement.
    hosts: Arc<Hosts>,
    config: Arc<Config>,
    quotas: Arc<Quotas>,
    sessions: Arc<Sessions>,
}

/// A VM host's error in words about VMs.
fn vm_error(e: BackendError) -> Error {
    match e {
        BackendError::NoSuchContainer => Error::missing("not_found", "vm", [], "VM"),
        BackendError::Refused(why) => {
            Error::conflict_by_backend(&why, "vm_refused", [("why", why.text.clone())], &why.text)
        }
        BackendError::Unavailable(why) => Error::unavailable_by_backend(
            &why,
            "vm_host",
            [("why", why.text.clone())],
            format!("the VM host is unavailable ({why}); try again later"),
        ),
        other => Error::from(other),
    }
}

impl Vms {
    pub(crate) fn new(
        store: Store,
        vm_hosts: Vec<VmHost>,
        hosts: Arc<Hosts>,
        config: Arc<Config>,
        quotas: Arc<Quotas>,
        sessions: Arc<Sessions>,
    ) -> Self {
        Self {
            store,
            vm_hosts,
            hosts,
            config,
            quotas,
            sessions,
        }
    }

    /// Whether `h` lends VMs now.
    fn lends(&self, h: &VmHost) -> bool {
        h.local
            || self
                .hosts
                .get(&h.id)
                .is_some_and(|c| c.usable() && c.info().is_some_and(|i| i.vms))
    }

    /// Whether this console lends VMs now.
    pub(crate) fn enabled(&self) -> bool {
        self.vm_hosts.iter().any(|h| self.lends(h))
    }

    /// 503 while no host lends VMs.
    pub(crate) fn require_enabled(&self) -> Result<(), Error> {
        if self.enabled() {
            Ok(())
        } else {
            Err(Self::not_offered())
        }
    }

    fn not_offered() -> Error {
        Error::unavailable(
            "no_vm_host",
            [],
            "virtual machines are not offered here now: no VM host is configured or answers",
        )
    }

    /// The VM host `id` (where a VM or image is), or 503 while it cannot be used.
    fn host(&self, id: &str) -> Result<&VmHost, Error> {
        match self.vm_hosts.iter().find(|h| h.id == id) {
            Some(h) if self.lends(h) => Ok(h),
            Some(_) => Err(Error::unavailable(
                "vm_host_down",
                [("host", id.to_string())],
                format!("the VM host {id} does not answer now; try again later"),
            )),
            None if self.vm_hosts.is_empty() => Err(Self::not_offered()),
            None => Err(Error::unavailable(
                "vm_host_unknown",
                [("host", id.to_string())],
                format!("the VM host {id} is not among this console's hosts; ask an administrator"),
            )),
        }
    }

    /// Where a new image of `caller`'s goes (and the VMs made from it): among the hosts
    /// that lend VMs now, by the containers' placement (not drained, the labels the
    /// owner's role requires, the fewest running containers).
    async fn place(&self, caller: &Caller) -> Result<&VmHost, Error> {
        let ids: Vec<String> = self
            .vm_hosts
            .iter()
            .filter(|h| self.lends(h))
            .map(|h| h.id.clone())
            .collect();
        if ids.is_empty() {
            return Err(Self::not_offered());
        }
        let chosen = self
            .hosts
            .place(&Need {
                required: self.config.required_labels(caller.role),
                has_image: &[],
                memory: 0,
                gpus: 0,
                overcommit: self.config.memory_overcommit,
                only: Some(&ids),
            })
            .await?
            .host
            .id
            .clone();
        self.host(&chosen)
    }

    fn view(&self, r: &VmRecord) -> Vm {
        Vm {
            name: r.key().to_string(),
            owner: r.owner.to_string(),
            template: r.template.clone(),
            image: r.image.to_string(),
            host: r.host.clone(),
            address: self
                .hosts
                .get(&r.host)
                .map_or_else(|| r.host.clone(), |h| h.address()),
            status: r.status.clone(),
            vcpus: r.vcpus,
            memory: r.memory_bytes,
            disk: r.disk_bytes,
            ports: r
                .ports
                .iter()
                .map(|p| VmPort {
                    guest: p.guest.get(),
                    host: p.host_port,
                })
                .collect(),
            created_at: rfc3339(r.created_at),
        }
    }

    // --- images ------------------------------------------------------------------------

    /// Keeps an uploaded image as the caller's `name`, once `qemu-img` has checked it.
    ///
    /// # Errors
    /// 400 for a bad name or an image that is not a self-contained qcow2 or raw; 409 when
    /// the caller has an image of that name; 409 `quota_exceeded` past their storage.
    pub(crate) async fn upload_image(
        &self,
        caller: &Caller,
        name: &str,
        file: SpoolFile,
    ) -> Result<VmImage, Error> {
        caller.require_full_scope()?;
        let name = ShortName::parse_new(name)?;
        if file.size() == 0 {
            return Err(Error::refused(
                "invalid_image",
                Some("file"),
                "empty",
                [],
                "the file is empty",
            ));
        }
        let admitted = self.quotas.admit(&caller.name).await?;
        if self.store.vm_image(&caller.name, &name).await?.is_some() {
            return Err(Error::conflict(
                "vm_image_taken",
                [("name", name.to_string())],
                format!(
                    "you already have a VM image named {name}; delete it first or choose another name"
                ),
            ));
        }
        let ask = Ask {
            storage_bytes: file.size() as i64,
            ..Ask::default()
        };
        self.quotas
            .check(&admitted, &caller.name, caller.role, &ask)
            .await?;
        let host = self.place(caller).await?;
        let key = VmImageKey {
            owner: caller.name.clone(),
            name: name.clone(),
        };
        let info = host
            .backend
            .import_image(&key, file.path())
            .await
            .map_err(|e| match e {
                BackendError::Refused(why) => {
                    Error::refused_by_backend("invalid_image", Some("file"), "refused", &why)
                }
                other => vm_error(other),
            })?;
        let record = VmImageRecord {
            owner: caller.name.clone(),
            name,
            format: info.format.as_str().to_string(),
            virtual_size: i64::try_from(info.virtual_size).unwrap_or(i64::MAX),
            size: i64::try_from(info.size.max(file.size())).unwrap_or(i64::MAX),
            host: host.id.clone(),
            created_at: now(),
        };
        if let Err(e) = self.store.insert_vm_image(&record).await {
            let _ = host.backend.remove_image(&key).await;
            return Err(e.into());
        }
        Ok(VmImage::from(&record))
    }

    /// The caller's images (an administrator's `all`: everyone's).
    pub(crate) async fn images(&self, caller: &Caller, all: bool) -> Result<Vec<VmImage>, Error> {
        caller.require_full_scope()?;
        let owner = (!(all && caller.is_admin())).then_some(&caller.name);
        Ok(self
            .store
            .vm_images(owner)
            .await?
            .iter()
            .map(VmImage::from)
            .collect())
    }

    /// Deletes one of the caller's images; 409 while a VM uses it.
    pub(crate) async fn delete_image(&self, caller: &Caller, name: &str) -> Result<(), Error> {
        caller.require_full_scope()?;
        let not_found = || {
            let name: String = name.chars().take(64).collect();
            Error::missing(
                "image_not_found",
                "vm_image",
                [("name", name.clone())],
                format!("VM image {name}"),
            )
        };
        let short = ShortName::parse(name).map_err(|_| not_found())?;
        let Some(image) = self.store.vm_image(&caller.name, &short).await? else {
            return Err(not_found());
        };
        let host = self.host(&image.host)?;
        if !self
            .store
            .delete_vm_image_unused(&caller.name, &short)
            .await?
        {
            return Err(Error::conflict(
                "vm_image_in_use",
                [("name", name.to_string())],
                format!("VM image {name} is used by a VM; undefine the VM first"),
            ));
        }
        let key = VmImageKey {
            owner: caller.name.clone(),
            name: short,
        };
        host.backend.remove_image(&key).await.map_err(vm_error)
    }

    // --- templates -----------------------------------------------------------------------

    fn template(&self, name: &str) -> Option<&VmTemplateSettings> {
        self.config.vm.templates.iter().find(|t| t.name == name)
    }

    pub(crate) fn templates(&self) -> Vec<VmTemplate> {
        self.config
            .vm
            .templates
            .iter()
            .map(|t| VmTemplate {
                name: t.name.clone(),
                vcpus: t.vcpus,
                memory: parse_size(&t.memory).unwrap_or(0),
                nic: serde_json::to_value(t.nic)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                disk_bus: serde_json::to_value(t.disk_bus)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                description: t.description.clone(),
            })
            .collect()
    }

    // --- VMs -----------------------------------------------------------------------------

    /// Defines a VM of the caller's from a template and one of their images: its own disk
    /// (an overlay of the image) and a domain; not started.
    ///
    /// # Errors
    /// 400 for a bad name or ports; 404 for an unknown template or image; 409 when the
    /// name is taken or past a quota; 503 without a VM host.
    pub(crate) async fn define(&self, caller: &Caller, req: CreateVm) -> Result<Vm, Error> {
        caller.require_full_scope()?;
        let short = ShortName::parse_new_vm(&req.name)?;
        let key = ContainerKey::new(&caller.name, &short)?;
        let guests = parse_ports(req.ports, self.config.max_ports)?;
        let template = self.template(&req.template).ok_or_else(|| {
            let name: String = req.template.chars().take(64).collect();
            Error::missing(
                "template_not_found",
                "template",
                [("name", name.clone())],
                format!("VM template {name:?}"),
            )
        })?;
        let image_not_found = || {
            let name: String = req.image.chars().take(64).collect();
            Error::missing(
                "image_not_found",
                "vm_image",
                [("name", name.clone())],
                format!("VM image {name:?}"),
            )
        };
        let image_name = ShortName::parse(&req.image).map_err(|_| image_not_found())?;
        let image = self
            .store
            .vm_image(&caller.name, &image_name)
            .await?
            .ok_or_else(image_not_found)?;
        // A VM runs where its image is.
        let host = self.host(&image.host)?;
        let format = DiskFormat::parse(&image.format).ok_or_else(|| {
            Error::Unexpected(anyhow::anyhow!("stored image format {}", image.format))
        })?;
        let memory_bytes = parse_size(&template.memory).unwrap_or(0);
        let admitted = self.quotas.admit(&caller.name).await?;
        if self.store.vm(&key).await?.is_some() {
            return Err(Error::conflict(
                "vm_taken",
                [("name", short.to_string())],
                format!("you already have a VM named {short}"),
            ));
        }
        let ask = Ask {
            ports: guests.len() as i64,
            storage_bytes: image.virtual_size,
            ..Ask::default()
        };
        self.quotas
            .check(&admitted, &caller.name, caller.role, &ask)
            .await?;
        let spec = VmSpec {
            key: key.clone(),
            template: template.name.clone(),
            image: VmImageKey {
                owner: caller.name.clone(),
                name: image_name.clone(),
            },
            image_format: format,
            vcpus: template.vcpus,
            memory_bytes: memory_bytes as u64,
            nic: template.nic,
            disk_bus: template.disk_bus,
            ports: guests,
        };
        let record = VmRecord {
            owner: caller.name.clone(),
            short_name: short,
            template: template.name.clone(),
            image_owner: caller.name.clone(),
            image: image_name,
            host: host.id.clone(),
            status: VmState::Shutoff.as_str().into(),
            vcpus: i64::from(template.vcpus),
            memory_bytes,
            disk_bytes: image.virtual_size,
            created_at: now(),
            ports: Vec::new(),
        };
        // The record first: it holds the name while the host works; the host lends the
        // ports, from the pool of its containers' ports.
        self.store.insert_vm(&record).await.map_err(|e| match e {
            StoreError::Conflict(what) => Error::conflict(
                "taken_meanwhile",
                [("what", what.clone())],
                format!("{what} was taken meanwhile; try again"),
            ),
            other => other.into(),
        })?;
        drop(admitted);
        let leased = match host.backend.define(&spec).await {
            Ok(forwards) => {
                let leases: Vec<PortLease> = forwards
                    .iter()
                    .map(|f| PortLease {
                        guest: f.guest,
                        host_port: f.host,
                    })
                    .collect();
                self.store
                    .lease_vm_ports(&key, &host.id, &leases)
                    .await
                    .map(|()| leases)
                    .map_err(Error::from)
            }
            Err(e) => Err(vm_error(e)),
        };
        let mut record = record;
        match leased {
            Ok(leases) => record.ports = leases,
            Err(e) => {
                let _ = host.backend.undefine(&key).await;
                self.store.delete_vm(&key).await?;
                return Err(e);
            }
        }
        Ok(self.view(&record))
    }

    /// Loads a VM for `caller` by its full name `<owner>-<name>`: theirs, or anyone's for
    /// an administrator (`owner` says whose when several owners' VMs share the full name).
    /// Anything else is the same 404 as a name that does not exist.
    pub(crate) async fn load(
        &self,
        caller: &Caller,
        name: &str,
        owner: Option<&str>,
    ) -> Result<OwnedVm, Error> {
        caller.require_full_scope()?;
        let not_found = || {
            let name: String = name.chars().take(80).collect();
            Error::missing(
                "not_found",
                "vm_named",
                [("name", name.clone())],
                format!("VM {name}"),
            )
        };
        let owner = match owner {
            Some(o) if caller.is_admin() => Some(UserName::parse(o).map_err(|_| not_found())?),
            Some(o) if o != caller.name.as_str() => return Err(not_found()),
            _ if !caller.is_admin() => Some(caller.name.clone()),
            _ => None,
        };
        let record = match owner {
            Some(owner) => {
                let key = ContainerKey::of_full_name(&owner, name).ok_or_else(not_found)?;
                self.store.vm(&key).await?.ok_or_else(not_found)?
            }
            None => {
                let mut found: Vec<VmRecord> = self
                    .store
                    .vms(None)
                    .await?
                    .into_iter()
                    .filter(|v| v.key().to_string() == name)
                    .collect();
                match found.len() {
                    0 => return Err(not_found()),
                    1 => found.remove(0),
                    _ => {
                        return Err(Error::ambiguous(
                            "vm_owners",
                            [("name", name.to_string())],
                            format!(
                            "several users have a VM named {name}; add ?owner=<name> to say whose"
                        ),
                        ))
                    }
                }
            }
        };
        Ok(OwnedVm { record })
    }

    /// The caller's VMs (an administrator's `all`: everyone's), with the state libvirt
    /// reports now.
    pub(crate) async fn list(&self, caller: &Caller, all: bool) -> Result<Vec<Vm>, Error> {
        caller.require_full_scope()?;
        let owner = (!(all && caller.is_admin())).then_some(&caller.name);
        let mut out = Vec::new();
        for mut r in self.store.vms(owner).await? {
            self.refresh(&mut r).await;
            out.push(self.view(&r));
        }
        Ok(out)
    }

    /// The VM with the state libvirt reports now.
    pub(crate) async fn get(&self, vm: OwnedVm) -> Result<Vm, Error> {
        let mut r = vm.record;
        self.refresh(&mut r).await;
        Ok(self.view(&r))
    }

    /// Brings a record's status to libvirt's; `unknown` (not stored) when the host does
    /// not answer.
    async fn refresh(&self, r: &mut VmRecord) {
        let Ok(host) = self.host(&r.host) else {
            r.status = "unknown".into();
            return;
        };
        match host.backend.state(&r.key()).await {
            Ok(s) if s.as_str() != r.status => {
                if self.store.set_vm_status(&r.key(), s.as_str()).await.is_ok() {
                    r.status = s.as_str().into();
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(vm = %r.key(), error = %e, "the VM host did not say the VM's state");
                r.status = "unknown".into();
            }
        }
    }

    /// Starts the VM; its vCPUs and memory count against the owner's quota while it runs.
    pub(crate) async fn start(&self, vm: OwnedVm) -> Result<Vm, Error> {
        let host = self.host(&vm.record.host)?;
        let key = vm.key();
        let mut r = vm.record;
        let state = host.backend.state(&key).await.map_err(vm_error)?;
        if state != VmState::Running {
            let admitted = self.quotas.admit(&r.owner).await?;
            let role = self
                .store
                .user(r.owner.as_str())
                .await?
                .map_or(wm_domain::Role::Student, |u| u.role);
            let ask = Ask {
                running: 1,
                nano_cpus: r.vcpus * 1_000_000_000,
                memory_bytes: r.memory_bytes,
                ..Ask::default()
            };
            self.quotas.check(&admitted, &r.owner, role, &ask).await?;
            host.backend.start(&key).await.map_err(vm_error)?;
            self.store
                .set_vm_status(&key, VmState::Running.as_str())
                .await?;
            drop(admitted);
        }
        r.status = VmState::Running.as_str().into();
        Ok(self.view(&r))
    }

    /// Powers the VM off at once (`virsh destroy`).
    pub(crate) async fn destroy(&self, vm: OwnedVm) -> Result<Vm, Error> {
        let host = self.host(&vm.record.host)?;
        let key = vm.key();
        let mut r = vm.record;
        host.backend.destroy(&key).await.map_err(vm_error)?;
        self.store
            .set_vm_status(&key, VmState::Shutoff.as_str())
            .await?;
        r.status = VmState::Shutoff.as_str().into();
        Ok(self.view(&r))
    }

    /// Undefines the VM; its disk and transcript go with it, and its ports are freed.
    pub(crate) async fn undefine(&self, vm: OwnedVm) -> Result<(), Error> {
        let host = self.host(&vm.record.host)?;
        let key = vm.key();
        host.backend.undefine(&key).await.map_err(vm_error)?;
        self.store.delete_vm(&key).await?;
        Ok(())
    }

    /// The domain's XML exactly as libvirt has it.
    pub(crate) async fn dumpxml(&self, vm: &OwnedVm) -> Result<String, Error> {
        self.host(&vm.record.host)?
            .backend
            .dumpxml(&vm.key())
            .await
            .map_err(vm_error)
    }

    /// The end of the serial transcript.
    pub(crate) async fn transcript(&self, vm: &OwnedVm) -> Result<Vec<u8>, Error> {
        self.host(&vm.record.host)?
            .backend
            .transcript(&vm.key(), self.config.vm.transcript_max_bytes)
            .await
            .map_err(vm_error)
    }

    /// The serial console of the running VM, counted among the caller's terminal
    /// sessions.
    pub(crate) async fn console(
        &self,
        caller: &Caller,
        vm: &OwnedVm,
    ) -> Result<ConsoleSession, Error> {
        let host = self.host(&vm.record.host)?;
        let seat = self.sessions.enter(&caller.name)?;
        let terminal = host.backend.console(&vm.key()).await.map_err(|e| match e {
            BackendError::Refused(why) => Error::conflict_by_backend(
                &why,
                "vm_console",
                [("name", vm.key().to_string()), ("why", why.text.clone())],
                format!("VM {}: {why}; start it first", vm.key()),
            ),
            other => vm_error(other),
        })?;
        Ok(ConsoleSession { terminal, seat })
    }

    /// Brings the records to what the VM hosts have, from libvirt's own metadata: each
    /// VM's state; a record whose domain is gone says `gone`. Domains of ours without a
    /// record are logged, never removed: they hold someone's disk. A host that does not
    /// answer is left as it is (its VMs show `unknown` until it does). Listing also gives
    /// the VMs' ports back to the host's pool after the host restarted.
    pub(crate) async fn reconcile(&self) -> Result<(), Error> {
        let records = self.store.vms(None).await?;
        for host in self.vm_hosts.iter().filter(|h| self.lends(h)) {
            let found = match host.backend.list().await {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(host = %host.id, error = %e, "the VM host could not be reconciled");
                    continue;
                }
            };
            for r in records.iter().filter(|r| r.host == host.id) {
                let state = found
                    .iter()
                    .find(|f| f.key == r.key())
                    .map_or(VmState::Gone, |f| f.state);
                if state.as_str() != r.status {
                    self.store.set_vm_status(&r.key(), state.as_str()).await?;
                }
            }
            for f in &found {
                if !records
                    .iter()
                    .any(|r| r.key() == f.key && r.host == host.id)
                {
                    tracing::warn!(host = %host.id, vm = %f.key, image = %f.image, "the VM host has a domain of ours that the database does not know");
                }
            }
        }
        Ok(())
    }
}
