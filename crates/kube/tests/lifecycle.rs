//! The backend against the stand-in API server of `wm_testkit::kube_apiserver`: the
//! whole life of a user namespace and a container, the tokens handed to users, and a
//! cluster that cannot be reached.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::rbac::v1::Role as RbacRole;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::json;
use std::time::{Duration, Instant};
use wm_domain::{ContainerName, EnvVar, GuestPort, ImageRef, Role, ShortName, UserName};
use wm_kube::manifests::{container_objects, CREATION_ID};
use wm_kube::{BackendError, Kube, KubeContainerSpec, KubeSettings, KubeState};
use wm_testkit::kube_apiserver::KubeApiServer;

struct Setup {
    server: KubeApiServer,
    kube: Kube,
    /// A client with every right, for looking and meddling behind the backend's back.
    admin: Client,
    _dir: tempfile::TempDir,
}

async fn setup(configure: impl FnOnce(&mut KubeSettings)) -> Setup {
    let server = KubeApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, server.admin_kubeconfig()).unwrap();
    let mut settings = KubeSettings {
        kubeconfig: Some(path),
        instance: "wmtest".into(),
        ..Default::default()
    };
    configure(&mut settings);
    let kube = Kube::new(settings).await.unwrap();
    let admin = client_from_yaml(&server.admin_kubeconfig()).await;
    Setup {
        server,
        kube,
        admin,
        _dir: dir,
    }
}

async fn client_from_yaml(yaml: &str) -> Client {
    let config = config_from_yaml(yaml).await;
    Client::try_from(config).unwrap()
}

async fn config_from_yaml(yaml: &str) -> Config {
    let kc = Kubeconfig::from_yaml(yaml).unwrap();
    Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap()
}

fn user(name: &str) -> UserName {
    UserName::parse(name).unwrap()
}

fn spec(owner: &str, short: &str, ports: &[u16], creation_id: &str) -> KubeContainerSpec {
    let owner = user(owner);
    let short_name = ShortName::parse(short).unwrap();
    KubeContainerSpec {
        name: ContainerName::new(&owner, &short_name).unwrap(),
        owner,
        short_name,
        image: ImageRef::parse("nginx:1.27").unwrap(),
        env: vec![EnvVar::parse("GREETING=hello world").unwrap()],
        ports: ports
            .iter()
            .map(|p| GuestPort::new(i64::from(*p)).unwrap())
            .collect(),
        creation_id: creation_id.into(),
        role: Role::Student,
        gpus: 0,
        courses: Vec::new(),
    }
}

fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

#[tokio::test]
async fn user_namespace_is_made_once_and_kept_right() {
    let s = setup(|_| {}).await;
    assert_eq!(s.kube.health().await.unwrap(), "v1.33.0-wm-standin");
    let alice = user("alice");
    s.kube
        .ensure_user(&alice, Role::Student, &[])
        .await
        .unwrap();
    let role_before = s.server.object("roles", "alice", "wm-user").unwrap();
    s.kube
        .ensure_user(&alice, Role::Student, &[])
        .await
        .unwrap();
    let role_after = s.server.object("roles", "alice", "wm-user").unwrap();
    assert_eq!(role_before["rules"], role_after["rules"]);
    assert_eq!(
        role_before["metadata"]["uid"], role_after["metadata"]["uid"],
        "the second ensure changes, never recreates"
    );

    let ns = s.server.object("namespaces", "", "alice").unwrap();
    assert_eq!(ns["metadata"]["labels"]["wm.owner"], "alice");
    assert_eq!(ns["metadata"]["labels"]["wm.instance"], "wmtest");
    assert_eq!(
        ns["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "whalemountain"
    );
    for (plural, name) in [
        ("serviceaccounts", "alice"),
        ("rolebindings", "wm-user"),
        ("resourcequotas", "wm-user"),
        ("limitranges", "wm-user"),
        ("networkpolicies", "wm-user"),
    ] {
        assert!(
            s.server.object(plural, "alice", name).is_some(),
            "{plural}/{name}"
        );
    }
    // No volume unless configured.
    assert!(s
        .server
        .object("persistentvolumeclaims", "alice", "data")
        .is_none());
    let quota = s
        .server
        .object("resourcequotas", "alice", "wm-user")
        .unwrap();
    assert_eq!(quota["spec"]["hard"]["limits.memory"], "4Gi");

    // A changed role changes the quota of the same namespace.
    s.kube
        .ensure_user(&alice, Role::Teacher, &[])
        .await
        .unwrap();
    let quota = s
        .server
        .object("resourcequotas", "alice", "wm-user")
        .unwrap();
    assert_eq!(quota["spec"]["hard"]["limits.memory"], "8Gi");
}

#[tokio::test]
async fn the_volume_is_claimed_and_mounted_when_configured() {
    let s = setup(|s| {
        s.volume_size = Some("2Gi".into());
        s.storage_class = Some("fast".into());
    })
    .await;
    s.kube
        .create(&spec("alice", "web", &[80], "c1"))
        .await
        .unwrap();
    let pvc = s
        .server
        .object("persistentvolumeclaims", "alice", "data")
        .unwrap();
    assert_eq!(pvc["spec"]["storageClassName"], "fast");
    assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "2Gi");
    let pods: Api<Pod> = Api::namespaced(s.admin.clone(), "alice");
    let pod = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .remove(0);
    let spec = pod.spec.unwrap();
    assert_eq!(
        spec.volumes.unwrap()[0]
            .persistent_volume_claim
            .as_ref()
            .unwrap()
            .claim_name,
        "data"
    );
    assert_eq!(
        spec.containers[0].volume_mounts.as_ref().unwrap()[0].mount_path,
        "/data"
    );
}

#[tokio::test]
async fn container_lifecycle() {
    let s = setup(|_| {}).await;
    let web = spec("alice", "web", &[8080, 22], "create-1");
    let c = s.kube.create(&web).await.unwrap();
    assert_eq!(c.name, "alice-web");
    assert_eq!(c.owner, "alice");
    assert_eq!(c.image, "nginx:1.27");
    assert_eq!(c.state, KubeState::Running);
    assert_eq!(c.ports, [8080, 22]);
    assert_eq!(c.url.as_deref(), Some("http://web.alice.localhost/"));
    assert_eq!(c.env, ["GREETING=hello world"]);
    assert!(c.created_at > 1_700_000_000);

    // What was made, as the cluster has it.
    let d: Deployment = Api::namespaced(s.admin.clone(), "alice")
        .get("alice-web")
        .await
        .unwrap();
    let pod_spec = d.spec.unwrap().template.spec.unwrap();
    let sc = pod_spec.containers[0].security_context.clone().unwrap();
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.privileged, Some(false));
    assert_eq!(sc.capabilities.unwrap().drop.unwrap(), ["ALL"]);
    assert_eq!(sc.seccomp_profile.unwrap().type_, "RuntimeDefault");
    let labels = d.metadata.labels.unwrap();
    assert_eq!(labels["wm.managed"], "true");
    assert_eq!(labels["wm.name"], "alice-web");
    assert_eq!(labels["wm.instance"], "wmtest");
    let svc: Service = Api::namespaced(s.admin.clone(), "alice")
        .get("alice-web")
        .await
        .unwrap();
    let ports: Vec<i32> = svc
        .spec
        .unwrap()
        .ports
        .unwrap()
        .iter()
        .map(|p| p.port)
        .collect();
    assert_eq!(ports, [8080, 22]);
    let ing: Ingress = Api::namespaced(s.admin.clone(), "alice")
        .get("alice-web")
        .await
        .unwrap();
    let rule = &ing.spec.unwrap().rules.unwrap()[0];
    assert_eq!(rule.host.as_deref(), Some("web.alice.localhost"));
    let backend = rule.http.as_ref().unwrap().paths[0]
        .backend
        .service
        .clone()
        .unwrap();
    assert_eq!(backend.port.unwrap().number, Some(8080));

    assert_eq!(s.kube.inspect(&web.key()).await.unwrap(), c);

    // A second creation of the same name is refused; its retry is not.
    let again = spec("alice", "web", &[80], "create-2");
    match s.kube.create(&again).await {
        Err(BackendError::NameTaken(n)) => assert_eq!(n, "alice-web"),
        other => panic!("expected NameTaken, got {other:?}"),
    }
    assert_eq!(s.kube.create(&web).await.unwrap().ports, [8080, 22]);

    // A second container of another user; both are listed, nothing else is.
    let bob_db = spec("bob", "db", &[], "create-3");
    let db = s.kube.create(&bob_db).await.unwrap();
    assert_eq!(db.url, None);
    assert!(s.server.object("services", "bob", "bob-db").is_none());
    let mut names: Vec<String> = s
        .kube
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    names.sort();
    assert_eq!(names, ["alice-web", "bob-db"]);

    let stopped = s.kube.stop(&web.key()).await.unwrap();
    assert_eq!(stopped.state, KubeState::Stopped);
    let pods: Api<Pod> = Api::namespaced(s.admin.clone(), "alice");
    assert!(pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());
    assert_eq!(s.kube.logs(&web.key(), 10).await.unwrap(), "");
    let started = s.kube.start(&web.key()).await.unwrap();
    assert_eq!(started.state, KubeState::Running);
    let logs = s.kube.logs(&web.key(), 1).await.unwrap();
    assert_eq!(logs.lines().count(), 1, "{logs}");
    assert!(logs.contains("is running"), "{logs}");

    // Removal returns once all three are gone, not when their deletion was asked.
    s.kube.remove(&web.key()).await.unwrap();
    for plural in ["deployments", "services", "ingresses"] {
        assert!(
            s.server.object(plural, "alice", "alice-web").is_none(),
            "{plural}"
        );
    }
    assert!(pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());
    assert!(matches!(
        s.kube.inspect(&web.key()).await,
        Err(BackendError::NoSuchContainer)
    ));
    s.kube.remove(&web.key()).await.unwrap();
    assert!(matches!(
        s.kube.start(&web.key()).await,
        Err(BackendError::NoSuchContainer)
    ));
    let names: Vec<String> = s
        .kube
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["bob-db"]);
    // The name is free again.
    s.kube
        .create(&spec("alice", "web", &[80], "create-4"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_half_done_creation_is_completed_by_its_retry() {
    let s = setup(|_| {}).await;
    let web = spec("alice", "web", &[80], "id-1");
    s.kube.create(&web).await.unwrap();
    let services: Api<Service> = Api::namespaced(s.admin.clone(), "alice");
    services
        .delete("alice-web", &DeleteParams::default())
        .await
        .unwrap();
    s.kube.create(&web).await.unwrap();
    assert!(s.server.object("services", "alice", "alice-web").is_some());

    // Only the Deployment got made before the crash.
    let api = spec("alice", "api", &[8000], "id-2");
    s.kube
        .ensure_user(&api.owner, Role::Student, &[])
        .await
        .unwrap();
    let deployment = container_objects(s.kube.settings(), &api)
        .unwrap()
        .remove(0);
    let deployments: Api<Deployment> = Api::namespaced(s.admin.clone(), "alice");
    deployments
        .create(
            &PostParams::default(),
            &serde_json::from_value(deployment).unwrap(),
        )
        .await
        .unwrap();
    let c = s.kube.create(&api).await.unwrap();
    assert_eq!(c.state, KubeState::Running);
    let ing = s.server.object("ingresses", "alice", "alice-api").unwrap();
    assert_eq!(ing["metadata"]["annotations"][CREATION_ID], "id-2");

    // Objects of that name left from another creation are not taken over.
    let other = spec("alice", "other", &[80], "id-3");
    let mut ingress = container_objects(s.kube.settings(), &other)
        .unwrap()
        .remove(2);
    ingress["metadata"]["annotations"][CREATION_ID] = json!("someone-else");
    let ingresses: Api<Ingress> = Api::namespaced(s.admin.clone(), "alice");
    ingresses
        .create(
            &PostParams::default(),
            &serde_json::from_value(ingress).unwrap(),
        )
        .await
        .unwrap();
    assert!(matches!(
        s.kube.create(&other).await,
        Err(BackendError::NameTaken(_))
    ));
}

#[tokio::test]
async fn a_pod_that_cannot_pull_its_image_is_failed() {
    let s = setup(|_| {}).await;
    s.server.fail_pulls_of("registry.example.org/missing:1");
    let mut bad = spec("alice", "bad", &[80], "c1");
    bad.image = ImageRef::parse("registry.example.org/missing:1").unwrap();
    assert_eq!(s.kube.create(&bad).await.unwrap().state, KubeState::Failed);
}

#[tokio::test]
async fn invalid_user_names_are_refused_before_any_call() {
    let s = setup(|_| {}).await;
    for name in ["a.b", "a_b", "kube-system", "default", "ingress-nginx"] {
        let err = s
            .kube
            .ensure_user(&user(name), Role::Student, &[])
            .await
            .unwrap_err();
        assert!(matches!(err, BackendError::Policy(_)), "{name}: {err:?}");
        let err = s
            .kube
            .create(&spec(name, "web", &[80], "c"))
            .await
            .unwrap_err();
        assert!(matches!(err, BackendError::Policy(_)), "{name}: {err:?}");
    }
    let namespaces: Api<Namespace> = Api::all(s.admin.clone());
    assert!(namespaces
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());
}

/// What a user's kubeconfig allows: exactly the Role's verbs, only in their namespace.
async fn check_user_token(s: &Setup, yaml: &str) {
    let config = config_from_yaml(yaml).await;
    assert_eq!(config.default_namespace, "alice");
    assert_eq!(
        config.cluster_url.to_string().trim_end_matches('/'),
        s.server.url()
    );
    let alice = Client::try_from(config).unwrap();
    let pods: Api<Pod> = Api::default_namespaced(alice.clone());
    let pod = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .remove(0);
    let pod_name = pod.metadata.name.unwrap();
    let log = pods.logs(&pod_name, &LogParams::default()).await.unwrap();
    assert!(log.contains("started container"), "{log}");
    let deployments: Api<Deployment> = Api::default_namespaced(alice.clone());
    assert_eq!(
        deployments
            .get("alice-web")
            .await
            .unwrap()
            .metadata
            .name
            .as_deref(),
        Some("alice-web")
    );
    Api::<Service>::default_namespaced(alice.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    Api::<Ingress>::default_namespaced(alice.clone())
        .list(&ListParams::default())
        .await
        .unwrap();

    // kubectl exec: allowed (the stand-in then wants a protocol upgrade, as the real one).
    let exec = |ns: &str| {
        http::Request::post(format!(
            "/api/v1/namespaces/{ns}/pods/{pod_name}/exec?command=ls&stdout=true"
        ))
        .body(Vec::new())
        .unwrap()
    };
    let err = alice.request_text(exec("alice")).await.unwrap_err();
    assert_eq!(status_code(&err), Some(400), "{err}");

    let forbidden = |r: Result<_, kube::Error>, what: &str| match r {
        Err(e) => assert_eq!(status_code(&e), Some(403), "{what}: {e}"),
        Ok(_) => panic!("{what} was allowed"),
    };
    // Nothing more in their own namespace...
    forbidden(
        Api::<Secret>::default_namespaced(alice.clone())
            .list(&ListParams::default())
            .await
            .map(|_| ()),
        "listing secrets",
    );
    forbidden(
        deployments
            .delete("alice-web", &DeleteParams::default())
            .await
            .map(|_| ()),
        "deleting a deployment",
    );
    let d = deployments.get("alice-web").await.unwrap();
    let mut copy = d.clone();
    copy.metadata = Default::default();
    copy.metadata.name = Some("copy".into());
    forbidden(
        deployments
            .create(&PostParams::default(), &copy)
            .await
            .map(|_| ()),
        "creating a deployment",
    );
    let roles: Api<RbacRole> = Api::default_namespaced(alice.clone());
    forbidden(roles.get("wm-user").await.map(|_| ()), "reading its role");
    let mut role = s.server.object("roles", "alice", "wm-user").unwrap();
    role["metadata"] = json!({ "name": "more" });
    role["rules"] = json!([{ "apiGroups": ["*"], "resources": ["*"], "verbs": ["*"] }]);
    forbidden(
        roles
            .create(
                &PostParams::default(),
                &serde_json::from_value(role).unwrap(),
            )
            .await
            .map(|_| ()),
        "creating a role",
    );
    // Every verb on every kind we make: only reading workloads is allowed.
    let kinds = [
        ("/api/v1", "pods", true),
        ("/api/v1", "services", true),
        ("/apis/apps/v1", "deployments", true),
        ("/apis/networking.k8s.io/v1", "ingresses", true),
        ("/api/v1", "secrets", false),
        ("/api/v1", "serviceaccounts", false),
        ("/api/v1", "resourcequotas", false),
        ("/api/v1", "limitranges", false),
        ("/api/v1", "persistentvolumeclaims", false),
        ("/apis/networking.k8s.io/v1", "networkpolicies", false),
        ("/apis/rbac.authorization.k8s.io/v1", "roles", false),
        ("/apis/rbac.authorization.k8s.io/v1", "rolebindings", false),
    ];
    for (prefix, plural, readable) in kinds {
        let collection = format!("{prefix}/namespaces/alice/{plural}");
        let one = format!("{collection}/x");
        for (verb, method, uri, allowed) in [
            ("list", "GET", &collection, readable),
            ("get", "GET", &one, readable),
            ("create", "POST", &collection, false),
            ("update", "PUT", &one, false),
            ("patch", "PATCH", &one, false),
            ("delete", "DELETE", &one, false),
            ("deletecollection", "DELETE", &collection, false),
        ] {
            let request = http::Request::builder()
                .method(method)
                .uri(uri.as_str())
                .header("content-type", "application/merge-patch+json")
                .body(b"{}".to_vec())
                .unwrap();
            let code = match alice.request_text(request).await {
                Ok(_) => 200,
                Err(e) => status_code(&e).unwrap_or_else(|| panic!("{e}")),
            };
            assert_eq!(code == 403, !allowed, "{verb} {plural}: {code}");
        }
    }

    // ...and nothing at all in bob's, or at the cluster scope.
    let bobs: Api<Pod> = Api::namespaced(alice.clone(), "bob");
    forbidden(
        bobs.list(&ListParams::default()).await.map(|_| ()),
        "listing bob's pods",
    );
    let err = alice.request_text(exec("bob")).await.unwrap_err();
    assert_eq!(status_code(&err), Some(403), "{err}");
    forbidden(
        Api::<Namespace>::all(alice.clone())
            .list(&ListParams::default())
            .await
            .map(|_| ()),
        "listing namespaces",
    );
}

#[tokio::test]
async fn a_users_kubeconfig_acts_in_their_namespace_only() {
    let s = setup(|_| {}).await;
    s.kube
        .create(&spec("alice", "web", &[80], "a"))
        .await
        .unwrap();
    s.kube
        .create(&spec("bob", "web", &[80], "b"))
        .await
        .unwrap();
    let yaml = s
        .kube
        .kubeconfig(&user("alice"), Role::Student, &[])
        .await
        .unwrap();
    assert!(!yaml.contains(s.server.admin_token()));
    check_user_token(&s, &yaml).await;
    // Without its account, the token is worth nothing.
    let namespaces: Api<Namespace> = Api::all(s.admin.clone());
    namespaces
        .delete("alice", &DeleteParams::default())
        .await
        .unwrap();
    let alice = client_from_yaml(&yaml).await;
    let err = Api::<Pod>::default_namespaced(alice)
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert_eq!(status_code(&err), Some(401), "{err}");
}

#[tokio::test]
async fn long_lived_tokens_come_from_a_token_secret() {
    let s = setup(|s| s.long_lived_tokens = true).await;
    s.kube
        .create(&spec("alice", "web", &[80], "a"))
        .await
        .unwrap();
    s.kube
        .create(&spec("bob", "web", &[80], "b"))
        .await
        .unwrap();
    let yaml = s
        .kube
        .kubeconfig(&user("alice"), Role::Student, &[])
        .await
        .unwrap();
    let secret = s.server.object("secrets", "alice", "alice-token").unwrap();
    assert_eq!(secret["type"], "kubernetes.io/service-account-token");
    check_user_token(&s, &yaml).await;
    // The same token on the next call.
    assert_eq!(
        s.kube
            .kubeconfig(&user("alice"), Role::Student, &[])
            .await
            .unwrap(),
        yaml
    );
}

#[tokio::test]
async fn public_server_goes_into_kubeconfigs() {
    let s = setup(|s| s.public_server = Some("https://k8s.example.org:6443".into())).await;
    let yaml = s
        .kube
        .kubeconfig(&user("alice"), Role::Student, &[])
        .await
        .unwrap();
    let kc = Kubeconfig::from_yaml(&yaml).unwrap();
    let cluster = kc.clusters[0].cluster.as_ref().unwrap();
    assert_eq!(
        cluster.server.as_deref(),
        Some("https://k8s.example.org:6443")
    );
    assert_eq!(
        kc.contexts[0]
            .context
            .as_ref()
            .unwrap()
            .namespace
            .as_deref(),
        Some("alice")
    );
}

/// A kubeconfig whose server is `addr`.
fn kubeconfig_for(dir: &std::path::Path, addr: std::net::SocketAddr) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://{addr}\n\
             users:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: x\n  context:\n    cluster: c\n    \
             user: u\ncurrent-context: x\n"
        ),
    )
    .unwrap();
    path
}

async fn assert_unavailable_within(kube: &Kube, limit: Duration) {
    let t = Instant::now();
    let err = kube.health().await.unwrap_err();
    assert!(matches!(err, BackendError::Unavailable(_)), "{err:?}");
    let t2 = Instant::now();
    let err = kube
        .create(&spec("alice", "web", &[80], "c"))
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::Unavailable(_)), "{err:?}");
    assert!(t.elapsed() < limit * 2, "took {:?}", t.elapsed());
    assert!(t2.elapsed() < limit, "took {:?}", t2.elapsed());
    println!("{err}");
}

#[tokio::test]
async fn a_closed_port_is_unavailable_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let kube = Kube::new(KubeSettings {
        kubeconfig: Some(kubeconfig_for(dir.path(), addr)),
        ..Default::default()
    })
    .await
    .expect("made without the cluster");
    assert_unavailable_within(&kube, Duration::from_secs(2)).await;
    let err = kube.health().await.unwrap_err().to_string();
    assert!(err.contains(&addr.to_string()), "{err}");
}

#[tokio::test]
async fn a_server_that_never_answers_is_unavailable_after_the_call_timeout() {
    let dir = tempfile::tempdir().unwrap();
    // Accepts connections (the kernel does) and never reads or answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let kube = Kube::new(KubeSettings {
        kubeconfig: Some(kubeconfig_for(dir.path(), silent.local_addr().unwrap())),
        call_timeout_secs: 1,
        ..Default::default()
    })
    .await
    .unwrap();
    let t = Instant::now();
    assert_unavailable_within(&kube, Duration::from_secs(3)).await;
    assert!(t.elapsed() >= Duration::from_secs(1));
}

#[tokio::test]
async fn the_clusters_ca_goes_into_kubeconfigs() {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    // Any real certificate will do: the stand-in serves plain HTTP.
    let bundle = std::fs::read_to_string("/etc/ssl/certs/ca-certificates.crt")
        .expect("Debian's ca-certificates");
    let end = "-----END CERTIFICATE-----";
    let ca = &bundle[..bundle.find(end).unwrap() + end.len()];
    let server = KubeApiServer::start().await;
    let admin = server.admin_kubeconfig().replace(
        "    server: ",
        &format!(
            "    certificate-authority-data: {}\n    server: ",
            b64.encode(ca)
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, admin).unwrap();
    let kube = Kube::new(KubeSettings {
        kubeconfig: Some(path),
        ..Default::default()
    })
    .await
    .unwrap();
    let yaml = kube
        .kubeconfig(&user("alice"), Role::Student, &[])
        .await
        .unwrap();
    let kc = Kubeconfig::from_yaml(&yaml).unwrap();
    let data = kc.clusters[0]
        .cluster
        .as_ref()
        .unwrap()
        .certificate_authority_data
        .clone()
        .expect("the CA is passed on");
    let pem = String::from_utf8(b64.decode(data).unwrap()).unwrap();
    let squeeze = |s: &str| s.split_whitespace().collect::<String>();
    assert_eq!(squeeze(&pem), squeeze(ca));
    // And the user's client accepts it.
    let alice = client_from_yaml(&yaml).await;
    Api::<Pod>::default_namespaced(alice)
        .list(&ListParams::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_missing_kubeconfig_is_named() {
    let err = Kube::new(KubeSettings {
        kubeconfig: Some("/nonexistent/kubeconfig".into()),
        ..Default::default()
    })
    .await
    .err()
    .expect("refused");
    assert!(matches!(err, BackendError::Policy(_)), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/kubeconfig"), "{err}");
    let err = Kube::new(KubeSettings {
        token_expiry_secs: 60,
        ..Default::default()
    })
    .await
    .err()
    .expect("refused");
    assert!(err.to_string().contains("token_expiry_secs"), "{err}");
}

/// `ab-c`'s `web` and `ab`'s `c-web` share the full name `ab-c-web` (issue 12, item 9):
/// each lives in its owner's namespace, and each call reaches its own only.
#[tokio::test]
async fn one_full_name_in_two_namespaces() {
    let s = setup(|_| {}).await;
    let first = spec("ab-c", "web", &[80], "create-a");
    let second = spec("ab", "c-web", &[80], "create-b");
    assert_eq!(first.name, second.name);
    s.kube.create(&first).await.unwrap();
    s.kube.create(&second).await.unwrap();
    assert!(s.server.object("deployments", "ab-c", "ab-c-web").is_some());
    assert!(s.server.object("deployments", "ab", "ab-c-web").is_some());

    assert_eq!(s.kube.inspect(&first.key()).await.unwrap().owner, "ab-c");
    assert_eq!(s.kube.inspect(&second.key()).await.unwrap().owner, "ab");
    let stopped = s.kube.stop(&second.key()).await.unwrap();
    assert_eq!(stopped.owner, "ab");
    assert_eq!(stopped.state, KubeState::Stopped);
    assert_eq!(
        s.kube.inspect(&first.key()).await.unwrap().state,
        KubeState::Running,
        "the other owner's container runs on"
    );

    s.kube.remove(&second.key()).await.unwrap();
    for plural in ["deployments", "services", "ingresses"] {
        assert!(
            s.server.object(plural, "ab", "ab-c-web").is_none(),
            "{plural}"
        );
        assert!(
            s.server.object(plural, "ab-c", "ab-c-web").is_some(),
            "the other owner's {plural} stays"
        );
    }
    assert_eq!(s.kube.inspect(&first.key()).await.unwrap().owner, "ab-c");
}
