//! `/courses`: the courses one teaches or is enrolled in; for a course's teacher, its
//! members, enrolment, and the members' containers with stop and start. Every act goes
//! through the same use cases (and the same checks) as the API.

use super::{
    encode, maybe_when, notice, page, see_other, status_badge, when, Ctx, NoticeQuery, OrPage,
    PageError, Posted, Refused, Session,
};
use crate::http::Http;
use crate::service::courses::{Enrolment, NewCourse};
use crate::service::Error;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use wm_domain::Role;

pub(super) async fn list(
    State(http): State<Http>,
    Session(ctx): Session,
    q: Query<NoticeQuery>,
) -> Result<Response, PageError> {
    list_page(&http, &ctx, notice(&ctx, &q), None).await
}

/// The list of courses: `top` above it, or the refused form of a new course.
async fn list_page(
    http: &Http,
    ctx: &Ctx,
    top: Markup,
    refused: Option<&Refused>,
) -> Result<Response, PageError> {
    let t = ctx.t;
    let courses = http.courses.list(ctx.caller()).await.or_page(ctx)?;
    let teaches = matches!(ctx.caller().role, Role::Teacher | Role::Admin);
    let kept = |name: &str| Refused::value(refused, "new-course", name, "");
    let body = html! {
        (top)
        @if courses.is_empty() { p.muted { (t.no_courses) } } @else {
            table.cards #courses {
                thead { tr {
                    th scope="col" { (t.course_name) } th scope="col" { (t.course_term) }
                    th scope="col" { (t.course_teacher) } th scope="col" { (t.members) } th scope="col" { (t.expires) }
                } }
                tbody { @for c in &courses { tr {
                    td data-label=(t.course_name) { a href={ "/courses/" (c.id) } { (c.name) } }
                    td data-label=(t.course_term) { (c.term.as_deref().unwrap_or("—")) }
                    td data-label=(t.course_teacher) { (c.owner) }
                    td data-label=(t.members) { (c.members.len()) }
                    td data-label=(t.expires) { (maybe_when(c.ends_at.as_deref())) }
                } } }
            }
        }
        @if teaches {
            section aria-labelledby="new-course-h" {
                h2 #new-course-h { (t.create_course) }
                form.card #new-course method="post" action="/courses" {
                    (ctx.csrf_field())
                    (Refused::alert(refused, ctx, "new-course"))
                    div.field {
                        label for="course-name" { (t.course_name) }
                        input #course-name name="name" required maxlength="100" autocomplete="off" value=(kept("name"));
                    }
                    div.field {
                        label for="course-term" { (t.course_term) }
                        input #course-term name="term" maxlength="40" autocomplete="off" value=(kept("term"));
                    }
                    div.field {
                        label for="course-ends" { (t.course_ends) }
                        input #course-ends name="ends_at" autocomplete="off" placeholder="2026-07-31T23:59:00+09:00" value=(kept("ends_at"));
                    }
                    button.primary type="submit" { (t.create_course) }
                }
            }
        }
    };
    let status = refused.map_or(StatusCode::OK, |r| r.status);
    Ok((status, page(ctx, t.courses_title, body)).into_response())
}

pub(super) async fn create(
    State(http): State<Http>,
    posted: Posted,
) -> Result<Response, PageError> {
    let ctx = &posted.ctx;
    let optional = |name: &str| {
        let v = posted.field(name).trim();
        (!v.is_empty()).then(|| v.to_string())
    };
    let req = NewCourse {
        name: posted.field("name").to_string(),
        term: optional("term"),
        ends_at: optional("ends_at"),
        ldap_group: None,
        host_labels: None,
    };
    match http.courses.create(ctx.caller(), req).await {
        Ok(course) => Ok(see_other(&format!("/courses/{}", course.id))),
        Err(e) => {
            let refused = Refused::new(ctx, "new-course", posted.fields.clone(), e);
            list_page(&http, ctx, html! {}, Some(&refused)).await
        }
    }
}

pub(super) async fn detail(
    State(http): State<Http>,
    Session(ctx): Session,
    Path(id): Path<String>,
    q: Query<NoticeQuery>,
) -> Result<Response, PageError> {
    detail_page(&http, &ctx, &id, notice(&ctx, &q), None).await
}

/// A course's page: `top` above it, or a refused form of it.
async fn detail_page(
    http: &Http,
    ctx: &Ctx,
    id: &str,
    top: Markup,
    refused: Option<&Refused>,
) -> Result<Response, PageError> {
    let t = ctx.t;
    let caller = ctx.caller();
    let course = http.courses.get(caller, id).await.or_page(ctx)?;
    let taught = match http.courses.taught(caller, id).await {
        Ok(taught) => Some(taught),
        Err(Error::Forbidden(_)) => None,
        Err(e) => return Err(e).or_page(ctx),
    };
    let containers = match &taught {
        Some(c) => Some(http.containers.of_course(c).await.or_page(ctx)?),
        None => None,
    };
    let base = format!("/courses/{}", course.id);
    let body = html! {
        (top)
        p {
            (t.course_teacher) ": " strong { (course.owner) }
            @if let Some(term) = &course.term { " — " (term) }
            @if let Some(ends) = &course.ends_at { " — " (t.expires) " " (when(ends)) }
        }
        section aria-labelledby="members-h" {
            h2 #members-h { (t.members) " (" (course.members.len()) ")" }
            @if course.members.is_empty() { p.muted { (t.no_members) } }
            ul #members { @for m in &course.members { li {
                (m)
                @if taught.is_some() {
                    " "
                    form.inline method="post" action={ (base) "/unenrol" } {
                        (ctx.csrf_field())
                        input type="hidden" name="user" value=(m);
                        button type="submit" { (t.unenrol) }
                    }
                }
            } } }
            @if taught.is_some() {
                form.card #enrol method="post" action={ (base) "/members" } {
                    (ctx.csrf_field())
                    (Refused::alert(refused, ctx, "enrol"))
                    div.field {
                        label for="enrol-users" { (t.enrol) }
                        textarea #enrol-users name="users" rows="3" required aria-describedby="enrol-hint" {
                            (Refused::value(refused, "enrol", "users", ""))
                        }
                        p.hint #enrol-hint { (t.enrol_hint) }
                    }
                    button.primary type="submit" { (t.enrol) }
                }
            }
        }
        section aria-labelledby="course-containers-h" {
            h2 #course-containers-h { (t.course_containers) }
            @match &containers {
                None => { p.muted { (t.course_only_teacher) } }
                Some(list) if list.is_empty() => { p.muted { (t.no_containers_at_all) } }
                Some(list) => {
                    table.cards #course-containers {
                        thead { tr {
                            th scope="col" { (t.name) } th scope="col" { (t.owner) } th scope="col" { (t.image) }
                            th scope="col" { (t.host) } th scope="col" { (t.status) } th scope="col" { (t.ports) }
                            th scope="col" { (t.created) } th scope="col" { (t.actions) }
                        } }
                        tbody { @for c in list { tr data-container=(c.name) {
                            td data-label=(t.name) { (c.name) }
                            td data-label=(t.owner) { (c.owner) }
                            td data-label=(t.image) { code { (c.image) } }
                            td data-label=(t.host) { (c.host) }
                            td data-label=(t.status) { (status_badge(t, c.status)) }
                            td data-label=(t.ports) {
                                @for p in &c.ports {
                                    (p.guest) "→" (p.host.map_or("Service".to_string(), |h| h.to_string())) " "
                                }
                            }
                            td data-label=(t.created) { (when(&c.created_at)) }
                            td data-label=(t.actions) {
                                @let op = if c.status.is_live() { ("stop", t.stop) } else { ("start", t.start) };
                                form.inline method="post" action={ (base) "/containers/" (encode(&c.name)) "/" (op.0) } {
                                    (ctx.csrf_field())
                                    button type="submit" { (op.1) }
                                }
                                " "
                                a href={ "/api/v1" (base) "/containers/" (encode(&c.name)) "/logs" } { (t.logs_link) }
                            }
                        } } }
                    }
                }
            }
        }
    };
    let status = refused.map_or(StatusCode::OK, |r| r.status);
    Ok((status, page(ctx, &course.name, body)).into_response())
}

pub(super) async fn enrol(
    State(http): State<Http>,
    Path(id): Path<String>,
    posted: Posted,
) -> Result<Response, PageError> {
    let ctx = &posted.ctx;
    let course = http.courses.taught(ctx.caller(), &id).await.or_page(ctx)?;
    let users = posted
        .field("users")
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    if let Err(e) = http.courses.enrol(course, Enrolment { users }).await {
        let refused = Refused::new(ctx, "enrol", posted.fields.clone(), e);
        return detail_page(&http, ctx, &id, html! {}, Some(&refused)).await;
    }
    Ok(see_other(&format!("/courses/{id}?notice=enrolled")))
}

pub(super) async fn unenrol(
    State(http): State<Http>,
    Path(id): Path<String>,
    posted: Posted,
) -> Result<Response, PageError> {
    let ctx = &posted.ctx;
    let course = http.courses.taught(ctx.caller(), &id).await.or_page(ctx)?;
    http.courses
        .unenrol(course, posted.field("user"))
        .await
        .or_page(ctx)?;
    Ok(see_other(&format!("/courses/{id}?notice=unenrolled")))
}

/// Stops a member's container for the course's teacher.
pub(super) async fn stop(
    state: State<Http>,
    Path((id, name)): Path<(String, String)>,
    posted: Posted,
) -> Result<Response, PageError> {
    act(state, id, name, "stop", posted).await
}

/// Starts a member's container for the course's teacher.
pub(super) async fn start(
    state: State<Http>,
    Path((id, name)): Path<(String, String)>,
    posted: Posted,
) -> Result<Response, PageError> {
    act(state, id, name, "start", posted).await
}

async fn act(
    State(http): State<Http>,
    id: String,
    name: String,
    op: &str,
    posted: Posted,
) -> Result<Response, PageError> {
    let ctx = &posted.ctx;
    let course = http.courses.taught(ctx.caller(), &id).await.or_page(ctx)?;
    let c = http
        .containers
        .load_in_course(&course, &name)
        .await
        .or_page(ctx)?;
    let notice = match op {
        "stop" => {
            http.containers.stop(c).await.or_page(ctx)?;
            "stopped"
        }
        "start" => {
            http.containers.start(c).await.or_page(ctx)?;
            "started"
        }
        _ => return Err(Error::not_found("page")).or_page(ctx),
    };
    Ok(see_other(&format!("/courses/{id}?notice={notice}")))
}
