//! The Lua scripts that make each step of the protocol atomic in Redis.
//!
//! Each script is one action of the [protocol](super::protocol) on one
//! identity's keys (all in one hash slot). Together they keep three rules:
//!
//! - **Fencing.** A lease is `fence:nonce`, its fence one above the version
//!   of the entry it may replace, its nonce unique to the process: a write
//!   lands if the writer still holds its lease, or if no lease is held and
//!   the entry is older than its fence. A holder that stalled past its lease
//!   can never overwrite what a later holder wrote.
//! - **One redemption per refresh token.** The refresh entry is marked with
//!   the redeeming lease before its refresh token is presented, and only that
//!   lease may commit the next one (clearing the mark) or abort. No lease
//!   may mark a marked entry.
//! - **Redis is untrusted and forgetful.** Numbers are checked before use
//!   (a version that is not a short decimal counts as none), a failure
//!   record or lease without a time to live is expired, every key written
//!   gets a time to live, and times come from Redis's own `TIME`.

use redis::Script;

/// Helpers every script starts with.
const PRELUDE: &str = r"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- A version this crate could have written (short enough for Lua's numbers), or nil.
local function version(v)
  if v and #v <= 12 and string.match(v, '^%d+$') then return tonumber(v) end
  return nil
end
local function write_token(key, fence, writer, life, ttl, kid, blob)
  redis.call('DEL', key)
  redis.call('HSET', key, 'v', fence, 'w', writer, 'life', life,
    'exp', string.format('%d', now_ms() + tonumber(ttl)), 'kid', kid, 'blob', blob)
  redis.call('PEXPIRE', key, ttl)
end
";

/// Reads an identity's entries, with the server's time.
///
/// KEYS: token, refresh, failure, lease. ARGV: `1` to read the refresh entry.
///
/// Returns `{now, token pttl, v, w, life, exp, kid, blob, epoch, seq,
/// origin, kid, blob, mark, marked, doubt, lost, failure, failure pttl,
/// lease}`.
const READ: &str = r"
local reply = {now_ms(), redis.call('PTTL', KEYS[1])}
local token = redis.call('HMGET', KEYS[1], 'v', 'w', 'life', 'exp', 'kid', 'blob')
for i = 1, 6 do reply[#reply + 1] = token[i] end
local chain = {false, false, false, false, false, false, false, false, false}
if ARGV[1] == '1' then
  chain = redis.call('HMGET', KEYS[2], 'epoch', 'seq', 'origin', 'kid', 'blob', 'mark', 'marked', 'doubt', 'lost')
end
for i = 1, 9 do reply[#reply + 1] = chain[i] end
reply[#reply + 1] = redis.call('GET', KEYS[3])
reply[#reply + 1] = redis.call('PTTL', KEYS[3])
reply[#reply + 1] = redis.call('GET', KEYS[4])
return reply
";

/// Takes the lease unless the entry changed since the caller read it, a
/// recent fetch failed, or another process holds the lease.
///
/// KEYS: token, lease, failure. ARGV: the writer the caller read (empty for
/// none), the lease's time to live in ms, the caller's nonce.
///
/// Returns `{1, fence}` (granted), `{2, ms left}` (held), `{3}` (changed:
/// read again) or `{4, ms left, failure}` (a fetch failed moments ago).
const ACQUIRE: &str = r"
local w = redis.call('HGET', KEYS[1], 'w')
if (w or '') ~= ARGV[1] and redis.call('PTTL', KEYS[1]) > 0 then
  return {3}
end
local failure = redis.call('GET', KEYS[3])
if failure then
  local left = redis.call('PTTL', KEYS[3])
  if left > 0 then
    return {4, left, failure}
  end
  -- A failure without a time to live would stop the fleet for good.
  redis.call('DEL', KEYS[3])
end
local held = redis.call('PTTL', KEYS[2])
if held == -1 then
  -- Nor may a lease without one.
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  held = tonumber(ARGV[2])
end
if held > 0 then
  return {2, held}
end
local fence = (version(redis.call('HGET', KEYS[1], 'v')) or 0) + 1
redis.call('SET', KEYS[2], string.format('%d', fence) .. ':' .. ARGV[3], 'PX', ARGV[2])
return {1, fence}
";

/// Writes a fetched token under the writer's fence, releases its lease,
/// and wakes the waiting processes.
///
/// KEYS: token, lease, failure. ARGV: fence, nonce, life, ttl, kid, blob,
/// channel. Returns 1 if written, 0 if not.
const WRITE: &str = r"
local mine = ARGV[1] .. ':' .. ARGV[2]
local lease = redis.call('GET', KEYS[2])
local ok = lease == mine
if not lease then
  local v = version(redis.call('HGET', KEYS[1], 'v'))
  ok = (not v) or tonumber(ARGV[1]) > v
end
if ok then
  write_token(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
  redis.call('DEL', KEYS[3])
end
if lease == mine then
  redis.call('DEL', KEYS[2])
end
redis.call('PUBLISH', ARGV[7], 'written')
if ok then return 1 end
return 0
";

/// Releases a lease, keeping why its fetch failed for a short hold, and
/// wakes the waiting processes.
///
/// KEYS: lease, failure. ARGV: lease, failure, hold in ms (0: none), channel.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  if tonumber(ARGV[3]) > 0 then
    redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  end
end
redis.call('PUBLISH', ARGV[4], 'released')
return 1
";

/// Extends a lease its holder still holds. KEYS: lease. ARGV: lease, ttl ms.
/// Returns 1 if extended, 0 if the lease was lost.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// A server rejected the token the writer ARGV[1] wrote: drops the entry,
/// but only if it still holds that write. KEYS: token. Returns 1 if dropped.
const INVALIDATE: &str = r"
if redis.call('HGET', KEYS[1], 'w') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Starts a chain from the caller's refresh token, with its code
/// exchange's access token if it has one, unless Redis has a chain (or a
/// lost one).
///
/// KEYS: refresh, lease, token, failure. ARGV: lease, epoch, refresh kid,
/// refresh blob, refresh ttl, then the token's fence, nonce, life, ttl, kid,
/// blob (empty: no token), channel.
///
/// Returns 1 (started; the lease is released if a token was written), 2 (a
/// chain exists; the lease is released) or 0 (the lease was lost).
const BOOTSTRAP: &str = r"
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return 0
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('DEL', KEYS[2])
  redis.call('PUBLISH', ARGV[12], 'released')
  return 2
end
redis.call('HSET', KEYS[1], 'epoch', ARGV[2], 'seq', '1', 'origin', 'b', 'kid', ARGV[3], 'blob', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
if ARGV[9] ~= '' then
  write_token(KEYS[3], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11])
  redis.call('DEL', KEYS[4])
  redis.call('DEL', KEYS[2])
  redis.call('PUBLISH', ARGV[12], 'written')
end
return 1
";

/// Marks the chain's place as being redeemed by the caller's lease, if the
/// caller holds the lease and the chain is still at that place, unmarked.
///
/// KEYS: refresh, lease. ARGV: lease, epoch, seq.
/// Returns 1 if marked; 0 otherwise (and releases the caller's lease).
const MARK: &str = r"
local r = redis.call('HMGET', KEYS[1], 'epoch', 'seq', 'mark', 'lost', 'blob')
local holds = redis.call('GET', KEYS[2]) == ARGV[1]
if holds and r[1] == ARGV[2] and r[2] == ARGV[3] and not r[3] and not r[4] and r[5] then
  redis.call('HSET', KEYS[1], 'mark', ARGV[1], 'marked', string.format('%d', now_ms()))
  return 1
end
if holds then
  redis.call('DEL', KEYS[2])
end
return 0
";

/// Stores the next refresh token of a redemption the caller marked, with
/// its access token, clearing the mark and naming the caller's lease as its
/// writer (so that a retry whose first try was stored after all knows it);
/// releases the caller's lease if it still holds it; wakes the waiting
/// processes.
///
/// KEYS: refresh, token, lease, failure. ARGV: lease, epoch, seq, next seq,
/// refresh kid, refresh blob, refresh ttl, then the token's fence, nonce,
/// life, ttl, kid, blob (empty ttl: no token), channel.
/// Returns 1 if stored, 0 if the chain was reseeded or declared lost, 2 if
/// it is the same chain without the caller's mark.
const COMMIT: &str = r"
local r = redis.call('HMGET', KEYS[1], 'epoch', 'seq', 'mark', 'origin', 'by')
if r[1] == ARGV[2] and r[2] == ARGV[4] and r[5] == ARGV[1] then
  -- Stored by an earlier try of this very commit, whose answer was lost.
  return 1
end
local ok = r[1] == ARGV[2] and r[2] == ARGV[3] and r[3] == ARGV[1]
if ok then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'epoch', ARGV[2], 'seq', ARGV[4], 'origin', r[4] or 'b', 'kid', ARGV[5], 'blob', ARGV[6], 'by', ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[7])
  if ARGV[11] ~= '' then
    write_token(KEYS[2], ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12], ARGV[13])
  end
  redis.call('DEL', KEYS[4])
end
if redis.call('GET', KEYS[3]) == ARGV[1] then
  redis.call('DEL', KEYS[3])
end
redis.call('PUBLISH', ARGV[14], 'committed')
if ok then return 1 end
-- The same chain without this lease's mark: Redis went back to before it.
if r[1] == ARGV[2] then return 2 end
return 0
";

/// Ends a redemption the caller marked without a rotation: `n` (the refresh
/// token was not used: unmark it), `d` (no answer: it may have been spent)
/// or `l` (the chain is lost, for the reason given). Releases the caller's
/// lease, holding its failure for the fleet if given.
///
/// KEYS: refresh, lease, failure. ARGV: lease, epoch, seq, verdict, loss,
/// failure, hold ms, channel, refresh ttl.
const ABORT: &str = r"
local r = redis.call('HMGET', KEYS[1], 'epoch', 'seq', 'mark')
-- Unmarking needs the caller's mark; recording a doubt or a loss does not
-- (if Redis went back to before the mark, the refresh token is spent anyway).
if r[1] == ARGV[2] and r[2] == ARGV[3] and (r[3] == ARGV[1] or ARGV[4] ~= 'n') then
  if ARGV[4] == 'n' then
    redis.call('HDEL', KEYS[1], 'mark', 'marked')
  elseif ARGV[4] == 'd' then
    redis.call('HSET', KEYS[1], 'mark', ARGV[1], 'doubt', '1')
    if not r[3] then
      redis.call('HSET', KEYS[1], 'marked', string.format('%d', now_ms()))
    end
  else
    redis.call('DEL', KEYS[1])
    redis.call('HSET', KEYS[1], 'lost', ARGV[5])
    redis.call('PEXPIRE', KEYS[1], ARGV[9])
  end
end
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
  if tonumber(ARGV[7]) > 0 then
    redis.call('SET', KEYS[3], ARGV[6], 'PX', ARGV[7])
  end
end
redis.call('PUBLISH', ARGV[8], 'aborted')
return 1
";

/// Records that the chain the caller knew (at epoch ARGV[1], place ARGV[2])
/// is lost, unless Redis moved on to a later place of it or to a reseeded
/// chain (or ARGV[5] is `1`: whatever Redis holds).
///
/// KEYS: refresh. ARGV: epoch, seq, loss, refresh ttl, force.
/// Returns 1 if recorded.
const DECLARE_LOST: &str = r"
local r = redis.call('HMGET', KEYS[1], 'epoch', 'seq', 'origin', 'lost')
if r[4] then
  return 0
end
if r[1] and ARGV[5] ~= '1' then
  local seq = version(r[2])
  if r[1] == ARGV[1] and seq and seq >= tonumber(ARGV[2]) then
    return 0
  end
  if r[1] ~= ARGV[1] and r[3] == 'r' then
    return 0
  end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'lost', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
";

/// Starts a new chain from a refresh token the application obtained,
/// whatever Redis holds.
///
/// KEYS: refresh, token, lease, failure. ARGV: epoch, kid, blob, refresh
/// ttl, channel.
const RESEED: &str = r"
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'seq', '1', 'origin', 'r', 'kid', ARGV[2], 'blob', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PUBLISH', ARGV[5], 'reseeded')
return 1
";

/// The scripts, with their SHA-1 digests computed once.
pub(crate) struct Scripts {
    pub(crate) read: Script,
    pub(crate) acquire: Script,
    pub(crate) write: Script,
    pub(crate) release: Script,
    pub(crate) renew: Script,
    pub(crate) invalidate: Script,
    pub(crate) bootstrap: Script,
    pub(crate) mark: Script,
    pub(crate) commit: Script,
    pub(crate) abort: Script,
    pub(crate) declare_lost: Script,
    pub(crate) reseed: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        let script = |body: &str| Script::new(&format!("{PRELUDE}{body}"));
        Self {
            read: script(READ),
            acquire: script(ACQUIRE),
            write: script(WRITE),
            release: script(RELEASE),
            renew: script(RENEW),
            invalidate: script(INVALIDATE),
            bootstrap: script(BOOTSTRAP),
            mark: script(MARK),
            commit: script(COMMIT),
            abort: script(ABORT),
            declare_lost: script(DECLARE_LOST),
            reseed: script(RESEED),
        }
    }
}
