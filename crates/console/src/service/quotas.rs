//! Quotas: what one user may hold at once, per role with administrators' overrides per
//! user, enforced before anything is made.
//!
//! A user's creates and starts pass [`Quotas::admit`] one at a time: the check and the
//! record it is checked against are made under the user's own lock, so a user with a
//! quota of 3 containers who sends 20 creates at once gets exactly 3. On PostgreSQL the
//! lock is also taken in the database, so that this holds across several consoles.
//! Different users do not wait for each other; what they share (a host's memory, its GPUs
//! and ports) is placement's, under the placement lock.
//!
//! Which quota applies: each value of a user's own overrides (an administrator's) comes
//! first; then, for a value the overrides leave, the most generous value among the
//! quotas of the running courses the user is enrolled in (no limit beats any number);
//! then the role's.

use super::accounts::{Admin, Caller};
use super::{Error, QuotaKind};
use crate::config::{Config, RoleQuota};
use crate::hosts::Hosts;
use crate::metrics::{Metrics, QuotaLabels};
use crate::util::now;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use utoipa::ToSchema;
use wm_domain::{Role, UserName};
use wm_store::{QuotaOverride, Store, Usage, User};

/// A quota as the API shows it; `null` is unlimited.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub(crate) struct QuotaView {
    /// Containers, stopped ones included.
    pub(crate) containers: Option<i64>,
    /// Containers running at once.
    pub(crate) running: Option<i64>,
    /// CPUs of the running containers, summed; also a container's maximum.
    pub(crate) cpus: Option<f64>,
    /// Bytes of memory of the running containers, summed; also a container's maximum.
    #[serde(rename = "memory")]
    pub(crate) memory_bytes: Option<i64>,
    pub(crate) gpus: Option<i64>,
    /// Host ports held at once.
    pub(crate) ports: Option<i64>,
    /// Image builds at once.
    pub(crate) builds: Option<i64>,
    /// Bytes of the user's storage volumes.
    #[serde(rename = "storage")]
    pub(crate) storage_bytes: Option<i64>,
}

/// What a user holds now.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub(crate) struct UsageView {
    pub(crate) containers: i64,
    pub(crate) running: i64,
    pub(crate) cpus: f64,
    #[serde(rename = "memory")]
    pub(crate) memory_bytes: i64,
    pub(crate) gpus: i64,
    pub(crate) ports: i64,
    pub(crate) builds: i64,
    /// Bytes in the user's storage volumes, as last measured.
    #[serde(rename = "storage")]
    pub(crate) storage_bytes: i64,
}

/// A user's quota and usage, for administrators.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct UserQuota {
    pub(crate) user: String,
    /// `student`, `teacher` or `admin`.
    #[schema(value_type = String)]
    pub(crate) role: Role,
    /// The quota in force: the role's, with the overrides.
    pub(crate) quota: QuotaView,
    /// What an administrator set for this user; `null` fields keep the role's value.
    pub(crate) overrides: QuotaView,
    pub(crate) usage: UsageView,
}

/// `PUT /api/v1/admin/users/{name}/quota`: every field given replaces the role's value
/// for this user (`-1`: unlimited); a field left out or `null` keeps the role's.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct QuotaPatch {
    pub(crate) containers: Option<i64>,
    pub(crate) running: Option<i64>,
    pub(crate) cpus: Option<f64>,
    /// Bytes.
    #[serde(rename = "memory")]
    pub(crate) memory_bytes: Option<i64>,
    pub(crate) gpus: Option<i64>,
    pub(crate) ports: Option<i64>,
    pub(crate) builds: Option<i64>,
    /// Bytes.
    #[serde(rename = "storage")]
    pub(crate) storage_bytes: Option<i64>,
}

/// What an operation would add to a user's holdings.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Ask {
    pub(crate) containers: i64,
    pub(crate) running: i64,
    pub(crate) nano_cpus: i64,
    pub(crate) memory_bytes: i64,
    pub(crate) gpus: i64,
    pub(crate) ports: i64,
    /// Bytes of disk (a VM's disk, an uploaded VM image).
    pub(crate) storage_bytes: i64,
}

type Locks = Arc<Mutex<HashMap<UserName, Arc<tokio::sync::Mutex<()>>>>>;

/// Held while a user's create or start is checked and recorded.
pub(crate) struct Admitted {
    /// The user's lock across consoles (see [`Store::lock`]) and the slot it is held
    /// in, once taken.
    db: Option<(wm_store::DbLock, tokio::sync::OwnedSemaphorePermit)>,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
    lock: Arc<tokio::sync::Mutex<()>>,
    locks: Locks,
    user: UserName,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.db.take();
        self.guard.take();
        // The map keeps only users someone is admitting or waiting for: when the map's
        // and ours are the last, the entry goes.
        let mut locks = self.locks.lock().expect("not poisoned");
        if locks
            .get(&self.user)
            .is_some_and(|l| Arc::ptr_eq(l, &self.lock) && Arc::strong_count(l) <= 2)
        {
            locks.remove(&self.user);
        }
    }
}

/// One build of a user's, counted until dropped.
pub(crate) struct BuildSlot {
    builds: Arc<Mutex<HashMap<UserName, i64>>>,
    user: UserName,
}

impl Drop for BuildSlot {
    fn drop(&mut self) {
        let mut b = self.builds.lock().expect("not poisoned");
        if let Some(n) = b.get_mut(&self.user) {
            *n -= 1;
            if *n <= 0 {
                b.remove(&self.user);
            }
        }
    }
}

pub(crate) struct Quotas {
    store: Store,
    /// Where users' storage is measured.
    hosts: Arc<Hosts>,
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    /// Each user's lock while one of their creates or starts is admitted; an entry goes
    /// with its last holder.
    locks: Locks,
    /// Admissions holding their database lock now, on PostgreSQL at most [`ADMITTING`]:
    /// each holds a connection there, and the rest of the pool must stay free for the
    /// work (placement's lock and the queries), or admissions waiting for it would wait
    /// for ever. SQLite's locks hold nothing: no bound.
    admitting: Arc<tokio::sync::Semaphore>,
    /// Builds running now, per user. Counted by each console alone: with several, a user
    /// may run up to this many builds on each.
    builds: Arc<Mutex<HashMap<UserName, i64>>>,
}

/// Where [`Quotas::measure_storage`] measures a user's storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Measure {
    /// On every host that keeps storage: what the user is shown.
    Everywhere,
    /// Where it may have changed unseen ([`wm_store::Store::storage_written_on`]): the
    /// hosts that hold one of the user's containers (they write into it), and those where
    /// one was removed since the last measurement. Elsewhere it changes only through the
    /// console's storage calls, which measure what they wrote. A create checks the storage
    /// quota so, rather than asking every host (50 calls on 50 hosts).
    WhereWritten,
}

/// Admissions of different users at once, per console on PostgreSQL (a user's own wait
/// in turn).
const ADMITTING: usize = 4;

fn view(q: &RoleQuota) -> QuotaView {
    QuotaView {
        containers: q.containers,
        running: q.running,
        cpus: q.nano_cpus.map(|n| n as f64 / 1e9),
        memory_bytes: q.memory_bytes,
        gpus: q.gpus,
        ports: q.ports,
        builds: q.builds,
        storage_bytes: q.storage_bytes,
    }
}

pub(crate) fn override_view(o: &QuotaOverride) -> QuotaView {
    view(&RoleQuota {
        containers: o.containers,
        running: o.running,
        nano_cpus: o.nano_cpus,
        memory_bytes: o.memory_bytes,
        gpus: o.gpus,
        ports: o.ports,
        builds: o.builds,
        storage_bytes: o.storage_bytes,
    })
}

/// `-1` (unlimited) as stored: `Some(-1)`; the quota in force maps it to `None`.
fn applied(role: Option<i64>, over: Option<i64>) -> Option<i64> {
    match over {
        Some(-1) => None,
        Some(n) => Some(n),
        None => role,
    }
}

/// The most generous of two stored values (`-1`: no limit; `None`: not set).
fn generous(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(-1), _) | (_, Some(-1)) => Some(-1),
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) | (None, x) => x,
    }
}

/// The most generous value of each field among a user's course quotas.
fn most_generous(courses: &[QuotaOverride]) -> Option<QuotaOverride> {
    courses.iter().copied().reduce(|a, b| QuotaOverride {
        containers: generous(a.containers, b.containers),
        running: generous(a.running, b.running),
        nano_cpus: generous(a.nano_cpus, b.nano_cpus),
        memory_bytes: generous(a.memory_bytes, b.memory_bytes),
        gpus: generous(a.gpus, b.gpus),
        ports: generous(a.ports, b.ports),
        builds: generous(a.builds, b.builds),
        storage_bytes: generous(a.storage_bytes, b.storage_bytes),
    })
}

/// A quota as given (`-1`: no limit; a field left out: not set), checked.
pub(crate) fn parse_patch(patch: QuotaPatch) -> Result<QuotaOverride, Error> {
    let field = |name: &'static str, v: Option<i64>| match v {
        Some(n) if n < -1 => Err(Error::broke(
            name,
            "below_minus_one",
            [],
            format!("{name} is 0 or more, or -1 for no limit"),
        )),
        other => Ok(other),
    };
    let cpus = match patch.cpus {
        None => None,
        Some(-1.0) => Some(-1),
        Some(c) if c.is_finite() && (0.0..=4096.0).contains(&c) => Some((c * 1e9).round() as i64),
        Some(_) => {
            return Err(Error::broke(
                "cpus",
                "out_of_range",
                [],
                "cpus is 0 to 4096, or -1 for no limit",
            ))
        }
    };
    Ok(QuotaOverride {
        containers: field("containers", patch.containers)?,
        running: field("running", patch.running)?,
        nano_cpus: cpus,
        memory_bytes: field("memory_bytes", patch.memory_bytes)?,
        gpus: field("gpus", patch.gpus)?,
        ports: field("ports", patch.ports)?,
        builds: field("builds", patch.builds)?,
        storage_bytes: field("storage_bytes", patch.storage_bytes)?,
    })
}

impl Quotas {
    pub(crate) fn new(
        store: Store,
        hosts: Arc<Hosts>,
        config: Arc<Config>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let admitting = if store.is_postgres() {
            ADMITTING
        } else {
            tokio::sync::Semaphore::MAX_PERMITS
        };
        Self {
            store,
            hosts,
            config,
            metrics,
            locks: Arc::new(Mutex::new(HashMap::new())),
            admitting: Arc::new(tokio::sync::Semaphore::new(admitting)),
            builds: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The quota in force for a user: the role's, under their courses' quotas, under
    /// the administrator's overrides.
    pub(crate) async fn of(&self, user: &UserName, role: Role) -> Result<RoleQuota, Error> {
        let o = self.store.quota_override(user.as_str()).await?;
        let courses = self.course_quotas(Some(user)).await?;
        let c = most_generous(&courses.into_iter().map(|(_, q)| q).collect::<Vec<_>>());
        Ok(self.in_force(role, c.as_ref(), o.as_ref()))
    }

    /// The quotas of the running courses of `user` (or everyone).
    async fn course_quotas(
        &self,
        user: Option<&UserName>,
    ) -> Result<Vec<(UserName, QuotaOverride)>, Error> {
        Ok(self
            .store
            .member_course_quotas(user.map(UserName::as_str), now())
            .await?)
    }

    /// A role's quota, with the most generous of a user's course quotas over it, and
    /// their own overrides over that.
    fn in_force(
        &self,
        role: Role,
        course: Option<&QuotaOverride>,
        o: Option<&QuotaOverride>,
    ) -> RoleQuota {
        let r = self.config.role_quota(role);
        let r = match course {
            Some(c) => Self::overlaid(r, c),
            None => r,
        };
        match o {
            Some(o) => Self::overlaid(r, o),
            None => r,
        }
    }

    /// `r` with each value `o` sets replacing its own.
    fn overlaid(r: RoleQuota, o: &QuotaOverride) -> RoleQuota {
        RoleQuota {
            containers: applied(r.containers, o.containers),
            running: applied(r.running, o.running),
            nano_cpus: applied(r.nano_cpus, o.nano_cpus),
            memory_bytes: applied(r.memory_bytes, o.memory_bytes),
            gpus: applied(r.gpus, o.gpus),
            ports: applied(r.ports, o.ports),
            builds: applied(r.builds, o.builds),
            storage_bytes: applied(r.storage_bytes, o.storage_bytes),
        }
    }

    async fn usage(&self, user: &UserName) -> Result<Usage, Error> {
        Ok(self
            .store
            .usage(Some(user.as_str()))
            .await?
            .into_iter()
            .next()
            .map(|(_, u)| u)
            .unwrap_or_default())
    }

    fn builds_of(&self, user: &UserName) -> i64 {
        self.builds
            .lock()
            .expect("not poisoned")
            .get(user)
            .copied()
            .unwrap_or(0)
    }

    fn usage_view(&self, user: &UserName, u: &Usage) -> UsageView {
        UsageView {
            containers: u.containers,
            running: u.running,
            cpus: u.nano_cpus as f64 / 1e9,
            memory_bytes: u.memory_bytes,
            gpus: u.gpus,
            ports: u.ports,
            builds: self.builds_of(user),
            storage_bytes: u.storage_bytes,
        }
    }

    /// The caller's quota and what they hold now.
    pub(crate) async fn mine(&self, caller: &Caller) -> Result<(QuotaView, UsageView), Error> {
        let q = self.of(&caller.name, caller.role).await?;
        let u = self.usage(&caller.name).await?;
        Ok((view(&q), self.usage_view(&caller.name, &u)))
    }

    /// Takes the user's admission lock: hold it from the check until the record is made.
    /// The console's own lock comes first, so that a console waits on the database for
    /// a user with one connection at most.
    pub(crate) async fn admit(&self, user: &UserName) -> Result<Admitted, Error> {
        let lock = self
            .locks
            .lock()
            .expect("not poisoned")
            .entry(user.clone())
            .or_default()
            .clone();
        let guard = lock.clone().lock_owned().await;
        let mut admitted = Admitted {
            db: None,
            guard: Some(guard),
            lock,
            locks: self.locks.clone(),
            user: user.clone(),
        };
        let slot = self
            .admitting
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        admitted.db = Some((self.store.lock(&format!("admit {user}")).await?, slot));
        Ok(admitted)
    }

    /// Refuses what would take the user over one of their quotas, naming it and the
    /// current use. Call it holding [`Quotas::admit`].
    pub(crate) async fn check(
        &self,
        _admitted: &Admitted,
        user: &UserName,
        role: Role,
        ask: &Ask,
    ) -> Result<(), Error> {
        let q = self.of(user, role).await?;
        let u = self.usage(user).await?;
        let checks = [
            (
                QuotaKind::Containers,
                q.containers,
                u.containers,
                ask.containers,
            ),
            (QuotaKind::Running, q.running, u.running, ask.running),
            (QuotaKind::Cpus, q.nano_cpus, u.nano_cpus, ask.nano_cpus),
            (
                QuotaKind::Memory,
                q.memory_bytes,
                u.memory_bytes,
                ask.memory_bytes,
            ),
            (QuotaKind::Gpus, q.gpus, u.gpus, ask.gpus),
            (QuotaKind::Ports, q.ports, u.ports, ask.ports),
        ];
        for (kind, limit, used, asked) in checks {
            if let Some(limit) = limit {
                if asked > 0 && used + asked > limit {
                    return Err(self.refuse(kind, limit, used, asked));
                }
            }
        }
        if let (Some(limit), true) = (q.storage_bytes, ask.storage_bytes > 0) {
            if u.storage_bytes + ask.storage_bytes > limit {
                return Err(self.refuse(
                    QuotaKind::Storage,
                    limit,
                    u.storage_bytes,
                    ask.storage_bytes,
                ));
            }
        }
        // Storage that containers filled past the quota: no new container until it is
        // freed (the storage is mounted in every one). Containers write into it unseen,
        // so it is measured now, where they may have written.
        if let (Some(limit), true) = (q.storage_bytes, ask.containers > 0) {
            self.measure_storage(user, Measure::WhereWritten).await;
            let used = self.usage(user).await?.storage_bytes;
            if used > limit {
                return Err(self.refuse(QuotaKind::Storage, limit, used, 0));
            }
        }
        Ok(())
    }

    /// Measures the user's storage on the hosts `which` names, among those that answer and
    /// keep storage, and records it. A host that fails keeps its last figure.
    pub(crate) async fn measure_storage(&self, user: &UserName, which: Measure) {
        let written = match which {
            Measure::Everywhere => None,
            Measure::WhereWritten => match self.store.storage_written_on(user.as_str()).await {
                Ok(hosts) => Some(hosts),
                Err(e) => {
                    tracing::warn!(error = %e, "storage measurements cannot be read");
                    return;
                }
            },
        };
        let t = now();
        let stale = self.hosts.usable().into_iter().filter(|h| {
            h.info().is_some_and(|i| i.storage_path.is_some())
                && written.as_ref().is_none_or(|w| w.contains(&h.id))
        });
        let measured = futures::future::join_all(
            stale.map(|h| async move { (h.id.clone(), h.backend.storage_usage(user).await) }),
        )
        .await;
        let mut figures = Vec::with_capacity(measured.len());
        for (host, bytes) in &measured {
            match bytes {
                Ok(b) => figures.push((host.as_str(), *b)),
                Err(e) => tracing::warn!(host, error = %e, "a user's storage cannot be measured"),
            }
        }
        if figures.is_empty() {
            return;
        }
        if let Err(e) = self
            .store
            .set_storage_usage(user.as_str(), &figures, t)
            .await
        {
            tracing::warn!(error = %e, "the storage measurements cannot be recorded");
        }
    }

    /// Refuses a write of `bytes` into the user's storage that would take them over their
    /// storage quota. Call it holding [`Quotas::admit`], after measuring.
    pub(crate) async fn check_storage(
        &self,
        _admitted: &Admitted,
        user: &UserName,
        role: Role,
        bytes: i64,
    ) -> Result<(), Error> {
        let Some(limit) = self.of(user, role).await?.storage_bytes else {
            return Ok(());
        };
        let used = self.usage(user).await?.storage_bytes;
        if used + bytes > limit {
            return Err(self.refuse(QuotaKind::Storage, limit, used, bytes.max(1)));
        }
        Ok(())
    }

    fn refuse(&self, kind: QuotaKind, limit: i64, used: i64, asked: i64) -> Error {
        self.metrics
            .quota_refusals
            .get_or_create(&QuotaLabels {
                kind: kind.as_str(),
            })
            .inc();
        Error::Quota {
            kind,
            limit,
            used,
            asked,
        }
    }

    /// Counts a build of the user's until the slot is dropped; refuses one over their
    /// quota of builds at once.
    pub(crate) async fn begin_build(&self, caller: &Caller) -> Result<BuildSlot, Error> {
        let q = self.of(&caller.name, caller.role).await?;
        let mut builds = self.builds.lock().expect("not poisoned");
        let n = builds.entry(caller.name.clone()).or_insert(0);
        if let Some(limit) = q.builds {
            if *n + 1 > limit {
                let used = *n;
                if used == 0 {
                    builds.remove(&caller.name);
                }
                drop(builds);
                return Err(self.refuse(QuotaKind::Builds, limit, used, 1));
            }
        }
        *n += 1;
        Ok(BuildSlot {
            builds: self.builds.clone(),
            user: caller.name.clone(),
        })
    }

    /// Every user's quota and usage.
    pub(crate) async fn all(&self, _admin: &Admin) -> Result<Vec<UserQuota>, Error> {
        let users = self.store.users().await?;
        let usage: HashMap<UserName, Usage> = self.store.usage(None).await?.into_iter().collect();
        let overrides: HashMap<UserName, QuotaOverride> =
            self.store.quota_overrides().await?.into_iter().collect();
        let mut courses: HashMap<UserName, Vec<QuotaOverride>> = HashMap::new();
        for (u, q) in self.course_quotas(None).await? {
            courses.entry(u).or_default().push(q);
        }
        Ok(users
            .into_iter()
            .map(|u| {
                let used = usage.get(&u.name).copied().unwrap_or_default();
                let course = courses.get(&u.name).and_then(|c| most_generous(c));
                self.user_quota(
                    &u.name,
                    u.role,
                    course.as_ref(),
                    overrides.get(&u.name),
                    &used,
                )
            })
            .collect())
    }

    /// One user's quota in force, their overrides and their usage.
    fn user_quota(
        &self,
        user: &UserName,
        role: Role,
        course: Option<&QuotaOverride>,
        o: Option<&QuotaOverride>,
        used: &Usage,
    ) -> UserQuota {
        UserQuota {
            user: user.to_string(),
            role,
            quota: view(&self.in_force(role, course, o)),
            overrides: o.map(override_view).unwrap_or_default(),
            usage: self.usage_view(user, used),
        }
    }

    /// Sets a user's overrides; answers their quota and usage.
    pub(crate) async fn set(
        &self,
        admin: &Admin,
        user: &str,
        patch: QuotaPatch,
    ) -> Result<UserQuota, Error> {
        let person = self.person(user).await?;
        let o = parse_patch(patch)?;
        self.store
            .set_quota_override(&person.name, &o, now())
            .await?;
        self.one(admin, &person).await
    }

    /// One user's quota and usage.
    pub(crate) async fn get(&self, admin: &Admin, user: &str) -> Result<UserQuota, Error> {
        let person = self.person(user).await?;
        self.one(admin, &person).await
    }

    /// Removes a user's overrides: their role's quota applies again.
    pub(crate) async fn clear(&self, admin: &Admin, user: &str) -> Result<UserQuota, Error> {
        let person = self.person(user).await?;
        self.store
            .delete_quota_override(person.name.as_str())
            .await?;
        self.one(admin, &person).await
    }

    async fn person(&self, user: &str) -> Result<User, Error> {
        let not_found = || {
            let name: String = user.chars().take(64).collect();
            Error::missing(
                "not_found",
                "user",
                [("name", name.clone())],
                format!("user {name}"),
            )
        };

        let name = UserName::parse(user).map_err(|_| not_found())?;
        self.store.user(name.as_str()).await?.ok_or_else(not_found)
    }

    async fn one(&self, _admin: &Admin, user: &User) -> Result<UserQuota, Error> {
        let o = self.store.quota_override(user.name.as_str()).await?;
        let courses = self.course_quotas(Some(&user.name)).await?;
        let course = most_generous(&courses.into_iter().map(|(_, q)| q).collect::<Vec<_>>());
        let used = self.usage(&user.name).await?;
        Ok(self.user_quota(&user.name, user.role, course.as_ref(), o.as_ref(), &used))
    }
}
