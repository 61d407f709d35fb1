//! Courses: a teacher's class for a term, and who is enrolled in it.
//!
//! A teacher (or an administrator) creates a course and enrols people by name. The
//! course's teacher sees its members' containers and may stop or start them and read
//! their logs; nothing outside their courses. That right is a value: [`Taught`] is made
//! only by [`Courses::taught`], and the container use cases that act for a teacher take
//! one, so a container outside the teacher's courses cannot be reached (it answers 404,
//! like one that does not exist).

use super::accounts::Caller;
use super::containers::{parse_expiry, parse_requires};
use super::Error;
use crate::util::{new_id, now, rfc3339};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wm_domain::{Role, UserName};
use wm_store::{Course, Store};

/// At most this many names in one enrolment request.
const MAX_ENROL: usize = 1000;

/// `POST /api/v1/courses`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewCourse {
    /// 1 to 100 printable characters.
    pub(crate) name: String,
    /// The term, free text (`2026 spring`); at most 40 characters.
    #[serde(default)]
    pub(crate) term: Option<String>,
    /// RFC 3339, in the future.
    #[serde(default)]
    pub(crate) ends_at: Option<String>,
    /// A directory group whose members are enrolled, and kept in step at each login.
    #[serde(default)]
    pub(crate) ldap_group: Option<String>,
    /// Host labels the members' containers need unless they ask otherwise (`"gpu"` or
    /// `["gpu"]`).
    #[schema(value_type = Option<Object>)]
    #[serde(default)]
    pub(crate) host_labels: Option<serde_json::Value>,
}

/// `POST /api/v1/courses/{id}/members`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Enrolment {
    /// User names of existing accounts.
    pub(crate) users: Vec<String>,
}

/// A course as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct CourseView {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) term: Option<String>,
    /// The teacher who created it.
    pub(crate) owner: String,
    /// RFC 3339 or null.
    pub(crate) ends_at: Option<String>,
    pub(crate) ldap_group: Option<String>,
    /// Host labels its members' containers need by default.
    pub(crate) host_labels: Vec<String>,
    pub(crate) members: Vec<String>,
    pub(crate) created_at: String,
}

impl From<&Course> for CourseView {
    fn from(c: &Course) -> Self {
        CourseView {
            id: c.id.clone(),
            name: c.name.clone(),
            term: c.term.clone(),
            owner: c.owner.to_string(),
            ends_at: c.ends_at.map(rfc3339),
            ldap_group: c.ldap_group.clone(),
            host_labels: c.host_labels.clone(),
            members: c.members.iter().map(ToString::to_string).collect(),
            created_at: rfc3339(c.created_at),
        }
    }
}

/// A course the caller teaches (or any course, for an administrator): the proof the
/// teacher's container operations ask for.
pub(crate) struct Taught {
    course: Course,
}

impl Taught {
    /// Whether `user` is enrolled in the course.
    pub(crate) fn has_member(&self, user: &UserName) -> bool {
        self.course.members.contains(user)
    }

    pub(crate) fn members(&self) -> &[UserName] {
        &self.course.members
    }

    pub(crate) fn id(&self) -> &str {
        &self.course.id
    }
}

fn not_found(id: &str) -> Error {
    Error::not_found(format!(
        "course {}",
        id.chars().take(64).collect::<String>()
    ))
}

/// The longest course name, and term, in characters.
pub(crate) const MAX_NAME: usize = 100;
pub(crate) const MAX_TERM: usize = 40;

/// [`text`]'s rule as a regular expression (the API document's): `min` is 0 or 1.
pub(crate) fn text_pattern(min: usize, max: usize) -> String {
    const CONTROL: &str = "\\x00-\\x1f\\x7f-\\x9f";
    let inner = format!(
        "[^\\s{CONTROL}](?:[^{CONTROL}]{{0,{}}}[^\\s{CONTROL}])?",
        max - 2
    );
    let optional = if min == 0 { "?" } else { "" };
    format!("^\\s*(?:{inner}){optional}\\s*$")
}

/// Checks free text: trimmed, `min..=max` characters, no control characters.
fn text(value: &str, field: &'static str, min: usize, max: usize) -> Result<String, Error> {
    let v = value.trim();
    let n = v.chars().count();
    if n < min || n > max || v.chars().any(char::is_control) {
        return Err(Error::Invalid {
            rule: None,
            code: "invalid_input",
            message: format!("{field} is {min} to {max} printable characters"),
            field: Some(field),
        });
    }
    Ok(v.to_string())
}

/// The courses of the installation.
pub(crate) struct Courses {
    store: Store,
}

impl Courses {
    pub(crate) fn new(store: Store) -> Self {
        Self { store }
    }

    /// Creates a course taught by the caller (a teacher or an administrator).
    pub(crate) async fn create(
        &self,
        caller: &Caller,
        req: NewCourse,
    ) -> Result<CourseView, Error> {
        caller.require_full_scope()?;
        if !matches!(caller.role, Role::Teacher | Role::Admin) {
            return Err(Error::Forbidden(
                "only teachers and administrators may create courses".into(),
            ));
        }
        let now = now();
        let course = Course {
            id: new_id()[..12].to_string(),
            name: text(&req.name, "name", 1, MAX_NAME)?,
            term: req
                .term
                .as_deref()
                .map(|t| text(t, "term", 1, MAX_TERM))
                .transpose()?,
            owner: caller.name.clone(),
            ends_at: req
                .ends_at
                .as_deref()
                .map(|t| {
                    parse_expiry(t, now).map_err(|_| Error::Invalid {
                        rule: None,
                        code: "invalid_input",
                        message: "ends_at is a future date and time like 2026-07-31T23:59:00+09:00"
                            .into(),
                        field: Some("ends_at"),
                    })
                })
                .transpose()?,
            ldap_group: req
                .ldap_group
                .as_deref()
                .map(|g| text(g, "ldap_group", 1, 256))
                .transpose()?,
            host_labels: parse_requires(req.host_labels).map_err(|e| Error::Invalid {
                rule: None,
                code: "invalid_input",
                message: e.to_string(),
                field: Some("host_labels"),
            })?,
            created_at: now,
            members: Vec::new(),
        };
        self.store.insert_course(&course).await?;
        Ok(CourseView::from(&course))
    }

    /// The courses the caller teaches or is enrolled in; every course for an
    /// administrator.
    pub(crate) async fn list(&self, caller: &Caller) -> Result<Vec<CourseView>, Error> {
        caller.require_full_scope()?;
        let courses = if caller.is_admin() {
            self.store.courses(None, None).await?
        } else {
            let me = Some(caller.name.as_str());
            self.store.courses(me, me).await?
        };
        Ok(courses.iter().map(CourseView::from).collect())
    }

    /// One course, for its teacher, its members and administrators; anyone else is told
    /// it does not exist.
    pub(crate) async fn get(&self, caller: &Caller, id: &str) -> Result<CourseView, Error> {
        caller.require_full_scope()?;
        let course = self.store.course(id).await?.ok_or_else(|| not_found(id))?;
        if caller.is_admin() || course.owner == caller.name || course.members.contains(&caller.name)
        {
            Ok(CourseView::from(&course))
        } else {
            Err(not_found(id))
        }
    }

    /// The course, if the caller teaches it (or is an administrator). A member is told
    /// that only the teacher may; anyone else that there is no such course.
    pub(crate) async fn taught(&self, caller: &Caller, id: &str) -> Result<Taught, Error> {
        caller.require_full_scope()?;
        let course = self.store.course(id).await?.ok_or_else(|| not_found(id))?;
        if caller.is_admin() || course.owner == caller.name {
            Ok(Taught { course })
        } else if course.members.contains(&caller.name) {
            Err(Error::Forbidden(
                "only the course's teacher may do this".into(),
            ))
        } else {
            Err(not_found(id))
        }
    }

    /// Enrols existing accounts, all or none: an unknown name changes nothing.
    pub(crate) async fn enrol(&self, course: Taught, req: Enrolment) -> Result<CourseView, Error> {
        if req.users.is_empty() || req.users.len() > MAX_ENROL {
            return Err(Error::Invalid {
                rule: None,
                code: "invalid_input",
                message: format!("users is a list of 1 to {MAX_ENROL} user names"),
                field: Some("users"),
            });
        }
        let mut names = Vec::with_capacity(req.users.len());
        let mut unknown = Vec::new();
        for raw in &req.users {
            match UserName::parse(raw.trim()) {
                Ok(n) if self.store.user(n.as_str()).await?.is_some() => names.push(n),
                _ => unknown.push(raw.chars().take(64).collect::<String>()),
            }
        }
        if !unknown.is_empty() {
            return Err(Error::Invalid {
                rule: None,
                code: "unknown_users",
                message: format!(
                    "no accounts named {}; a directory account exists once its owner has logged in",
                    unknown.join(", ")
                ),
                field: Some("users"),
            });
        }
        self.store
            .add_course_members(course.id(), &names, now())
            .await?;
        self.reload(course.id()).await
    }

    /// Takes a member out of the course.
    pub(crate) async fn unenrol(&self, course: Taught, user: &str) -> Result<CourseView, Error> {
        if !self.store.remove_course_member(course.id(), user).await? {
            return Err(Error::not_found(format!(
                "member {} of course {}",
                user.chars().take(64).collect::<String>(),
                course.id()
            )));
        }
        self.reload(course.id()).await
    }

    async fn reload(&self, id: &str) -> Result<CourseView, Error> {
        let course = self.store.course(id).await?.ok_or_else(|| not_found(id))?;
        Ok(CourseView::from(&course))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The API document's pattern for free text says what [`text`] does.
    #[test]
    fn the_documented_text_pattern_agrees() {
        let re = regex::Regex::new(&text_pattern(1, 5)).unwrap();
        let mut inputs = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..7 {
            last = last
                .iter()
                .flat_map(|s| ['a', ' ', '\t', '\u{1}', 'é'].map(|c| format!("{s}{c}")))
                .collect();
            inputs.extend(last.iter().cloned());
        }
        for s in &inputs {
            assert_eq!(re.is_match(s), text(s, "name", 1, 5).is_ok(), "{s:?}");
        }
    }
}
