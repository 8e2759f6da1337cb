//! Waiting for another process's fetch: woken by its pub/sub message, or by
//! the bound the protocol gives (a message can be lost: Redis does not keep
//! them, and a failover drops subscriptions).

use std::time::Duration;

use futures_core::Stream;
use redis::aio::PubSub;

use crate::shared_tier::error::RedisFailure;
use crate::shared_tier::redis_link::RedisLink;
use crate::shared_tier::stats::Counters;

/// A process waiting for the lease holder, subscribed once it first waits.
#[derive(Default)]
pub(crate) struct Waiter {
    subscription: Option<PubSub>,
}

impl Waiter {
    /// The first call subscribes and returns at once, so that the caller
    /// reads again: the holder may have written before the subscription
    /// started, and its message would be lost. Later calls wait for a message
    /// on `channel`, or `bound`, whichever comes first.
    pub(crate) async fn wait(
        &mut self,
        link: &RedisLink,
        stats: &Counters,
        channel: &str,
        bound: Duration,
    ) -> Result<(), RedisFailure> {
        let Some(pubsub) = &mut self.subscription else {
            let mut pubsub = link.pubsub(stats).await?;
            link.call(stats, "subscribe", 1, pubsub.subscribe(channel))
                .await?;
            self.subscription = Some(pubsub);
            return Ok(());
        };
        let mut messages = std::pin::pin!(pubsub.on_message());
        let next = std::future::poll_fn(|cx| messages.as_mut().poll_next(cx));
        match tokio::time::timeout(bound, next).await {
            Ok(Some(_)) | Err(_) => Ok(()),
            Ok(None) => Err(RedisFailure::Failed(
                "pub/sub",
                "the subscription's connection closed".into(),
            )),
        }
    }
}
