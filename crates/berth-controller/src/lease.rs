//! Leader election with a `coordination.k8s.io` Lease, as Kubernetes'
//! own controllers do: replicas of the controller start, fill their caches
//! and wait; the one holding the Lease reconciles. The holder renews it
//! every `renew_every`; another replica takes it only once it has not been
//! renewed for `lease_duration`. A holder that cannot renew within
//! `renew_deadline` (shorter than the lease) stops reconciling before
//! anyone else may start, so two replicas never sync the same app at once.
//! All state needed to go on lives in the cluster (Applications, their
//! `operation` and `operationState`), so a new leader continues where the
//! old one stopped.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::json;
use tokio::sync::watch;

/// How a replica takes part in leader election.
#[derive(Debug, Clone)]
pub struct LeaderElection {
    /// The Lease's name in the control namespace.
    pub lease_name: String,
    /// This replica's identity (its holder name).
    pub identity: String,
    /// How long a Lease not renewed stays its holder's.
    pub lease_duration: Duration,
    /// How long the holder keeps trying to renew before giving up.
    pub renew_deadline: Duration,
    /// How often the holder renews, and a candidate tries.
    pub retry_period: Duration,
}

impl LeaderElection {
    /// Kubernetes' defaults (15 s lease, 10 s renew deadline, 2 s retry)
    /// for the Lease `berth-controller` and an identity from the host name
    /// and process.
    pub fn new() -> LeaderElection {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "berth".into());
        LeaderElection {
            lease_name: "berth-controller".into(),
            identity: format!("{host}_{}", std::process::id()),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

impl Default for LeaderElection {
    fn default() -> Self {
        LeaderElection::new()
    }
}

/// Held leadership: renewed in the background until dropped or lost.
#[derive(Debug)]
pub struct Leadership {
    lost: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
    release: Option<(Api<Lease>, LeaderElection)>,
}

impl Leadership {
    /// Completes when leadership is lost (the Lease could not be renewed
    /// in time, or another replica holds it).
    pub async fn lost(&mut self) {
        while !*self.lost.borrow() {
            if self.lost.changed().await.is_err() {
                return;
            }
        }
    }

    /// Gives the Lease up (its holder emptied), so a standby takes over
    /// at once rather than after the lease duration.
    pub async fn release(mut self) {
        self.task.abort();
        if let Some((api, le)) = self.release.take()
            && let Ok(Some(lease)) = api.get_opt(&le.lease_name).await
            && lease
                .spec
                .as_ref()
                .and_then(|s| s.holder_identity.as_deref())
                == Some(le.identity.as_str())
        {
            let mut released = lease;
            if let Some(spec) = released.spec.as_mut() {
                spec.holder_identity = None;
            }
            let _ = api
                .replace(&le.lease_name, &PostParams::default(), &released)
                .await;
        }
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Now as Kubernetes' MicroTime wants it: exactly six fractional digits.
fn micro_now() -> serde_json::Value {
    let now = jiff::Timestamp::now();
    json!(format!(
        "{}.{:06}Z",
        now.strftime("%Y-%m-%dT%H:%M:%S"),
        now.subsec_microsecond()
    ))
}

/// Seconds since the Lease was last renewed, when it says.
fn age(lease: &Lease) -> Option<Duration> {
    let renewed = serde_json::to_value(lease)
        .ok()?
        .pointer("/spec/renewTime")?
        .as_str()?
        .parse::<jiff::Timestamp>()
        .ok()?;
    let secs = jiff::Timestamp::now()
        .duration_since(renewed)
        .as_secs_f64()
        .max(0.0);
    Some(Duration::from_secs_f64(secs))
}

/// One attempt to take or keep the Lease; whether this replica holds it.
async fn try_hold(api: &Api<Lease>, le: &LeaderElection) -> Result<bool, kube::Error> {
    let now = micro_now();
    let duration = le.lease_duration.as_secs().max(1);
    match api.get_opt(&le.lease_name).await? {
        None => {
            let lease: Lease = serde_json::from_value(json!({
                "metadata": {"name": le.lease_name},
                "spec": {"holderIdentity": le.identity, "leaseDurationSeconds": duration,
                    "acquireTime": now, "renewTime": now, "leaseTransitions": 0},
            }))
            .map_err(kube::Error::SerdeError)?;
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
        Some(current) => {
            let spec = current.spec.clone().unwrap_or_default();
            let holder = spec.holder_identity.clone().unwrap_or_default();
            let mine = holder == le.identity;
            let held_duration = Duration::from_secs(
                u64::try_from(spec.lease_duration_seconds.unwrap_or(15)).unwrap_or(15),
            );
            let expired = holder.is_empty() || age(&current).is_none_or(|a| a > held_duration);
            if !mine && !expired {
                return Ok(false);
            }
            let mut next = serde_json::to_value(&current).map_err(kube::Error::SerdeError)?;
            next["spec"]["holderIdentity"] = json!(le.identity);
            next["spec"]["leaseDurationSeconds"] = json!(duration);
            next["spec"]["renewTime"] = now.clone();
            if !mine {
                next["spec"]["acquireTime"] = now;
                next["spec"]["leaseTransitions"] =
                    json!(spec.lease_transitions.unwrap_or(0).saturating_add(1));
            }
            let next: Lease = serde_json::from_value(next).map_err(kube::Error::SerdeError)?;
            // The resourceVersion it carries makes a race lose cleanly.
            match api
                .replace(&le.lease_name, &PostParams::default(), &next)
                .await
            {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}

/// Waits until this replica holds the Lease, then keeps renewing it.
pub async fn acquire(client: &Client, namespace: &str, le: &LeaderElection) -> Leadership {
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    loop {
        match try_hold(&api, le).await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, lease = %le.lease_name, "leader election"),
        }
        tokio::time::sleep(le.retry_period).await;
    }
    tracing::info!(identity = %le.identity, lease = %le.lease_name, "became the leader");
    let (tx, rx) = watch::channel(false);
    let renew = {
        let api = api.clone();
        let le = le.clone();
        tokio::spawn(async move {
            let mut last = Instant::now();
            loop {
                tokio::time::sleep(le.retry_period).await;
                match try_hold(&api, &le).await {
                    Ok(true) => last = Instant::now(),
                    Ok(false) => {
                        tracing::warn!(identity = %le.identity, "another replica holds the Lease: no longer the leader");
                        let _ = tx.send(true);
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "renewing the Lease");
                    }
                }
                if last.elapsed() > le.renew_deadline {
                    tracing::warn!(identity = %le.identity, "could not renew the Lease in time: no longer the leader");
                    let _ = tx.send(true);
                    return;
                }
            }
        })
    };
    Leadership {
        lost: rx,
        task: renew,
        release: Some((api, le.clone())),
    }
}
