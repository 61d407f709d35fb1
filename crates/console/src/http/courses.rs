//! `/courses/...`: courses, their members, and what their teachers see and do with the
//! members' containers. Every teacher's act passes through the audit middleware with the
//! teacher's name (reads of a member's container included).

use super::client_addr::ClientAddr;
use super::error::ErrorBody;
use super::extract::{ApiJson, ApiQuery};
use super::{ApiError, Http};
use crate::service::accounts::{Admin, Caller};
use crate::service::audit::AuditActor;
use crate::service::containers::{
    Container, ContainerUsage, Containers, MemberContainer, OwnedContainer,
};
use crate::service::courses::{
    CourseImage, CourseImageNote, CourseView, Courses, Enrolment, JoinCourse, NewCourse,
};
use crate::service::quotas::QuotaPatch;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
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
        member_container_view,
        stop_member_container,
        start_member_container,
        member_container_logs,
        join_course,
        renew_join_code,
        remove_join_code,
        course_images,
        note_course_image,
        set_course_quota,
        clear_course_quota
    ),
    components(schemas(
        NewCourse,
        CourseView,
        Enrolment,
        JoinCourse,
        CourseImage,
        CourseImageNote,
        MemberContainer,
        ContainerUsage
    ))
)]
pub(super) struct Doc;

pub(super) fn router() -> Router<Http> {
    Router::new()
        .route("/courses", post(create_course).get(list_courses))
        .route("/courses/join", post(join_course))
        .route("/courses/{id}", get(get_course))
        .route(
            "/courses/{id}/join-code",
            put(renew_join_code).delete(remove_join_code),
        )
        .route(
            "/courses/{id}/images",
            get(course_images).put(note_course_image),
        )
        .route(
            "/courses/{id}/quota",
            put(set_course_quota).delete(clear_course_quota),
        )
        .route("/courses/{id}/members", post(enrol))
        .route("/courses/{id}/members/{user}", delete(unenrol))
        .route("/courses/{id}/containers", get(course_containers))
        .route(
            "/courses/{id}/containers/{name}",
            get(member_container_view),
        )
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

/// The members' containers, with their status, image, host, ports, age and what they use
/// now (the course's teacher).
#[utoipa::path(get, path = "/api/v1/courses/{id}/containers", params(("id" = String, Path)),
    responses((status = 200, body = [MemberContainer]), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn course_containers(
    State(courses): State<Arc<Courses>>,
    State(containers): State<Arc<Containers>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<MemberContainer>>, ApiError> {
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

/// A member's container, read only, with what it uses now (the course's teacher;
/// audited with their name).
#[utoipa::path(get, path = "/api/v1/courses/{id}/containers/{name}", params(("id" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = MemberContainer), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn member_container_view(
    State(courses): State<Arc<Courses>>,
    State(containers): State<Arc<Containers>>,
    caller: Caller,
    Path((id, name)): Path<(String, String)>,
) -> Result<Json<MemberContainer>, ApiError> {
    let c = member_container(&courses, &containers, &caller, &id, &name).await?;
    Ok(Json(containers.member(c).await?))
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

/// Enrol oneself with a course's join code. A wrong code answers 400 whatever the
/// reason, and counts like a failed login (429 after too many).
#[utoipa::path(post, path = "/api/v1/courses/join", request_body = JoinCourse,
    responses((status = 200, body = CourseView), (status = 400, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "too many wrong codes; see Retry-After")))]
async fn join_course(
    State(courses): State<Arc<Courses>>,
    caller: Caller,
    ClientAddr(addr): ClientAddr,
    audit: Option<Extension<AuditActor>>,
    ApiJson(req): ApiJson<JoinCourse>,
) -> Result<Json<CourseView>, ApiError> {
    let course = courses.join(&caller, addr, req).await?;
    if let Some(Extension(a)) = audit {
        a.set_target(&course.id);
    }
    Ok(Json(course))
}

/// Give the course a new join code; the old one stops working (the course's teacher).
#[utoipa::path(put, path = "/api/v1/courses/{id}/join-code", params(("id" = String, Path)),
    responses((status = 200, body = CourseView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn renew_join_code(
    State(courses): State<Arc<Courses>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<CourseView>, ApiError> {
    let course = courses.taught(&caller, &id).await?;
    Ok(Json(courses.renew_join_code(course).await?))
}

/// Turn the course's join code off (the course's teacher).
#[utoipa::path(delete, path = "/api/v1/courses/{id}/join-code", params(("id" = String, Path)),
    responses((status = 200, body = CourseView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn remove_join_code(
    State(courses): State<Arc<Courses>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<CourseView>, ApiError> {
    let course = courses.taught(&caller, &id).await?;
    Ok(Json(courses.remove_join_code(course).await?))
}

/// The images shared with the course, with the course's name and note for each (its
/// teacher, members and administrators).
#[utoipa::path(get, path = "/api/v1/courses/{id}/images", params(("id" = String, Path)),
    responses((status = 200, body = [CourseImage]), (status = 404, body = ErrorBody)))]
async fn course_images(
    State(courses): State<Arc<Courses>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<CourseImage>>, ApiError> {
    Ok(Json(courses.images(&caller, &id).await?))
}

/// Name an image shared with the course, and say what it is for (the course's teacher).
#[utoipa::path(put, path = "/api/v1/courses/{id}/images", params(("id" = String, Path)), request_body = CourseImageNote,
    responses((status = 200, body = [CourseImage]), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn note_course_image(
    State(courses): State<Arc<Courses>>,
    caller: Caller,
    audit: Option<Extension<AuditActor>>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CourseImageNote>,
) -> Result<Json<Vec<CourseImage>>, ApiError> {
    let course = courses.taught(&caller, &id).await?;
    if let Some(Extension(a)) = audit {
        a.set_detail(format!(
            "image {}",
            req.image.chars().take(200).collect::<String>()
        ));
    }
    Ok(Json(courses.note_image(course, req).await?))
}

/// Give the course's members a quota: each value given replaces their role's while the
/// course runs (`-1`: no limit); a user's own overrides still come first
/// (administrators).
#[utoipa::path(put, path = "/api/v1/courses/{id}/quota", params(("id" = String, Path)), request_body = QuotaPatch,
    responses((status = 200, body = CourseView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn set_course_quota(
    State(courses): State<Arc<Courses>>,
    admin: Admin,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<QuotaPatch>,
) -> Result<Json<CourseView>, ApiError> {
    let course = courses.taught(&caller, &id).await?;
    Ok(Json(courses.set_quota(&admin, course, req).await?))
}

/// Remove the course's quota (administrators).
#[utoipa::path(delete, path = "/api/v1/courses/{id}/quota", params(("id" = String, Path)),
    responses((status = 200, body = CourseView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn clear_course_quota(
    State(courses): State<Arc<Courses>>,
    admin: Admin,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<CourseView>, ApiError> {
    let course = courses.taught(&caller, &id).await?;
    Ok(Json(courses.clear_quota(&admin, course).await?))
}
