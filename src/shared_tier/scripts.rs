//! The Lua scripts that make each step of the protocol atomic in Redis.
//!
//! Every number a lease hands out (its fence) is larger than the version of
//! any entry in Redis, and an entry is only replaced by a write with a larger
//! fence. So a process that lost its lease (it stalled, Redis failed over, the
//! data was flushed) can never overwrite what a later lease holder wrote, and
//! a flushed counter restarts above what survived.

use redis::Script;

/// Takes the lease unless the entry changed since the caller read it, a
/// recent fetch failed, or another process holds the lease.
///
/// KEYS: token, lease, fence, refresh, failure.
/// ARGV: the version the caller read (`0` for none), the lease's time to live
/// in milliseconds.
///
/// Returns `{1, fence, refresh v, refresh kid, refresh blob}` (granted),
/// `{2, ms left}` (held), `{3}` (changed: read again) or
/// `{4, ms left, failure}` (a fetch failed moments ago).
const ACQUIRE: &str = r"
local v = redis.call('HGET', KEYS[1], 'v')
if v and v ~= ARGV[1] and redis.call('HEXISTS', KEYS[1], 'blob') == 1 then
  return {3}
end
local failure = redis.call('GET', KEYS[5])
if failure then
  return {4, redis.call('PTTL', KEYS[5]), failure}
end
local held = redis.call('PTTL', KEYS[2])
if held == -1 then
  -- A lease without an expiry would stop the fleet for good.
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  held = tonumber(ARGV[2])
end
if held > 0 then
  return {2, held}
end
local fence = redis.call('INCR', KEYS[3])
local floor = math.max(tonumber(v or '0') or 0, tonumber(redis.call('HGET', KEYS[4], 'v') or '0') or 0)
if fence <= floor then
  fence = floor + 1
  redis.call('SET', KEYS[3], fence)
end
redis.call('SET', KEYS[2], fence, 'PX', ARGV[2])
local r = redis.call('HMGET', KEYS[4], 'v', 'kid', 'blob')
return {1, fence, r[1], r[2], r[3]}
";

/// Writes a fetched token (and the refresh token it came with) under the
/// writer's fence, releases its lease, and wakes the waiting processes.
/// Nothing is written if a later lease holder wrote first.
///
/// KEYS: token, lease, refresh, failure.
/// ARGV: fence, iat, exp, ref, kid, blob, expire-at in Unix ms (`0`: never),
/// refresh kid (empty: no refresh token), refresh blob, channel.
///
/// Returns 1 if written, 0 if not.
const WRITE: &str = r"
local fence = tonumber(ARGV[1])
local current = tonumber(redis.call('HGET', KEYS[1], 'v') or '0') or 0
local refresh = tonumber(redis.call('HGET', KEYS[3], 'v') or '0') or 0
local written = 0
if current < fence and (ARGV[8] == '' or refresh < fence) then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'v', ARGV[1], 'iat', ARGV[2], 'exp', ARGV[3], 'ref', ARGV[4], 'kid', ARGV[5], 'blob', ARGV[6])
  if ARGV[7] ~= '0' then
    redis.call('PEXPIREAT', KEYS[1], ARGV[7])
  end
  if ARGV[8] ~= '' then
    redis.call('DEL', KEYS[3])
    redis.call('HSET', KEYS[3], 'v', ARGV[1], 'kid', ARGV[8], 'blob', ARGV[9])
  end
  redis.call('DEL', KEYS[4])
  written = 1
end
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
end
redis.call('PUBLISH', ARGV[10], 'written')
return written
";

/// A lease holder's fetch failed: releases the lease, keeps why for a short
/// hold so that the fleet does not repeat the fetch at once, and wakes the
/// waiting processes.
///
/// KEYS: lease, failure. ARGV: fence, failure, hold in ms, channel.
const RELEASE_FAILED: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  if tonumber(ARGV[3]) > 0 then
    redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  end
end
redis.call('PUBLISH', ARGV[4], 'failed')
return 1
";

/// Extends a lease its holder still holds. KEYS: lease. ARGV: fence, ttl ms.
/// Returns 1 if extended, 0 if the lease was lost.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// A server rejected the token of version ARGV[1]: drops it, but only if the
/// entry still holds it. The version stays behind as a tombstone, so that
/// fencing still holds, until the entry expires. KEYS: token.
/// Returns 1 if dropped, 0 if the entry had moved on.
const INVALIDATE: &str = r"
if redis.call('HGET', KEYS[1], 'v') == ARGV[1] then
  return redis.call('HDEL', KEYS[1], 'blob')
end
return 0
";

/// The scripts, with their SHA-1 digests computed once.
pub(crate) struct Scripts {
    pub(crate) acquire: Script,
    pub(crate) write: Script,
    pub(crate) release_failed: Script,
    pub(crate) renew: Script,
    pub(crate) invalidate: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            acquire: Script::new(ACQUIRE),
            write: Script::new(WRITE),
            release_failed: Script::new(RELEASE_FAILED),
            renew: Script::new(RENEW),
            invalidate: Script::new(INVALIDATE),
        }
    }
}
