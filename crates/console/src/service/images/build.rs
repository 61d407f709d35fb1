//! Builds: the Dockerfile is read and every image it names checked before the engine is
//! sent anything (see `wm_domain::dockerfile` and the README's security model).

use super::context;
use super::pull::{on_host, Lines, Running};
use super::{Caller, Error, Host, Images};
use bytes::Bytes;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use wm_backend::{BuildRequest, ImageInfo};
use wm_domain::{Dockerfile, EnvVar, ImageRef};

/// Declared after every `FROM` of a build and set to the builder's name. The classic
/// builder's layer cache is the engine's, shared by every user; a declared build argument
/// is part of the cache key of every `RUN` step, so one user's build never reuses the
/// output of another user's `RUN` step (which could hold what that step fetched with a
/// secret of theirs).
const OWNER_ARG: &str = "WM_BUILD_OWNER";

/// What a build is given: a name (`web`, `web:1`), the Dockerfile or a context archive,
/// `KEY=value` build arguments, and the host to build on (all when `None`).
pub(crate) struct BuildInput {
    pub(crate) name: String,
    pub(crate) source: Option<BuildSource>,
    pub(crate) build_args: Vec<String>,
    pub(crate) host: Option<String>,
}

/// A build's input as sent: Dockerfile text, or an archive (tar, optionally gzipped).
pub(crate) enum BuildSource {
    Text(String),
    Archive(Vec<u8>),
}

impl Images {
    /// Builds an image into the caller's namespace on the hosts asked for, with its live
    /// log. Every image the Dockerfile reads is checked on every host before any build
    /// starts.
    pub(crate) async fn build(&self, caller: &Caller, input: BuildInput) -> Result<Lines, Error> {
        // Counted from here until the build's last line is sent.
        let slot = self.quotas.begin_build(caller).await?;
        let mut build_args = Vec::new();
        for text in &input.build_args {
            let arg = EnvVar::parse(text.trim()).map_err(|e| {
                // The rule an environment variable broke, said of a build argument.
                debug_assert_eq!(e.field, "env");
                let message = format!("build argument: {}", e.message);
                Error::from(wm_domain::ParseError {
                    field: "buildarg",
                    message,
                    ..e
                })
            })?;
            if arg.key() == OWNER_ARG {
                return Err(Error::broke(
                    "buildarg",
                    "reserved",
                    [("key", OWNER_ARG.to_string())],
                    format!("the build argument {OWNER_ARG} is set by the console"),
                ));
            }
            build_args.push((arg.key().to_string(), arg.value().to_string()));
        }
        let tag = self.build_reference(caller, &input.name)?;
        let context = input.source.ok_or_else(|| {
            Error::broke("dockerfile", "none", [], "send a dockerfile or a context")
        })?;
        if let BuildSource::Archive(raw) = &context {
            if !looks_like_tar(raw) {
                return Err(Error::broke(
                    "context",
                    "not_tar",
                    [],
                    "the context must be a tar archive, optionally gzipped",
                ));
            }
        }
        let unpacked_limit = self.config.build_context_max_unpacked_bytes;
        let context = tokio::task::spawn_blocking(move || match context {
            BuildSource::Text(text) => Ok(context::Context::from_dockerfile(text)),
            BuildSource::Archive(raw) => context::unpack(&raw, unpacked_limit),
        })
        .await
        .map_err(|e| Error::Unexpected(e.into()))?
        .map_err(|e| match e {
            context::ContextError::TooLarge(max) => Error::too_large_because(
                "context_unpacked",
                [("max", max.to_string())],
                e.to_string(),
            ),
            context::ContextError::Invalid {
                reason,
                path: Some(path),
                message,
            } => Error::broke("context", reason, [("path", path)], message),
            context::ContextError::Invalid {
                reason,
                path: None,
                message,
            } => Error::broke("context", reason, [], message),
        })?;
        let context = Arc::new(context);
        let df = Dockerfile::parse(&context.dockerfile, &build_args)?;
        build_args.push((OWNER_ARG.to_string(), caller.name.to_string()));
        let req = BuildRequest {
            tag: tag.clone(),
            owner: caller.name.clone(),
            build_args,
            limits: self.config.default_limits(),
            max_image_bytes: Some(self.config.build_image_max_bytes.min(i64::MAX as u64) as i64),
        };
        // Everything is checked on every host before any build starts.
        let mut sends = Vec::new();
        for h in self.target_hosts(input.host.as_deref())? {
            let (pinned, urls) = self.checked_dockerfile(caller, &h, &df).await?;
            self.check_add_urls(&urls).await?;
            sends.push((h, pinned));
        }
        let mut streams = Vec::new();
        let hosts: Vec<Arc<Host>> = sends.iter().map(|(h, _)| h.clone()).collect();
        for (h, pinned) in sends {
            let ctx = context.clone();
            let bytes = tokio::task::spawn_blocking(move || ctx.with_dockerfile(&pinned))
                .await
                .map_err(|e| Error::Unexpected(e.into()))?
                .map_err(|e| {
                    Error::broke(
                        "context",
                        "bad_entry",
                        [("why", e.to_string())],
                        format!("the context has an entry that cannot be sent to the engine: {e}"),
                    )
                })?;
            let progress = h.backend.build(&req, Bytes::from(bytes)).await?;
            streams.push(on_host(&h.id, progress));
        }
        let progress = futures::stream::select_all(streams).boxed();
        let timeout = Duration::from_secs(self.config.build_timeout_secs);
        Ok(self.lines(
            caller.clone(),
            tag,
            Running { progress, hosts },
            "building",
            Some(timeout),
            Some(slot),
        ))
    }

    /// A build name, `name` or `name:tag`: one lowercase path component and a tag.
    fn build_reference(&self, caller: &Caller, name: &str) -> Result<ImageRef, Error> {
        let name = name.trim();
        if name.is_empty() {
            return Err(Error::broke(
                "name",
                "no_image_name",
                [],
                "the image needs a name, e.g. web or web:1",
            ));
        }
        let prefix = format!("{}/{}/", self.config.image_prefix, caller.name);
        if name.contains('/') || name.contains('@') {
            let value: String = name.chars().take(80).collect();
            return Err(Error::broke(
                "name",
                "image_path",
                [("value", value), ("prefix", prefix.clone())],
                format!("{name:?}: give only a name and tag; the image goes under {prefix}"),
            ));
        }
        // The rule of an image reference, said of the name (whose length is the
        // reference's, not a container name's).
        ImageRef::parse(&format!("{prefix}{name}")).map_err(|e| {
            let reason = match e.reason {
                "too_long" => "image_too_long",
                other => other,
            };
            Error::from(wm_domain::ParseError {
                field: "name",
                reason,
                ..e
            })
        })
    }

    /// Resolves `raw` on `host` the way the builder will (the engine resolves the string as
    /// written: a name, a tag, a digest, a full or short id) and applies the rule of
    /// container create to what it resolves to.
    async fn build_source(
        &self,
        caller: &Caller,
        host: &Host,
        raw: &str,
    ) -> Result<ImageInfo, Error> {
        let hex_id = |h: &str| {
            !h.is_empty() && h.len() <= 64 && h.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'))
        };
        let well_formed = ImageRef::parse(raw).is_ok()
            || raw.strip_prefix("sha256:").is_some_and(hex_id)
            || hex_id(raw);
        if !well_formed {
            let value: String = raw.chars().take(80).collect();
            return Err(Error::broke(
                "dockerfile",
                "not_an_image",
                [("value", value)],
                format!("the Dockerfile names {raw:?}, which is not an image reference"),
            ));
        }
        let Some(info) = host.backend.image(raw).await? else {
            return Err(build_image_not_found(raw));
        };
        // By id, any of the image's references may be the one its owner shares.
        let names: Vec<&str> = info.tags.iter().map(String::as_str).collect();
        if !self.allowed(caller, &info, &names).await? {
            return Err(build_image_not_found(raw));
        }
        // Nothing is built from what its scan holds back.
        self.check_scan(&info.id, raw).await?;
        Ok(info)
    }

    /// Checks every image a build reads on `host` (also those of the base images' `ONBUILD`
    /// triggers), and answers the Dockerfile to send, each image pinned to the id checked,
    /// and the `ADD` URLs it fetches.
    async fn checked_dockerfile(
        &self,
        caller: &Caller,
        host: &Host,
        df: &Dockerfile,
    ) -> Result<(String, Vec<String>), Error> {
        let mut found: HashMap<String, ImageInfo> = HashMap::new();
        for raw in df.images() {
            let info = self.build_source(caller, host, raw).await?;
            found.insert(raw.clone(), info);
        }
        let mut urls: Vec<String> = df.add_urls().to_vec();
        for (stage, base) in df.stage_images() {
            let Some(info) = found.get(base) else {
                continue;
            };
            if info.on_build.is_empty() {
                continue;
            }
            let (images, more) = df.trigger_uses(stage, &info.on_build)?;
            for raw in images {
                self.build_source(caller, host, &raw).await?;
            }
            urls.extend(more);
        }
        let pinned = df
            .pinned(
                &|raw| found.get(raw).map(|i| i.id.clone()),
                Some(&format!("ARG {OWNER_ARG}")),
            )
            .map_err(|raw| Error::Unexpected(anyhow::anyhow!("no id for {raw}")))?;
        Ok((pinned, urls))
    }

    /// Refuses, before the engine is sent anything, an `ADD` URL on the host's own network
    /// (loopback, link-local, this machine's addresses) that an administrator has not allowed
    /// by name: the engine fetches it from the host.
    async fn check_add_urls(&self, urls: &[String]) -> Result<(), Error> {
        use wm_docker::egress::EgressError;
        let rule = self.config.docker.egress_rule();
        for url in urls {
            match rule.check_url(url).await {
                Ok(()) => {}
                // 400, not 403: the web console reads a 403 of a build form as its token.
                Err(EgressError::Forbidden { host, reason }) => {
                    return Err(Error::broke(
                        "dockerfile",
                        "add_egress",
                        [
                            ("url", url.to_string()),
                            ("host", host.to_string()),
                            ("near", reason.code().to_string()),
                        ],
                        format!(
                            "ADD {url}: builds may not fetch from {host} ({reason}); an administrator can allow it by name (WM_EGRESS_ALLOWED)"
                        ),
                    ))
                }
                Err(EgressError::Unresolvable(_)) => {
                    return Err(Error::broke(
                        "dockerfile",
                        "add_unresolvable",
                        [("url", url.to_string())],
                        format!("ADD {url}: its host name does not resolve"),
                    ))
                }
                Err(EgressError::Invalid(m)) => {
                    return Err(Error::broke(
                        "dockerfile",
                        "add_url",
                        [("url", url.to_string()), ("why", m.clone())],
                        format!("ADD {url}: {m}"),
                    ))
                }
            }
        }
        Ok(())
    }
}

/// What a build on one host reads: the missing or forbidden image answers the same.
fn build_image_not_found(raw: &str) -> Error {
    Error::missing(
        "image_not_found",
        "build_image",
        [("image", raw.to_string())],
        format!(
            "image {raw} (a build reads only images already on its host; pull a public one first) was"
        ),
    )
}

/// Whether bytes start a tar archive or a gzip stream.
fn looks_like_tar(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b]) || (head.len() >= 262 && &head[257..262] == b"ustar")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_detection() {
        let ctx = context::Context::from_dockerfile("FROM scratch\n".into())
            .with_dockerfile("FROM scratch\n")
            .unwrap();
        assert!(looks_like_tar(&ctx));
        assert!(looks_like_tar(&[0x1f, 0x8b, 8, 0]));
        assert!(!looks_like_tar(b"FROM scratch\n"));
        assert!(!looks_like_tar(b""));
    }
}
