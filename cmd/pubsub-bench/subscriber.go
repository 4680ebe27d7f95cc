package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pubsubd/pubsub/internal/transport/wsframe"
)

// subKind says how a subscriber consumes.
type subKind int

const (
	kindFast    subKind = iota // reads as fast as it can
	kindSlow                   // sleeps slowDelay after each event
	kindStalled                // reads nothing until the drain phase
	kindIdle                   // conns scenario: held open, small buffers
)

func (k subKind) String() string {
	return [...]string{"fast", "slow", "stalled", "idle"}[k]
}

// topicRun is one topic of the run and the publishers feeding it.
type topicRun struct {
	index int
	name  string
	nameB []byte
	// prefix is how this topic's events start, for scanEventFast.
	prefix []byte
	pubs   []*publisher
}

// subscriber owns one connection holding one subscription. Its reading
// goroutine owns res; the drain phase reads only progress, an atomic on
// its own cache line so the per-event store is never contended.
type subscriber struct {
	topic    *topicRun
	kind     subKind
	clientID string
	n        int // position in the run, spreads source addresses
	server   int // index in config.servers of the server it subscribes on
	conn     *websocket.Conn
	raw      *rawConn // instead of conn: a fast subscriber read by a poller
	idx      int      // index in bench.subs
	progress atomic.Int64
	_        [56]byte // keeps the next subscriber's progress off this cache line

	res subResult
}

// subResult is what a subscriber's reader saw.
type subResult struct {
	track   streamTracker
	e2e     histogram // publish send -> event read
	leaks   int64     // events of another topic: isolation broken
	foreign int64     // events of our topic without a payload of this run
	lastAt  int64     // nanotime of the last event
	tally   tally
}

// open dials and subscribes; it returns once the subscription is acked.
// With raw, a fast subscriber uses the bench's own client (see rawConn).
func (s *subscriber) open(ctx context.Context, wsURL string, header http.Header, raw bool) error {
	if raw && s.kind == kindFast {
		return s.openRaw(ctx, wsURL, header)
	}
	opts := dialOptions{readBuf: 32 << 10, writeBuf: 512, header: header}
	switch s.kind {
	case kindStalled:
		// Keep this side's share of the backlog small; the server's send
		// buffer (up to tcp_wmem's max, 4 MiB) still absorbs thousands of
		// events before its queue overflows.
		opts.rcvBuf = 4 << 10
	case kindIdle:
		opts.readBuf = 1 << 10
	}
	opts.localIP = sourceIP(wsURL, s.n)
	conn, _, err := dial(ctx, wsURL, opts)
	if err != nil {
		return err
	}
	s.conn = conn
	s.res.track = newStreamTracker(len(s.topic.pubs))
	if err := conn.WriteMessage(websocket.TextMessage, subscribeFrame(s.topic.name, s.clientID, "sub")); err != nil {
		return err
	}
	return awaitReply(conn, "sub", 10*time.Second, func(f *frame) { s.res.tally.other(f) })
}

func (s *subscriber) openRaw(ctx context.Context, wsURL string, header http.Header) error {
	c, err := dialRaw(ctx, wsURL, sourceIP(wsURL, s.n), header)
	if err != nil {
		return err
	}
	s.raw = c
	s.res.track = newStreamTracker(len(s.topic.pubs))
	if err := c.write(wsframe.OpText, subscribeFrame(s.topic.name, s.clientID, "sub")); err != nil {
		return err
	}
	if err := c.nc.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return err
	}
	var f frame
	for {
		op, p, ok, err := c.next()
		if err != nil {
			return err
		}
		if !ok {
			if _, err := c.fill(); err != nil {
				return err
			}
			continue
		}
		if isCtl, err := c.control(op, p); isCtl {
			if err != nil {
				return err
			}
			continue
		}
		if !scanFrame(p, &f) {
			return fmt.Errorf("unparseable frame %.100q", p)
		}
		if string(f.requestID) != "sub" {
			s.res.tally.other(&f)
			continue
		}
		switch string(f.typ) {
		case "ack":
			// Events after the ack stay buffered for the poller.
			return c.detach()
		case "error":
			return &replyError{code: string(f.errCode), msg: string(f.errMsg)}
		default:
			return fmt.Errorf("unexpected reply %.100q", p)
		}
	}
}

// pump reads what the socket has (one read, it is ready) and handles every
// whole message in it. Only the subscriber's poller calls it.
func (s *subscriber) pump() error {
	if _, err := s.raw.fill(); err != nil {
		return err
	}
	return s.consume(nanotime())
}

// consume handles the whole messages buffered so far, all stamped with the
// time of the read that brought them.
func (s *subscriber) consume(now int64) error {
	var f frame
	for {
		op, p, ok, err := s.raw.next()
		if err != nil || !ok {
			return err
		}
		if isCtl, err := s.raw.control(op, p); isCtl {
			if err != nil {
				return err
			}
			continue
		}
		s.onMessage(p, now, &f)
	}
}

// close closes the subscriber's connection, whichever client it uses.
func (s *subscriber) close() {
	switch {
	case s.raw != nil:
		s.raw.close()
	case s.conn != nil:
		_ = s.conn.Close()
	}
}

// readParams shape a subscriber's reading.
type readParams struct {
	slowDelay time.Duration
	resume    <-chan struct{} // stalled subscribers start reading when it closes
	closing   *atomic.Bool    // set before the bench closes connections itself
}

// read consumes frames until the connection ends.
func (s *subscriber) read(rp readParams) {
	if s.kind == kindStalled {
		<-rp.resume
	}
	r := &s.res
	buf := make([]byte, 0, 1024)
	var f frame
	for {
		var err error
		buf, err = readMessage(s.conn, buf)
		if err != nil {
			r.tally.connEnd(err, rp.closing.Load())
			return
		}
		if s.onMessage(buf, nanotime(), &f) && s.kind == kindSlow && rp.slowDelay > 0 {
			time.Sleep(rp.slowDelay)
		}
	}
}

// onMessage accounts one data message read at now, and reports whether it
// was an event.
func (s *subscriber) onMessage(buf []byte, now int64, f *frame) bool {
	r := &s.res
	switch {
	case scanEventFast(buf, s.topic.prefix, f):
	case !scanFrame(buf, f):
		r.tally.add("unparseable_frame")
		return false
	}
	switch string(f.typ) {
	case "event":
		s.onEvent(f, now)
		return true
	case "error":
		code := string(f.errCode)
		r.tally.add(code)
		if code == "SLOW_CONSUMER" {
			r.track.observeDropNotice(parseDropped(f.errMsg))
		}
	default:
		r.tally.other(f)
	}
	return false
}

func (s *subscriber) onEvent(f *frame, now int64) {
	r := &s.res
	if !bytes.Equal(f.topic, s.topic.nameB) {
		r.leaks++
		return
	}
	r.track.observeSeq(f.seq, f.hasSeq)
	p := &f.bench
	switch {
	case !f.hasBench:
		r.foreign++
	case p.topic != int64(s.topic.index):
		r.leaks++ // right topic name, another topic's payload
	case p.pub < 0 || p.pub >= int64(len(s.topic.pubs)) || p.seq < 1:
		r.foreign++
	default:
		r.track.observe(int(p.pub), p.seq)
		r.e2e.record(now - p.sent)
		r.lastAt = now
	}
	s.progress.Store(r.track.progress())
}

// parseDropped reads N from "dropped N messages"; the first integer of the
// message, or 0 if it has none (the notice still counts as one).
func parseDropped(msg []byte) int64 {
	i := bytes.IndexAny(msg, "0123456789")
	if i < 0 {
		return 0
	}
	j := i
	for j < len(msg) && msg[j] >= '0' && msg[j] <= '9' {
		j++
	}
	n, _ := parseUint(msg[i:j])
	return n
}

// tally counts what a connection saw besides its data: error frames by
// code, info frames by msg, and how the connection ended. Owned by the
// connection's reading goroutine.
type tally struct {
	errs      map[string]int64
	infos     map[string]int64
	closeCode int // close code the server sent, 0 if none
}

func (t *tally) add(code string) {
	if t.errs == nil {
		t.errs = map[string]int64{}
	}
	if code == "" {
		code = "error_without_code"
	}
	t.errs[code]++
}

func (t *tally) info(msg []byte) {
	if t.infos == nil {
		t.infos = map[string]int64{}
	}
	t.infos[string(msg)]++
}

// other counts a frame that is neither an event nor an error.
func (t *tally) other(f *frame) {
	switch string(f.typ) {
	case "info":
		t.info(f.msg)
	case "error":
		t.add(string(f.errCode))
	case "pong":
	default:
		t.add("unexpected_frame")
	}
}

// connEnd records why reading stopped: a close frame from the server is
// kept by code; any other failure is an error unless the bench itself was
// closing the connection.
func (t *tally) connEnd(err error, closing bool) {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		t.closeCode = ce.Code
		return
	}
	if !closing {
		t.add("conn_" + errorKey(err))
	}
}

// merge adds o into t (closeCode is per connection and is not merged).
func (t *tally) merge(o *tally) {
	for k, v := range o.errs {
		if t.errs == nil {
			t.errs = map[string]int64{}
		}
		t.errs[k] += v
	}
	for k, v := range o.infos {
		if t.infos == nil {
			t.infos = map[string]int64{}
		}
		t.infos[k] += v
	}
}
