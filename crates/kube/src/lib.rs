//! The Kubernetes backend: the only code that talks to a Kubernetes API server.
//!
//! Each user gets a namespace named after their account, with a ServiceAccount whose Role
//! may only look at their workloads, read logs and exec; each container becomes a
//! Deployment, a Service and an Ingress. Every write is a server-side apply or a create by
//! the field manager `whalemountain`, so repeating any operation converges instead of
//! failing. Objects carry the labels of [`manifests::labels`]: the backend keeps no state
//! and finds everything again by label.
//!
//! Every call is bounded by `call_timeout_secs`: with the cluster down, operations answer
//! [`BackendError::Unavailable`] within seconds and Docker lending is not held up.
//!
//! TLS is rustls with the `ring` provider, the only one compiled into the workspace, so
//! rustls picks it without being told; `wm` installs it as the default anyway.

pub mod manifests;
pub mod settings;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    LimitRange, Namespace, PersistentVolumeClaim, Pod, ResourceQuota, Secret, Service,
    ServiceAccount,
};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::rbac::v1::{Role as RbacRole, RoleBinding};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, LogParams, Patch, PatchParams,
    PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::future::Future;
use std::time::Duration;
use wm_domain::{ContainerKey, Role, UserName};

pub use manifests::{course_label, render_manifests, KubeContainerSpec};
pub use settings::{KubeSettings, Resources, ResourcesByRole, RoleResources, MAX_GPUS};
pub use wm_backend::BackendError;
use wm_backend::Why;

use manifests::{
    container_objects, host_of, instance_selector, namespace_of, user_objects, CONTAINER,
    CREATION_ID, FIELD_MANAGER,
};

/// What a container is doing, from its Deployment and pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KubeState {
    /// Scaled to one and its pod is ready.
    Running,
    /// Scaled to one, its pod not (yet) ready: scheduling, pulling, starting.
    Pending,
    /// Scaled to zero.
    Stopped,
    /// Its pod cannot run: the image cannot be pulled, or it keeps crashing.
    Failed,
}

/// A container of ours as found in the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KubeContainer {
    pub name: String,
    pub owner: String,
    pub image: String,
    pub state: KubeState,
    pub ports: Vec<u16>,
    /// `http://<short name>.<owner>.<domain>/` when the container has a port.
    pub url: Option<String>,
    /// `KEY=value`.
    pub env: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// A client of one cluster with the backend's policy.
#[derive(Clone)]
pub struct Kube {
    client: Client,
    config: Config,
    settings: KubeSettings,
}

/// Waiting reasons after which a pod will not come up without someone changing something.
const FAILED_REASONS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
];

impl Kube {
    /// Reads the cluster access (kubeconfig file, or in-cluster / inferred) without
    /// contacting the cluster, so the console starts while Kubernetes is down.
    pub async fn new(settings: KubeSettings) -> Result<Self, BackendError> {
        settings
            .validate()
            .map_err(|m| BackendError::Policy(m.into()))?;
        let options = KubeConfigOptions {
            context: settings.context.clone(),
            ..Default::default()
        };
        let config = match &settings.kubeconfig {
            Some(path) => {
                let kc = Kubeconfig::read_from(path).map_err(|e| {
                    BackendError::Policy(
                        format!(
                            "cannot read the kubeconfig {}: {}",
                            path.display(),
                            chain(&e)
                        )
                        .into(),
                    )
                })?;
                Config::from_custom_kubeconfig(kc, &options)
                    .await
                    .map_err(|e| {
                        BackendError::Policy(
                            format!(
                                "the kubeconfig {} is not usable: {}",
                                path.display(),
                                chain(&e)
                            )
                            .into(),
                        )
                    })?
            }
            None if settings.context.is_some() => {
                Config::from_kubeconfig(&options).await.map_err(|e| {
                    BackendError::Policy(
                        format!("the kubeconfig is not usable: {}", chain(&e)).into(),
                    )
                })?
            }
            None => Config::infer().await.map_err(|e| {
                BackendError::Policy(
                    format!(
                        "no cluster access: not in a cluster and no kubeconfig: {}",
                        chain(&e)
                    )
                    .into(),
                )
            })?,
        };
        Self::with_config(settings, config)
    }

    /// As [`Kube::new`], with the cluster access given directly.
    pub fn with_config(settings: KubeSettings, mut config: Config) -> Result<Self, BackendError> {
        settings
            .validate()
            .map_err(|m| BackendError::Policy(m.into()))?;
        let call = Duration::from_secs(settings.call_timeout_secs);
        config.connect_timeout = Some(Duration::from_secs(settings.connect_timeout_secs));
        config.read_timeout = Some(call);
        config.write_timeout = Some(call);
        config.reset_reader_on_write = true;
        let client = Client::try_from(config.clone()).map_err(|e| {
            BackendError::Policy(
                format!("cannot set up the Kubernetes client: {}", chain(&e)).into(),
            )
        })?;
        Ok(Self {
            client,
            config,
            settings,
        })
    }

    pub fn settings(&self) -> &KubeSettings {
        &self.settings
    }

    /// The API server's version (`v1.33.1`): proves the cluster answers and our
    /// credentials are accepted.
    pub async fn health(&self) -> Result<String, BackendError> {
        Ok(self
            .call(self.client.apiserver_version())
            .await?
            .git_version)
    }

    /// Makes the user's namespace and everything in it as their role says. Idempotent, and
    /// repeating it brings a namespace changed behind our back (or by a changed role)
    /// back to what it should be; the namespace's course labels follow `courses` (the
    /// ids of the courses the user is enrolled in).
    pub async fn ensure_user(
        &self,
        user: &UserName,
        role: Role,
        courses: &[String],
    ) -> Result<(), BackendError> {
        for object in user_objects(&self.settings, user, role, courses)? {
            self.apply(&object).await?;
        }
        Ok(())
    }

    /// Creates the container's Deployment, Service and Ingress (making the user's
    /// namespace first when needed).
    ///
    /// # Errors
    /// [`BackendError::NameTaken`] when objects of that name exist from another creation
    /// (another `creation_id`); objects with the same id are a retry and are completed.
    pub async fn create(&self, spec: &KubeContainerSpec) -> Result<KubeContainer, BackendError> {
        let objects = container_objects(&self.settings, spec)?;
        self.ensure_user(&spec.owner, spec.role, &spec.courses)
            .await?;
        let ns = spec.owner.as_str();
        let name = spec.name.as_str();
        let taken = || BackendError::NameTaken(name.to_string());
        // Creating (not applying) the Deployment claims the name: of two concurrent
        // creations only one gets past here with its id.
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
        let deployment: Deployment = serde_json::from_value(objects[0].clone())
            .map_err(|e| BackendError::Engine(format!("our own Deployment: {e}")))?;
        let pp = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        match self.call_raw(deployments.create(&pp, &deployment)).await? {
            Ok(_) => {}
            Err(e) if status_code(&e) == Some(409) => {
                let existing = self.call(deployments.get(name)).await?;
                if creation_id(&existing.metadata) != Some(&spec.creation_id) {
                    return Err(taken());
                }
            }
            Err(e) => return Err(self.error(e)),
        }
        for object in &objects[1..] {
            let api = self.api_of(object)?;
            if let Some(existing) = self.call_opt(api.get(name)).await? {
                if creation_id(&existing.metadata) != Some(&spec.creation_id) {
                    return Err(taken());
                }
            }
            self.apply(object).await?;
        }
        self.find(&spec.key()).await
    }

    /// The container, wherever its owner's namespace is.
    pub async fn inspect(&self, name: &ContainerKey) -> Result<KubeContainer, BackendError> {
        self.find(name).await
    }

    /// Every container of this installation in the cluster.
    pub async fn list(&self) -> Result<Vec<KubeContainer>, BackendError> {
        let lp = ListParams::default().labels(&instance_selector(&self.settings));
        let deployments = self
            .call(Api::<Deployment>::all(self.client.clone()).list(&lp))
            .await?;
        let pods = self
            .call(Api::<Pod>::all(self.client.clone()).list(&lp))
            .await?;
        Ok(deployments
            .items
            .iter()
            .filter_map(|d| {
                let key = (
                    d.metadata.namespace.as_deref(),
                    label(&d.metadata, "wm.name"),
                );
                let mine: Vec<&Pod> = pods
                    .items
                    .iter()
                    .filter(|p| {
                        (
                            p.metadata.namespace.as_deref(),
                            label(&p.metadata, "wm.name"),
                        ) == key
                    })
                    .collect();
                self.view(d, &mine)
            })
            .collect())
    }

    /// Scales the container to one replica.
    pub async fn start(&self, name: &ContainerKey) -> Result<KubeContainer, BackendError> {
        self.scale(name, 1).await
    }

    /// Scales the container to zero: the pod goes, the objects and the volume stay.
    pub async fn stop(&self, name: &ContainerKey) -> Result<KubeContainer, BackendError> {
        self.scale(name, 0).await
    }

    /// Deletes the container's Deployment (with its pods), Service and Ingress, and
    /// returns once they are gone. A container that is already gone is not an error.
    pub async fn remove(&self, name: &ContainerKey) -> Result<(), BackendError> {
        let lp = self.container_selector(name);
        let dp = DeleteParams::foreground();
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs(self.settings.delete_timeout_secs);
        let mut deleted = false;
        loop {
            let mut left = Vec::new();
            for ar in [
                ApiResource::erase::<Deployment>(&()),
                ApiResource::erase::<Service>(&()),
                ApiResource::erase::<Ingress>(&()),
            ] {
                let all: Api<DynamicObject> = Api::all_with(self.client.clone(), &ar);
                for object in self.call(all.list(&lp)).await?.items {
                    let ns = object.metadata.namespace.clone().unwrap_or_default();
                    let object_name = object.metadata.name.clone().unwrap_or_default();
                    if !deleted {
                        let api: Api<DynamicObject> =
                            Api::namespaced_with(self.client.clone(), &ns, &ar);
                        self.call_opt(api.delete(&object_name, &dp)).await?;
                    }
                    left.push(format!("{} {ns}/{object_name}", ar.kind));
                }
            }
            if left.is_empty() {
                return Ok(());
            }
            deleted = true;
            if tokio::time::Instant::now() >= deadline {
                return Err(BackendError::Engine(format!(
                    "still there {} s after deletion: {}",
                    self.settings.delete_timeout_secs,
                    left.join(", ")
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The last `tail` lines of the container's pod; empty while it has none (stopped).
    pub async fn logs(&self, name: &ContainerKey, tail: u32) -> Result<String, BackendError> {
        let (deployment, pods) = self.lookup(name).await?;
        let Some(pod) = pods.iter().find_map(|p| p.metadata.name.clone()) else {
            return Ok(String::new());
        };
        let ns = deployment.metadata.namespace.unwrap_or_default();
        let lp = LogParams {
            container: Some(CONTAINER.into()),
            tail_lines: Some(i64::from(tail)),
            ..Default::default()
        };
        self.call(Api::<Pod>::namespaced(self.client.clone(), &ns).logs(&pod, &lp))
            .await
    }

    /// A kubeconfig for the user's own namespace, with a token of their ServiceAccount:
    /// short-lived from the TokenRequest API, or the long-lived Secret's when so
    /// configured. The namespace is made first if it is not there yet.
    pub async fn kubeconfig(
        &self,
        user: &UserName,
        role: Role,
        courses: &[String],
    ) -> Result<String, BackendError> {
        self.ensure_user(user, role, courses).await?;
        let ns = namespace_of(&self.settings, user)?;
        let token = if self.settings.long_lived_tokens {
            self.long_lived_token(user).await?
        } else {
            self.short_lived_token(ns).await?
        };
        let server = self.settings.public_server.clone().unwrap_or_else(|| {
            self.config
                .cluster_url
                .to_string()
                .trim_end_matches('/')
                .to_string()
        });
        let mut cluster = json!({ "server": server });
        if let Some(pem) = self.ca_pem()? {
            cluster["certificate-authority-data"] = base64_encode(pem.as_bytes()).into();
        }
        if self.config.accept_invalid_certs {
            cluster["insecure-skip-tls-verify"] = true.into();
        }
        if let Some(name) = &self.config.tls_server_name {
            cluster["tls-server-name"] = name.clone().into();
        }
        let cluster_name = self.settings.instance.clone();
        let context = format!("{ns}@{cluster_name}");
        let kubeconfig = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{ "name": cluster_name, "cluster": cluster }],
            "users": [{ "name": ns, "user": { "token": token } }],
            "contexts": [{
                "name": context,
                "context": { "cluster": cluster_name, "user": ns, "namespace": ns },
            }],
            "current-context": context,
        });
        serde_saphyr::to_string(&kubeconfig).map_err(|e| BackendError::Engine(e.to_string()))
    }

    async fn short_lived_token(&self, ns: &str) -> Result<String, BackendError> {
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client.clone(), ns);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                expiration_seconds: Some(self.settings.token_expiry_secs as i64),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer: TokenRequest = self
            .call(accounts.create_subresource("token", ns, &PostParams::default(), &request))
            .await?;
        answer
            .status
            .map(|s| s.token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| BackendError::Engine("the TokenRequest answer holds no token".into()))
    }

    /// The token of the Secret `<user>-token`, which the cluster's token controller fills
    /// shortly after it is made.
    async fn long_lived_token(&self, user: &UserName) -> Result<String, BackendError> {
        let ns = user.as_str();
        let name = format!("{ns}-token");
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {
                "name": name, "namespace": ns,
                "labels": manifests::labels(&self.settings, user, None),
                "annotations": { "kubernetes.io/service-account.name": ns },
            },
            "type": "kubernetes.io/service-account-token",
        });
        self.apply(&secret).await?;
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs(self.settings.call_timeout_secs);
        loop {
            let s = self.call(secrets.get(&name)).await?;
            if let Some(token) = s.data.as_ref().and_then(|d| d.get("token")) {
                if !token.0.is_empty() {
                    return String::from_utf8(token.0.clone())
                        .map_err(|_| BackendError::Engine("the token is not text".into()));
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(BackendError::Unavailable(
                    format!(
                        "the cluster did not fill the token of Secret {ns}/{name} within {} s; \
                     is its token controller running?",
                        self.settings.call_timeout_secs
                    )
                    .into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The PEM of the CA the backend trusts for the API server, for users' kubeconfigs.
    fn ca_pem(&self) -> Result<Option<String>, BackendError> {
        if let Some(file) = &self.config.root_cert_file {
            return std::fs::read_to_string(file)
                .map(Some)
                .map_err(|e| BackendError::Engine(format!("cannot read {}: {e}", file.display())));
        }
        Ok(self.config.root_cert.as_ref().map(|certs| {
            certs
                .iter()
                .map(|der| {
                    let b64 = base64_encode(der);
                    let lines: Vec<&str> = b64
                        .as_bytes()
                        .chunks(64)
                        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
                        .collect();
                    format!(
                        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                        lines.join("\n")
                    )
                })
                .collect()
        }))
    }

    async fn scale(
        &self,
        name: &ContainerKey,
        replicas: i32,
    ) -> Result<KubeContainer, BackendError> {
        let (deployment, _) = self.lookup(name).await?;
        let ns = deployment.metadata.namespace.unwrap_or_default();
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &ns);
        let pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        let patch = Patch::Merge(json!({ "spec": { "replicas": replicas } }));
        self.call(api.patch(name.full_name().as_str(), &pp, &patch))
            .await?;
        self.find(name).await
    }

    async fn find(&self, name: &ContainerKey) -> Result<KubeContainer, BackendError> {
        let (deployment, pods) = self.lookup(name).await?;
        let pods: Vec<&Pod> = pods.iter().collect();
        self.view(&deployment, &pods)
            .ok_or(BackendError::NoSuchContainer)
    }

    /// The container's Deployment and pods, found by label in whichever namespace.
    async fn lookup(&self, name: &ContainerKey) -> Result<(Deployment, Vec<Pod>), BackendError> {
        let lp = self.container_selector(name);
        let deployment = self
            .call(Api::<Deployment>::all(self.client.clone()).list(&lp))
            .await?
            .items
            .into_iter()
            .next()
            .ok_or(BackendError::NoSuchContainer)?;
        let ns = deployment.metadata.namespace.clone().unwrap_or_default();
        let pods = self
            .call(Api::<Pod>::namespaced(self.client.clone(), &ns).list(&lp))
            .await?
            .items;
        Ok((deployment, pods))
    }

    /// The objects of one container: its owner's as well as its full name's, since two
    /// owners' containers may share a full name.
    fn container_selector(&self, name: &ContainerKey) -> ListParams {
        ListParams::default().labels(&format!(
            "{},wm.owner={},wm.name={}",
            instance_selector(&self.settings),
            name.owner,
            name.full_name()
        ))
    }

    /// What a Deployment and its pods say about the container; `None` for a Deployment
    /// whose labels do not hold an owner and a name.
    fn view(&self, d: &Deployment, pods: &[&Pod]) -> Option<KubeContainer> {
        let owner = label(&d.metadata, "wm.owner")?.to_string();
        let name = label(&d.metadata, "wm.name")?.to_string();
        let spec = d.spec.as_ref()?;
        let container = spec.template.spec.as_ref()?.containers.first()?;
        let ports: Vec<u16> = container
            .ports
            .iter()
            .flatten()
            .filter_map(|p| u16::try_from(p.container_port).ok())
            .collect();
        let url = match (ports.is_empty(), name.strip_prefix(&format!("{owner}-"))) {
            (false, Some(short)) => Some(format!(
                "http://{}/",
                host_of(&self.settings, &owner, short)
            )),
            _ => None,
        };
        let ready = d
            .status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0);
        let failed = pods.iter().any(|p| {
            let status = p.status.as_ref();
            status.and_then(|s| s.phase.as_deref()) == Some("Failed")
                || status
                    .and_then(|s| s.container_statuses.as_ref())
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.as_deref())
                    .any(|r| FAILED_REASONS.contains(&r))
        });
        let state = if spec.replicas == Some(0) {
            KubeState::Stopped
        } else if ready >= 1 {
            KubeState::Running
        } else if failed {
            KubeState::Failed
        } else {
            KubeState::Pending
        };
        Some(KubeContainer {
            name,
            owner,
            image: container.image.clone().unwrap_or_default(),
            state,
            ports,
            url,
            env: container
                .env
                .iter()
                .flatten()
                .map(|e| format!("{}={}", e.name, e.value.as_deref().unwrap_or("")))
                .collect(),
            created_at: d
                .metadata
                .creation_timestamp
                .as_ref()
                .map_or(0, |t| t.0.as_second()),
        })
    }

    /// The API of one of our objects, from its `kind`.
    fn api_of(&self, object: &Value) -> Result<Api<DynamicObject>, BackendError> {
        let ar = match object["kind"].as_str().unwrap_or_default() {
            "Namespace" => ApiResource::erase::<Namespace>(&()),
            "ServiceAccount" => ApiResource::erase::<ServiceAccount>(&()),
            "Role" => ApiResource::erase::<RbacRole>(&()),
            "RoleBinding" => ApiResource::erase::<RoleBinding>(&()),
            "LimitRange" => ApiResource::erase::<LimitRange>(&()),
            "ResourceQuota" => ApiResource::erase::<ResourceQuota>(&()),
            "NetworkPolicy" => ApiResource::erase::<NetworkPolicy>(&()),
            "PersistentVolumeClaim" => ApiResource::erase::<PersistentVolumeClaim>(&()),
            "Secret" => ApiResource::erase::<Secret>(&()),
            "Deployment" => ApiResource::erase::<Deployment>(&()),
            "Service" => ApiResource::erase::<Service>(&()),
            "Ingress" => ApiResource::erase::<Ingress>(&()),
            other => return Err(BackendError::Engine(format!("no API for kind {other:?}"))),
        };
        Ok(match object["metadata"]["namespace"].as_str() {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &ar),
            None => Api::all_with(self.client.clone(), &ar),
        })
    }

    /// Server-side apply as the owner of every field we set.
    async fn apply(&self, object: &Value) -> Result<DynamicObject, BackendError> {
        let api = self.api_of(object)?;
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        self.call(api.patch(name, &pp, &Patch::Apply(object))).await
    }

    /// One API call bounded by the call timeout; the outer error is the timeout.
    async fn call_raw<T>(
        &self,
        fut: impl Future<Output = kube::Result<T>>,
    ) -> Result<kube::Result<T>, BackendError> {
        let secs = self.settings.call_timeout_secs;
        tokio::time::timeout(Duration::from_secs(secs), fut)
            .await
            .map_err(|_| {
                BackendError::Unavailable(Why::new(
                    "cluster_timeout",
                    [("seconds", secs.to_string())],
                    format!(
                        "the Kubernetes API at {} did not answer within {secs} s",
                        self.config.cluster_url
                    ),
                ))
            })
    }

    async fn call<T>(&self, fut: impl Future<Output = kube::Result<T>>) -> Result<T, BackendError> {
        self.call_raw(fut).await?.map_err(|e| self.error(e))
    }

    /// As [`Kube::call`], with NotFound as `None`.
    async fn call_opt<T>(
        &self,
        fut: impl Future<Output = kube::Result<T>>,
    ) -> Result<Option<T>, BackendError> {
        match self.call_raw(fut).await? {
            Ok(v) => Ok(Some(v)),
            Err(e) if status_code(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.error(e)),
        }
    }

    fn error(&self, e: kube::Error) -> BackendError {
        match e {
            kube::Error::Api(s) => match s.code {
                400 | 422 => BackendError::Refused(s.message.into()),
                // The admission of a ResourceQuota answers 403 too.
                403 if s.message.contains("exceeded quota") => {
                    BackendError::Refused(s.message.into())
                }
                429 | 500..=599 => BackendError::Unavailable(
                    format!("the Kubernetes API answered {}: {}", s.code, s.message).into(),
                ),
                code => BackendError::Engine(format!(
                    "the Kubernetes API answered {code} {}: {}",
                    s.reason, s.message
                )),
            },
            e @ (kube::Error::HyperError(_) | kube::Error::Service(_)) => {
                BackendError::Unavailable(Why::new(
                    "cluster_unreachable",
                    [],
                    format!(
                        "cannot reach the Kubernetes API at {}: {}",
                        self.config.cluster_url,
                        chain(&e)
                    ),
                ))
            }
            e => BackendError::Engine(chain(&e)),
        }
    }
}

fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

fn creation_id(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<&String> {
    meta.annotations.as_ref()?.get(CREATION_ID)
}

fn label<'a>(
    meta: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    key: &str,
) -> Option<&'a str> {
    meta.labels.as_ref()?.get(key).map(String::as_str)
}

/// An error with its causes: kube-rs and hyper keep the useful part ("Connection
/// refused") in the source chain.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        source = s.source();
    }
    out
}

fn base64_encode(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// What the console needs from a cluster: served in-process by [`Kube`], or by a
/// kubernetes agent over the agent protocol (`wm_agent::RemoteCluster`), so the console
/// cannot tell the two apart.
#[async_trait::async_trait]
pub trait Cluster: Send + Sync {
    /// The API server's version; [`BackendError::Unavailable`] when it cannot be reached.
    async fn health(&self) -> Result<String, BackendError>;
    /// Creates or updates the user's namespace and what goes in it, labelled with the
    /// courses (ids) they are enrolled in.
    async fn ensure_user(
        &self,
        user: &UserName,
        role: Role,
        courses: &[String],
    ) -> Result<(), BackendError>;
    async fn create(&self, spec: &KubeContainerSpec) -> Result<KubeContainer, BackendError>;
    async fn inspect(&self, name: &ContainerKey) -> Result<KubeContainer, BackendError>;
    /// Every container of this installation in the cluster.
    async fn list(&self) -> Result<Vec<KubeContainer>, BackendError>;
    async fn start(&self, name: &ContainerKey) -> Result<KubeContainer, BackendError>;
    async fn stop(&self, name: &ContainerKey) -> Result<KubeContainer, BackendError>;
    /// Removes the container's objects and waits until they are gone.
    async fn remove(&self, name: &ContainerKey) -> Result<(), BackendError>;
    async fn logs(&self, name: &ContainerKey, tail: u32) -> Result<String, BackendError>;
    /// A kubeconfig for the user's namespace with a fresh token (the namespace made or
    /// brought up to date first, as by `ensure_user`).
    async fn kubeconfig(
        &self,
        user: &UserName,
        role: Role,
        courses: &[String],
    ) -> Result<String, BackendError>;
}

#[async_trait::async_trait]
impl Cluster for Kube {
    async fn health(&self) -> Result<String, BackendError> {
        Kube::health(self).await
    }
    async fn ensure_user(
        &self,
        user: &UserName,
        role: Role,
        courses: &[String],
    ) -> Result<(), BackendError> {
        Kube::ensure_user(self, user, role, courses).await
    }
    async fn create(&self, spec: &KubeContainerSpec) -> Result<KubeContainer, BackendError> {
        Kube::create(self, spec).await
    }
    async fn inspect(&self, name: &ContainerKey) -> Result<KubeContainer, BackendError> {
        Kube::inspect(self, name).await
    }
    async fn list(&self) -> Result<Vec<KubeContainer>, BackendError> {
        Kube::list(self).await
    }
    async fn start(&self, name: &ContainerKey) -> Result<KubeContainer, BackendError> {
        Kube::start(self, name).await
    }
    async fn stop(&self, name: &ContainerKey) -> Result<KubeContainer, BackendError> {
        Kube::stop(self, name).await
    }
    async fn remove(&self, name: &ContainerKey) -> Result<(), BackendError> {
        Kube::remove(self, name).await
    }
    async fn logs(&self, name: &ContainerKey, tail: u32) -> Result<String, BackendError> {
        Kube::logs(self, name, tail).await
    }
    async fn kubeconfig(
        &self,
        user: &UserName,
        role: Role,
        courses: &[String],
    ) -> Result<String, BackendError> {
        Kube::kubeconfig(self, user, role, courses).await
    }
}
