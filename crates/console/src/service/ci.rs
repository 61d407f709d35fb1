//! GitLab CI, as in the report, made safe.
//!
//! Each user who sets a runner token gets a GitLab Runner container of their own, with a
//! generated `config.toml`: the docker executor, one job at a time, jobs never privileged,
//! without the Docker socket or any host path, only from the allowed images, with no
//! service containers unless an administrator lists some, in the owner's own network (set
//! by the docker backend). The GitLab's address passes the egress rule of pulls. The
//! pipeline we hand out builds nothing itself: its job sends the repository as a build
//! context to our build API with a personal token of scope `build`, so the image is
//! attributed to its owner and shows at once.

use super::accounts::Caller;
use super::Error;
use crate::config::Config;
use crate::hosts::{Hosts, Need};
use crate::sealed::{ci_context, Sealer};
use crate::util::{now, rfc3339};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;
use wm_backend::{BackendError, RunnerSpec};
use wm_store::{CiSettings, Store};

/// `PUT /api/v1/ci`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CiRequest {
    /// The department GitLab, e.g. `https://gitlab.ie.example.org`.
    pub gitlab_url: String,
    /// The runner authentication token from GitLab (`glrt-...`).
    pub token: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct CiView {
    pub configured: bool,
    pub gitlab_url: Option<String>,
    /// The token's last characters; the token itself is never shown again.
    pub token_hint: Option<String>,
    /// `null` when no runner exists (or the Docker host cannot be asked).
    pub runner: Option<RunnerView>,
    pub updated_at: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub(crate) struct RunnerView {
    /// The runner container's state: `running`, `exited`, `restarting`, ...
    pub state: wm_domain::ContainerStatus,
    pub image: String,
    /// The host it runs on.
    pub host: String,
}

fn parse_gitlab_url(s: &str) -> Result<String, Error> {
    let bad = || {
        Error::broke(
            "gitlab_url",
            "not_http",
            [],
            "gitlab_url must be an http(s) address like https://gitlab.example.org",
        )
    };
    let s = s.trim().trim_end_matches('/');
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .ok_or_else(bad)?;
    let host = rest.split('/').next().unwrap_or("");
    let ok = !host.is_empty()
        && s.len() <= 2048
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        && rest
            .chars()
            .all(|c| c.is_ascii_graphic() && !"\"'\\<>`{}|^".contains(c));
    if ok {
        Ok(s.to_string())
    } else {
        Err(bad())
    }
}

fn parse_runner_token(s: &str) -> Result<String, Error> {
    let s = s.trim();
    let ok = !s.is_empty()
        && s.len() <= 256
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(s.to_string())
    } else {
        Err(Error::broke(
            "token",
            "runner_token",
            [],
            "the runner token is 1 to 256 letters, digits, '-', '_' or '.'",
        ))
    }
}

fn hint(token: &str) -> String {
    let tail: String = token
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("…{tail}")
}

#[derive(Serialize)]
struct RunnerConfig {
    concurrent: u32,
    check_interval: u32,
    runners: Vec<RunnerEntry>,
}

#[derive(Serialize)]
struct RunnerEntry {
    name: String,
    url: String,
    token: String,
    executor: &'static str,
    docker: DockerExecutor,
}

#[derive(Serialize)]
struct DockerExecutor {
    image: String,
    privileged: bool,
    disable_cache: bool,
    volumes: Vec<String>,
    allowed_images: Vec<String>,
    allowed_services: Vec<String>,
    /// How many services a job may start; `None` is the runner's default (no limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    services_limit: Option<u32>,
    pull_policy: Vec<&'static str>,
    allowed_pull_policies: Vec<&'static str>,
    cap_drop: Vec<&'static str>,
    security_opt: Vec<&'static str>,
    memory: String,
    cpus: String,
}

/// Which service images jobs may start.
struct CiServices {
    allowed: Vec<String>,
    limit: Option<u32>,
}

/// Each user's GitLab runner.
pub(crate) struct Ci {
    store: Store,
    hosts: Arc<Hosts>,
    sealer: Arc<Sealer>,
    config: Arc<Config>,
}

impl Ci {
    pub(crate) fn new(
        store: Store,
        hosts: Arc<Hosts>,
        sealer: Arc<Sealer>,
        config: Arc<Config>,
    ) -> Self {
        Self {
            store,
            hosts,
            sealer,
            config,
        }
    }

    /// GitLab Runner's docker executor reads an empty `allowed_services` as "any service
    /// image" (`verifyAllowedImage` allows everything when the list is empty), so an empty
    /// list is never written. Without `ci_allowed_services`, `services_limit = 0` refuses every
    /// job that asks for a service, and the list holds only the job image, for runners older
    /// than `services_limit`. With it, jobs may start those images, as many as are listed.
    fn ci_services(&self) -> CiServices {
        let listed: Vec<String> = self
            .config
            .ci_allowed_services
            .as_deref()
            .unwrap_or_default()
            .split_whitespace()
            .map(String::from)
            .collect();
        if listed.is_empty() {
            CiServices {
                allowed: vec![self.config.ci_job_image.clone()],
                limit: Some(0),
            }
        } else {
            CiServices {
                limit: Some(listed.len().try_into().unwrap_or(u32::MAX)),
                allowed: listed,
            }
        }
    }

    /// Refuses a GitLab on the host's own network (loopback, link-local, this machine's
    /// addresses, its container networks) unless an administrator allows it by name
    /// (`WM_EGRESS_ALLOWED`).
    async fn check_gitlab_url(&self, url: &str) -> Result<(), Error> {
        use wm_docker::egress::EgressError;
        match self.config.docker.egress_rule().check_url(url).await {
            Ok(()) => Ok(()),
            Err(EgressError::Forbidden { host, reason }) => Err(Error::broke(
                "gitlab_url",
                "egress",
                [("host", host.to_string()), ("near", reason.code().to_string())],
                format!(
                    "gitlab_url may not point to {host}: {reason}; an administrator can allow a GitLab on the host's own network by name (WM_EGRESS_ALLOWED)"
                ),
            )),
            // The runner resolves the name when it connects, and a name can change after any
            // check: one that does not resolve now is no more dangerous than one that does.
            Err(EgressError::Unresolvable(host)) => {
                tracing::info!(%host, "the GitLab's name does not resolve here; accepted");
                Ok(())
            }
            Err(EgressError::Invalid(_)) => Err(Error::broke(
                "gitlab_url",
                "not_http",
                [],
                "gitlab_url must be an http(s) address like https://gitlab.example.org",
            )),
        }
    }

    /// The runner's `config.toml`, serialised (never pasted together: a URL or token cannot
    /// add settings of its own).
    fn runner_config(&self, caller: &Caller, url: &str, token: &str) -> String {
        let limits = self.config.default_limits();
        let allowed = self.config.ci_allowed_images.as_deref().map_or_else(
            || vec![self.config.ci_job_image.clone()],
            |s| s.split_whitespace().map(String::from).collect(),
        );
        let services = self.ci_services();
        let config = RunnerConfig {
            concurrent: 1,
            check_interval: 3,
            runners: vec![RunnerEntry {
                name: format!("whalemountain-{}", caller.name),
                url: url.to_string(),
                token: token.to_string(),
                executor: "docker",
                docker: DockerExecutor {
                    image: self.config.ci_job_image.clone(),
                    privileged: false,
                    disable_cache: true,
                    volumes: Vec::new(),
                    allowed_images: allowed,
                    services_limit: services.limit,
                    allowed_services: services.allowed,
                    pull_policy: vec!["if-not-present"],
                    allowed_pull_policies: vec!["if-not-present"],
                    cap_drop: vec!["ALL"],
                    security_opt: vec!["no-new-privileges:true"],
                    memory: format!("{}b", limits.memory_bytes),
                    cpus: format!("{}", limits.nano_cpus as f64 / 1e9),
                },
            }],
        };
        toml::to_string(&config).expect("the runner config serialises")
    }

    async fn view(&self, caller: &Caller) -> Result<CiView, Error> {
        let Some(settings) = self.store.ci_settings(caller.name.as_str()).await? else {
            return Ok(CiView {
                configured: false,
                gitlab_url: None,
                token_hint: None,
                runner: None,
                updated_at: None,
            });
        };
        let mut runner = None;
        for host in self.hosts.usable() {
            match host.backend.runner(&caller.name).await {
                Ok(Some(r)) => {
                    runner = Some(RunnerView {
                        state: r.state,
                        image: r.image,
                        host: host.id.clone(),
                    });
                    break;
                }
                Ok(None) | Err(BackendError::Unavailable(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(CiView {
            configured: true,
            gitlab_url: Some(settings.gitlab_url),
            token_hint: match self
                .sealer
                .open(&ci_context(caller.name.as_str()), &settings.runner_token)
            {
                Ok(token) => Some(hint(&token)),
                Err(e) => {
                    tracing::error!(user = %caller.name, error = %e, "cannot open the stored runner token");
                    None
                }
            },
            runner,
            updated_at: Some(rfc3339(settings.updated_at)),
        })
    }

    /// Set the GitLab runner token and (re)start the caller's runner.
    pub(crate) async fn put(&self, caller: &Caller, req: CiRequest) -> Result<CiView, Error> {
        caller.require_full_scope()?;
        let url = parse_gitlab_url(&req.gitlab_url)?;
        let token = parse_runner_token(&req.token)?;
        self.check_gitlab_url(&url).await?;
        let spec = RunnerSpec {
            owner: caller.name.clone(),
            image: self.config.ci_runner_image.clone(),
            config_toml: self.runner_config(caller, &url, &token),
            limits: self.config.default_limits(),
        };
        // The runner goes where a container would; the one it replaces may be elsewhere.
        let host = self
            .hosts
            .place(&Need {
                required: &[],
                has_image: &[],
                memory: 0,
                gpus: 0,
                overcommit: self.config.memory_overcommit,
                only: None,
            })
            .await?
            .host;
        for other in self.hosts.usable() {
            if other.id != host.id {
                other.backend.remove_runner(&caller.name).await?;
            }
        }
        host.backend.put_runner(&spec).await.map_err(|e| match e {
            BackendError::NoSuchImage(image) => Error::unavailable(
                "runner_image",
                [("image", image.clone()), ("host", host.id.to_string())],
                format!(
                    "the runner image {image} is not on host {}; an administrator must pull it",
                    host.id
                ),
            ),

            other => other.into(),
        })?;
        self.store
            .set_ci_settings(&CiSettings {
                owner: caller.name.clone(),
                gitlab_url: url,
                runner_token: self.sealer.seal(&ci_context(caller.name.as_str()), &token),
                updated_at: now(),
            })
            .await?;
        self.view(caller).await
    }

    /// The caller's CI settings and runner state.
    pub(crate) async fn get(&self, caller: &Caller) -> Result<CiView, Error> {
        caller.require_full_scope()?;
        self.view(caller).await
    }

    /// Remove the caller's runner and CI settings.
    pub(crate) async fn delete(&self, caller: &Caller) -> Result<(), Error> {
        caller.require_full_scope()?;
        for host in self.hosts.usable() {
            host.backend.remove_runner(&caller.name).await?;
        }
        self.store.delete_ci_settings(caller.name.as_str()).await?;
        Ok(())
    }

    /// A pipeline to commit beside the Dockerfile: it sends the repository to the build API.
    pub(crate) fn pipeline(&self, caller: &Caller, base: &str) -> Result<String, Error> {
        caller.require_full_scope()?;
        let base = base.trim_end_matches('/');
        let yaml = format!(
            r#"# Builds the Dockerfile of this repository into your whalemountain images
# ({prefix}/{user}/<project>:<commit>), through whalemountain's build API: the job needs
# no Docker socket.
#
# Once: create a personal token of scope "build" (whalemountain console, or
#   curl -H "Authorization: Bearer <your token>" -H "Content-Type: application/json" \
#        -d '{{"name": "gitlab", "scope": "build"}}' {base}/api/v1/tokens )
# and store it in GitLab under Settings > CI/CD > Variables as WM_TOKEN (masked).
whalemountain-build:
  image: {job_image}
  variables:
    WM_URL: "{base}"
  script:
    - tar -czf /tmp/context.tar.gz --exclude=./.git .
    - >-
      curl --fail --silent --show-error --no-buffer
      -H "Authorization: Bearer $WM_TOKEN"
      -F "name=$CI_PROJECT_NAME:$CI_COMMIT_SHORT_SHA"
      -F "context=@/tmp/context.tar.gz"
      "$WM_URL/api/v1/images/build" | tee /tmp/build.log
    - tail -n 1 /tmp/build.log | grep -q '"status":"done"'
"#,
            prefix = self.config.image_prefix,
            user = caller.name,
            job_image = self.config.ci_job_image,
        );
        Ok(yaml)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_tokens() {
        assert_eq!(
            parse_gitlab_url("https://gitlab.example.org/").unwrap(),
            "https://gitlab.example.org"
        );
        assert!(parse_gitlab_url("http://10.0.0.1:8080/gitlab").is_ok());
        for bad in [
            "gitlab.example.org",
            "javascript:alert(1)",
            "https://",
            "https://a b",
            "https://x\"\n[[runners]]",
            "ftp://x",
        ] {
            assert!(parse_gitlab_url(bad).is_err(), "{bad:?}");
        }
        assert!(parse_runner_token("glrt-AbC_123.x").is_ok());
        for bad in ["", "a b", "x\"\ntoken=\"y", &"a".repeat(257)] {
            assert!(parse_runner_token(bad).is_err(), "{bad:?}");
        }
        assert_eq!(hint("glrt-secret-abcd"), "…abcd");
    }
}
