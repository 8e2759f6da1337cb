//! The lease holder keeps its lease alive while it fetches, and only while:
//! renewals run in a task that stops when the fetch ends, however it ends
//! (completed, cut by the cache's fetch timeout, its runtime shut down), so a
//! lease outlives a dead holder by at most its time to live.

use std::sync::Arc;

use tokio::task::AbortHandle;

use super::Inner;

/// Renews a lease every third of its time to live until dropped.
pub(crate) struct Renewal {
    task: AbortHandle,
}

impl Renewal {
    /// Starts renewing the lease held under `fence`.
    pub(crate) fn start(inner: &Arc<Inner>, fence: u64) -> Self {
        let inner = Arc::clone(inner);
        let period = inner.config.lease_ttl / 3;
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                match inner.renew(fence).await {
                    Ok(true) => {}
                    Ok(false) => {
                        // Another process may fetch now; this one's write is
                        // refused if that one writes first (fencing).
                        tracing::warn!(fence, "shared tier: lease lost while fetching");
                        return;
                    }
                    // Redis is failing: the lease may lapse, and another
                    // process take over; keep trying while the fetch runs.
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
