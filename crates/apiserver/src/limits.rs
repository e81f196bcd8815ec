//! Limits on what one client can hold at once, so that no client takes the server down: requests
//! in flight (upstream's `--max-requests-inflight` and `--max-mutating-requests-inflight`, plus
//! a per-user share) and open watches (in total and per user). Refusals are upstream's `429
//! TooManyRequests` with `Retry-After: 1`. Counting is a few atomic operations per request; the
//! per-user counts take one short mutex, and only for users outside `system:masters`, which, as
//! upstream's max-in-flight filter does, is exempt from the in-flight limits (the in-process
//! controllers, scheduler and node agent use that identity). Watch limits apply to everyone:
//! they bound memory, and a watch is the one request that lives on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rudder_auth::UserInfo;

use crate::request_info::{Target, Verb};
use crate::status::ApiError;

/// The limits; 0 turns one off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Non-mutating requests (get, list, discovery) in flight at once (upstream: 400).
    pub max_requests_inflight: usize,
    /// Mutating requests in flight at once (upstream: 200).
    pub max_mutating_requests_inflight: usize,
    /// Requests of either kind one user may have in flight.
    pub max_requests_inflight_per_user: usize,
    /// Watches open at once.
    pub max_watches: usize,
    /// Watches one user may have open.
    pub max_watches_per_user: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_requests_inflight: 400,
            max_mutating_requests_inflight: 200,
            max_requests_inflight_per_user: 200,
            max_watches: 20_000,
            max_watches_per_user: 5_000,
        }
    }
}

/// What a request counts against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    ReadOnly,
    Mutating,
    Watch,
    /// Exec, attach, port-forward, logs and proxies: long-running, not counted (as upstream).
    Unlimited,
}

/// How `target` counts, by upstream's long-running and mutating classification.
pub(crate) fn kind(method: &str, target: &Target) -> Kind {
    match target {
        Target::Resource(r) => match (r.verb, r.subresource.as_deref()) {
            (_, Some("exec" | "attach" | "portforward" | "proxy" | "log")) => Kind::Unlimited,
            (Verb::Watch, _) => Kind::Watch,
            (Verb::Get | Verb::List, _) => Kind::ReadOnly,
            _ => Kind::Mutating,
        },
        _ if matches!(method, "GET" | "HEAD" | "OPTIONS") => Kind::ReadOnly,
        _ => Kind::Mutating,
    }
}

#[derive(Default)]
struct UserCount {
    inflight: usize,
    watches: usize,
}

/// The counters.
#[derive(Default)]
pub(crate) struct Limiter {
    limits: Limits,
    readonly: AtomicUsize,
    mutating: AtomicUsize,
    watches: AtomicUsize,
    /// Per user; an entry goes when both its counts are back to 0, so idle users cost nothing.
    users: Mutex<HashMap<String, UserCount>>,
}

/// A request's place, given back when dropped. A watch's permit travels with its response body.
pub(crate) struct Permit {
    limiter: Arc<Limiter>,
    global: Option<&'static str>,
    user: Option<String>,
    kind: Kind,
}

impl Limiter {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            limits,
            ..Default::default()
        }
    }

    fn global(&self, kind: Kind) -> (&AtomicUsize, usize) {
        match kind {
            Kind::Watch => (&self.watches, self.limits.max_watches),
            Kind::Mutating => (&self.mutating, self.limits.max_mutating_requests_inflight),
            Kind::ReadOnly | Kind::Unlimited => (&self.readonly, self.limits.max_requests_inflight),
        }
    }

    /// Takes a place for a request of `kind` by `user`, or refuses it with 429.
    pub(crate) fn admit(
        self: &Arc<Self>,
        user: &UserInfo,
        kind: Kind,
    ) -> Result<Option<Permit>, ApiError> {
        if kind == Kind::Unlimited {
            return Ok(None);
        }
        let exempt = kind != Kind::Watch
            && user
                .groups
                .iter()
                .any(|g| g == rudder_auth::rbac::SUPERUSER_GROUP);
        if exempt {
            return Ok(None);
        }
        let mut permit = Permit {
            limiter: self.clone(),
            global: None,
            user: None,
            kind,
        };
        let (counter, max) = self.global(kind);
        if max > 0 {
            if counter.fetch_add(1, Ordering::AcqRel) >= max {
                counter.fetch_sub(1, Ordering::AcqRel);
                return Err(match kind {
                    Kind::Watch => too_many(format!(
                        "too many watches: the server has {max} open (--max-watches); please try again later"
                    )),
                    _ => too_many("Too many requests, please try again later.".into()),
                });
            }
            permit.global = Some("held");
        }
        let per_user = match kind {
            Kind::Watch => self.limits.max_watches_per_user,
            _ => self.limits.max_requests_inflight_per_user,
        };
        if per_user > 0 {
            let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
            let count = users.entry(user.name.clone()).or_default();
            let n = match kind {
                Kind::Watch => &mut count.watches,
                _ => &mut count.inflight,
            };
            if *n >= per_user {
                let idle = count.inflight == 0 && count.watches == 0;
                if idle {
                    users.remove(&user.name);
                }
                // `permit` gives the global place back as it drops.
                return Err(match kind {
                    Kind::Watch => too_many(format!(
                        "too many watches: user {:?} has {per_user} open (--max-watches-per-user); please try again later",
                        user.name
                    )),
                    _ => too_many(format!(
                        "Too many requests, please try again later: user {:?} has {per_user} in flight (--max-requests-inflight-per-user).",
                        user.name
                    )),
                });
            }
            *n += 1;
            permit.user = Some(user.name.clone());
        }
        Ok(Some(permit))
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.global.is_some() {
            self.limiter
                .global(self.kind)
                .0
                .fetch_sub(1, Ordering::AcqRel);
        }
        if let Some(name) = self.user.take() {
            let mut users = self.limiter.users.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(count) = users.get_mut(&name) {
                let n = match self.kind {
                    Kind::Watch => &mut count.watches,
                    _ => &mut count.inflight,
                };
                *n = n.saturating_sub(1);
                if count.inflight == 0 && count.watches == 0 {
                    users.remove(&name);
                }
            }
        }
    }
}

/// `resp` with the request's permit: a watch keeps its place while its body streams; any other
/// request gives it back now, its handler being done.
pub(crate) fn hold(
    permit: Option<Permit>,
    resp: hyper::Response<crate::http::Body>,
) -> hyper::Response<crate::http::Body> {
    match permit {
        Some(permit) if permit.kind == Kind::Watch => {
            use http_body_util::BodyExt;
            resp.map(|body| {
                Held {
                    body,
                    _permit: permit,
                }
                .boxed()
            })
        }
        _ => resp,
    }
}

/// Upstream's `NewTooManyRequests(message, 1)`: 429 with `Retry-After: 1`.
fn too_many(message: String) -> ApiError {
    ApiError::too_many_requests(message, 1)
}

/// A response body that holds a permit until the body is done or dropped (a watch's place is
/// taken for as long as the client reads it).
struct Held {
    body: crate::http::Body,
    _permit: Permit,
}

impl http_body::Body for Held {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo::new(name, groups.iter().map(|g| g.to_string()).collect())
    }

    #[test]
    fn global_and_per_user_limits_table() {
        let limiter = Arc::new(Limiter::new(Limits {
            max_requests_inflight: 3,
            max_mutating_requests_inflight: 1,
            max_requests_inflight_per_user: 2,
            max_watches: 3,
            max_watches_per_user: 2,
        }));
        let (alice, bob) = (user("alice", &[]), user("bob", &[]));
        let admin = user("admin", &[rudder_auth::rbac::SUPERUSER_GROUP]);
        let a1 = limiter.admit(&alice, Kind::ReadOnly).expect("a1");
        let a2 = limiter.admit(&alice, Kind::ReadOnly).expect("a2");
        let e = limiter
            .admit(&alice, Kind::ReadOnly)
            .err()
            .expect("alice's third");
        assert_eq!(
            (e.code, e.reason, e.retry_after),
            (429, "TooManyRequests", Some(1))
        );
        let b1 = limiter.admit(&bob, Kind::ReadOnly).expect("b1");
        assert!(
            limiter.admit(&bob, Kind::ReadOnly).is_err(),
            "global 3 reached"
        );
        // Mutating requests have their own pool; masters are exempt from in-flight limits.
        let m = limiter.admit(&bob, Kind::Mutating).expect("m");
        assert!(limiter.admit(&alice, Kind::Mutating).is_err());
        assert!(
            limiter
                .admit(&admin, Kind::Mutating)
                .expect("admin")
                .is_none()
        );
        assert!(
            limiter
                .admit(&alice, Kind::Unlimited)
                .expect("exec")
                .is_none()
        );
        drop((a1, a2, b1, m));
        assert!(
            limiter.users.lock().expect("lock").is_empty(),
            "idle users leave no entry"
        );
        // Watches count for masters too.
        let w1 = limiter.admit(&admin, Kind::Watch).expect("w1");
        let w2 = limiter.admit(&admin, Kind::Watch).expect("w2");
        assert!(limiter.admit(&admin, Kind::Watch).is_err(), "per user");
        let w3 = limiter.admit(&alice, Kind::Watch).expect("w3");
        assert!(limiter.admit(&bob, Kind::Watch).is_err(), "global");
        assert_eq!(limiter.watches.load(Ordering::Acquire), 3);
        drop((w1, w2, w3));
        assert_eq!(limiter.watches.load(Ordering::Acquire), 0);
        assert!(limiter.admit(&bob, Kind::Watch).is_ok());
    }
}
