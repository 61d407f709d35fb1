//! Courses: a teacher's class for a term, and who is enrolled in it.
//!
//! A teacher (or an administrator) creates a course and enrols people by name. The
//! course's teacher sees its members' containers and may stop or start them and read
//! their logs; nothing outside their courses. That right is a value: [`Taught`] is made
//! only by [`Courses::taught`], and the container use cases that act for a teacher take
//! one, so a container outside the teacher's courses cannot be reached (it answers 404,
//! like one that does not exist).
//!
//! Students also enrol themselves with the course's join code, which its teacher makes,
//! renews and turns off. A code is ten characters drawn from 32 (50 random bits), and
//! entering codes is rate limited like logins (a wrong code counts as a failed login of
//! the caller's name from their address), so codes cannot be guessed; a wrong code, a
//! turned-off one and an ended course's all get the same 400, which says nothing about
//! which courses exist.
//!
//! A course names the images shared with it (its own title and note for each), and an
//! administrator may give it a quota for its members (see `service::quotas`).

use super::accounts::{Admin, Caller};
use super::containers::{parse_expiry, parse_requires};
use super::quotas::{override_view, parse_patch, QuotaPatch, QuotaView};
use super::ratelimit::LoginLimiter;
use super::Error;
use crate::util::{new_id, now, rfc3339};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use utoipa::ToSchema;
use wm_domain::{ImageRef, Role, UserName};
use wm_store::{Course, CourseShare, Store, StoreError};

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
    /// The code that enrols whoever enters it (`POST /api/v1/courses/join`), shown to
    /// the course's teacher and administrators only; `null` otherwise, or when the
    /// course takes none.
    pub(crate) join_code: Option<String>,
    /// The quota an administrator gave the course's members (`null` fields keep the
    /// role's value); `null` when none.
    pub(crate) quota: Option<QuotaView>,
}

/// `POST /api/v1/courses/join`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct JoinCourse {
    /// The course's join code, as its teacher gave it (case, spaces and `-` do not
    /// matter).
    pub(crate) code: String,
}

/// `PUT /api/v1/courses/{id}/images`: the course's name and note for an image shared
/// with it; both empty or left out remove them.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CourseImageNote {
    /// The image's reference, as shared with the course.
    pub(crate) image: String,
    /// The course's name for it ("exercise 3"); at most 100 characters.
    #[serde(default)]
    pub(crate) title: Option<String>,
    /// What the members should do with it; at most 500 characters.
    #[serde(default)]
    pub(crate) note: Option<String>,
}

/// An image shared with a course, with the course's name and note for it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct CourseImage {
    /// The image's reference.
    #[serde(rename = "ref")]
    pub(crate) reference: String,
    /// Whose image it is.
    pub(crate) owner: String,
    /// The course (id).
    pub(crate) course: String,
    pub(crate) title: Option<String>,
    pub(crate) note: Option<String>,
}

impl From<CourseShare> for CourseImage {
    fn from(s: CourseShare) -> Self {
        Self {
            reference: s.reference,
            owner: s.owner,
            course: s.course,
            title: s.title,
            note: s.note,
        }
    }
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
            join_code: None,
            quota: None,
        }
    }
}

/// The characters of join codes: no 0/O or 1/I, which read alike.
const CODE_ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// Characters in a join code: 10 of 32 are 50 random bits.
const CODE_LEN: usize = 10;

/// A new random join code, as stored (without the `-` it is shown with).
fn new_join_code() -> String {
    use rand::RngCore;
    let mut b = [0u8; CODE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut b);
    // 256 is a multiple of 32: every character is equally likely.
    b.iter()
        .map(|x| char::from(CODE_ALPHABET[usize::from(*x) % CODE_ALPHABET.len()]))
        .collect()
}

/// A join code as shown: `ABCDE-FGHJK`.
fn shown_code(code: &str) -> String {
    let (a, b) = code.split_at(code.len() / 2);
    format!("{a}-{b}")
}

/// A join code as entered, in the stored form; `None` when it cannot be one.
fn entered_code(raw: &str) -> Option<String> {
    let code: String = raw
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == CODE_LEN && code.bytes().all(|b| CODE_ALPHABET.contains(&b))).then_some(code)
}

/// The one answer to a code that enrols in nothing.
fn wrong_code() -> Error {
    Error::refused(
        "invalid_join_code",
        Some("code"),
        "wrong",
        [],
        "this join code is not valid: check it with your teacher",
    )
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
    let id: String = id.chars().take(64).collect();
    Error::missing(
        "not_found",
        "course",
        [("id", id.clone())],
        format!("course {id}"),
    )
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
        return Err(Error::broke(
            field,
            "printable",
            [("min", min.to_string()), ("max", max.to_string())],
            format!("{field} is {min} to {max} printable characters"),
        ));
    }
    Ok(v.to_string())
}

/// The courses of the installation.
pub(crate) struct Courses {
    store: Store,
    /// Failed join codes, counted like failed logins.
    joins: LoginLimiter,
}

impl Courses {
    pub(crate) fn new(store: Store, joins: LoginLimiter) -> Self {
        Self { store, joins }
    }

    /// The course as `caller` may see it: its join code for its teacher and
    /// administrators only.
    async fn show(&self, caller: &Caller, course: &Course) -> Result<CourseView, Error> {
        self.view(course, caller.is_admin() || course.owner == caller.name)
            .await
    }

    /// The course with its quota, and its join code when `teaching`.
    async fn view(&self, course: &Course, teaching: bool) -> Result<CourseView, Error> {
        let mut view = CourseView::from(course);
        if teaching {
            view.join_code = course.join_code.as_deref().map(shown_code);
        }
        view.quota = self
            .store
            .course_quota(&course.id)
            .await?
            .as_ref()
            .map(override_view);
        Ok(view)
    }

    /// Creates a course taught by the caller (a teacher or an administrator).
    pub(crate) async fn create(
        &self,
        caller: &Caller,
        req: NewCourse,
    ) -> Result<CourseView, Error> {
        caller.require_full_scope()?;
        if !matches!(caller.role, Role::Teacher | Role::Admin) {
            return Err(Error::forbidden(
                "teachers_only",
                [],
                "only teachers and administrators may create courses",
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
                    parse_expiry(t, now).map_err(|_| {
                        Error::broke(
                            "ends_at",
                            "not_future",
                            [],
                            "ends_at is a future date and time like 2026-07-31T23:59:00+09:00",
                        )
                    })
                })
                .transpose()?,
            ldap_group: req
                .ldap_group
                .as_deref()
                .map(|g| text(g, "ldap_group", 1, 256))
                .transpose()?,
            host_labels: parse_requires(req.host_labels)
                .map_err(|e| Error::broke("host_labels", e.reason, [], e.message))?,
            created_at: now,
            members: Vec::new(),
            join_code: None,
        };
        self.store.insert_course(&course).await?;
        self.show(caller, &course).await
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
        let mut out = Vec::with_capacity(courses.len());
        for c in &courses {
            out.push(self.show(caller, c).await?);
        }
        Ok(out)
    }

    /// One course, for its teacher, its members and administrators; anyone else is told
    /// it does not exist.
    pub(crate) async fn get(&self, caller: &Caller, id: &str) -> Result<CourseView, Error> {
        caller.require_full_scope()?;
        let course = self.store.course(id).await?.ok_or_else(|| not_found(id))?;
        if caller.is_admin() || course.owner == caller.name || course.members.contains(&caller.name)
        {
            self.show(caller, &course).await
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
            Err(Error::forbidden(
                "teacher_only",
                [],
                "only the course's teacher may do this",
            ))
        } else {
            Err(not_found(id))
        }
    }

    /// Enrols existing accounts, all or none: an unknown name changes nothing.
    pub(crate) async fn enrol(&self, course: Taught, req: Enrolment) -> Result<CourseView, Error> {
        if req.users.is_empty() || req.users.len() > MAX_ENROL {
            return Err(Error::broke(
                "users",
                "count",
                [("max", MAX_ENROL.to_string())],
                format!("users is a list of 1 to {MAX_ENROL} user names"),
            ));
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
            return Err(Error::refused(
                "unknown_users",
                Some("users"),
                "unknown",
                [("names", unknown.join(", "))],
                format!(
                    "no accounts named {}; a directory account exists once its owner has logged in",
                    unknown.join(", ")
                ),
            ));
        }
        self.store
            .add_course_members(course.id(), &names, now())
            .await?;
        self.reload(&course).await
    }

    /// Takes a member out of the course.
    pub(crate) async fn unenrol(&self, course: Taught, user: &str) -> Result<CourseView, Error> {
        if !self.store.remove_course_member(course.id(), user).await? {
            let user: String = user.chars().take(64).collect();
            return Err(Error::missing(
                "not_found",
                "member",
                [("name", user.clone()), ("course", course.id().to_string())],
                format!("member {user} of course {}", course.id()),
            ));
        }
        self.reload(&course).await
    }

    /// The course as its teacher sees it now.
    async fn reload(&self, taught: &Taught) -> Result<CourseView, Error> {
        let id = taught.id();
        let course = self.store.course(id).await?.ok_or_else(|| not_found(id))?;
        self.view(&course, true).await
    }

    /// Gives the course a new join code (the old one no longer enrols anyone).
    pub(crate) async fn renew_join_code(&self, course: Taught) -> Result<CourseView, Error> {
        // Two courses drawing the same code is unlikely; drawing again settles it.
        for _ in 0..5 {
            match self
                .store
                .set_course_join_code(course.id(), Some(&new_join_code()))
                .await
            {
                Ok(_) => return self.reload(&course).await,
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::conflict(
            "no_join_code",
            [],
            "no free join code was found; try again",
        ))
    }

    /// Turns the course's join code off: only its teacher enrols people then.
    pub(crate) async fn remove_join_code(&self, course: Taught) -> Result<CourseView, Error> {
        self.store.set_course_join_code(course.id(), None).await?;
        self.reload(&course).await
    }

    /// Enrols the caller in the course whose join code they entered. A wrong code, a
    /// turned-off one and one of a course that has ended are the same 400, and count
    /// against the caller like a failed login; too many answer 429.
    pub(crate) async fn join(
        &self,
        caller: &Caller,
        addr: Option<IpAddr>,
        req: JoinCourse,
    ) -> Result<CourseView, Error> {
        caller.require_full_scope()?;
        self.joins.check(caller.name.as_str(), addr).await?;
        let found = match entered_code(&req.code) {
            Some(code) => self.store.course_by_join_code(&code).await?,
            None => None,
        };
        let course = match found {
            Some(c) if c.ends_at.is_none_or(|e| e > now()) => c,
            _ => {
                self.joins.failed(caller.name.as_str(), addr).await?;
                return Err(wrong_code());
            }
        };
        if course.owner != caller.name {
            self.store
                .add_course_members(&course.id, std::slice::from_ref(&caller.name), now())
                .await?;
        }
        let course = self
            .store
            .course(&course.id)
            .await?
            .ok_or_else(|| not_found(&course.id))?;
        self.show(caller, &course).await
    }

    /// The images shared with the course, with its name and note for each (its teacher,
    /// members and administrators).
    pub(crate) async fn images(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<Vec<CourseImage>, Error> {
        let course = self.get(caller, id).await?;
        Ok(self
            .store
            .course_images(&course.id)
            .await?
            .into_iter()
            .map(CourseImage::from)
            .collect())
    }

    /// Sets the course's name and note for an image shared with it (its teacher).
    pub(crate) async fn note_image(
        &self,
        course: Taught,
        req: CourseImageNote,
    ) -> Result<Vec<CourseImage>, Error> {
        let optional =
            |v: &Option<String>, field: &'static str, max: usize| match v.as_deref().map(str::trim)
            {
                None | Some("") => Ok(None),
                Some(t) => text(t, field, 1, max).map(Some),
            };
        let title = optional(&req.title, "title", 100)?;
        let note = optional(&req.note, "note", 500)?;
        let missing = || {
            let image: String = req.image.chars().take(200).collect();
            Error::missing(
                "image_not_found",
                "course_image",
                [
                    ("image", image.clone()),
                    ("course", course.id().to_string()),
                ],
                format!("image {image} shared with course {}", course.id()),
            )
        };

        let image = ImageRef::parse(req.image.trim()).map_err(|_| missing())?;
        if !self
            .store
            .set_course_image_note(
                course.id(),
                image.as_str(),
                title.as_deref(),
                note.as_deref(),
            )
            .await?
        {
            return Err(missing());
        }
        Ok(self
            .store
            .course_images(course.id())
            .await?
            .into_iter()
            .map(CourseImage::from)
            .collect())
    }

    /// Gives the course's members a quota (administrators): each value given replaces
    /// the role's while the course runs.
    pub(crate) async fn set_quota(
        &self,
        _admin: &Admin,
        course: Taught,
        patch: QuotaPatch,
    ) -> Result<CourseView, Error> {
        let q = parse_patch(patch)?;
        self.store.set_course_quota(course.id(), &q, now()).await?;
        self.reload(&course).await
    }

    /// Removes the course's quota (administrators).
    pub(crate) async fn clear_quota(
        &self,
        _admin: &Admin,
        course: Taught,
    ) -> Result<CourseView, Error> {
        self.store.delete_course_quota(course.id()).await?;
        self.reload(&course).await
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
