package redis

import (
	"crypto/sha1"
	"encoding/hex"

	"github.com/redis/rueidis"
)

// The Lua scripts: each is one atomic step on one topic's keys (MULTI cannot branch on what it
// reads). They are sent with EVALSHA (rueidis.NewLuaScript falls back to EVAL once per server
// when the script is not cached, e.g. after a restart). Errors a client must see come back as
// error replies whose text is a code the engine maps to a domain.Kind (errorOf).
//
// Channel messages (the "notice" the scripts PUBLISH) are "<kind><epoch>:<seq>:<body>", kind being
// m (an event, body is the encoded event), d (the topic was deleted after seq), r (the epoch was
// rotated at seq). One channel carries them all, so every replica sees them in the same order.

// scriptCreate: KEYS meta, history, topics; ARGV name, epoch, created ms, max topics (0: none).
var scriptCreate = rueidis.NewLuaScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.error_reply('TOPIC_EXISTS') end
local max = tonumber(ARGV[4])
if max > 0 and redis.call('HLEN', KEYS[3]) >= max then return redis.error_reply('TOPIC_LIMIT') end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'e', ARGV[2], 's', 0, 'b', 0, 'c', ARGV[3])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
return 1
`)

// scriptPublish: KEYS meta, history, channel; ARGV max events, max bytes (0: none), the event's
// size, the encoded event. It takes the next seq, appends the event to the history trimmed
// exactly to its bounds (count and bytes; the newest always stays, as in memory) and publishes it,
// all in one step: seq, history and fan-out can never disagree. Returns {seq, epoch}.
var scriptPublish = rueidis.NewLuaScript(publishSource)

// publishSHA names the publish script in the EVALSHA commands of a batch, which are built here
// rather than by rueidis' ExecMulti: that one sends SCRIPT LOAD before every batch, a second round
// trip the batch exists to save.
var publishSHA = func() string { h := sha1.Sum([]byte(publishSource)); return hex.EncodeToString(h[:]) }()

const publishSource = `
local e = redis.call('HGET', KEYS[1], 'e')
if not e then return redis.error_reply('TOPIC_NOT_FOUND') end
local s = redis.call('HINCRBY', KEYS[1], 's', 1)
local maxlen, maxbytes, size = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if maxlen > 0 then
  redis.call('XADD', KEYS[2], s .. '-0', 'b', ARGV[4], 'z', size)
  local hb = redis.call('HINCRBY', KEYS[1], 'b', size)
  local n = redis.call('XLEN', KEYS[2])
  while n > 1 and (n > maxlen or (maxbytes > 0 and hb > maxbytes)) do
    local old = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
    redis.call('XDEL', KEYS[2], old[1][1])
    hb = redis.call('HINCRBY', KEYS[1], 'b', -tonumber(old[1][2][4]))
    n = n - 1
  end
end
redis.call('PUBLISH', KEYS[3], 'm' .. e .. ':' .. s .. ':' .. ARGV[4])
return {s, e}
`

// scriptRead: KEYS meta, history; ARGV mode ("last" or "range"), n (last) or after (range),
// the range's last seq ("+" for the top), the range's limit. Returns {epoch, top seq, entries},
// entries oldest first for "range" and newest first for "last".
var scriptRead = rueidis.NewLuaScript(`
local m = redis.call('HMGET', KEYS[1], 'e', 's')
if not m[1] then return redis.error_reply('TOPIC_NOT_FOUND') end
local out = {}
if ARGV[1] == 'last' then
  local n = tonumber(ARGV[2])
  if n > 0 then out = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', n) end
else
  local to = ARGV[3]
  if to ~= '+' then to = to .. '-0' end
  out = redis.call('XRANGE', KEYS[2], '(' .. ARGV[2] .. '-0', to, 'COUNT', tonumber(ARGV[4]))
end
return {m[1], tonumber(m[2]), out}
`)

// scriptDelete: KEYS meta, history, channel, topics, owners; ARGV name. It publishes the deleted
// notice on the topic's own channel, after every event of the topic, so every replica delivers
// all events up to the topic's last seq before it tells its subscribers the topic is gone.
var scriptDelete = rueidis.NewLuaScript(`
local m = redis.call('HMGET', KEYS[1], 'e', 's')
if not m[1] then return redis.error_reply('TOPIC_NOT_FOUND') end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[5])
redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('PUBLISH', KEYS[3], 'd' .. m[1] .. ':' .. m[2] .. ':')
return 1
`)

// scriptRotate: KEYS meta, topics, channel; ARGV name, the epoch the caller saw, a new epoch.
// Compare-and-set: the epoch changes only if it is still the one the caller saw (another replica
// may have rotated it first). Used when the topic's seq went back (a failover lost acknowledged
// writes): the same seqs would otherwise name different events. Returns the epoch now in force,
// or nil if the topic is gone.
var scriptRotate = rueidis.NewLuaScript(`
local m = redis.call('HMGET', KEYS[1], 'e', 's')
if not m[1] then return false end
if m[1] ~= ARGV[2] then return m[1] end
redis.call('HSET', KEYS[1], 'e', ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('PUBLISH', KEYS[3], 'r' .. ARGV[3] .. ':' .. m[2] .. ':')
return ARGV[3]
`)
