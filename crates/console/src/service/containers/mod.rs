//! Lending containers: the rules between an API call and the container host, with one
//! entry point for every operation that dispatches on the container's [`Backend`] to the
//! Docker hosts ([`docker`]) or the cluster ([`cluster`]).
//!
//! Ownership is a value: the operations on an existing container take an
//! [`OwnedContainer`], which only [`Containers::load`] makes, and only for the container's owner or an
//! administrator (and [`Containers::load_in_course`], for the teacher of a course the
//! owner is enrolled in). Another user's container cannot be acted on because it cannot be
//! loaded: it answers exactly as a missing one (404).

mod cluster;
mod docker;
mod files;
mod terminal;

pub(crate) use files::{parse_upload_name, Download, SpoolFile, TempFiles, Written};

use crate::config::Config;
use crate::hosts::{GatedCluster, Hosts};
use crate::service::accounts::{Admin, Caller};
use crate::service::courses::Taught;
use crate::service::images::Images;
use crate::service::quotas::{Ask, Quotas};
use crate::service::Error;
use crate::util::{now, rfc3339};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
pub(crate) use terminal::{check_size, Seat, Sessions, TerminalAsk};
use utoipa::ToSchema;
use wm_backend::ExecOutput;
use wm_domain::{
    parse_env_list, parse_env_string, parse_port_list, Backend, ContainerKey, ContainerName,
    ContainerStatus, EnvVar, GuestPort, ImageRef, ParseError, ShortName, StopReason, UserName,
};
use wm_store::{ContainerRecord, Store};

/// A container as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct Container {
    /// The full name, `<owner>-<short name>`.
    pub(crate) name: String,
    pub(crate) owner: String,
    pub(crate) image: String,
    /// Where it runs.
    pub(crate) backend: Backend,
    /// The id of the host it runs on.
    pub(crate) host: String,
    /// Where its ports are reached: links are `http://<address>:<port>/`; for a
    /// kubernetes container, the host of its Ingress.
    pub(crate) address: String,
    /// The kubernetes container's Ingress, `http://<name>.<owner>.<domain>/`.
    pub(crate) url: Option<String>,
    /// A Docker container's state (`created`, `running`, `paused`, `restarting`, `exited`,
    /// `dead`) or a kubernetes one's (`pending`, `running`, `stopped`, `failed`); `creating`
    /// while it is made, `gone` (removed from its host behind our back), or `unknown` (its
    /// host does not answer now).
    pub(crate) status: ContainerStatus,
    pub(crate) ports: Vec<Port>,
    /// `KEY=value` strings.
    pub(crate) env: Vec<String>,
    /// RFC 3339.
    pub(crate) created_at: String,
    /// Its CPU limit, in CPUs.
    pub(crate) cpus: f64,
    /// Its memory limit, in bytes.
    #[serde(rename = "memory")]
    pub(crate) memory_bytes: i64,
    /// The ids of the GPUs it holds on its host.
    pub(crate) gpus: Vec<String>,
    /// RFC 3339: when it is stopped for good (and deleted `WM_EXPIRY_GRACE` later).
    pub(crate) expires_at: Option<String>,
    /// RFC 3339: when it will be deleted, once it has an expiry.
    pub(crate) deletes_at: Option<String>,
    /// RFC 3339: since when it has been idle (no exec, network traffic or CPU use beyond
    /// the installation's thresholds).
    pub(crate) idle_since: Option<String>,
    /// RFC 3339: when it will be stopped for being idle, unless it is used before.
    pub(crate) idle_stop_at: Option<String>,
    /// Why the console itself stopped it (`idle`, `expired`); cleared when it is started.
    pub(crate) stop_reason: Option<StopReason>,
    /// Its expiry date has passed: it stays stopped until it is deleted.
    pub(crate) expired: bool,
    /// Its expiry or an idle stop is near: the console warns about it.
    pub(crate) warning: bool,
    #[serde(skip)]
    raw: RawTimes,
}

/// What a running container uses now, as its host measures it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct ContainerUsage {
    /// CPU time it has used since it started, in seconds.
    pub(crate) cpu_seconds: f64,
    /// Bytes of memory in use now; `null` when its host does not say.
    pub(crate) memory: Option<u64>,
}

/// A member's container as the course's teacher sees it: the container, and what it
/// uses now.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct MemberContainer {
    #[serde(flatten)]
    pub(crate) container: Container,
    /// `null` unless it runs on a Docker host that answered.
    pub(crate) usage: Option<ContainerUsage>,
}

/// A container's reclaim times as Unix seconds, for [`Containers::finish`].
#[derive(Debug, Default, Clone, Copy)]
struct RawTimes {
    expires_at: Option<i64>,
    idle_since: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct Port {
    pub(crate) guest: u16,
    /// The host port it is published on; `null` for a kubernetes container, whose ports
    /// are its Service's.
    pub(crate) host: Option<u16>,
}

impl From<&ContainerRecord> for Container {
    fn from(c: &ContainerRecord) -> Self {
        Container {
            name: c.name.to_string(),
            owner: c.owner.to_string(),
            image: c.image.clone(),
            backend: c.backend,
            host: c.host.clone(),
            address: c.host.clone(),
            url: None,
            status: c.status,
            ports: c
                .ports
                .iter()
                .map(|p| Port {
                    guest: p.guest.get(),
                    host: Some(p.host_port),
                })
                .collect(),
            env: c.env.clone(),
            created_at: rfc3339(c.created_at),
            cpus: c.nano_cpus as f64 / 1e9,
            memory_bytes: c.memory_bytes,
            gpus: c.gpus.clone(),
            expires_at: c.expires_at.map(rfc3339),
            deletes_at: None,
            idle_since: c.idle_since.map(rfc3339),
            idle_stop_at: None,
            stop_reason: c.stop_reason,
            expired: false,
            warning: false,
            raw: RawTimes {
                expires_at: c.expires_at,
                idle_since: c.idle_since,
            },
        }
    }
}

/// `POST /api/v1/containers`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateContainer {
    /// Short name: a DNS label; the full name is `<owner>-<name>`, at most 63 characters.
    pub(crate) name: String,
    /// Image reference (`busybox`, `registry:5000/alice/web:1`).
    pub(crate) image: String,
    /// `"KEY=value KEY2=value2"` (a value with spaces quoted as in a shell:
    /// `"MSG='hello world'"`) or `["KEY=value", ...]`.
    #[schema(value_type = Option<Object>)]
    #[serde(default)]
    pub(crate) env: Option<Value>,
    /// `"80 8080"` or `[80, 8080]`.
    #[schema(value_type = Option<Object>)]
    #[serde(default)]
    pub(crate) ports: Option<Value>,
    /// `docker` (default) or `kubernetes`.
    #[serde(default)]
    pub(crate) backend: Option<String>,
    /// Host labels the container needs, e.g. `"gpu"` or `["gpu"]`: it goes only to a host
    /// that carries them all.
    #[schema(value_type = Option<Object>)]
    #[serde(default)]
    pub(crate) requires: Option<Value>,
    /// CPUs (`0.5`, `2`); the installation's default when left out, at most the owner's
    /// quota of CPUs.
    #[serde(default)]
    pub(crate) cpus: Option<f64>,
    /// Memory, `"512m"`, `"2g"` or bytes; the installation's default when left out, at most
    /// the owner's quota of memory.
    #[schema(value_type = Option<Object>)]
    #[serde(default)]
    pub(crate) memory: Option<Value>,
    /// GPUs, each a different one, on a host that has them free.
    #[serde(default)]
    pub(crate) gpus: Option<u32>,
    /// RFC 3339, in the future: the container is stopped then, and deleted after the
    /// installation's grace period.
    #[serde(default)]
    pub(crate) expires_at: Option<String>,
    /// The course (id) it is for: its end is the container's expiry (set by the teacher,
    /// so only they or an administrator may postpone it) and its host labels are a
    /// docker container's unless `requires` is given. Left out: the one running course the
    /// owner is enrolled in, if there is exactly one.
    #[serde(default)]
    pub(crate) course: Option<String>,
}

/// `PATCH /api/v1/containers/{name}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ContainerPatch {
    /// RFC 3339 in the future, or `null` to remove the expiry. Its owner may set one, bring
    /// one earlier, or change one they set themselves; only an administrator may postpone
    /// or remove an expiry someone else set.
    #[schema(value_type = Option<String>)]
    #[serde(default, deserialize_with = "present")]
    pub(crate) expires_at: Option<Option<String>>,
}

/// A field that is present (even as `null`) is `Some`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

/// An expiry as the API takes it: RFC 3339, in the future.
pub(crate) fn parse_expiry(s: &str, now: i64) -> Result<i64, Error> {
    let t = time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .map_err(|_| {
            let value: String = s.chars().take(40).collect();
            Error::refused(
                "invalid_expiry",
                Some("expires_at"),
                "not_a_time",
                [("value", value.clone())],
                format!(
                    "expires_at {value:?} is not a date and time like 2026-03-31T23:59:00+09:00"
                ),
            )
        })?
        .unix_timestamp();
    if t <= now {
        return Err(Error::refused(
            "invalid_expiry",
            Some("expires_at"),
            "past",
            [],
            "expires_at must be in the future",
        ));
    }
    Ok(t)
}

/// What a container is given: CPU, memory, and how many GPUs.
#[derive(Debug, Clone, Copy)]
pub(super) struct Resources {
    pub(super) nano_cpus: i64,
    pub(super) memory_bytes: i64,
    pub(super) gpus: usize,
}

/// What a create asks for, checked.
pub(super) struct NewContainer {
    pub(super) short: ShortName,
    pub(super) image: ImageRef,
    pub(super) env: Vec<EnvVar>,
    pub(super) guests: Vec<GuestPort>,
    /// Host labels the request requires (the Docker hosts' only).
    pub(super) required: Vec<String>,
    pub(super) res: Resources,
    /// Unix seconds, checked to be in the future.
    pub(super) expires_at: Option<i64>,
    /// Who set the expiry: the owner, or the teacher of the course it is for.
    pub(super) expiry_by: String,
}

/// At most this many GPUs in one container.
const MAX_GPUS: u32 = 16;

/// `POST /api/v1/containers/{name}/exec`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExecCommand {
    /// An array of strings (program and arguments), or one string run by `/bin/sh -c`.
    #[schema(value_type = Object)]
    pub(crate) cmd: Value,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct ExecResult {
    /// `null` when the command did not finish within the time limit.
    pub(crate) exit_code: Option<i64>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    /// The command was still running at the time limit; its output so far is returned.
    pub(crate) timed_out: bool,
    /// Output beyond the size limit was dropped.
    pub(crate) truncated: bool,
}

impl From<ExecOutput> for ExecResult {
    fn from(o: ExecOutput) -> Self {
        Self {
            exit_code: o.exit_code,
            stdout: o.stdout,
            stderr: o.stderr,
            timed_out: o.timed_out,
            truncated: o.truncated,
        }
    }
}

fn parse_env(v: Option<Value>) -> Result<Vec<EnvVar>, ParseError> {
    let bad = || {
        ParseError::new(
            "env",
            "env must be a string of space-separated KEY=value pairs (quoted as in a shell: MSG=\"hello world\") or an array of \"KEY=value\" strings",
        )
        .because("shape", [])
    };
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => parse_env_string(&s),
        Some(Value::Array(items)) => {
            let strings = items
                .iter()
                .map(|i| i.as_str().ok_or_else(bad))
                .collect::<Result<Vec<_>, _>>()?;
            parse_env_list(strings)
        }
        Some(_) => Err(bad()),
    }
}

pub(crate) fn parse_ports(v: Option<Value>, max: usize) -> Result<Vec<GuestPort>, ParseError> {
    let bad = |what: &str| {
        ParseError::new(
            "ports",
            format!("{what}: ports must be a string of space-separated port numbers or an array of integers"),
        )
        .because("shape", [])
    };
    let ports = match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s
            .split_whitespace()
            .map(GuestPort::parse)
            .collect::<Result<Vec<_>, _>>()?,
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                // JSON has one kind of number: 80.0 is the whole number 80.
                Value::Number(n) => n
                    .as_i64()
                    .or_else(|| {
                        n.as_f64()
                            .filter(|f| f.fract() == 0.0 && f.abs() <= 1e9)
                            .map(|f| f as i64)
                    })
                    .ok_or_else(|| bad(&format!("{n} is not a whole number")))
                    .and_then(GuestPort::new),
                other => Err(bad(&format!("{other} is not a number"))),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(other) => return Err(bad(&format!("{other} is neither"))),
    };
    parse_port_list(ports, max)
}

fn parse_cmd(v: Value) -> Result<Vec<String>, Error> {
    let field = |reason: &'static str, m: &str| Error::broke("cmd", reason, [], m);
    let shape = "cmd must be an array of strings or one string";
    let cmd = match v {
        Value::String(s) if s.trim().is_empty() => {
            return Err(field("empty", "the command is empty"))
        }
        Value::String(s) => vec!["/bin/sh".to_string(), "-c".to_string(), s],
        Value::Array(items) => items
            .into_iter()
            .map(|i| match i {
                Value::String(s) => Ok(s),
                _ => Err(field("shape", shape)),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(field("shape", shape)),
    };
    if cmd.is_empty() || cmd[0].is_empty() {
        return Err(field("empty", "the command is empty"));
    }
    if cmd.len() > 1024 || cmd.iter().map(String::len).sum::<usize>() > 128 * 1024 {
        return Err(field(
            "too_long",
            "the command is longer than 128 KiB or 1024 arguments",
        ));
    }
    if cmd.iter().any(|a| a.contains('\0')) {
        return Err(field("nul", "the command contains a NUL character"));
    }
    Ok(cmd)
}

/// A container `name` that is not there or not the caller's.
fn container_not_found(name: &str) -> Error {
    let name: String = name.chars().take(80).collect();
    Error::missing(
        "not_found",
        "container_named",
        [("name", name.clone())],
        format!("container {name}"),
    )
}

pub(super) fn image_not_found(image: &ImageRef) -> Error {
    Error::missing(
        "image_not_found",
        "image",
        [("image", image.to_string())],
        format!("image {image}"),
    )
}

/// A container the caller may act on.
pub(crate) struct OwnedContainer {
    record: ContainerRecord,
}

impl OwnedContainer {
    pub(crate) fn record(&self) -> &ContainerRecord {
        &self.record
    }

    pub(crate) fn name(&self) -> &ContainerName {
        &self.record.name
    }

    /// Its identity: owner and short name.
    pub(crate) fn key(&self) -> ContainerKey {
        self.record.key()
    }

    pub(crate) fn into_record(self) -> ContainerRecord {
        self.record
    }

    /// A container the console acts on by itself (the reclaim worker), with no caller.
    pub(in crate::service) fn by_the_console(record: ContainerRecord) -> Self {
        Self { record }
    }
}

/// Records a status seen on the host; a container gone from it gives up its ports.
async fn set_status(
    store: &Store,
    r: &mut ContainerRecord,
    status: ContainerStatus,
) -> Result<(), Error> {
    if status == ContainerStatus::Gone {
        store.mark_container_gone(&r.key()).await?;
        r.ports.clear();
    } else {
        store.set_container_status(&r.key(), status, None).await?;
    }
    r.status = status;
    Ok(())
}

/// The containers of the installation, wherever they run.
pub(crate) struct Containers {
    store: Store,
    hosts: Arc<Hosts>,
    config: Arc<Config>,
    quotas: Arc<Quotas>,
    docker: docker::OnHosts,
    cluster: cluster::OnCluster,
    files: TempFiles,
    sessions: Arc<Sessions>,
}

impl Containers {
    pub(crate) fn new(
        store: Store,
        hosts: Arc<Hosts>,
        cluster: Option<Arc<GatedCluster>>,
        images: Arc<Images>,
        quotas: Arc<Quotas>,
        config: Arc<Config>,
        sessions: Arc<Sessions>,
    ) -> Self {
        Self {
            quotas,
            sessions,
            docker: docker::OnHosts::new(
                store.clone(),
                hosts.clone(),
                images.clone(),
                config.clone(),
            ),
            hosts,
            cluster: cluster::OnCluster::new(store.clone(), cluster, images),
            files: TempFiles::new(config.upload_max_open_files),
            store,
            config,
        }
    }

    /// How many GPUs a new container of the caller's may ask for now: what one host has
    /// free, within what is left of their quota.
    pub(crate) async fn gpus_available(&self, caller: &Caller) -> Result<usize, Error> {
        let free = self.hosts.most_free_gpus().await?;
        let (quota, usage) = self.quotas.mine(caller).await?;
        let left = quota
            .gpus
            .map_or(usize::MAX, |q| (q - usage.gpus).max(0) as usize);
        Ok(free.min(left))
    }

    /// Whether containers may be lent on a Kubernetes cluster here.
    pub(crate) fn cluster_enabled(&self) -> bool {
        self.cluster.enabled()
    }

    /// The server's temporary files for uploads.
    pub(crate) fn temp_files(&self) -> &TempFiles {
        &self.files
    }

    /// Loads a container for `caller` by its full name `<owner>-<short name>`: theirs, or
    /// anyone's for an admin. Anything else is the same 404 as a name that does not exist.
    ///
    /// A full name does not say whose it is (user names may hold `-`: `ab-c` + `web` and
    /// `ab` + `c-web` are both `ab-c-web`). For anyone but an admin it is the caller's own
    /// `<caller>-<short>`, never another's. An admin gets the one container of that full
    /// name; when several owners have one, a 409 asks for `owner` (`?owner=` on the
    /// container routes), which picks the owner's.
    pub(crate) async fn load(
        &self,
        caller: &Caller,
        name: &str,
        owner: Option<&str>,
    ) -> Result<OwnedContainer, Error> {
        caller.require_full_scope()?;
        let not_found = || container_not_found(name);
        if ContainerName::parse(name).is_err() {
            return Err(not_found());
        }
        let owner = match owner {
            Some(o) if caller.is_admin() => Some(UserName::parse(o).map_err(|_| not_found())?),
            // Anyone else names only their own containers, with or without `owner`.
            Some(o) if o != caller.name.as_str() => return Err(not_found()),
            _ if !caller.is_admin() => Some(caller.name.clone()),
            _ => None,
        };
        let record = match owner {
            Some(owner) => {
                let key = ContainerKey::of_full_name(&owner, name).ok_or_else(not_found)?;
                self.store.container(&key).await?.ok_or_else(not_found)?
            }
            None => {
                let mut found = self.store.containers_named(name).await?;
                match found.len() {
                    0 => return Err(not_found()),
                    1 => found.remove(0),
                    _ => {
                        let owners: Vec<String> =
                            found.iter().map(|c| c.owner.to_string()).collect();
                        return Err(Error::ambiguous(
                            "owners",
                            [("name", name.to_string()), ("owners", owners.join(", "))],
                            format!(
                                "several users have a container named {name} (owners: {}); add ?owner=<name> to say whose",
                                owners.join(", ")
                            ),
                        ));
                    }
                }
            }
        };
        Ok(OwnedContainer { record })
    }

    /// The course a new container of the caller's is for: the one named (a course they
    /// are enrolled in, else 400), or the one running course they are in, if only one.
    async fn course_for(
        &self,
        caller: &Caller,
        asked: Option<&str>,
    ) -> Result<Option<wm_store::Course>, Error> {
        let now = now();
        let mine: Vec<wm_store::Course> = self
            .store
            .courses(None, Some(caller.name.as_str()))
            .await?
            .into_iter()
            .filter(|c| c.members.contains(&caller.name))
            .collect();
        match asked {
            Some(id) => mine
                .into_iter()
                .find(|c| c.id == id)
                .map(Some)
                .ok_or_else(|| {
                    let id: String = id.chars().take(64).collect();
                    Error::refused(
                        "unknown_course",
                        Some("course"),
                        "not_enrolled",
                        [("id", id.clone())],
                        format!("you are not enrolled in a course with the id {id}"),
                    )
                }),
            None => {
                let mut running: Vec<_> = mine
                    .into_iter()
                    .filter(|c| c.ends_at.is_none_or(|e| e > now))
                    .collect();
                Ok((running.len() == 1).then(|| running.remove(0)))
            }
        }
    }

    /// Creates and starts a container of the caller's.
    pub(crate) async fn create(
        &self,
        caller: &Caller,
        req: CreateContainer,
    ) -> Result<Container, Error> {
        caller.require_full_scope()?;
        let short = ShortName::parse_new(&req.name)?;
        ContainerKey::new(&caller.name, &short)?;
        let image = ImageRef::parse(&req.image)?;
        let env = parse_env(req.env)?;
        let guests = parse_ports(req.ports, self.config.max_ports)?;
        let course = self.course_for(caller, req.course.as_deref()).await?;
        let backend = match req.backend.as_deref() {
            None => Backend::Docker,
            Some(s) => Backend::parse(s).map_err(|_| {
                let value: String = s.chars().take(64).collect();
                Error::broke(
                    "backend",
                    "unknown",
                    [
                        ("value", value),
                        ("choices", "docker, kubernetes".to_string()),
                    ],
                    format!("unknown backend {s:?}; use docker or kubernetes"),
                )
            })?,
        };
        // The course's host labels are the Docker hosts': a kubernetes container of a
        // member goes without them.
        let required = match (req.requires, &course, backend) {
            (None, Some(c), Backend::Docker) => c.host_labels.clone(),
            (asked, _, _) => parse_requires(asked)?,
        };
        let asked_expiry = req
            .expires_at
            .as_deref()
            .map(|t| parse_expiry(t, now()))
            .transpose()?;
        // Never past the course's end; the course's end is its teacher's to move.
        let (expires_at, expiry_by) = match (
            asked_expiry,
            course
                .as_ref()
                .and_then(|c| c.ends_at.map(|e| (e, &c.owner))),
        ) {
            (Some(a), Some((end, _))) if a < end => (Some(a), caller.name.to_string()),
            (_, Some((end, teacher))) => (Some(end), teacher.to_string()),
            (a, None) => (a, caller.name.to_string()),
        };
        let res = self
            .resources(caller, req.cpus, req.memory, req.gpus)
            .await?;
        // The user's creates and starts one at a time, from the check until the record
        // is made: a burst cannot go past a quota.
        let admitted = self.quotas.admit(&caller.name).await?;
        let ask = Ask {
            containers: 1,
            running: 1,
            nano_cpus: res.nano_cpus,
            memory_bytes: res.memory_bytes,
            gpus: res.gpus as i64,
            ports: if backend == Backend::Docker {
                guests.len() as i64
            } else {
                0
            },
            storage_bytes: 0,
        };
        self.quotas
            .check(&admitted, &caller.name, caller.role, &ask)
            .await?;
        let new = NewContainer {
            short,
            image,
            env,
            guests,
            required,
            res,
            expires_at,
            expiry_by,
        };
        match backend {
            Backend::Docker => self
                .docker
                .create(caller, new, admitted)
                .await
                .map(|c| self.finish(c)),
            Backend::Kubernetes => {
                if !new.required.is_empty() {
                    // The cluster's scheduler places pods; our host labels are Docker's.
                    return Err(Error::broke(
                        "requires",
                        "docker_only",
                        [],
                        "host labels apply to docker hosts only",
                    ));
                }
                let created = self.cluster.create(caller, new).await;
                drop(admitted);
                created.map(|c| self.finish(c))
            }
        }
    }

    /// The CPU, memory and GPUs a create asks for: the installation's defaults when left
    /// out, and never above the owner's quota or the hosts' maximum.
    async fn resources(
        &self,
        caller: &Caller,
        cpus: Option<f64>,
        memory: Option<Value>,
        gpus: Option<u32>,
    ) -> Result<Resources, Error> {
        let default = self.config.default_limits();
        let quota = self.quotas.of(&caller.name, caller.role).await?;
        let max = &self.config.docker.max_limits;
        let not_a_size = || {
            Error::broke(
                "memory",
                "not_a_size",
                [],
                "memory is a size like 512m or 2g, or a number of bytes",
            )
        };
        let nano_cpus = match cpus {
            None => default.nano_cpus,
            Some(c) if (0.01..=4096.0).contains(&c) => (c * 1e9).round() as i64,
            Some(_) => {
                return Err(Error::broke(
                    "cpus",
                    "not_a_number",
                    [],
                    "cpus is a number of CPUs from 0.01, e.g. 0.5 or 2",
                ))
            }
        };
        let memory_bytes = match memory {
            None | Some(Value::Null) => default.memory_bytes,
            Some(Value::Number(n)) => n.as_i64().filter(|n| *n > 0).ok_or_else(not_a_size)?,
            Some(Value::String(t)) => crate::config::parse_size(&t).ok_or_else(|| {
                let value: String = t.chars().take(40).collect();
                Error::broke(
                    "memory",
                    "bad_size",
                    [("value", value.clone())],
                    format!("memory {value:?} is not a size like 512m or 2g"),
                )
            })?,
            Some(_) => return Err(not_a_size()),
        };
        if memory_bytes < 16 << 20 {
            return Err(Error::broke(
                "memory",
                "too_little",
                [],
                "a container has at least 16 MiB of memory",
            ));
        }
        for (field, asked, limit, kind) in [
            (
                "cpus",
                nano_cpus,
                quota.nano_cpus.into_iter().chain([max.nano_cpus]).min(),
                super::QuotaKind::Cpus,
            ),
            (
                "memory",
                memory_bytes,
                quota
                    .memory_bytes
                    .into_iter()
                    .chain([max.memory_bytes])
                    .min(),
                super::QuotaKind::Memory,
            ),
        ] {
            if let Some(limit) = limit {
                if asked > limit {
                    let max = match kind {
                        super::QuotaKind::Cpus => super::trim_number(limit as f64 / 1e9),
                        _ => super::human_bytes(limit),
                    };
                    return Err(Error::broke(
                        field,
                        "over_max",
                        [("max", max)],
                        format!("a container may have at most {}", kind.amount(limit)),
                    ));
                }
            }
        }
        let gpus = gpus.unwrap_or(0);
        if gpus > MAX_GPUS {
            return Err(Error::broke(
                "gpus",
                "over_max",
                [("max", MAX_GPUS.to_string())],
                format!("a container has at most {MAX_GPUS} GPUs"),
            ));
        }
        Ok(Resources {
            nano_cpus,
            memory_bytes,
            gpus: gpus as usize,
        })
    }

    /// The caller's containers (an admin's `all` gives everyone's), with their current
    /// status from their hosts.
    pub(crate) async fn list(&self, caller: &Caller, all: bool) -> Result<Vec<Container>, Error> {
        caller.require_full_scope()?;
        let owner = if all && caller.is_admin() {
            None
        } else {
            Some(caller.name.as_str())
        };
        let records = self.store.containers(owner).await?;
        self.show_all(records).await
    }

    /// The containers of a course's members with what they use, for its teacher.
    pub(crate) async fn of_course(&self, course: &Taught) -> Result<Vec<MemberContainer>, Error> {
        let mut records = Vec::new();
        for member in course.members() {
            records.extend(self.store.containers(Some(member.as_str())).await?);
        }
        let keys: Vec<ContainerKey> = records.iter().map(ContainerRecord::key).collect();
        let shown = self.show_all(records).await?;
        Ok(futures::future::join_all(
            shown
                .into_iter()
                .zip(keys)
                .map(|(c, key)| self.with_usage(c, key)),
        )
        .await)
    }

    /// A member's container of the course, with what it uses, for the course's teacher:
    /// what the read-only view shows.
    pub(crate) async fn member(&self, c: OwnedContainer) -> Result<MemberContainer, Error> {
        let key = c.key();
        let shown = self.get(c).await?;
        Ok(self.with_usage(shown, key).await)
    }

    /// The container with what its host measures it uses now (a running Docker
    /// container's; nothing for others, or when the host does not answer).
    async fn with_usage(&self, container: Container, key: ContainerKey) -> MemberContainer {
        let usage = if container.backend == Backend::Docker
            && container.status == ContainerStatus::Running
        {
            match self.hosts.reach(&container.host) {
                Ok(host) => host.activity(&key).await.ok().map(|a| ContainerUsage {
                    cpu_seconds: a.cpu_nanos as f64 / 1e9,
                    memory: a.memory_bytes,
                }),
                Err(_) => None,
            }
        } else {
            None
        };
        MemberContainer { container, usage }
    }

    /// A container of a member of the course, by its full name, for the course's teacher.
    /// Any other container is the same 404 as a name that does not exist.
    pub(crate) async fn load_in_course(
        &self,
        course: &Taught,
        name: &str,
    ) -> Result<OwnedContainer, Error> {
        let not_found = || container_not_found(name);
        if ContainerName::parse(name).is_err() {
            return Err(not_found());
        }
        let mut found: Vec<ContainerRecord> = self
            .store
            .containers_named(name)
            .await?
            .into_iter()
            .filter(|c| course.has_member(&c.owner))
            .collect();
        match found.len() {
            0 => Err(not_found()),
            1 => Ok(OwnedContainer {
                record: found.remove(0),
            }),
            _ => Err(Error::ambiguous(
                "members",
                [
                    ("name", name.to_string()),
                    ("course", course.id().to_string()),
                ],
                format!(
                    "several members of course {} have a container named {name}",
                    course.id()
                ),
            )),
        }
    }

    /// Every container of `user`, for an administrator.
    pub(crate) async fn of_user(
        &self,
        _admin: &Admin,
        user: &UserName,
    ) -> Result<Vec<OwnedContainer>, Error> {
        Ok(self
            .store
            .containers(Some(user.as_str()))
            .await?
            .into_iter()
            .map(|record| OwnedContainer { record })
            .collect())
    }

    /// The records as the API shows them, with their current status from their hosts.
    async fn show_all(&self, mut records: Vec<ContainerRecord>) -> Result<Vec<Container>, Error> {
        self.docker.refresh(&mut records).await?;
        let found = self.cluster.refresh(&mut records).await?;
        Ok(records
            .iter()
            .zip(&found)
            .map(|(r, k)| match r.backend {
                Backend::Kubernetes => cluster::OnCluster::show(r, k.as_ref()),
                Backend::Docker => self.docker.view(r),
            })
            .map(|c| self.finish(c))
            .collect())
    }

    /// The container with its status as its host reports it now.
    pub(crate) async fn get(&self, c: OwnedContainer) -> Result<Container, Error> {
        match c.record.backend {
            Backend::Docker => self.docker.get(c).await,
            Backend::Kubernetes => self.cluster.get(c).await,
        }
        .map(|c| self.finish(c))
    }

    /// The container as the API shows it, with the times derived from the installation's
    /// reclaim settings: when it is deleted after its expiry, when it is stopped for being
    /// idle, and whether either is near enough to warn about.
    fn finish(&self, mut c: Container) -> Container {
        let reclaim = &self.config.reclaim;
        let now = now();
        let mut soon = false;
        if let Some(expires) = c.raw.expires_at {
            let deletes = expires.saturating_add(reclaim.expiry_grace.as_secs());
            c.deletes_at = Some(rfc3339(deletes));
            c.expired = now >= expires;
            soon |= expires - now <= reclaim.idle_warning.as_secs();
        }
        if let (Some(since), Some(after), ContainerStatus::Running) =
            (c.raw.idle_since, reclaim.idle_stop_after, c.status)
        {
            if c.backend == Backend::Docker {
                let at = since.saturating_add(after.as_secs());
                c.idle_stop_at = Some(rfc3339(at));
                soon |= at - now <= reclaim.idle_warning.as_secs();
            }
        }
        c.warning = soon;
        c
    }

    /// Starts the container, within its owner's quota of running containers, CPUs and
    /// memory. An expired container stays stopped.
    pub(crate) async fn start(&self, c: OwnedContainer) -> Result<Container, Error> {
        let r = c.record();
        if let Some(at) = r.expires_at.filter(|at| *at <= now()) {
            return Err(Error::Expired {
                name: r.name.to_string(),
                at: rfc3339(at),
            });
        }
        let admitted = self.quotas.admit(&r.owner).await?;
        if !(r.status.is_live() || r.status == ContainerStatus::Pending) {
            let role = self
                .store
                .user(r.owner.as_str())
                .await?
                .map_or(wm_domain::Role::Student, |u| u.role);
            let ask = Ask {
                running: 1,
                nano_cpus: r.nano_cpus,
                memory_bytes: r.memory_bytes,
                ..Ask::default()
            };
            self.quotas.check(&admitted, &r.owner, role, &ask).await?;
        }
        let key = c.key();
        let started = match c.record.backend {
            Backend::Docker => self.docker.start(c).await,
            Backend::Kubernetes => self.cluster.start_or_stop(c, true).await,
        };
        drop(admitted);
        let mut started = started?;
        // Started again: the console's reason for stopping it and its idle time go.
        self.store.set_container_stop_reason(&key, None).await?;
        started.stop_reason = None;
        started.raw.idle_since = None;
        started.idle_since = None;
        Ok(self.finish(started))
    }

    pub(crate) async fn stop(&self, c: OwnedContainer) -> Result<Container, Error> {
        match c.record.backend {
            Backend::Docker => self.docker.stop(c).await,
            Backend::Kubernetes => self.cluster.start_or_stop(c, false).await,
        }
        .map(|c| self.finish(c))
    }

    /// Stops the container for the console's own `reason` (the reclaim worker), and
    /// records the reason, which the container shows until it is started again.
    pub(in crate::service) async fn stop_for(
        &self,
        c: OwnedContainer,
        reason: StopReason,
    ) -> Result<Container, Error> {
        let key = c.key();
        let mut stopped = self.stop(c).await?;
        self.store
            .set_container_stop_reason(&key, Some(reason))
            .await?;
        stopped.stop_reason = Some(reason);
        Ok(stopped)
    }

    /// Changes the container's expiry (`None` removes it). Its owner may set one, bring
    /// one earlier, or change one they set themselves; an administrator may change any.
    /// A later course owner is one more who may: the rule is who set it.
    pub(crate) async fn set_expiry(
        &self,
        caller: &Caller,
        c: OwnedContainer,
        patch: ContainerPatch,
    ) -> Result<Container, Error> {
        let Some(asked) = patch.expires_at else {
            return self.get(c).await;
        };
        let now = now();
        let asked = asked.as_deref().map(|t| parse_expiry(t, now)).transpose()?;
        let r = c.record();
        let set_by_other = r
            .expiry_set_by
            .as_deref()
            .is_some_and(|who| who != caller.name.as_str());
        let postpones = match (r.expires_at, asked) {
            (Some(_), None) => true,
            (Some(old), Some(new)) => new > old,
            (None, _) => false,
        };
        if set_by_other && postpones && !caller.is_admin() {
            let by = r.expiry_set_by.as_deref().unwrap_or_default();
            return Err(Error::forbidden(
                "expiry_set_by_other",
                [("name", r.name.to_string()), ("by", by.to_string())],
                format!(
                    "the expiry of {} was set by {by}; only they or an administrator may postpone or remove it",
                    r.name
                ),
            ));
        }
        let set_by = asked.map(|_| caller.name.as_str());
        self.store
            .set_container_expiry(&c.key(), asked, set_by)
            .await?;
        let mut record = c.into_record();
        record.expires_at = asked;
        record.expiry_set_by = set_by.map(String::from);
        self.get(OwnedContainer { record }).await
    }

    /// Removes the container from its host, then its record.
    pub(crate) async fn delete(&self, c: OwnedContainer) -> Result<(), Error> {
        match c.record.backend {
            Backend::Docker => self.docker.delete(c).await,
            Backend::Kubernetes => self.cluster.delete(c).await,
        }
    }

    /// Runs a command (an array of strings, or one string for `/bin/sh -c`).
    /// A command run through the console is activity: the container is not idle.
    pub(crate) async fn exec(&self, c: &OwnedContainer, cmd: Value) -> Result<ExecResult, Error> {
        let out = match c.record.backend {
            Backend::Docker => self.docker.exec(c, cmd).await,
            Backend::Kubernetes => Err(cluster::unsupported("exec", "exec", "kubectl exec")),
        }?;
        self.store.touch_container(&c.key(), now()).await?;
        Ok(out)
    }

    /// Writes uploaded files into a directory of the container. With `create`, the
    /// directories of `dir` that do not exist are made too: the archive goes to the
    /// nearest one that does, holding the missing ones (the engine unpacks it inside the
    /// container, as any upload, and never replaces a file by a directory).
    pub(crate) async fn upload(
        &self,
        c: &OwnedContainer,
        dir: &str,
        files: Vec<(String, SpoolFile)>,
        create: bool,
    ) -> Result<Written, Error> {
        if c.record.backend == Backend::Kubernetes {
            return Err(cluster::unsupported(
                "upload",
                "uploading files",
                "kubectl cp",
            ));
        }
        let dir = files::parse_container_path(dir.trim())?;
        let mut missing: Vec<&str> = Vec::new();
        loop {
            let (written, tar) = self.files.archive(&dir, &missing, &files).await?;
            let sent = self.docker.upload(c, &written.dir, tar.stream).await;
            drop(tar.file);
            match sent {
                Ok(()) => return Ok(written.into()),
                Err(Error::FileNotFound(_)) if create && written.dir != "/" => {
                    let below = dir.len() - missing.iter().map(|m| m.len() + 1).sum::<usize>();
                    let (_, last) = dir[..below].rsplit_once('/').expect("an absolute path");
                    missing.insert(0, last);
                }
                Err(Error::FileNotFound(_)) => {
                    return Err(Error::broke(
                        "path",
                        "missing",
                        [("path", dir.clone())],
                        format!(
                            "the directory {dir} does not exist in the container (or is not a directory); choose another, or have it created"
                        ),
                    ))
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A file's bytes, or an archive of a directory, from the container.
    pub(crate) async fn download(&self, c: &OwnedContainer, path: &str) -> Result<Download, Error> {
        if c.record.backend == Backend::Kubernetes {
            return Err(cluster::unsupported(
                "download",
                "downloading files",
                "kubectl cp",
            ));
        }
        let path = files::parse_container_path(path.trim())?;
        let tar = self.docker.download(c, &path).await?;
        files::unpack_download(&path, tar).await
    }

    /// The container's recent output.
    pub(crate) async fn logs(&self, c: &OwnedContainer, tail: u32) -> Result<bytes::Bytes, Error> {
        match c.record.backend {
            Backend::Docker => self.docker.logs(c, tail).await,
            Backend::Kubernetes => self.cluster.logs(c, tail).await,
        }
    }

    /// The last `tail` lines, then what the container writes until it stops.
    pub(crate) async fn follow_logs(
        &self,
        c: &OwnedContainer,
        tail: u32,
    ) -> Result<wm_backend::ByteStream, Error> {
        match c.record.backend {
            Backend::Docker => self.docker.follow_logs(c, tail).await,
            Backend::Kubernetes => Err(cluster::unsupported(
                "logs",
                "following logs",
                "kubectl logs -f",
            )),
        }
    }

    /// A kubeconfig for the caller's own namespace.
    pub(crate) async fn kubeconfig(&self, caller: &Caller) -> Result<String, Error> {
        caller.require_full_scope()?;
        // Without a cluster there is no namespace to describe: a missing resource.
        if !self.cluster.enabled() {
            return Err(Error::missing(
                "backend_unavailable",
                "kubeconfig",
                [],
                "the kubernetes backend is not enabled on this installation, so a kubeconfig is",
            ));
        }
        self.cluster.kubeconfig(caller).await
    }

    /// Marks the cluster's containers gone or updates their status; answers how many
    /// changed.
    pub(crate) async fn reconcile_cluster(&self) -> Result<usize, Error> {
        self.cluster.reconcile().await
    }
}

/// The most host labels a request may require.
pub(crate) const MAX_LABELS: usize = 16;

/// One host label, as a regular expression (the API document's).
pub(crate) const LABEL_PATTERN: &str = "^[-A-Za-z0-9_.]{1,63}$";

/// Host labels in the one-string form, as a regular expression (the API document's).
pub(crate) const LABELS_PATTERN: &str =
    "^\\s*(?:[-A-Za-z0-9_.]{1,63}(?:\\s+[-A-Za-z0-9_.]{1,63}){0,15})?\\s*$";

/// Host labels a request requires: `"gpu ssd"` or `["gpu", "ssd"]`.
pub(crate) fn parse_requires(v: Option<Value>) -> Result<Vec<String>, ParseError> {
    let bad = || {
        ParseError::new(
            "requires",
            "requires must be a string of space-separated host labels or an array of them",
        )
        .because("shape", [])
    };
    let labels: Vec<String> = match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s.split_whitespace().map(String::from).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(String::from).ok_or_else(bad))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad()),
    };
    let ok = |l: &String| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    if labels.len() > MAX_LABELS || !labels.iter().all(ok) {
        return Err(ParseError::new(
            "requires",
            "host labels are at most 16 words of letters, digits, '-', '_' or '.'",
        )
        .because("labels", []));
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The API document's patterns for host labels say what [`parse_requires`] does.
    #[test]
    fn the_documented_label_patterns_agree() {
        let one = regex::Regex::new(LABEL_PATTERN).unwrap();
        let words = regex::Regex::new(LABELS_PATTERN).unwrap();
        let mut inputs: Vec<String> = ["", " ", "gpu", " gpu  ssd ", "a\tb", "g/u", "é"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        inputs.push("x".repeat(63));
        inputs.push("x".repeat(64));
        inputs.push(vec!["l"; 16].join(" "));
        inputs.push(vec!["l"; 17].join(" "));
        for s in &inputs {
            let parsed = parse_requires(Some(json!(s))).is_ok();
            assert_eq!(words.is_match(s), parsed, "string form {s:?}");
            let item = parse_requires(Some(json!([s]))).is_ok();
            assert_eq!(one.is_match(s), item, "array item {s:?}");
        }
    }

    #[test]
    fn env_in_both_forms() {
        let s = parse_env(Some(json!("A=1 B=2"))).unwrap();
        let a = parse_env(Some(json!(["A=1", "B=2"]))).unwrap();
        assert_eq!(s, a);
        assert!(parse_env(None).unwrap().is_empty());
        assert_eq!(
            parse_env(Some(json!(["MSG=hello world"]))).unwrap()[0].value(),
            "hello world"
        );
        assert_eq!(
            parse_env(Some(json!("MSG=\"hello world\" N=1"))).unwrap(),
            parse_env(Some(json!(["MSG=hello world", "N=1"]))).unwrap()
        );
        for bad in [
            json!("=x"),
            json!("KEY"),
            json!("MSG=\"hello"),
            json!([1]),
            json!({"A": "1"}),
            json!(true),
        ] {
            assert_eq!(
                parse_env(Some(bad.clone())).unwrap_err().field,
                "env",
                "{bad}"
            );
        }
    }

    #[test]
    fn ports_in_both_forms() {
        let s = parse_ports(Some(json!("80 8080")), 8).unwrap();
        let a = parse_ports(Some(json!([80, 8080])), 8).unwrap();
        assert_eq!(s, a);
        for bad in [
            json!("0"),
            json!("65536"),
            json!("http"),
            json!([70000]),
            json!([1.5]),
            json!(["80"]),
            json!([-1]),
            json!({"80": 1}),
            json!("1 2 3 4 5 6 7 8 9"),
        ] {
            assert_eq!(
                parse_ports(Some(bad.clone()), 8).unwrap_err().field,
                "ports",
                "{bad}"
            );
        }
    }

    #[test]
    fn commands() {
        assert_eq!(
            parse_cmd(json!("echo hi")).unwrap(),
            ["/bin/sh", "-c", "echo hi"]
        );
        assert_eq!(parse_cmd(json!(["ls", "-l"])).unwrap(), ["ls", "-l"]);
        for bad in [
            json!(""),
            json!([]),
            json!([""]),
            json!([1]),
            json!(null),
            json!(["a\u{0}"]),
        ] {
            assert!(parse_cmd(bad.clone()).is_err(), "{bad}");
        }
    }
}
