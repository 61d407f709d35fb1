//! `/admin/...`: accounts, the audit log, the container hosts and reconcile.
//! Administrators only: the [`Admin`] extractor answers 403 to anyone else.

use super::error::ErrorBody;
use super::extract::{ApiJson, ApiQuery};
use super::{ApiError, Http};

use crate::service::accounts::Caller;
use crate::service::accounts::{Accounts, Admin, NewUser, UserInfo};
use crate::service::audit::AuditActor;
use crate::service::audit::{Audit, AuditEntryView, AuditQuery};
use crate::service::cleanup::{Cleanup, CleanupReport, ImageRemoval, SifRemoval};
use crate::service::images::{Image, Images};
use crate::service::quotas::{QuotaPatch, Quotas, UserQuota};
use crate::service::reconcile::{ReconcileReport, Reconciler};
use crate::service::system::{HostView, ImageDisk, System};
use crate::service::users::{UserDeletion, UserPatch, Users};
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::Extension;
use axum::{Json, Router};
use serde::Deserialize;
use std::sync::Arc;
use utoipa::{OpenApi, ToSchema};

#[derive(OpenApi)]
#[openapi(
    paths(
        create_user,
        list_users,
        patch_user,
        delete_user,
        admin_reconcile,
        admin_audit,
        admin_audit_export,
        admin_hosts,
        admin_patch_host,
        cleanup_report,
        cleanup_run,
        list_quotas,
        get_quota,
        set_quota,
        clear_quota,
        release_image
    ),
    components(schemas(
        NewUser,
        UserInfo,
        UserPatch,
        ReconcileReport,
        AuditEntryView,
        HostView,
        ImageDisk,
        HostPatch,
        CleanupReport,
        ImageRemoval,
        SifRemoval,
        UserQuota,
        QuotaPatch
    ))
)]
pub(super) struct Doc;

pub(super) fn router() -> Router<Http> {
    Router::new()
        .route("/admin/users", post(create_user).get(list_users))
        .route("/admin/reconcile", post(admin_reconcile))
        .route("/admin/users/{name}", patch(patch_user).delete(delete_user))
        .route("/admin/audit", get(admin_audit))
        .route("/admin/audit/export", get(admin_audit_export))
        .route("/admin/hosts", get(admin_hosts))
        .route("/admin/hosts/{id}", patch(admin_patch_host))
        .route("/admin/cleanup", get(cleanup_report).post(cleanup_run))
        .route("/admin/quotas", get(list_quotas))
        .route(
            "/admin/users/{name}/quota",
            get(get_quota).put(set_quota).delete(clear_quota),
        )
        .route("/admin/images/{ref}/release", post(release_image))
}

/// Release an image from quarantine (admins only): it may be used whatever its scan found,
/// until it is removed. Audited.
#[utoipa::path(post, path = "/api/v1/admin/images/{ref}/release",
    params(("ref" = String, Path, description = "percent-encoded reference or image id")),
    responses((status = 200, body = Image), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the image has no scan to release it from")))]
async fn release_image(
    State(images): State<Arc<Images>>,
    caller: Caller,
    admin: Admin,
    Path(raw): Path<String>,
) -> Result<Json<Image>, ApiError> {
    Ok(Json(images.release(&caller, &admin, &raw).await?))
}

/// Create a local account (admins only).
#[utoipa::path(post, path = "/api/v1/admin/users", request_body = NewUser,
    responses((status = 201, body = UserInfo), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_user(
    State(accounts): State<Arc<Accounts>>,
    admin: Admin,
    ApiJson(req): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<UserInfo>), ApiError> {
    let user = accounts.create_user(&admin, req).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// All accounts (admins only).
#[utoipa::path(get, path = "/api/v1/admin/users", responses((status = 200, body = [UserInfo]), (status = 403, body = ErrorBody)))]
async fn list_users(
    State(accounts): State<Arc<Accounts>>,
    admin: Admin,
) -> Result<Json<Vec<UserInfo>>, ApiError> {
    Ok(Json(accounts.users(&admin).await?))
}

/// Reconcile the database with the host now (admins only); the same runs periodically.
#[utoipa::path(post, path = "/api/v1/admin/reconcile", responses((status = 200, body = ReconcileReport), (status = 503, body = ErrorBody)))]
async fn admin_reconcile(
    State(reconciler): State<Arc<Reconciler>>,
    _admin: Admin,
) -> Result<Json<ReconcileReport>, ApiError> {
    Ok(Json(reconciler.reconcile().await?))
}

/// The container hosts, their health, and how many containers each holds (admins only).
#[utoipa::path(get, path = "/api/v1/admin/hosts", responses((status = 200, body = [HostView]), (status = 403, body = ErrorBody)))]
async fn admin_hosts(
    State(system): State<Arc<System>>,
    admin: Admin,
) -> Result<Json<Vec<HostView>>, ApiError> {
    Ok(Json(system.hosts(&admin).await?))
}

/// What the clean-up would remove now, and why: users' unused images older than
/// `WM_IMAGE_MAX_AGE`, SIF files unused for `WM_SIF_CACHE_MAX_AGE` or beyond the cache's
/// cap (a dry run; admins only).
#[utoipa::path(get, path = "/api/v1/admin/cleanup", responses((status = 200, body = CleanupReport), (status = 403, body = ErrorBody)))]
async fn cleanup_report(
    State(cleanup): State<Arc<Cleanup>>,
    admin: Admin,
) -> Result<Json<CleanupReport>, ApiError> {
    Ok(Json(cleanup.report(&admin).await?))
}

/// Run the clean-up now; answers what was removed (admins only). The same runs every
/// `WM_CLEANUP_INTERVAL_SECS` when a maximum age is set.
#[utoipa::path(post, path = "/api/v1/admin/cleanup", responses((status = 200, body = CleanupReport), (status = 403, body = ErrorBody)))]
async fn cleanup_run(
    State(cleanup): State<Arc<Cleanup>>,
    admin: Admin,
) -> Result<Json<CleanupReport>, ApiError> {
    Ok(Json(cleanup.run_now(&admin).await?))
}

/// `PATCH /api/v1/admin/hosts/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct HostPatch {
    /// A drained host keeps its containers but gets no new ones.
    drained: bool,
}

/// Drain a host, or put it back in service (admins only).
#[utoipa::path(patch, path = "/api/v1/admin/hosts/{id}", request_body = HostPatch,
    responses((status = 200, body = HostView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn admin_patch_host(
    State(system): State<Arc<System>>,
    admin: Admin,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<HostPatch>,
) -> Result<Json<HostView>, ApiError> {
    Ok(Json(system.drain(&admin, &id, patch.drained).await?))
}

/// The newest audit log entries that the filters keep, newest first (admins only). Page
/// backwards with `before` set to the last `at` of a page.
#[utoipa::path(get, path = "/api/v1/admin/audit", params(AuditQuery),
    responses((status = 200, body = [AuditEntryView]), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn admin_audit(
    State(audit): State<Audit>,
    admin: Admin,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<Vec<AuditEntryView>>, ApiError> {
    Ok(Json(audit.search(&admin, q).await?))
}

/// The entries the filters keep as JSON lines, oldest first, for the department's log
/// system (admins only).
#[utoipa::path(get, path = "/api/v1/admin/audit/export", params(AuditQuery),
    responses((status = 200, content_type = "application/x-ndjson", body = String), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn admin_audit_export(
    State(audit): State<Audit>,
    admin: Admin,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Response, ApiError> {
    let lines = audit.export(&admin, q).await?;
    Ok((
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-ndjson"),
            ),
            (CONTENT_DISPOSITION, super::attachment("audit.jsonl")),
        ],
        lines,
    )
        .into_response())
}

/// Change an account's role, reset a local account's password, or disable (sessions
/// and tokens revoked at once, running containers stopped) or enable it (admins only).
#[utoipa::path(patch, path = "/api/v1/admin/users/{name}", params(("name" = String, Path)), request_body = UserPatch,
    responses((status = 200, body = UserInfo), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "a directory account's role or password, or the caller's own access")))]
async fn patch_user(
    State(users): State<Arc<Users>>,
    caller: Caller,
    admin: Admin,
    audit: Option<Extension<AuditActor>>,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<UserPatch>,
) -> Result<Json<UserInfo>, ApiError> {
    if let Some(Extension(a)) = audit {
        a.set_action(match (&req.disabled, &req.role, &req.password) {
            (Some(true), _, _) => "user.disable",
            (Some(false), _, _) => "user.enable",
            (None, Some(_), _) => "user.role",
            (None, None, Some(_)) => "user.password_reset",
            (None, None, None) => "user.update",
        });
    }
    Ok(Json(users.patch(&caller, &admin, &name, req).await?))
}

/// Delete an account (admins only): its containers are refused (409) unless
/// `containers=delete`; its images and storage stay unless `images=delete`,
/// `storage=delete`.
#[utoipa::path(delete, path = "/api/v1/admin/users/{name}", params(("name" = String, Path), UserDeletion),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_user(
    State(users): State<Arc<Users>>,
    caller: Caller,
    admin: Admin,
    Path(name): Path<String>,
    ApiQuery(how): ApiQuery<UserDeletion>,
) -> Result<StatusCode, ApiError> {
    users.delete(&caller, &admin, &name, how).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every user's quota (their role's, with overrides) and what they hold now (admins only).
#[utoipa::path(get, path = "/api/v1/admin/quotas", responses((status = 200, body = [UserQuota]), (status = 403, body = ErrorBody)))]
async fn list_quotas(
    State(quotas): State<Arc<Quotas>>,
    admin: Admin,
) -> Result<Json<Vec<UserQuota>>, ApiError> {
    Ok(Json(quotas.all(&admin).await?))
}

/// One user's quota in force, their overrides and their usage (admins only).
#[utoipa::path(get, path = "/api/v1/admin/users/{name}/quota", params(("name" = String, Path)),
    responses((status = 200, body = UserQuota), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_quota(
    State(quotas): State<Arc<Quotas>>,
    admin: Admin,
    Path(name): Path<String>,
) -> Result<Json<UserQuota>, ApiError> {
    Ok(Json(quotas.get(&admin, &name).await?))
}

/// Set a user's quota overrides: each field given replaces the role's value for them
/// (`-1`: no limit); a field left out keeps the role's (admins only).
#[utoipa::path(put, path = "/api/v1/admin/users/{name}/quota", params(("name" = String, Path)), request_body = QuotaPatch,
    responses((status = 200, body = UserQuota), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn set_quota(
    State(quotas): State<Arc<Quotas>>,
    admin: Admin,
    Path(name): Path<String>,
    ApiJson(patch): ApiJson<QuotaPatch>,
) -> Result<Json<UserQuota>, ApiError> {
    Ok(Json(quotas.set(&admin, &name, patch).await?))
}

/// Remove a user's quota overrides: their role's quota applies again (admins only).
#[utoipa::path(delete, path = "/api/v1/admin/users/{name}/quota", params(("name" = String, Path)),
    responses((status = 200, body = UserQuota), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn clear_quota(
    State(quotas): State<Arc<Quotas>>,
    admin: Admin,
    Path(name): Path<String>,
) -> Result<Json<UserQuota>, ApiError> {
    Ok(Json(quotas.clear(&admin, &name).await?))
}
