//! One read of an identity's entries (one script), opened into the
//! [`Snapshot`] a run decides from: records parsed and validated, sealed
//! values opened for this identity, times counted from when the read was
//! sent.

use std::time::Duration;

use redis::Value;
use tokio::time::Instant;

use super::script_call::{bytes, int};
use crate::shared_tier::entry::{
    open_refresh_token, ChainFields, ChainRecord, TokenFields, TokenRecord,
};
use crate::shared_tier::error::RedisFailure;
use crate::shared_tier::held_failure::HeldFailure;
use crate::shared_tier::protocol::{ChainPos, SeenChain, SeenLink, SeenToken, Snapshot};
use crate::shared_tier::tier::{Inner, Upstream};

impl Inner {
    pub(super) async fn read(&self) -> Result<Snapshot, RedisFailure> {
        let refreshing = matches!(self.upstream, Upstream::Refreshing(_));
        let keys = &self.keys;
        let mut invocation = self.scripts.read.key(&keys.token);
        invocation
            .key(&keys.refresh)
            .key(&keys.failure)
            .key(&keys.lease)
            .arg(if refreshing { "1" } else { "0" });
        let read_at = Instant::now();
        let reply: Vec<Value> = self.invoke("read", &invocation, true).await?;
        let shape = || RedisFailure::Failed("read", "an answer the script never gives".into());
        if reply.len() != 20 {
            return Err(shape());
        }
        let server_now = int(&reply[0])
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(shape)?;
        let token_fields: TokenFields = std::array::from_fn(|i| bytes(&reply[2 + i]));
        let token =
            match TokenRecord::parse(&token_fields, server_now, int(&reply[1]).unwrap_or(-2)) {
                Ok(None) => None,
                Ok(Some(record)) => Some(SeenToken {
                    writer: record.writer.clone().into_bytes(),
                    token: record.open(&self.keyring, &self.identity, self.dpop.as_ref(), read_at),
                }),
                Err(why) => Some(SeenToken {
                    writer: token_fields[1].clone().unwrap_or_default(),
                    token: Err(why),
                }),
            };
        if let Some(SeenToken {
            token: Err(why), ..
        }) = &token
        {
            tracing::warn!(
                namespace = %self.namespace,
                "shared tier: the token entry in Redis is {}; it is not used",
                why.as_str()
            );
        }
        let chain = if refreshing {
            let fields: ChainFields = std::array::from_fn(|i| bytes(&reply[8 + i]));
            self.open_chain(ChainRecord::parse(&fields, server_now))
        } else {
            SeenChain::NotRead
        };
        let failure = match (bytes(&reply[17]), int(&reply[18])) {
            (Some(stored), Some(left)) if left > 0 => Some((
                HeldFailure::decode(&stored),
                Duration::from_millis(left.unsigned_abs()),
            )),
            // Without a time to live it is ignored (and dropped by the next
            // lease attempt): it would stop the fleet for good.
            _ => None,
        };
        let lease = bytes(&reply[19]).map(|l| String::from_utf8_lossy(&l).into_owned());
        Ok(Snapshot {
            token,
            chain,
            failure,
            lease,
        })
    }

    fn open_chain(&self, record: ChainRecord) -> SeenChain {
        match record {
            ChainRecord::Absent => SeenChain::Absent,
            ChainRecord::Lost(loss) => SeenChain::Lost(loss),
            ChainRecord::Present {
                epoch,
                seq,
                origin,
                key_id,
                sealed,
                mark,
            } => SeenChain::Present(SeenLink {
                refresh_token: open_refresh_token(
                    &self.keyring,
                    &key_id,
                    &sealed,
                    &self.identity,
                    &epoch,
                    seq,
                ),
                pos: ChainPos { epoch, seq },
                origin,
                mark,
            }),
        }
    }
}
