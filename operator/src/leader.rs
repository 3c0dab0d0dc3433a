//! Leader election on a `coordination.k8s.io/v1` Lease, the protocol client-go uses: take the Lease
//! when it is free or expired, renew it well within its duration, and stop acting the moment a
//! renewal fails. Writes carry the read resourceVersion, so two replicas can never both win.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease as K8sLease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use kube::Client;

use crate::Config;

/// This replica's claim on the Lease.
pub struct Lease {
    api: Api<K8sLease>,
    name: String,
    identity: String,
    duration: Duration,
}

impl Lease {
    /// A claim using the configured Lease.
    pub fn new(client: Client, config: &Config) -> Self {
        Self {
            api: Api::namespaced(client, &config.lease_namespace),
            name: config.lease_name.clone(),
            identity: config.identity.clone(),
            duration: config.lease_duration,
        }
    }

    /// One attempt to take or renew the Lease; true if we hold it afterwards.
    pub async fn try_acquire(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let secs = i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX);
        let spec = |acquire: Option<MicroTime>, transitions: i32| LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(secs),
            acquire_time: acquire,
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..Default::default()
        };
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let mut l = K8sLease::default();
            l.metadata.name = Some(self.name.clone());
            l.spec = Some(spec(Some(MicroTime(now)), 0));
            return match self.api.create(&PostParams::default(), &l).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let current = lease.spec.clone().unwrap_or_default();
        let mine = current.holder_identity.as_deref() == Some(self.identity.as_str());
        let expired = current.renew_time.as_ref().is_none_or(|t| {
            let valid = SignedDuration::from_secs(i64::from(current.lease_duration_seconds.unwrap_or(0)));
            t.0.checked_add(valid).is_ok_and(|until| until < now)
        });
        if !mine && !expired {
            return Ok(false);
        }
        let transitions = current.lease_transitions.unwrap_or(0) + i32::from(!mine);
        let acquire = if mine { current.acquire_time.clone() } else { Some(MicroTime(now)) };
        lease.spec = Some(spec(acquire, transitions));
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up (on a clean shutdown), so a standby need not wait for it to expire.
    pub async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else { return };
        let Some(spec) = lease.spec.as_mut() else { return };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        if let Err(e) = self.api.replace(&self.name, &PostParams::default(), &lease).await {
            tracing::warn!(error = %e, "could not release the lease");
        }
    }

    /// Waits until this replica holds the Lease.
    pub async fn acquire(&self) -> Result<(), kube::Error> {
        let retry = (self.duration / 5).max(Duration::from_millis(200));
        loop {
            match self.try_acquire().await {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "leader election attempt failed"),
            }
            tokio::time::sleep(retry).await;
        }
    }

    /// Renews until renewal has failed for two thirds of the Lease duration (client-go's renew
    /// deadline), or another holder took it; returns when leadership is lost.
    pub async fn hold(&self) {
        let every = (self.duration / 5).max(Duration::from_millis(200));
        let deadline = self.duration * 2 / 3;
        let mut last_renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(every).await;
            // Measured from when the request started: that is the renewTime others see.
            let started = tokio::time::Instant::now();
            // A hanging call must not keep a stale leader acting past its Lease.
            let budget = deadline.saturating_sub(last_renewed.elapsed()).max(Duration::from_millis(100));
            match tokio::time::timeout(budget, self.try_acquire()).await {
                Ok(Ok(true)) => last_renewed = started,
                Ok(Ok(false)) => break,
                Ok(Err(e)) => tracing::warn!(error = %e, "lease renewal failed"),
                Err(_) => tracing::warn!("lease renewal timed out"),
            }
            if last_renewed.elapsed() > deadline {
                break;
            }
        }
    }
}
