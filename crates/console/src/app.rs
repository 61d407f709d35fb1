//! Building and running the console: database, first admin account, container hosts,
//! router, background health checks and reconcile.

use crate::api;
use crate::audit::audit_mutations;
use crate::auth;
use crate::config::Config;
use crate::error::ApiError;
use crate::hosts::{Host, Hosts};
use crate::images;
use crate::metrics::{Metrics, RequestLabels, RouteLabels};
use crate::state::AppState;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::Router;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use wm_backend::ContainerBackend;
use wm_docker::DockerEngine;
use wm_domain::{Role, UserName};
use wm_store::Store;

/// Largest JSON body accepted.
pub const JSON_BODY_LIMIT: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the data directory {path}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Secret(#[from] crate::sealed::SealError),
    #[error("cannot open the database")]
    Store(#[from] wm_store::StoreError),
    #[error("cannot set up the admin account")]
    Admin(#[source] ApiError),
    #[error("directory settings: {0}")]
    Directory(String),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A console ready to serve, bound to its port.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

/// Builds the console of `wm serve`: the local Docker engine, in-process.
pub async fn build(config: Config) -> Result<Application, StartError> {
    let engine: Arc<dyn ContainerBackend> = Arc::new(DockerEngine::new(config.docker.clone()));
    let address = match &config.docker.address {
        Some(a) => a.clone(),
        None => default_link_address(&config.docker.host_name),
    };
    build_with_hosts(config, vec![(engine, address)]).await
}

/// Where `wm serve`'s links to published ports point unless `WM_HOST_ADDRESS` says: this
/// machine's primary IPv4 address, which students' PCs can reach and which is not the name
/// the console is normally browsed under (see `crate::origin`); the host name when the
/// machine has none.
///
/// The primary address is the source address of the default route, found by connecting a
/// UDP socket: that only asks the kernel for a route and sends nothing.
pub fn default_link_address(host_name: &str) -> String {
    let probe = || -> std::io::Result<std::net::IpAddr> {
        let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
        s.connect("203.0.113.1:9")?;
        Ok(s.local_addr()?.ip())
    };
    match probe() {
        Ok(ip) if !ip.is_loopback() && !ip.is_unspecified() => ip.to_string(),
        _ => host_name.to_string(),
    }
}

/// Builds the console of `wm console`: the docker agents of `WM_AGENTS`, no local engine.
pub async fn build_with_agents(config: Config) -> Result<Application, StartError> {
    if config.agents.is_empty() {
        return Err(crate::config::ConfigError::new(
            "wm console needs its agents in WM_AGENTS (h1=http://host1:8081 ...)",
        )
        .into());
    }
    let token = config.agent_token()?;
    let tls = config.agents_client_tls()?;
    let timeout = Duration::from_secs(config.docker.call_timeout_secs);
    let mut hosts: Vec<(Arc<dyn ContainerBackend>, String)> = Vec::new();
    for a in &config.agents {
        let remote = wm_agent::RemoteBackend::new(a, token, tls.clone(), timeout)
            .map_err(crate::config::ConfigError::new)?;
        hosts.push((Arc::new(remote), a.host().unwrap_or_else(|| a.id.clone())));
    }
    build_with_hosts(config, hosts).await
}

/// Builds the console around container hosts, each with the address its published
/// ports are reached at unless the host names one.
async fn build_with_hosts(
    config: Config,
    backends: Vec<(Arc<dyn ContainerBackend>, String)>,
) -> Result<Application, StartError> {
    let addresses: Vec<String> = backends.iter().map(|(_, a)| a.clone()).collect();
    crate::origin::check_public_url(&config, &addresses)?;
    crate::permissions::private_dir(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    let sealer = crate::sealed::Sealer::from_key_file(&config.secret_key_path())?;
    let sif_dir = config.data_dir.join("sif-cache");
    let sif_cache = crate::export::SifCache::open(sif_dir.clone(), config.sif_cache_max_bytes)
        .map_err(|source| StartError::DataDir {
            path: sif_dir.display().to_string(),
            source,
        })?;
    let database_url = config.database_url();
    let sqlite = crate::permissions::sqlite_path(&database_url).map(std::path::Path::to_path_buf);
    if let Some(db) = &sqlite {
        crate::permissions::sqlite_files(db).map_err(|source| StartError::DataDir {
            path: db.display().to_string(),
            source,
        })?;
    }
    let store = Store::connect(&database_url).await?;
    if let Some(db) = &sqlite {
        // The -wal and -shm that opening made, in case the file was looser before.
        crate::permissions::sqlite_files(db).map_err(|source| StartError::DataDir {
            path: db.display().to_string(),
            source,
        })?;
    }
    sealer.seal_plain_ci_tokens(&store).await?;
    ensure_admin(&store, &config)
        .await
        .map_err(StartError::Admin)?;
    let metrics = Arc::new(Metrics::default());
    let hosts = Hosts::new(
        backends
            .into_iter()
            .map(|(b, address)| Host::new(b, address, metrics.clone()))
            .collect(),
    );
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
    let directory = match &config.ldap {
        Some(settings) => Some(Arc::new(
            wm_ldap::Directory::new(settings.clone()).map_err(StartError::Directory)?,
        )),
        None => None,
    };
    let cluster = cluster(&config)
        .await?
        .map(|c| Arc::new(crate::kube::Gated::new(c)) as Arc<dyn wm_kube::Cluster>);
    let state = AppState {
        store,
        hosts: Arc::new(hosts),
        cluster,
        directory,
        catalog: Default::default(),
        sif_cache: Arc::new(sif_cache),
        login_limiter: Arc::new(crate::ratelimit::LoginLimiter::new(
            crate::ratelimit::LoginLimits {
                pair: config.login_rate_limit,
                user: config.login_user_rate_limit,
                address: config.login_address_rate_limit,
            },
        )),
        upload_files: Arc::new(tokio::sync::Semaphore::new(config.upload_max_open_files)),
        sealer: Arc::new(sealer),
        config: Arc::new(config),
        metrics,
    };
    Ok(Application {
        listener,
        router: router(state.clone()),
        state,
    })
}

/// The cluster of the configuration: a kubernetes agent, the cluster in-process, or none.
async fn cluster(config: &Config) -> Result<Option<Arc<dyn wm_kube::Cluster>>, StartError> {
    if let Some(url) = &config.kube_agent {
        let remote = wm_agent::kube::RemoteCluster::new(
            url,
            config.agent_token()?,
            config.agents_client_tls()?,
            Duration::from_secs(config.docker.call_timeout_secs),
        )
        .map_err(crate::config::ConfigError::new)?;
        return Ok(Some(Arc::new(remote)));
    }
    match &config.kube {
        Some(settings) => {
            let kube = wm_kube::Kube::new(settings.clone())
                .await
                .map_err(|e| crate::config::ConfigError::new(format!("kube: {e}")))?;
            Ok(Some(Arc::new(kube)))
        }
        None => Ok(None),
    }
}

/// Creates the local `admin` account on first start, or sets its password when one is
/// configured. A generated password is printed once, on standard error.
async fn ensure_admin(store: &Store, config: &Config) -> Result<(), ApiError> {
    let admin = UserName::parse("admin").expect("valid name");
    match &config.admin_password {
        Some(pw) => {
            let hash = auth::hash_password(pw.expose().to_string()).await?;
            store
                .upsert_local_user(&admin, Role::Admin, &hash, crate::now())
                .await?;
        }
        None if store.user("admin").await?.is_none() => {
            let pw = auth::random_password();
            let hash = auth::hash_password(pw.clone()).await?;
            store
                .upsert_local_user(&admin, Role::Admin, &hash, crate::now())
                .await?;
            eprintln!(
                "\nCreated the local account 'admin' with the password\n\n    {pw}\n\n\
                 It is shown only this once. Set WM_ADMIN_PASSWORD to choose another.\n"
            );
        }
        None => {}
    }
    Ok(())
}

fn router(state: AppState) -> Router {
    let upload_limit = state.config.upload_max_bytes + 1024 * 1024;
    let build_limit = state.config.build_context_max_bytes + 1024 * 1024;
    let api = Router::new()
        .route("/login", post(api::login))
        .route("/logout", post(api::logout))
        .route("/me", get(api::me))
        .route("/tokens", post(api::create_token).get(api::list_tokens))
        .route("/tokens/{id}", delete(api::delete_token))
        .route("/admin/users", post(api::create_user).get(api::list_users))
        .route("/admin/reconcile", post(api::admin_reconcile))
        .route("/admin/audit", get(api::admin_audit))
        .route("/admin/hosts", get(api::admin_hosts))
        .route(
            "/admin/hosts/{id}",
            axum::routing::patch(api::admin_patch_host),
        )
        .route(
            "/containers",
            post(api::create_container).get(api::list_containers),
        )
        .route(
            "/containers/{name}",
            get(api::get_container).delete(api::delete_container),
        )
        .route("/containers/{name}/start", post(api::start_container))
        .route("/containers/{name}/stop", post(api::stop_container))
        .route("/containers/{name}/exec", post(api::exec_container))
        .route(
            "/containers/{name}/files",
            post(api::upload_files).layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/containers/{name}/logs", get(api::container_logs))
        .route("/images", get(images::list_images))
        .route("/images/pull", post(images::pull_image))
        .route(
            "/images/build",
            post(images::build_image).layer(DefaultBodyLimit::max(build_limit)),
        )
        .route(
            "/ci",
            axum::routing::put(crate::ci::put_ci)
                .get(crate::ci::get_ci)
                .delete(crate::ci::delete_ci),
        )
        .route("/ci/gitlab-ci.yml", get(crate::ci::gitlab_ci_yml))
        .route("/kubeconfig", get(crate::kube::kubeconfig))
        .route("/images/{ref}/export", get(crate::export::export_image))
        .route("/images/{ref}/sif", post(crate::export::convert_to_sif))
        .route(
            "/images/{ref}",
            axum::routing::patch(images::patch_image).delete(images::delete_image),
        )
        .route("/openapi.json", get(api::openapi_json))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    Router::new()
        .nest("/api/v1", api)
        .merge(crate::web::router(&state))
        .route("/healthz", get(api::healthz))
        .route("/metrics", get(api::metrics))
        // Outside the API, a person in a browser is the likely reader.
        .fallback(crate::web::not_found_page)
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::origin::guard,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            audit_mutations,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            track_requests,
        ))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// Headers every answer carries, pages, API answers and errors alike: no sniffing of
/// content types, no referrer to other sites (a page's address can name a container),
/// and no framing by any site (clickjacking), by the old header and by CSP. The CSP
/// also keeps pages to their own stylesheet and script: the console has no inline ones.
async fn security_headers(req: Request, next: Next) -> Response {
    use axum::http::header::{
        CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
    };
    use axum::http::HeaderValue;
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'",
        ),
    );
    resp
}

/// The method as a metrics label: one of the standard methods, or `other`, so that
/// invented methods cannot add series.
fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; this")
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed("this endpoint does not take that method".into())
}

/// Counts and times every request by its route (not its path, which would make one
/// series per container). Every label takes its values from a bounded set: a standard
/// method or `other`, a route template or `unmatched`, a status code.
async fn track_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            method,
            route: route.clone(),
            status,
        })
        .inc();
    state
        .metrics
        .request_seconds
        .get_or_create(&RouteLabels { method, route })
        .observe(start.elapsed().as_secs_f64());
    tracing::debug!(
        status,
        elapsed_ms = start.elapsed().as_millis() as u64,
        "answered"
    );
    resp
}

impl Application {
    /// The port actually bound (the configured one, or the one chosen for port 0).
    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
            .port()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes. Reconciles with the host at once and then
    /// every configured interval.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let interval = Duration::from_secs(self.state.config.reconcile_interval_secs);
        // Health first, so that the first reconcile knows which hosts answer.
        self.state.hosts.check_all().await;
        let reconciler = tokio::spawn(crate::reconcile::run_periodically(
            self.state.clone(),
            interval,
        ));
        let watcher = tokio::spawn(crate::hosts::watch(
            self.state.clone(),
            Duration::from_secs(self.state.config.host_check_interval_secs),
        ));
        let events: Vec<_> = self
            .state
            .hosts
            .all()
            .iter()
            .map(|h| tokio::spawn(images::follow_events(self.state.clone(), h.clone())))
            .collect();
        // The peer address feeds the per-address login limit.
        let served = crate::serve::serve(
            self.listener,
            self.router,
            crate::serve::ServeLimits::from_config(&self.state.config.http),
            shutdown,
        )
        .await;
        reconciler.abort();
        watcher.abort();
        for e in events {
            e.abort();
        }
        served
    }
}
