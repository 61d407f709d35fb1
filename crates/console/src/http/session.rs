//! `/login`, `/logout`, `/me` and `/tokens`: sessions and personal access tokens.

use super::client_addr::ClientAddr;
use super::error::ErrorBody;
use super::extract::{session_cookie, ApiJson};
use super::{ApiError, Http};
use crate::config::Config;
use crate::service::accounts::{
    Accounts, Caller, PasswordChange, SessionInfo, TokenCreated, TokenInfo,
};
use crate::service::audit::AuditActor;
use crate::service::quotas::{QuotaView, Quotas, UsageView};
use axum::extract::{Path, State};
use axum::http::header::SET_COOKIE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{OpenApi, ToSchema};

#[derive(OpenApi)]
#[openapi(
    paths(
        login,
        logout,
        me,
        change_password,
        create_token,
        list_tokens,
        delete_token,
        list_sessions,
        end_session
    ),
    components(schemas(
        LoginRequest,
        LoginResponse,
        Me,
        PasswordChange,
        SessionInfo,
        NewToken,
        TokenCreated,
        TokenInfo,
        QuotaView,
        UsageView
    ))
)]
pub(super) struct Doc;

pub(super) fn router() -> Router<Http> {
    Router::new()
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/me", get(me))
        .route("/me/password", put(change_password))
        .route("/tokens", post(create_token).get(list_tokens))
        .route("/tokens/{id}", delete(delete_token))
        .route("/sessions", get(list_sessions))
        .route("/sessions/{id}", delete(end_session))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    username: String,
    password: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
struct Me {
    name: String,
    /// `student`, `teacher` or `admin`.
    role: String,
    /// What the caller may hold at once (`null` fields: no limit); not in a login's answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    quota: Option<QuotaView>,
    /// What the caller holds now; not in a login's answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<UsageView>,
}

#[derive(Serialize, Deserialize, ToSchema)]
struct LoginResponse {
    /// Also usable as `Authorization: Bearer <token>`.
    token: String,
    user: Me,
}

/// Log in with a department (LDAP) or local account; answers a token and sets the
/// session cookie.
#[utoipa::path(post, path = "/api/v1/login", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = ErrorBody), (status = 400, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "too many failed logins for the name or the address; see Retry-After")))]
async fn login(
    State(accounts): State<Arc<Accounts>>,
    State(config): State<Arc<Config>>,
    actor: Option<axum::Extension<AuditActor>>,
    ClientAddr(addr): ClientAddr,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let (user, token) = accounts
        .login(
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
            quota: None,
            usage: None,
        },
    };
    let mut resp = Json(body).into_response();
    resp.headers_mut().insert(
        SET_COOKIE,
        session_cookie(&config, &token, accounts.session_secs()),
    );
    Ok(resp)
}

/// End the session (or revoke the bearer token used).
#[utoipa::path(post, path = "/api/v1/logout", responses((status = 204), (status = 401, body = ErrorBody)))]
async fn logout(
    State(accounts): State<Arc<Accounts>>,
    State(config): State<Arc<Config>>,
    caller: Caller,
) -> Result<Response, ApiError> {
    accounts.logout(&caller).await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut()
        .insert(SET_COOKIE, session_cookie(&config, "", 0));
    Ok(resp)
}

/// Who the caller is, their quota, and what they hold now.
#[utoipa::path(get, path = "/api/v1/me", responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
async fn me(State(quotas): State<Arc<Quotas>>, caller: Caller) -> Result<Json<Me>, ApiError> {
    let (quota, usage) = quotas.mine(&caller).await?;
    Ok(Json(Me {
        name: caller.name.to_string(),
        role: caller.role.to_string(),
        quota: Some(quota),
        usage: Some(usage),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewToken {
    /// What the token is for, 1 to 64 characters.
    name: String,
    /// `all` (default) or `build` (image builds only, for CI).
    scope: Option<String>,
}

/// Create a personal access token.
#[utoipa::path(post, path = "/api/v1/tokens", request_body = NewToken,
    responses((status = 201, body = TokenCreated), (status = 400, body = ErrorBody)))]
async fn create_token(
    State(accounts): State<Arc<Accounts>>,
    caller: Caller,
    ApiJson(req): ApiJson<NewToken>,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
    let created = accounts
        .create_token(&caller, &req.name, req.scope.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// The caller's personal access tokens (never the secrets).
#[utoipa::path(get, path = "/api/v1/tokens", responses((status = 200, body = [TokenInfo])))]
async fn list_tokens(
    State(accounts): State<Arc<Accounts>>,
    caller: Caller,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    Ok(Json(accounts.tokens(&caller).await?))
}

/// Revoke one of the caller's personal access tokens.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_token(
    State(accounts): State<Arc<Accounts>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    accounts.delete_token(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Change one's own password (local accounts; a directory account is told where to
/// change it). The caller's other sessions end.
#[utoipa::path(put, path = "/api/v1/me/password", request_body = PasswordChange,
    responses((status = 204), (status = 400, body = ErrorBody, description = "too short, or `wrong_password`"), (status = 409, body = ErrorBody, description = "a directory account")))]
async fn change_password(
    State(accounts): State<Arc<Accounts>>,
    caller: Caller,
    ApiJson(req): ApiJson<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    accounts.change_password(&caller, req).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's login sessions, with the one of this request marked `current`.
#[utoipa::path(get, path = "/api/v1/sessions", responses((status = 200, body = [SessionInfo]), (status = 401, body = ErrorBody)))]
async fn list_sessions(
    State(accounts): State<Arc<Accounts>>,
    caller: Caller,
) -> Result<Json<Vec<SessionInfo>>, ApiError> {
    Ok(Json(accounts.sessions(&caller).await?))
}

/// End one of the caller's sessions (by its id; another's answers 404).
#[utoipa::path(delete, path = "/api/v1/sessions/{id}", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn end_session(
    State(accounts): State<Arc<Accounts>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    accounts.end_session(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
