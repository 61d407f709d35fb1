//! A simulated docker host, **for benchmarks and tests only** (cargo feature `simulated`,
//! which no production crate enables): the real agent ([`router`](crate::router)) over
//! HTTP on loopback in front of an in-memory host
//! ([`MemoryBackend`](wm_backend::memory::MemoryBackend)), so a console can face many hosts
//! without an engine. The console speaks to it as to `wm agent docker`: same protocol, same
//! token check, same answers and errors; the in-memory host applies the checks a docker
//! host applies where the console can tell (names, limits, ports, GPUs, images).
//!
//! It runs in the caller's process (a task per agent) rather than as a `wm` subcommand, so
//! the in-memory host never ships in the binary and fifty of them cost a listener each,
//! not a process each.

use crate::server::{router, serve, AgentToken, BodyLimits};
use std::sync::Arc;
use wm_backend::memory::MemoryBackend;

/// One simulated host, serving until dropped.
pub struct SimulatedAgent {
    /// The host id the console knows it by (the in-memory host's name).
    pub id: String,
    /// Its base URL, `http://127.0.0.1:<port>`.
    pub url: String,
    /// What it holds, for the caller to look at or to change (unavailable, failures).
    pub host: Arc<MemoryBackend>,
    task: tokio::task::JoinHandle<()>,
}

impl SimulatedAgent {
    /// Serves `host` on a new loopback port behind the agent `token`.
    ///
    /// # Errors
    /// When no loopback port can be had.
    pub async fn start(host: MemoryBackend, token: &str) -> std::io::Result<Self> {
        let host = Arc::new(host);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let routes = router(
            host.clone(),
            None,
            AgentToken::new(token),
            BodyLimits {
                upload: 1 << 20,
                build_context: 1 << 20,
                vm_image: 1 << 20,
            },
        );
        let task = tokio::spawn(async move {
            let _ = serve(listener, routes, None, std::future::pending()).await;
        });
        Ok(Self {
            id: wm_backend::ContainerBackend::host_name(host.as_ref()).to_string(),
            url,
            host,
            task,
        })
    }

    /// Its entry in `WM_AGENTS`: `<id>=<url>`.
    pub fn endpoint(&self) -> String {
        format!("{}={}", self.id, self.url)
    }
}

impl Drop for SimulatedAgent {
    fn drop(&mut self) {
        self.task.abort();
    }
}
