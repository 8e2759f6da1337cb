//! The lease holder keeps its lease alive while it works, and only while:
//! renewals run in a task that stops when the run lets the lease go, however
//! it ends (completed, cut by the cache's fetch timeout, its runtime shut
//! down), so a lease outlives a dead or stalled holder by at most its time
//! to live.

use std::sync::Arc;

use tokio::task::AbortHandle;

use crate::shared_tier::protocol::Lease;
use crate::shared_tier::tier::Inner;

/// Renews a lease every third of its time to live until dropped.
pub(crate) struct Renewal {
    task: AbortHandle,
}

impl Renewal {
    /// Starts renewing `lease`.
    pub(crate) fn start(inner: &Arc<Inner>, lease: &Lease) -> Self {
        let inner = Arc::clone(inner);
        let lease = lease.clone();
        let period = inner.settings.lease_ttl / 3;
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                match inner.renew(&lease).await {
                    Ok(true) => {}
                    Ok(false) => {
                        // Another process may take over now: what this one
                        // writes is fenced, what it redeems is marked.
                        tracing::warn!(
                            fence = lease.fence,
                            "shared tier: lease lost while working"
                        );
                        return;
                    }
                    // Redis is failing: the lease may lapse; keep trying.
                    Err(failure) => {
                        tracing::debug!(error = %failure, "shared tier: lease renewal failed")
                    }
                }
            }
        });
        Self {
            task: task.abort_handle(),
        }
    }
}

impl Drop for Renewal {
    fn drop(&mut self) {
        self.task.abort();
    }
}
