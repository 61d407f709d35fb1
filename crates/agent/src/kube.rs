//! The kubernetes agent: a [`Cluster`] behind the same authenticated protocol as the
//! docker agents (`wm agent kubernetes`), and the console's client of it.

use crate::client::{path_segment, AgentEndpoint, Transport};
use crate::protocol::Health;
use crate::server::{authenticate, bad_request, AgentToken, Failure};
use async_trait::async_trait;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use wm_backend::BackendError;
use wm_domain::{ContainerKey, Role, ShortName, UserName};
use wm_kube::{Cluster, KubeContainer, KubeContainerSpec};

/// Some cluster calls wait for objects to go; the agent's answer comes after that.
const SLOW_CALL: Duration = Duration::from_secs(90);

/// The user's role, and the courses (ids, comma-separated) they are enrolled in. An
/// older agent ignores `courses` (its namespaces carry no course labels); an older
/// console leaves it out.
#[derive(Debug, Serialize, Deserialize)]
struct RoleQuery {
    role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    courses: Option<String>,
}

impl RoleQuery {
    fn new(role: Role, courses: &[String]) -> Self {
        Self {
            role,
            courses: (!courses.is_empty()).then(|| courses.join(",")),
        }
    }

    fn courses(&self) -> Vec<String> {
        self.courses
            .iter()
            .flat_map(|c| c.split(','))
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct TailQuery {
    tail: u32,
}

type Shared = State<Arc<dyn Cluster>>;
type Answer<T> = Result<Json<T>, Failure>;

fn container((owner, name): &(String, String)) -> Result<ContainerKey, Failure> {
    let owner = UserName::parse(owner).map_err(|e| bad_request(e.to_string()))?;
    let short = ShortName::parse(name).map_err(|e| bad_request(e.to_string()))?;
    ContainerKey::new(&owner, &short).map_err(|e| bad_request(e.to_string()))
}

fn user(name: &str) -> Result<UserName, Failure> {
    UserName::parse(name).map_err(|e| bad_request(e.to_string()))
}

/// The kubernetes agent's routes around `cluster`.
pub fn router(cluster: Arc<dyn Cluster>, token: AgentToken) -> Router {
    let v1 = Router::new()
        .route("/kube/health", get(health))
        .route("/kube/users/{user}", put(ensure_user))
        .route("/kube/users/{user}/kubeconfig", get(kubeconfig))
        .route("/kube/containers", post(create).get(list))
        .route(
            "/kube/containers/{owner}/{name}",
            get(inspect).delete(remove),
        )
        .route("/kube/containers/{owner}/{name}/start", post(start))
        .route("/kube/containers/{owner}/{name}/stop", post(stop))
        .route("/kube/containers/{owner}/{name}/logs", get(logs))
        .fallback(|| async { bad_request("no such agent endpoint").into_response() })
        .layer(axum::middleware::from_fn_with_state(token, authenticate));
    Router::new()
        .nest("/v1", v1)
        .route(
            "/healthz",
            get(|| async {
                Json(Health {
                    status: "ok".into(),
                    host: "kubernetes".into(),
                })
            }),
        )
        .with_state(cluster)
}

async fn health(State(c): Shared) -> Answer<String> {
    Ok(Json(c.health().await?))
}

async fn ensure_user(
    State(c): Shared,
    Path(name): Path<String>,
    Query(q): Query<RoleQuery>,
) -> Result<StatusCode, Failure> {
    c.ensure_user(&user(&name)?, q.role, &q.courses()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn kubeconfig(
    State(c): Shared,
    Path(name): Path<String>,
    Query(q): Query<RoleQuery>,
) -> Answer<String> {
    Ok(Json(
        c.kubeconfig(&user(&name)?, q.role, &q.courses()).await?,
    ))
}

async fn create(State(c): Shared, Json(spec): Json<KubeContainerSpec>) -> Answer<KubeContainer> {
    Ok(Json(c.create(&spec).await?))
}

async fn list(State(c): Shared) -> Answer<Vec<KubeContainer>> {
    Ok(Json(c.list().await?))
}

async fn inspect(State(c): Shared, Path(name): Path<(String, String)>) -> Answer<KubeContainer> {
    Ok(Json(c.inspect(&container(&name)?).await?))
}

async fn remove(
    State(c): Shared,
    Path(name): Path<(String, String)>,
) -> Result<StatusCode, Failure> {
    c.remove(&container(&name)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn start(State(c): Shared, Path(name): Path<(String, String)>) -> Answer<KubeContainer> {
    Ok(Json(c.start(&container(&name)?).await?))
}

async fn stop(State(c): Shared, Path(name): Path<(String, String)>) -> Answer<KubeContainer> {
    Ok(Json(c.stop(&container(&name)?).await?))
}

async fn logs(
    State(c): Shared,
    Path(name): Path<(String, String)>,
    Query(q): Query<TailQuery>,
) -> Answer<String> {
    Ok(Json(c.logs(&container(&name)?, q.tail).await?))
}

/// A cluster reached through its kubernetes agent.
pub struct RemoteCluster {
    t: Transport,
}

impl RemoteCluster {
    pub fn new(
        url: &str,
        token: &str,
        tls: Option<rustls::ClientConfig>,
        call_timeout: Duration,
    ) -> Result<Self, String> {
        let endpoint = AgentEndpoint {
            id: "kubernetes".into(),
            url: url.to_string(),
        };
        Ok(Self {
            t: Transport::new(&endpoint, token, tls, call_timeout)?,
        })
    }

    fn container_path(key: &ContainerKey, rest: &str) -> String {
        format!(
            "/kube/containers/{}/{}{rest}",
            path_segment(key.owner.as_str()),
            path_segment(key.short.as_str())
        )
    }
}

#[async_trait]
impl Cluster for RemoteCluster {
    async fn health(&self) -> Result<String, BackendError> {
        self.t
            .call(reqwest::Method::GET, "/kube/health", None::<&()>)
            .await
    }

    async fn ensure_user(
        &self,
        user: &UserName,
        role: Role,
        courses: &[String],
    ) -> Result<(), BackendError> {
        let path = format!("/kube/users/{}", path_segment(user.as_str()));
        let req = self
            .t
            .http
            .put(self.t.url(&path))
            .query(&RoleQuery::new(role, courses));
        self.t.send(req, Some(SLOW_CALL)).await.map(drop)
    }

    async fn create(&self, spec: &KubeContainerSpec) -> Result<KubeContainer, BackendError> {
        let req = self.t.http.post(self.t.url("/kube/containers")).json(spec);
        self.t.json(req, SLOW_CALL).await
    }

    async fn inspect(&self, name: &ContainerKey) -> Result<KubeContainer, BackendError> {
        self.t
            .call(
                reqwest::Method::GET,
                &Self::container_path(name, ""),
                None::<&()>,
            )
            .await
    }

    async fn list(&self) -> Result<Vec<KubeContainer>, BackendError> {
        self.t
            .call(reqwest::Method::GET, "/kube/containers", None::<&()>)
            .await
    }

    async fn start(&self, name: &ContainerKey) -> Result<KubeContainer, BackendError> {
        let req = self
            .t
            .http
            .post(self.t.url(&Self::container_path(name, "/start")));
        self.t.json(req, SLOW_CALL).await
    }

    async fn stop(&self, name: &ContainerKey) -> Result<KubeContainer, BackendError> {
        let req = self
            .t
            .http
            .post(self.t.url(&Self::container_path(name, "/stop")));
        self.t.json(req, SLOW_CALL).await
    }

    async fn remove(&self, name: &ContainerKey) -> Result<(), BackendError> {
        let req = self
            .t
            .http
            .delete(self.t.url(&Self::container_path(name, "")));
        self.t.send(req, Some(SLOW_CALL)).await.map(drop)
    }

    async fn logs(&self, name: &ContainerKey, tail: u32) -> Result<String, BackendError> {
        let req = self
            .t
            .http
            .get(self.t.url(&Self::container_path(name, "/logs")))
            .query(&TailQuery { tail });
        self.t.json(req, self.t.timeout).await
    }

    async fn kubeconfig(
        &self,
        user: &UserName,
        role: Role,
        courses: &[String],
    ) -> Result<String, BackendError> {
        let path = format!("/kube/users/{}/kubeconfig", path_segment(user.as_str()));
        let req = self
            .t
            .http
            .get(self.t.url(&path))
            .query(&RoleQuery::new(role, courses));
        self.t.json(req, SLOW_CALL).await
    }
}
