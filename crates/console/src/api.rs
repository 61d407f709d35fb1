//! The REST API v1 handlers and the OpenAPI document generated from them.

use crate::auth::{self, Admin, Caller, Scope, SESSION_COOKIE};
use crate::containers::{self, Container, CreateContainer, ExecCommand, ExecResult};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::images;
use crate::metrics::OutcomeLabels;
use crate::ratelimit::ClientAddr;
use crate::reconcile::{self, ReconcileReport};
use crate::state::AppState;
use axum::extract::multipart::{Field, MultipartRejection};
use axum::extract::{Multipart, Path, State};
use axum::http::header::{CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::io::Write;
use tokio::io::AsyncWriteExt;
use utoipa::{OpenApi, ToSchema};
use wm_domain::{Role, UserName};
use wm_store::{Token, TokenKind, User, UserSource};

const MAX_USERNAME_INPUT: usize = 256;
const MAX_PASSWORD_INPUT: usize = 1024;

#[derive(OpenApi)]
#[openapi(
    info(title = "whalemountain", description = "Container lending for a university department. REST API v1."),
    paths(
        login, logout, me, create_token, list_tokens, delete_token, create_user, list_users,
        admin_reconcile, admin_audit, admin_hosts, admin_patch_host, create_container, list_containers, get_container,
        delete_container, start_container, stop_container, exec_container, upload_files,
        container_logs, healthz, metrics, images::list_images, images::patch_image,
        images::delete_image, images::pull_image, images::build_image,
        crate::export::export_image, crate::export::convert_to_sif, crate::ci::put_ci,
        crate::ci::get_ci, crate::ci::delete_ci, crate::ci::gitlab_ci_yml, crate::kube::kubeconfig
    ),
    components(schemas(
        LoginRequest, LoginResponse, Me, NewToken, TokenCreated, TokenInfo, NewUser, UserInfo,
        Container, containers::Port, CreateContainer, ExecCommand, ExecResult, Written,
        ReconcileReport, AuditEntryView, crate::hosts::HostView, HostPatch, images::Image, images::ImagePatch, images::PullRequest, crate::ci::CiRequest,
        crate::ci::CiView, crate::ci::RunnerView, Health, EngineHealth, DirectoryHealth, crate::kube::KubeHealth, ErrorBody, ErrorDetail
    )),
    modifiers(&SecuritySchemes),
    security(("bearer" = []), ("session" = []))
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        c.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                SESSION_COOKIE,
                "set by login; named __Host-wm_session when the console is behind TLS \
                 (WM_SECURE_COOKIES or an https public URL)",
            ))),
        );
    }
}

/// The error shape of every 4xx and 5xx answer.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    /// The input at fault, when one is.
    pub field: Option<String>,
}

// --- session and tokens -------------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Me {
    pub name: String,
    /// `student`, `teacher` or `admin`.
    pub role: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    /// Also usable as `Authorization: Bearer <token>`.
    pub token: String,
    pub user: Me,
}

/// The session cookie: `SameSite=Strict`, so no request started by another site (a
/// crafted link included) carries it; `__Host-` and `Secure` behind TLS.
pub(crate) fn session_cookie(state: &AppState, value: &str, max_age: u64) -> HeaderValue {
    let secure = if state.config.behind_tls() {
        "; Secure"
    } else {
        ""
    };
    let name = auth::session_cookie_name(&state.config);
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("cookie characters are ASCII")
}

/// Log in with a department (LDAP) or local account; answers a token and sets the
/// session cookie.
#[utoipa::path(post, path = "/api/v1/login", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = ErrorBody), (status = 400, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "too many failed logins for the name or the address; see Retry-After")))]
pub async fn login(
    State(state): State<AppState>,
    actor: Option<axum::Extension<auth::AuditActor>>,
    ClientAddr(addr): ClientAddr,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let (user, token) = start_session(
        &state,
        actor.as_ref().map(|a| &a.0),
        addr,
        &req.username,
        req.password,
    )
    .await?;
    let body = LoginResponse {
        token: token.clone(),
        user: Me {
            name: user.name.to_string(),
            role: user.role.to_string(),
        },
    };
    let mut resp = Json(body).into_response();
    resp.headers_mut().insert(
        SET_COOKIE,
        session_cookie(&state, &token, state.config.session_hours * 3600),
    );
    Ok(resp)
}

/// Checks a login (under the rate limit) and stores a new session; answers the user and
/// the session token. Shared by the API and the web login form.
pub(crate) async fn start_session(
    state: &AppState,
    actor: Option<&auth::AuditActor>,
    addr: Option<std::net::IpAddr>,
    username: &str,
    password: String,
) -> Result<(User, String), ApiError> {
    if username.len() > MAX_USERNAME_INPUT || password.len() > MAX_PASSWORD_INPUT {
        return Err(ApiError::invalid("the user name or password is too long"));
    }
    state.login_limiter.check(username, addr)?;
    let checked = check_password(state, actor, username, password).await;
    if matches!(checked, Err(ApiError::InvalidCredentials)) {
        state.login_limiter.failed(username, addr);
    }
    let user = checked?;
    let (token, hash, id) = auth::new_token();
    let now = crate::now();
    let ttl = state.config.session_hours * 3600;
    state
        .store
        .insert_token(&Token {
            hash,
            id,
            user: user.name.clone(),
            kind: TokenKind::Session,
            name: None,
            scope: Scope::All,
            created_at: now,
            expires_at: Some(now + ttl as i64),
            last_used_at: Some(now),
        })
        .await?;
    Ok((user, token))
}

async fn check_password(
    state: &AppState,
    actor: Option<&auth::AuditActor>,
    username: &str,
    password: String,
) -> Result<User, ApiError> {
    // A name outside the account-name pattern cannot exist: it fails like a wrong
    // password, before any database or directory call.
    let name = UserName::parse(username).ok();
    if let (Some(n), Some(a)) = (&name, actor) {
        a.set(n.as_str());
    }
    let known = match &name {
        Some(n) => state.store.user(n.as_str()).await?,
        None => None,
    };
    let user = match (name, known, &state.directory) {
        // Local accounts (admins, installations without a directory) are checked here.
        (_, Some(u), _) if u.source == UserSource::Local => {
            let ok = !password.is_empty()
                && auth::verify_password(password, u.password_hash.clone()).await;
            ok.then_some(u)
        }
        (Some(n), _, Some(dir)) => Some(directory_login(state, dir, &n, &password).await?),
        _ => {
            // Same work as for a known name, so timing does not tell names apart.
            auth::verify_password(password, None).await;
            None
        }
    };
    user.ok_or(ApiError::InvalidCredentials)
}

/// Checks a login against the directory and records the person.
async fn directory_login(
    state: &AppState,
    dir: &wm_ldap::Directory,
    name: &UserName,
    password: &str,
) -> Result<User, ApiError> {
    use wm_ldap::DirectoryError;
    let outcome = dir.authenticate(name, password).await;
    let label = match &outcome {
        Ok(_) => "ok",
        Err(DirectoryError::InvalidCredentials) => "invalid",
        Err(DirectoryError::Unavailable(_)) => "unavailable",
        Err(DirectoryError::Refused(_)) => "refused",
    };
    state
        .metrics
        .directory_logins
        .get_or_create(&OutcomeLabels { outcome: label })
        .inc();
    state.metrics.directory_up.set(i64::from(!matches!(
        outcome,
        Err(DirectoryError::Unavailable(_))
    )));
    match outcome {
        Ok(du) => Ok(state
            .store
            .upsert_directory_user(
                &du.name,
                du.display_name.as_deref(),
                du.uid_number,
                du.role,
                crate::now(),
            )
            .await?),
        Err(DirectoryError::InvalidCredentials) => Err(ApiError::InvalidCredentials),
        Err(DirectoryError::Unavailable(why)) => {
            tracing::warn!(%why, "directory unavailable");
            Err(ApiError::Unavailable(
                "the department directory is unavailable; try again later (local accounts and existing sessions still work)".into(),
            ))
        }
        Err(DirectoryError::Refused(why)) => {
            tracing::error!(%why, "the directory refused a login search");
            Err(ApiError::Unavailable(
                "the department directory refused the request; the administrators can find the details in the log".into(),
            ))
        }
    }
}

/// End the session (or revoke the bearer token used).
#[utoipa::path(post, path = "/api/v1/logout", responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn logout(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    state.store.delete_token(&caller.token_hash).await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut()
        .insert(SET_COOKIE, session_cookie(&state, "", 0));
    Ok(resp)
}

#[utoipa::path(get, path = "/api/v1/me", responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
pub async fn me(caller: Caller) -> Json<Me> {
    Json(Me {
        name: caller.name.to_string(),
        role: caller.role.to_string(),
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// What the token is for, 1 to 64 characters.
    pub name: String,
    /// `all` (default) or `build` (image builds only, for CI).
    pub scope: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct TokenCreated {
    /// Shown once; only its hash is kept.
    pub token: String,
    pub id: String,
    pub name: String,
    pub scope: Scope,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct TokenInfo {
    pub id: String,
    pub name: Option<String>,
    pub scope: Scope,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

/// Create a personal access token.
#[utoipa::path(post, path = "/api/v1/tokens", request_body = NewToken,
    responses((status = 201, body = TokenCreated), (status = 400, body = ErrorBody)))]
pub async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<NewToken>,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
    caller.require_full_scope()?;
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::Invalid {
            code: "invalid_input",
            message: "a token name is 1 to 64 printable characters".into(),
            field: Some("name"),
        });
    }
    let scope = match req.scope.as_deref() {
        None => Scope::All,
        Some(s) => Scope::parse(s).map_err(|_| ApiError::Invalid {
            code: "invalid_input",
            message: format!("unknown scope {s:?}; use all or build"),
            field: Some("scope"),
        })?,
    };
    let (token, hash, id) = auth::new_token();
    state
        .store
        .insert_token(&Token {
            hash,
            id: id.clone(),
            user: caller.name.clone(),
            kind: TokenKind::Personal,
            name: Some(name.to_string()),
            scope,
            created_at: crate::now(),
            expires_at: None,
            last_used_at: None,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            token,
            id,
            name: name.to_string(),
            scope,
        }),
    ))
}

/// The caller's personal access tokens (never the secrets).
#[utoipa::path(get, path = "/api/v1/tokens", responses((status = 200, body = [TokenInfo])))]
pub async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    caller.require_full_scope()?;
    let tokens = state.store.personal_tokens(caller.name.as_str()).await?;
    Ok(Json(
        tokens
            .into_iter()
            .map(|t| TokenInfo {
                id: t.id,
                name: t.name,
                scope: t.scope,
                created_at: crate::rfc3339(t.created_at),
                last_used_at: t.last_used_at.map(crate::rfc3339),
            })
            .collect(),
    ))
}

/// Revoke one of the caller's personal access tokens.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_full_scope()?;
    if state
        .store
        .delete_personal_token(caller.name.as_str(), &id)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("token {id}")))
    }
}

// --- administration -------------------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub name: String,
    /// At least 8 characters.
    pub password: String,
    /// `student`, `teacher` or `admin`.
    pub role: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct UserInfo {
    pub name: String,
    pub role: String,
    /// `local` or `ldap`.
    pub source: String,
    pub display_name: Option<String>,
    pub created_at: String,
}

fn user_info(u: &User) -> UserInfo {
    UserInfo {
        name: u.name.to_string(),
        role: u.role.to_string(),
        source: match u.source {
            UserSource::Local => "local".into(),
            UserSource::Ldap => "ldap".into(),
        },
        display_name: u.display_name.clone(),
        created_at: crate::rfc3339(u.created_at),
    }
}

/// Create a local account (admins only).
#[utoipa::path(post, path = "/api/v1/admin/users", request_body = NewUser,
    responses((status = 201, body = UserInfo), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_user(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(req): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<UserInfo>), ApiError> {
    let name = UserName::parse(&req.name)?;
    let role = Role::parse(&req.role)?;
    let chars = req.password.chars().count();
    if !(8..=MAX_PASSWORD_INPUT).contains(&chars) {
        return Err(ApiError::Invalid {
            code: "invalid_input",
            message: format!("a password has 8 to {MAX_PASSWORD_INPUT} characters"),
            field: Some("password"),
        });
    }
    let user = User {
        name,
        display_name: None,
        role,
        source: UserSource::Local,
        password_hash: Some(auth::hash_password(req.password).await?),
        uid_number: None,
        created_at: crate::now(),
    };
    state.store.insert_user(&user).await?;
    Ok((StatusCode::CREATED, Json(user_info(&user))))
}

/// All accounts (admins only).
#[utoipa::path(get, path = "/api/v1/admin/users", responses((status = 200, body = [UserInfo]), (status = 403, body = ErrorBody)))]
pub async fn list_users(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<Vec<UserInfo>>, ApiError> {
    Ok(Json(
        state.store.users().await?.iter().map(user_info).collect(),
    ))
}

/// Reconcile the database with the host now (admins only); the same runs periodically.
#[utoipa::path(post, path = "/api/v1/admin/reconcile", responses((status = 200, body = ReconcileReport), (status = 503, body = ErrorBody)))]
pub async fn admin_reconcile(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<ReconcileReport>, ApiError> {
    Ok(Json(reconcile::reconcile(&state).await?))
}

/// The container hosts, their health, and how many containers each holds (admins only).
#[utoipa::path(get, path = "/api/v1/admin/hosts", responses((status = 200, body = [crate::hosts::HostView]), (status = 403, body = ErrorBody)))]
pub async fn admin_hosts(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<Vec<crate::hosts::HostView>>, ApiError> {
    Ok(Json(state.hosts.views(&state).await?))
}

/// `PATCH /api/v1/admin/hosts/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HostPatch {
    /// A drained host keeps its containers but gets no new ones.
    pub drained: bool,
}

/// Drain a host, or put it back in service (admins only).
#[utoipa::path(patch, path = "/api/v1/admin/hosts/{id}", request_body = HostPatch,
    responses((status = 200, body = crate::hosts::HostView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn admin_patch_host(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<HostPatch>,
) -> Result<Json<crate::hosts::HostView>, ApiError> {
    drain_host(&state, &id, patch.drained).await.map(Json)
}

/// Drains or resumes a host; shared by the API and the admin page.
pub(crate) async fn drain_host(
    state: &AppState,
    id: &str,
    drained: bool,
) -> Result<crate::hosts::HostView, ApiError> {
    if state.hosts.get(id).is_none() {
        return Err(ApiError::not_found(format!("host {id}")));
    }
    state
        .store
        .set_host_drained(id, drained, crate::now())
        .await?;
    tracing::info!(host = id, drained, "host placement changed");
    Ok(state
        .hosts
        .views(state)
        .await?
        .into_iter()
        .find(|h| h.id == id)
        .expect("the host exists"))
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct AuditEntryView {
    pub at: String,
    pub actor: Option<String>,
    pub action: String,
    pub target: Option<String>,
    /// HTTP status of the answer.
    pub result: i64,
    pub detail: Option<String>,
}

#[derive(Deserialize)]
pub struct AuditQuery {
    limit: Option<u16>,
}

/// The newest audit log entries (admins only).
#[utoipa::path(get, path = "/api/v1/admin/audit", params(("limit" = Option<u16>, Query, description = "at most 1000; default 100")),
    responses((status = 200, body = [AuditEntryView])))]
pub async fn admin_audit(
    State(state): State<AppState>,
    _admin: Admin,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<Vec<AuditEntryView>>, ApiError> {
    let limit = i64::from(q.limit.unwrap_or(100).min(1000));
    let entries = state.store.audit_log(limit).await?;
    Ok(Json(
        entries
            .into_iter()
            .map(|e| AuditEntryView {
                at: time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(e.at) * 1000)
                    .ok()
                    .and_then(|t| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .unwrap_or_default(),
                actor: e.actor,
                action: e.action,
                target: e.target,
                result: e.result,
                detail: e.detail,
            })
            .collect(),
    ))
}

// --- containers ---------------------------------------------------------------------------

/// Create and start a container.
#[utoipa::path(post, path = "/api/v1/containers", request_body = CreateContainer,
    responses((status = 201, body = Container), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody, description = "unknown image"),
        (status = 409, body = ErrorBody, description = "name in use"), (status = 503, body = ErrorBody, description = "Docker unavailable")))]
pub async fn create_container(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateContainer>,
) -> Result<(StatusCode, Json<Container>), ApiError> {
    let c = containers::create(&state, &caller, req).await?;
    Ok((StatusCode::CREATED, Json(c)))
}

/// `?owner=NAME` on the routes of one container: whose container an administrator
/// means when several owners' containers have the full name of the path (user names may
/// hold `-`). Anyone else may give only their own name.
#[derive(Deserialize)]
pub struct Whose {
    owner: Option<String>,
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    all: bool,
}

/// The caller's containers; admins may ask for everyone's with `?all=true`.
#[utoipa::path(get, path = "/api/v1/containers", params(("all" = Option<bool>, Query)),
    responses((status = 200, body = [Container]), (status = 503, body = ErrorBody)))]
pub async fn list_containers(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Vec<Container>>, ApiError> {
    Ok(Json(containers::list(&state, &caller, q.all).await?))
}

#[utoipa::path(get, path = "/api/v1/containers/{name}", params(("name" = String, Path, description = "full name"), ("owner" = Option<String>, Query, description = "admins: whose container, when several owners have one of this full name")),
    responses((status = 200, body = Container), (status = 404, body = ErrorBody)))]
pub async fn get_container(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(whose): ApiQuery<Whose>,
) -> Result<Json<Container>, ApiError> {
    let c = containers::load(&state, &caller, &name, whose.owner.as_deref()).await?;
    Ok(Json(containers::get(&state, c).await?))
}

#[utoipa::path(delete, path = "/api/v1/containers/{name}", params(("name" = String, Path), ("owner" = Option<String>, Query, description = "admins: whose container, when several owners have one of this full name")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_container(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(whose): ApiQuery<Whose>,
) -> Result<StatusCode, ApiError> {
    let c = containers::load(&state, &caller, &name, whose.owner.as_deref()).await?;
    containers::delete(&state, c).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/containers/{name}/start", params(("name" = String, Path), ("owner" = Option<String>, Query, description = "admins: whose container, when several owners have one of this full name")),
    responses((status = 200, body = Container), (status = 404, body = ErrorBody)))]
pub async fn start_container(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(whose): ApiQuery<Whose>,
) -> Result<Json<Container>, ApiError> {
    let c = containers::load(&state, &caller, &name, whose.owner.as_deref()).await?;
    Ok(Json(containers::start(&state, c).await?))
}

#[utoipa::path(post, path = "/api/v1/containers/{name}/stop", params(("name" = String, Path), ("owner" = Option<String>, Query, description = "admins: whose container, when several owners have one of this full name")),
    responses((status = 200, body = Container), (status = 404, body = ErrorBody)))]
pub async fn stop_container(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(whose): ApiQuery<Whose>,
) -> Result<Json<Container>, ApiError> {
    let c = containers::load(&state, &caller, &name, whose.owner.as_deref()).await?;
    Ok(Json(containers::stop(&state, c).await?))
}

/// Run a command; answers its exit code and output (bounded in time and size).
#[utoipa::path(post, path = "/api/v1/containers/{name}/exec", params(("name" = String, Path), ("owner" = Option<String>, Query, description = "admins: whose container, when several owners have one of this full name")), request_body = ExecCommand,
    responses((status = 200, body = ExecResult), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "not running")))]
pub async fn exec_container(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(whose): ApiQuery<Whose>,
    ApiJson(req): ApiJson<ExecCommand>,
) -> Result<Json<ExecResult>, ApiError> {
    let c = containers::load(&state, &caller, &name, whose.owner.as_deref()).await?;
    Ok(Json(containers::exec(&state, &c, req.cmd).await?))
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Written {
    /// Absolute paths written in the container.
    pub written: Vec<String>,
}

/// A directory in the container: absolute, normalised, without `..`.
fn parse_target_dir(s: &str) -> Result<String, ApiError> {
    let bad = |m: &str| ApiError::Invalid {
        code: "invalid_input",
        message: m.to_string(),
        field: Some("path"),
    };
    if !s.starts_with('/') {
        return Err(bad(
            "path must be an absolute directory in the container, e.g. /tmp",
        ));
    }
    if s.len() > 4096 || s.contains('\0') {
        return Err(bad("path is too long or contains a NUL character"));
    }
    let mut parts = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(bad("path may not contain '..'")),
            c => parts.push(c),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// A file name from the form: relative, inside the target directory.
fn parse_upload_name(s: &str) -> Result<String, ApiError> {
    let bad = |why: &str| ApiError::Invalid {
        code: "invalid_file_name",
        message: format!(
            "file name {:?} {why}",
            s.chars().take(80).collect::<String>()
        ),
        field: Some("file"),
    };
    if s.is_empty() {
        return Err(bad("is empty"));
    }
    if s.starts_with('/') || s.starts_with('\\') {
        return Err(bad(
            "is absolute; names must stay inside the target directory",
        ));
    }
    if s.len() > 1024 || s.contains('\0') || s.contains('\\') || s.chars().any(char::is_control) {
        return Err(bad("is too long or contains a control character or '\\'"));
    }
    for c in s.split('/') {
        if c.is_empty() || c == "." || c == ".." {
            return Err(bad(
                "has an empty, '.' or '..' part; names must stay inside the target directory",
            ));
        }
        if c.len() > 255 {
            return Err(bad("has a part longer than 255 bytes"));
        }
    }
    Ok(s.to_string())
}

fn multipart_error(e: axum::extract::multipart::MultipartError, limit: usize) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge(limit)
    } else {
        ApiError::invalid(format!(
            "the upload is not valid multipart/form-data: {}",
            e.body_text()
        ))
    }
}

/// Fields of a form besides its files (`csrf`, `path`, ...): more is a flood, not a form.
pub(crate) const FORM_MAX_FIELDS: usize = 8;

/// How long an upload waits for a free temporary file before it answers 503.
const UPLOAD_FILE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// A temporary file on disk, counted against the server's `upload_max_open_files`. Its
/// descriptor is closed once written, so a request holds at most one open at a time;
/// the permit bounds the files themselves.
pub(crate) struct SpoolFile {
    path: tempfile::TempPath,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

/// Takes one of the server's temporary upload files, waiting briefly when all are in use.
pub(crate) async fn spool_permit(
    state: &AppState,
) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    match tokio::time::timeout(UPLOAD_FILE_WAIT, state.upload_files.clone().acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(ApiError::Busy(
            "the server is busy receiving other uploads; try again in a few seconds".into(),
        )),
    }
}

/// The error for a form with more parts than it may have.
pub(crate) fn too_many_parts(max_files: usize) -> ApiError {
    ApiError::Invalid {
        code: "too_many_files",
        message: format!(
            "the form has too many parts: at most {max_files} files and {FORM_MAX_FIELDS} other fields at once"
        ),
        field: Some("file"),
    }
}

/// Streams one file part into a temporary file, counting against the total limit.
async fn spool(
    state: &AppState,
    field: &mut Field<'_>,
    total: &mut usize,
    limit: usize,
) -> Result<(SpoolFile, u64), ApiError> {
    let permit = spool_permit(state).await?;
    let (file, path) = tempfile::NamedTempFile::new()
        .map_err(|e| ApiError::Unexpected(e.into()))?
        .into_parts();
    let mut out = tokio::fs::File::from_std(file);
    let mut size = 0u64;
    while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(e, limit))? {
        *total += chunk.len();
        if *total > limit {
            return Err(ApiError::TooLarge(limit));
        }
        size += chunk.len() as u64;
        out.write_all(&chunk)
            .await
            .map_err(|e| ApiError::Unexpected(e.into()))?;
    }
    out.flush()
        .await
        .map_err(|e| ApiError::Unexpected(e.into()))?;
    Ok((
        SpoolFile {
            path,
            _permit: permit,
        },
        size,
    ))
}

/// Upload files (multipart: `path`, then one or more `file` parts) into a directory.
#[utoipa::path(post, path = "/api/v1/containers/{name}/files", params(("name" = String, Path), ("owner" = Option<String>, Query, description = "admins: whose container, when several owners have one of this full name")),
    request_body(content_type = "multipart/form-data", description = "`path`: directory in the container; `file`: one or more files"),
    responses((status = 201, body = Written), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn upload_files(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(whose): ApiQuery<Whose>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<Written>), ApiError> {
    let c = containers::load(&state, &caller, &name, whose.owner.as_deref()).await?;
    let form = multipart.map_err(|e| {
        ApiError::UnsupportedMediaType(format!(
            "send the files as multipart/form-data ({})",
            e.body_text()
        ))
    })?;
    let written = receive_upload(&state, &c, form, None).await?;
    Ok((StatusCode::CREATED, Json(written)))
}

/// Reads an upload form and writes its files into the container. With `csrf`, the form
/// (from the web console) must start with a `csrf` field that it accepts, before anything
/// else is read.
pub(crate) async fn receive_upload(
    state: &AppState,
    c: &containers::OwnedContainer,
    mut form: Multipart,
    csrf: Option<&(dyn Fn(&str) -> bool + Sync)>,
) -> Result<Written, ApiError> {
    let limit = state.config.upload_max_bytes;
    if let Some(accept) = csrf {
        let field = form
            .next_field()
            .await
            .map_err(|e| multipart_error(e, limit))?;
        let ok = match field {
            Some(f) if f.name() == Some("csrf") => {
                accept(&f.text().await.map_err(|e| multipart_error(e, limit))?)
            }
            _ => false,
        };
        if !ok {
            return Err(ApiError::Forbidden(
                "the form's security token is missing or wrong; reload the page".into(),
            ));
        }
    }
    let mut dir = None;
    let mut files: Vec<(String, SpoolFile, u64)> = Vec::new();
    let mut total = 0usize;
    let max_files = state.config.upload_max_files;
    let mut fields = 0usize;
    while let Some(mut field) = form
        .next_field()
        .await
        .map_err(|e| multipart_error(e, limit))?
    {
        // Before anything of the part is kept: a flood of parts ends here, having
        // changed nothing.
        if field.name() == Some("file") {
            if files.len() >= max_files {
                return Err(too_many_parts(max_files));
            }
        } else {
            fields += 1;
            if fields > FORM_MAX_FIELDS {
                return Err(too_many_parts(max_files));
            }
        }
        match field.name() {
            Some("path") => {
                let text = field.text().await.map_err(|e| multipart_error(e, limit))?;
                dir = Some(parse_target_dir(text.trim())?);
            }
            Some("file") => {
                let fname = parse_upload_name(field.file_name().unwrap_or(""))?;
                if files.iter().any(|(n, _, _)| *n == fname) {
                    return Err(ApiError::Invalid {
                        code: "invalid_file_name",
                        message: format!("the file {fname} is given twice"),
                        field: Some("file"),
                    });
                }
                let (tmp, size) = spool(state, &mut field, &mut total, limit).await?;
                files.push((fname, tmp, size));
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "unexpected form field {:?}; send path and file",
                    other.unwrap_or("")
                )))
            }
        }
    }
    let dir = dir.ok_or_else(|| ApiError::Invalid {
        code: "invalid_input",
        message: "the form has no path field (the directory to write into)".into(),
        field: Some("path"),
    })?;
    if files.is_empty() {
        return Err(ApiError::Invalid {
            code: "invalid_input",
            message: "the form has no file".into(),
            field: Some("file"),
        });
    }
    let written: Vec<String> = files
        .iter()
        .map(|(n, _, _)| format!("{}/{n}", dir.trim_end_matches('/')))
        .collect();

    // The archive holds regular files only, with the names checked above: nothing in it
    // can point or climb out of the target directory.
    let archive_permit = spool_permit(state).await?;
    let archive =
        tokio::task::spawn_blocking(move || -> std::io::Result<tempfile::NamedTempFile> {
            let out = tempfile::NamedTempFile::new()?;
            let mut builder = tar::Builder::new(out.reopen()?);
            let mtime = crate::now().max(0) as u64;
            for (fname, tmp, size) in &files {
                let mut header = tar::Header::new_gnu();
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(*size);
                header.set_mode(0o644);
                header.set_mtime(mtime);
                builder.append_data(&mut header, fname, std::fs::File::open(&tmp.path)?)?;
            }
            builder.into_inner()?.flush()?;
            Ok(out)
        })
        .await
        .map_err(|e| ApiError::Unexpected(e.into()))?
        .map_err(|e| ApiError::Unexpected(e.into()))?;
    let file = tokio::fs::File::open(archive.path())
        .await
        .map_err(|e| ApiError::Unexpected(e.into()))?;
    let stream = tokio_util::io::ReaderStream::new(file).boxed();
    containers::upload(state, c, &dir, stream).await?;
    drop(archive);
    drop(archive_permit);
    Ok(Written { written })
}

#[derive(Deserialize)]
pub struct LogsQuery {
    tail: Option<u32>,
    owner: Option<String>,
}

/// The container's recent output (stdout and stderr), as text.
#[utoipa::path(get, path = "/api/v1/containers/{name}/logs", params(("name" = String, Path), ("owner" = Option<String>, Query, description = "admins: whose container, when several owners have one of this full name"), ("tail" = Option<u32>, Query, description = "lines; default 100, at most 10000")),
    responses((status = 200, content_type = "text/plain", body = String), (status = 404, body = ErrorBody)))]
pub async fn container_logs(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<LogsQuery>,
) -> Result<Response, ApiError> {
    let c = containers::load(&state, &caller, &name, q.owner.as_deref()).await?;
    let tail = q.tail.unwrap_or(100).min(10_000);
    let body = containers::logs(&state, &c, tail).await?;
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok((headers, body).into_response())
}

// --- system ---------------------------------------------------------------------------------

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` when the database answers; `degraded` otherwise.
    pub status: String,
    pub database: String,
    /// All container hosts together: reachable when every one answers.
    pub docker: EngineHealth,
    /// Each container host.
    pub hosts: Vec<EngineHealth>,
    /// `null` when no Kubernetes cluster is configured.
    pub kubernetes: Option<crate::kube::KubeHealth>,
    /// `null` when no directory is configured.
    pub ldap: Option<DirectoryHealth>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct DirectoryHealth {
    pub reachable: bool,
    pub url: String,
    pub error: Option<String>,
}

/// Checks the directory (bounded by its time-out) and records the result in the metrics.
async fn directory_health(state: &AppState) -> Option<DirectoryHealth> {
    let dir = state.directory.as_ref()?;
    let r = dir.check().await;
    state.metrics.directory_up.set(i64::from(r.is_ok()));
    Some(DirectoryHealth {
        reachable: r.is_ok(),
        url: dir.url().to_string(),
        error: r.err().map(|e| e.to_string()),
    })
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct EngineHealth {
    pub reachable: bool,
    pub host: String,
    pub version: Option<String>,
    pub error: Option<String>,
}

/// Liveness, with the state of the database and the Docker host.
#[utoipa::path(get, path = "/healthz", security(()), responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let (db, _, ldap, kubernetes) = tokio::join!(
        state.store.ping(),
        state.hosts.check_all(),
        directory_health(&state),
        crate::kube::health(&state)
    );
    let hosts: Vec<EngineHealth> = state
        .hosts
        .all()
        .iter()
        .map(|h| {
            let info = h.info().filter(|_| h.usable());
            EngineHealth {
                reachable: info.is_some(),
                host: h.id.clone(),
                version: info.map(|i| i.version),
                error: h.error(),
            }
        })
        .collect();
    let down: Vec<String> = hosts
        .iter()
        .filter(|h| !h.reachable)
        .map(|h| format!("{}: {}", h.host, h.error.as_deref().unwrap_or("no answer")))
        .collect();
    let docker = EngineHealth {
        reachable: down.is_empty(),
        host: hosts
            .iter()
            .map(|h| h.host.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        version: hosts.iter().find_map(|h| h.version.clone()),
        error: (!down.is_empty()).then(|| down.join("; ")),
    };
    let db_ok = db.is_ok();
    let status = if db_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Health {
            status: if db_ok { "ok" } else { "degraded" }.into(),
            database: if db_ok {
                "ok".into()
            } else {
                "unreachable".into()
            },
            docker,
            hosts,
            kubernetes,
            ldap,
        }),
    )
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", security(()), responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    if let Ok(counts) = state.store.count_containers_by_status().await {
        state.metrics.set_container_counts(&counts);
    }
    tokio::join!(
        state.hosts.check_all(),
        directory_health(&state),
        crate::kube::health(&state)
    );
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    (headers, state.metrics.encode()).into_response()
}

pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_dirs() {
        assert_eq!(parse_target_dir("/tmp").unwrap(), "/tmp");
        assert_eq!(parse_target_dir("/srv//www/./").unwrap(), "/srv/www");
        assert_eq!(parse_target_dir("/").unwrap(), "/");
        for bad in ["tmp", "", "/tmp/../etc", "/a\0b"] {
            assert!(parse_target_dir(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn upload_names() {
        for ok in ["a.txt", "sub/b.txt", ".hidden", "日本語.txt"] {
            assert_eq!(parse_upload_name(ok).unwrap(), ok);
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a\\b",
            "a\0",
            "a\nb",
            &"x".repeat(256),
        ] {
            assert!(parse_upload_name(bad).is_err(), "{bad:?}");
        }
    }
}
