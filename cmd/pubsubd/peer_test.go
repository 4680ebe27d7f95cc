//go:build linux

package main_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
)

// The WebSocket side of the cluster tests: a peer is one connection; a subscriber and a
// publisher are clients that keep one peer at a time and reconnect when it is lost (the
// subscriber resuming with since_seq and epoch); a workload runs them against a cluster and
// checks the invariant at the end. No method here calls t.Fatal: they run on their own
// goroutines, record what went wrong, and the test's goroutine reports it.

// cframe is a server frame, as the cluster tests read it.
type cframe struct {
	Type      string `json:"type"`
	RequestID string `json:"request_id"`
	Topic     string `json:"topic"`
	Status    string `json:"status"`
	Msg       string `json:"msg"`
	Seq       uint64 `json:"seq"`
	Epoch     string `json:"epoch"`
	Recovered *bool  `json:"recovered"`
	FromSeq   uint64 `json:"from_seq"`
	ToSeq     uint64 `json:"to_seq"`
	Message   *struct {
		ID string `json:"id"`
	} `json:"message"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (f cframe) String() string {
	b, _ := json.Marshal(f)
	return string(b)
}

// id is an event's message id ("" for any other frame).
func (f cframe) id() string {
	if f.Message == nil {
		return ""
	}
	return f.Message.ID
}

// broadcast wakes every waiter at each change: wait returns a channel closed at the next one.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

func (b *broadcast) notify() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
}

// until waits until cond holds, re-checking it at each notify; it fails when ctx ends first.
func (b *broadcast) until(ctx context.Context, what string, cond func() bool) error {
	for {
		ch := b.wait() // before the check: a change after it closes ch
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		}
	}
}

// peer is one WebSocket connection. A goroutine reads it the whole time (as a real client does:
// the server's pings are answered only while a read is in progress), keeps every frame in order
// and hands each reply to the request waiting for it.
type peer struct {
	name string
	conn *websocket.Conn
	wmu  sync.Mutex // one writer at a time
	ids  atomic.Uint64

	mu      sync.Mutex
	frames  []cframe
	tops    map[string]uint64 // per topic, the last seq received or announced lost
	pending map[string]chan cframe
	err     error // why reading stopped; set before closed is closed

	changed broadcast
	also    *broadcast // notified with changed when not nil (the subscriber owning the peer)
	closed  chan struct{}
}

// dial opens a peer on url.
func dial(ctx context.Context, name, url string) (*peer, error) {
	return dialNotify(ctx, name, url, nil)
}

// dialNotify opens a peer on url whose every change (a frame, the end) also notifies also.
func dialNotify(ctx context.Context, name, url string, also *broadcast) (*peer, error) {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, _, err := websocket.DefaultDialer.DialContext(dctx, url, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: dial %s: %w", name, url, err)
	}
	p := &peer{name: name, conn: conn, tops: make(map[string]uint64), pending: make(map[string]chan cframe),
		also: also, closed: make(chan struct{})}
	go p.read()
	return p, nil
}

func (p *peer) read() {
	var err error
	defer func() {
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.closed)
		p.notify()
	}()
	for {
		var data []byte
		if _, data, err = p.conn.ReadMessage(); err != nil {
			return
		}
		var f cframe
		if err = json.Unmarshal(data, &f); err != nil {
			err = fmt.Errorf("frame is not JSON: %w: %s", err, data)
			return
		}
		p.mu.Lock()
		p.frames = append(p.frames, f)
		switch {
		case f.Type == "event":
			p.tops[f.Topic] = max(p.tops[f.Topic], f.Seq)
		case f.Type == "info" && f.Msg == "gap":
			p.tops[f.Topic] = max(p.tops[f.Topic], f.ToSeq)
		}
		if ch, ok := p.pending[f.RequestID]; ok && f.RequestID != "" && (f.Type == "ack" || f.Type == "error" || f.Type == "pong") {
			ch <- f
			delete(p.pending, f.RequestID)
		}
		p.mu.Unlock()
		p.notify()
	}
}

func (p *peer) notify() {
	p.changed.notify()
	if p.also != nil {
		p.also.notify()
	}
}

// close closes the connection and waits for the reader to stop.
func (p *peer) close() {
	_ = p.conn.Close()
	<-p.closed
}

// isClosed reports whether the connection has ended.
func (p *peer) isClosed() bool {
	select {
	case <-p.closed:
		return true
	default:
		return false
	}
}

func (p *peer) closeErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// errClosed is a request's failure when the connection ended before its reply.
var errClosed = errors.New("connection closed")

// request sends body with a new request_id and returns the reply (ack, error or pong).
func (p *peer) request(ctx context.Context, body map[string]any) (cframe, error) {
	id := fmt.Sprintf("%s-%d", p.name, p.ids.Add(1))
	body["request_id"] = id
	ch := make(chan cframe, 1)
	p.mu.Lock()
	p.pending[id] = ch
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.pending, id)
		p.mu.Unlock()
	}()
	p.wmu.Lock()
	_ = p.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	err := p.conn.WriteJSON(body)
	p.wmu.Unlock()
	if err != nil { // a connection that cannot be written to is lost: the reply will never come
		return cframe{}, fmt.Errorf("%s: %w: write: %v", p.name, errClosed, err)
	}
	select {
	case f := <-ch:
		return f, nil
	case <-p.closed:
		select {
		case f := <-ch: // the reply came just before the end
			return f, nil
		default:
		}
		return cframe{}, fmt.Errorf("%s: %w (%v)", p.name, errClosed, p.closeErr())
	case <-ctx.Done():
		return cframe{}, fmt.Errorf("%s: no reply to %v: %w", p.name, body, ctx.Err())
	}
}

// subscribe sends a subscribe (extra: last_n, since_seq, epoch) and returns its ack, or an
// error for an error reply.
func (p *peer) subscribe(ctx context.Context, topic, clientID string, extra map[string]any) (cframe, error) {
	body := map[string]any{"type": "subscribe", "topic": topic, "client_id": clientID}
	for k, v := range extra {
		body[k] = v
	}
	f, err := p.request(ctx, body)
	if err != nil {
		return f, err
	}
	if f.Type != "ack" || f.Status != "ok" {
		return f, fmt.Errorf("%s: subscribe %s: %s", p.name, topic, f)
	}
	return f, nil
}

// publish publishes a message with a new id to topic and returns the id and the reply.
func (p *peer) publish(ctx context.Context, topic string, payload any) (string, cframe, error) {
	id := uuid.NewString()
	f, err := p.request(ctx, map[string]any{"type": "publish", "topic": topic,
		"message": map[string]any{"id": id, "payload": payload}})
	return id, f, err
}

// topicFrames returns the frames of topic received so far: its subscribe acks, events and notices.
func (p *peer) topicFrames(topic string) []cframe {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []cframe
	for _, f := range p.frames {
		if f.Topic == topic && f.Type != "pong" {
			out = append(out, f)
		}
	}
	return out
}

// top returns the last seq of topic received or announced lost on this connection.
func (p *peer) top(topic string) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tops[topic]
}

// waitFrame waits for a frame of topic that match accepts and returns it.
func (p *peer) waitFrame(ctx context.Context, what, topic string, match func(cframe) bool) (cframe, error) {
	var got cframe
	err := p.changed.until(ctx, p.name+": "+what, func() bool {
		for _, f := range p.topicFrames(topic) {
			if match(f) {
				got = f
				return true
			}
		}
		return p.isClosed()
	})
	if err == nil && !match(got) {
		err = fmt.Errorf("%s: waiting for %s: connection closed: %v", p.name, what, p.closeErr())
	}
	return got, err
}

// retryEvery is how often a client tries again to reach a replica that is down, or to subscribe
// on one whose Redis is not back: polling a process the test does not control.
const retryEvery = 100 * time.Millisecond

// subscriber is a client that subscribes one connection to every topic of the workload and,
// when the connection is lost, reconnects to the same replica and resumes each topic with
// since_seq (the last seq it received or was told it lost) and the epoch it knows, as the
// README tells clients to. Its frames over all its connections, in order, are what the checker
// reads.
type subscriber struct {
	name   string
	url    string
	topics []string

	mu         sync.Mutex
	conns      []*peer
	epochs     map[string]string
	reconnects int
	err        error // a failure the test must report

	changed broadcast // any of its connections received a frame, or it reconnected
	stop    chan struct{}
	done    chan struct{}
}

// startSubscriber connects and subscribes to every topic, then keeps the subscriptions (in a
// goroutine) until stopped.
func startSubscriber(ctx context.Context, name, url string, topics []string) (*subscriber, error) {
	s := &subscriber{name: name, url: url, topics: topics, epochs: make(map[string]string),
		stop: make(chan struct{}), done: make(chan struct{})}
	p, err := s.connect(ctx, false)
	if err != nil {
		return nil, err
	}
	go s.run(ctx, p)
	return s, nil
}

// connect opens a connection and subscribes (or resumes) every topic on it.
func (s *subscriber) connect(ctx context.Context, resume bool) (*peer, error) {
	p, err := dialNotify(ctx, s.name, s.url, &s.changed)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.conns = append(s.conns, p)
	s.mu.Unlock()
	for _, topic := range s.topics {
		var extra map[string]any
		if resume {
			s.mu.Lock()
			extra = map[string]any{"since_seq": s.lastLocked(topic), "epoch": s.epochs[topic]}
			s.mu.Unlock()
		}
		ack, err := p.subscribe(ctx, topic, s.name, extra)
		if err != nil {
			p.close()
			return nil, err
		}
		s.mu.Lock()
		s.epochs[topic] = ack.Epoch
		s.mu.Unlock()
	}
	return p, nil
}

// lastLocked is the last seq of topic received or announced lost over every connection.
func (s *subscriber) lastLocked(topic string) uint64 {
	var last uint64
	for _, p := range s.conns {
		last = max(last, p.top(topic))
	}
	return last
}

// last is lastLocked, locking.
func (s *subscriber) last(topic string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastLocked(topic)
}

func (s *subscriber) run(ctx context.Context, p *peer) {
	defer close(s.done)
	for {
		select {
		case <-s.stop:
			p.close()
			return
		case <-p.closed:
		}
		s.mu.Lock()
		s.reconnects++
		s.mu.Unlock()
		s.changed.notify()
		for {
			var err error
			if p, err = s.connect(ctx, true); err == nil {
				break
			}
			select {
			case <-s.stop:
				return
			case <-ctx.Done():
				s.fail(fmt.Errorf("%s: could not resume before the deadline: %w", s.name, err))
				return
			case <-time.After(retryEvery):
			}
		}
	}
}

func (s *subscriber) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

// close stops the subscriber and closes its connection.
func (s *subscriber) close() {
	close(s.stop)
	<-s.done
}

// stream returns topic's frames over every connection, in the order received.
func (s *subscriber) stream(topic string) []cframe {
	s.mu.Lock()
	conns := slices.Clone(s.conns)
	s.mu.Unlock()
	var out []cframe
	for _, p := range conns {
		out = append(out, p.topicFrames(topic)...)
	}
	return out
}

// waitReached waits until the subscriber received (or was told it lost) every seq of each topic
// up to tops[topic].
func (s *subscriber) waitReached(ctx context.Context, tops map[string]uint64) error {
	return s.changed.until(ctx, s.name+" reaching the topics' last seqs", func() bool {
		for topic, top := range tops {
			if s.last(topic) < top {
				return false
			}
		}
		return true
	})
}

// publisher is a client that publishes to the workload's topics in turn, one message at a time
// (a window of one), every pace, and counts the messages acked. A publish that is refused is
// not retried (that is the client's business; only acked ones count); one whose connection is
// lost is not known to be stored and is not counted either. It reconnects when its connection
// is lost.
type publisher struct {
	name   string
	url    string
	topics []string
	pace   time.Duration
	limit  int // stop after this many acked publishes; 0: until stopped
	w      *workload

	mu         sync.Mutex
	refused    map[string]int // error replies by code
	lost       int            // publishes whose connection ended before a reply
	reconnects int
	err        error // a failure the test must report

	stop chan struct{}
	done chan struct{}
}

// publishTimeout bounds the wait for a publish's reply: far beyond the Redis timeout, so a
// missing reply means a publish neither acked nor refused, which the test reports.
const publishTimeout = 15 * time.Second

func (w *workload) startPublisher(ctx context.Context, name, url string, pace time.Duration, limit int) (*publisher, error) {
	p := &publisher{name: name, url: url, topics: w.topics, pace: pace, limit: limit, w: w,
		refused: make(map[string]int), stop: make(chan struct{}), done: make(chan struct{})}
	conn, err := dial(ctx, name, url)
	if err != nil {
		return nil, err
	}
	go p.run(ctx, conn)
	return p, nil
}

func (p *publisher) run(ctx context.Context, conn *peer) {
	defer close(p.done)
	defer func() {
		if conn != nil {
			conn.close()
		}
	}()
	tick := time.NewTicker(max(p.pace, time.Millisecond))
	defer tick.Stop()
	acked := 0
	for i := 0; p.limit == 0 || acked < p.limit; i++ {
		if p.pace > 0 {
			select {
			case <-tick.C:
			case <-p.stop:
				return
			}
		} else {
			select {
			case <-p.stop:
				return
			default:
			}
		}
		topic := p.topics[i%len(p.topics)]
		rctx, cancel := context.WithTimeout(ctx, publishTimeout)
		id, reply, err := conn.publish(rctx, topic, map[string]any{"publisher": p.name, "n": i})
		cancel()
		switch {
		case err == nil && reply.Type == "ack" && reply.Status == "ok":
			acked++
			p.w.acked(topic, id)
		case err == nil:
			p.mu.Lock()
			code := reply.Type
			if reply.Error != nil {
				code = reply.Error.Code
			}
			p.refused[code]++
			p.mu.Unlock()
		case errors.Is(err, errClosed):
			p.mu.Lock()
			p.lost++
			p.reconnects++
			p.mu.Unlock()
			conn.close()
			if conn, err = dialUntilStopped(ctx, p.name, p.url, p.stop); err != nil {
				if !errors.Is(err, errStopped) {
					p.setErr(err)
				}
				return
			}
		default:
			p.setErr(fmt.Errorf("%s: a publish neither acked nor refused: %w", p.name, err))
			return
		}
	}
}

var errStopped = errors.New("stopped")

// dialUntilStopped dials url until it answers, stop is closed or ctx ends.
func dialUntilStopped(ctx context.Context, name, url string, stop <-chan struct{}) (*peer, error) {
	for {
		conn, err := dial(ctx, name, url)
		if err == nil {
			return conn, nil
		}
		select {
		case <-stop:
			return nil, errStopped
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: could not reconnect before the deadline: %w", name, err)
		case <-time.After(retryEvery):
		}
	}
}

func (p *publisher) setErr(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = err
	}
}

// halt stops the publisher and waits for it.
func (p *publisher) halt() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}

func (p *publisher) summary() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Sprintf("%s: refused %v, lost with the connection %d, reconnects %d", p.name, p.refused, p.lost, p.reconnects)
}

// workload is the clients of one test: subscribers and publishers over a cluster's replicas, and
// the record of every acked publish.
type workload struct {
	topics []string

	mu     sync.Mutex
	ackedM map[string]string // message id -> topic, for every acked publish
	n      int
	change broadcast

	subs  []*subscriber
	pubs  []*publisher
	final map[string]history // each topic's history once the publishers stopped (chaosRun sets it)
}

func newWorkload(topics []string) *workload {
	return &workload{topics: topics, ackedM: make(map[string]string)}
}

func (w *workload) acked(topic, id string) {
	w.mu.Lock()
	w.ackedM[id] = topic
	w.n++
	w.mu.Unlock()
	w.change.notify()
}

// ackedCount returns how many publishes were acked so far.
func (w *workload) ackedCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

// waitAcked waits until at least n publishes have been acked in all.
func (w *workload) waitAcked(ctx context.Context, n int) error {
	return w.change.until(ctx, fmt.Sprintf("%d acked publishes", n), func() bool { return w.ackedCount() >= n })
}

// ackedPer returns how many publishes to each topic were acked so far.
func (w *workload) ackedPer() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]int, len(w.topics))
	for _, t := range w.ackedM {
		out[t]++
	}
	return out
}

// waitAckedEach waits until at least n more publishes to every topic than in since have been acked.
func (w *workload) waitAckedEach(ctx context.Context, since map[string]int, n int) error {
	return w.change.until(ctx, fmt.Sprintf("%d more acked publishes to every topic", n), func() bool {
		now := w.ackedPer()
		for _, t := range w.topics {
			if now[t] < since[t]+n {
				return false
			}
		}
		return true
	})
}

// ackedOf returns the acked message ids of topic.
func (w *workload) ackedOf(topic string) map[string]bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]bool)
	for id, t := range w.ackedM {
		if t == topic {
			out[id] = true
		}
	}
	return out
}

// history is what a fresh subscriber on a replica reads of a topic's history with last_n: its
// epoch and top, and the seq of each message it holds.
type history struct {
	epoch string
	top   uint64
	seqOf map[string]uint64
}

// readHistory subscribes a new connection on url to topic with last_n = the whole history and
// collects the replay (the events up to the ack's seq).
func readHistory(ctx context.Context, url, topic string) (history, error) {
	p, err := dial(ctx, "history-"+topic, url)
	if err != nil {
		return history{}, err
	}
	defer p.close()
	ack, err := p.subscribe(ctx, topic, "history-reader-"+uuid.NewString()[:8], map[string]any{"last_n": clusterHistory})
	if err != nil {
		return history{}, err
	}
	h := history{epoch: ack.Epoch, top: ack.Seq, seqOf: make(map[string]uint64)}
	if ack.Seq > 0 {
		if _, err := p.waitFrame(ctx, fmt.Sprintf("the replay of %s up to seq %d", topic, ack.Seq), topic, func(f cframe) bool {
			return f.Type == "event" && f.Seq >= ack.Seq
		}); err != nil {
			return history{}, err
		}
	}
	for _, f := range p.topicFrames(topic) {
		if f.Type == "event" && f.Seq <= ack.Seq {
			h.seqOf[f.id()] = f.Seq
		}
	}
	return h, nil
}

// verdict is the checker's finding on one subscriber's stream of one topic.
type verdict struct {
	received        int      // events
	gaps            int      // gap notices
	announcedLost   int      // acked messages not received, inside an announced gap
	discontinuities int      // discontinuity notices
	drops           int      // SLOW_CONSUMER notices
	resumes         int      // subscribe acks with recovered:true
	violations      []string // what breaks the invariant
}

func (v *verdict) violate(format string, args ...any) {
	if len(v.violations) < 20 {
		v.violations = append(v.violations, fmt.Sprintf(format, args...))
	}
}

// checkStream is the invariant checker. frames is one subscriber's stream of one topic (from
// its subscribe acks, events and notices over all its connections, in order), acked the ids of every
// acked publish to the topic (all published after the subscriber subscribed), seqOf the seq of
// every message known (received by any subscriber, or in the final history).
//
// Order: each event's seq is the last seq + 1, or comes after an announced gap that starts right
// after the last seq (from_seq = last + 1); after a discontinuity (the stream ended, the topic
// goes on in another epoch) the next seq starts a new stream; after a SLOW_CONSUMER notice (the
// queue policy dropped events, counted) it may jump ahead. Nothing twice: no message id, and no
// seq within an epoch. Coverage: every acked message is received, or its seq lies inside an
// announced gap, or a discontinuity or SLOW_CONSUMER was announced; an acked message that no
// subscriber received and that is not in the history was lost by the store, which only a
// discontinuity announces. A resume must be recovered (the history holds everything the tests
// publish), and nothing may follow the end of a subscription.
func checkStream(frames []cframe, acked map[string]bool, seqOf map[string]uint64) verdict {
	var v verdict
	var (
		subscribed bool
		last       uint64
		dropped    bool // after SLOW_CONSUMER: the next event's seq may jump ahead
		newEpoch   bool // after a discontinuity: the next event's seq starts a new stream
		ended      string
		gaps       [][2]uint64
		seen       = make(map[string]bool)
		seenSeq    = make(map[uint64]bool) // in the current epoch
	)
	for _, f := range frames {
		if ended != "" {
			v.violate("%s after %s", f, ended)
			continue
		}
		switch {
		case f.Type == "ack" && f.Epoch != "": // a subscribe's ack
			switch {
			case f.Recovered != nil && !*f.Recovered:
				v.violate("a resume was not recovered: %s", f)
			case f.Recovered != nil:
				v.resumes++
			case subscribed:
				v.violate("a second plain subscribe on the same stream: %s", f)
			default:
				last = f.Seq
			}
			subscribed = true
		case f.Type == "ack": // an unsubscribe's
		case !subscribed:
			v.violate("%s before the subscribe's ack", f)
		case f.Type == "event":
			v.received++
			switch {
			case seen[f.id()]:
				v.violate("message %s (seq %d) delivered twice", f.id(), f.Seq)
			case seenSeq[f.Seq]:
				v.violate("seq %d delivered twice", f.Seq)
			case f.Seq == last+1, newEpoch, dropped && f.Seq > last:
			default:
				v.violate("seq %d after %d with no gap announced", f.Seq, last)
			}
			seen[f.id()], seenSeq[f.Seq] = true, true
			last, dropped, newEpoch = f.Seq, false, false
		case f.Type == "info" && f.Msg == "gap":
			v.gaps++
			if !newEpoch && !dropped && f.FromSeq != last+1 || f.ToSeq < f.FromSeq {
				v.violate("gap %d..%d announced after seq %d", f.FromSeq, f.ToSeq, last)
			}
			gaps = append(gaps, [2]uint64{f.FromSeq, f.ToSeq})
			last, dropped, newEpoch = f.ToSeq, false, false
		case f.Type == "info" && f.Msg == "discontinuity":
			// The stream ended: the topic goes on in another epoch, whose seqs may repeat the old
			// ones' (a Redis that lost writes gives them again).
			v.discontinuities++
			newEpoch, seenSeq = true, make(map[uint64]bool)
		case f.Type == "error" && f.Error != nil && f.Error.Code == "SLOW_CONSUMER":
			v.drops++
			dropped = true
		case f.Type == "info" && (f.Msg == "topic_deleted" || f.Msg == "subscription_replaced" || f.Msg == "unsubscribed"):
			ended = f.Msg
		default:
			v.violate("unexpected frame %s", f)
		}
	}
	ids := make([]string, 0, len(acked))
	for id := range acked {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seq, known := seqOf[id]
		switch {
		case !known && v.discontinuities > 0:
			v.announcedLost++ // lost with the stream that ended, which the discontinuity announced
		case !known:
			v.violate("acked message %s is lost: no subscriber received it and the history does not hold it", id)
		case slices.ContainsFunc(gaps, func(g [2]uint64) bool { return g[0] <= seq && seq <= g[1] }):
			v.announcedLost++
		case v.discontinuities > 0 || v.drops > 0:
			v.announcedLost++
		default:
			v.violate("acked message %s (seq %d) not received and no gap announced", id, seq)
		}
	}
	return v
}

func (v verdict) String() string {
	s := fmt.Sprintf("%d events, %d resumes, %d gaps (%d acked messages inside), %d discontinuities, %d SLOW_CONSUMER",
		v.received, v.resumes, v.gaps, v.announcedLost, v.discontinuities, v.drops)
	if len(v.violations) > 0 {
		s += "; violations:\n\t" + strings.Join(v.violations, "\n\t")
	}
	return s
}
