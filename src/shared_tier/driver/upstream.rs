//! The token source, asked: a plain tier's fetch, a refreshing tier's
//! redemption.

use super::redemption_verdict::redeemed;
use crate::error::TokenError;
use crate::secret::Secret;
use crate::shared_tier::protocol::Event;
use crate::shared_tier::stats::Counters;
use crate::shared_tier::tier::{Inner, Upstream};
use crate::source::TokenSource;
use crate::token::AccessToken;

impl Inner {
    pub(super) async fn fetch_upstream(
        &self,
        replacing: Option<&AccessToken>,
        fallback: bool,
    ) -> Result<AccessToken, TokenError> {
        let Upstream::Source(source) = &self.upstream else {
            unreachable!("a refreshing tier redeems, it never fetches");
        };
        if fallback {
            Counters::bump(&self.stats.fallbacks);
            tracing::warn!(
                namespace = %self.namespace,
                "shared tier: Redis cannot be used; fetching for this process only"
            );
        }
        match replacing {
            Some(rejected) => source.fetch_replacing(rejected).await,
            None => source.fetch().await,
        }
    }

    pub(super) async fn redeem(&self, refresh_token: &Secret) -> Event {
        let Upstream::Refreshing(source) = &self.upstream else {
            unreachable!("only a refreshing tier redeems");
        };
        Counters::bump(&self.stats.redemptions);
        Event::Redeemed(redeemed(refresh_token, source.redeem(refresh_token).await))
    }
}
