// Package redis is the Redis engine: any number of replicas of pubsubd behind one Service share
// topics through one Redis, and each keeps every guarantee of PROTOCOL.md (design guide:
// BACKPLANE.md). Redis holds the topic registry, each topic's seq and history, and the one ordered
// path (the topic's channel) every event takes to every replica, the publisher's own included.
// Each replica receives each event once and fans it out locally through the domain's queues,
// exactly as the memory engine does.
//
// The client library (rueidis) stays inside this package; telemetry reaches it through Observer.
package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/pubsubd/pubsub/internal/domain"
)

// Options configure an Engine. Zero fields get the defaults documented on each.
type Options struct {
	// URL is redis://[user:password@]host:port[/db] or rediss://. With Sentinel it gives the
	// credentials and database only.
	URL            string
	SentinelMaster string
	SentinelAddrs  []string
	// Timeout bounds one Redis call, a dial, the wait for a subscribe's confirmation and the idle
	// probe's echo (default 2s).
	Timeout time.Duration
	// Replica names this process among the replicas (default: hostname and a random suffix).
	Replica string
	// Prefix starts every key and channel (default "ps:"); tests give each engine family its own.
	Prefix string
	// UnsubscribeDelay is how long the replica stays subscribed to a topic's channel after its
	// last local subscriber left (default 1s): a client that comes back at once finds it warm.
	UnsubscribeDelay time.Duration
	// Heartbeat is the interval of this replica's heartbeat (default 5s); its counts expire
	// after three missed ones.
	Heartbeat time.Duration
	// ProbeIdle is how long the pub/sub connection may receive nothing before the replica checks
	// it with a probe on its own channel (default 15s).
	ProbeIdle time.Duration
	// AwaitLocalDelivery makes Publish return only once this replica's own subscribers of the
	// topic have the event in their queues (within Timeout), with their fan-out's stats: the
	// memory engine's ack, on one replica. Off, the ack means what PROTOCOL.md asks of several
	// replicas (stored, and published to every replica), and the publisher's own subscription
	// may see its event just before or just after the ack, as the protocol allows.
	AwaitLocalDelivery bool
	// InboxSize bounds the messages waiting for one topic's worker (default 4096), and
	// InboxBytes their bytes over all topics (default 64 MiB); past either, messages are dropped
	// and their topics repaired from the history.
	InboxBytes int64
	InboxSize  int
	Observer   Observer
	Logger     *slog.Logger
}

func (o *Options) defaults() {
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Replica == "" {
		o.Replica = DefaultReplicaID()
	}
	if o.Prefix == "" {
		o.Prefix = "ps:"
	}
	if o.UnsubscribeDelay <= 0 {
		o.UnsubscribeDelay = time.Second
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 5 * time.Second
	}
	if o.ProbeIdle <= 0 {
		o.ProbeIdle = 15 * time.Second
	}
	if o.InboxSize <= 0 {
		o.InboxSize = 4096
	}
	if o.InboxBytes <= 0 {
		o.InboxBytes = 64 << 20
	}
	if o.Observer == nil {
		o.Observer = NopObserver{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// DefaultReplicaID is the hostname (the pod's name on Kubernetes) and a random suffix, new at
// each start, so a restarted process never inherits the counts of its previous life.
func DefaultReplicaID() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "pubsubd"
	}
	return h + "-" + newEpoch()[:8]
}

// clientOption turns Options into the client's configuration.
func clientOption(o Options) (rueidis.ClientOption, error) {
	var opt rueidis.ClientOption
	if o.URL != "" {
		var err error
		if opt, err = rueidis.ParseURL(o.URL); err != nil {
			return opt, fmt.Errorf("PUBSUB_REDIS_URL: %w", err)
		}
	}
	if o.SentinelMaster != "" {
		opt.InitAddress = o.SentinelAddrs
		opt.Sentinel = rueidis.SentinelOption{MasterSet: o.SentinelMaster, Username: opt.Username, Password: opt.Password,
			TLSConfig: opt.TLSConfig, Dialer: net.Dialer{Timeout: o.Timeout}}
	}
	if len(opt.InitAddress) == 0 {
		return opt, errors.New("no Redis address: set PUBSUB_REDIS_URL or the Sentinel settings")
	}
	opt.Dialer.Timeout = o.Timeout
	opt.ConnWriteTimeout = o.Timeout
	// Fail fast: a caller waiting on a dead Redis is a publisher held, and no write is ever
	// repeated under the engine's feet (rueidis never retries writes; reads are the engine's to
	// retry, through its repair).
	opt.DisableRetry = true
	opt.DisableCache = true
	opt.ClientName = "pubsubd-" + o.Replica
	return opt, nil
}

// Engine is the Redis engine: a service.Broker shared by every replica on one Redis.
//
// Goroutines: the pub/sub feed (one, owning the dedicated connection and its reconnects), the
// heartbeat (one), and one worker per topic with local subscribers, which alone delivers that
// topic's events to the local queues (so they reach them in seq order). The pub/sub callback only
// hands messages to the workers' bounded inboxes. mu guards topics (no I/O is done under it) and
// the writes of index; each topic's state says what its worker owns.
type Engine struct {
	cfg     domain.TopicConfig
	opts    Options
	keys    keys
	client  rueidis.Client
	mirrors *domain.Mirrors
	obs     Observer
	log     *slog.Logger
	feed    *feed

	mu     sync.Mutex
	topics map[domain.TopicName]*topicState
	// index is topics for readers that must never wait: the pub/sub callback, which must not
	// block behind a subscribe holding mu, and publishers. Written under mu with topics.
	index sync.Map // domain.TopicName -> *topicState

	ready struct {
		sync.Mutex
		at  time.Time
		err error
	}
	replicas atomic.Int64 // fresh replicas at the last heartbeat
	pending  pendingTakeovers
	changed  chan struct{} // a local count changed: heartbeat soon, so other replicas see it
	releases chan ownerRecord
	// inboxBytes bounds the received messages waiting for the workers, over all topics.
	inboxBytes *domain.Budget

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// New connects to Redis and returns a running engine whose local topics are created with cfg.
// It fails when Redis cannot be reached within the timeout. Close it when done.
func New(ctx context.Context, cfg domain.TopicConfig, opts Options) (*Engine, error) {
	opts.defaults()
	copt, err := clientOption(opts)
	if err != nil {
		return nil, err
	}
	client, err := rueidis.NewClient(copt)
	if err != nil {
		return nil, unavailable(err)
	}
	e := &Engine{cfg: cfg, opts: opts, keys: keys{prefix: opts.Prefix}, client: client,
		mirrors: domain.NewMirrors(cfg), obs: opts.Observer,
		log:    opts.Logger,
		topics: make(map[domain.TopicName]*topicState), stop: make(chan struct{}), changed: make(chan struct{}, 1),
		releases: make(chan ownerRecord, 4096), inboxBytes: domain.NewBudget(opts.InboxBytes)}
	e.feed = newFeed(e)
	if err := e.feed.start(ctx); err != nil {
		client.Close()
		return nil, err
	}
	e.heartbeat() // before New returns: other replicas must see this one alive (takeover asks)
	e.wg.Add(2)
	go func() {
		defer e.wg.Done()
		e.survive("heartbeat", e.heartbeatLoop)
	}()
	go func() {
		defer e.wg.Done()
		e.survive("releaser", e.releaser)
	}()
	e.obs.Up(true)
	return e, nil
}

// Replica returns this replica's id.
func (e *Engine) Replica() string { return e.opts.Replica }

// Close stops every goroutine of the engine, removes this replica's counts from Redis (best
// effort, bounded by the timeout) and closes the connections. Local subscriptions stay as they
// are: the service drains them.
func (e *Engine) Close() error {
	e.once.Do(func() {
		close(e.stop)
		e.feed.close()
		e.wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), e.opts.Timeout)
		defer cancel()
		e.client.DoMulti(ctx,
			e.client.B().Del().Key(e.keys.replica(e.opts.Replica)).Build(),
			e.client.B().Zrem().Key(e.keys.replicas()).Member(e.opts.Replica).Build())
		e.client.Close()
	})
	return nil
}

// survive runs f until it returns without panicking. A panic is logged with its stack and counted
// as an anomaly, and f starts again after a pause (unless the engine stops): one bad message never
// stops a topic's worker, the heartbeat or the probe, and never the process. The state f works on
// stays as it was; a message lost to the panic is repaired like any other missed message.
func (e *Engine) survive(what string, f func()) {
	for !e.protect(what, f) {
		select {
		case <-e.stop:
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (e *Engine) protect(what string, f func()) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			e.log.Error("backplane panic recovered", "where", what, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			e.obs.Anomaly()
			ok = false
		}
	}()
	f()
	return true
}

// call runs one Redis call with the timeout and the observer's span and latency.
func (e *Engine) call(ctx context.Context, op string, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
	defer cancel()
	ctx, end := e.obs.StartCall(ctx, op)
	err := f(ctx)
	end(err)
	return err
}

// unavailable classifies a failure to reach Redis.
func unavailable(err error) error {
	return &domain.Error{Kind: domain.KindUnavailable, Msg: "the topic store (redis) is unreachable: " + err.Error()}
}

// errorOf maps a script's error reply to the domain's error for topic, and anything else (a
// connection lost, a timeout) to KindUnavailable: the caller is told nothing was done.
func errorOf(err error, topic domain.TopicName, cfg domain.TopicConfig) error {
	if err == nil {
		return nil
	}
	if re, ok := rueidis.IsRedisErr(err); ok {
		msg := re.Error()
		switch {
		case strings.HasPrefix(msg, "TOPIC_NOT_FOUND"):
			return domain.Errorf(domain.KindNotFound, "topic %q does not exist", string(topic))
		case strings.HasPrefix(msg, "TOPIC_EXISTS"):
			return domain.Errorf(domain.KindExists, "topic %q already exists", string(topic))
		case strings.HasPrefix(msg, "TOPIC_LIMIT"):
			return domain.LimitErrorf(domain.KindRateLimited, domain.LimitTopics,
				"the server's topic limit (%d) is reached; delete a topic first", cfg.MaxTopics)
		case strings.HasPrefix(msg, "NOT_OWNER"):
			return &domain.Error{Kind: domain.KindUnauthorized, Msg: fmt.Sprintf("client_id of topic %q belongs to another principal", string(topic))}
		}
		return domain.Errorf(domain.KindInternal, "the topic store (redis) refused: %s", msg)
	}
	return unavailable(err)
}

// CreateTopic creates the topic in Redis with a new epoch, or fails with KindExists.
func (e *Engine) CreateTopic(ctx context.Context, name domain.TopicName) error {
	err := e.call(ctx, "create", func(ctx context.Context) error {
		return scriptCreate.Exec(ctx, e.client,
			[]string{e.keys.meta(name), e.keys.history(name), e.keys.topics()},
			[]string{string(name), newEpoch(), strconv.FormatInt(time.Now().UnixMilli(), 10), strconv.Itoa(e.cfg.MaxTopics)}).Error()
	})
	return errorOf(err, name, e.cfg)
}

// DeleteTopic deletes the topic; every replica's subscribers get their last events and then
// topic_deleted. It returns once this replica's own subscribers have been told (within the
// timeout), so a client of this replica reads its own delete.
func (e *Engine) DeleteTopic(ctx context.Context, name domain.TopicName) error {
	st := e.lookup(name)
	err := e.call(ctx, "delete", func(ctx context.Context) error {
		return scriptDelete.Exec(ctx, e.client,
			[]string{e.keys.meta(name), e.keys.history(name), e.keys.channel(name), e.keys.topics(), e.keys.owners(name)},
			[]string{string(name)}).Error()
	})
	if err != nil {
		return errorOf(err, name, e.cfg)
	}
	if st != nil {
		select {
		case <-st.done:
		case <-time.After(e.opts.Timeout):
		case <-ctx.Done():
		}
	}
	return nil
}

// Publish stores msg in the topic's history under its next seq and publishes it to every replica
// in one script. When it returns nil the message has its seq, is in the history, and was published
// to every replica; with AwaitLocalDelivery, this replica's subscribers of the topic also have it
// in their queues (within the timeout), and the stats are their fan-out's. The event is encoded
// here, once: every replica delivers these bytes.
func (e *Engine) Publish(ctx context.Context, name domain.TopicName, msg domain.Message) (*domain.Event, domain.PublishStats, error) {
	now := e.now()
	st := e.lookup(name)
	enc, err := e.prepare(st, name, msg, now)
	if err != nil {
		return nil, domain.PublishStats{}, err
	}
	var seq uint64
	err = e.call(ctx, "publish", func(ctx context.Context) error {
		var err error
		seq, err = publishSeq(scriptPublish.Exec(ctx, e.client, e.publishKeys(name), e.publishArgs(enc)))
		return err
	})
	if err != nil {
		return nil, domain.PublishStats{}, errorOf(err, name, e.cfg)
	}
	return e.published(ctx, st, name, seq, enc, now)
}

// prepare encodes msg and refuses what this replica could not hold, before anything is stored:
// the memory engine's rule (the topic's own window gives back first, queues never do).
func (e *Engine) prepare(st *topicState, name domain.TopicName, msg domain.Message, now time.Time) (encoded, error) {
	enc, err := encodeEvent(name, msg, now, e.cfg.Encoder)
	if err != nil {
		return encoded{}, err
	}
	if !e.room(st, enc.size) {
		return encoded{}, domain.LimitErrorf(domain.KindRateLimited, domain.LimitEventMemory,
			"the server's event memory (%d bytes) is full; retry later", e.cfg.Events.Limit())
	}
	return enc, nil
}

// publishKeys and publishArgs are the publish script's keys and arguments for an event of name.
func (e *Engine) publishKeys(name domain.TopicName) []string {
	return []string{e.keys.meta(name), e.keys.history(name), e.keys.channel(name)}
}

func (e *Engine) publishArgs(enc encoded) []string {
	return []string{strconv.Itoa(e.cfg.HistorySize), strconv.FormatInt(e.cfg.HistoryBytes, 10),
		strconv.FormatInt(enc.size, 10), string(enc.body)}
}

// publishSeq reads the seq from the publish script's reply.
func publishSeq(res rueidis.RedisResult) (uint64, error) {
	vals, err := res.ToArray()
	if err != nil {
		return 0, err
	}
	if len(vals) != 2 {
		return 0, errors.New("publish script: unexpected reply")
	}
	n, err := vals[0].AsInt64()
	return uint64(n), err
}

// published makes the event the store gave seq, and its stats, once the script has run.
func (e *Engine) published(ctx context.Context, st *topicState, name domain.TopicName, seq uint64, enc encoded, now time.Time) (*domain.Event, domain.PublishStats, error) {
	appended := e.now()
	ev, err := decodeEvent(name, seq, enc.body)
	if err != nil {
		return nil, domain.PublishStats{}, err
	}
	if st != nil {
		// The event usually reaches this replica's worker as the script's reply comes back (the
		// script publishes before it returns): then the ack reports the local fan-out. Waiting
		// for it is optional, because it costs each publish a hand-off between goroutines.
		wait := time.Duration(0)
		if e.opts.AwaitLocalDelivery {
			wait = e.opts.Timeout
		}
		if stats, ok := st.awaitDelivery(ctx, seq, wait); ok {
			stats.Start = ev.Time
			return ev, stats, nil
		}
	}
	return ev, domain.PublishStats{Start: now, Appended: appended, End: appended}, nil
}

// now reads the topics' clock (TopicConfig.Now, which tests replace).
func (e *Engine) now() time.Time {
	if e.cfg.Now != nil {
		return e.cfg.Now()
	}
	return time.Now()
}

// room reports whether an event of size bytes fits the event budget now, letting the topic's
// local window give back first. A replica that does not follow the topic will not hold the event
// at all: its budget has no say (each receiving replica charges its own, and announces a gap
// when it cannot).
func (e *Engine) room(st *topicState, size int64) bool {
	if e.cfg.Events == nil || st == nil {
		return true
	}
	if t := st.localTopic(); t != nil {
		return t.MakeRoom(size)
	}
	return true
}

// Subscribe registers the subscription with the seam of the design guide: the topic's worker is
// there (and buffers live events), Redis has confirmed the channel's subscription, then the
// history is read, then the worker attaches the subscription with the replay and a floor so that
// no event is lost between the read and the live feed and none comes twice.
func (e *Engine) Subscribe(ctx context.Context, name domain.TopicName, spec domain.SubscribeSpec) (domain.SubscribeResult, error) {
	st, err := e.join(ctx, name)
	if err != nil {
		return domain.SubscribeResult{}, err
	}
	defer e.leave(st)
	released, err := e.takeover(ctx, name, spec)
	if err != nil {
		return domain.SubscribeResult{}, err
	}
	r, err := e.read(ctx, name, spec, released)
	if err != nil {
		return domain.SubscribeResult{}, err
	}
	var lead *domain.Event
	if released > 0 && !spec.Resume && released < r.top {
		// The old subscription ended at released; the history must still hold what followed, or
		// the client is told what it will not get.
		first := r.top + 1
		for _, ev := range r.events {
			if ev.Seq > released {
				first = ev.Seq
				break
			}
		}
		if first > released+1 {
			lead = gapNotice(name, released+1, first-1)
			e.obs.GapAnnounced()
		}
	}
	aspec := domain.AttachSpec{SubscribeSpec: spec, Read: r.events, ReadTop: r.top, Released: released, Lead: lead,
		Recoverable: spec.Resume && spec.Epoch == r.epoch && r.top >= spec.SinceSeq && r.top-spec.SinceSeq <= uint64(e.recoveryMax())}
	var res domain.SubscribeResult
	err = st.run(ctx, func() error {
		if err := st.init(r); err != nil {
			return err
		}
		if st.epoch != r.epoch {
			// The topic was recreated since the worker's state was made: the read is of a topic
			// this worker does not follow yet; the client may retry once it has caught up.
			return domain.Errorf(domain.KindUnavailable, "topic %q was just recreated; retry", string(name))
		}
		var err error
		res, err = st.local.Attach(aspec)
		res.Epoch = st.epoch
		return err
	})
	if err == nil {
		e.countsChanged()
	}
	return res, err
}

func (e *Engine) recoveryMax() int {
	if e.cfg.RecoveryMax > 0 {
		return e.cfg.RecoveryMax
	}
	return e.cfg.HistorySize
}

// readResult is what the read script returned.
type readResult struct {
	epoch  string
	top    uint64
	events []*domain.Event // oldest first
}

// read runs the read script for spec: the newest LastN, or with Resume the events after SinceSeq
// up to the recovery bound (one more, to tell a recovery that is too large). A takeover from
// another replica (released > 0) also reads the events after the released seq, which the new
// subscription must replay.
func (e *Engine) read(ctx context.Context, name domain.TopicName, spec domain.SubscribeSpec, released uint64) (readResult, error) {
	if spec.Resume {
		return e.readRange(ctx, name, spec.SinceSeq, 0, e.recoveryMax()+1)
	}
	r, err := e.readLast(ctx, name, min(max(spec.LastN, 0), e.cfg.HistorySize))
	if err != nil || released == 0 {
		return r, err
	}
	rr, err := e.readRange(ctx, name, released, 0, max(e.cfg.HistorySize, 1))
	if err != nil {
		return r, err
	}
	// Both reads end at a top at or above released: their union is consecutive up to rr's top.
	if len(rr.events) == 0 {
		rr.events = r.events
	} else if len(r.events) > 0 && r.events[0].Seq < rr.events[0].Seq {
		keep := r.events
		for i, ev := range keep {
			if ev.Seq >= rr.events[0].Seq {
				keep = keep[:i]
				break
			}
		}
		rr.events = append(keep, rr.events...)
	}
	return rr, nil
}

func (e *Engine) readLast(ctx context.Context, name domain.TopicName, n int) (readResult, error) {
	return e.readScript(ctx, name, "last", strconv.Itoa(n), "+", "0")
}

// readRange reads the events after `after` up to `to` (0: the top), at most limit.
func (e *Engine) readRange(ctx context.Context, name domain.TopicName, after, to uint64, limit int) (readResult, error) {
	toArg := "+"
	if to > 0 {
		toArg = strconv.FormatUint(to, 10)
	}
	return e.readScript(ctx, name, "range", strconv.FormatUint(after, 10), toArg, strconv.Itoa(max(limit, 1)))
}

func (e *Engine) readScript(ctx context.Context, name domain.TopicName, mode, a, b, c string) (readResult, error) {
	var r readResult
	err := e.call(ctx, "read", func(ctx context.Context) error {
		vals, err := scriptRead.Exec(ctx, e.client, []string{e.keys.meta(name), e.keys.history(name)},
			[]string{mode, a, b, c}).ToArray()
		if err != nil {
			return err
		}
		if len(vals) != 3 {
			return errors.New("read script: unexpected reply")
		}
		if r.epoch, err = vals[0].ToString(); err != nil {
			return err
		}
		top, err := vals[1].AsInt64()
		if err != nil {
			return err
		}
		r.top = uint64(top)
		entries, err := vals[2].AsXRange()
		if err != nil {
			return err
		}
		r.events = make([]*domain.Event, 0, len(entries))
		for _, en := range entries {
			seq, err := strconv.ParseUint(strings.TrimSuffix(en.ID, "-0"), 10, 64)
			if err != nil {
				return errBadEncoding
			}
			ev, err := decodeEvent(name, seq, []byte(en.FieldValues["b"]))
			if err != nil {
				return err
			}
			r.events = append(r.events, ev)
		}
		if mode == "last" {
			for i, j := 0, len(r.events)-1; i < j; i, j = i+1, j-1 {
				r.events[i], r.events[j] = r.events[j], r.events[i]
			}
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, errBadEncoding) {
			return r, domain.Errorf(domain.KindInternal, "topic %q: %v", string(name), err)
		}
		return r, errorOf(err, name, e.cfg)
	}
	return r, nil
}

// Unsubscribe ends clientID's subscription for by: here, or on the replica that holds it (see
// unsubscribeElsewhere). The topic must exist (KindNotFound otherwise); unsubscribing twice is not
// an error.
func (e *Engine) Unsubscribe(ctx context.Context, name domain.TopicName, clientID string, by domain.Waker) error {
	if st := e.lookup(name); st != nil {
		if t := st.localTopic(); t != nil {
			ok, err := t.Unsubscribe(clientID, by)
			if err == nil && ok {
				e.release(ctx, name, clientID)
				st.poke()
				e.countsChanged()
				return nil
			}
			if err != nil && domain.KindOf(err) != domain.KindNotFound {
				return err
			}
		}
	}
	return e.unsubscribeElsewhere(ctx, name, clientID, by)
}

// Detach drops sub locally if its topic still has it; the topic's worker unsubscribes from the
// channel a while after its last subscriber left. It never touches Redis on the caller's path.
func (e *Engine) Detach(sub *domain.Subscription) {
	if st := e.lookup(sub.Topic); st != nil {
		if t := st.localTopic(); t != nil {
			if t.DetachHeld(sub) {
				e.releaseLater(sub.Topic, sub.ClientID)
			}
			st.poke()
			e.countsChanged()
		}
	}
}

// LocalCounts returns the topics this replica follows and its subscriptions, with no I/O.
func (e *Engine) LocalCounts() (topics, subscriptions int) {
	e.mu.Lock()
	topics = len(e.topics)
	e.mu.Unlock()
	return topics, e.mirrors.Subscriptions()
}

// Ready returns nil when Redis answers a PING within the timeout; the answer is kept for a
// second so that probes do not hammer Redis.
func (e *Engine) Ready(ctx context.Context) error {
	e.ready.Lock()
	defer e.ready.Unlock()
	if time.Since(e.ready.at) < time.Second {
		return e.ready.err
	}
	err := e.call(ctx, "ping", func(ctx context.Context) error {
		return e.client.Do(ctx, e.client.B().Ping().Build()).Error()
	})
	if err != nil {
		err = unavailable(err)
	}
	e.ready.at, e.ready.err = time.Now(), err
	return err
}

// localSubscribers returns this replica's subscriber count per topic.
func (e *Engine) localSubscribers() map[domain.TopicName]int {
	e.mu.Lock()
	sts := make([]*topicState, 0, len(e.topics))
	for _, st := range e.topics {
		sts = append(sts, st)
	}
	e.mu.Unlock()
	out := make(map[domain.TopicName]int, len(sts))
	for _, st := range sts {
		if t := st.localTopic(); t != nil {
			if n := t.Stats().Subscribers; n > 0 {
				out[st.name] = n
			}
		}
	}
	return out
}

// Topics returns every topic of the cluster, sorted by name: the index joined with each topic's
// meta (an index entry whose meta is gone is skipped), messages from the meta's seq, subscribers
// summed over this replica (live) and every other replica with a fresh heartbeat.
func (e *Engine) Topics(ctx context.Context) ([]domain.TopicStats, error) {
	var names []string
	err := e.call(ctx, "stats", func(ctx context.Context) error {
		var err error
		names, err = e.client.Do(ctx, e.client.B().Hkeys().Key(e.keys.topics()).Build()).AsStrSlice()
		return err
	})
	if err != nil {
		return nil, errorOf(err, "", e.cfg)
	}
	sort.Strings(names)
	seqs := make([]rueidis.RedisResult, 0)
	err = e.call(ctx, "stats", func(ctx context.Context) error {
		if len(names) == 0 {
			return nil
		}
		cmds := make(rueidis.Commands, 0, len(names))
		for _, n := range names {
			cmds = append(cmds, e.client.B().Hget().Key(e.keys.meta(domain.TopicName(n))).Field("s").Build())
		}
		seqs = e.client.DoMulti(ctx, cmds...)
		for _, r := range seqs {
			if err := r.Error(); err != nil && !rueidis.IsRedisNil(err) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, errorOf(err, "", e.cfg)
	}
	subs, err := e.clusterSubscribers(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]domain.TopicStats, 0, len(names))
	for i, n := range names {
		s, err := seqs[i].AsUint64()
		if err != nil {
			continue // the meta is gone: an index entry whose topic was deleted under it
		}
		out = append(out, domain.TopicStats{Name: domain.TopicName(n), Messages: s, Subscribers: subs[domain.TopicName(n)]})
	}
	return out, nil
}

// Counts returns the cluster's topics and subscriptions (for /health).
func (e *Engine) Counts(ctx context.Context) (topics, subscriptions int, err error) {
	ts, err := e.Topics(ctx)
	if err != nil {
		return 0, 0, err
	}
	for _, t := range ts {
		subscriptions += t.Subscribers
	}
	return len(ts), subscriptions, nil
}

// clusterSubscribers sums the subscriber counts of every replica with a fresh heartbeat; this
// replica's own are read live rather than from its last heartbeat.
func (e *Engine) clusterSubscribers(ctx context.Context) (map[domain.TopicName]int, error) {
	out := e.localSubscribers()
	var others []string
	err := e.call(ctx, "stats", func(ctx context.Context) error {
		since := time.Now().Add(-3 * e.opts.Heartbeat).UnixMilli()
		ids, err := e.client.Do(ctx, e.client.B().Zrangebyscore().Key(e.keys.replicas()).
			Min(strconv.FormatInt(since, 10)).Max("+inf").Build()).AsStrSlice()
		if err != nil {
			return err
		}
		for _, id := range ids {
			if id != e.opts.Replica {
				others = append(others, id)
			}
		}
		if len(others) == 0 {
			return nil
		}
		cmds := make(rueidis.Commands, 0, len(others))
		for _, id := range others {
			cmds = append(cmds, e.client.B().Hgetall().Key(e.keys.replica(id)).Build())
		}
		for _, r := range e.client.DoMulti(ctx, cmds...) {
			m, err := r.AsIntMap()
			if err != nil && !rueidis.IsRedisNil(err) {
				return err
			}
			for t, n := range m {
				out[domain.TopicName(t)] += int(n)
			}
		}
		return nil
	})
	if err != nil {
		return nil, errorOf(err, "", e.cfg)
	}
	e.replicas.Store(int64(len(others) + 1))
	return out, nil
}

// heartbeatLoop writes this replica's subscriber counts with a TTL and its heartbeat, so the
// cluster's sums forget a replica that crashed within three intervals.
func (e *Engine) heartbeatLoop() {
	t := time.NewTicker(e.opts.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
		case <-e.changed:
			// Counts changed: write them now, but at most one extra heartbeat per 50 ms, so a
			// burst of subscribes costs Redis one write.
			select {
			case <-e.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
		e.heartbeat()
	}
}

// countsChanged asks the heartbeat to write this replica's counts soon.
func (e *Engine) countsChanged() {
	select {
	case e.changed <- struct{}{}:
	default:
	}
}

func (e *Engine) heartbeat() {
	counts := e.localSubscribers()
	key := e.keys.replica(e.opts.Replica)
	cmds := rueidis.Commands{e.client.B().Del().Key(key).Build()}
	if len(counts) > 0 {
		h := e.client.B().Hset().Key(key).FieldValue()
		for t, n := range counts {
			h = h.FieldValue(string(t), strconv.Itoa(n))
		}
		cmds = append(cmds, h.Build())
		cmds = append(cmds, e.client.B().Pexpire().Key(key).Milliseconds(3*e.opts.Heartbeat.Milliseconds()).Build())
	}
	now := time.Now()
	cmds = append(cmds,
		e.client.B().Zadd().Key(e.keys.replicas()).ScoreMember().ScoreMember(float64(now.UnixMilli()), e.opts.Replica).Build(),
		e.client.B().Zremrangebyscore().Key(e.keys.replicas()).Min("-inf").Max(strconv.FormatInt(now.Add(-time.Hour).UnixMilli(), 10)).Build(),
		e.client.B().Zcount().Key(e.keys.replicas()).Min(strconv.FormatInt(now.Add(-3*e.opts.Heartbeat).UnixMilli(), 10)).Max("+inf").Build())
	_ = e.call(context.Background(), "heartbeat", func(ctx context.Context) error {
		res := e.client.DoMulti(ctx, cmds...)
		for _, r := range res {
			if err := r.Error(); err != nil {
				return err
			}
		}
		if n, err := res[len(res)-1].AsInt64(); err == nil {
			e.replicas.Store(n)
			e.obs.Replicas(int(n))
		}
		return nil
	})
}

// ReplicaCount returns how many replicas had a fresh heartbeat at the last look.
func (e *Engine) ReplicaCount() int { return int(e.replicas.Load()) }
