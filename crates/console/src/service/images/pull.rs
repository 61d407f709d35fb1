//! Pulls from registries, with their live progress, and the progress lines every long
//! image operation streams.

use super::{Caller, Error, Host, Images};
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use utoipa::ToSchema;
use wm_backend::{BackendError, Progress, RegistryAuth};
use wm_docker::pull_error::PullFailure;
use wm_domain::ImageRef;

/// The lines of a long operation as it goes: progress, then one last line that is
/// `{status: done, ...}` or `{status: error, error}`.
pub(crate) type Lines = futures::stream::BoxStream<'static, Value>;

/// `POST /api/v1/images/pull`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PullRequest {
    pub(crate) image: String,
    /// The host to pull onto; every host that answers when left out (or `all`).
    #[serde(default)]
    pub(crate) host: Option<String>,
}

/// One host's progress, each step with the host's id.
pub(super) type HostProgress =
    futures::stream::BoxStream<'static, Result<(String, Progress), BackendError>>;

/// A pull or build under way: its hosts' progress, merged, and the hosts it runs on (whose
/// result is scanned when it ends).
pub(super) struct Running {
    pub(super) progress: HostProgress,
    pub(super) hosts: Vec<Arc<Host>>,
}

impl Images {
    /// Pull an image from a registry, with live progress.
    pub(crate) async fn pull(&self, caller: &Caller, req: PullRequest) -> Result<Lines, Error> {
        caller.require_full_scope()?;
        let image = ImageRef::parse(&req.image)?;
        let registry = image.registry();
        if let Some(allowed) = self.config.allowed_registries() {
            if !allowed.contains(&registry) {
                return Err(Error::forbidden(
                    "registry_not_allowed",
                    [
                        ("registry", registry.to_string()),
                        ("allowed", allowed.join(", ")),
                    ],
                    format!(
                        "pulls from {registry} are not allowed here; allowed: {}",
                        allowed.join(", ")
                    ),
                ));
            }
        }
        if self.built_here(&image) {
            return Err(Error::forbidden(
                "built_here",
                [("prefix", self.config.image_prefix.to_string())],
                format!(
                    "{}/... holds the images built here; pull into another name",
                    self.config.image_prefix
                ),
            ));
        }
        self.check_egress(&image).await?;
        let auth = self.registry_auth(registry);
        let mut streams = Vec::new();
        let hosts = self.target_hosts(req.host.as_deref())?;
        for host in &hosts {
            let progress = host
                .backend
                .pull(&image, auth.clone())
                .await
                .map_err(|e| match e {
                    BackendError::Policy(why) => Error::forbidden_by_backend(&why),
                    BackendError::Unavailable(_) => e.into(),
                    other => {
                        let why = pull_failure_text(&image, other);
                        Error::conflict("pull_failed", [("why", why.clone())], why)
                    }
                })?;
            let pulled = image.clone();
            let progress = progress
                .map_err(move |e| match e {
                    BackendError::Unavailable(_) => e,
                    other => BackendError::Refused(pull_failure_text(&pulled, other).into()),
                })
                .boxed();
            streams.push(on_host(&host.id, progress));
        }
        let progress = futures::stream::select_all(streams).boxed();
        Ok(self.lines(
            caller.clone(),
            image,
            Running { progress, hosts },
            "pulling",
            None,
            None,
        ))
    }

    /// Pulls a public image onto `host` before a container starts from it there.
    ///
    /// # Errors
    /// 503 for an image of ours (built here, in no registry): it cannot be fetched, and
    /// the hosts that have it cannot take the container now.
    pub(crate) async fn pull_quietly(&self, host: &Host, image: &ImageRef) -> Result<(), Error> {
        if self.built_here(image) {
            return Err(Error::unavailable(
                "built_elsewhere",
                [("image", image.to_string()), ("host", host.id.to_string())],
                format!(
                    "{image} was built here and is not on {}, and the hosts that have it cannot take a container now; try again later",
                    host.id
                ),
            ));
        }
        self.check_egress(image).await?;
        tracing::info!(host = %host.id, %image, "pulling the image before a container starts from it");
        let mut progress = host
            .backend
            .pull(image, self.registry_auth(image.registry()))
            .await?;
        while let Some(step) = progress.next().await {
            step.map_err(|e| {
                let why = pull_failure_text(image, e);
                Error::unavailable(
                    "pull_onto",
                    [("why", why.clone()), ("host", host.id.to_string())],
                    format!("{why} (onto host {})", host.id),
                )
            })?;
        }
        self.scan_pulled(host, image).await
    }

    /// Refuses a pull from a registry on the host's own network (loopback, link-local, this
    /// machine's addresses) unless an administrator allows it by name. The docker backend
    /// checks the same again where the engine is.
    pub(crate) async fn check_egress(&self, image: &ImageRef) -> Result<(), Error> {
        use wm_docker::egress::EgressError;
        let registry = image.registry();
        match self.config.docker.egress_rule().check_pull(image.as_str()).await {
            Ok(()) => Ok(()),
            Err(EgressError::Forbidden { reason, .. }) => Err(Error::forbidden(
                "egress",
                [
                    ("registry", registry.to_string()),
                    ("near", reason.code().to_string()),
                ],
                format!(
                    "pulls from {registry} are not allowed: {reason}; an administrator can allow a registry on the host's own network by name (WM_EGRESS_ALLOWED)"
                ),
            )),
            Err(EgressError::Unresolvable(_)) => Err(Error::broke(
                "image",
                "unresolvable",
                [("registry", registry.to_string())],
                format!("the registry {registry} could not be reached: its name does not resolve. This server may have no connection to the internet; use an image that is already here, or ask an administrator"),
            )),
            Err(EgressError::Invalid(m)) => {
                Err(Error::broke("image", "egress_invalid", [("why", m.clone())], m))
            }
        }
    }

    /// The configured login for `registry`, if any.
    fn registry_auth(&self, registry: &str) -> Option<RegistryAuth> {
        self.config
            .registries
            .iter()
            .find(|r| r.host == registry)
            .map(|r| RegistryAuth {
                server: r.host.clone(),
                username: r.username.clone(),
                password: r.password.expose().to_string(),
            })
    }

    /// The hosts a pull or build goes to: the one named, or every host that answers.
    pub(super) fn target_hosts(&self, host: Option<&str>) -> Result<Vec<Arc<Host>>, Error> {
        match host {
            None | Some("") | Some("all") => Ok(self.hosts.answering()?),
            Some(id) => {
                let Some(h) = self.hosts.get(id) else {
                    let value: String = id.chars().take(64).collect();
                    return Err(Error::broke(
                        "host",
                        "unknown",
                        [("value", value.clone())],
                        format!("there is no host {value:?}; leave it out for every host"),
                    ));
                };
                self.hosts.reach(id)?;
                Ok(vec![h.clone()])
            }
        }
    }

    /// The last line of a successful pull or build: the image as the catalog shows it now.
    async fn done_line(&self, caller: &Caller, reference: &ImageRef) -> Value {
        if let Err(e) = self.catalog.refresh().await {
            return error_line("unavailable", e.to_string());
        }
        match self.resolve(caller, reference.as_str()).await {
            Ok(images) => json!({"status": "done", "image": images[0]}),
            Err(_) => error_line(
                "image_not_found",
                format!("{reference} finished but is not on the host"),
            ),
        }
    }

    /// The progress lines of a pull or build, then its last line, and an audit entry.
    pub(super) fn lines(
        &self,
        caller: Caller,
        image: ImageRef,
        running: Running,
        verb: &'static str,
        timeout: Option<Duration>,
        slot: Option<super::super::quotas::BuildSlot>,
    ) -> Lines {
        let this = self.clone();
        let (tx, rx) = tokio::sync::mpsc::channel::<Value>(64);
        tokio::spawn(async move {
            let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
            let Running {
                mut progress,
                hosts,
            } = running;
            let mut failure: Option<Value> = None;
            let mut gone = false;
            loop {
                let next = match deadline {
                    Some(d) => match tokio::time::timeout_at(d, progress.next()).await {
                        Ok(n) => n,
                        Err(_) => {
                            failure = Some(error_line(
                                "timeout",
                                format!(
                                    "stopped after {} seconds",
                                    timeout.unwrap_or_default().as_secs()
                                ),
                            ));
                            break;
                        }
                    },
                    None => progress.next().await,
                };
                match next {
                    None => break,
                    Some(Ok((host, p))) => {
                        let mut line = progress_line(p, verb);
                        line["host"] = Value::String(host);
                        if tx.send(line).await.is_err() {
                            // The client went away: dropping the stream cancels the work
                            // (what it finished is still scanned, below).
                            gone = true;
                            break;
                        }
                    }
                    Some(Err(e)) => {
                        let code = if verb == "building" {
                            "build_failed"
                        } else {
                            "pull_failed"
                        };
                        let message = if verb == "building" {
                            // A build's error may quote what a fetched URL answered.
                            wm_docker::pull_error::build_error_text(&e.to_string())
                        } else {
                            e.to_string()
                        };
                        let mut line = error_line(code, &message);
                        // Which sentence it is, for readers of another language: a pull's
                        // fixed sentence, a backend's keyed one (as an error answer
                        // carries it).
                        if verb == "pulling" {
                            let reason =
                                PullFailure::recognize(&message).unwrap_or(PullFailure::Failed);
                            line["error"]["reason"] = Value::String(reason.code().into());
                        } else if let Some(rule) = e.why().and_then(crate::service::said::line_rule)
                        {
                            line["error"]["reason"] = Value::String(rule.reason.into());
                            if !rule.params.is_empty() {
                                line["error"]["params"] = rule
                                    .params
                                    .into_iter()
                                    .map(|(k, v)| (k.to_string(), Value::String(v)))
                                    .collect::<serde_json::Map<_, _>>()
                                    .into();
                            }
                        }
                        failure = Some(line);
                        break;
                    }
                }
            }
            drop(progress);
            if failure.is_none() || gone {
                this.scan_new(&image, &hosts, &tx).await;
            }
            if gone {
                return;
            }
            let last = match failure {
                Some(f) => f,
                None => this.done_line(&caller, &image).await,
            };
            let ok = last["status"] == "done";
            this.audit
                .record(
                    Some(caller.name.to_string()),
                    if verb == "building" {
                        "image.build"
                    } else {
                        "image.pull"
                    }
                    .to_string(),
                    Some(image.to_string()),
                    if ok { 200 } else { 500 },
                    (!ok).then(|| {
                        last["error"]["message"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string()
                    }),
                )
                .await;
            let _ = tx.send(last).await;
            drop(slot);
        });
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) })
            .boxed()
    }
}

/// What a user is told of a failed pull: one of a few fixed sentences, never the engine's
/// text (which quotes what the registry answered). A text that is not already one of them
/// is logged here.
fn pull_failure_text(image: &ImageRef, e: BackendError) -> String {
    match e {
        // Our own connection to the engine or agent, with nothing from the registry.
        BackendError::Unavailable(m) => BackendError::Unavailable(m).to_string(),
        BackendError::Policy(why) => why.text,
        other => PullFailure::from_engine(image.as_str(), &other.to_string()),
    }
}

fn progress_line(p: Progress, verb: &str) -> Value {
    match p {
        Progress::Layer {
            id,
            status,
            current,
            total,
        } => {
            json!({"status": verb, "layer": id, "detail": status, "current": current, "total": total})
        }
        Progress::Status { status } => json!({"status": verb, "detail": status}),
        Progress::Log { line } => json!({"status": verb, "stream": line}),
    }
}

fn error_line(code: &str, message: impl Into<String>) -> Value {
    json!({"status": "error", "error": {"code": code, "message": message.into()}})
}

pub(super) fn on_host(id: &str, progress: wm_backend::ProgressStream) -> HostProgress {
    let id = id.to_string();
    progress
        .map(move |step| {
            step.map(|p| (id.clone(), p)).map_err(|e| match e {
                // Its key stays: the host is named in English only.
                BackendError::Refused(why) => BackendError::Refused(wm_backend::Why {
                    text: format!("{id}: {}", why.text),
                    ..why
                }),
                other => other,
            })
        })
        .boxed()
}
