//! The scheduling queue: pods wait in `active` (highest priority first, then oldest), in
//! `backoff` after a failed attempt (1 s doubling to 10 s), or in `unschedulable` until a
//! cluster event could make them fit (or 5 minutes pass). Pure: callers pass the time in.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long a pod stays unschedulable without an event before it is retried anyway.
pub const UNSCHEDULABLE_FLUSH: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Where {
    Active,
    Backoff,
    Unschedulable(Instant),
    /// Being scheduled; `moved` when a cluster event arrived meanwhile (so a failure goes to
    /// backoff instead of waiting for the next event, which may never come).
    InFlight {
        moved: bool,
    },
}

#[derive(Debug)]
struct Entry {
    pod: Arc<Pod>,
    priority: i32,
    /// When the pod first entered the queue (ordering and latency).
    added: Instant,
    attempts: u32,
    last_failure: Option<Instant>,
    place: Where,
    /// Bumped on every push to `active`, so stale heap items are skipped.
    seq: u64,
}

#[derive(Debug, PartialEq, Eq)]
struct HeapItem {
    priority: i32,
    added: Instant,
    seq: u64,
    key: String,
}

impl Ord for HeapItem {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.added.cmp(&self.added))
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for HeapItem {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A pod handed out for scheduling.
#[derive(Debug, Clone)]
pub struct Popped {
    pub key: String,
    pub pod: Arc<Pod>,
    pub attempts: u32,
    pub added: Instant,
}

/// Pod counts per sub-queue.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub active: usize,
    pub backoff: usize,
    pub unschedulable: usize,
}

#[derive(Debug, Default)]
pub struct Queue {
    entries: HashMap<String, Entry>,
    active: BinaryHeap<HeapItem>,
    seq: u64,
}

fn backoff(attempts: u32) -> Duration {
    let shift = attempts.saturating_sub(1).min(10);
    (INITIAL_BACKOFF * (1u32 << shift)).min(MAX_BACKOFF)
}

impl Queue {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// The queued version of a pod.
    pub fn pod(&self, key: &str) -> Option<&Arc<Pod>> {
        self.entries.get(key).map(|e| &e.pod)
    }

    fn activate(&mut self, key: &str) {
        self.seq += 1;
        let seq = self.seq;
        if let Some(e) = self.entries.get_mut(key) {
            e.place = Where::Active;
            e.seq = seq;
            self.active.push(HeapItem {
                priority: e.priority,
                added: e.added,
                seq,
                key: key.to_owned(),
            });
        }
    }

    /// A new or changed pending pod. An update makes an unschedulable pod worth another try.
    pub fn add_or_update(&mut self, key: &str, pod: Arc<Pod>, priority: i32, now: Instant) {
        match self.entries.get_mut(key) {
            None => {
                self.entries.insert(
                    key.to_owned(),
                    Entry {
                        pod,
                        priority,
                        added: now,
                        attempts: 0,
                        last_failure: None,
                        place: Where::Active,
                        seq: 0,
                    },
                );
                self.activate(key);
            }
            Some(e) => {
                e.pod = pod;
                let reprioritized = e.priority != priority;
                e.priority = priority;
                match e.place {
                    Where::Unschedulable(_) => self.requeue(key, now),
                    Where::Active if reprioritized => self.activate(key),
                    Where::InFlight { .. } => e.place = Where::InFlight { moved: true },
                    _ => {}
                }
            }
        }
    }

    pub fn remove(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// Back to active, or to backoff if its backoff has not run out yet.
    fn requeue(&mut self, key: &str, now: Instant) {
        let Some(e) = self.entries.get_mut(key) else {
            return;
        };
        let until = e.last_failure.map(|t| t + backoff(e.attempts));
        if until.is_some_and(|u| u > now) {
            e.place = Where::Backoff;
        } else {
            self.activate(key);
        }
    }

    /// The most important active pod, marked in flight.
    pub fn pop(&mut self) -> Option<Popped> {
        while let Some(item) = self.active.pop() {
            let Some(e) = self.entries.get_mut(&item.key) else {
                continue;
            };
            if e.place != Where::Active || e.seq != item.seq {
                continue;
            }
            e.place = Where::InFlight { moved: false };
            e.attempts += 1;
            return Some(Popped {
                key: item.key,
                pod: e.pod.clone(),
                attempts: e.attempts,
                added: e.added,
            });
        }
        None
    }

    /// The pod was bound (or vanished): forget it.
    pub fn done(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// The pod fits nowhere: wait for a cluster event (or backoff, if one came while in flight).
    pub fn unschedulable(&mut self, key: &str, now: Instant) {
        if let Some(e) = self.entries.get_mut(key) {
            e.last_failure = Some(now);
            e.place = match e.place {
                Where::InFlight { moved: true } => Where::Backoff,
                _ => Where::Unschedulable(now),
            };
        }
    }

    /// Scheduling failed for a reason other than fit (binding failed): retry after backoff.
    pub fn failed(&mut self, key: &str, now: Instant) {
        if let Some(e) = self.entries.get_mut(key) {
            e.last_failure = Some(now);
            e.place = Where::Backoff;
        }
    }

    /// Something changed in the cluster that may make unschedulable pods fit.
    pub fn move_all(&mut self, now: Instant) {
        let keys: Vec<String> = self
            .entries
            .iter_mut()
            .filter_map(|(k, e)| match e.place {
                Where::Unschedulable(_) => Some(k.clone()),
                Where::InFlight { .. } => {
                    e.place = Where::InFlight { moved: true };
                    None
                }
                _ => None,
            })
            .collect();
        for k in keys {
            self.requeue(&k, now);
        }
    }

    /// Periodic work: expired backoffs become active; pods unschedulable for 5 minutes retry.
    pub fn flush(&mut self, now: Instant) {
        let ready: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| match e.place {
                Where::Backoff => e
                    .last_failure
                    .is_none_or(|t| t + backoff(e.attempts) <= now),
                Where::Unschedulable(since) => now.duration_since(since) >= UNSCHEDULABLE_FLUSH,
                _ => false,
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in ready {
            self.requeue(&k, now);
        }
    }

    /// How many pods wait in each sub-queue (`scheduler_pending_pods`); pods being scheduled
    /// are in none.
    pub fn pending(&self) -> Pending {
        let mut p = Pending::default();
        for e in self.entries.values() {
            match e.place {
                Where::Active => p.active += 1,
                Where::Backoff => p.backoff += 1,
                Where::Unschedulable(_) => p.unschedulable += 1,
                Where::InFlight { .. } => {}
            }
        }
        p
    }

    /// Whether any pod is in backoff (the loop then wakes up to flush).
    pub fn has_backoff(&self) -> bool {
        self.entries.values().any(|e| e.place == Where::Backoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str) -> Arc<Pod> {
        Arc::new(serde_json::from_value(json!({"metadata": {"name": name}})).expect("pod"))
    }

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn drain(q: &mut Queue) -> Vec<String> {
        std::iter::from_fn(|| q.pop().map(|p| p.key)).collect()
    }

    #[test]
    fn priority_then_age() {
        let t = Instant::now();
        let mut q = Queue::default();
        q.add_or_update("old-low", pod("a"), 0, t);
        q.add_or_update("new-high", pod("b"), 10, t + Duration::from_millis(2));
        q.add_or_update("new-low", pod("c"), 0, t + Duration::from_millis(1));
        assert_eq!(drain(&mut q), vec!["new-high", "old-low", "new-low"]);
    }

    #[test]
    fn lifecycle_table() {
        let t = Instant::now();
        // (step, action, pods popped afterwards)
        type Step = fn(&mut Queue, Instant);
        let cases: Vec<(&str, Step, Vec<&str>)> = vec![
            (
                "unschedulable waits",
                |q, t| q.unschedulable("p", t),
                vec![],
            ),
            (
                "event within backoff: backoff",
                |q, t| {
                    q.unschedulable("p", t);
                    q.move_all(t + s(0));
                },
                vec![],
            ),
            (
                "event, then backoff expires",
                |q, t| {
                    q.unschedulable("p", t);
                    q.move_all(t);
                    q.flush(t + s(1));
                },
                vec!["p"],
            ),
            (
                "event after backoff",
                |q, t| {
                    q.unschedulable("p", t);
                    q.move_all(t + s(2));
                },
                vec!["p"],
            ),
            (
                "flush before 5 min",
                |q, t| {
                    q.unschedulable("p", t);
                    q.flush(t + s(299));
                },
                vec![],
            ),
            (
                "flush after 5 min",
                |q, t| {
                    q.unschedulable("p", t);
                    q.flush(t + s(300));
                },
                vec!["p"],
            ),
            (
                "failure backs off",
                |q, t| {
                    q.failed("p", t);
                    q.flush(t + s(0));
                },
                vec![],
            ),
            (
                "failure retried",
                |q, t| {
                    q.failed("p", t);
                    q.flush(t + s(1));
                },
                vec!["p"],
            ),
            (
                "event while in flight",
                |q, t| {
                    q.move_all(t);
                    q.unschedulable("p", t);
                    q.flush(t + s(1));
                },
                vec!["p"],
            ),
            (
                "update revives",
                |q, t| {
                    q.unschedulable("p", t);
                    q.add_or_update("p", pod("p"), 0, t + s(5));
                },
                vec!["p"],
            ),
            (
                "done forgets",
                |q, t| {
                    q.done("p");
                    q.flush(t + s(1000));
                },
                vec![],
            ),
        ];
        for (name, step, want) in cases {
            let mut q = Queue::default();
            q.add_or_update("p", pod("p"), 0, t);
            assert_eq!(q.pop().map(|p| p.key).as_deref(), Some("p"), "{name}");
            step(&mut q, t);
            assert_eq!(drain(&mut q), want, "{name}");
        }
    }

    #[test]
    fn pending_counts_each_sub_queue_but_not_in_flight() {
        let t = Instant::now();
        let mut q = Queue::default();
        for k in ["a", "b", "c", "d"] {
            q.add_or_update(k, pod(k), 0, t);
        }
        let (a, b, c) = (q.pop(), q.pop(), q.pop());
        let keys: Vec<String> = [a, b, c].into_iter().flatten().map(|p| p.key).collect();
        assert_eq!(keys.len(), 3);
        let (one, two) = (keys[0].as_str(), keys[1].as_str());
        q.unschedulable(one, t);
        q.failed(two, t);
        let want = Pending {
            active: 1,
            backoff: 1,
            unschedulable: 1,
        };
        assert_eq!(q.pending(), want);
        q.done(keys[2].as_str());
        assert_eq!(q.pending(), want);
    }

    #[test]
    fn backoff_doubles_to_ten_seconds() {
        let got: Vec<u64> = (1..=6).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(got, vec![1, 2, 4, 8, 10, 10]);
    }
}
