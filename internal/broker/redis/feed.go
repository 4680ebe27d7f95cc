package redis

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// feed is the replica's one dedicated pub/sub connection: every topic channel it follows and its
// own node channel. It reports the connection's loss the moment it happens (SetPubSubHooks), then
// redials with backoff, resubscribes in batches and asks every topic to check its top (the events
// published while it was away are read back from the history). A connection that looks healthy
// but receives nothing is caught by a probe: when idle, the replica publishes to its own channel
// and expects the echo within the timeout.
//
// mu guards conn and the subscription maps; the run goroutine owns the connection's lifecycle.
// The pub/sub callbacks run on the client's reading goroutine and never block.
type feed struct {
	e *Engine

	// sendMu orders SUBSCRIBE and UNSUBSCRIBE on the connection as add and remove decided them;
	// it is taken before mu, and the callbacks never take it (they take mu only).
	sendMu    sync.Mutex
	mu        sync.Mutex
	conn      rueidis.DedicatedClient
	refs      map[string]int           // channel -> local states that want it
	confirmed map[string]chan struct{} // channel -> closed once Redis confirmed it on conn
	isDone    map[string]bool          // whether confirmed[channel] is closed

	lastRecv atomic.Int64 // unix ns of the last message or confirmation received
	probe    struct {
		sync.Mutex
		nonce string
		echo  chan struct{}
	}
	kill chan struct{} // replace the connection (the probe got no echo)
	done chan struct{}
}

func newFeed(e *Engine) *feed {
	return &feed{e: e, refs: make(map[string]int), confirmed: make(map[string]chan struct{}),
		isDone: make(map[string]bool), kill: make(chan struct{}, 1), done: make(chan struct{})}
}

// nodeChannel is this replica's own channel.
func (f *feed) nodeChannel() string { return f.e.keys.node(f.e.opts.Replica) }

// start makes the first connection (so New fails when Redis cannot be reached) and starts the
// run and probe goroutines.
func (f *feed) start(ctx context.Context) error {
	conn, cancel := f.e.client.Dedicate()
	lost := conn.SetPubSubHooks(f.hooks())
	f.add(f.nodeChannel()) // before conn is set: subscribed just below, and waited for
	f.mu.Lock()
	f.conn = conn
	f.mu.Unlock()
	wctx, wcancel := context.WithTimeout(ctx, f.e.opts.Timeout)
	defer wcancel()
	if err := conn.Do(wctx, conn.B().Subscribe().Channel(f.nodeChannel()).Build()).Error(); err != nil {
		cancel()
		return unavailable(err)
	}
	if err := f.wait(wctx, f.nodeChannel()); err != nil {
		cancel()
		return unavailable(err)
	}
	f.e.wg.Add(2)
	go f.run(cancel, lost)
	go func() {
		defer f.e.wg.Done()
		f.e.survive("probe", f.prober)
	}()
	return nil
}

func (f *feed) close() { close(f.done) }

func (f *feed) hooks() rueidis.PubSubHooks {
	return rueidis.PubSubHooks{
		OnMessage: func(m rueidis.PubSubMessage) {
			f.lastRecv.Store(time.Now().UnixNano())
			f.e.dispatch(m.Channel, m.Message)
		},
		OnSubscription: func(s rueidis.PubSubSubscription) {
			f.lastRecv.Store(time.Now().UnixNano())
			if s.Kind != "subscribe" {
				return
			}
			f.mu.Lock()
			if c, ok := f.confirmed[s.Channel]; ok && !f.isDone[s.Channel] {
				close(c)
				f.isDone[s.Channel] = true
			}
			f.mu.Unlock()
		},
	}
}

// add asks for channel: the first state that wants it subscribes.
func (f *feed) add(channel string) {
	f.sendMu.Lock()
	defer f.sendMu.Unlock()
	f.mu.Lock()
	f.refs[channel]++
	if f.refs[channel] > 1 {
		f.mu.Unlock()
		return
	}
	f.confirmed[channel] = make(chan struct{})
	f.isDone[channel] = false
	conn := f.conn
	f.mu.Unlock()
	if conn != nil {
		f.send(conn, "SUBSCRIBE", channel)
	}
}

// remove gives channel up: the last state that wanted it unsubscribes.
func (f *feed) remove(channel string) {
	f.sendMu.Lock()
	defer f.sendMu.Unlock()
	f.mu.Lock()
	if f.refs[channel]--; f.refs[channel] > 0 {
		f.mu.Unlock()
		return
	}
	delete(f.refs, channel)
	delete(f.confirmed, channel)
	delete(f.isDone, channel)
	conn := f.conn
	f.mu.Unlock()
	if conn != nil {
		f.send(conn, "UNSUBSCRIBE", channel)
	}
}

// send writes a SUBSCRIBE or UNSUBSCRIBE without waiting: Redis confirms through OnSubscription,
// and a failure shows as the connection's loss. It does not wait for the
// reply. Called with sendMu held.
func (f *feed) send(conn rueidis.DedicatedClient, verb string, channels ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), f.e.opts.Timeout)
	defer cancel()
	var cmd rueidis.Completed
	if verb == "SUBSCRIBE" {
		cmd = conn.B().Subscribe().Channel(channels...).Build()
	} else {
		cmd = conn.B().Unsubscribe().Channel(channels...).Build()
	}
	_ = conn.Do(ctx, cmd).Error()
}

// wait returns once Redis has confirmed the subscription of channel on the current connection.
func (f *feed) wait(ctx context.Context, channel string) error {
	f.mu.Lock()
	c, ok := f.confirmed[channel]
	f.mu.Unlock()
	if !ok {
		return errors.New("not subscribed to " + channel)
	}
	select {
	case <-c:
		return nil
	case <-ctx.Done():
		return errors.New("redis did not confirm the subscription in time")
	}
}

// run keeps a connection up until the engine stops.
func (f *feed) run(cancel func(), lost <-chan error) {
	defer f.e.wg.Done()
	backoff := 50 * time.Millisecond
	for {
		up := time.Now()
		var err error
		select {
		case err = <-lost:
		case <-f.kill:
			err = errors.New("the idle probe got no echo")
		case <-f.done:
			cancel()
			return
		}
		f.mu.Lock()
		f.conn = nil
		// A channel confirmed on the old connection is not on the next one yet; one still waited
		// for keeps its channel, which the next connection's confirmation closes.
		for ch, done := range f.isDone {
			if done {
				f.confirmed[ch] = make(chan struct{})
				f.isDone[ch] = false
			}
		}
		f.mu.Unlock()
		cancel()
		f.e.obs.Up(false)
		f.e.log.Warn("backplane pub/sub connection lost", "error", err)
		if time.Since(up) > 10*time.Second {
			backoff = 50 * time.Millisecond
		}
		for {
			select {
			case <-f.done:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
			var ok bool
			if cancel, lost, ok = f.redial(); ok {
				break
			}
		}
	}
}

// redial makes a new connection and resubscribes every channel in batches, then asks every topic
// to check its top.
func (f *feed) redial() (func(), <-chan error, bool) {
	start := time.Now()
	conn, cancel := f.e.client.Dedicate()
	lost := conn.SetPubSubHooks(f.hooks())
	f.sendMu.Lock()
	defer f.sendMu.Unlock()
	f.mu.Lock()
	channels := make([]string, 0, len(f.refs))
	for ch := range f.refs {
		channels = append(channels, ch)
	}
	f.conn = conn
	f.mu.Unlock()
	const batch = 500
	for i := 0; i < len(channels); i += batch {
		ctx, c := context.WithTimeout(context.Background(), f.e.opts.Timeout)
		err := conn.Do(ctx, conn.B().Subscribe().Channel(channels[i:min(i+batch, len(channels))]...).Build()).Error()
		c()
		if err != nil {
			f.mu.Lock()
			f.conn = nil
			f.mu.Unlock()
			cancel()
			return nil, nil, false
		}
	}
	ctx, c := context.WithTimeout(context.Background(), f.e.opts.Timeout)
	err := f.wait(ctx, f.nodeChannel())
	c()
	if err != nil {
		f.mu.Lock()
		f.conn = nil
		f.mu.Unlock()
		cancel()
		return nil, nil, false
	}
	f.lastRecv.Store(time.Now().UnixNano())
	f.e.obs.Reconnected()
	f.e.obs.Resubscribed(time.Since(start))
	f.e.obs.Up(true)
	f.e.log.Info("backplane pub/sub connection restored", "channels", len(channels), "took", time.Since(start))
	f.e.resyncAll()
	return cancel, lost, true
}

// prober checks an idle connection: no message for ProbeIdle, then a probe on the node channel
// whose echo must come within the timeout, or the connection is replaced.
func (f *feed) prober() {
	t := time.NewTicker(max(f.e.opts.ProbeIdle/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-f.done:
			return
		case <-t.C:
		}
		if time.Since(time.Unix(0, f.lastRecv.Load())) < f.e.opts.ProbeIdle {
			continue
		}
		f.mu.Lock()
		up := f.conn != nil
		f.mu.Unlock()
		if !up {
			continue
		}
		if !f.probeOnce() {
			f.e.obs.ProbeRestart()
			select {
			case f.kill <- struct{}{}:
			default:
			}
		}
	}
}

// probeOnce publishes a probe to the node channel and reports whether its echo came back in time.
// A failed publish (Redis down) is not the pub/sub connection's fault: it reports true then.
func (f *feed) probeOnce() bool {
	nonce := "p" + newEpoch()
	echo := make(chan struct{})
	f.probe.Lock()
	f.probe.nonce, f.probe.echo = nonce, echo
	f.probe.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), f.e.opts.Timeout)
	defer cancel()
	err := f.e.call(ctx, "probe", func(ctx context.Context) error {
		return f.e.client.Do(ctx, f.e.client.B().Publish().Channel(f.nodeChannel()).Message(nonce).Build()).Error()
	})
	if err != nil {
		return true
	}
	select {
	case <-echo:
		return true
	case <-ctx.Done():
		return false
	case <-f.done:
		return true
	}
}

// onProbe closes the echo channel of the probe nonce, if it is the one waited for.
func (f *feed) onProbe(msg string) {
	f.probe.Lock()
	defer f.probe.Unlock()
	if msg == f.probe.nonce && f.probe.echo != nil {
		close(f.probe.echo)
		f.probe.echo = nil
	}
}

// dispatch routes one pub/sub message: a topic's goes to its worker, the node channel's to the
// probe or the takeover protocol. It never blocks.
func (e *Engine) dispatch(channel, msg string) {
	if name, ok := e.keys.topicOf(channel); ok {
		if st := e.lookup(name); st != nil {
			st.offer([]byte(msg))
		}
		return
	}
	if channel != e.feed.nodeChannel() || msg == "" {
		return
	}
	switch {
	case strings.HasPrefix(msg, "p"):
		e.feed.onProbe(msg)
	default:
		e.onNodeMessage(msg)
	}
}

// resyncAll asks every followed topic to check its top: after a new connection.
func (e *Engine) resyncAll() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, st := range e.topics {
		st.resync.Store(true)
		st.poke()
	}
}
