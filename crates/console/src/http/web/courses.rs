//! `/courses`: the courses one teaches or is enrolled in, and joining one with its code;
//! for a course's teacher, its members, enrolment, its join code, its images' names, and
//! the members' containers with stop, start and a read-only view. Every act goes through
//! the same use cases (and the same checks) as the API.

use super::i18n::Lang;
use super::{
    encode, maybe_when, notice, page, see_other, status_badge, when, Ctx, NoticeQuery, OrPage,
    PageError, Posted, Refused, Session,
};
use crate::http::client_addr::ClientAddr;
use crate::http::Http;
use crate::service::audit::AuditActor;
use crate::service::containers::ContainerUsage;
use crate::service::courses::{CourseImageNote, Enrolment, JoinCourse, NewCourse};
use crate::service::{human_bytes, trim_number, Error};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use maud::{html, Markup};
use wm_domain::Role;

/// How long ago an RFC 3339 time was, in days, hours and minutes.
fn age(ctx: &Ctx, since: &str) -> String {
    let Ok(t) = time::OffsetDateTime::parse(since, &time::format_description::well_known::Rfc3339)
    else {
        return "—".into();
    };
    let secs = (crate::util::now() - t.unix_timestamp()).max(0);
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    let (du, hu, mu) = match ctx.lang {
        Lang::En => ("d", "h", "m"),
        Lang::Ja => ("日", "時間", "分"),
    };
    match (d, h) {
        (0, 0) => format!("{m}{mu}"),
        (0, _) => format!("{h}{hu} {m}{mu}"),
        _ => format!("{d}{du} {h}{hu}"),
    }
}

/// CPU time and memory in use, or a dash for a container that is not measured.
fn usage_cells(usage: Option<&ContainerUsage>) -> (String, String) {
    match usage {
        Some(u) => (
            format!("{} s", trim_number(u.cpu_seconds)),
            u.memory.map_or("—".into(), |m| {
                human_bytes(i64::try_from(m).unwrap_or(i64::MAX))
            }),
        ),
        None => ("—".into(), "—".into()),
    }
}

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
        section aria-labelledby="join-h" {
            h2 #join-h { (t.join_title) }
            form.card method="post" action="/courses/join" {
                (ctx.csrf_field())
                div.field {
                    label for="join-code" { (t.join_code) }
                    input #join-code name="code" required maxlength="40" autocomplete="off"
                        autocapitalize="characters" spellcheck="false" placeholder="ABCDE-FGHJK";
                }
                button.primary type="submit" { (t.join_button) }
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
    let images = http.courses.images(caller, id).await.or_page(ctx)?;
    let base = format!("/courses/{}", course.id);
    let body = html! {
        (top)
        p {
            (t.course_teacher) ": " strong { (course.owner) }
            @if let Some(term) = &course.term { " — " (term) }
            @if let Some(ends) = &course.ends_at { " — " (t.expires) " " (when(ends)) }
        }
        @if taught.is_some() {
            section aria-labelledby="join-code-h" {
                h2 #join-code-h { (t.join_code) }
                @match &course.join_code {
                    Some(code) => {
                        p { strong #course-join-code { (code) } }
                        p.hint { (t.join_code_hint) }
                    }
                    None => { p.muted #no-join-code { (t.join_code_none) } }
                }
                form.inline method="post" action={ (base) "/join-code" } {
                    (ctx.csrf_field())
                    button type="submit" { (t.join_code_new) }
                }
                @if course.join_code.is_some() {
                    " "
                    form.inline method="post" action={ (base) "/join-code/delete" } {
                        (ctx.csrf_field())
                        button type="submit" { (t.join_code_off) }
                    }
                }
            }
        }
        section aria-labelledby="course-quota-h" {
            h2 #course-quota-h { (t.course_quota) }
            @match &course.quota {
                None => { p.muted { (t.course_quota_none) } }
                Some(q) => {
                    dl.facts #course-quota {
                        @for (word, value) in [
                            (t.q_containers, q.containers.map(|n| n.to_string())),
                            (t.q_running, q.running.map(|n| n.to_string())),
                            (t.q_cpus, q.cpus.map(trim_number)),
                            (t.q_memory, q.memory_bytes.map(human_bytes)),
                            (t.q_gpus, q.gpus.map(|n| n.to_string())),
                            (t.q_storage, q.storage_bytes.map(human_bytes)),
                        ] {
                            @if let Some(v) = value { dt { (word) } dd { (v) } }
                        }
                    }
                }
            }
        }
        section aria-labelledby="course-images-h" {
            h2 #course-images-h { (t.course_images) }
            @if images.is_empty() { p.muted { (t.no_course_images) } } @else {
                table.cards #course-images {
                    thead { tr {
                        th scope="col" { (t.image) } th scope="col" { (t.course_image_title) }
                        th scope="col" { (t.course_image_note) }
                    } }
                    tbody { @for i in &images { tr data-image=(i.reference) {
                        td data-label=(t.image) { code { (i.reference) } }
                        @if taught.is_some() {
                            td data-label=(t.course_image_title) colspan="2" {
                                form.inline method="post" action={ (base) "/images" } {
                                    (ctx.csrf_field())
                                    input type="hidden" name="image" value=(i.reference);
                                    input name="title" maxlength="100" aria-label=(t.course_image_title)
                                        value=(i.title.as_deref().unwrap_or(""));
                                    " "
                                    input name="note" maxlength="500" aria-label=(t.course_image_note)
                                        value=(i.note.as_deref().unwrap_or(""));
                                    " "
                                    button type="submit" { (t.save) }
                                }
                            }
                        } @else {
                            td data-label=(t.course_image_title) { (i.title.as_deref().unwrap_or("—")) }
                            td data-label=(t.course_image_note) { (i.note.as_deref().unwrap_or("—")) }
                        }
                    } } }
                }
            }
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
                            th scope="col" { (t.age) } th scope="col" { (t.cpu_time) }
                            th scope="col" { (t.memory_in_use) } th scope="col" { (t.actions) }
                        } }
                        tbody { @for m in list { @let c = &m.container; @let (cpu, mem) = usage_cells(m.usage.as_ref()); tr data-container=(c.name) {
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
                            td data-label=(t.age) { time datetime=(c.created_at) { (age(ctx, &c.created_at)) } }
                            td data-label=(t.cpu_time) { (cpu) }
                            td data-label=(t.memory_in_use) { (mem) " / " (human_bytes(c.memory_bytes)) }
                            td data-label=(t.actions) {
                                a href={ (base) "/containers/" (encode(&c.name)) } { (t.view_link) }
                                " "
                                @let op = if c.status.is_live() { ("stop", t.stop) } else { ("start", t.start) };
                                form.inline method="post" action={ (base) "/containers/" (encode(&c.name)) "/" (op.0) } {
                                    (ctx.csrf_field())
                                    button type="submit" { (op.1) }
                                }

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

/// Enrols the caller in the course whose join code they entered.
pub(super) async fn join(
    State(http): State<Http>,
    ClientAddr(addr): ClientAddr,
    audit: Option<Extension<AuditActor>>,
    posted: Posted,
) -> Result<Response, PageError> {
    let ctx = &posted.ctx;
    let req = JoinCourse {
        code: posted.field("code").to_string(),
    };
    let course = http
        .courses
        .join(ctx.caller(), addr, req)
        .await
        .or_page(ctx)?;
    if let Some(Extension(a)) = audit {
        a.set_target(&course.id);
    }
    Ok(see_other(&format!("/courses/{}?notice=joined", course.id)))
}

/// Gives the course a new join code.
pub(super) async fn renew_join_code(
    State(http): State<Http>,
    Path(id): Path<String>,
    posted: Posted,
) -> Result<Response, PageError> {
    let ctx = &posted.ctx;
    let course = http.courses.taught(ctx.caller(), &id).await.or_page(ctx)?;
    http.courses.renew_join_code(course).await.or_page(ctx)?;
    Ok(see_other(&format!("/courses/{id}?notice=join-code")))
}

/// Turns the course's join code off.
pub(super) async fn remove_join_code(
    State(http): State<Http>,
    Path(id): Path<String>,
    posted: Posted,
) -> Result<Response, PageError> {
    let ctx = &posted.ctx;
    let course = http.courses.taught(ctx.caller(), &id).await.or_page(ctx)?;
    http.courses.remove_join_code(course).await.or_page(ctx)?;
    Ok(see_other(&format!("/courses/{id}?notice=join-code")))
}

/// Sets the course's name and note for one of its images.
pub(super) async fn note_image(
    State(http): State<Http>,
    Path(id): Path<String>,
    posted: Posted,
) -> Result<Response, PageError> {
    let ctx = &posted.ctx;
    let course = http.courses.taught(ctx.caller(), &id).await.or_page(ctx)?;
    let req = CourseImageNote {
        image: posted.field("image").to_string(),
        title: Some(posted.field("title").to_string()),
        note: Some(posted.field("note").to_string()),
    };
    http.courses.note_image(course, req).await.or_page(ctx)?;
    Ok(see_other(&format!("/courses/{id}?notice=saved")))
}

/// A member's container, read only, for the course's teacher: what it is, what it uses,
/// its recent output; stop or start, and nothing that reaches inside it.
pub(super) async fn container(
    State(http): State<Http>,
    Session(ctx): Session,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let t = ctx.t;
    let course = http.courses.taught(ctx.caller(), &id).await.or_page(&ctx)?;
    let owned = http
        .containers
        .load_in_course(&course, &name)
        .await
        .or_page(&ctx)?;
    // The page still helps when the host cannot give the logs (a gone container).
    let logs = match http.containers.logs(&owned, 100).await {
        Ok(b) => String::from_utf8_lossy(&strip_ansi_escapes::strip(&b)).into_owned(),
        Err(_) => String::new(),
    };
    let m = http.containers.member(owned).await.or_page(&ctx)?;
    let c = &m.container;
    let (cpu, mem) = usage_cells(m.usage.as_ref());
    let base = format!("/courses/{id}");
    let body = html! {
        p.hint #read-only { (t.read_only_note) }
        dl.facts {
            dt { (t.owner) } dd { (c.owner) }
            dt { (t.image) } dd { code { (c.image) } }
            dt { (t.backend) } dd { (t.backend_word(c.backend)) }
            dt { (t.host) } dd { (c.host) }
            dt { (t.status) } dd { (status_badge(t, c.status)) }
            dt { (t.ports) } dd {
                @if c.ports.is_empty() { span.muted { (t.no_ports) } }
                @for p in &c.ports {
                    (p.guest) "→" (p.host.map_or("Service".to_string(), |h| format!("{}:{h}", c.address))) " "
                }
            }
            dt { (t.created) } dd { (when(&c.created_at)) " (" (age(&ctx, &c.created_at)) ")" }
            @if let Some(at) = &c.expires_at {
                dt { (t.expires) } dd { (when(at)) }
            }
            dt { (t.cpu_time) } dd #usage-cpu { (cpu) " (" (t.cpus_label) ": " (trim_number(c.cpus)) ")" }
            dt { (t.memory_in_use) } dd #usage-memory { (mem) " / " (human_bytes(c.memory_bytes)) }
        }
        div.actions {
            @let op = if c.status.is_live() { ("stop", t.stop) } else { ("start", t.start) };
            form.inline method="post" action={ (base) "/containers/" (encode(&c.name)) "/" (op.0) } {
                (ctx.csrf_field())
                button type="submit" { (op.1) }
            }
            " "
            a href=(base) { (t.course_containers) }
        }
        (logs_section(&ctx, &logs))
    };
    Ok(page(&ctx, &c.name, body).into_response())
}

fn logs_section(ctx: &Ctx, logs: &str) -> Markup {
    let t = ctx.t;
    html! {
        section aria-labelledby="logs-h" {
            h2 #logs-h { (t.logs_title) }
            @if logs.is_empty() { p.muted #no-logs { (t.no_logs) } }
            pre #logs tabindex="0" hidden[logs.is_empty()] { (logs) }
        }
    }
}
