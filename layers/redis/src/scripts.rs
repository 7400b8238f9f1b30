//! The Lua scripts that change a key's record atomically (each runs alone on the server): count
//! a failure and trip at the fleet's threshold, trip, pin / close / reset / restore, and lease
//! half-open probe slots. Every change bumps the record's `rev`, sets its TTL, clears the
//! key's failure count and probe leases, and appends the change to the stream.
//!
//! Arguments common to all (`KEYS`: state, count, probes, stream; `ARGV[1..7]`): the key's id,
//! this replica's id, the record's TTL after its pin ends (ms), the stream's length, provider,
//! endpoint, credential fingerprint (as shown). Each script's own arguments follow. Time is the
//! server's (`TIME`), so replicas' clocks only matter for pins by hand.
//!
//! Nothing read from Redis is trusted: every script first replaces a key of the wrong type, a
//! count that is not a small integer, or a probe set grown past its bound (someone wrote them by
//! hand), reads numbers with a range check (a `rev` that is not an integer in range starts
//! again from the server's clock in milliseconds, larger than any counted revision, so no
//! record is frozen and no call fails), and returns the record's known fields only, each cut
//! to a bounded length.

use std::sync::LazyLock;

use redis::Script;

const PRELUDE: &str = r#"
local MAX_REV = 9007199254740991
local MAX_TRIPS = 1000000
local MAX_CAUSE = 1024
local MAX_FIELD = 4096
local MAX_PROBES = 1024

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- `v` as an integer in 0..max, else nil.
local function int(v, max)
  local n = tonumber(v)
  if n == nil or n ~= n or n ~= math.floor(n) or n < 0 or n > max then return nil end
  return n
end

-- Replaces what this crate did not write: keys of another type, a count out of range, a probe
-- set past its bound.
local function sane()
  local expected = {'hash', 'string', 'zset', 'stream'}
  for i = 1, #KEYS do
    local t = redis.call('TYPE', KEYS[i]).ok
    if t ~= 'none' and t ~= expected[i] then redis.call('DEL', KEYS[i]) end
  end
  if redis.call('EXISTS', KEYS[2]) == 1 and int(redis.call('GET', KEYS[2]), MAX_REV) == nil then
    redis.call('DEL', KEYS[2])
  end
  if #KEYS >= 3 and redis.call('ZCARD', KEYS[3]) > MAX_PROBES then redis.call('DEL', KEYS[3]) end
end

-- The record's known fields as a flat list, each cut to MAX_FIELD bytes.
local function record()
  local names = {'v', 'rev', 'state', 'until', 'manual', 'trips', 'since', 'cause'}
  local values = redis.call('HMGET', KEYS[1], unpack(names))
  local out = {}
  for i, name in ipairs(names) do
    if values[i] then
      out[#out + 1] = name
      out[#out + 1] = string.sub(values[i], 1, MAX_FIELD)
    end
  end
  return out
end

local function trips_of(v)
  return int(v, MAX_TRIPS) or 0
end

local function write(now, state, until_ms, manual, trips, cause, reset)
  local rev = int(redis.call('HGET', KEYS[1], 'rev'), MAX_REV - 1)
  -- A revision out of range starts again above every counted one.
  if rev == nil or rev >= MAX_REV - 1 then rev = now end
  rev = rev + 1
  cause = string.sub(cause, 1, MAX_CAUSE)
  redis.call('HSET', KEYS[1], 'v', 1, 'rev', rev, 'state', state, 'until', until_ms,
    'manual', manual, 'trips', trips, 'since', now, 'cause', cause, 'provider', ARGV[5],
    'endpoint', ARGV[6], 'credential', ARGV[7], 'by', ARGV[2])
  local ttl = tonumber(ARGV[3])
  if state == 'open' and until_ms > now then ttl = ttl + (until_ms - now) end
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('DEL', KEYS[2], KEYS[3])
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[4], '*', 'v', 1, 'id', ARGV[1], 'rev', rev,
    'state', state, 'until', until_ms, 'manual', manual, 'trips', trips, 'cause', cause,
    'reset', reset, 'by', ARGV[2])
  redis.call('PEXPIRE', KEYS[4], ARGV[3])
  return record()
end

-- Whether the record is open with a pin that has not ended.
local function pinned(now)
  local s = redis.call('HMGET', KEYS[1], 'state', 'until')
  if s[1] ~= 'open' then return false end
  local u = int(s[2], MAX_REV) or 0
  return u == 0 or u > now
end

-- Opens the key with the next backoff: base * 2^(trips - 1), at most cap, shortened by `cut`
-- (the jitter drawn by the replica); trips start again after `decay` closed.
local function trip(now, base, cap, cut, decay, cause)
  local s = redis.call('HMGET', KEYS[1], 'state', 'trips', 'since')
  local trips = trips_of(s[2])
  if s[1] ~= 'open' and (now - (int(s[3], MAX_REV) or 0)) >= decay then trips = 0 end
  trips = trips + 1
  local backoff = base * 2 ^ math.min(trips - 1, 40)
  if backoff > cap then backoff = cap end
  backoff = math.floor(backoff - backoff * cut)
  if backoff < 1 then backoff = 1 end
  return write(now, 'open', now + backoff, 0, trips, cause, 0)
end
"#;

/// `ARGV[8..14]`: threshold, failure window (ms), base, cap, cut, decay (ms), cause. Returns the
/// record if the key is (now) pinned, else an empty array.
const FAILURE: &str = r#"
sane()
local now = now_ms()
if pinned(now) then return record() end
local n = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[9])
if n < tonumber(ARGV[8]) then return {} end
return trip(now, tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13]), ARGV[14])
"#;

/// `ARGV[8..12]`: base, cap, cut, decay (ms), cause. A key already pinned keeps its pin (the
/// first trip of the fleet wins). Returns the record.
const TRIP: &str = r#"
sane()
local now = now_ms()
if pinned(now) then return record() end
return trip(now, tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11]), ARGV[12])
"#;

/// `ARGV[8..12]`: mode (`pin`, `close`, `reset`, `restore`), until (Unix ms, `0`: until
/// unpinned), manual, trips, cause. `restore` writes only when the store has no record (after
/// it lost them). Returns the record.
const SET: &str = r#"
sane()
local now = now_ms()
local mode = ARGV[8]
local trips = trips_of(redis.call('HGET', KEYS[1], 'trips'))
if mode == 'pin' then return write(now, 'open', tonumber(ARGV[9]), 1, trips, '', 0) end
if mode == 'close' then return write(now, 'closed', 0, 0, trips, '', 0) end
if mode == 'reset' then return write(now, 'closed', 0, 0, 0, '', 1) end
if redis.call('EXISTS', KEYS[1]) == 1 then return record() end
return write(now, 'open', tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11]), ARGV[12], 0)
"#;

/// `ARGV[8..10]`: probes wanted, probes of the fleet, lease (ms). Returns how many probe slots
/// this replica holds now (its earlier ones renewed); none while the fleet's pin runs (a
/// replica whose clock is ahead asks again later).
const LEASE: &str = r#"
sane()
local now = now_ms()
if pinned(now) then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local members = redis.call('ZRANGE', KEYS[3], 0, -1)
local tag = ARGV[2] .. ':'
local expires = now + tonumber(ARGV[10])
local own = 0
for _, m in ipairs(members) do
  if string.sub(m, 1, #tag) == tag then
    own = own + 1
    redis.call('ZADD', KEYS[3], expires, m)
  end
end
local free = math.max(tonumber(ARGV[9]) - #members, 0)
local add = math.min(free, math.max(tonumber(ARGV[8]) - own, 0))
for i = 1, add do
  redis.call('ZADD', KEYS[3], expires, tag .. now .. ':' .. (#members + i))
end
redis.call('PEXPIRE', KEYS[3], ARGV[10])
return own + add
"#;

/// `KEYS[1]`: the record. Returns its known fields (none when it is not a hash).
const READ: &str = r#"
if redis.call('TYPE', KEYS[1]).ok ~= 'hash' then return {} end
return record()
"#;

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}{body}"))
}

pub(crate) static FAILURE_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(FAILURE));
pub(crate) static TRIP_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(TRIP));
pub(crate) static SET_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(SET));
pub(crate) static LEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(LEASE));
pub(crate) static READ_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(READ));
