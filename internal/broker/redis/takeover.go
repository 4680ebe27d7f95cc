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

// scriptUnclaim: KEYS owners, meta; ARGV client id, principal. Forgets the owner record of the
// client id when it belongs to principal, and returns the replica that held it (nil: none).
var scriptUnclaim = rueidis.NewLuaScript(`
if redis.call('EXISTS', KEYS[2]) == 0 then return redis.error_reply('TOPIC_NOT_FOUND') end
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return false end
local i = string.find(v, '\n', 1, true)
if not i then return false end
if string.sub(v, i + 1) ~= ARGV[2] then return redis.error_reply('NOT_OWNER') end
redis.call('HDEL', KEYS[1], ARGV[1])
return string.sub(v, 1, i - 1)
`)

// unsubscribeElsewhere ends clientID's subscription on the replica that holds it, when that is not
// this one: the owner record says which (and refuses another principal), and that replica is told
// on its node channel to end it with UnsubscribedElsewhere, as a connection of the same principal
// on the same replica would. A topic that does not exist is KindNotFound.
func (e *Engine) unsubscribeElsewhere(ctx context.Context, name domain.TopicName, clientID string, by domain.Waker) error {
	var holder string
	err := e.call(ctx, "release", func(ctx context.Context) error {
		v, err := scriptUnclaim.Exec(ctx, e.client, []string{e.keys.owners(name), e.keys.meta(name)},
			[]string{clientID, principal(by)}).ToString()
		if err != nil && isNil(err) {
			return nil
		}
		holder = v
		return err
	})
	if err != nil {
		return errorOf(err, name, e.cfg)
	}
	if holder == "" || holder == e.opts.Replica {
		return nil
	}
	msg := "u" + strconv.Quote(clientID) + "\n" + string(name) + "\n" + strconv.Quote(principal(by))
	err = e.call(ctx, "takeover", func(ctx context.Context) error {
		return e.client.Do(ctx, e.client.B().Publish().Channel(e.keys.node(holder)).Message(msg).Build()).Error()
	})
	return errorOf(err, name, e.cfg)
}

// principalOnly acts for a principal with no connection of its own here: a replica ends a
// subscription for a connection of that principal on another replica.
type principalOnly string

func (principalOnly) Wake()               {}
func (p principalOnly) Principal() string { return string(p) }

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
	if prev == "" || prev == e.opts.Replica || !e.alive(ctx, prev) {
		return 0, nil // nobody else holds it (a record left by a replica that is gone holds nothing)
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
	msg := "t" + id + "\n" + e.opts.Replica + "\n" + strconv.Quote(spec.ClientID) + "\n" + string(name)
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

// alive reports whether replica had a fresh heartbeat (within three intervals). When Redis
// cannot say, it answers yes: the takeover then costs at most the timeout.
func (e *Engine) alive(ctx context.Context, replica string) bool {
	var score float64
	err := e.call(ctx, "stats", func(ctx context.Context) error {
		var err error
		score, err = e.client.Do(ctx, e.client.B().Zscore().Key(e.keys.replicas()).Member(replica).Build()).AsFloat64()
		return err
	})
	if isNil(err) {
		return false
	}
	return err != nil || time.UnixMilli(int64(score)).After(time.Now().Add(-3*e.opts.Heartbeat))
}

// releaser forgets, off the callers' paths, the owner records of subscriptions whose connection
// went away (Detach): without it a topic would keep one record per client id that ever
// subscribed. The queue is bounded; a record it cannot take stays until the topic is deleted or
// the client id subscribes again (harmless: its replica answers a takeover at once, or is gone).
func (e *Engine) releaser() {
	for {
		select {
		case <-e.stop:
			return
		case r := <-e.releases:
			ctx, cancel := context.WithTimeout(context.Background(), e.opts.Timeout)
			e.release(ctx, r.topic, r.clientID)
			cancel()
		}
	}
}

// releaseLater queues the owner record of clientID on topic for the releaser; it never blocks.
func (e *Engine) releaseLater(topic domain.TopicName, clientID string) {
	select {
	case e.releases <- ownerRecord{topic, clientID}:
	default:
	}
}

// ownerRecord names one owner record.
type ownerRecord struct {
	topic    domain.TopicName
	clientID string
}

// release forgets the owner record of clientID on name if it is this replica's (best effort: a
// stale record costs a later takeover one message).
func (e *Engine) release(ctx context.Context, name domain.TopicName, clientID string) {
	_ = e.call(ctx, "release", func(ctx context.Context) error {
		return scriptRelease.Exec(ctx, e.client, []string{e.keys.owners(name)}, []string{clientID, e.opts.Replica}).Error()
	})
}

// onNodeMessage handles a takeover request ("t<id>\n<from>\n<client id>\n<topic>"), its answer
// ("a<id>\n<seq>") or an unsubscribe ("u<client id>\n<topic>\n<principal>") on this replica's
// channel. Client ids and principals are Go-quoted: whatever they hold, they hold no newline. It runs on the pub/sub callback: a request is
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
	case 'u':
		if len(parts) != 3 {
			return
		}
		select {
		case <-e.stop:
			return
		default:
		}
		clientID, err1 := strconv.Unquote(parts[0])
		p, err2 := strconv.Unquote(parts[2])
		if err1 != nil || err2 != nil {
			return
		}
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.unsubscribeHere(clientID, domain.TopicName(parts[1]), principalOnly(p))
		}()
	case 't':
		if len(parts) != 4 {
			return
		}
		select {
		case <-e.stop:
			return
		default:
		}
		clientID, err := strconv.Unquote(parts[2])
		if err != nil {
			return
		}
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.evict(parts[0], parts[1], clientID, domain.TopicName(parts[3]))
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

// unsubscribeHere ends clientID's local subscription on name for by (another replica asked).
func (e *Engine) unsubscribeHere(clientID string, name domain.TopicName, by principalOnly) {
	ctx, cancel := context.WithTimeout(context.Background(), e.opts.Timeout)
	defer cancel()
	st := e.lookup(name)
	if st == nil {
		return
	}
	_ = st.run(ctx, func() error {
		if st.local != nil && !st.gone {
			_, _ = st.local.Unsubscribe(clientID, by)
		}
		return nil
	})
	st.poke()
	e.countsChanged()
}

// isNil reports whether err is Redis's nil reply.
func isNil(err error) bool { return rueidis.IsRedisNil(err) }
