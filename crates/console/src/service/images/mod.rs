//! Images: the catalog of what each user may use, sharing, pulls and builds.
//!
//! Docker is the truth about which images exist; the catalog is a copy kept fresh by the
//! engine's event stream (an image built or removed on the host shows within seconds) and
//! by the periodic reconcile. What Docker does not know, a description and whether the
//! owner shares an image, is stored per reference.
//!
//! Who may use an image ([`Standing`]): its owner their own (the `wm.owner` label with this
//! installation's `wm.instance`), everyone else only while its owner shares it; anyone a
//! public one, which is a tagged image with no owner mark at all outside the namespace of
//! images built here. An image built here is `<prefix>/<owner>/<name>:<tag>` and carries its
//! owner in its labels; the API offers no way to build, tag or pull into that namespace for
//! anyone else. Nobody uses an image marked by another installation sharing the engine, an
//! owner-less one in our namespace, or an untagged one without our owner label (a build's
//! intermediate layers): administrators see the tagged ones as `other`, and that is all.

mod build;
mod context;
mod pull;
mod scan;

pub(crate) use build::{BuildInput, BuildSource};
pub(crate) use pull::{Lines, PullRequest};
pub(crate) use scan::{Hold, Scan, Scans};

use super::accounts::{Admin, Caller};
use super::audit::Audit;
use super::quotas::Quotas;
use super::Error;
use crate::config::Config;
use crate::hosts::{Host, Hosts};
use crate::util::{now, rfc3339};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::RwLock;
use utoipa::ToSchema;
use wm_backend::{BackendError, ImageInfo};
use wm_domain::ImageRef;
use wm_store::{CourseShare, ImageMeta, ImageScan, Store};

/// An image as the API shows it: one entry per reference.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct Image {
    /// The reference (`wm/alice/web:1`, `busybox:latest`).
    #[serde(rename = "ref")]
    pub(crate) reference: String,
    pub(crate) id: String,
    /// `null` for a public image.
    pub(crate) owner: Option<String>,
    pub(crate) shared: bool,
    pub(crate) description: String,
    /// Bytes.
    pub(crate) size: i64,
    /// RFC 3339.
    pub(crate) created_at: String,
    /// `own`, `course` (another user's, shared with a course of the caller's), `shared`
    /// (another user's, shared with everyone) or `public`.
    pub(crate) kind: String,
    /// The courses (ids) it is shared with, as far as the caller is in them (the owner:
    /// all of them).
    pub(crate) courses: Vec<String>,
    /// What those courses call it and say of it, where their teachers did (see
    /// `PUT /api/v1/courses/{id}/images`).
    pub(crate) course_notes: Vec<CourseNote>,
    /// The hosts that have it.
    pub(crate) hosts: Vec<String>,
    /// Its last scan; `null` for an image that never came through a pull or build here
    /// (or while scanning is off), which is usable.
    pub(crate) scan: Option<Scan>,
}

/// A course's name and note for an image shared with it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct CourseNote {
    /// The course (id).
    pub(crate) course: String,
    pub(crate) title: Option<String>,
    pub(crate) note: Option<String>,
}

/// The images on each host that answers, as last seen.
pub(crate) struct Catalog {
    hosts: Arc<Hosts>,
    images: RwLock<Option<HashMap<String, Vec<ImageInfo>>>>,
}

impl Catalog {
    pub(crate) fn new(hosts: Arc<Hosts>) -> Self {
        Self {
            hosts,
            images: RwLock::new(None),
        }
    }

    /// Reads every host's images again; a host that does not answer drops out until it
    /// does.
    pub(crate) async fn refresh(&self) -> Result<(), Error> {
        let usable = self.hosts.answering()?;
        let lists = futures::future::join_all(
            usable
                .iter()
                .map(|h| async move { (h.id.clone(), h.backend.images().await) }),
        )
        .await;
        let mut all = HashMap::new();
        let mut failure = None;
        for (host, images) in lists {
            match images {
                Ok(images) => {
                    all.insert(host, images);
                }
                Err(e) => failure = Some(e),
            }
        }
        if all.is_empty() {
            if let Some(e) = failure {
                return Err(e.into());
            }
        }
        *self.images.write().await = Some(all);
        Ok(())
    }

    /// Reads one host's images again.
    pub(crate) async fn refresh_host(&self, host: &Host) -> Result<(), Error> {
        let images = host.backend.images().await?;
        self.images
            .write()
            .await
            .get_or_insert_with(HashMap::new)
            .insert(host.id.clone(), images);
        Ok(())
    }

    /// The images by host, read from the hosts first if they never were.
    async fn snapshot(&self) -> Result<HashMap<String, Vec<ImageInfo>>, Error> {
        if let Some(images) = self.images.read().await.as_ref() {
            return Ok(images.clone());
        }
        self.refresh().await?;
        Ok(self.images.read().await.clone().unwrap_or_default())
    }
}

/// The images of the installation: who may use which, sharing, pulls and builds.
#[derive(Clone)]
pub(crate) struct Images {
    store: Store,
    hosts: Arc<Hosts>,
    catalog: Arc<Catalog>,
    config: Arc<Config>,
    audit: Audit,
    quotas: Arc<Quotas>,
    scans: Arc<Scans>,
}

/// `PATCH /api/v1/images/{ref}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImagePatch {
    /// How to use the image; at most 2000 characters.
    pub(crate) description: Option<String>,
    /// Whether every user may use it.
    pub(crate) shared: Option<bool>,
    /// The courses (ids) whose teacher and members may use it: exactly these, replacing
    /// the ones before (`[]`: none). Courses the owner teaches or is enrolled in.
    #[serde(default)]
    pub(crate) courses: Option<Vec<String>>,
}

impl Images {
    pub(crate) fn new(
        store: Store,
        hosts: Arc<Hosts>,
        catalog: Arc<Catalog>,
        config: Arc<Config>,
        audit: Audit,
        quotas: Arc<Quotas>,
        scans: Arc<Scans>,
    ) -> Self {
        Self {
            scans,
            quotas,
            store,
            hosts,
            catalog,
            config,
            audit,
        }
    }

    /// What `caller` may use of the hosts' images, one entry per reference.
    pub(crate) async fn visible(&self, caller: &Caller) -> Result<Vec<Image>, Error> {
        let by_host = self.catalog.snapshot().await?;
        let meta: HashMap<String, ImageMeta> = self
            .store
            .all_image_meta()
            .await?
            .into_iter()
            .map(|m| (m.reference.clone(), m))
            .collect();
        let scans: HashMap<String, ImageScan> = self
            .store
            .image_scans()
            .await?
            .into_iter()
            .map(|s| (s.image_id.clone(), s))
            .collect();
        let course_shares = self.store.image_courses_for(caller.name.as_str()).await?;
        let shares_of = |reference: &str, owner: Option<&str>| -> Vec<&CourseShare> {
            course_shares
                .iter()
                .filter(|s| s.reference == reference && Some(s.owner.as_str()) == owner)
                .collect()
        };
        let mut hosts: Vec<&String> = by_host.keys().collect();
        hosts.sort();
        // The same reference on several hosts is one entry that lists them, described by the
        // host that knows most about it (see `knowledge`).
        let mut seen: Vec<(&String, &wm_backend::ImageInfo, Vec<String>)> = Vec::new();
        for host in hosts {
            for info in &by_host[host] {
                for tag in &info.tags {
                    match seen.iter_mut().find(|(t, _, _)| *t == tag) {
                        Some((_, best, on)) => {
                            on.push(host.clone());
                            if knowledge(info) < knowledge(best) {
                                *best = info;
                            }
                        }
                        None => seen.push((tag, info, vec![host.clone()])),
                    }
                }
            }
        }
        let mut out: Vec<Image> = Vec::new();
        for (tag, info, on) in seen {
            let m = meta
                .get(tag)
                .filter(|m| Some(m.owner.as_str()) == info.owner.as_deref());
            let shared = m.is_some_and(|m| m.shared);
            let shares = shares_of(tag, info.owner.as_deref());
            let courses: Vec<String> = shares.iter().map(|s| s.course.clone()).collect();
            let course_notes: Vec<CourseNote> = shares
                .iter()
                .filter(|s| s.title.is_some() || s.note.is_some())
                .map(|s| CourseNote {
                    course: s.course.clone(),
                    title: s.title.clone(),
                    note: s.note.clone(),
                })
                .collect();
            let kind = match self.standing(info) {
                Standing::Public => "public",
                Standing::Owner(o) if o == caller.name.as_str() => "own",
                Standing::Owner(_) if !courses.is_empty() => "course",
                Standing::Owner(_) if shared => "shared",
                _ if caller.is_admin() => "other",
                _ => continue,
            };
            out.push(Image {
                reference: tag.clone(),
                id: info.id.clone(),
                owner: info.owner.clone(),
                shared,
                description: m.map(|m| m.description.clone()).unwrap_or_default(),
                size: info.size,
                created_at: rfc3339(info.created_at),
                kind: kind.into(),
                courses,
                course_notes,
                hosts: on,
                scan: scans.get(&info.id).map(Scan::from),
            });
        }
        // A course's images first, those it named before the others: what the course
        // asks its members to use.
        out.sort_by(|a, b| {
            let rank = |i: &Image| (i.kind != "course", i.course_notes.is_empty());
            (rank(a), &a.reference).cmp(&(rank(b), &b.reference))
        });
        Ok(out)
    }

    fn standing<'a>(&self, info: &'a wm_backend::ImageInfo) -> Standing<'a> {
        if let Some(o) = &info.owner {
            return Standing::Owner(o);
        }
        let in_our_namespace = info
            .tags
            .iter()
            .any(|t| ImageRef::parse(t).map_or(true, |r| self.built_here(&r)));
        if info.foreign || info.tags.is_empty() || in_our_namespace {
            Standing::Nobody
        } else {
            Standing::Public
        }
    }

    /// Checks that `caller` may start a container from `image`: public, their own, shared by
    /// its owner, or any user's for an admin; never one that is nobody's ([`Standing::Nobody`]).
    /// Anything else is the same 404 as a missing image.
    /// Returns the hosts that have it.
    pub(crate) async fn check_usable(
        &self,
        caller: &Caller,
        image: &ImageRef,
    ) -> Result<Vec<String>, Error> {
        let usable = self.hosts.usable();
        let answers = futures::future::join_all(
            usable
                .iter()
                .map(|h| async move { (h.id.clone(), h.backend.image(image.as_str()).await) }),
        )
        .await;
        let mut present = Vec::new();
        let mut found = None;
        let mut failure = None;
        for (host, answer) in answers {
            match answer {
                Ok(Some(info)) => {
                    present.push(host);
                    if found
                        .as_ref()
                        .is_none_or(|f| knowledge(&info) < knowledge(f))
                    {
                        found = Some(info);
                    }
                }
                Ok(None) => {}
                Err(e) => failure = Some(e),
            }
        }
        let Some(found) = found else {
            return Err(match failure {
                Some(e) => e.into(),
                None if usable.is_empty() => self.hosts.none_usable().into(),
                None => image_not_found(image.as_str()),
            });
        };
        if !self.allowed(caller, &found, &[image.as_str()]).await? {
            return Err(image_not_found(image.as_str()));
        }
        self.check_scan(&found.id, image.as_str()).await?;
        Ok(present)
    }

    /// Refuses an image its scan holds back (see [`scan`]): quarantined, or being scanned.
    /// `name` is how the caller named it.
    pub(crate) async fn check_scan(&self, image_id: &str, name: &str) -> Result<(), Error> {
        match scan::hold(self.store.image_scan(image_id).await?.as_ref()) {
            None => Ok(()),
            Some(hold) => Err(Error::Quarantined {
                image: name.to_string(),
                hold,
            }),
        }
    }

    /// Refuses `image` when a host that answers has it under that reference and its scan
    /// holds it back. Hosts that do not answer are passed over: this serves the
    /// Kubernetes backend, which must not depend on the Docker hosts.
    pub(crate) async fn check_scan_on_hosts(&self, image: &ImageRef) -> Result<(), Error> {
        for host in self.hosts.usable() {
            if let Ok(Some(info)) = host.backend.image(image.as_str()).await {
                self.check_scan(&info.id, image.as_str()).await?;
            }
        }
        Ok(())
    }

    /// Releases an image from quarantine (administrators): it may be used whatever its
    /// scan says, until it is removed; a rescan of the same content keeps the release.
    pub(crate) async fn release(
        &self,
        caller: &Caller,
        _admin: &Admin,
        raw: &str,
    ) -> Result<Image, Error> {
        let images = self.resolve(caller, raw).await?;
        let image = &images[0];
        let released = self
            .store
            .release_image_scan(&image.id, caller.name.as_str(), now())
            .await?;
        if !released {
            return Err(Error::conflict(
                "no_scan",
                [("image", raw.to_string())],
                format!("image {raw} has no scan to release it from"),
            ));
        }
        self.audit
            .record(
                Some(caller.name.to_string()),
                "image.release".into(),
                Some(image.reference.clone()),
                200,
                image
                    .scan
                    .as_ref()
                    .map(|s| format!("{} {}: {}", s.scanner, s.status, s.findings.join("; "))),
            )
            .await;
        let updated = self.resolve(caller, raw).await?;
        Ok(updated.into_iter().next().expect("resolved before"))
    }

    /// The rule of who may use an image, for an image as a host knows it: public, the
    /// caller's own, any user's for an admin, or another user's while its owner shares one of
    /// `names` (sharing is per reference); never one that is nobody's.
    async fn allowed(
        &self,
        caller: &Caller,
        found: &ImageInfo,
        names: &[&str],
    ) -> Result<bool, Error> {
        let owner = match self.standing(found) {
            Standing::Public => return Ok(true),
            Standing::Nobody => return Ok(false),
            Standing::Owner(o) => o,
        };
        if owner == caller.name.as_str() || caller.is_admin() {
            return Ok(true);
        }
        for name in names {
            let shared = self
                .store
                .image_meta(name)
                .await?
                .is_some_and(|m| m.shared && m.owner.as_str() == owner);
            if shared {
                return Ok(true);
            }
        }
        let course_shares = self.store.image_courses_for(caller.name.as_str()).await?;
        Ok(course_shares
            .iter()
            .any(|s| s.owner == owner && names.contains(&s.reference.as_str())))
    }

    /// Whether `image` is in the namespace of images built here (`<prefix>/...`), which no
    /// registry serves.
    fn built_here(&self, image: &ImageRef) -> bool {
        image.registry() == "docker.io"
            && image
                .path()
                .starts_with(&format!("{}/", self.config.image_prefix))
    }

    /// The entries a path's `{ref}` names (a reference, or an image id), among those the
    /// caller may see.
    pub(crate) async fn resolve(&self, caller: &Caller, raw: &str) -> Result<Vec<Image>, Error> {
        let visible = self.visible(caller).await?;
        let found: Vec<Image> = if raw.starts_with("sha256:") {
            visible.into_iter().filter(|i| i.id == raw).collect()
        } else {
            let r = ImageRef::parse(raw).map_err(|_| image_not_found(raw))?;
            visible
                .into_iter()
                .filter(|i| i.reference == r.as_str())
                .collect()
        };
        if found.is_empty() {
            return Err(image_not_found(raw));
        }
        Ok(found)
    }

    /// The images the caller may use: own, shared by others, public.
    pub(crate) async fn list(&self, caller: &Caller) -> Result<Vec<Image>, Error> {
        caller.require_full_scope()?;
        self.visible(caller).await
    }

    /// Set an image's description and sharing (owner only).
    pub(crate) async fn patch(
        &self,
        caller: &Caller,
        raw: &str,
        patch: ImagePatch,
    ) -> Result<Image, Error> {
        caller.require_full_scope()?;
        if let Some(d) = &patch.description {
            if d.chars().count() > 2000 || d.chars().any(|c| c.is_control() && c != '\n') {
                return Err(Error::broke(
                    "description",
                    "too_long",
                    [],
                    "a description has at most 2000 characters and no control characters but line breaks",
                ));
            }
        }
        let images = self.resolve(caller, raw).await?;
        own_only(&images, caller, raw)?;
        if let Some(asked) = &patch.courses {
            // Only courses the owner is in: sharing with someone else's class is not theirs.
            let mine: Vec<String> = self
                .store
                .courses(Some(caller.name.as_str()), Some(caller.name.as_str()))
                .await?
                .into_iter()
                .map(|c| c.id)
                .collect();
            let unknown: Vec<&str> = asked
                .iter()
                .filter(|c| !mine.contains(c))
                .map(|c| c.as_str())
                .collect();
            if asked.len() > 100 || !unknown.is_empty() {
                let ids: String = unknown.join(", ").chars().take(200).collect();
                return Err(Error::refused(
                    "unknown_course",
                    Some("courses"),
                    "not_yours",
                    [("id", ids.clone())],
                    format!("no course of yours has the id {ids}"),
                ));
            }
        }
        for image in &images {
            if let Some(courses) = &patch.courses {
                let mut courses = courses.clone();
                courses.sort();
                courses.dedup();
                self.store
                    .set_image_courses(&image.reference, caller.name.as_str(), &courses)
                    .await?;
            }
            let current = self.store.image_meta(&image.reference).await?;
            let owner = caller.name.clone();
            self.store
                .set_image_meta(&ImageMeta {
                    reference: image.reference.clone(),
                    owner,
                    description: patch
                        .description
                        .clone()
                        .or_else(|| current.as_ref().map(|m| m.description.clone()))
                        .unwrap_or_default(),
                    shared: patch
                        .shared
                        .or(current.as_ref().map(|m| m.shared))
                        .unwrap_or(false),
                    updated_at: now(),
                })
                .await?;
        }
        let updated = self.resolve(caller, raw).await?;
        Ok(updated.into_iter().next().expect("resolved before"))
    }

    /// The images `raw` names that the caller may remove (their owner; public images only
    /// an admin).
    async fn removable(&self, caller: &Caller, raw: &str) -> Result<Vec<Image>, Error> {
        caller.require_full_scope()?;
        let images = self.resolve(caller, raw).await?;
        if images
            .iter()
            .any(|i| i.owner.is_none() && i.kind == "other")
        {
            return Err(Error::forbidden(
                "other_installation",
                [],
                "this image is marked as another installation's (or nobody's); remove it on the engine itself if it must go",
            ));
        }
        if !caller.is_admin() {
            if images.iter().any(|i| i.owner.is_none()) {
                return Err(Error::forbidden(
                    "public_image",
                    [],
                    "only an administrator may remove a public image",
                ));
            }
            own_only(&images, caller, raw)?;
        }
        Ok(images)
    }

    /// How many containers use the image the caller may remove: its owner's, and other
    /// users' (only counted: whose they are is not the caller's to know).
    pub(crate) async fn users(&self, caller: &Caller, raw: &str) -> Result<ImageUsers, Error> {
        let images = self.removable(caller, raw).await?;
        let mut users = ImageUsers {
            reference: images[0].reference.clone(),
            shared: images.iter().any(|i| i.shared),
            own: 0,
            others: 0,
        };
        for image in &images {
            let owner = image.owner.as_deref().unwrap_or_default();
            let (own, others) = self.store.image_users(&image.reference, owner).await?;
            users.own += own;
            users.others += others;
        }
        Ok(users)
    }

    /// Remove an image (its owner; public images only an admin) that no container uses.
    pub(crate) async fn delete(&self, caller: &Caller, raw: &str) -> Result<(), Error> {
        let users = self.users(caller, raw).await?;
        if users.own + users.others > 0 {
            return Err(Error::ImageInUse(users));
        }
        let images = self.removable(caller, raw).await?;
        for image in &images {
            let r = ImageRef::parse(&image.reference).map_err(|e| Error::Unexpected(e.into()))?;
            for host in &image.hosts {
                match self.hosts.reach(host)?.remove_image(&r).await {
                    Ok(()) | Err(BackendError::NoSuchImage(_)) => {}
                    Err(BackendError::Refused(m)) => {
                        return Err(super::engine_refusal(format!(
                            "host {host} refused to remove {}: {m}",
                            image.reference
                        )))
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            self.store.delete_image_meta(&image.reference).await?;
        }
        self.catalog.refresh().await?;
        Ok(())
    }
}

/// How many containers use an image, for its owner: their own, and other users' (whose is
/// not said).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageUsers {
    pub(crate) reference: String,
    /// Whether the image is shared, so that others may start more containers from it.
    pub(crate) shared: bool,
    pub(crate) own: i64,
    pub(crate) others: i64,
}

/// How much a host's view of an image says, best first: hosts of one console may carry
/// different instance labels in front of one engine (each sees the others' labels as
/// foreign), so the host that knows the owner speaks for the image.
fn knowledge(info: &wm_backend::ImageInfo) -> u8 {
    match (&info.owner, info.foreign) {
        (Some(_), _) => 0,
        (None, false) => 1,
        (None, true) => 2,
    }
}

/// Who an image is for; see the module's comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Standing<'a> {
    Public,
    Owner(&'a str),
    Nobody,
}

fn image_not_found(what: &str) -> Error {
    Error::missing(
        "image_not_found",
        "image",
        [("image", what.to_string())],
        format!("image {what}"),
    )
}

/// Refuses changes to what the caller does not own: 404 for what they cannot see,
/// 403 for what they see but is not theirs.
fn own_only(images: &[Image], caller: &Caller, raw: &str) -> Result<(), Error> {
    if images
        .iter()
        .all(|i| i.owner.as_deref() == Some(caller.name.as_str()))
    {
        return Ok(());
    }
    if images.iter().any(|i| i.kind == "other") {
        return Err(Error::forbidden(
            "not_yours",
            [("image", raw.to_string())],
            format!("image {raw} is not yours to change"),
        ));
    }
    match images[0].owner.as_deref() {
        Some(owner) => Err(Error::forbidden(
            "owned_by",
            [("image", raw.to_string()), ("owner", owner.to_string())],
            format!("image {raw} belongs to {owner}; only its owner may change it"),
        )),
        None => Err(Error::forbidden(
            "public",
            [("image", raw.to_string())],
            format!("image {raw} belongs to nobody (it is public); only its owner may change it"),
        )),
    }
}
