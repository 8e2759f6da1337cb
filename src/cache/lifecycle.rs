//! The timer task of one token: refresh ahead of expiry, then mark it stale.
//!
//! Time drives the token's state so that the hot path never reads the clock.
//! If a timer fires late (a busy runtime), a request may still go out with a
//! token that has just expired; the server's 401 is then handled by the retry.

use std::sync::Weak;
use std::time::Duration;

use tokio::time::Instant;

use super::schedule::Schedule;
use super::{CachedToken, RefreshAhead, Shared, STALE};

/// Tokio timers cannot sleep for arbitrarily long; far deadlines (a ten-year
/// token) are reached in steps of this size.
const MAX_TIMER_STEP: Duration = Duration::from_secs(86_400 * 30);

pub(super) async fn run(
    shared: Weak<Shared>,
    token: Weak<CachedToken>,
    generation: u64,
    schedule: Schedule,
) {
    let expire = async {
        if let Some(at) = schedule.usable_until {
            sleep_until(at).await;
            if let Some(token) = token.upgrade() {
                token.mark(STALE);
                tracing::debug!(generation, "token reached the end of its usable life");
            }
        }
    };
    let refresh = async {
        let Some(mut at) = schedule.refresh_at else {
            return;
        };
        loop {
            sleep_until(at).await;
            let Some(shared) = shared.upgrade() else {
                return;
            };
            match shared.refresh_ahead(generation).await {
                RefreshAhead::Done => return,
                RefreshAhead::RetryAt(next) => at = next,
            }
            // Past the usable life, callers fetch on demand; stop retrying here.
            if schedule.usable_until.is_some_and(|until| at >= until) {
                return;
            }
        }
    };
    tokio::join!(expire, refresh);
}

async fn sleep_until(deadline: Instant) {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        let step = deadline.saturating_duration_since(now).min(MAX_TIMER_STEP);
        tokio::time::sleep(step).await;
    }
}
