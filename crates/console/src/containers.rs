//! Lending containers: the rules between an API call and the container host.
//!
//! Ownership is a value: the operations on an existing container take an
//! [`OwnedContainer`], which only [`load`] makes, and only for the container's owner or an
//! administrator. Another user's container cannot be acted on because it cannot be
//! loaded: it answers exactly as a missing one (404).

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use wm_backend::{
    BackendError, ByteStream, ContainerBackend, ContainerSpec, ContainerState, ExecOutput,
    ExecRequest, PortBinding,
};
use wm_domain::{
    parse_env_list, parse_port_list, Backend, ContainerKey, ContainerName, ContainerStatus, EnvVar,
    GuestPort, ImageRef, ParseError, ShortName, UserName,
};
use wm_store::{ContainerRecord, PortLease};

/// A container as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Container {
    /// The full name, `<owner>-<short name>`.
    pub name: String,
    pub owner: String,
    pub image: String,
    /// Where it runs.
    pub backend: Backend,
    /// The id of the host it runs on.
    pub host: String,
    /// Where its ports are reached: links are `http://<address>:<port>/`; for a
    /// kubernetes container, the host of its Ingress.
    pub address: String,
    /// The kubernetes container's Ingress, `http://<name>.<owner>.<domain>/`.
    pub url: Option<String>,
    /// A Docker container's state (`created`, `running`, `paused`, `restarting`, `exited`,
    /// `dead`) or a kubernetes one's (`pending`, `running`, `stopped`, `failed`); `creating`
    /// while it is made, `gone` (removed from its host behind our back), or `unknown` (its
    /// host does not answer now).
    pub status: ContainerStatus,
    pub ports: Vec<Port>,
    /// `KEY=value` strings.
    pub env: Vec<String>,
    /// RFC 3339.
    pub created_at: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Port {
    pub guest: u16,
    /// The host port it is published on; `null` for a kubernetes container, whose ports
    /// are its Service's.
    pub host: Option<u16>,
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
            created_at: crate::rfc3339(c.created_at),
        }
    }
}

/// `POST /api/v1/containers`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateContainer {
    /// Short name: a DNS label; the full name is `<owner>-<name>`, at most 63 characters.
    pub name: String,
    /// Image reference (`busybox`, `registry:5000/alice/web:1`).
    pub image: String,
    /// `"KEY=value KEY2=value2"` or `["KEY=value", ...]`.
    #[schema(value_type = Option<Object>)]
    #[serde(default)]
    pub env: Option<Value>,
    /// `"80 8080"` or `[80, 8080]`.
    #[schema(value_type = Option<Object>)]
    #[serde(default)]
    pub ports: Option<Value>,
    /// `docker` (default) or `kubernetes`.
    #[serde(default)]
    pub backend: Option<String>,
    /// Host labels the container needs, e.g. `"gpu"` or `["gpu"]`: it goes only to a host
    /// that carries them all.
    #[schema(value_type = Option<Object>)]
    #[serde(default)]
    pub requires: Option<Value>,
}

/// `POST /api/v1/containers/{name}/exec`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecCommand {
    /// An array of strings (program and arguments), or one string run by `/bin/sh -c`.
    #[schema(value_type = Object)]
    pub cmd: Value,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExecResult {
    /// `null` when the command did not finish within the time limit.
    pub exit_code: Option<i64>,
    pub stdout: String,
    pub stderr: String,
    /// The command was still running at the time limit; its output so far is returned.
    pub timed_out: bool,
    /// Output beyond the size limit was dropped.
    pub truncated: bool,
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
            "env must be a string of space-separated KEY=value pairs or an array of \"KEY=value\" strings",
        )
    };
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => parse_env_list(s.split_whitespace()),
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

fn parse_ports(v: Option<Value>, max: usize) -> Result<Vec<GuestPort>, ParseError> {
    let bad = |what: &str| {
        ParseError::new(
            "ports",
            format!("{what}: ports must be a string of space-separated port numbers or an array of integers"),
        )
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
                Value::Number(n) => n
                    .as_i64()
                    .ok_or_else(|| bad(&format!("{n} is not a whole number")))
                    .and_then(GuestPort::new),
                other => Err(bad(&format!("{other} is not a number"))),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(other) => return Err(bad(&format!("{other} is neither"))),
    };
    parse_port_list(ports, max)
}

fn parse_cmd(v: Value) -> Result<Vec<String>, ApiError> {
    let field = |m: &str| ApiError::Invalid {
        code: "invalid_input",
        message: m.to_string(),
        field: Some("cmd"),
    };
    let cmd = match v {
        Value::String(s) if s.trim().is_empty() => return Err(field("the command is empty")),
        Value::String(s) => vec!["/bin/sh".to_string(), "-c".to_string(), s],
        Value::Array(items) => items
            .into_iter()
            .map(|i| match i {
                Value::String(s) => Ok(s),
                _ => Err(field("cmd must be an array of strings or one string")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(field("cmd must be an array of strings or one string")),
    };
    if cmd.is_empty() || cmd[0].is_empty() {
        return Err(field("the command is empty"));
    }
    if cmd.len() > 1024 || cmd.iter().map(String::len).sum::<usize>() > 128 * 1024 {
        return Err(field(
            "the command is longer than 128 KiB or 1024 arguments",
        ));
    }
    if cmd.iter().any(|a| a.contains('\0')) {
        return Err(field("the command contains a NUL character"));
    }
    Ok(cmd)
}

fn image_not_found(image: &ImageRef) -> ApiError {
    ApiError::NotFound {
        code: "image_not_found",
        what: format!("image {image}"),
    }
}

/// A container the caller may act on.
pub struct OwnedContainer {
    record: ContainerRecord,
}

impl OwnedContainer {
    pub fn record(&self) -> &ContainerRecord {
        &self.record
    }

    pub fn name(&self) -> &ContainerName {
        &self.record.name
    }

    /// Its identity: owner and short name.
    pub fn key(&self) -> ContainerKey {
        self.record.key()
    }

    pub fn into_record(self) -> ContainerRecord {
        self.record
    }

    fn on_cluster(&self) -> bool {
        self.record.backend == crate::kube::BACKEND
    }

    /// Its host's backend; 503 at once while the host does not answer.
    fn host(&self, state: &AppState) -> Result<std::sync::Arc<dyn ContainerBackend>, ApiError> {
        state.hosts.reach(&self.record.host)
    }
}

/// Loads a container for `caller` by its full name `<owner>-<short name>`: theirs, or
/// anyone's for an admin. Anything else is the same 404 as a name that does not exist.
///
/// A full name does not say whose it is (user names may hold `-`: `ab-c` + `web` and
/// `ab` + `c-web` are both `ab-c-web`). For anyone but an admin it is the caller's own
/// `<caller>-<short>`, never another's. An admin gets the one container of that full
/// name; when several owners have one, a 409 asks for `owner` (`?owner=` on the
/// container routes), which picks the owner's.
pub async fn load(
    state: &AppState,
    caller: &Caller,
    name: &str,
    owner: Option<&str>,
) -> Result<OwnedContainer, ApiError> {
    caller.require_full_scope()?;
    let not_found = || ApiError::not_found(format!("container {name}"));
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
            state.store.container(&key).await?.ok_or_else(not_found)?
        }
        None => {
            let mut found = state.store.containers_named(name).await?;
            match found.len() {
                0 => return Err(not_found()),
                1 => found.remove(0),
                _ => {
                    let owners: Vec<String> = found.iter().map(|c| c.owner.to_string()).collect();
                    return Err(ApiError::Ambiguous(format!(
                        "several users have a container named {name} (owners: {}); add ?owner=<name> to say whose",
                        owners.join(", ")
                    )));
                }
            }
        }
    };
    Ok(OwnedContainer { record })
}

pub async fn create(
    state: &AppState,
    caller: &Caller,
    req: CreateContainer,
) -> Result<Container, ApiError> {
    caller.require_full_scope()?;
    let short = ShortName::parse(&req.name)?;
    let key = ContainerKey::new(&caller.name, &short)?;
    let name = key.full_name();
    let image = ImageRef::parse(&req.image)?;
    let env = parse_env(req.env)?;
    let guests = parse_ports(req.ports, state.config.max_ports)?;
    let mut required = parse_requires(req.requires)?;
    let backend = match req.backend.as_deref() {
        None => Backend::Docker,
        Some(s) => Backend::parse(s).map_err(|_| ApiError::Invalid {
            code: "invalid_input",
            message: format!("unknown backend {s:?}; use docker or kubernetes"),
            field: Some("backend"),
        })?,
    };
    match backend {
        Backend::Docker => {}
        Backend::Kubernetes => {
            if !required.is_empty() {
                // The cluster's scheduler places pods; our host labels are Docker's.
                return Err(ApiError::Invalid {
                    code: "invalid_input",
                    message: "host labels apply to docker hosts only".into(),
                    field: Some("requires"),
                });
            }
            return crate::kube::create(state, caller, short, image, env, guests).await;
        }
    }

    required.extend(state.config.required_labels(caller.role).iter().cloned());
    required.sort();
    required.dedup();
    let present = crate::images::check_usable(state, caller, &image).await?;

    let mut record = ContainerRecord {
        name: name.clone(),
        owner: caller.name.clone(),
        short_name: short.clone(),
        image: image.to_string(),
        backend: Backend::Docker,
        host: String::new(),
        status: ContainerStatus::Creating,
        env: env.iter().map(ToString::to_string).collect(),
        engine_id: None,
        created_at: crate::now(),
        ports: Vec::new(),
    };
    let (host, placing) = state.hosts.place(state, &required, &present).await?;
    record.host = host.id.clone();
    // Inserting reserves the name: of two concurrent creates, one gets a conflict here.
    state
        .store
        .insert_container(&record)
        .await
        .map_err(|e| match e {
            wm_store::StoreError::Conflict(_) => {
                ApiError::Conflict(format!("you already have a container named {short}"))
            }
            other => other.into(),
        })?;
    drop(placing);

    let spec = ContainerSpec {
        name: name.clone(),
        owner: caller.name.clone(),
        short_name: short,
        image: image.clone(),
        env,
        ports: guests,
        limits: state.config.default_limits(),
    };
    let created = async {
        if !present.contains(&host.id) {
            crate::images::pull_quietly(state, &host, &image).await?;
        }
        Ok::<_, ApiError>(host.backend.create(&spec).await?)
    };
    match created.await {
        Ok(st) => {
            record_ports(state, &host.id, &key, &st.ports).await?;
            state
                .store
                .set_container_status(&key, st.state, Some(&st.id))
                .await?;
            record.status = st.state;
            record.engine_id = Some(st.id);
            record.ports = st
                .ports
                .iter()
                .map(|b| PortLease {
                    guest: b.guest,
                    host_port: b.host,
                })
                .collect();
            record.ports.sort_by_key(|p| p.guest);
            Ok(view(state, &record))
        }
        Err(e) => {
            if let Err(cleanup) = state.store.delete_container(&key).await {
                tracing::error!(container = %name, error = ?cleanup, "could not remove the record of a failed create");
            }
            let _ = host.backend.remove_network_if_unused(&caller.name).await;
            Err(match e {
                ApiError::NotFound {
                    code: "image_not_found",
                    ..
                } => image_not_found(&image),
                other => other,
            })
        }
    }
}

/// Host labels a request requires: `"gpu ssd"` or `["gpu", "ssd"]`.
fn parse_requires(v: Option<Value>) -> Result<Vec<String>, ParseError> {
    let bad = || {
        ParseError::new(
            "requires",
            "requires must be a string of space-separated host labels or an array of them",
        )
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
    if labels.len() > 16 || !labels.iter().all(ok) {
        return Err(ParseError::new(
            "requires",
            "host labels are at most 16 words of letters, digits, '-', '_' or '.'",
        ));
    }
    Ok(labels)
}

/// Writes down the host ports the host gave the container. The host lends each of its
/// ports once; a clash here means the database holds a stale record, which is logged.
async fn record_ports(
    state: &AppState,
    host: &str,
    name: &ContainerKey,
    ports: &[PortBinding],
) -> Result<(), ApiError> {
    for p in ports {
        if !state.store.lease_port(host, p.host, name, p.guest).await? {
            tracing::warn!(container = %name, host, port = p.host, "the database already had this host port for another container");
        }
    }
    Ok(())
}

/// The container as the API shows it: where its ports are reached, and `unknown` while
/// its host does not answer.
pub fn view(state: &AppState, r: &ContainerRecord) -> Container {
    let mut c = Container::from(r);
    if let Some(h) = state.hosts.get(&r.host) {
        c.address = h.address();
        if !h.usable() && r.status != ContainerStatus::Gone {
            c.status = ContainerStatus::Unknown;
        }
    } else if r.backend == Backend::Docker && r.status != ContainerStatus::Gone {
        c.status = ContainerStatus::Unknown;
    }
    c
}

/// The caller's containers (an admin's `all` gives everyone's), with their current
/// status from their hosts.
pub async fn list(
    state: &AppState,
    caller: &Caller,
    all: bool,
) -> Result<Vec<Container>, ApiError> {
    caller.require_full_scope()?;
    let owner = if all && caller.is_admin() {
        None
    } else {
        Some(caller.name.as_str())
    };
    let mut records = state.store.containers(owner).await?;
    let mut hosts: Vec<&str> = records
        .iter()
        .filter(|r| r.backend == Backend::Docker)
        .map(|r| r.host.as_str())
        .collect();
    hosts.sort_unstable();
    hosts.dedup();
    // One list per host, all at once; a host that does not answer leaves its containers
    // as they were recorded (and shown as unknown).
    let lists = futures::future::join_all(hosts.iter().map(|id| async move {
        let found = match state.hosts.reach(id) {
            Ok(b) => b.list().await.ok(),
            Err(_) => None,
        };
        (id.to_string(), found)
    }))
    .await;
    let on_cluster = crate::kube::refresh(state, &mut records).await?;
    for r in &mut records {
        if r.backend != Backend::Docker || r.status == ContainerStatus::Creating {
            continue;
        }
        let Some((_, Some(on_host))) = lists.iter().find(|(h, _)| *h == r.host) else {
            continue;
        };
        let now = on_host
            .iter()
            .find(|s| s.owner == r.owner.as_str() && s.short_name == r.short_name.as_str())
            .map_or(ContainerStatus::Gone, |s| s.state);
        if now != r.status {
            set_status(state, r, now).await?;
        }
    }
    Ok(records
        .iter()
        .zip(&on_cluster)
        .map(|(r, k)| match r.backend {
            Backend::Kubernetes => crate::kube::show(state, r, k.as_ref()),
            Backend::Docker => view(state, r),
        })
        .collect())
}

/// The container with its status as the host reports it now.
pub async fn get(state: &AppState, c: OwnedContainer) -> Result<Container, ApiError> {
    if c.on_cluster() {
        return crate::kube::get(state, c).await;
    }
    let mut record = c.record;
    if record.status == ContainerStatus::Creating {
        return Ok(view(state, &record));
    }
    let Ok(backend) = state.hosts.reach(&record.host) else {
        return Ok(view(state, &record));
    };
    let now = match backend.inspect(&record.key()).await {
        Ok(st) => st.state,
        Err(BackendError::NoSuchContainer) => ContainerStatus::Gone,
        Err(BackendError::Unavailable(_)) => return Ok(view(state, &record)),
        Err(e) => return Err(e.into()),
    };
    if now != record.status {
        set_status(state, &mut record, now).await?;
    }
    Ok(view(state, &record))
}

/// Records a status seen on the host; a container gone from it gives up its ports.
pub(crate) async fn set_status(
    state: &AppState,
    r: &mut ContainerRecord,
    status: ContainerStatus,
) -> Result<(), ApiError> {
    if status == ContainerStatus::Gone {
        state.store.mark_container_gone(&r.key()).await?;
        r.ports.clear();
    } else {
        state
            .store
            .set_container_status(&r.key(), status, None)
            .await?;
    }
    r.status = status;
    Ok(())
}

async fn settle(
    state: &AppState,
    c: OwnedContainer,
    result: Result<ContainerState, BackendError>,
) -> Result<Container, ApiError> {
    let st = result.map_err(|e| match e {
        BackendError::NoSuchContainer => ApiError::Conflict(format!(
            "container {} is gone from its host; delete it",
            c.name()
        )),
        other => other.into(),
    })?;
    let mut record = c.record;
    state
        .store
        .set_container_status(&record.key(), st.state, None)
        .await?;
    record.status = st.state;
    Ok(view(state, &record))
}

pub async fn start(state: &AppState, c: OwnedContainer) -> Result<Container, ApiError> {
    if c.on_cluster() {
        return crate::kube::start_or_stop(state, c, true).await;
    }
    let r = c.host(state)?.start(&c.key()).await;
    settle(state, c, r).await
}

pub async fn stop(state: &AppState, c: OwnedContainer) -> Result<Container, ApiError> {
    if c.on_cluster() {
        return crate::kube::start_or_stop(state, c, false).await;
    }
    let r = c.host(state)?.stop(&c.key()).await;
    settle(state, c, r).await
}

/// Removes the container from its host, then its record and port leases, then the
/// owner's network if this was their last container there. A container already gone
/// from its host needs no answer from the host.
pub async fn delete(state: &AppState, c: OwnedContainer) -> Result<(), ApiError> {
    if c.on_cluster() {
        return crate::kube::delete(state, c).await;
    }
    if c.record.status == ContainerStatus::Gone {
        state.store.delete_container(&c.key()).await?;
        return Ok(());
    }
    let backend = c.host(state)?;
    backend.remove(&c.key()).await?;
    state.store.delete_container(&c.key()).await?;
    if let Err(e) = backend.remove_network_if_unused(&c.record.owner).await {
        tracing::warn!(owner = %c.record.owner, error = %e, "could not remove the owner's network");
    }
    Ok(())
}

pub async fn exec(
    state: &AppState,
    c: &OwnedContainer,
    cmd: Value,
) -> Result<ExecResult, ApiError> {
    if c.on_cluster() {
        return Err(crate::kube::unsupported("exec", "kubectl exec"));
    }
    let req = ExecRequest {
        cmd: parse_cmd(cmd)?,
        timeout_secs: state.config.exec_timeout_secs,
        max_output_bytes: state.config.exec_max_output,
    };
    Ok(c.host(state)?.exec(&c.key(), &req).await?.into())
}

pub async fn upload(
    state: &AppState,
    c: &OwnedContainer,
    dir: &str,
    tar: ByteStream,
) -> Result<(), ApiError> {
    if c.on_cluster() {
        return Err(crate::kube::unsupported("uploading files", "kubectl cp"));
    }
    c.host(state)?.upload(&c.key(), dir, tar).await?;
    Ok(())
}

pub async fn logs(
    state: &AppState,
    c: &OwnedContainer,
    tail: u32,
) -> Result<bytes::Bytes, ApiError> {
    if c.on_cluster() {
        return crate::kube::logs(state, c, tail).await;
    }
    Ok(c.host(state)?.logs(&c.key(), tail).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        for bad in [
            json!("=x"),
            json!("KEY"),
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
