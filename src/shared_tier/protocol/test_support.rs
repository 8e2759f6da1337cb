//! What the protocol's tests build their runs and events from.

use std::time::Duration;

use tokio::time::Instant;

use super::{
    Action, ChainPos, Event, Lease, Margin, SeenChain, SeenLink, SeenToken, Settings, Snapshot,
};
use crate::error::TokenError;
use crate::secret::Secret;
use crate::shared_tier::entry::{MarkRecord, Origin};
use crate::shared_tier::error::FleetError;
use crate::token::AccessToken;

pub(super) const S: fn(u64) -> Duration = Duration::from_secs;

pub(super) fn settings() -> Settings {
    Settings {
        lease_ttl: S(5),
        failure_hold: S(1),
        local_fallback: true,
        doubt_after: S(120),
        margin: Margin::of_default_cache(),
    }
}

/// A token issued `age` ago that lives `life`.
pub(super) fn token(secret: &str, now: Instant, age: Duration, life: Duration) -> AccessToken {
    AccessToken::new(secret)
        .with_expires_at(now - age + life)
        .with_received_at(now - age)
}

pub(super) fn read(token: Option<AccessToken>, chain: SeenChain) -> Event {
    Event::Read(Box::new(Snapshot {
        token: token.map(|token| SeenToken {
            writer: b"w1".to_vec(),
            token: Ok(token),
        }),
        chain,
        failure: None,
        lease: None,
    }))
}

pub(super) fn link(epoch: &str, seq: u64, mark: Option<MarkRecord>) -> SeenChain {
    SeenChain::Present(SeenLink {
        pos: ChainPos {
            epoch: epoch.into(),
            seq,
        },
        origin: Origin::Bootstrap,
        refresh_token: Ok(Secret::new(format!("rt-{seq}"))),
        mark,
    })
}

pub(super) fn lease() -> Lease {
    Lease {
        fence: 2,
        nonce: "ab".into(),
    }
}

pub(super) fn answered_with(action: &Action) -> Result<&str, &TokenError> {
    match action {
        Action::Answer(Ok(token)) => Ok(token.secret()),
        Action::Answer(Err(err)) => Err(err),
        other => panic!("not an answer: {other:?}"),
    }
}

pub(super) fn loss_of(err: &TokenError) -> Option<&FleetError> {
    err.cause().and_then(|c| c.downcast_ref::<FleetError>())
}
