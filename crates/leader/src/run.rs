//! The election loop: read the Lease, apply [`decide`], write it back guarded by
//! `resourceVersion`, and run the caller's work only while the Lease is ours.

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};

use crate::LeaderError;
use crate::decide::{Decision, LeaseView, decide, expiry, next_look};

/// Election timing; the default is client-go's usual 15 s lease, renewed every 2 s.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// `leaseDurationSeconds` written into the Lease.
    pub lease_duration: Duration,
    /// How often the leader renews.
    pub renew: Duration,
    /// How long a leader keeps working while its renewals fail, before it steps down. Shorter
    /// than the lease duration, so it stops before anybody else may start.
    pub renew_deadline: Duration,
    /// How often a candidate looks at someone else's Lease.
    pub retry: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            lease_duration: Duration::from_secs(15),
            renew: Duration::from_secs(2),
            renew_deadline: Duration::from_secs(10),
            retry: Duration::from_secs(2),
        }
    }
}

/// `hostname_<random>`: unique per process even when two servers share a host name.
pub fn default_identity() -> String {
    let host = hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "rudder".to_owned());
    format!("{host}_{:08x}", rand::random::<u32>())
}

/// Runs `work()` while `identity` holds the Lease `namespace/name`, until `stop` completes.
///
/// The work future is dropped (cancelled) as soon as leadership is lost, and started again if it
/// is won back. On `stop`, or when the work returns, the Lease is released so another candidate
/// takes over at once instead of after `leaseDurationSeconds`. API errors are logged and retried:
/// an election has to outlive an API server restart. Only authorization failures end it.
pub async fn run_as_leader<F, Fut>(
    client: kube::Client,
    namespace: &str,
    name: &str,
    identity: &str,
    timing: Timing,
    stop: impl Future<Output = ()>,
    mut work: F,
) -> Result<(), LeaderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let elector = Elector {
        api: Api::namespaced(client, namespace),
        namespace,
        name,
        identity,
        timing,
    };
    tokio::pin!(stop);
    loop {
        // Candidate: try now, then every `retry`, or right after the holder's Lease expires.
        loop {
            let wait = match elector.try_acquire_or_renew().await? {
                Round::Ours => break,
                Round::Held { expiry } => next_look(Timestamp::now(), expiry, timing.retry),
                Round::Failed => timing.retry,
            };
            tokio::select! {
                () = &mut stop => return Ok(()),
                () = tokio::time::sleep(wait) => {}
            }
        }
        tracing::info!(lease = %format!("{namespace}/{name}"), identity, "became leader");
        let job = work();
        tokio::pin!(job);
        let lost = tokio::select! {
            () = &mut stop => false,
            () = &mut job => false,
            r = elector.keep_renewing() => { r?; true }
        };
        if !lost {
            elector.release().await;
            return Ok(());
        }
        tracing::warn!(lease = %format!("{namespace}/{name}"), identity, "lost leadership; work stopped");
    }
}

/// The outcome of one election round.
enum Round {
    /// The Lease is ours.
    Ours,
    /// Another candidate holds it (or won the race); it expires at `expiry` unless renewed
    /// (`None`: unknown, or free already).
    Held { expiry: Option<Timestamp> },
    /// The API server could not be asked or refused for a transient reason.
    Failed,
}

struct Elector<'a> {
    api: Api<Lease>,
    namespace: &'a str,
    name: &'a str,
    identity: &'a str,
    timing: Timing,
}

impl Elector<'_> {
    /// Renews every `renew` until a renewal fails for longer than `renew_deadline` or someone
    /// else holds the Lease; returns then (leadership lost).
    async fn keep_renewing(&self) -> Result<(), LeaderError> {
        let mut last_ok = Instant::now();
        loop {
            tokio::time::sleep(self.timing.renew).await;
            if matches!(self.try_acquire_or_renew().await?, Round::Ours) {
                last_ok = Instant::now();
            } else if last_ok.elapsed() > self.timing.renew_deadline {
                return Ok(());
            }
        }
    }

    /// One round: is the Lease ours after it?
    async fn try_acquire_or_renew(&self) -> Result<Round, LeaderError> {
        let current = match self.api.get_opt(self.name).await {
            Ok(l) => l,
            Err(e) => return self.transient(e),
        };
        let now = Timestamp::now();
        let view = current.as_ref().map(view_of);
        let decision = decide(
            view.as_ref(),
            self.identity,
            now,
            self.timing.lease_duration,
        );
        let spec = |acquire: Option<MicroTime>, transitions: i32| LeaseSpec {
            holder_identity: Some(self.identity.to_owned()),
            lease_duration_seconds: Some(
                i32::try_from(self.timing.lease_duration.as_secs()).unwrap_or(15),
            ),
            acquire_time: acquire,
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        };
        let result = match (decision, current) {
            (Decision::Wait { holder }, _) => {
                tracing::debug!(lease = self.name, %holder, "lease held by another candidate");
                let expiry = view
                    .as_ref()
                    .and_then(|v| expiry(v, self.timing.lease_duration));
                return Ok(Round::Held { expiry });
            }
            (Decision::Create, _) | (_, None) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.to_owned()),
                        namespace: Some(self.namespace.to_owned()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec(Some(MicroTime(now)), 0)),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            (Decision::Renew, Some(mut lease)) => {
                let old = lease.spec.take().unwrap_or_default();
                let transitions = old.lease_transitions.unwrap_or(0);
                lease.spec = Some(spec(old.acquire_time.or(Some(MicroTime(now))), transitions));
                self.api
                    .replace(self.name, &PostParams::default(), &lease)
                    .await
            }
            (Decision::Acquire, Some(mut lease)) => {
                let old = lease.spec.take().unwrap_or_default();
                let transitions = old.lease_transitions.unwrap_or(0) + 1;
                lease.spec = Some(spec(Some(MicroTime(now)), transitions));
                self.api
                    .replace(self.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match result {
            Ok(_) => Ok(Round::Ours),
            // Another candidate wrote first (409 on replace, or on create): its Lease is fresh.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Round::Held { expiry: None }),
            Err(e) => self.transient(e),
        }
    }

    /// Gives the Lease up: empty holder, so the next candidate acquires without waiting.
    async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(self.name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.identity) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        match self
            .api
            .replace(self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!(lease = self.name, "released leadership"),
            Err(e) => tracing::warn!(lease = self.name, error = %e, "could not release the lease"),
        }
    }

    /// Logs a failed request and reports "not ours this round", except authorization failures,
    /// which no retry will fix.
    fn transient(&self, e: kube::Error) -> Result<Round, LeaderError> {
        if let kube::Error::Api(s) = &e
            && (s.code == 401 || s.code == 403)
        {
            return Err(LeaderError::Api {
                namespace: self.namespace.to_owned(),
                name: self.name.to_owned(),
                source: e,
            });
        }
        tracing::warn!(lease = self.name, error = %e, "leader election request failed");
        Ok(Round::Failed)
    }
}

fn view_of(lease: &Lease) -> LeaseView {
    let spec = lease.spec.clone().unwrap_or_default();
    LeaseView {
        holder: spec.holder_identity,
        renew_time: spec.renew_time.map(|t| t.0),
        acquire_time: spec.acquire_time.map(|t| t.0),
        duration: spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs),
        transitions: spec.lease_transitions.unwrap_or(0),
    }
}
