//! The host's pool of ports for published guest ports: of containers and of VMs.
//!
//! The host lends its own ports, so that several consoles or a restarted agent can never
//! hand one port out twice: the pool is rebuilt from the `wm.ports` labels of the
//! containers on the engine (every [`list`](crate::DockerEngine) does), and between two
//! rebuilds it remembers what it handed out, including creates still in flight and those
//! that finished after the list was asked for (which it may not show yet). A cursor
//! walks the range round-robin so that a port just released is not lent again at once (a
//! student's bookmark should not open a classmate's service). Ports found held by another
//! program are skipped for a while.
//!
//! A VM host on the same machine lends its forwarded ports from the same pool
//! ([`lend_kept`](PortPool::lend_kept)): those stay lent until released, whatever the
//! engine's lists say, and the VM host gives them back to the pool from its domains'
//! metadata after a restart ([`keep`](PortPool::keep)).

use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Inclusive range of host ports lent to containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub fn parse(s: &str) -> Result<Self, String> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("port range {s:?} must look like 40000-40999"))?;
        let num = |x: &str| {
            x.trim()
                .parse::<u16>()
                .map_err(|_| format!("port range {s:?}: {x:?} is not a port number"))
        };
        let (first, last) = (num(a)?, num(b)?);
        if first == 0 || first > last {
            return Err(format!(
                "port range {s:?} must go from a lower to a higher port, both 1..65535"
            ));
        }
        Ok(Self { first, last })
    }

    /// The kernel's ephemeral range, as in the report; 32768-60999 where it cannot be read.
    pub fn ephemeral() -> Self {
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|s| {
                let mut it = s.split_whitespace().map(|n| n.parse::<u16>().ok());
                Some(Self {
                    first: it.next()??,
                    last: it.next()??,
                })
            })
            .filter(|r| r.first > 0 && r.first <= r.last)
            .unwrap_or(Self {
                first: 32768,
                last: 60999,
            })
    }

    pub fn size(&self) -> usize {
        usize::from(self.last - self.first) + 1
    }

    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }

    /// The port after `port`, wrapping round to the first.
    pub fn after(&self, port: u16) -> u16 {
        if port >= self.last || port < self.first {
            self.first
        } else {
            port + 1
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        PortRange::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// How long a port found held by another program is skipped.
const BUSY_FOR: Duration = Duration::from_secs(300);

pub struct PortPool {
    range: PortRange,
    inner: Mutex<Inner>,
}

struct Inner {
    cursor: u16,
    /// Port → the container it is lent to.
    lent: HashMap<u16, String>,
    /// Containers the engine's list may not show yet: `None` while being created,
    /// `Some(t)` once created at tick `t`. Their ports survive a rebuild from a list
    /// asked for before they were created.
    unlisted: HashMap<String, Option<u64>>,
    /// Orders creates against scans of the engine.
    clock: u64,
    busy: HashMap<u16, Instant>,
    /// Port → the VM (or other holder outside the engine) it is lent to; never rebuilt.
    kept: HashMap<u16, String>,
    /// Whether the pool has been read from the engine since the process started.
    seeded: bool,
}

impl PortPool {
    pub fn new(range: PortRange) -> Self {
        Self {
            range,
            inner: Mutex::new(Inner {
                cursor: range.first,
                lent: HashMap::new(),
                unlisted: HashMap::new(),
                clock: 0,
                busy: HashMap::new(),
                kept: HashMap::new(),
                seeded: false,
            }),
        }
    }

    pub fn seeded(&self) -> bool {
        self.inner.lock().expect("not poisoned").seeded
    }

    /// Call before asking the engine for its containers; pass the answer to
    /// [`rebuild`](Self::rebuild) with the list.
    pub fn begin_scan(&self) -> u64 {
        let mut inner = self.inner.lock().expect("not poisoned");
        inner.clock += 1;
        inner.clock
    }

    /// Replaces what the pool knows with the ports the engine's containers hold (listed
    /// after [`begin_scan`](Self::begin_scan) answered `began`), keeping the ports of
    /// creates the list may not show: in flight, or finished after `began`.
    pub fn rebuild(&self, began: u64, held: impl IntoIterator<Item = (u16, String)>) {
        let mut inner = self.inner.lock().expect("not poisoned");
        let inner = &mut *inner;
        inner
            .unlisted
            .retain(|_, created| created.is_none_or(|t| t > began));
        let unlisted = &inner.unlisted;
        inner.lent.retain(|_, c| unlisted.contains_key(c));
        let mut highest = None;
        for (port, container) in held {
            highest = highest.max(Some(port));
            inner.lent.entry(port).or_insert(container);
        }
        if !inner.seeded {
            // After a restart, go on after the last port lent rather than from the start.
            if let Some(h) = highest.filter(|h| self.range.contains(*h)) {
                inner.cursor = self.range.after(h);
            }
            inner.seeded = true;
        }
    }

    /// Lends `count` ports to `container`, which is then in flight until
    /// [`settle`](Self::settle) or [`release`](Self::release).
    ///
    /// # Errors
    /// The message for the user when the range has no free port left.
    pub fn lend(&self, container: &str, count: usize) -> Result<Vec<u16>, crate::Why> {
        let mut inner = self.inner.lock().expect("not poisoned");
        let out = self.take(&mut inner, count)?;
        for p in &out {
            inner.lent.insert(*p, container.to_string());
        }
        inner.unlisted.insert(container.to_string(), None);
        Ok(out)
    }

    /// Lends `count` ports to `holder` outside the engine (a VM's forwards) until
    /// [`release`](Self::release).
    ///
    /// # Errors
    /// As [`lend`](Self::lend).
    pub fn lend_kept(&self, holder: &str, count: usize) -> Result<Vec<u16>, crate::Why> {
        let mut inner = self.inner.lock().expect("not poisoned");
        let out = self.take(&mut inner, count)?;
        for p in &out {
            inner.kept.insert(*p, holder.to_string());
        }
        Ok(out)
    }

    /// Notes that `holder` (outside the engine) holds `ports`, as found after a restart.
    pub fn keep(&self, holder: &str, ports: &[u16]) {
        let mut inner = self.inner.lock().expect("not poisoned");
        inner.kept.retain(|_, h| h != holder);
        for p in ports {
            inner.kept.insert(*p, holder.to_string());
        }
    }

    /// `count` free ports from the cursor on: not lent, not kept, not busy.
    fn take(&self, inner: &mut Inner, count: usize) -> Result<Vec<u16>, crate::Why> {
        let now = Instant::now();
        inner
            .busy
            .retain(|_, since| now.duration_since(*since) < BUSY_FOR);
        let mut out: Vec<u16> = Vec::with_capacity(count);
        let mut tried = 0;
        while out.len() < count {
            if tried >= self.range.size() {
                return Err(crate::why::ports_full(self.range));
            }
            tried += 1;
            let port = inner.cursor;
            inner.cursor = self.range.after(port);
            if inner.lent.contains_key(&port)
                || inner.kept.contains_key(&port)
                || inner.busy.contains_key(&port)
                || out.contains(&port)
            {
                continue;
            }
            out.push(port);
        }
        Ok(out)
    }

    /// The create of `container` finished: its ports show in the engine's lists asked
    /// for from now on.
    pub fn settle(&self, container: &str) {
        let mut inner = self.inner.lock().expect("not poisoned");
        inner.clock += 1;
        let now = inner.clock;
        inner.unlisted.insert(container.to_string(), Some(now));
    }

    /// Returns every port of `container` (or of a holder outside the engine) to the pool.
    pub fn release(&self, container: &str) {
        let mut inner = self.inner.lock().expect("not poisoned");
        inner.lent.retain(|_, c| c != container);
        inner.kept.retain(|_, c| c != container);
        inner.unlisted.remove(container);
    }

    /// Notes ports that another program holds; they are skipped for a while.
    pub fn mark_busy(&self, ports: &[u16]) {
        let mut inner = self.inner.lock().expect("not poisoned");
        let now = Instant::now();
        for p in ports {
            inner.busy.insert(*p, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(first: u16, last: u16) -> PortPool {
        PortPool::new(PortRange { first, last })
    }

    #[test]
    fn lends_each_port_once_round_robin() {
        let p = pool(100, 104);
        let a = p.lend("a", 2).unwrap();
        let b = p.lend("b", 2).unwrap();
        assert_eq!(a, [100, 101]);
        assert_eq!(b, [102, 103]);
        p.release("a");
        // 104 comes before the released ones.
        assert_eq!(p.lend("c", 2).unwrap(), [104, 100]);
        assert!(p.lend("d", 2).unwrap_err().contains("no free host port"));
        assert_eq!(
            p.lend("d", 1).unwrap(),
            [101],
            "a failed lend gives its ports back"
        );
    }

    #[test]
    fn rebuild_keeps_creates_in_flight_and_continues_after_the_last() {
        let p = pool(100, 109);
        p.rebuild(p.begin_scan(), [(105, "old".to_string())]);
        assert_eq!(p.lend("new", 1).unwrap(), [106]);
        // The engine's list does not show "new" yet: its port must stay lent.
        p.rebuild(p.begin_scan(), [(105, "old".to_string())]);
        assert_eq!(p.lend("next", 1).unwrap(), [107]);
        p.settle("new");
        p.settle("next");
        // Now gone from the engine (removed behind our back): free again.
        p.rebuild(p.begin_scan(), Vec::new());
        p.mark_busy(&[108]);
        assert_eq!(p.lend("x", 3).unwrap(), [109, 100, 101]);
    }

    #[test]
    fn ports_kept_for_vms_survive_rebuilds_and_are_never_lent_twice() {
        let p = pool(100, 103);
        assert_eq!(p.lend_kept("vm", 2).unwrap(), [100, 101]);
        // The engine knows nothing of the VM: its ports stay out of the containers' reach.
        p.rebuild(p.begin_scan(), Vec::new());
        assert_eq!(p.lend("c", 2).unwrap(), [102, 103]);
        assert!(p.lend("d", 1).is_err());
        p.release("vm");
        assert_eq!(p.lend("d", 1).unwrap(), [100]);
        // After a restart the VM host says what its domains hold.
        let q = pool(100, 101);
        q.keep("old-vm", &[100]);
        assert_eq!(q.lend("c", 1).unwrap(), [101]);
        assert!(q.lend_kept("vm2", 1).is_err());
    }

    #[test]
    fn a_list_asked_for_before_a_create_finished_does_not_free_its_ports() {
        let p = pool(100, 101);
        p.rebuild(p.begin_scan(), Vec::new());
        assert_eq!(p.lend("a", 1).unwrap(), [100]);
        // A scan asks the engine, the create finishes, then the scan's (older) answer
        // arrives without "a".
        let began = p.begin_scan();
        p.settle("a");
        p.rebuild(began, Vec::new());
        assert_eq!(p.lend("b", 1).unwrap(), [101], "100 is still a's");
        p.settle("b");
        // A list asked for after both finished shows them.
        p.rebuild(
            p.begin_scan(),
            [(100, "a".to_string()), (101, "b".to_string())],
        );
        assert!(p.lend("c", 1).is_err());
    }
}
