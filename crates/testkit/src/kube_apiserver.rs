//! An in-process stand-in for a Kubernetes API server, for testing the Kubernetes backend
//! where no cluster can be had.
//!
//! It serves plain HTTP on a loopback port and keeps the objects the backend uses in
//! memory, following the API conventions the client relies on: paths by API group and
//! namespace, `Status` objects for errors (NotFound, AlreadyExists, Forbidden, Invalid),
//! `<Kind>List` answers, server-set `uid`, `resourceVersion`, `generation` and
//! `creationTimestamp`, create, get, list with label selectors, server-side apply, merge
//! patch, replace and delete. Small controllers play the cluster's part: a Deployment gets
//! pods and a settled status, a service-account token Secret gets its token, deleting a
//! namespace deletes what is in it, and a foreground deletion lingers briefly until the
//! dependents are gone.
//!
//! Authentication and authorization are real enough to test what a user's token can do:
//! the admin token may do everything, while tokens from the TokenRequest API (and from
//! long-lived token Secrets) act as `system:serviceaccount:<ns>:<name>` and are judged by
//! the Roles and RoleBindings stored here.
//!
//! Not modelled: watches, field selectors, `managedFields` (apply approximates field
//! ownership: per manager it remembers the last applied configuration, removes what that
//! manager dropped, and treats lists as atomic), strategic merge (treated as a merge
//! patch), ReplicaSets (pods belong to their Deployment directly), ClusterRoles and
//! ClusterRoleBindings, admission (quotas, limit ranges, pod security), schemas (only
//! names, label values and the Deployment selector's immutability are checked), dry runs,
//! optimistic concurrency on patches, and the Terminating phase of a namespace (it and
//! its contents go at once).

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a foreground deletion keeps its object (with `deletionTimestamp` set) before
/// the dependents and the object are gone, and how long a token Secret waits for its
/// token: long enough that a client that does not wait notices.
const CONTROLLER_DELAY: Duration = Duration::from_millis(300);

/// One kind of object the stand-in knows.
struct Kind {
    /// `""` for the core group.
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
}

impl Kind {
    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps`, as error messages name resources.
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

const KINDS: &[Kind] = &[
    Kind {
        group: "",
        version: "v1",
        plural: "namespaces",
        kind: "Namespace",
        namespaced: false,
    },
    Kind {
        group: "",
        version: "v1",
        plural: "pods",
        kind: "Pod",
        namespaced: true,
    },
    Kind {
        group: "",
        version: "v1",
        plural: "services",
        kind: "Service",
        namespaced: true,
    },
    Kind {
        group: "",
        version: "v1",
        plural: "serviceaccounts",
        kind: "ServiceAccount",
        namespaced: true,
    },
    Kind {
        group: "",
        version: "v1",
        plural: "secrets",
        kind: "Secret",
        namespaced: true,
    },
    Kind {
        group: "",
        version: "v1",
        plural: "resourcequotas",
        kind: "ResourceQuota",
        namespaced: true,
    },
    Kind {
        group: "",
        version: "v1",
        plural: "limitranges",
        kind: "LimitRange",
        namespaced: true,
    },
    Kind {
        group: "",
        version: "v1",
        plural: "persistentvolumeclaims",
        kind: "PersistentVolumeClaim",
        namespaced: true,
    },
    Kind {
        group: "apps",
        version: "v1",
        plural: "deployments",
        kind: "Deployment",
        namespaced: true,
    },
    Kind {
        group: "networking.k8s.io",
        version: "v1",
        plural: "ingresses",
        kind: "Ingress",
        namespaced: true,
    },
    Kind {
        group: "networking.k8s.io",
        version: "v1",
        plural: "networkpolicies",
        kind: "NetworkPolicy",
        namespaced: true,
    },
    Kind {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "roles",
        kind: "Role",
        namespaced: true,
    },
    Kind {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "rolebindings",
        kind: "RoleBinding",
        namespaced: true,
    },
];

fn kind_index(plural: &str) -> usize {
    KINDS
        .iter()
        .position(|k| k.plural == plural)
        .expect("a known kind")
}

/// Objects by (kind index, namespace, name); cluster-scoped objects have namespace "".
type Key = (usize, String, String);

#[derive(Default)]
struct Store {
    objects: BTreeMap<Key, Value>,
    resource_version: u64,
    /// Tokens issued by the TokenRequest API: token → (namespace, account, expiry).
    tokens: HashMap<String, (String, String, u64)>,
    /// The last configuration each field manager applied to each object.
    applied: HashMap<(Key, String), Value>,
    /// Images whose pulls fail, as the test says.
    unpullable: HashSet<String>,
}

impl Store {
    fn forget(&mut self, key: &Key) {
        self.objects.remove(key);
        self.applied.retain(|(k, _), _| k != key);
    }
}

struct Inner {
    store: Mutex<Store>,
    admin_token: String,
}

/// A running stand-in API server; stops when dropped.
pub struct KubeApiServer {
    inner: Arc<Inner>,
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for KubeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl KubeApiServer {
    /// Starts serving on a free loopback port. Needs a Tokio runtime.
    pub async fn start() -> Self {
        let inner = Arc::new(Inner {
            store: Mutex::new(Store::default()),
            admin_token: format!("admin-{}", uuid::Uuid::new_v4().simple()),
        });
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { inner, url, task }
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The bearer token allowed everything, as the backend's own account is.
    pub fn admin_token(&self) -> &str {
        &self.inner.admin_token
    }

    /// A kubeconfig for the admin.
    pub fn admin_kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: standin\n  cluster:\n    server: {}\n\
             users:\n- name: admin\n  user:\n    token: {}\ncontexts:\n- name: admin\n  context:\n    \
             cluster: standin\n    user: admin\ncurrent-context: admin\n",
            self.url, self.inner.admin_token
        )
    }

    /// From now on pods of this image do not start: their container waits with
    /// `ErrImagePull`, as when a registry refuses the pull.
    pub fn fail_pulls_of(&self, image: &str) {
        self.inner
            .store
            .lock()
            .unwrap()
            .unpullable
            .insert(image.to_string());
    }

    /// The stored object, as a client with every right would get it.
    pub fn object(&self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let store = self.inner.store.lock().unwrap();
        store
            .objects
            .get(&(kind_index(plural), namespace.to_string(), name.to_string()))
            .cloned()
    }
}

// --- errors ----------------------------------------------------------------------------

fn status(code: u16, reason: &str, message: String, details: Value) -> Response {
    let mut body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    });
    if !details.is_null() {
        body["details"] = details;
    }
    (StatusCode::from_u16(code).unwrap(), axum::Json(body)).into_response()
}

fn not_found(kind: &Kind, name: &str) -> Response {
    status(
        404,
        "NotFound",
        format!("{} \"{name}\" not found", kind.qualified()),
        json!({ "name": name, "group": kind.group, "kind": kind.plural }),
    )
}

fn bad_request(message: impl Into<String>) -> Response {
    status(400, "BadRequest", message.into(), Value::Null)
}

fn invalid(kind: &Kind, name: &str, message: String) -> Response {
    status(
        422,
        "Invalid",
        format!("{} \"{name}\" is invalid: {message}", kind.kind),
        json!({ "name": name, "group": kind.group, "kind": kind.kind }),
    )
}

// --- requests --------------------------------------------------------------------------

/// Who is asking.
enum Identity {
    Admin,
    ServiceAccount { namespace: String, name: String },
}

/// What a request is about, as authorization sees it.
struct Target<'a> {
    kind: &'a Kind,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

async fn handle(
    AxumState(inner): AxumState<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(identity) = authenticate(&inner, &headers) else {
        return status(401, "Unauthorized", "Unauthorized".into(), Value::Null);
    };
    let path = uri.path().trim_end_matches('/');
    let query: HashMap<String, String> = uri
        .query()
        .map(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
                .map(|(k, v)| (k.to_string(), percent_decode(v)))
                .collect()
        })
        .unwrap_or_default();
    if path == "/version" {
        return axum::Json(json!({
            "major": "1", "minor": "33", "gitVersion": "v1.33.0-wm-standin",
            "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
            "buildDate": "2025-04-23T00:00:00Z", "goVersion": "go1.24.2", "compiler": "gc",
            "platform": "linux/amd64",
        }))
        .into_response();
    }
    let Some(target) = route(path) else {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource".into(),
            Value::Null,
        );
    };
    let verb = match (&method, target.name.is_some()) {
        (&Method::GET, false) if query.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            "watch"
        }
        (&Method::GET, false) => "list",
        (&Method::GET, true) => "get",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => {
            return status(
                405,
                "MethodNotAllowed",
                format!("{method} is not supported"),
                Value::Null,
            )
        }
    };
    if let Identity::ServiceAccount { namespace, name } = &identity {
        if !authorized(&inner, namespace, name, verb, &target) {
            let resource = match &target.subresource {
                Some(s) => format!("{}/{s}", target.kind.plural),
                None => target.kind.plural.to_string(),
            };
            let mut message = format!(
                "{}{} is forbidden: User \"system:serviceaccount:{namespace}:{name}\" cannot \
                 {verb} resource \"{resource}\" in API group \"{}\"",
                target.kind.qualified(),
                target
                    .name
                    .as_deref()
                    .map(|n| format!(" \"{n}\""))
                    .unwrap_or_default(),
                target.kind.group,
            );
            match &target.namespace {
                Some(ns) => message.push_str(&format!(" in the namespace \"{ns}\"")),
                None => message.push_str(" at the cluster scope"),
            }
            return status(
                403,
                "Forbidden",
                message,
                json!({ "name": target.name, "group": target.kind.group, "kind": target.kind.plural }),
            );
        }
    }
    if verb == "watch" {
        return bad_request("watch is not supported by the stand-in API server");
    }
    // Better refused than written for real.
    if query.contains_key("dryRun") {
        return bad_request("dry runs are not supported by the stand-in API server");
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    match (target.subresource.as_deref(), verb) {
        (None, "list") => list(&inner, &target, &query),
        (None, "get") => get(&inner, &target),
        (None, "create") => create(&inner, &target, &body),
        (None, "update") => replace(&inner, &target, &body),
        (None, "patch") => patch(&inner, &target, &content_type, &query, &body),
        (None, "delete") => delete(&inner, &target, &body),
        (Some(sub), _) => subresource(&inner, &target, sub, verb, &query, &body),
        _ => status(
            405,
            "MethodNotAllowed",
            format!("{verb} is not supported"),
            Value::Null,
        ),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits `/api/v1/...` and `/apis/<group>/<version>/...` into what the request is about.
fn route(path: &str) -> Option<Target<'static>> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let find = |plural: &str| {
        KINDS
            .iter()
            .find(|k| k.group == group && k.version == version && k.plural == plural)
    };
    let target = |kind, namespace: Option<&str>, name: Option<&str>, sub: Option<&str>| {
        Some(Target {
            kind,
            namespace: namespace.map(str::to_string),
            name: name.map(str::to_string),
            subresource: sub.map(str::to_string),
        })
    };
    match rest {
        [plural] => target(find(plural)?, None, None, None),
        ["namespaces", name] if group.is_empty() => {
            target(find("namespaces")?, None, Some(name), None)
        }
        ["namespaces", ns, plural] => {
            target(find(plural).filter(|k| k.namespaced)?, Some(ns), None, None)
        }
        ["namespaces", ns, plural, name] => target(
            find(plural).filter(|k| k.namespaced)?,
            Some(ns),
            Some(name),
            None,
        ),
        ["namespaces", ns, plural, name, sub] => target(
            find(plural).filter(|k| k.namespaced)?,
            Some(ns),
            Some(name),
            Some(sub),
        ),
        _ => None,
    }
}

// --- authentication and authorization --------------------------------------------------

fn authenticate(inner: &Inner, headers: &HeaderMap) -> Option<Identity> {
    let token = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    if token == inner.admin_token {
        return Some(Identity::Admin);
    }
    let store = inner.store.lock().unwrap();
    let account_exists = |ns: &str, name: &str| {
        store.objects.contains_key(&(
            kind_index("serviceaccounts"),
            ns.to_string(),
            name.to_string(),
        ))
    };
    if let Some((ns, name, expiry)) = store.tokens.get(token) {
        // Tokens are bound to their account: gone with it, and gone when expired.
        if *expiry > now_secs() && account_exists(ns, name) {
            return Some(Identity::ServiceAccount {
                namespace: ns.clone(),
                name: name.clone(),
            });
        }
        return None;
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(token);
    store
        .objects
        .iter()
        .filter(|((k, _, _), _)| *k == kind_index("secrets"))
        .map(|(_, s)| s)
        .find(|s| {
            s["type"] == "kubernetes.io/service-account-token"
                && s["data"]["token"] == encoded.as_str()
        })
        .and_then(|s| {
            let ns = s["metadata"]["namespace"].as_str()?;
            let name =
                s["metadata"]["annotations"]["kubernetes.io/service-account.name"].as_str()?;
            account_exists(ns, name).then(|| Identity::ServiceAccount {
                namespace: ns.to_string(),
                name: name.to_string(),
            })
        })
}

/// RBAC as the real authorizer does it for namespaced Roles: some RoleBinding in the
/// target namespace names this account and refers to a Role with a rule allowing the
/// verb on the resource (or `resource/subresource`) in its API group.
fn authorized(inner: &Inner, sa_ns: &str, sa: &str, verb: &str, target: &Target) -> bool {
    let Some(ns) = &target.namespace else {
        return false;
    };
    let resource = match &target.subresource {
        Some(s) => format!("{}/{s}", target.kind.plural),
        None => target.kind.plural.to_string(),
    };
    let store = inner.store.lock().unwrap();
    let has = |list: &Value, want: &str| {
        list.as_array()
            .is_some_and(|l| l.iter().any(|v| v == want || v == "*"))
    };
    store
        .objects
        .range((kind_index("rolebindings"), ns.clone(), String::new())..)
        .take_while(|((k, n, _), _)| *k == kind_index("rolebindings") && n == ns)
        .map(|(_, b)| b)
        .filter(|b| {
            b["subjects"].as_array().is_some_and(|subjects| {
                subjects.iter().any(|s| {
                    s["kind"] == "ServiceAccount"
                        && s["name"] == sa
                        && s["namespace"].as_str().unwrap_or(ns) == sa_ns
                })
            })
        })
        .filter(|b| b["roleRef"]["kind"] == "Role")
        .filter_map(|b| {
            let role = b["roleRef"]["name"].as_str()?;
            store
                .objects
                .get(&(kind_index("roles"), ns.clone(), role.to_string()))
        })
        .flat_map(|role| role["rules"].as_array().cloned().unwrap_or_default())
        .any(|rule| {
            has(&rule["apiGroups"], target.kind.group)
                && has(&rule["resources"], &resource)
                && has(&rule["verbs"], verb)
                && match (rule["resourceNames"].as_array(), &target.name) {
                    (None, _) => true,
                    (Some(names), _) if names.is_empty() => true,
                    (Some(names), Some(n)) => names.iter().any(|v| v == n.as_str()),
                    (Some(_), None) => false,
                }
        })
}

// --- label selectors -------------------------------------------------------------------

/// One requirement of a label selector.
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

fn parse_selector(s: &str) -> Result<Vec<Requirement>, String> {
    // Split on commas outside parentheses: `a in (x,y),b=c`.
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&s[start..]);
    let set = |v: &str| -> Result<Vec<String>, String> {
        let v = v.trim();
        let inner = v
            .strip_prefix('(')
            .and_then(|v| v.strip_suffix(')'))
            .ok_or_else(|| format!("expected a set in parentheses, found {v:?}"))?;
        Ok(inner.split(',').map(|x| x.trim().to_string()).collect())
    };
    terms
        .into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            Ok(if let Some(key) = t.strip_prefix('!') {
                Requirement::NotExists(key.trim().to_string())
            } else if let Some((k, v)) = t.split_once("!=") {
                Requirement::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = t.split_once("==") {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = t.split_once('=') {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = t.split_once(" notin ") {
                Requirement::NotIn(k.trim().into(), set(v)?)
            } else if let Some((k, v)) = t.split_once(" in ") {
                Requirement::In(k.trim().into(), set(v)?)
            } else if t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            {
                Requirement::Exists(t.to_string())
            } else {
                return Err(format!("unable to parse requirement: {t:?}"));
            })
        })
        .collect()
}

fn matches(requirements: &[Requirement], labels: &Value) -> bool {
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    requirements.iter().all(|r| match r {
        Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
        Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
        Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
        Requirement::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
        Requirement::Exists(k) => get(k).is_some(),
        Requirement::NotExists(k) => get(k).is_none(),
    })
}

// --- the verbs -------------------------------------------------------------------------

fn ok(code: StatusCode, object: &Value) -> Response {
    (code, axum::Json(object.clone())).into_response()
}

fn key_of(target: &Target) -> Key {
    (
        kind_index(target.kind.plural),
        target.namespace.clone().unwrap_or_default(),
        target.name.clone().unwrap_or_default(),
    )
}

fn list(inner: &Inner, target: &Target, query: &HashMap<String, String>) -> Response {
    let selector = match parse_selector(query.get("labelSelector").map_or("", String::as_str)) {
        Ok(s) => s,
        Err(e) => return bad_request(e),
    };
    if query.contains_key("fieldSelector") {
        return bad_request("field selectors are not supported by the stand-in API server");
    }
    let store = inner.store.lock().unwrap();
    let k = kind_index(target.kind.plural);
    let items: Vec<Value> = store
        .objects
        .iter()
        .filter(|((kk, ns, _), _)| *kk == k && target.namespace.as_ref().is_none_or(|t| t == ns))
        .filter(|(_, o)| matches(&selector, &o["metadata"]["labels"]))
        .map(|(_, o)| {
            // Items of a list carry no kind and apiVersion: the list says them once.
            let mut o = o.clone();
            if let Some(m) = o.as_object_mut() {
                m.remove("kind");
                m.remove("apiVersion");
            }
            o
        })
        .collect();
    ok(
        StatusCode::OK,
        &json!({
            "kind": format!("{}List", target.kind.kind),
            "apiVersion": target.kind.api_version(),
            "metadata": { "resourceVersion": store.resource_version.to_string() },
            "items": items,
        }),
    )
}

fn get(inner: &Inner, target: &Target) -> Response {
    let store = inner.store.lock().unwrap();
    match store.objects.get(&key_of(target)) {
        Some(o) => ok(StatusCode::OK, o),
        None => not_found(target.kind, target.name.as_deref().unwrap_or_default()),
    }
}

/// Checks a new or changed object's identity and the few rules we validate, and fills
/// what the server sets. `old` is the stored object it replaces.
fn admit(
    store: &mut Store,
    target: &Target,
    mut object: Value,
    old: Option<&Value>,
) -> Result<Value, Box<Response>> {
    let kind = target.kind;
    if !object.is_object() {
        return Err(Box::new(bad_request("the body is not an object")));
    }
    if object["kind"] != kind.kind || object["apiVersion"] != kind.api_version().as_str() {
        return Err(Box::new(bad_request(format!(
            "the body is a {} {}, not a {} {}",
            object["apiVersion"],
            object["kind"],
            kind.api_version(),
            kind.kind
        ))));
    }
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    let name = match (&target.name, object["metadata"]["name"].as_str()) {
        (Some(path), Some(body)) if path != body => {
            return Err(Box::new(bad_request(format!(
                "the name of the object ({body}) does not match the name on the URL ({path})"
            ))))
        }
        (_, Some(body)) => body.to_string(),
        (Some(path), None) => path.clone(),
        (None, None) => match object["metadata"]["generateName"].as_str() {
            Some(prefix) => format!("{prefix}{}", random_suffix()),
            None => {
                return Err(Box::new(invalid(
                    kind,
                    "",
                    "metadata.name: Required value: name or generateName is required".into(),
                )))
            }
        },
    };
    let name_ok = match kind.plural {
        "namespaces" | "services" => is_dns_label(&name),
        _ => name.len() <= 253 && name.split('.').all(is_dns_label),
    };
    if !name_ok {
        return Err(Box::new(invalid(
            kind,
            &name,
            format!("metadata.name: Invalid value: {name:?}: must be a lowercase RFC 1123 name"),
        )));
    }
    if kind.namespaced {
        let ns = target.namespace.clone().unwrap_or_default();
        match object["metadata"]["namespace"].as_str() {
            Some(body) if body != ns => {
                return Err(Box::new(bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                )))
            }
            _ => object["metadata"]["namespace"] = ns.clone().into(),
        }
        if !store
            .objects
            .contains_key(&(kind_index("namespaces"), String::new(), ns.clone()))
        {
            return Err(Box::new(status(
                404,
                "NotFound",
                format!("namespaces \"{ns}\" not found"),
                json!({ "name": ns, "kind": "namespaces" }),
            )));
        }
    }
    if let Some(labels) = object["metadata"]["labels"].as_object() {
        for (k, v) in labels {
            let v = v.as_str().unwrap_or("\u{0}");
            if !is_label_value(v) {
                return Err(Box::new(invalid(
                    kind,
                    &name,
                    format!("metadata.labels: Invalid value: {v:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"),
                )));
            }
            let k_name = k.rsplit('/').next().unwrap_or_default();
            if k_name.is_empty() || !is_label_value(k_name) {
                return Err(Box::new(invalid(
                    kind,
                    &name,
                    format!("metadata.labels: Invalid value: {k:?}: not a label key"),
                )));
            }
        }
    }
    if let (Some(old), "deployments") = (old, kind.plural) {
        if old["spec"]["selector"] != object["spec"]["selector"] {
            return Err(Box::new(invalid(
                kind,
                &name,
                "spec.selector: Invalid value: field is immutable".into(),
            )));
        }
    }
    store.resource_version += 1;
    let meta = object["metadata"].as_object_mut().expect("checked above");
    meta.insert("name".into(), name.into());
    meta.remove("generateName");
    meta.insert(
        "resourceVersion".into(),
        store.resource_version.to_string().into(),
    );
    match old {
        Some(old) => {
            for k in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "finalizers",
            ] {
                match old["metadata"].get(k) {
                    Some(v) => meta.insert(k.into(), v.clone()),
                    None => meta.remove(k),
                };
            }
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
            let changed = object.get("spec") != old.get("spec");
            object["metadata"]["generation"] = (generation + i64::from(changed)).into();
            if object.get("status").is_none() {
                if let Some(s) = old.get("status") {
                    object["status"] = s.clone();
                }
            }
        }
        None => {
            meta.insert("uid".into(), uuid::Uuid::new_v4().to_string().into());
            meta.insert("creationTimestamp".into(), timestamp(now_secs()).into());
            meta.insert("generation".into(), 1.into());
        }
    }
    defaults(store, kind, &mut object, old.is_none());
    Ok(object)
}

/// What the API server and the cluster's controllers fill in at once.
fn defaults(store: &Store, kind: &Kind, object: &mut Value, created: bool) {
    match kind.plural {
        "namespaces" => {
            let name = object["metadata"]["name"].clone();
            object["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
            object["spec"] = json!({ "finalizers": ["kubernetes"] });
            if object["metadata"]["deletionTimestamp"].is_null() {
                object["status"] = json!({ "phase": "Active" });
            }
        }
        "services" => {
            if object["spec"]["type"].is_null() {
                object["spec"]["type"] = "ClusterIP".into();
            }
            if created || object["spec"]["clusterIP"].is_null() {
                let ip = format!(
                    "10.96.{}.{}",
                    store.resource_version / 250 % 250,
                    store.resource_version % 250 + 1
                );
                object["spec"]["clusterIP"] = ip.clone().into();
                object["spec"]["clusterIPs"] = json!([ip]);
            }
        }
        "deployments" if object["spec"]["replicas"].is_null() => {
            object["spec"]["replicas"] = 1.into();
        }
        _ => {}
    }
}

fn create(inner: &Arc<Inner>, target: &Target, body: &[u8]) -> Response {
    let object: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return bad_request(format!("the body is not JSON: {e}")),
    };
    let mut store = inner.store.lock().unwrap();
    let mut target_named = Target {
        kind: target.kind,
        namespace: target.namespace.clone(),
        name: None,
        subresource: None,
    };
    let object = match admit(&mut store, &target_named, object, None) {
        Ok(o) => o,
        Err(r) => return *r,
    };
    target_named.name = object["metadata"]["name"].as_str().map(str::to_string);
    let key = key_of(&target_named);
    if store.objects.contains_key(&key) {
        return status(
            409,
            "AlreadyExists",
            format!("{} \"{}\" already exists", target.kind.qualified(), key.2),
            json!({ "name": key.2, "group": target.kind.group, "kind": target.kind.plural }),
        );
    }
    store.objects.insert(key.clone(), object);
    after_write(inner, &mut store, &key);
    ok(StatusCode::CREATED, &store.objects[&key])
}

fn replace(inner: &Arc<Inner>, target: &Target, body: &[u8]) -> Response {
    let object: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return bad_request(format!("the body is not JSON: {e}")),
    };
    let key = key_of(target);
    let mut store = inner.store.lock().unwrap();
    let Some(old) = store.objects.get(&key).cloned() else {
        return not_found(target.kind, &key.2);
    };
    if let Some(rv) = object["metadata"]["resourceVersion"].as_str() {
        if rv != old["metadata"]["resourceVersion"] {
            return status(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{}\": the object has been modified; \
                     please apply your changes to the latest version and try again",
                    target.kind.qualified(),
                    key.2
                ),
                json!({ "name": key.2, "group": target.kind.group, "kind": target.kind.plural }),
            );
        }
    }
    match admit(&mut store, target, object, Some(&old)) {
        Ok(o) => {
            store.objects.insert(key.clone(), o);
            after_write(inner, &mut store, &key);
            ok(StatusCode::OK, &store.objects[&key])
        }
        Err(r) => *r,
    }
}

fn patch(
    inner: &Arc<Inner>,
    target: &Target,
    content_type: &str,
    query: &HashMap<String, String>,
    body: &[u8],
) -> Response {
    let key = key_of(target);
    let mut store = inner.store.lock().unwrap();
    let old = store.objects.get(&key).cloned();
    let (object, created) = match content_type {
        "application/apply-patch+yaml" => {
            if query.get("fieldManager").is_none_or(String::is_empty) {
                return bad_request("PATCH, application/apply-patch+yaml: fieldManager is required for apply requests");
            }
            let text = String::from_utf8_lossy(body);
            let applied: Value = match serde_saphyr::from_str(&text) {
                Ok(v) => v,
                Err(e) => return bad_request(format!("error decoding YAML: {e}")),
            };
            // Field ownership, roughly: what this manager applied before and leaves out
            // now goes, what it applies is set, and what others set stays. Lists are
            // atomic.
            let manager = (key.clone(), query["fieldManager"].clone());
            let mut object = old.clone().unwrap_or(Value::Null);
            if let Some(before) = store.applied.get(&manager) {
                remove_dropped(&mut object, before, &applied);
            }
            merge_patch(&mut object, &applied);
            store.applied.insert(manager, applied);
            (object, old.is_none())
        }
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
            let Some(old) = &old else {
                return not_found(target.kind, &key.2);
            };
            let p: Value = match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(e) => return bad_request(format!("the patch is not JSON: {e}")),
            };
            let mut merged = old.clone();
            merge_patch(&mut merged, &p);
            (merged, false)
        }
        other => {
            return status(
                415,
                "UnsupportedMediaType",
                format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {other:?})"),
                Value::Null,
            )
        }
    };
    match admit(&mut store, target, object, old.as_ref()) {
        Ok(o) => {
            store.objects.insert(key.clone(), o);
            after_write(inner, &mut store, &key);
            let code = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            ok(code, &store.objects[&key])
        }
        Err(r) => *r,
    }
}

/// Removes from `object` the fields that `before` set and `now` does not.
fn remove_dropped(object: &mut Value, before: &Value, now: &Value) {
    let (Some(o), Some(b)) = (object.as_object_mut(), before.as_object()) else {
        return;
    };
    for (k, bv) in b {
        match now.get(k) {
            None => {
                o.remove(k);
            }
            Some(nv) => {
                if let Some(ov) = o.get_mut(k) {
                    remove_dropped(ov, bv, nv);
                }
            }
        }
    }
}

/// RFC 7386.
fn merge_patch(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (_, Some(p)) => {
            *target = json!({});
            merge_patch(target, &Value::Object(p.clone()));
        }
        _ => *target = patch.clone(),
    }
}

fn delete(inner: &Arc<Inner>, target: &Target, body: &[u8]) -> Response {
    let options: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let key = key_of(target);
    let mut store = inner.store.lock().unwrap();
    let Some(mut object) = store.objects.get(&key).cloned() else {
        return not_found(target.kind, &key.2);
    };
    let foreground = options["propagationPolicy"] == "Foreground";
    match target.kind.plural {
        "namespaces" => {
            // The namespace controller empties it; here at once.
            store
                .objects
                .retain(|(k, ns, _), _| !(KINDS[*k].namespaced && *ns == key.2));
            store.tokens.retain(|_, (ns, _, _)| *ns != key.2);
            store.forget(&key);
            object["metadata"]["deletionTimestamp"] = timestamp(now_secs()).into();
            object["status"] = json!({ "phase": "Terminating" });
            ok(StatusCode::OK, &object)
        }
        "deployments" if foreground => {
            if object["metadata"]["deletionTimestamp"].is_null() {
                store.resource_version += 1;
                object["metadata"]["deletionTimestamp"] = timestamp(now_secs()).into();
                object["metadata"]["finalizers"] = json!(["foregroundDeletion"]);
                object["metadata"]["resourceVersion"] = store.resource_version.to_string().into();
                store.objects.insert(key.clone(), object.clone());
                let uid = object["metadata"]["uid"].clone();
                let inner = inner.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(CONTROLLER_DELAY).await;
                    let mut store = inner.store.lock().unwrap();
                    remove_pods_of(&mut store, &key.1, &uid);
                    store.forget(&key);
                });
            }
            ok(StatusCode::OK, &object)
        }
        _ => {
            store.forget(&key);
            if target.kind.plural == "deployments" {
                let uid = object["metadata"]["uid"].clone();
                remove_pods_of(&mut store, &key.1, &uid);
            }
            ok(StatusCode::OK, &object)
        }
    }
}

fn subresource(
    inner: &Arc<Inner>,
    target: &Target,
    sub: &str,
    verb: &str,
    query: &HashMap<String, String>,
    body: &[u8],
) -> Response {
    let key = key_of(target);
    let mut store = inner.store.lock().unwrap();
    let Some(object) = store.objects.get(&key).cloned() else {
        return not_found(target.kind, &key.2);
    };
    match (target.kind.plural, sub, verb) {
        ("serviceaccounts", "token", "create") => {
            let request: Value = match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(e) => return bad_request(format!("the body is not JSON: {e}")),
            };
            let seconds = request["spec"]["expirationSeconds"]
                .as_u64()
                .unwrap_or(3600);
            if seconds < 600 {
                return status(
                    422,
                    "Invalid",
                    format!("TokenRequest.authentication.k8s.io \"{}\" is invalid: spec.expirationSeconds: Invalid value: {seconds}: may not specify a duration less than 10 minutes", key.2),
                    json!({ "name": key.2, "group": "authentication.k8s.io", "kind": "TokenRequest" }),
                );
            }
            let token = format!("sa-{}", uuid::Uuid::new_v4().simple());
            let expiry = now_secs() + seconds;
            store
                .tokens
                .insert(token.clone(), (key.1.clone(), key.2.clone(), expiry));
            let audiences = match request["spec"]["audiences"].as_array() {
                Some(a) if !a.is_empty() => Value::Array(a.clone()),
                _ => json!(["https://kubernetes.default.svc.cluster.local"]),
            };
            ok(
                StatusCode::CREATED,
                &json!({
                    "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                    "metadata": { "name": key.2, "namespace": key.1, "creationTimestamp": timestamp(now_secs()) },
                    "spec": { "audiences": audiences, "expirationSeconds": seconds, "boundObjectRef": null },
                    "status": { "token": token, "expirationTimestamp": timestamp(expiry) },
                }),
            )
        }
        ("pods", "log", "get") => {
            let image = object["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap_or("");
            let lines = [
                format!("stand-in kubelet: started container of {image}"),
                format!("stand-in kubelet: pod {} is running", key.2),
            ];
            let tail = query
                .get("tailLines")
                .and_then(|t| t.parse::<usize>().ok())
                .unwrap_or(lines.len());
            let text: String = lines[lines.len().saturating_sub(tail)..]
                .iter()
                .map(|l| format!("{l}\n"))
                .collect();
            ([(header::CONTENT_TYPE, "text/plain")], text).into_response()
        }
        // The real server needs an upgrade to a streaming protocol here; being asked
        // without one, it answers as this does.
        ("pods", "exec", "create" | "get") => bad_request("Upgrade request required"),
        _ => status(
            404,
            "NotFound",
            "the server could not find the requested resource".into(),
            Value::Null,
        ),
    }
}

// --- controllers -----------------------------------------------------------------------

fn after_write(inner: &Arc<Inner>, store: &mut Store, key: &Key) {
    match KINDS[key.0].plural {
        "deployments" => reconcile_deployment(store, key),
        "secrets" => {
            let s = &store.objects[key];
            let account =
                s["metadata"]["annotations"]["kubernetes.io/service-account.name"].clone();
            if s["type"] == "kubernetes.io/service-account-token"
                && account.is_string()
                && s["data"]["token"].is_null()
            {
                let (inner, key) = (inner.clone(), key.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(CONTROLLER_DELAY).await;
                    let mut store = inner.store.lock().unwrap();
                    let sa_key = (
                        kind_index("serviceaccounts"),
                        key.1.clone(),
                        account.as_str().unwrap_or("").to_string(),
                    );
                    let Some(sa_uid) = store
                        .objects
                        .get(&sa_key)
                        .map(|a| a["metadata"]["uid"].clone())
                    else {
                        return;
                    };
                    store.resource_version += 1;
                    let rv = store.resource_version.to_string();
                    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
                    let token = format!("secret-{}", uuid::Uuid::new_v4().simple());
                    if let Some(s) = store.objects.get_mut(&key) {
                        s["data"] = json!({ "token": b64(&token), "namespace": b64(&key.1), "ca.crt": b64("") });
                        s["metadata"]["annotations"]["kubernetes.io/service-account.uid"] = sa_uid;
                        s["metadata"]["resourceVersion"] = rv.into();
                    }
                });
            }
        }
        _ => {}
    }
}

fn remove_pods_of(store: &mut Store, ns: &str, owner_uid: &Value) {
    let pods = kind_index("pods");
    store.objects.retain(|(k, n, _), p| {
        !(*k == pods && n == ns && p["metadata"]["ownerReferences"][0]["uid"] == *owner_uid)
    });
}

/// The Deployment and ReplicaSet controllers and the kubelet in one: as many pods of the
/// current template as the spec asks, running unless their image cannot be pulled, and
/// the Deployment's status saying so.
fn reconcile_deployment(store: &mut Store, key: &Key) {
    let d = store.objects[key].clone();
    if !d["metadata"]["deletionTimestamp"].is_null() {
        return;
    }
    let uid = d["metadata"]["uid"].clone();
    let template = &d["spec"]["template"];
    let hash = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        template.to_string().hash(&mut h);
        format!("{:x}", h.finish() & 0xff_ffff_ffff)
    };
    let wanted = d["spec"]["replicas"].as_i64().unwrap_or(1).max(0) as usize;
    let pods = kind_index("pods");
    // Pods of an older template go (the Recreate strategy), then as many as wanted stay.
    store.objects.retain(|(k, n, _), p| {
        !(*k == pods
            && *n == key.1
            && p["metadata"]["ownerReferences"][0]["uid"] == uid
            && p["metadata"]["labels"]["pod-template-hash"] != hash.as_str())
    });
    let mine: Vec<Key> = store
        .objects
        .iter()
        .filter(|((k, n, _), p)| {
            *k == pods && *n == key.1 && p["metadata"]["ownerReferences"][0]["uid"] == uid
        })
        .map(|(k, _)| k.clone())
        .collect();
    for extra in mine.iter().skip(wanted) {
        store.objects.remove(extra);
    }
    let now = timestamp(now_secs());
    for _ in mine.len()..wanted {
        store.resource_version += 1;
        let name = format!("{}-{hash}-{}", key.2, random_suffix());
        let mut labels = template["metadata"]["labels"].clone();
        labels["pod-template-hash"] = hash.clone().into();
        let mut spec = template["spec"].clone();
        spec["nodeName"] = "standin-node".into();
        let containers = spec["containers"].as_array().cloned().unwrap_or_default();
        let pull_fails = containers.iter().any(|c| {
            c["image"]
                .as_str()
                .is_some_and(|i| store.unpullable.contains(i))
        });
        let statuses: Vec<Value> = containers
            .iter()
            .map(|c| {
                let state = if pull_fails {
                    json!({ "waiting": { "reason": "ErrImagePull", "message": format!("failed to pull image {}", c["image"]) } })
                } else {
                    json!({ "running": { "startedAt": now } })
                };
                json!({
                    "name": c["name"], "image": c["image"], "imageID": "",
                    "ready": !pull_fails, "started": !pull_fails, "restartCount": 0, "state": state,
                })
            })
            .collect();
        let ready = if pull_fails { "False" } else { "True" };
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": name, "namespace": key.1, "labels": labels,
                "uid": uuid::Uuid::new_v4().to_string(),
                "resourceVersion": store.resource_version.to_string(),
                "creationTimestamp": now, "generation": 1,
                "ownerReferences": [{
                    "apiVersion": "apps/v1", "kind": "Deployment", "name": key.2, "uid": uid,
                    "controller": true, "blockOwnerDeletion": true,
                }],
            },
            "spec": spec,
            "status": {
                "phase": if pull_fails { "Pending" } else { "Running" },
                "conditions": [{ "type": "Ready", "status": ready }],
                "containerStatuses": statuses,
                "podIP": "10.244.0.10", "hostIP": "192.0.2.1", "startTime": now,
            },
        });
        store.objects.insert((pods, key.1.clone(), name), pod);
    }
    let ready = store
        .objects
        .iter()
        .filter(|((k, n, _), p)| {
            *k == pods
                && *n == key.1
                && p["metadata"]["ownerReferences"][0]["uid"] == uid
                && p["status"]["phase"] == "Running"
        })
        .count();
    let mut status = Map::new();
    status.insert(
        "observedGeneration".into(),
        d["metadata"]["generation"].clone(),
    );
    // Zero counts are left out, as the real API does.
    for (field, n) in [
        ("replicas", wanted),
        ("updatedReplicas", wanted),
        ("readyReplicas", ready),
        ("availableReplicas", ready),
        ("unavailableReplicas", wanted - ready.min(wanted)),
    ] {
        if n > 0 {
            status.insert(field.into(), n.into());
        }
    }
    status.insert(
        "conditions".into(),
        json!([{
            "type": "Available",
            "status": if ready >= wanted { "True" } else { "False" },
            "reason": if ready >= wanted { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
            "lastUpdateTime": now, "lastTransitionTime": now,
        }]),
    );
    if let Some(d) = store.objects.get_mut(key) {
        d["status"] = Value::Object(status);
    }
}

// --- small things ----------------------------------------------------------------------

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    uuid::Uuid::new_v4().as_bytes()[..5]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// RFC 3339 in UTC to the second, as Kubernetes writes times.
fn timestamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The conventions clients rely on, checked over HTTP as a client sees them.
    #[tokio::test]
    async fn api_conventions() {
        let server = KubeApiServer::start().await;
        let http = reqwest::Client::new();
        let url = |p: &str| format!("{}{p}", server.url());
        let send = |req: reqwest::RequestBuilder| async {
            let r = req.bearer_auth(server.admin_token()).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        };

        let r = http.get(url("/api/v1/namespaces")).send().await.unwrap();
        assert_eq!(r.status(), 401);

        let (code, body) = send(http.get(url("/apis/apps/v1/namespaces/a/deployments/web"))).await;
        assert_eq!(code, 404);
        assert_eq!(
            body,
            json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "deployments.apps \"web\" not found", "reason": "NotFound", "code": 404,
                "details": { "name": "web", "group": "apps", "kind": "deployments" },
            })
        );

        let ns = json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "a" } });
        let (code, created) = send(http.post(url("/api/v1/namespaces")).json(&ns)).await;
        assert_eq!(code, 201);
        assert_eq!(
            created["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "a"
        );
        assert!(created["metadata"]["uid"].is_string());
        assert!(created["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z'));
        let (code, body) = send(http.post(url("/api/v1/namespaces")).json(&ns)).await;
        assert_eq!(
            (code, body["reason"].as_str()),
            (409, Some("AlreadyExists"))
        );

        // Server-side apply: 201 when it creates, 200 when it changes.
        let deployment = |replicas: i64| {
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": { "name": "web", "labels": { "app": "web", "tier": "front" } },
                "spec": {
                    "replicas": replicas,
                    "selector": { "matchLabels": { "app": "web" } },
                    "template": {
                        "metadata": { "labels": { "app": "web" } },
                        "spec": { "containers": [{ "name": "main", "image": "nginx" }] },
                    },
                },
            })
        };
        let apply = |body: Value| {
            http.patch(url(
                "/apis/apps/v1/namespaces/a/deployments/web?fieldManager=t&force=true",
            ))
            .header("content-type", "application/apply-patch+yaml")
            .body(body.to_string())
        };
        let (code, d) = send(apply(deployment(2))).await;
        assert_eq!(code, 201);
        assert_eq!(d["metadata"]["generation"], 1);
        assert_eq!(d["status"]["readyReplicas"], 2);
        let (code, d2) = send(apply(deployment(3))).await;
        assert_eq!(code, 200);
        assert_eq!(d2["metadata"]["generation"], 2);
        assert_eq!(d2["metadata"]["uid"], d["metadata"]["uid"]);
        assert_ne!(
            d2["metadata"]["resourceVersion"],
            d["metadata"]["resourceVersion"]
        );

        let (code, list) = send(
            http.get(url("/apis/apps/v1/deployments"))
                .query(&[("labelSelector", "app=web,tier!=back")]),
        )
        .await;
        assert_eq!(code, 200);
        assert_eq!(list["kind"], "DeploymentList");
        assert_eq!(list["apiVersion"], "apps/v1");
        assert!(list["metadata"]["resourceVersion"].is_string());
        assert_eq!(list["items"].as_array().unwrap().len(), 1);
        let (_, pods) = send(
            http.get(url("/api/v1/namespaces/a/pods"))
                .query(&[("labelSelector", "app=web")]),
        )
        .await;
        assert_eq!(pods["items"].as_array().unwrap().len(), 3);
        let (_, none) = send(
            http.get(url("/apis/apps/v1/deployments"))
                .query(&[("labelSelector", "tier=back")]),
        )
        .await;
        assert_eq!(none["items"], json!([]));

        // Deleting the namespace deletes what is in it.
        let (code, gone) = send(http.delete(url("/api/v1/namespaces/a"))).await;
        assert_eq!(
            (code, gone["status"]["phase"].as_str()),
            (200, Some("Terminating"))
        );
        assert!(server.object("deployments", "a", "web").is_none());
        let (_, pods) = send(http.get(url("/api/v1/pods"))).await;
        assert_eq!(pods["items"], json!([]));
    }

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(timestamp(1_767_225_599), "2025-12-31T23:59:59Z");
    }

    #[test]
    fn selectors() {
        let labels = json!({ "a": "b", "c": "d" });
        let m = |s: &str| matches(&parse_selector(s).unwrap(), &labels);
        assert!(m("a=b,c"));
        assert!(m("a==b, c!=x"));
        assert!(!m("a!=b"));
        assert!(m("!x,a in (z,b)"));
        assert!(!m("a notin (b)"));
        assert!(!m("x"));
        assert!(m(""));
        assert!(parse_selector("a in b").is_err());
    }

    #[test]
    fn merge_patches() {
        let mut t = json!({ "spec": { "replicas": 1, "x": 2 }, "keep": true });
        merge_patch(&mut t, &json!({ "spec": { "replicas": 0, "x": null } }));
        assert_eq!(t, json!({ "spec": { "replicas": 0 }, "keep": true }));
    }

    #[test]
    fn percent() {
        assert_eq!(
            percent_decode("wm.managed%3Dtrue%2Cwm.name%21%3Dx"),
            "wm.managed=true,wm.name!=x"
        );
        assert_eq!(percent_decode("a%2"), "a%2");
    }
}
