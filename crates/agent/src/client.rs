//! The console's side: a [`ContainerBackend`] that is an agent on another host.

use crate::protocol::{
    BuildQuery, DirQuery, ErrorBody, Line, ListQuery, PathQuery, PullRequest, RefQuery, TailQuery,
    TerminalQuery,
};
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{SinkExt, StreamExt, TryStreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;
use tokio_util::codec::{FramedRead, LinesCodec};
use tokio_util::io::StreamReader;
use wm_backend::{
    Activity, BackendError, BuildRequest, ByteStream, ContainerBackend, ContainerSpec,
    ContainerState, ExecOutput, ExecRequest, HostInfo, ImageInfo, ProgressStream, RegistryAuth,
    RunnerSpec, RunnerState, StoragePath, Terminal, TerminalInput, TerminalOutput, TerminalRequest,
    Why,
};
use wm_domain::{ContainerKey, ImageRef, UserName};

/// Longest line of a progress stream.
const MAX_LINE: usize = 1 << 20;
/// How long a connection to an agent may take before the host counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Where an agent is: its host id and base URL (`http://blade1:8081`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentEndpoint {
    pub id: String,
    pub url: String,
}

impl AgentEndpoint {
    /// Parses the `WM_AGENTS` form: `h1=http://host1:8081 h2=https://host2:8081`.
    pub fn parse_list(s: &str) -> Result<Vec<Self>, String> {
        let mut out: Vec<Self> = Vec::new();
        for item in s.split_whitespace() {
            let (id, url) = item
                .split_once('=')
                .ok_or_else(|| format!("agent {item:?} must look like h1=http://host:port"))?;
            let e = Self {
                id: id.to_string(),
                url: url.to_string(),
            };
            e.validate()?;
            if out.iter().any(|o| o.id == e.id) {
                return Err(format!("agent id {:?} is listed twice", e.id));
            }
            out.push(e);
        }
        Ok(out)
    }

    pub fn validate(&self) -> Result<(), String> {
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 63
            && self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !id_ok {
            return Err(format!(
                "agent id {:?} must be 1 to 63 letters, digits, '-', '_' or '.'",
                self.id
            ));
        }
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| format!("agent {}: URL {:?}: {e}", self.id, self.url))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(format!(
                "agent {}: URL {:?} must be http(s)://host:port",
                self.id, self.url
            ));
        }
        Ok(())
    }

    /// The agent's host name, for links when the agent does not name an address.
    pub fn host(&self) -> Option<String> {
        reqwest::Url::parse(&self.url)
            .ok()
            .and_then(|u| u.host_str().map(String::from))
    }
}

/// The HTTP side of talking to one agent: its address, the token, time limits, and how
/// answers become the host's own results and errors.
pub(crate) struct Transport {
    id: String,
    base: String,
    token: String,
    pub(crate) http: reqwest::Client,
    pub(crate) timeout: Duration,
}

/// A container host reached through its agent.
pub struct RemoteBackend {
    t: Transport,
}

impl RemoteBackend {
    /// `tls` is the client configuration for `https` agents (their CA, and a client
    /// certificate for mutual TLS); `None` uses no TLS settings of ours.
    pub fn new(
        endpoint: &AgentEndpoint,
        token: &str,
        tls: Option<rustls::ClientConfig>,
        call_timeout: Duration,
    ) -> Result<Self, String> {
        Ok(Self {
            t: Transport::new(endpoint, token, tls, call_timeout)?,
        })
    }
}

impl Transport {
    pub(crate) fn new(
        endpoint: &AgentEndpoint,
        token: &str,
        tls: Option<rustls::ClientConfig>,
        call_timeout: Duration,
    ) -> Result<Self, String> {
        endpoint.validate()?;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(30));
        if let Some(tls) = tls {
            builder = builder.use_preconfigured_tls(tls);
        }
        let http = builder
            .build()
            .map_err(|e| format!("agent {}: {e}", endpoint.id))?;
        Ok(Self {
            id: endpoint.id.clone(),
            base: endpoint.url.trim_end_matches('/').to_string(),
            token: token.to_string(),
            http,
            timeout: call_timeout,
        })
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/v1{path}", self.base)
    }

    pub(crate) fn unreachable(&self, e: &reqwest::Error) -> BackendError {
        BackendError::Unavailable(if e.is_timeout() {
            Why::new(
                "agent_timeout",
                [("host", self.id.clone())],
                format!("host {}: its agent did not answer in time", self.id),
            )
        } else if e.is_connect() {
            Why::new(
                "agent_unreachable",
                [("host", self.id.clone())],
                format!("host {}: its agent cannot be reached", self.id),
            )
        } else {
            format!("host {}: its agent failed: {e}", self.id).into()
        })
    }

    /// Sends with the token; a failed answer becomes the host's own error.
    pub(crate) async fn send(
        &self,
        req: reqwest::RequestBuilder,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, BackendError> {
        let mut req = req.bearer_auth(&self.token);
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
        let status = resp.status();
        if status.is_success() || status == reqwest::StatusCode::SWITCHING_PROTOCOLS {
            return Ok(resp);
        }
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(BackendError::Unavailable(Why::new(
                "agent_token",
                [("host", self.id.clone())],
                format!(
                    "host {}: its agent refused the console's agent token",
                    self.id
                ),
            )));
        }
        let body = resp.bytes().await.map_err(|e| self.unreachable(&e))?;
        Err(match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(b) => b.error,
            Err(_) => BackendError::Engine(format!(
                "host {}: its agent answered {status}: {}",
                self.id,
                String::from_utf8_lossy(&body[..body.len().min(200)])
            )),
        })
    }

    pub(crate) async fn json<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<T, BackendError> {
        let resp = self.send(req, Some(timeout)).await?;
        resp.json().await.map_err(|e| {
            if e.is_timeout() {
                self.unreachable(&e)
            } else {
                BackendError::Engine(format!("host {}: unreadable answer: {e}", self.id))
            }
        })
    }

    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, BackendError> {
        let mut req = self.http.request(method, self.url(path));
        if let Some(b) = body {
            req = req.json(b);
        }
        self.json(req, self.timeout).await
    }

    pub(crate) async fn no_content(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<(), BackendError> {
        self.send(req, Some(self.timeout)).await.map(drop)
    }

    /// A terminal session on a WebSocket over the agent's own connection (its TLS and
    /// token): binary frames carry the bytes both ways, text frames the controls.
    pub(crate) async fn terminal(
        &self,
        r: reqwest::RequestBuilder,
    ) -> Result<Terminal, BackendError> {
        use tokio_tungstenite::tungstenite::protocol::Role;
        use tokio_tungstenite::tungstenite::Message;
        let resp = self.send(websocket_request(r), None).await?;
        let io = resp.upgrade().await.map_err(|e| self.unreachable(&e))?;
        let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(io, Role::Client, None).await;
        let (mut sink, stream) = ws.split();
        let (input, mut rx) = futures::channel::mpsc::channel::<TerminalInput>(16);
        tokio::spawn(async move {
            while let Some(i) = rx.next().await {
                let msg = match i {
                    TerminalInput::Data { data } => Message::Binary(data.into()),
                    resize @ TerminalInput::Resize { .. } => {
                        Message::Text(serde_json::to_string(&resize).unwrap_or_default().into())
                    }
                };
                if sink.send(msg).await.is_err() {
                    return;
                }
            }
            // The console is done with the session: the agent ends it.
            let _ = sink.close().await;
        });
        let host = self.id.clone();
        let output = stream.filter_map(move |m| {
            let host = host.clone();
            async move {
                match m {
                    Ok(Message::Binary(data)) => Some(Ok(TerminalOutput::Data {
                        data: data.to_vec(),
                    })),
                    Ok(Message::Text(text)) => {
                        serde_json::from_str::<TerminalOutput>(&text).ok().map(Ok)
                    }
                    Ok(_) => None,
                    Err(e) => Some(Err(BackendError::Unavailable(
                        format!("host {host}: its agent's terminal session failed: {e}").into(),
                    ))),
                }
            }
        });
        Ok(Terminal {
            input,
            output: output.boxed(),
        })
    }

    /// An NDJSON answer as a stream of the host's results.
    fn lines<T: DeserializeOwned + Send + 'static>(
        &self,
        resp: reqwest::Response,
    ) -> BoxStream<'static, Result<T, BackendError>> {
        let id = self.id.clone();
        let reader = StreamReader::new(resp.bytes_stream().map_err(std::io::Error::other));
        FramedRead::new(reader, LinesCodec::new_with_max_length(MAX_LINE))
            .map(move |line| {
                let line = line.map_err(|e| {
                    BackendError::Unavailable(Why::new(
                        "agent_stream_broke",
                        [("host", id.clone())],
                        format!("host {id}: the stream broke off: {e}"),
                    ))
                })?;
                match serde_json::from_str::<Line<T>>(&line) {
                    Ok(Line::Ok(v)) => Ok(v),
                    Ok(Line::Err(e)) => Err(e),
                    Err(e) => Err(BackendError::Engine(format!(
                        "host {id}: unreadable stream line: {e}"
                    ))),
                }
            })
            .boxed()
    }
}

/// `<owner>/<short name>`: a container in an agent's paths.
fn container_segments(key: &ContainerKey) -> String {
    format!(
        "{}/{}",
        path_segment(key.owner.as_str()),
        path_segment(key.short.as_str())
    )
}

pub(crate) fn path_segment(s: &str) -> String {
    // Container and user names are [a-z0-9-], but never trust that in a URL.
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[async_trait]
impl ContainerBackend for RemoteBackend {
    fn host_name(&self) -> &str {
        &self.t.id
    }

    async fn info(&self) -> Result<HostInfo, BackendError> {
        self.t
            .call(reqwest::Method::GET, "/info", None::<&()>)
            .await
    }

    async fn image(&self, reference: &str) -> Result<Option<ImageInfo>, BackendError> {
        let req = self
            .t
            .http
            .get(self.t.url("/images/inspect"))
            .query(&RefQuery {
                reference: reference.to_string(),
            });
        self.t.json(req, self.t.timeout).await
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<ContainerState, BackendError> {
        self.t
            .call(reqwest::Method::POST, "/containers", Some(spec))
            .await
    }

    async fn start(&self, name: &ContainerKey) -> Result<ContainerState, BackendError> {
        let path = format!("/containers/{}/start", container_segments(name));
        self.t.call(reqwest::Method::POST, &path, None::<&()>).await
    }

    async fn stop(&self, name: &ContainerKey) -> Result<ContainerState, BackendError> {
        let path = format!("/containers/{}/stop", container_segments(name));
        // Stopping takes the container's grace period on top of the usual answer time.
        let req = self.t.http.post(self.t.url(&path));
        self.t
            .json(req, self.t.timeout + Duration::from_secs(15))
            .await
    }

    async fn remove(&self, name: &ContainerKey) -> Result<(), BackendError> {
        let path = format!("/containers/{}", container_segments(name));
        self.t
            .no_content(self.t.http.delete(self.t.url(&path)))
            .await
    }

    async fn remove_network_if_unused(&self, owner: &UserName) -> Result<(), BackendError> {
        let path = format!("/networks/{}", path_segment(owner.as_str()));
        self.t
            .no_content(self.t.http.delete(self.t.url(&path)))
            .await
    }

    async fn inspect(&self, name: &ContainerKey) -> Result<ContainerState, BackendError> {
        let path = format!("/containers/{}", container_segments(name));
        self.t.call(reqwest::Method::GET, &path, None::<&()>).await
    }

    async fn activity(&self, name: &ContainerKey) -> Result<Activity, BackendError> {
        let path = format!("/containers/{}/activity", container_segments(name));
        self.t.call(reqwest::Method::GET, &path, None::<&()>).await
    }

    async fn list(&self) -> Result<Vec<ContainerState>, BackendError> {
        self.t
            .call(reqwest::Method::GET, "/containers", None::<&()>)
            .await
    }

    async fn list_of(&self, owner: &UserName) -> Result<Vec<ContainerState>, BackendError> {
        let req = self
            .t
            .http
            .get(self.t.url("/containers"))
            .query(&ListQuery {
                owner: Some(owner.to_string()),
            });
        self.t.json(req, self.t.timeout).await
    }

    async fn exec(
        &self,
        name: &ContainerKey,
        req: &ExecRequest,
    ) -> Result<ExecOutput, BackendError> {
        let path = format!("/containers/{}/exec", container_segments(name));
        let r = self.t.http.post(self.t.url(&path)).json(req);
        self.t
            .json(r, self.t.timeout + Duration::from_secs(req.timeout_secs))
            .await
    }

    async fn upload(
        &self,
        name: &ContainerKey,
        dir: &str,
        tar: ByteStream,
    ) -> Result<(), BackendError> {
        let path = format!("/containers/{}/files", container_segments(name));
        let req = self
            .t
            .http
            .put(self.t.url(&path))
            .query(&DirQuery {
                dir: dir.to_string(),
            })
            .body(reqwest::Body::wrap_stream(tar));
        // As long as the upload takes: it is bounded by its size, not by a clock.
        self.t.send(req, None).await.map(drop)
    }

    async fn download(&self, name: &ContainerKey, path: &str) -> Result<ByteStream, BackendError> {
        let url = format!("/containers/{}/archive", container_segments(name));
        let req = self.t.http.get(self.t.url(&url)).query(&PathQuery {
            path: path.to_string(),
        });
        let resp = self.t.send(req, None).await?;
        Ok(resp.bytes_stream().map_err(std::io::Error::other).boxed())
    }

    async fn logs(&self, name: &ContainerKey, tail: u32) -> Result<Bytes, BackendError> {
        let path = format!("/containers/{}/logs", container_segments(name));
        let req = self.t.http.get(self.t.url(&path)).query(&TailQuery {
            tail,
            follow: false,
        });
        let resp = self.t.send(req, Some(self.t.timeout)).await?;
        resp.bytes().await.map_err(|e| self.t.unreachable(&e))
    }

    async fn follow_logs(
        &self,
        name: &ContainerKey,
        tail: u32,
    ) -> Result<ByteStream, BackendError> {
        let path = format!("/containers/{}/logs", container_segments(name));
        let req = self
            .t
            .http
            .get(self.t.url(&path))
            .query(&TailQuery { tail, follow: true });
        // As long as the container runs: no clock bounds it.
        let resp = self.t.send(req, None).await?;
        Ok(resp.bytes_stream().map_err(std::io::Error::other).boxed())
    }

    async fn terminal(
        &self,
        name: &ContainerKey,
        req: &TerminalRequest,
    ) -> Result<Terminal, BackendError> {
        let path = format!("/containers/{}/terminal", container_segments(name));
        let cmd = req
            .cmd
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| BackendError::Engine(e.to_string()))?;
        let r = self.t.http.get(self.t.url(&path)).query(&TerminalQuery {
            cols: req.cols,
            rows: req.rows,
            cmd,
        });
        self.t.terminal(r).await
    }

    async fn images(&self) -> Result<Vec<ImageInfo>, BackendError> {
        self.t
            .call(reqwest::Method::GET, "/images", None::<&()>)
            .await
    }

    async fn remove_image(&self, reference: &ImageRef) -> Result<(), BackendError> {
        let req = self.t.http.delete(self.t.url("/images")).query(&RefQuery {
            reference: reference.to_string(),
        });
        self.t.no_content(req).await
    }

    async fn pull(
        &self,
        image: &ImageRef,
        auth: Option<RegistryAuth>,
    ) -> Result<ProgressStream, BackendError> {
        let req = self
            .t
            .http
            .post(self.t.url("/images/pull"))
            .json(&PullRequest {
                image: image.clone(),
                auth,
            });
        let resp = self.t.send(req, None).await?;
        Ok(self.t.lines(resp))
    }

    async fn build(
        &self,
        req: &BuildRequest,
        context: Bytes,
    ) -> Result<ProgressStream, BackendError> {
        let query = BuildQuery {
            request: serde_json::to_string(req)
                .map_err(|e| BackendError::Engine(format!("build request: {e}")))?,
        };
        let r = self
            .t
            .http
            .post(self.t.url("/images/build"))
            .query(&query)
            .body(context);
        let resp = self.t.send(r, None).await?;
        Ok(self.t.lines(resp))
    }

    async fn save_image(&self, reference: &str) -> Result<ByteStream, BackendError> {
        let req = self
            .t
            .http
            .get(self.t.url("/images/save"))
            .query(&RefQuery {
                reference: reference.to_string(),
            });
        let resp = self.t.send(req, None).await?;
        Ok(resp.bytes_stream().map_err(std::io::Error::other).boxed())
    }

    async fn image_filesystem(&self, reference: &str) -> Result<ByteStream, BackendError> {
        let req = self
            .t
            .http
            .get(self.t.url("/images/filesystem"))
            .query(&RefQuery {
                reference: reference.to_string(),
            });
        let resp = self.t.send(req, None).await?;
        Ok(resp.bytes_stream().map_err(std::io::Error::other).boxed())
    }

    async fn put_runner(&self, spec: &RunnerSpec) -> Result<RunnerState, BackendError> {
        let path = format!("/runners/{}", path_segment(spec.owner.as_str()));
        self.t.call(reqwest::Method::PUT, &path, Some(spec)).await
    }

    async fn runner(&self, owner: &UserName) -> Result<Option<RunnerState>, BackendError> {
        let path = format!("/runners/{}", path_segment(owner.as_str()));
        self.t.call(reqwest::Method::GET, &path, None::<&()>).await
    }

    async fn remove_runner(&self, owner: &UserName) -> Result<(), BackendError> {
        let path = format!("/runners/{}", path_segment(owner.as_str()));
        self.t
            .no_content(self.t.http.delete(self.t.url(&path)))
            .await
    }

    async fn storage_usage(&self, owner: &UserName) -> Result<i64, BackendError> {
        let path = format!("/storage/{}/usage", path_segment(owner.as_str()));
        // Measuring walks the whole storage: bounded by its size, not by the usual clock.
        let r = self.t.http.get(self.t.url(&path));
        self.t.json(r, self.t.timeout * 10).await
    }

    async fn storage_stat(
        &self,
        owner: &UserName,
        path: &str,
    ) -> Result<StoragePath, BackendError> {
        let url = format!("/storage/{}/stat", path_segment(owner.as_str()));
        let r = self.t.http.get(self.t.url(&url)).query(&PathQuery {
            path: path.to_string(),
        });
        self.t.json(r, self.t.timeout).await
    }

    async fn storage_read(&self, owner: &UserName, path: &str) -> Result<ByteStream, BackendError> {
        let url = format!("/storage/{}/file", path_segment(owner.as_str()));
        let req = self.t.http.get(self.t.url(&url)).query(&PathQuery {
            path: path.to_string(),
        });
        let resp = self.t.send(req, None).await?;
        Ok(resp.bytes_stream().map_err(std::io::Error::other).boxed())
    }

    async fn storage_write(
        &self,
        owner: &UserName,
        path: &str,
        body: ByteStream,
    ) -> Result<i64, BackendError> {
        let url = format!("/storage/{}/file", path_segment(owner.as_str()));
        let req = self
            .t
            .http
            .put(self.t.url(&url))
            .query(&PathQuery {
                path: path.to_string(),
            })
            .body(reqwest::Body::wrap_stream(body));
        // As long as the upload takes: it is bounded by its size, not by a clock.
        let resp = self.t.send(req, None).await?;
        resp.json().await.map_err(|e| {
            BackendError::Engine(format!("host {}: unreadable answer: {e}", self.t.id))
        })
    }

    async fn storage_remove(&self, owner: &UserName, path: &str) -> Result<(), BackendError> {
        let url = format!("/storage/{}/file", path_segment(owner.as_str()));
        let req = self.t.http.delete(self.t.url(&url)).query(&PathQuery {
            path: path.to_string(),
        });
        self.t.no_content(req).await
    }

    async fn storage_delete(&self, owner: &UserName) -> Result<(), BackendError> {
        let url = format!("/storage/{}", path_segment(owner.as_str()));
        self.t
            .no_content(self.t.http.delete(self.t.url(&url)))
            .await
    }

    async fn image_events(
        &self,
    ) -> Result<BoxStream<'static, Result<(), BackendError>>, BackendError> {
        let resp = self
            .t
            .send(self.t.http.get(self.t.url("/events/images")), None)
            .await?;
        Ok(self.t.lines(resp))
    }
}

/// The headers that ask for a WebSocket on a request's own connection (its TLS and
/// token), for `reqwest::Response::upgrade`. The key only guards against caches answering
/// for the server, which such a connection has none of: any will do.
pub fn websocket_request(rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    use reqwest::header::{CONNECTION, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE};
    rb.header(CONNECTION, "Upgrade")
        .header(UPGRADE, "websocket")
        .header(SEC_WEBSOCKET_VERSION, "13")
        .header(SEC_WEBSOCKET_KEY, "d2hhbGVtb3VudGFpbiB0dHk=")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_lists() {
        let l =
            AgentEndpoint::parse_list("h1=http://blade1:8081  h2=https://10.0.0.2:9000/").unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[1].host().as_deref(), Some("10.0.0.2"));
        for bad in [
            "h1",
            "h1=ftp://x",
            "h1=http://a:1 h1=http://b:1",
            "b@d=http://x:1",
            "h1=not a url",
        ] {
            assert!(AgentEndpoint::parse_list(bad).is_err(), "{bad}");
        }
    }

    /// The GPU fields cross the wire: a real agent (over loopback) in front of an
    /// in-memory host with two GPUs, and this client.
    #[tokio::test]
    async fn gpus_cross_the_wire() {
        use std::sync::Arc;
        use wm_backend::memory::MemoryBackend;
        use wm_backend::{ContainerSpec, Gpu, GpuKind, Limits};
        use wm_domain::{ContainerName, ImageRef, ShortName};

        let gpus = vec![
            Gpu {
                id: "GPU-0d4b2f7e-5c1a-8f3e-91b2-3c4d5e6f7a8b".into(),
                name: "NVIDIA A100-SXM4-40GB".into(),
                memory_bytes: Some(40960 << 20),
                kind: GpuKind::Nvidia,
                share: 1,
            },
            Gpu {
                id: "card0".into(),
                name: "AMD Radeon Pro W6800".into(),
                memory_bytes: None,
                kind: GpuKind::Devices {
                    paths: vec!["/dev/dri/renderD128".into(), "/dev/kfd".into()],
                },
                share: 2,
            },
        ];
        let host = Arc::new(
            MemoryBackend::new("blade1")
                .with_tag("busybox")
                .with_gpus(gpus.clone()),
        );
        let (client, stop, server) = agent_in_front_of(host).await;

        assert_eq!(client.info().await.unwrap().gpus, gpus);

        let owner = UserName::parse("alice").unwrap();
        let spec = |short: &str, gpus: &[&str]| {
            let short_name = ShortName::parse(short).unwrap();
            ContainerSpec {
                name: ContainerName::new(&owner, &short_name).unwrap(),
                owner: owner.clone(),
                short_name,
                image: ImageRef::parse("busybox").unwrap(),
                env: Vec::new(),
                ports: Vec::new(),
                limits: Limits {
                    memory_bytes: 64 << 20,
                    nano_cpus: 500_000_000,
                    pids: 64,
                },
                gpus: gpus.iter().map(ToString::to_string).collect(),
            }
        };
        let a100 = gpus[0].id.as_str();
        let made = client
            .create(&spec("train", &[a100, "card0"]))
            .await
            .unwrap();
        assert_eq!(made.gpus, [a100, "card0"]);
        let listed = client.list().await.unwrap();
        assert_eq!(listed[0].gpus, [a100, "card0"]);
        // One owner's list carries theirs only.
        let mine = client.list_of(&owner).await.unwrap();
        assert_eq!(mine.len(), 1);
        assert_eq!(
            (mine[0].owner.as_str(), mine[0].id.as_str()),
            ("alice", listed[0].id.as_str())
        );
        let bob = UserName::parse("bob").unwrap();
        assert!(client.list_of(&bob).await.unwrap().is_empty());
        // The refusals arrive as the host's own errors.
        match client.create(&spec("again", &[a100])).await {
            Err(BackendError::Exhausted(m)) => assert!(m.contains("in use by 1 container"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            client.create(&spec("other", &["card9"])).await,
            Err(BackendError::Policy(_))
        ));

        let _ = stop.send(());
        server.await.unwrap().unwrap();
    }

    type Server = tokio::task::JoinHandle<std::io::Result<()>>;

    /// A real agent over loopback in front of `host`, and a client of it.
    async fn agent_in_front_of(
        host: std::sync::Arc<wm_backend::memory::MemoryBackend>,
    ) -> (RemoteBackend, tokio::sync::oneshot::Sender<()>, Server) {
        let token = "agent-token-for-the-tests-0123456789";
        let router = crate::server::router(
            host,
            None,
            crate::server::AgentToken::new(token),
            crate::server::BodyLimits {
                upload: 1 << 20,
                build_context: 1 << 20,
                vm_image: 1 << 20,
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(crate::server::serve(listener, router, None, async {
            let _ = stopped.await;
        }));
        let endpoint = AgentEndpoint::parse_list(&format!("blade1=http://127.0.0.1:{port}"))
            .unwrap()
            .remove(0);
        let client = RemoteBackend::new(&endpoint, token, None, Duration::from_secs(10)).unwrap();
        (client, stop, server)
    }

    /// A user's storage through the agent: every call, and its refusals as the host's own.
    #[tokio::test]
    async fn storage_crosses_the_wire() {
        use wm_backend::memory::MemoryBackend;
        use wm_backend::{FileKind, StoragePath};
        let (client, stop, server) =
            agent_in_front_of(std::sync::Arc::new(MemoryBackend::new("blade1"))).await;
        let alice = UserName::parse("alice").unwrap();
        let body = |b: &'static [u8]| -> ByteStream {
            futures::stream::iter([Ok(Bytes::from_static(b))]).boxed()
        };
        assert_eq!(
            client.info().await.unwrap().storage_path.as_deref(),
            Some("/data")
        );
        assert_eq!(client.storage_usage(&alice).await.unwrap(), 0);
        let n = client
            .storage_write(&alice, "notes/a b.txt", body(b"hello"))
            .await
            .unwrap();
        assert_eq!(n, 5);
        match client.storage_stat(&alice, "notes").await.unwrap() {
            StoragePath::Dir { entries, .. } => {
                assert_eq!(entries[0].name, "a b.txt");
                assert_eq!(entries[0].kind, FileKind::File);
            }
            other => panic!("{other:?}"),
        }
        let read: Vec<u8> = client
            .storage_read(&alice, "notes/a b.txt")
            .await
            .unwrap()
            .map(|c| c.unwrap().to_vec())
            .concat()
            .await;
        assert_eq!(read, b"hello");
        assert_eq!(client.storage_usage(&alice).await.unwrap(), 5);
        assert!(matches!(
            client.storage_read(&alice, "nope").await,
            Err(BackendError::NoSuchFile(_))
        ));
        assert!(matches!(
            client.storage_stat(&alice, "../x").await,
            Err(BackendError::Policy(_))
        ));
        client.storage_remove(&alice, "notes").await.unwrap();
        client.storage_delete(&alice).await.unwrap();
        assert_eq!(client.storage_usage(&alice).await.unwrap(), 0);
        let _ = stop.send(());
        server.await.unwrap().unwrap();
    }
}
