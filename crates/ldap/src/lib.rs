//! Department accounts: checking a login against the department's LDAP directory.
//!
//! A login searches the person's entry with the configured filter (anonymously or as a
//! search account), reads their groups, then binds as the entry's DN with the given
//! password. Roles come from group membership at every login: `memberUid` of a
//! posixGroup, `member` of a groupOfNames or `uniqueMember` of a groupOfUniqueNames.
//!
//! # Guarantees
//! - The name reaches the directory only as a [`UserName`] (already checked against the
//!   account-name pattern) and only escaped: RFC 4515 in filters, RFC 4514 in DNs. A name
//!   like `*` or `x)(|(uid=*` cannot be expressed, and would match nothing if it were.
//! - An empty password never reaches a bind: many servers treat it as an unauthenticated
//!   bind, which succeeds.
//! - Every call is bounded by the configured time-out; a directory that is down or slow is
//!   [`DirectoryError::Unavailable`], never a hang.

use ldap3::{ldap_escape, Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use wm_domain::{Role, UserName};

/// A password that never prints.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct BindPassword(String);

impl BindPassword {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
}

impl fmt::Debug for BindPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// How to reach the directory and read people and groups from it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapSettings {
    /// `ldap://host[:port]` or `ldaps://host[:port]`.
    pub url: String,
    /// Where people are, e.g. `ou=people,dc=ie,dc=u-ryukyu,dc=ac,dc=jp`.
    pub base_dn: String,
    /// Finds a person's entry; `{username}` is replaced by the escaped login name.
    #[serde(default = "default_user_filter")]
    pub user_filter: String,
    /// Search account; anonymous search when unset.
    #[serde(default)]
    pub bind_dn: Option<String>,
    #[serde(default)]
    pub bind_password: Option<BindPassword>,
    /// A file holding the search account's password.
    #[serde(default)]
    pub bind_password_file: Option<PathBuf>,
    /// Where groups are; default: `base_dn`.
    #[serde(default)]
    pub group_base_dn: Option<String>,
    /// Members of this group (its `cn`) are teachers.
    #[serde(default)]
    pub teacher_group: Option<String>,
    /// Members of this group (its `cn`) are administrators.
    #[serde(default)]
    pub admin_group: Option<String>,
    /// Upgrade an `ldap://` connection with StartTLS.
    #[serde(default)]
    pub starttls: bool,
    /// PEM file of the CA that signed the directory's certificate; default: the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Seconds to connect, and for each operation.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_user_filter() -> String {
    "(uid={username})".into()
}

fn default_timeout() -> u64 {
    5
}

/// A person the directory vouched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    pub dn: String,
    pub name: UserName,
    pub display_name: Option<String>,
    pub uid_number: Option<i64>,
    pub role: Role,
    /// The `cn` of every group the person is a member of (for courses enrolled by group).
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// No such person, several entries for the name, or a wrong password: the caller
    /// cannot tell which, on purpose.
    #[error("wrong user name or password")]
    InvalidCredentials,
    /// The directory cannot be reached, or did not answer in time.
    #[error("the directory is unavailable: {0}")]
    Unavailable(String),
    /// The directory answered with an error other than a wrong password (a bad base DN,
    /// a refused search account, ...): the configuration needs a look.
    #[error("the directory refused the request: {0}")]
    Refused(String),
}

/// The department directory.
pub struct Directory {
    settings: LdapSettings,
    bind_password: Option<String>,
    tls: Option<Arc<rustls::ClientConfig>>,
    timeout: Duration,
}

impl fmt::Debug for Directory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Directory")
            .field("url", &self.settings.url)
            .finish_non_exhaustive()
    }
}

/// LDAP result codes we tell apart.
const INVALID_CREDENTIALS: u32 = 49;

impl Directory {
    /// Checks the settings and loads the CA file; the message names what is wrong.
    pub fn new(settings: LdapSettings) -> Result<Self, String> {
        let url = &settings.url;
        let secure = url.starts_with("ldaps://");
        if !(secure || url.starts_with("ldap://")) {
            return Err(format!(
                "ldap url {url:?} must start with ldap:// or ldaps://"
            ));
        }
        if secure && settings.starttls {
            return Err("StartTLS goes with ldap://, not ldaps://".into());
        }
        if settings.base_dn.trim().is_empty() {
            return Err("ldap base_dn is empty".into());
        }
        if !settings.user_filter.contains("{username}")
            || !settings.user_filter.starts_with('(')
            || !settings.user_filter.ends_with(')')
        {
            return Err(format!(
                "ldap user_filter {:?} must be a filter in parentheses containing {{username}}",
                settings.user_filter
            ));
        }
        if settings.timeout_secs == 0 {
            return Err("ldap timeout_secs must be at least 1".into());
        }
        let bind_password = match (&settings.bind_password, &settings.bind_password_file) {
            (Some(p), _) => Some(p.0.clone()),
            (None, Some(f)) => Some(
                std::fs::read_to_string(f)
                    .map_err(|e| format!("ldap bind password file {}: {e}", f.display()))?
                    .trim_end_matches(['\n', '\r'])
                    .to_string(),
            ),
            (None, None) => None,
        };
        if bind_password.is_some() != settings.bind_dn.is_some() {
            return Err("ldap bind_dn and bind_password go together".into());
        }
        let tls = match &settings.ca_file {
            Some(path) => Some(Arc::new(tls_config(path)?)),
            None => None,
        };
        Ok(Self {
            timeout: Duration::from_secs(settings.timeout_secs),
            settings,
            bind_password,
            tls,
        })
    }

    pub fn url(&self) -> &str {
        &self.settings.url
    }

    /// Checks a login.
    ///
    /// # Errors
    /// [`DirectoryError::InvalidCredentials`] for every way the name and password can be
    /// wrong, including an empty password; [`DirectoryError::Unavailable`] when the
    /// directory is down or slower than the time-out.
    pub async fn authenticate(
        &self,
        name: &UserName,
        password: &str,
    ) -> Result<DirectoryUser, DirectoryError> {
        if password.is_empty() {
            return Err(DirectoryError::InvalidCredentials);
        }
        // One bound on the whole exchange, on top of ldap3's per-operation time-outs:
        // connect, search account bind, two searches and the user bind.
        let whole = self.timeout * 3;
        tokio::time::timeout(whole, self.authenticate_inner(name, password))
            .await
            .map_err(|_| {
                DirectoryError::Unavailable(format!("no answer within {} seconds", whole.as_secs()))
            })?
    }

    async fn authenticate_inner(
        &self,
        name: &UserName,
        password: &str,
    ) -> Result<DirectoryUser, DirectoryError> {
        let mut ldap = self.connect().await?;
        let result = self.login(&mut ldap, name, password).await;
        let _ = ldap.unbind().await;
        result
    }

    async fn login(
        &self,
        ldap: &mut Ldap,
        name: &UserName,
        password: &str,
    ) -> Result<DirectoryUser, DirectoryError> {
        self.bind_search_account(ldap).await?;
        let filter = self
            .settings
            .user_filter
            .replace("{username}", &ldap_escape(name.as_str()));
        let (entries, _) = ldap
            .with_timeout(self.timeout)
            .search(
                &self.settings.base_dn,
                Scope::Subtree,
                &filter,
                vec!["uid", "cn", "displayName", "uidNumber"],
            )
            .await
            .map_err(unavailable)?
            .success()
            .map_err(refused)?;
        // Exactly one entry: none is an unknown name, several would make the password
        // decide who logs in.
        let [entry] =
            <[_; 1]>::try_from(entries).map_err(|_| DirectoryError::InvalidCredentials)?;
        let entry = SearchEntry::construct(entry);
        let first = |attr: &str| entry.attrs.get(attr).and_then(|v| v.first()).cloned();
        let uid = first("uid").unwrap_or_else(|| name.to_string());
        let groups = self.groups(ldap, &entry.dn, &uid).await?;
        let role = self.role(&groups);

        let bound = ldap
            .with_timeout(self.timeout)
            .simple_bind(&entry.dn, password)
            .await
            .map_err(unavailable)?;
        match bound.rc {
            0 => {}
            INVALID_CREDENTIALS => return Err(DirectoryError::InvalidCredentials),
            _ => return Err(refused(ldap3::LdapError::from(bound))),
        }
        Ok(DirectoryUser {
            display_name: first("displayName").or_else(|| first("cn")),
            uid_number: first("uidNumber").and_then(|n| n.parse().ok()),
            dn: entry.dn,
            name: name.clone(),
            role,
            groups,
        })
    }

    /// The role from the configured groups: admin before teacher before student.
    fn role(&self, member_of: &[String]) -> Role {
        let is = |g: &Option<String>| g.as_ref().is_some_and(|g| member_of.contains(g));
        if is(&self.settings.admin_group) {
            Role::Admin
        } else if is(&self.settings.teacher_group) {
            Role::Teacher
        } else {
            Role::Student
        }
    }

    /// The `cn` of every group (posix, of names, of unique names) the person is in.
    async fn groups(
        &self,
        ldap: &mut Ldap,
        dn: &str,
        uid: &str,
    ) -> Result<Vec<String>, DirectoryError> {
        let (uid, dn) = (ldap_escape(uid), ldap_escape(dn));
        let filter = format!(
            "(|(&(objectClass=posixGroup)(memberUid={uid}))\
             (&(objectClass=groupOfNames)(member={dn}))\
             (&(objectClass=groupOfUniqueNames)(uniqueMember={dn})))"
        );
        let base = self
            .settings
            .group_base_dn
            .as_deref()
            .unwrap_or(&self.settings.base_dn);
        let (entries, _) = ldap
            .with_timeout(self.timeout)
            .search(base, Scope::Subtree, &filter, vec!["cn"])
            .await
            .map_err(unavailable)?
            .success()
            .map_err(refused)?;
        Ok(entries
            .into_iter()
            .flat_map(|e| {
                SearchEntry::construct(e)
                    .attrs
                    .remove("cn")
                    .unwrap_or_default()
            })
            .collect())
    }

    /// Connects and binds as the search account (or stays anonymous): what `/healthz`
    /// reports as the directory's state.
    pub async fn check(&self) -> Result<(), DirectoryError> {
        let mut ldap = tokio::time::timeout(self.timeout * 2, async {
            let mut ldap = self.connect().await?;
            self.bind_search_account(&mut ldap).await?;
            Ok::<_, DirectoryError>(ldap)
        })
        .await
        .map_err(|_| DirectoryError::Unavailable("no answer in time".into()))??;
        let _ = ldap.unbind().await;
        Ok(())
    }

    async fn connect(&self) -> Result<Ldap, DirectoryError> {
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(self.timeout)
            .set_starttls(self.settings.starttls);
        if let Some(tls) = &self.tls {
            settings = settings.set_config(tls.clone());
        }
        let (conn, ldap) = LdapConnAsync::with_settings(settings, &self.settings.url)
            .await
            .map_err(unavailable)?;
        ldap3::drive!(conn);
        Ok(ldap)
    }

    async fn bind_search_account(&self, ldap: &mut Ldap) -> Result<(), DirectoryError> {
        if let (Some(dn), Some(pw)) = (&self.settings.bind_dn, &self.bind_password) {
            ldap.with_timeout(self.timeout)
                .simple_bind(dn, pw)
                .await
                .map_err(unavailable)?
                .success()
                .map_err(|e| {
                    DirectoryError::Refused(format!("the search account cannot bind: {e}"))
                })?;
        }
        Ok(())
    }
}

fn unavailable(e: ldap3::LdapError) -> DirectoryError {
    DirectoryError::Unavailable(e.to_string())
}

fn refused(e: ldap3::LdapError) -> DirectoryError {
    DirectoryError::Refused(e.to_string())
}

fn tls_config(ca_file: &std::path::Path) -> Result<rustls::ClientConfig, String> {
    let pem =
        std::fs::read(ca_file).map_err(|e| format!("ldap CA file {}: {e}", ca_file.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| format!("ldap CA file {}: {e}", ca_file.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("ldap CA file {}: {e}", ca_file.display()))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "ldap CA file {} holds no certificate",
            ca_file.display()
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
