//! Every object the backend applies, as plain JSON: a user's namespace with its RBAC,
//! quota, limits, network policy and volume, and a container's Deployment, Service and
//! Ingress. Pure functions, so `wm kube manifests` prints exactly what the backend would
//! apply and the schema test checks exactly that.

use crate::settings::{is_dns_label, is_label_value, KubeSettings};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use wm_backend::{BackendError, Why};
use wm_domain::{ContainerName, EnvVar, GuestPort, ImageRef, Role, ShortName, UserName};

/// The field manager of every server-side apply and write.
pub const FIELD_MANAGER: &str = "whalemountain";
/// Annotation holding the creation id of a container's objects (see [`KubeContainerSpec`]).
pub const CREATION_ID: &str = "wm.creation-id";
/// Name of the Role, RoleBinding, quota, limit range and network policy in each user's
/// namespace. The ServiceAccount is named after the user, so tokens read as
/// `system:serviceaccount:alice:alice`.
pub const OBJECT_NAME: &str = "wm-user";
/// Name of the user's PersistentVolumeClaim, and where it is mounted in containers.
pub const VOLUME_NAME: &str = "data";
pub const VOLUME_PATH: &str = "/data";
/// Name of the only container in each pod.
pub const CONTAINER: &str = "main";
/// The extended resource of NVIDIA's device plugin.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";

/// One container for the Kubernetes backend.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KubeContainerSpec {
    pub owner: UserName,
    pub short_name: ShortName,
    /// `<owner>-<short name>`; also the name of its Deployment, Service and Ingress.
    pub name: ContainerName,
    pub image: ImageRef,
    pub env: Vec<EnvVar>,
    /// The first port is taken to be HTTP and gets the Ingress.
    pub ports: Vec<GuestPort>,
    /// Chosen by the caller once per create request and passed again on its retries: a
    /// retry finds its own half-made objects (same id) and completes them, while a
    /// different request for the same name finds another id and answers
    /// [`BackendError::NameTaken`].
    pub creation_id: String,
    /// Decides the container's resources.
    pub role: Role,
    /// NVIDIA GPUs (`nvidia.com/gpu`) the container requests, at most its role's
    /// `max_gpus`; 0: none.
    #[serde(default)]
    pub gpus: u32,
    /// The courses (ids) the owner is enrolled in: their namespace carries a
    /// [`course_label`] of each. Left out by older consoles: no course labels.
    #[serde(default)]
    pub courses: Vec<String>,
}

/// The label a namespace carries, set to `"true"`, for each course its user is enrolled
/// in (`wm.course.<id>`): `kubectl get ns -l wm.course.<id>` lists a class's namespaces.
/// `None` for an id that cannot be part of a label's name.
pub fn course_label(course: &str) -> Option<String> {
    let name = format!("wm.course.{course}");
    let ok = !course.is_empty()
        && name.len() <= 63
        && course
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && course
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    ok.then_some(name)
}

/// The user's namespace, which is their account name: refused unless it is a DNS label
/// that names no system namespace, since the backend grants the user rights in it.
pub fn namespace_of<'a>(
    settings: &KubeSettings,
    user: &'a UserName,
) -> Result<&'a str, BackendError> {
    let ns = user.as_str();
    if !is_dns_label(ns) {
        return Err(BackendError::Policy(Why::new(
            "namespace_name",
            [("user", ns.to_string())],
            format!(
                "the user name {ns:?} cannot name a Kubernetes namespace: only lowercase letters, \
                 digits and '-' (not at the end) are allowed there"
            ),
        )));
    }
    if ns == "default" || ns.starts_with("kube-") || ns == settings.ingress_namespace {
        return Err(BackendError::Policy(Why::new(
            "system_namespace",
            [("user", ns.to_string())],
            format!("the user name {ns:?} is the name of a system namespace of the cluster"),
        )));
    }
    Ok(ns)
}

impl KubeContainerSpec {
    /// The container's identity: owner and short name.
    pub fn key(&self) -> wm_domain::ContainerKey {
        wm_domain::ContainerKey {
            owner: self.owner.clone(),
            short: self.short_name.clone(),
        }
    }
}

/// The labels of everything we make for a user (and, with `name`, for one container).
pub fn labels(settings: &KubeSettings, owner: &UserName, name: Option<&ContainerName>) -> Value {
    let mut l = Map::new();
    l.insert(
        "app.kubernetes.io/managed-by".into(),
        "whalemountain".into(),
    );
    l.insert("wm.managed".into(), "true".into());
    l.insert("wm.instance".into(), settings.instance.clone().into());
    l.insert("wm.owner".into(), owner.as_str().into());
    if let Some(name) = name {
        l.insert("wm.name".into(), name.as_str().into());
    }
    Value::Object(l)
}

/// Selects the pods of one container; also the Deployment's (immutable) selector.
fn selector(settings: &KubeSettings, name: &ContainerName) -> Value {
    json!({ "wm.instance": settings.instance, "wm.name": name.as_str() })
}

/// The label selector finding every object of this installation.
pub fn instance_selector(settings: &KubeSettings) -> String {
    format!("wm.managed=true,wm.instance={}", settings.instance)
}

/// Everything a user's namespace holds, in the order it must be applied (the namespace
/// first, the binding after its role and account). The namespace carries a
/// [`course_label`] for each of `courses`.
pub fn user_objects(
    settings: &KubeSettings,
    user: &UserName,
    role: Role,
    courses: &[String],
) -> Result<Vec<Value>, BackendError> {
    let ns = namespace_of(settings, user)?;
    let labels = labels(settings, user, None);
    let mut ns_labels = merged(
        &labels,
        json!({
            // Baseline forbids privileged pods, host namespaces and host paths
            // whoever creates them; restricted would also forbid running as root,
            // which student images do.
            "pod-security.kubernetes.io/enforce": "baseline",
        }),
    );
    for label in courses.iter().filter_map(|c| course_label(c)) {
        ns_labels[label.as_str()] = "true".into();
    }
    let meta = |name: &str| json!({ "name": name, "namespace": ns, "labels": labels });
    let res = settings.resources.of(role);
    let read = ["get", "list", "watch"];
    let mut hard = json!({
        "requests.cpu": res.max.cpu, "requests.memory": res.max.memory,
        "limits.cpu": res.max.cpu, "limits.memory": res.max.memory,
        // Users reach their services through the Ingress only.
        "services.loadbalancers": "0", "services.nodeports": "0",
    });
    // Extended resources are limited by their requests only (which pods must set equal
    // to their limits). Always set, so 0 forbids GPUs in the namespace. Never in the
    // LimitRange: a `max` there would become every container's default limit.
    hard[format!("requests.{GPU_RESOURCE}")] = res.max_gpus.to_string().into();
    let mut objects = vec![
        json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": { "name": ns, "labels": ns_labels },
        }),
        json!({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": meta(ns),
            "automountServiceAccountToken": false,
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": meta(OBJECT_NAME),
            "rules": [
                { "apiGroups": [""], "resources": ["pods", "services"], "verbs": read },
                { "apiGroups": ["apps"], "resources": ["deployments"], "verbs": read },
                { "apiGroups": ["networking.k8s.io"], "resources": ["ingresses"], "verbs": read },
                { "apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"] },
                // kubectl exec and kubectl cp open pods/exec with create (and get for
                // older clients' websocket upgrade).
                { "apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "get"] },
            ],
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": meta(OBJECT_NAME),
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": OBJECT_NAME },
            "subjects": [{ "kind": "ServiceAccount", "name": ns, "namespace": ns }],
        }),
        json!({
            "apiVersion": "v1", "kind": "LimitRange",
            "metadata": meta(OBJECT_NAME),
            "spec": { "limits": [{
                "type": "Container",
                "default": { "cpu": res.default.cpu, "memory": res.default.memory },
                "defaultRequest": { "cpu": res.default.cpu, "memory": res.default.memory },
                "max": { "cpu": res.max.cpu, "memory": res.max.memory },
            }]},
        }),
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": meta(OBJECT_NAME),
            "spec": {
                "podSelector": {},
                "policyTypes": ["Ingress"],
                "ingress": [{ "from": [
                    { "podSelector": {} },
                    { "namespaceSelector": { "matchLabels": {
                        "kubernetes.io/metadata.name": settings.ingress_namespace,
                    }}},
                ]}],
            },
        }),
    ];
    if let Some(size) = &settings.volume_size {
        hard["persistentvolumeclaims"] = "1".into();
        hard["requests.storage"] = size.clone().into();
        let mut spec = json!({
            "accessModes": ["ReadWriteOnce"],
            "resources": { "requests": { "storage": size } },
        });
        if let Some(class) = &settings.storage_class {
            spec["storageClassName"] = class.clone().into();
        }
        objects.push(json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": meta(VOLUME_NAME),
            "spec": spec,
        }));
    }
    objects.push(json!({
        "apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": meta(OBJECT_NAME),
        "spec": { "hard": hard },
    }));
    Ok(objects)
}

/// Checks a container spec for what the domain types cannot know alone.
pub fn check_spec(settings: &KubeSettings, spec: &KubeContainerSpec) -> Result<(), BackendError> {
    namespace_of(settings, &spec.owner)?;
    let expected = ContainerName::new(&spec.owner, &spec.short_name)
        .map_err(|e| BackendError::Refused(e.message.into()))?;
    if expected != spec.name {
        return Err(BackendError::Refused(
            format!("the container name {} is not {}", spec.name, expected).into(),
        ));
    }
    if spec.creation_id.is_empty() || spec.creation_id.len() > 253 {
        return Err(BackendError::Refused(
            "the creation id must have 1 to 253 characters".into(),
        ));
    }
    let max_gpus = settings.resources.of(spec.role).max_gpus;
    if spec.gpus > max_gpus {
        return Err(BackendError::Policy(Why::new(
            "cluster_gpus",
            [
                ("role", spec.role.as_str().to_string()),
                ("max", max_gpus.to_string()),
                ("asked", spec.gpus.to_string()),
            ],
            format!(
                "a {} may have at most {max_gpus} GPU{} on the cluster; {} asked for",
                spec.role.as_str(),
                if max_gpus == 1 { "" } else { "s" },
                spec.gpus
            ),
        )));
    }
    if !is_label_value(spec.name.as_str()) {
        return Err(BackendError::Refused(
            format!("the container name {} cannot be a label value", spec.name).into(),
        ));
    }
    Ok(())
}

/// The Ingress host of a container: `<short name>.<owner>.<domain>`.
pub fn host_of(settings: &KubeSettings, owner: &str, short_name: &str) -> String {
    format!("{short_name}.{owner}.{}", settings.domain)
}

/// The Deployment, then the Service and Ingress when the container has ports.
pub fn container_objects(
    settings: &KubeSettings,
    spec: &KubeContainerSpec,
) -> Result<Vec<Value>, BackendError> {
    check_spec(settings, spec)?;
    let ns = spec.owner.as_str();
    let name = spec.name.as_str();
    let labels = labels(settings, &spec.owner, Some(&spec.name));
    let meta = json!({
        "name": name, "namespace": ns, "labels": labels,
        "annotations": { CREATION_ID: spec.creation_id },
    });
    let res = &settings.resources.of(spec.role).default;
    let mut resources = json!({ "cpu": res.cpu, "memory": res.memory });
    if spec.gpus > 0 {
        // Requests equal to limits, as Kubernetes requires of extended resources.
        resources[GPU_RESOURCE] = spec.gpus.to_string().into();
    }
    let seccomp = json!({ "type": "RuntimeDefault" });
    let mut container = json!({
        "name": CONTAINER,
        "image": spec.image.as_str(),
        "resources": { "requests": resources, "limits": resources },
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "privileged": false,
            "capabilities": { "drop": ["ALL"] },
            "seccompProfile": seccomp,
        },
    });
    if !spec.env.is_empty() {
        container["env"] = spec
            .env
            .iter()
            .map(|e| json!({ "name": e.key(), "value": e.value() }))
            .collect();
    }
    if !spec.ports.is_empty() {
        container["ports"] = spec
            .ports
            .iter()
            .map(|p| json!({ "containerPort": p.get(), "protocol": "TCP" }))
            .collect();
    }
    let mut pod_spec = json!({
        "containers": [],
        // The pod needs no API access, and a token in a student's container would only
        // be one more thing to leak.
        "automountServiceAccountToken": false,
        "enableServiceLinks": false,
        "securityContext": { "seccompProfile": seccomp },
    });
    if settings.volume_size.is_some() {
        container["volumeMounts"] = json!([{ "name": VOLUME_NAME, "mountPath": VOLUME_PATH }]);
        pod_spec["volumes"] = json!([{
            "name": VOLUME_NAME,
            "persistentVolumeClaim": { "claimName": VOLUME_NAME },
        }]);
    }
    pod_spec["containers"] = json!([container]);
    let mut objects = vec![json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": selector(settings, &spec.name) },
            // The volume is ReadWriteOnce: the old pod must let go before the new starts.
            "strategy": { "type": "Recreate" },
            "template": {
                "metadata": { "labels": labels },
                "spec": pod_spec,
            },
        },
    })];
    if let Some(first) = spec.ports.first() {
        objects.push(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": meta,
            "spec": {
                "type": "ClusterIP",
                "selector": selector(settings, &spec.name),
                "ports": spec.ports.iter().map(|p| json!({
                    "name": format!("tcp-{}", p.get()),
                    "port": p.get(), "targetPort": p.get(), "protocol": "TCP",
                })).collect::<Vec<_>>(),
            },
        }));
        let mut ingress_spec = json!({
            "rules": [{
                "host": host_of(settings, ns, spec.short_name.as_str()),
                "http": { "paths": [{
                    "path": "/", "pathType": "Prefix",
                    "backend": { "service": { "name": name, "port": { "number": first.get() } } },
                }]},
            }],
        });
        if let Some(class) = &settings.ingress_class {
            ingress_spec["ingressClassName"] = class.clone().into();
        }
        objects.push(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": meta,
            "spec": ingress_spec,
        }));
    }
    Ok(objects)
}

fn merged(a: &Value, b: Value) -> Value {
    let mut out = a.clone();
    if let (Some(o), Value::Object(b)) = (out.as_object_mut(), b) {
        o.extend(b);
    }
    out
}

/// Multi-document YAML, one document per object.
pub fn to_yaml(objects: &[Value]) -> Result<String, BackendError> {
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(o).map_err(|e| BackendError::Engine(e.to_string()))?);
    }
    Ok(out)
}

/// Every object the backend would apply for a user, and for one of their containers.
pub fn render_manifests(
    settings: &KubeSettings,
    user: &UserName,
    role: Role,
    container: Option<&KubeContainerSpec>,
) -> Result<String, BackendError> {
    settings
        .validate()
        .map_err(|m| BackendError::Policy(m.into()))?;
    let courses = container.map_or(&[][..], |c| c.courses.as_slice());
    let mut objects = user_objects(settings, user, role, courses)?;
    if let Some(spec) = container {
        if &spec.owner != user {
            return Err(BackendError::Refused(
                format!("the container's owner {} is not {user}", spec.owner).into(),
            ));
        }
        objects.extend(container_objects(settings, spec)?);
    }
    to_yaml(&objects)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(ports: &[u16]) -> KubeContainerSpec {
        let owner = UserName::parse("alice").unwrap();
        let short_name = ShortName::parse("web").unwrap();
        KubeContainerSpec {
            name: ContainerName::new(&owner, &short_name).unwrap(),
            owner,
            short_name,
            image: ImageRef::parse("nginx:1.27").unwrap(),
            env: vec![EnvVar::parse("A=b c").unwrap()],
            ports: ports
                .iter()
                .map(|p| GuestPort::new(*p as i64).unwrap())
                .collect(),
            creation_id: "c1".into(),
            role: Role::Student,
            gpus: 0,
            courses: Vec::new(),
        }
    }

    #[test]
    fn a_namespace_carries_a_label_of_each_course() {
        let s = KubeSettings::default();
        let alice = UserName::parse("alice").unwrap();
        let courses = ["3f2a9c1b0d4e".to_string(), "bad id!".to_string()];
        let objs = user_objects(&s, &alice, Role::Student, &courses).unwrap();
        let labels = &objs[0]["metadata"]["labels"];
        assert_eq!(objs[0]["kind"], "Namespace");
        assert_eq!(labels["wm.course.3f2a9c1b0d4e"], "true");
        assert_eq!(labels["wm.owner"], "alice");
        assert_eq!(labels["pod-security.kubernetes.io/enforce"], "baseline");
        // An id no label can hold is left out; only the namespace is labelled.
        assert_eq!(labels.as_object().unwrap().len(), 6, "{labels}");
        for o in &objs[1..] {
            assert!(o["metadata"]["labels"]
                .get("wm.course.3f2a9c1b0d4e")
                .is_none());
        }
        assert_eq!(course_label("x".repeat(60).as_str()), None);
        let none = user_objects(&s, &alice, Role::Student, &[]).unwrap();
        assert!(!none[0]["metadata"]["labels"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.starts_with("wm.course.")));
    }

    #[test]
    fn gpus_are_requested_and_limited_by_the_roles_quota() {
        let mut s = KubeSettings::default();
        s.resources.teacher.max_gpus = 2;
        let alice = UserName::parse("alice").unwrap();
        let quota = |role| {
            user_objects(&s, &alice, role, &[])
                .unwrap()
                .into_iter()
                .find(|o| o["kind"] == "ResourceQuota")
                .unwrap()
        };
        assert_eq!(
            quota(Role::Teacher)["spec"]["hard"]["requests.nvidia.com/gpu"],
            "2"
        );
        assert_eq!(
            quota(Role::Student)["spec"]["hard"]["requests.nvidia.com/gpu"],
            "0",
            "no GPU for a role without max_gpus"
        );
        // The LimitRange never names GPUs: its max would become every pod's limit.
        for role in [Role::Student, Role::Teacher] {
            let objs = user_objects(&s, &alice, role, &[]).unwrap();
            let lr = objs.iter().find(|o| o["kind"] == "LimitRange").unwrap();
            assert!(!lr.to_string().contains("gpu"), "{lr}");
        }

        let mut teacher = spec(&[80]);
        teacher.role = Role::Teacher;
        teacher.gpus = 2;
        let objs = container_objects(&s, &teacher).unwrap();
        let r = &objs[0]["spec"]["template"]["spec"]["containers"][0]["resources"];
        assert_eq!(r["limits"][GPU_RESOURCE], "2");
        assert_eq!(r["requests"][GPU_RESOURCE], "2");
        assert_eq!(r["limits"]["cpu"], "1");

        // Without GPUs, none is asked for.
        teacher.gpus = 0;
        let objs = container_objects(&s, &teacher).unwrap();
        let r = &objs[0]["spec"]["template"]["spec"]["containers"][0]["resources"];
        assert!(!r.to_string().contains("gpu"), "{r}");

        // More than the role's maximum is refused before anything is applied.
        teacher.gpus = 3;
        assert!(matches!(
            container_objects(&s, &teacher),
            Err(BackendError::Policy(m)) if m.contains("at most 2 GPUs")
        ));
        let mut student = spec(&[]);
        student.gpus = 1;
        assert!(matches!(
            container_objects(&s, &student),
            Err(BackendError::Policy(_))
        ));

        // Old callers send no gpus field: 0.
        let mut v = serde_json::to_value(spec(&[80])).unwrap();
        v.as_object_mut().unwrap().remove("gpus");
        let back: KubeContainerSpec = serde_json::from_value(v).unwrap();
        assert_eq!(back.gpus, 0);

        // The setting is read from the file and checked.
        let from_file: KubeSettings = serde_json::from_value(json!({
            "resources": { "teacher": {
                "max_gpus": 1,
                "default": { "cpu": "1", "memory": "1Gi" },
                "max": { "cpu": "4", "memory": "8Gi" },
            }},
        }))
        .unwrap();
        assert_eq!(from_file.resources.teacher.max_gpus, 1);
        assert_eq!(from_file.resources.student.max_gpus, 0);
        s.resources.student.max_gpus = crate::settings::MAX_GPUS + 1;
        assert!(s.validate().is_err());
    }

    #[test]
    fn refuses_names_that_are_not_namespaces() {
        let s = KubeSettings::default();
        for bad in [
            "a.b",
            "a_b",
            "a-",
            "default",
            "kube-system",
            "ingress-nginx",
        ] {
            let u = UserName::parse(bad).unwrap();
            assert!(
                matches!(
                    user_objects(&s, &u, Role::Student, &[]),
                    Err(BackendError::Policy(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn container_is_hardened_and_labelled() {
        let s = KubeSettings {
            volume_size: Some("1Gi".into()),
            ..Default::default()
        };
        let objs = container_objects(&s, &spec(&[8080, 22])).unwrap();
        let kinds: Vec<_> = objs.iter().map(|o| o["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["Deployment", "Service", "Ingress"]);
        let c = &objs[0]["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
        assert_eq!(c["resources"]["limits"]["cpu"], "500m");
        assert_eq!(c["volumeMounts"][0]["mountPath"], VOLUME_PATH);
        assert_eq!(c["env"], json!([{"name": "A", "value": "b c"}]));
        for o in &objs {
            assert_eq!(o["metadata"]["labels"]["wm.name"], "alice-web");
            assert_eq!(o["metadata"]["labels"]["wm.owner"], "alice");
            assert_eq!(o["metadata"]["annotations"][CREATION_ID], "c1");
        }
        assert_eq!(
            objs[2]["spec"]["rules"][0]["host"], "web.alice.localhost",
            "the Ingress goes to the first port"
        );
        assert_eq!(
            objs[2]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"]["number"],
            8080
        );
        // Without ports there is nothing to route to.
        assert_eq!(container_objects(&s, &spec(&[])).unwrap().len(), 1);
    }

    #[test]
    fn yaml_has_one_document_per_object() {
        let s = KubeSettings::default();
        let u = UserName::parse("alice").unwrap();
        let y = render_manifests(&s, &u, Role::Student, Some(&spec(&[80]))).unwrap();
        let docs: Vec<Value> = serde_saphyr::from_multiple(&y).unwrap();
        assert_eq!(docs.len(), 10);
        assert_eq!(docs[0]["kind"], "Namespace");
        assert_eq!(docs[9]["kind"], "Ingress");
        let other = UserName::parse("bob").unwrap();
        assert!(render_manifests(&s, &other, Role::Student, Some(&spec(&[80]))).is_err());
    }
}
