//! Administrators' account management: a role changed, a local password reset, an
//! account disabled (its sessions and tokens revoked at once, its containers stopped) or
//! enabled again, and an account deleted with a choice for what it holds.
//!
//! Every change is checked whole before anything is written: a bad field changes nothing.

use super::accounts::{check_new_password, hash_password, user_info, Admin, Caller, UserInfo};
use super::containers::Containers;
use super::images::Images;
use super::storage::Storage;
use super::Error;
use serde::Deserialize;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};
use wm_domain::{ContainerStatus, Role, UserName};
use wm_store::{Store, User, UserSource};

/// `PATCH /api/v1/admin/users/{name}`: each field given is changed.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserPatch {
    /// `student`, `teacher` or `admin` (local accounts; the directory decides the others').
    #[serde(default)]
    pub(crate) role: Option<String>,
    /// `true` disables the account at once: its sessions and tokens are revoked and its
    /// running containers stopped. `false` enables it again.
    #[serde(default)]
    pub(crate) disabled: Option<bool>,
    /// A new password for a local account (8 characters or more); its sessions end.
    #[serde(default)]
    pub(crate) password: Option<String>,
}

/// What becomes of a deleted account's things: `DELETE /api/v1/admin/users/{name}`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserDeletion {
    /// `refuse` (default: 409 while the user has containers) or `delete`.
    #[serde(default)]
    pub(crate) containers: Option<String>,
    /// `keep` (default: they stay on the hosts, usable by nobody but administrators) or
    /// `delete`.
    #[serde(default)]
    pub(crate) images: Option<String>,
    /// `keep` (default) or `delete` (the user's storage on every host, with its files).
    #[serde(default)]
    pub(crate) storage: Option<String>,
}

/// One choice of [`UserDeletion`]: `Ok(true)` to delete.
fn choice(value: Option<&str>, field: &'static str, keep: &'static str) -> Result<bool, Error> {
    match value {
        None => Ok(false),
        Some(v) if v == keep => Ok(false),
        Some("delete") => Ok(true),
        Some(v) => {
            let v: String = v.chars().take(20).collect();
            Err(Error::broke(
                field,
                "choice",
                [("value", v.clone()), ("keep", keep.to_string())],
                format!("{field}={v:?}: use {keep} or delete"),
            ))
        }
    }
}

/// The accounts, as administrators manage them.
pub(crate) struct Users {
    store: Store,
    containers: Arc<Containers>,
    images: Arc<Images>,
    storage: Arc<Storage>,
}

impl Users {
    pub(crate) fn new(
        store: Store,
        containers: Arc<Containers>,
        images: Arc<Images>,
        storage: Arc<Storage>,
    ) -> Self {
        Self {
            store,
            containers,
            images,
            storage,
        }
    }

    async fn load(&self, name: &str) -> Result<User, Error> {
        let not_found = || {
            let name: String = name.chars().take(64).collect();
            Error::missing(
                "not_found",
                "user",
                [("name", name.clone())],
                format!("user {name}"),
            )
        };
        let n = UserName::parse(name).map_err(|_| not_found())?;
        self.store.user(n.as_str()).await?.ok_or_else(not_found)
    }

    /// Changes a role, a local password, or whether the account is disabled.
    ///
    /// # Errors
    /// 409 for a directory account's role or password (the directory decides them), and
    /// for an administrator's own role or access: the installation keeps its admin.
    pub(crate) async fn patch(
        &self,
        caller: &Caller,
        admin: &Admin,
        name: &str,
        patch: UserPatch,
    ) -> Result<UserInfo, Error> {
        let user = self.load(name).await?;
        let directory = user.source == UserSource::Ldap;
        let role = patch.role.as_deref().map(Role::parse).transpose()?;
        if let Some(pw) = &patch.password {
            check_new_password(pw, "password")?;
            if directory {
                return Err(Error::conflict(
                    "directory_password_of",
                    [("name", user.name.to_string())],
                    format!(
                        "{} is a directory (LDAP) account: its password is changed in the department directory",
                        user.name
                    ),
                ));
            }
        }
        if directory && role.is_some_and(|r| r != user.role) {
            return Err(Error::conflict(
                "directory_role",
                [("name", user.name.to_string())],
                format!(
                    "{} is a directory (LDAP) account: its role follows its groups in the directory",
                    user.name
                ),
            ));
        }
        let own = user.name == caller.name;
        if own && (patch.disabled == Some(true) || role.is_some_and(|r| r != Role::Admin)) {
            return Err(Error::conflict(
                "own_account",
                [],
                "administrators cannot disable or demote their own account",
            ));
        }
        if let Some(r) = role {
            self.store.set_user_role(user.name.as_str(), r).await?;
        }
        if let Some(pw) = patch.password {
            let hash = hash_password(pw).await?;
            self.store
                .set_user_password(user.name.as_str(), &hash)
                .await?;
            // A reset password ends what the old one opened.
            self.store
                .delete_other_sessions(user.name.as_str(), "")
                .await?;
        }
        if let Some(disabled) = patch.disabled {
            self.store
                .set_user_disabled(user.name.as_str(), disabled)
                .await?;
            if disabled {
                self.stop_all(admin, &user.name).await;
            }
        }
        Ok(user_info(&self.load(name).await?))
    }

    /// Stops the user's running containers; a failure is logged, the rest go on.
    async fn stop_all(&self, admin: &Admin, user: &UserName) {
        let owned = match self.containers.of_user(admin, user).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(%user, error = %e, "a disabled user's containers cannot be listed");
                return;
            }
        };
        for c in owned {
            if !c.record().status.is_live() && c.record().status != ContainerStatus::Pending {
                continue;
            }
            let name = c.name().to_string();
            if let Err(e) = self.containers.stop(c).await {
                tracing::warn!(container = %name, error = %e, "a disabled user's container cannot be stopped");
            }
        }
    }

    /// Deletes an account. Its sessions end first; then, as chosen, its containers, its
    /// images and its storage go; then the account with its tokens, courses and enrolments.
    pub(crate) async fn delete(
        &self,
        caller: &Caller,
        admin: &Admin,
        name: &str,
        how: UserDeletion,
    ) -> Result<(), Error> {
        let user = self.load(name).await?;
        let containers = choice(how.containers.as_deref(), "containers", "refuse")?;
        let images = choice(how.images.as_deref(), "images", "keep")?;
        let storage = choice(how.storage.as_deref(), "storage", "keep")?;
        if user.name == caller.name {
            return Err(Error::conflict(
                "delete_own_account",
                [],
                "administrators cannot delete their own account",
            ));
        }
        let owned = self.containers.of_user(admin, &user.name).await?;
        if !owned.is_empty() && !containers {
            return Err(Error::conflict(
                "user_has_containers",
                [
                    ("name", user.name.to_string()),
                    ("n", owned.len().to_string()),
                ],
                format!(
                    "{} has {} containers; delete them first, or ask for containers=delete",
                    user.name,
                    owned.len()
                ),
            ));
        }
        // Nothing signed in as them survives what follows, whatever fails in it.
        self.store
            .set_user_disabled(user.name.as_str(), true)
            .await?;
        for c in owned {
            self.containers.delete(c).await?;
        }
        if images {
            for image in self.images.list(caller).await? {
                if image.owner.as_deref() == Some(user.name.as_str()) {
                    self.images.delete(caller, &image.reference).await?;
                }
            }
        }
        if storage {
            self.storage
                .delete_user_storage(admin, user.name.as_str())
                .await?;
        }
        self.store.delete_user(user.name.as_str()).await?;
        Ok(())
    }
}
