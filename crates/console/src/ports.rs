//! Host ports for guest ports.
//!
//! A port is lent by a row in `port_leases`, whose primary key makes two containers
//! sharing a host port impossible, also across console processes. Within one process a
//! lock serialises allocation, and a cursor walks the range round-robin so that a port
//! just released is not handed out again at once (a student's bookmark should not open a
//! classmate's service). Ports that turned out to be held by something else on the host
//! are skipped for a while.

use crate::config::PortRange;
use crate::error::ApiError;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use wm_backend::PortBinding;
use wm_domain::GuestPort;
use wm_store::Store;

/// How long a port found held by another program is skipped.
const BUSY_FOR: Duration = Duration::from_secs(300);

pub struct PortAllocator {
    range: PortRange,
    inner: Mutex<Inner>,
}

struct Inner {
    cursor: u16,
    busy: HashMap<u16, Instant>,
}

impl PortAllocator {
    pub fn new(range: PortRange) -> Self {
        Self {
            range,
            inner: Mutex::new(Inner {
                cursor: range.first,
                busy: HashMap::new(),
            }),
        }
    }

    pub fn range(&self) -> PortRange {
        self.range
    }

    /// Leases one host port on `host` for each guest port.
    ///
    /// # Errors
    /// 503 when the range has no free port left; what was leased by this call is released.
    pub async fn allocate(
        &self,
        store: &Store,
        host: &str,
        container: &str,
        guests: &[GuestPort],
    ) -> Result<Vec<PortBinding>, ApiError> {
        let mut inner = self.inner.lock().await;
        let now = Instant::now();
        inner
            .busy
            .retain(|_, since| now.duration_since(*since) < BUSY_FOR);
        let leased: HashSet<u16> = store.leased_ports(host).await?.into_iter().collect();
        let mut out = Vec::with_capacity(guests.len());
        let mut tried = 0usize;
        for &guest in guests {
            loop {
                if tried >= self.range.size() {
                    for b in &out {
                        let b: &PortBinding = b;
                        store.release_port(host, b.host).await?;
                    }
                    return Err(ApiError::Unavailable(format!(
                        "no free host port is left in {} on {host}; ask an administrator",
                        self.range
                    )));
                }
                tried += 1;
                let port = inner.cursor;
                inner.cursor = if port >= self.range.last {
                    self.range.first
                } else {
                    port + 1
                };
                if leased.contains(&port) || inner.busy.contains_key(&port) {
                    continue;
                }
                // Another console process may have taken it since we read the leases.
                if store.lease_port(host, port, container, guest).await? {
                    out.push(PortBinding { guest, host: port });
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Notes ports that something outside our leases holds, so they are skipped.
    pub async fn mark_busy(&self, ports: &[u16]) {
        let mut inner = self.inner.lock().await;
        let now = Instant::now();
        for p in ports {
            inner.busy.insert(*p, now);
        }
    }
}
