package redis

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/pubsubd/pubsub/internal/domain"
)

// Takeover of a client id across replicas. Each topic keeps an owner record per client id
// (replica and principal). A subscribe claims the record; when another replica held it, the new
// owner asks that replica on its node channel to release the client id, and waits (within the
// timeout) for the answer: the seq up to which the old subscription's queue holds events. The old
// subscription ends with subscription_replaced after flushing them, and the new one skips the live
// events up to that seq, so no event is delivered twice. A replica that does not answer (gone)
// costs the subscribe the timeout and nothing else.

// scriptClaim: KEYS owners, meta; ARGV client id, replica, principal. Returns the replica that
// held the client id before, or nil.
var scriptClaim = rueidis.NewLuaScript(`
if redis.call('EXISTS', KEYS[2]) == 0 then return redis.error_reply('TOPIC_NOT_FOUND') end
local v = redis.call('HGET', KEYS[1], ARGV[1])
local prev = false
if v then
  local i = string.find(v, '\n', 1, true)
  if i then
    if string.sub(v, i + 1) ~= ARGV[3] then return redis.error_reply('NOT_OWNER') end
    prev = string.sub(v, 1, i - 1)
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '\n' .. ARGV[3])
return prev
`)

// scriptRelease: KEYS owners; ARGV client id, replica. Forgets the owner record if it is still
// this replica's.
var scriptRelease = rueidis.NewLuaScript(`
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and string.sub(v, 1, #ARGV[2] + 1) == ARGV[2] .. '\n' then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 1
`)

// pendingTakeovers are the answers this replica waits for, by request id.
type pendingTakeovers struct {
	mu sync.Mutex
	m  map[string]chan uint64
}

func principal(owner domain.Waker) string {
	if h, ok := owner.(domain.Holder); ok {
		return h.Principal()
	}
	return ""
}

// takeover claims spec's client id on name and, when another replica held it, has that replica
// release it. It returns the seq the old subscription was released at (0: none elsewhere).
func (e *Engine) takeover(ctx context.Context, name domain.TopicName, spec domain.SubscribeSpec) (uint64, error) {
	var prev string
	err := e.call(ctx, "claim", func(ctx context.Context) error {
		v, err := scriptClaim.Exec(ctx, e.client, []string{e.keys.owners(name), e.keys.meta(name)},
			[]string{spec.ClientID, e.opts.Replica, principal(spec.Owner)}).ToString()
		if err != nil && isNil(err) {
			return nil
		}
		prev = v
		return err
	})
	if err != nil {
		return 0, errorOf(err, name, e.cfg)
	}
	if prev == "" || prev == e.opts.Replica {
		return 0, nil
	}
	id := newEpoch()
	ch := make(chan uint64, 1)
	e.pending.mu.Lock()
	if e.pending.m == nil {
		e.pending.m = make(map[string]chan uint64)
	}
	e.pending.m[id] = ch
	e.pending.mu.Unlock()
	defer func() {
		e.pending.mu.Lock()
		delete(e.pending.m, id)
		e.pending.mu.Unlock()
	}()
	msg := "t" + id + "\n" + e.opts.Replica + "\n" + spec.ClientID + "\n" + string(name)
	err = e.call(ctx, "takeover", func(ctx context.Context) error {
		return e.client.Do(ctx, e.client.B().Publish().Channel(e.keys.node(prev)).Message(msg).Build()).Error()
	})
	if err != nil {
		return 0, errorOf(err, name, e.cfg)
	}
	t := time.NewTimer(e.opts.Timeout)
	defer t.Stop()
	select {
	case seq := <-ch:
		return seq, nil
	case <-t.C:
		e.log.Warn("takeover: the previous replica did not answer", "topic", string(name), "previous", prev)
		return 0, nil
	case <-ctx.Done():
		return 0, unavailable(ctx.Err())
	}
}

// release forgets the owner record of clientID on name if it is this replica's (best effort: a
// stale record costs a later takeover one message).
func (e *Engine) release(ctx context.Context, name domain.TopicName, clientID string) {
	_ = e.call(ctx, "release", func(ctx context.Context) error {
		return scriptRelease.Exec(ctx, e.client, []string{e.keys.owners(name)}, []string{clientID, e.opts.Replica}).Error()
	})
}

// onNodeMessage handles a takeover request ("t<id>\n<from>\n<client id>\n<topic>") or answer
// ("a<id>\n<seq>") on this replica's channel. It runs on the pub/sub callback: a request is
// served on its own goroutine (takeovers are rare), never on the callback.
func (e *Engine) onNodeMessage(msg string) {
	parts := strings.Split(msg[1:], "\n")
	switch msg[0] {
	case 'a':
		if len(parts) != 2 {
			return
		}
		seq, err := strconv.ParseUint(parts[1], 10, 64)
		if err != nil {
			return
		}
		e.pending.mu.Lock()
		ch := e.pending.m[parts[0]]
		e.pending.mu.Unlock()
		if ch != nil {
			select {
			case ch <- seq:
			default:
			}
		}
	case 't':
		if len(parts) != 4 {
			return
		}
		select {
		case <-e.stop:
			return
		default:
		}
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.evict(parts[0], parts[1], parts[2], domain.TopicName(parts[3]))
		}()
	}
}

// evict ends the local subscription of clientID on name, on the topic's worker (so the seq it
// reports is exact), and answers the replica that took it over.
func (e *Engine) evict(id, from, clientID string, name domain.TopicName) {
	ctx, cancel := context.WithTimeout(context.Background(), e.opts.Timeout)
	defer cancel()
	var seq uint64
	if st := e.lookup(name); st != nil {
		_ = st.run(ctx, func() error {
			if st.local != nil && !st.gone {
				// No subscription here (its connection closed): the new one has nothing to
				// continue, so it starts as any subscribe does (released 0).
				if ok, at := st.local.Evict(clientID); ok {
					seq = at
				}
			}
			return nil
		})
		st.poke()
	}
	_ = e.call(ctx, "takeover", func(ctx context.Context) error {
		return e.client.Do(ctx, e.client.B().Publish().Channel(e.keys.node(from)).
			Message("a"+id+"\n"+strconv.FormatUint(seq, 10)).Build()).Error()
	})
}

// isNil reports whether err is Redis's nil reply.
func isNil(err error) bool { return rueidis.IsRedisNil(err) }
