//! `/courses/...`: courses, their members, and what their teachers see and do with the
//! members' containers. Every teacher's act passes through the audit middleware with the
//! teacher's name (reads of a member's container included).

use super::error::ErrorBody;
use super::extract::{ApiJson, ApiQuery};
use super::{ApiError, Http};
use crate::service::accounts::Caller;
use crate::service::audit::AuditActor;
use crate::service::containers::{Container, Containers, OwnedContainer};
use crate::service::courses::{CourseView, Courses, Enrolment, NewCourse};
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Extension;
use axum::{Json, Router};
use serde::Deserialize;
use std::sync::Arc;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    paths(
        create_course,
        list_courses,
        get_course,
        enrol,
        unenrol,
        course_containers,
        stop_member_container,
        start_member_container,
        member_container_logs
    ),
    components(schemas(NewCourse, CourseView, Enrolment))
)]
pub(super) struct Doc;

pub(super) fn router() -> Router<Http> {
    Router::new()
        .route("/courses", post(create_course).get(list_courses))
        .route("/courses/{id}", get(get_course))
        .route("/courses/{id}/members", post(enrol))
        .route("/courses/{id}/members/{user}", delete(unenrol))
        .route("/courses/{id}/containers", get(course_containers))
        .route(
            "/courses/{id}/containers/{name}/stop",
            post(stop_member_container),
        )
        .route(
            "/courses/{id}/containers/{name}/start",
            post(start_member_container),
        )
        .route(
            "/courses/{id}/containers/{name}/logs",
            get(member_container_logs),
        )
}

/// Create a course (teachers and administrators); the caller is its teacher.
#[utoipa::path(post, path = "/api/v1/courses", request_body = NewCourse,
    responses((status = 201, body = CourseView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn create_course(
    State(courses): State<Arc<Courses>>,
    caller: Caller,
    audit: Option<Extension<AuditActor>>,
    ApiJson(req): ApiJson<NewCourse>,
) -> Result<(StatusCode, Json<CourseView>), ApiError> {
    let course = courses.create(&caller, req).await?;
    if let Some(Extension(a)) = audit {
        a.set_target(&course.id);
    }
    Ok((StatusCode::CREATED, Json(course)))
}

/// The courses the caller teaches or is enrolled in (administrators: every course).
#[utoipa::path(get, path = "/api/v1/courses", responses((status = 200, body = [CourseView])))]
async fn list_courses(
    State(courses): State<Arc<Courses>>,
    caller: Caller,
) -> Result<Json<Vec<CourseView>>, ApiError> {
    Ok(Json(courses.list(&caller).await?))
}

/// One course (its teacher, its members, administrators).
#[utoipa::path(get, path = "/api/v1/courses/{id}", params(("id" = String, Path)),
    responses((status = 200, body = CourseView), (status = 404, body = ErrorBody)))]
async fn get_course(
    State(courses): State<Arc<Courses>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<CourseView>, ApiError> {
    Ok(Json(courses.get(&caller, &id).await?))
}

/// Enrol existing accounts by name, all or none (the course's teacher).
#[utoipa::path(post, path = "/api/v1/courses/{id}/members", params(("id" = String, Path)), request_body = Enrolment,
    responses((status = 200, body = CourseView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn enrol(
    State(courses): State<Arc<Courses>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<Enrolment>,
) -> Result<Json<CourseView>, ApiError> {
    let course = courses.taught(&caller, &id).await?;
    Ok(Json(courses.enrol(course, req).await?))
}

/// Take a member out of the course (the course's teacher).
#[utoipa::path(delete, path = "/api/v1/courses/{id}/members/{user}", params(("id" = String, Path), ("user" = String, Path)),
    responses((status = 200, body = CourseView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn unenrol(
    State(courses): State<Arc<Courses>>,
    caller: Caller,
    Path((id, user)): Path<(String, String)>,
) -> Result<Json<CourseView>, ApiError> {
    let course = courses.taught(&caller, &id).await?;
    Ok(Json(courses.unenrol(course, &user).await?))
}

/// The members' containers, with their status, image, host, ports and age (the course's
/// teacher).
#[utoipa::path(get, path = "/api/v1/courses/{id}/containers", params(("id" = String, Path)),
    responses((status = 200, body = [Container]), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn course_containers(
    State(courses): State<Arc<Courses>>,
    State(containers): State<Arc<Containers>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<Container>>, ApiError> {
    let course = courses.taught(&caller, &id).await?;
    Ok(Json(containers.of_course(&course).await?))
}

/// A member's container of a course the caller teaches.
async fn member_container(
    courses: &Courses,
    containers: &Containers,
    caller: &Caller,
    id: &str,
    name: &str,
) -> Result<OwnedContainer, ApiError> {
    let course = courses.taught(caller, id).await?;
    Ok(containers.load_in_course(&course, name).await?)
}

/// Stop a member's container (the course's teacher; audited with their name).
#[utoipa::path(post, path = "/api/v1/courses/{id}/containers/{name}/stop", params(("id" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = Container), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn stop_member_container(
    State(courses): State<Arc<Courses>>,
    State(containers): State<Arc<Containers>>,
    caller: Caller,
    Path((id, name)): Path<(String, String)>,
) -> Result<Json<Container>, ApiError> {
    let c = member_container(&courses, &containers, &caller, &id, &name).await?;
    Ok(Json(containers.stop(c).await?))
}

/// Start (restart) a member's container, within its owner's quota (the course's teacher;
/// audited with their name).
#[utoipa::path(post, path = "/api/v1/courses/{id}/containers/{name}/start", params(("id" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = Container), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn start_member_container(
    State(courses): State<Arc<Courses>>,
    State(containers): State<Arc<Containers>>,
    caller: Caller,
    Path((id, name)): Path<(String, String)>,
) -> Result<Json<Container>, ApiError> {
    let c = member_container(&courses, &containers, &caller, &id, &name).await?;
    Ok(Json(containers.start(c).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsQuery {
    tail: Option<u32>,
}

/// A member's container's recent output, as text (the course's teacher; audited).
#[utoipa::path(get, path = "/api/v1/courses/{id}/containers/{name}/logs", params(("id" = String, Path), ("name" = String, Path), ("tail" = Option<u32>, Query, description = "lines; default 100, at most 10000")),
    responses((status = 200, content_type = "text/plain", body = String), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn member_container_logs(
    State(courses): State<Arc<Courses>>,
    State(containers): State<Arc<Containers>>,
    caller: Caller,
    Path((id, name)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<LogsQuery>,
) -> Result<Response, ApiError> {
    let c = member_container(&courses, &containers, &caller, &id, &name).await?;
    let body = containers
        .logs(&c, q.tail.unwrap_or(100).min(10_000))
        .await?;
    Ok((
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        body,
    )
        .into_response())
}
