package ws

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/service"
	"github.com/pubsubd/pubsub/internal/transport/wire"
	"github.com/pubsubd/pubsub/internal/transport/wsframe"
	"github.com/pubsubd/pubsub/telemetry"
)

// Batching limits: a writer drains at most maxDrain events per subscription per pass (one write),
// so one busy topic cannot starve the connection's others and a pass's buffer stays bounded.
// batchBytes is the capacity pooled batch buffers start with: most passes fit in it.
const (
	maxDrain   = 256
	batchBytes = 64 << 10
)

// reply is a control frame waiting for the writer. release, when set, is the subscription whose
// replay and events may flow once this reply (its ack) is on the wire.
type reply struct {
	typ     string
	data    []byte
	release *domain.Subscription
}

// episode tracks a slow-consumer episode of one subscription, so it is logged once, with its toll.
type episode struct {
	lost  uint64
	since time.Time
}

// conn is one WebSocket connection. The reader goroutine decodes frames and calls the service.
// Writing is owned by one party at a time (see ensureWriter): a flusher of the server's pool, which
// writes what is ready without ever blocking, or the connection's own writer goroutine, started
// when a write would block or needs more than a plain write (pings, slow-consumer disconnects,
// shutdown), which also does the connection's teardown.
type conn struct {
	s      *Server
	ws     *websocket.Conn
	nc     net.Conn
	rc     syscall.RawConn // for non-blocking writes by flushers; nil: the writer goroutine only
	id     string
	remote string
	opened time.Time

	wake       chan struct{} // cap 1: "there is something to write"
	writing    atomic.Bool   // a flusher or the writer goroutine owns the write side
	pingDue    atomic.Bool   // a WebSocket ping is due
	beatDue    atomic.Bool   // an info heartbeat is due
	readerDone chan struct{} // closed when reading is over (the reader has returned, or was parked and finished)
	// The writer waits on wake alone (one channel receive is much cheaper than a select, which
	// at one event per write was a sixth of the server's CPU); these flags say why it woke.
	readerExited atomic.Bool  // reading is over: tear down
	readState    atomic.Int32 // readRunning, readParked or readDone; parked moves only under the parker's lock
	readBusy     atomic.Bool  // the reader served a frame since the clock last looked
	parkReq      atomic.Bool  // the clock asks the idle reader to park
	stopRead     atomic.Bool  // the reader must end, not park
	lastRead     atomic.Int64 // unix nanoseconds of the last frame read
	fd           int32        // the socket's descriptor, for the parker; -1 if none

	// Owned by the reader goroutine (one at a time: a parked reader's successor starts after it).
	fr           wsframe.Stream
	quick        bool        // restarted from the parker: read without waiting, and park again if that was all
	quickReads   int         // reads that brought data since the restart
	peerClosed   atomic.Bool // the client sent a close frame: teardown echoes it
	stopping     atomic.Bool // graceful shutdown requested
	retire       atomic.Bool // the server's clock saw the writer idle: it may exit
	busy         atomic.Bool // the writer wrote something since the clock last looked
	statsWaiting atomic.Bool // pending holds counts not yet in the shared metrics
	statsDue     atomic.Bool // the server's clock asks for them

	mu        sync.Mutex
	replies   []reply
	subs      []*domain.Subscription
	closeCode int    // why the connection ends; the first to set it wins
	closeMsg  string // the reason sent in our close frame, if we send one

	// Owned by whoever writes (one at a time, handed over through writing).
	buf       []byte
	events    []*domain.Event
	snapshot  []*domain.Subscription
	episodes  map[*domain.Subscription]*episode
	closeSent bool         // our close frame is on the wire
	pending   pendingStats // counts not yet added to the shared metrics
	published time.Time    // when pending was last published
	deadline  time.Time    // the write deadline currently set on the socket
	inline    bool         // a flusher is writing: never block, hand over instead (errHandOff)
	// What a flusher could not finish, for the writer goroutine it hands over to: the unwritten
	// end of a batch (and the batch's accounting), or a subscription that overflowed.
	unsent      []byte
	unsentStats outStats
	unsentSpans []traced
	unsentStart time.Time
	overflowed  *domain.Subscription
	overflowN   uint64
	overflowSt  outStats
}

// pendingStats are a connection's written frames not yet counted in the shared metrics.
type pendingStats struct {
	frames, bytes [5]int // indexed like wire.ServerTypes
	delivered     int
	oldest        *domain.Event
	oldestAt      time.Time // when the oldest was written
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, batchBytes); return &b }}

func newConn(s *Server, wsc *websocket.Conn, r *http.Request) *conn {
	c := &conn{
		s: s, ws: wsc, nc: wsc.NetConn(), id: uuid.NewString(), remote: r.RemoteAddr, opened: time.Now(),
		wake: make(chan struct{}, 1), readerDone: make(chan struct{}),
	}
	c.rc, c.fd = rawSocket(c.nc)
	return c
}

// logf logs with the connection's identity. It is not a logger made once with With: that would
// keep pre-formatted attributes alive for every idle connection, and logs here are rare.
func (c *conn) logf(ctx context.Context, level slog.Level, msg string, args ...any) {
	c.s.log.Log(ctx, level, msg, append([]any{"conn_id", c.id, "remote", c.remote}, args...)...)
}

// Wake implements domain.Waker: it never blocks, and many wakes before the writer runs are one.
func (c *conn) Wake() {
	c.signal()
	c.ensureWriter()
}

// signal leaves the wake token without looking for a writer.
func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Who writes. A fan-out to 1,000 subscribers wakes 1,000 connections: starting or waking a
// goroutine for each, to make one small write, cost about as much as the write, and their stacks and
// batch buffers grew the heap with every burst. So a woken connection nobody is writing for goes to
// the server's ready queue, and a small pool of flushers (one per CPU) writes for it with
// non-blocking writes. Only when a write would block (a slow reader), or the work is more than a
// write (a ping, a slow-consumer disconnect, shutdown, teardown), does the connection get its own
// writer goroutine, which the server's clock retires once it has been idle for a clock period (see
// Server.tick): an idle connection holds one goroutine stack, its reader's.

// ensureWriter hands the connection to a flusher unless someone is writing for it already. One
// party writes at a time; the atomic hand-over orders everything the previous one wrote before the
// next one starts.
func (c *conn) ensureWriter() {
	if !c.writing.Load() && c.writing.CompareAndSwap(false, true) {
		if c.rc != nil {
			select {
			case c.s.ready <- c:
				return
			default: // the queue is full: this connection gets its own writer
			}
		}
		go c.writeLoop()
	}
}

// errHandOff says a flusher stopped short of something that may block; the writer goroutine it
// hands over to finishes it.
var errHandOff = errors.New("hand over to the writer goroutine")

// serveInline is a flusher's turn on the connection, which it owns (writing is true): it writes
// whatever is ready, then lets go, or hands over to a writer goroutine.
func (c *conn) serveInline() {
	defer func() {
		if c.panicked(recover(), "flusher") {
			c.inline = false
			go c.teardown()
		}
	}()
	select {
	case <-c.wake: // taken, so that a wake from now on is seen below
	default:
	}
	if c.readerExited.Load() || c.stopping.Load() {
		c.handOff()
		return
	}
	c.retire.Store(false) // meant for a writer goroutine; there is none
	if c.statsDue.Swap(false) {
		c.publishMetrics(time.Now())
	}
	c.inline = true
	err := c.flushTurn()
	c.inline = false
	switch {
	case errors.Is(err, errHandOff):
		c.handOff()
		return
	case errors.Is(err, errMoreToWrite):
		c.requeue()
		return
	case err != nil:
		c.setClose(websocket.CloseAbnormalClosure, "")
		go c.teardown()
		return
	}
	c.writing.Store(false)
	// As in serveWrites: a wake that came while we owned the connection started nobody.
	if len(c.wake) > 0 && c.writing.CompareAndSwap(false, true) {
		c.requeue()
	}
}

// inlinePasses bounds a flusher's turn on one connection (each pass writes up to maxDrain events
// per subscription), so that a few busy connections cannot keep the flushers from the others.
const inlinePasses = 4

// errMoreToWrite says a flusher's turn ended with work left; the connection goes to the back of the
// ready queue.
var errMoreToWrite = errors.New("turn over, more to write")

// flushTurn is a flusher's turn: what flush does, for at most inlinePasses writes.
func (c *conn) flushTurn() error {
	c.takeHeartbeat()
	for range inlinePasses {
		more, err := c.flushOnce()
		if err != nil || !more {
			return err
		}
	}
	return errMoreToWrite
}

// requeue puts a connection the caller owns at the back of the ready queue, or gives it a writer
// goroutine when the queue is full.
func (c *conn) requeue() {
	select {
	case c.s.ready <- c:
	default:
		c.handOff()
	}
}

// handOff gives the connection, still owned, to a new writer goroutine.
func (c *conn) handOff() {
	c.signal()
	go c.writeLoop()
}

func (c *conn) start() {
	c.logf(context.Background(), slog.LevelInfo, "ws connection opened")
	c.fr = newFrameReader(c.s.cfg.MaxFrameBytes)
	c.lastRead.Store(time.Now().UnixNano())
	c.readBusy.Store(true) // a new connection is not idle: the clock's first look must not park it
	go c.readLoop()
}

// armReadDeadline sets the read deadline from the last frame read: a peer silent for longer than a
// ping interval and its timeout is dead.
func (c *conn) armReadDeadline() {
	if c.s.cfg.PingInterval <= 0 {
		_ = c.nc.SetReadDeadline(time.Time{})
		return
	}
	_ = c.nc.SetReadDeadline(time.Unix(0, c.lastRead.Load()).Add(c.s.cfg.PingInterval + c.s.cfg.PingTimeout))
}

// setClose records why the connection ends unless a reason was recorded already.
func (c *conn) setClose(code int, msg string) {
	c.mu.Lock()
	if c.closeCode == 0 {
		c.closeCode, c.closeMsg = code, msg
	}
	c.mu.Unlock()
}

func (c *conn) requestShutdown() {
	c.stopping.Store(true)
	c.Wake()
}

// abort cuts the connection off: both goroutines fail on the closed socket and end.
func (c *conn) abort() {
	c.setClose(websocket.CloseGoingAway, "")
	c.endReading()
	_ = c.nc.Close()
}

// enqueue hands a reply to the writer. A client that keeps sending requests without reading the
// replies is cut off rather than allowed to grow the queue without bound.
func (c *conn) enqueue(r reply) {
	c.mu.Lock()
	if len(c.replies) >= c.s.cfg.MaxPendingReplies {
		c.mu.Unlock()
		c.setClose(websocket.ClosePolicyViolation, "too many unread replies")
		c.stopReading()
		return
	}
	c.replies = append(c.replies, r)
	c.mu.Unlock()
	c.Wake()
}

// ---- reader ----

// Reader states. A reader that has been idle for a clock period stops and parks its socket (see
// parker); input restarts it. Teardown finishes a parked reader itself.
const (
	readRunning int32 = iota
	readParked
	readDone
)

// stopReading ends the reader, which ends the writer: a running reader's read fails at once, a
// parked one is finished here.
func (c *conn) stopReading() {
	c.endReading()
	_ = c.nc.SetReadDeadline(time.Now())
}

// endReading keeps the reader from parking from now on and finishes it if it is parked: the socket
// may then be closed, since no parked reader watches it. A running reader ends on its own.
func (c *conn) endReading() {
	c.stopRead.Store(true) // read by park under the parker's lock, so no park can follow
	if c.s.parker != nil && c.s.parker.take(c, readDone) {
		c.readerFinished()
	}
}

// readerFinished is the end of reading: the writer is told to tear the connection down.
func (c *conn) readerFinished() {
	close(c.readerDone)
	c.readerExited.Store(true)
	c.Wake()
}

// readLoop runs the reader until the connection's input ends, or until it parks.
func (c *conn) readLoop() {
	if c.serveReads() {
		c.readState.Store(readDone)
		c.readerFinished()
	}
}

// errPeerClosed ends reading after the client's close frame.
var errPeerClosed = errors.New("peer sent a close frame")

// serveReads reads and serves frames. It returns true when reading is over, false when the reader
// has parked the connection.
func (c *conn) serveReads() (finished bool) {
	defer func() {
		if c.panicked(recover(), "reader") {
			finished = true
		}
	}()
	c.armReadDeadline()
	for {
		if c.stopRead.Load() {
			// A deadline set to end the reader may have been moved by frameRead.
			c.readFailed(os.ErrDeadlineExceeded)
			return true
		}
		op, p, ok, err := c.fr.Next()
		if err == nil && ok {
			c.frameRead()
			err = c.serveFrame(op, p)
		}
		if err != nil {
			c.readFailed(err)
			return true
		}
		if ok {
			continue
		}
		var n int // err is nil here, and takes the read's error
		if c.quick {
			n, err = c.tryRead(c.fr.Spare())
			c.fr.Filled(n)
			if n > 0 {
				c.quickReads++
				continue
			}
			if err == nil { // nothing more to read now
				if c.fr.Idle() && c.quickReads <= 1 {
					// Woken for one burst (a pong, a request now and then): park again at
					// once, instead of holding a goroutine until the clock's next look.
					c.fr.Release()
					if c.s.parker.park(c) == nil {
						return false
					}
				}
				c.quick = false // busy: read like any running reader until the clock parks it
				continue
			}
		} else {
			n, err = c.nc.Read(c.fr.Spare())
			c.fr.Filled(n)
			if n > 0 || err == nil {
				continue
			}
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && c.parkReq.Swap(false) && !c.stopRead.Load() {
			// The server's clock found this reader idle: park unless a frame is half read.
			if c.fr.Idle() && c.s.parker != nil {
				c.fr.Release()
				if c.s.parker.park(c) == nil {
					return false
				}
			}
			c.armReadDeadline()
			continue
		}
		c.readFailed(err)
		return true
	}
}

// resume is a reader restarted by the parker.
func (c *conn) resume() {
	c.quick, c.quickReads = c.rc != nil, 0
	c.readLoop()
}

// frameRead notes that the peer is alive and the reader busy, and moves the read deadline.
func (c *conn) frameRead() {
	now := time.Now()
	c.lastRead.Store(now.UnixNano())
	c.readBusy.Store(true)
	if c.s.cfg.PingInterval > 0 {
		_ = c.nc.SetReadDeadline(now.Add(c.s.cfg.PingInterval + c.s.cfg.PingTimeout))
	}
}

// serveFrame handles one message or control frame; p is only valid during the call.
func (c *conn) serveFrame(op byte, p []byte) error {
	switch op {
	case wsframe.OpText:
		// handle keeps nothing of the frame's bytes: the decoder copies what it retains.
		c.handle(p)
	case wsframe.OpBinary:
		c.s.tel.Metrics.FrameIn(wire.TypeInvalid, len(p))
		c.replyError(context.Background(), nil, "", domain.Errorf(domain.KindInvalid, "binary frames are not supported: send JSON text frames"))
	case wsframe.OpPing:
		// Answered by the writer, which owns the socket's write side.
		c.enqueue(reply{typ: "", data: bytes.Clone(p)})
	case wsframe.OpClose:
		code, err := parseClose(p)
		if err != nil {
			return err
		}
		c.setClose(code, "")
		c.peerClosed.Store(true)
		return errPeerClosed
	}
	return nil // pongs only prove the peer alive, which reading them did
}

func (c *conn) readFailed(err error) {
	err = closeErrorOf(err)
	var ce *closeError
	switch {
	case errors.Is(err, errPeerClosed):
	case errors.As(err, &ce):
		// Teardown sends our close frame with this code and reason.
		c.setClose(ce.code, ce.reason)
	default:
		c.setClose(websocket.CloseAbnormalClosure, "")
	}
}

// panicked handles a value recovered from a panic in one of the connection's goroutines, and
// reports whether there was one.
func (c *conn) panicked(v any, where string) bool {
	if v != nil {
		c.logf(context.Background(), slog.LevelError, "panic while serving a connection; closing it", "where", where, "panic", fmt.Sprint(v),
			"stack", string(debug.Stack()))
		c.s.tel.Metrics.Error(wire.CodeInternal)
		// The writer's teardown sends the 1011 close frame and releases everything.
		c.setClose(websocket.CloseInternalServerErr, "internal error")
		return true
	}
	return false
}

// handle serves one text frame. Every frame gets its own root context (or the client's trace).
func (c *conn) handle(data []byte) {
	req, err := wire.DecodeRequest(data)
	typ := req.Type
	if err != nil {
		typ = wire.TypeInvalid
	}
	c.s.tel.Metrics.FrameIn(typ, len(data))
	ctx := c.s.tel.FrameContext(context.Background(), req.TraceParent, req.TraceState)
	if err != nil {
		c.replyError(ctx, req.RequestID, "", err)
		return
	}
	now := time.Now()
	switch req.Type {
	case wire.TypePing:
		c.s.tel.Ping(ctx)
		c.enqueue(reply{typ: wire.TypePong, data: wire.AppendPong(nil, req.RequestID, now)})
	case wire.TypeSubscribe:
		res, err := c.s.api.Subscribe(ctx, service.SubscribeRequest{Topic: req.Topic, ClientID: req.ClientID, LastN: req.LastN, Owner: c})
		if err != nil {
			c.replyError(ctx, req.RequestID, string(req.Topic), err)
			return
		}
		if !res.Renewed {
			c.mu.Lock()
			c.subs = append(c.subs, res.Sub)
			c.mu.Unlock()
		}
		if res.Replaced != nil {
			c.logf(ctx, slog.LevelInfo, "subscription taken over from another connection", "topic", string(req.Topic), "client_id", req.ClientID)
		}
		c.enqueue(reply{typ: wire.TypeAck, data: wire.AppendAck(nil, req.RequestID, string(req.Topic), time.Now()), release: res.Sub})
	case wire.TypeUnsubscribe:
		if err := c.s.api.Unsubscribe(ctx, service.UnsubscribeRequest{Topic: req.Topic, ClientID: req.ClientID}); err != nil {
			c.replyError(ctx, req.RequestID, string(req.Topic), err)
			return
		}
		c.enqueue(reply{typ: wire.TypeAck, data: wire.AppendAck(nil, req.RequestID, string(req.Topic), time.Now())})
	case wire.TypePublish:
		if _, err := c.s.api.Publish(ctx, service.PublishRequest{Topic: req.Topic, Message: req.Message}); err != nil {
			c.replyError(ctx, req.RequestID, string(req.Topic), err)
			return
		}
		c.enqueue(reply{typ: wire.TypeAck, data: wire.AppendAck(nil, req.RequestID, string(req.Topic), time.Now())})
	}
}

func (c *conn) replyError(ctx context.Context, requestID *string, topic string, err error) {
	code, msg := wire.WSError(err)
	c.s.tel.Metrics.Error(code)
	level := slog.LevelInfo
	if code == wire.CodeInternal && domain.KindOf(err) == domain.KindInternal {
		level = slog.LevelError
	}
	c.logf(ctx, level, "ws request failed", "code", code, "error", err.Error(), "topic", topic)
	c.enqueue(reply{typ: wire.TypeError, data: wire.AppendError(nil, requestID, "", code, msg, time.Now())})
}

// ---- writer ----

func (c *conn) writeLoop() {
	if c.serveWrites() {
		c.teardown()
	}
}

// serveWrites writes until the connection is finished (true), or until the server's clock has seen
// it idle for a clock period, IdleAfter (false): then the goroutine ends, and the next Wake starts another.
func (c *conn) serveWrites() (finished bool) {
	defer func() {
		if c.panicked(recover(), "writer") {
			finished = true
		}
	}()
	for {
		<-c.wake
		// A frame a flusher left half-written goes out before anything else may be written.
		if err := c.writeUnsent(); err != nil {
			return true
		}
		if c.readerExited.Load() {
			return true
		}
		if c.stopping.Load() {
			c.shutdown()
			return true
		}
		retire := c.retire.Swap(false)
		if err := c.flush(); err != nil {
			if !errors.Is(err, errSlowConsumer) {
				c.setClose(websocket.CloseAbnormalClosure, "")
			}
			return true
		}
		if retire && !c.busy.Load() {
			c.publishMetrics(time.Now())
			c.writing.Store(false)
			// Work that arrived after the wake found a writer marked running and started none:
			// look once more before leaving, and keep going if it is needed.
			if len(c.wake) == 0 && !c.readerExited.Load() && !c.stopping.Load() {
				return false
			}
			if !c.writing.CompareAndSwap(false, true) {
				return false // a new writer has taken over
			}
		}
	}
}

var errSlowConsumer = errors.New("slow consumer disconnected")

// appendFrame appends payload as one unmasked, unfragmented WebSocket text frame. The writer frames
// replies and events itself so that a whole batch leaves in one write: gorilla hands every frame to
// the socket on its own.
func appendFrame(b, payload []byte) []byte {
	return wsframe.AppendFrame(b, wsframe.OpText, nil, payload)
}

// outStats counts one write batch by frame type, so the shared counters are touched once per batch.
type outStats struct {
	frames, bytes [5]int // indexed like wire.ServerTypes
	delivered     int
	oldest        *domain.Event
}

func typeIndex(typ string) int {
	switch typ {
	case wire.TypeAck:
		return 0
	case wire.TypeEvent:
		return 1
	case wire.TypeError:
		return 2
	case wire.TypePong:
		return 3
	}
	return 4
}

func (o *outStats) add(typ string, size int) {
	i := typeIndex(typ)
	o.frames[i]++
	o.bytes[i] += size
}

// traced remembers which events of a batch went to which client, for delivery spans.
type traced struct {
	events   []*domain.Event
	clientID string
}

// flush writes everything that is ready: each subscription's notices and events, then the replies.
// It loops until nothing is left, writing once per pass. A writer goroutine first finishes what a
// flusher handed over.
func (c *conn) flush() error {
	c.takeHeartbeat()
	if sub := c.overflowed; sub != nil {
		st := c.overflowSt
		c.overflowed, c.overflowSt = nil, outStats{}
		return c.disconnectSlow(sub, c.overflowN, &st)
	}
	if err := c.writeUnsent(); err != nil {
		return err
	}
	for {
		more, err := c.flushOnce()
		if err != nil || !more {
			return err
		}
	}
}

// takeHeartbeat queues an info heartbeat if the server's clock asked for one (see Server.tick).
// Heartbeats and pings are written like anything else, so that 10,000 idle connections need no
// goroutine of their own for them.
func (c *conn) takeHeartbeat() {
	if c.beatDue.Swap(false) {
		c.enqueue(reply{typ: wire.TypeInfo, data: wire.AppendInfo(nil, "", wire.InfoPing, time.Now())})
	}
}

// writeUnsent writes, blocking, the end of a batch that a flusher could not write, and accounts
// for the batch.
func (c *conn) writeUnsent() error {
	if c.unsent == nil {
		return nil
	}
	c.armWriteDeadline(time.Now())
	_, err := c.nc.Write(c.unsent)
	c.unsent = nil
	if err != nil {
		c.setClose(websocket.CloseAbnormalClosure, "")
		c.s.tel.Metrics.Dropped(telemetry.DropConnectionClosed, uint64(c.unsentStats.delivered))
		c.unsentStats, c.unsentSpans = outStats{}, nil
		return err
	}
	end := time.Now()
	c.record(&c.unsentStats, end)
	for _, t := range c.unsentSpans {
		c.s.tel.TraceDeliveries(t.events, t.clientID, c.unsentStart, end)
	}
	c.unsentStats, c.unsentSpans = outStats{}, nil
	return nil
}

func (c *conn) flushOnce() (more bool, err error) {
	if c.buf == nil {
		c.buf = (*bufPool.Get().(*[]byte))[:0]
	}
	defer func() {
		if !more && c.overflowed == nil { // an overflow handed over keeps its batch for disconnectSlow
			b := c.buf[:0]
			bufPool.Put(&b)
			c.buf = nil
		}
	}()
	var st outStats
	var spans []traced
	tracing := c.s.tel.TracingEnabled()

	c.mu.Lock()
	replies := c.replies
	c.replies = nil
	c.snapshot = append(c.snapshot[:0], c.subs...)
	c.mu.Unlock()

	now := time.Now()
	var ended []*domain.Subscription
	for _, sub := range c.snapshot {
		b := sub.Drain(c.events[:0], maxDrain)
		c.events = b.Events[:0]
		if b.Overflow {
			if c.inline {
				c.overflowed, c.overflowN, c.overflowSt = sub, b.Lost, st
				return false, errHandOff
			}
			return false, c.disconnectSlow(sub, b.Lost, &st)
		}
		if b.Dropped > 0 {
			c.noteDrops(sub, b.Dropped, now)
			msg := wire.AppendError(nil, nil, string(sub.Topic), wire.CodeSlowConsumer, "dropped "+strconv.FormatUint(b.Dropped, 10)+" messages", now)
			c.buf = appendFrame(c.buf, msg)
			st.add(wire.TypeError, len(msg))
			c.s.tel.Metrics.Error(wire.CodeSlowConsumer)
		}
		for _, ev := range b.Events {
			c.buf = appendFrame(c.buf, ev.Frame)
			st.bytes[1] += len(ev.Frame)
		}
		// A batch is in seq order, replay first, so its first event is its oldest.
		if len(b.Events) > 0 && (st.oldest == nil || b.Events[0].Time.Before(st.oldest.Time)) {
			st.oldest = b.Events[0]
		}
		st.frames[1] += len(b.Events)
		st.delivered += len(b.Events)
		if tracing {
			// Keep only sampled events for delivery spans: most events are not, and this runs
			// for every delivery.
			var keep []*domain.Event
			for _, ev := range b.Events {
				if c.s.tel.Sampled(ev) {
					keep = append(keep, ev)
				}
			}
			if keep != nil {
				spans = append(spans, traced{events: keep, clientID: sub.ClientID})
			}
		}
		if len(b.Events) == maxDrain {
			more = true
		}
		if b.End != domain.Live {
			ended = append(ended, sub)
			c.endNotice(sub, b, now, &st)
		} else if c.episodes[sub] != nil && !sub.Pending() {
			// The subscriber has caught up: its slow-consumer episode is over.
			c.endEpisode(sub, now)
		}
	}
	if len(ended) > 0 {
		c.forgetSubs(ended)
	}
	if c.pingDue.Swap(false) {
		c.buf = wsframe.AppendFrame(c.buf, wsframe.OpPing, nil, nil) // to find dead peers
	}
	// Replies go after the events drained above: the replies were taken first, so every event
	// queued before a reply was queued leaves no later than that reply (a ping is a barrier).
	for _, r := range replies {
		if r.typ == "" {
			c.buf = wsframe.AppendFrame(c.buf, wsframe.OpPong, nil, r.data) // a ping's payload: at most 125 bytes
			continue
		}
		c.buf = appendFrame(c.buf, r.data)
		st.add(r.typ, len(r.data))
		if r.release != nil {
			// The ack is ahead of everything drained from now on; the next pass sends the replay.
			r.release.Release()
			more = true
		}
	}
	if len(c.buf) == 0 {
		return false, nil
	}
	start := time.Now()
	c.busy.Store(true)
	c.armWriteDeadline(start) // a flusher's write never waits, but an expired deadline fails it
	if c.inline {
		n, werr := c.tryWrite(c.buf)
		if werr == nil && n < len(c.buf) {
			c.unsent = append([]byte(nil), c.buf[n:]...)
			c.unsentStats, c.unsentSpans, c.unsentStart = st, spans, start
			c.buf = c.buf[:0]
			return false, errHandOff
		}
		err = werr
	} else {
		_, err = c.nc.Write(c.buf)
	}
	end := time.Now()
	c.buf = c.buf[:0]
	if err != nil {
		// Whatever this batch held never reached the client.
		c.s.tel.Metrics.Dropped(telemetry.DropConnectionClosed, uint64(st.delivered))
		return false, err
	}
	c.record(&st, end)
	for _, t := range spans {
		c.s.tel.TraceDeliveries(t.events, t.clientID, start, end)
	}
	return more, nil
}

// metricsWindow is how long a connection's writer accumulates its counts before adding them to the
// shared metrics. With small batches (a quiet topic with many subscribers) one flush per batch
// made the shared counters' cache lines bounce between cores on every delivery.
const metricsWindow = 50 * time.Millisecond

// record adds a written batch to the connection's pending counts, and publishes them once the
// window has passed.
func (c *conn) record(st *outStats, end time.Time) {
	p := &c.pending
	for i := range st.frames {
		p.frames[i] += st.frames[i]
		p.bytes[i] += st.bytes[i]
	}
	p.delivered += st.delivered
	if st.oldest != nil && (p.oldest == nil || st.oldest.Time.Before(p.oldest.Time)) {
		p.oldest, p.oldestAt = st.oldest, end
	}
	if end.Sub(c.published) >= metricsWindow {
		c.publishMetrics(end)
	} else if !c.statsWaiting.Load() {
		c.statsWaiting.Store(true)
	}
}

// publishMetrics adds the pending counts to the shared metrics: the frames and bytes by type, the
// deliveries, and one delivery-latency observation, for the oldest event written in the window.
func (c *conn) publishMetrics(now time.Time) {
	p := &c.pending
	m := c.s.tel.Metrics
	for i, typ := range wire.ServerTypes {
		m.FramesOut(typ, p.frames[i], p.bytes[i])
	}
	if p.oldest != nil {
		c.s.tel.Delivered(p.delivered, p.oldest, p.oldestAt)
	}
	*p = pendingStats{}
	c.published = now
	c.statsWaiting.Store(false)
}

// armWriteDeadline sets the socket's write deadline, but only when it moved by more than half the
// write timeout (or must move closer, during shutdown): setting it costs a timer update per call.
func (c *conn) armWriteDeadline(now time.Time) {
	d := c.s.writeDeadline(now)
	if d.Before(c.deadline) || d.Sub(c.deadline) > c.s.cfg.WriteTimeout/2 {
		_ = c.nc.SetWriteDeadline(d)
		c.deadline = d
	}
}

// endNotice tells the client why a subscription ended, when it did not ask for it.
func (c *conn) endNotice(sub *domain.Subscription, b domain.Batch, now time.Time, st *outStats) {
	var msg string
	switch b.End {
	case domain.TopicDeleted:
		msg = wire.InfoTopicDeleted
		c.s.tel.Metrics.Dropped(telemetry.DropTopicDeleted, b.Lost)
	case domain.Replaced:
		msg = wire.InfoSubscriptionReplaced
	default:
		return
	}
	data := wire.AppendInfo(nil, string(sub.Topic), msg, now)
	c.buf = appendFrame(c.buf, data)
	st.add(wire.TypeInfo, len(data))
}

func (c *conn) forgetSubs(ended []*domain.Subscription) {
	c.mu.Lock()
	c.subs = slices.DeleteFunc(c.subs, func(s *domain.Subscription) bool { return slices.Contains(ended, s) })
	c.mu.Unlock()
	for _, s := range ended {
		c.endEpisode(s, time.Now())
	}
}

// noteDrops accounts drops of the drop_oldest policy to the subscription's episode.
func (c *conn) noteDrops(sub *domain.Subscription, n uint64, now time.Time) {
	if c.episodes == nil {
		c.episodes = make(map[*domain.Subscription]*episode)
	}
	e := c.episodes[sub]
	if e == nil {
		e = &episode{since: now}
		c.episodes[sub] = e
	}
	e.lost += n
}

// endEpisode logs a finished slow-consumer episode once, with what it cost the client.
func (c *conn) endEpisode(sub *domain.Subscription, now time.Time) {
	e := c.episodes[sub]
	if e == nil {
		return
	}
	delete(c.episodes, sub)
	c.logf(context.Background(), slog.LevelWarn, "slow consumer dropped messages", "topic", string(sub.Topic), "client_id", sub.ClientID,
		"dropped", e.lost, "policy", "drop_oldest", "duration", now.Sub(e.since).String())
}

// disconnectSlow applies the disconnect policy: what is ready goes out, then SLOW_CONSUMER and 1008.
func (c *conn) disconnectSlow(sub *domain.Subscription, lost uint64, st *outStats) error {
	now := time.Now()
	m := c.s.tel.Metrics
	m.Dropped(telemetry.DropOverflowDisconnect, lost)
	m.SlowDisc.Inc()
	m.Error(wire.CodeSlowConsumer)
	msg := wire.AppendError(nil, nil, string(sub.Topic), wire.CodeSlowConsumer,
		"subscriber queue overflowed ("+strconv.FormatUint(lost, 10)+" messages undelivered); disconnecting", now)
	c.buf = appendFrame(c.buf, msg)
	st.add(wire.TypeError, len(msg))
	c.logf(context.Background(), slog.LevelWarn, "slow consumer disconnected", "topic", string(sub.Topic), "client_id", sub.ClientID,
		"dropped", lost, "policy", "disconnect")
	c.setClose(websocket.ClosePolicyViolation, "slow consumer")
	c.armWriteDeadline(now)
	_, _ = c.nc.Write(c.buf)
	c.buf = c.buf[:0]
	c.record(st, time.Now())
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "slow consumer"), c.s.writeDeadline(time.Now()))
	c.closeSent = true
	return errSlowConsumer
}

// shutdown is the connection's part of a graceful stop: flush what is queued, say server_shutdown,
// close with 1001, and give the client a moment to answer the close before the socket goes.
func (c *conn) shutdown() {
	c.setClose(websocket.CloseGoingAway, "server shutting down")
	if err := c.flush(); err != nil {
		return
	}
	data := appendFrame(nil, wire.AppendInfo(nil, "", wire.InfoServerShutdown, time.Now()))
	c.armWriteDeadline(time.Now())
	if _, err := c.nc.Write(data); err != nil {
		return
	}
	c.s.tel.Metrics.FramesOut(wire.TypeInfo, 1, len(data))
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"), c.s.writeDeadline(time.Now()))
	c.closeSent = true
	wait := time.NewTimer(time.Second)
	defer wait.Stop()
	select {
	case <-c.readerDone:
	case <-wait.C:
	}
}

// lingerTime bounds how long a closing connection waits for the client to read our close frame.
const lingerTime = time.Second

// linger lets our close frame reach the client. Closing a socket that still has unread input makes
// the kernel send a reset, and a reset can destroy the close frame before the client reads it (an
// oversized frame is the usual case: most of it is still unread). So: stop writing, and consume
// input until the client closes, for at most lingerTime.
func (c *conn) linger() {
	if tc, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
	}
	t := time.NewTimer(lingerTime)
	defer t.Stop()
	select {
	case <-c.readerDone:
	case <-t.C:
		return
	}
	// The reader has stopped (read limit, panic): read and drop what is left ourselves. The server's
	// clock may still move the read deadline to ask a reader it saw running to park: a timeout
	// before our own deadline is that, and draining goes on.
	deadline := time.Now().Add(lingerTime)
	left := int64(64 << 20)
	for left > 0 && time.Now().Before(deadline) {
		_ = c.nc.SetReadDeadline(deadline)
		n, err := io.CopyN(io.Discard, c.nc, left)
		left -= n
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			return // EOF: the client closed; or the socket failed
		}
	}
}

// teardown runs once, in the writer, after it stops: the socket closes, the reader ends, the
// subscriptions are released and the connection is accounted for.
func (c *conn) teardown() {
	c.mu.Lock()
	code, reason := c.closeCode, c.closeMsg
	c.mu.Unlock()
	if code == 0 {
		code = websocket.CloseAbnormalClosure
	}
	if (reason != "" || c.peerClosed.Load()) && !c.closeSent {
		// We decided to close (a protocol error, a panic, a client that does not read its
		// replies): say so. Or the client did: echo its code, as RFC 6455 asks.
		_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
		c.closeSent = true
	}
	if c.closeSent {
		c.linger()
	}
	c.endReading()
	_ = c.nc.Close()
	<-c.readerDone
	c.mu.Lock()
	subs := c.subs
	c.subs = nil
	c.replies = nil
	c.mu.Unlock()
	for s := range c.episodes {
		c.endEpisode(s, time.Now())
	}
	c.publishMetrics(time.Now())
	lost := c.s.api.Detach(subs)
	c.s.tel.Metrics.Dropped(telemetry.DropConnectionClosed, lost)
	c.s.tel.Metrics.ConnClosed(code)
	clientIDs := make([]string, 0, len(subs))
	for _, s := range subs {
		clientIDs = append(clientIDs, s.ClientID)
	}
	c.logf(context.Background(), slog.LevelInfo, "ws connection closed", "close_code", code, "reason", reason, "duration", time.Since(c.opened).Round(time.Millisecond).String(),
		"subscriptions", len(subs), "client_ids", clientIDs, "undelivered", lost)
	c.s.forget(c)
}
