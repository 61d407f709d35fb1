//! The host's pool of ports for published guest ports.
//!
//! The host lends its own ports, so that several consoles or a restarted agent can never
//! hand one port out twice: the pool is rebuilt from the `wm.ports` labels of the
//! containers on the engine (every [`list`](crate::DockerEngine) does), and between two
//! rebuilds it remembers what it handed out, including creates still in flight and those
//! that finished after the list was asked for (which it may not show yet). A cursor
//! walks the range round-robin so that a port just released is not lent again at once (a
//! student's bookmark should not open a classmate's service). Ports found held by another
//! program are skipped for a while.

use crate::settings::PortRange;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a port found held by another program is skipped.
const BUSY_FOR: Duration = Duration::from_secs(300);

pub(crate) struct PortPool {
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
    /// Whether the pool has been read from the engine since the process started.
    seeded: bool,
}

impl PortPool {
    pub(crate) fn new(range: PortRange) -> Self {
        Self {
            range,
            inner: Mutex::new(Inner {
                cursor: range.first,
                lent: HashMap::new(),
                unlisted: HashMap::new(),
                clock: 0,
                busy: HashMap::new(),
                seeded: false,
            }),
        }
    }

    pub(crate) fn seeded(&self) -> bool {
        self.inner.lock().expect("not poisoned").seeded
    }

    /// Call before asking the engine for its containers; pass the answer to
    /// [`rebuild`](Self::rebuild) with the list.
    pub(crate) fn begin_scan(&self) -> u64 {
        let mut inner = self.inner.lock().expect("not poisoned");
        inner.clock += 1;
        inner.clock
    }

    /// Replaces what the pool knows with the ports the engine's containers hold (listed
    /// after [`begin_scan`](Self::begin_scan) answered `began`), keeping the ports of
    /// creates the list may not show: in flight, or finished after `began`.
    pub(crate) fn rebuild(&self, began: u64, held: impl IntoIterator<Item = (u16, String)>) {
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
    pub(crate) fn lend(&self, container: &str, count: usize) -> Result<Vec<u16>, String> {
        let mut inner = self.inner.lock().expect("not poisoned");
        let now = Instant::now();
        inner
            .busy
            .retain(|_, since| now.duration_since(*since) < BUSY_FOR);
        let mut out = Vec::with_capacity(count);
        let mut tried = 0;
        while out.len() < count {
            if tried >= self.range.size() {
                for p in &out {
                    inner.lent.remove(p);
                }
                return Err(format!(
                    "no free host port is left in {} on this host; ask an administrator",
                    self.range
                ));
            }
            tried += 1;
            let port = inner.cursor;
            inner.cursor = self.range.after(port);
            if inner.lent.contains_key(&port) || inner.busy.contains_key(&port) {
                continue;
            }
            inner.lent.insert(port, container.to_string());
            out.push(port);
        }
        inner.unlisted.insert(container.to_string(), None);
        Ok(out)
    }

    /// The create of `container` finished: its ports show in the engine's lists asked
    /// for from now on.
    pub(crate) fn settle(&self, container: &str) {
        let mut inner = self.inner.lock().expect("not poisoned");
        inner.clock += 1;
        let now = inner.clock;
        inner.unlisted.insert(container.to_string(), Some(now));
    }

    /// Returns every port of `container` to the pool.
    pub(crate) fn release(&self, container: &str) {
        let mut inner = self.inner.lock().expect("not poisoned");
        inner.lent.retain(|_, c| c != container);
        inner.unlisted.remove(container);
    }

    /// Notes ports that another program holds; they are skipped for a while.
    pub(crate) fn mark_busy(&self, ports: &[u16]) {
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
