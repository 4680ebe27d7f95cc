package ws

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/pubsubd/pubsub/internal/auth"
	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/transport/wire"
	"github.com/pubsubd/pubsub/telemetry"
)

// conn is one WebSocket connection, in parts with one job each:
//
//	reader     reader.go    client frames in; parks an idle socket (reader goroutine, parker)
//	dispatch   dispatch.go  a frame to a service call and its reply (reader goroutine)
//	outbox     outbox.go    replies and subscriptions waiting, and the token saying who writes
//	writeSide  writer.go    batches out, by a flusher or the connection's own writer goroutine
//	batch      batch.go     pure: drained events and replies in, framed bytes out
//	sockWriter socket.go    the socket's write side: deadlines, partial writes
//	statsWindow stats.go    counts not yet in the shared metrics; slow-consumer episodes
//	closing    closing.go   slow-consumer disconnect, graceful shutdown, linger, teardown
//
// The fields below the parts are set once by newConn, or guarded as they say.
type conn struct {
	s      *Server
	nc     net.Conn
	id     string
	remote string
	addr   string // the client address its connection slot is counted under (connLimits)
	opened time.Time
	inline bool // the socket can be written without blocking: flushers may serve it

	rd  reader
	out outbox
	w   writeSide // owned by whoever holds out.writing

	principal *auth.Principal            // who the connection acts for; set before start
	scopes    map[domain.TopicName]uint8 // cached scope decisions; owned by the reader goroutine

	endMu     sync.Mutex
	closeCode int    // why the connection ends; the first to set it wins
	closeMsg  string // the reason in our close frame, if we send one
	gone      sync.Once
}

func newConn(s *Server, wsc *websocket.Conn, r *http.Request) *conn {
	nc := wsc.NetConn()
	rc, fd := rawSocket(nc)
	c := &conn{
		s: s, nc: nc, id: uuid.NewString(), remote: r.RemoteAddr, opened: time.Now(), inline: rc != nil,
		out: newOutbox(), principal: auth.Anonymous, // ServeHTTP sets the handshake's
	}
	c.rd.init(rc, fd, s.cfg.MaxFrameBytes, s.cfg.Buffers)
	c.rd.publishes = newTokenBucket(s.cfg.PublishRate, s.cfg.PublishBurst, c.rd.lastRead.Load())
	// A socket with no room for half the stall bound counts as stuck (the client is slow), so the
	// gate opens before the publishers' own bound runs out and they go on one by one, in order.
	c.w.b.limit, c.w.b.budget = int(s.cfg.BatchMaxBytes), s.cfg.Buffers
	c.w.sock = sockWriter{sock: netSocket{nc: nc, rc: rc}, timeout: s.cfg.WriteTimeout, limit: s.writeDeadline,
		patience: s.cfg.PublishStallMax / 2}
	return c
}

// start logs the connection and starts its reader.
func (c *conn) start() {
	c.logf(context.Background(), slog.LevelInfo, "ws connection opened")
	go c.readLoop()
}

// logf logs with the connection's identity. It is not a logger made once with With: that would
// keep pre-formatted attributes alive for every idle connection, and logs here are rare.
func (c *conn) logf(ctx context.Context, level slog.Level, msg string, args ...any) {
	c.s.log.Log(ctx, level, msg, append([]any{"conn_id", c.id, "remote", c.remote}, args...)...)
}

// Wake implements domain.Waker: it never blocks, and many wakes before the writer runs are one.
func (c *conn) Wake() {
	c.out.signal()
	c.ensureWriter()
}

// Backlogged implements domain.Backlogger: a subscription's queue is half full. Unless a write to
// this client has lately waited a whole stall bound for room (the client is slow, not the server),
// publishers are held back until we have caught up (see stallGate).
func (c *conn) Backlogged() {
	if c.s.cfg.PublishStallMax <= 0 {
		return // stalls are off: nobody waits, so nobody need count
	}
	c.out.backlogs.Add(1)
	c.holdPublishers()
}

// holdPublishers counts the connection in the stall gate, unless it is stuck or counted already.
func (c *conn) holdPublishers() {
	if !c.out.stuck.Load() && !c.out.behind.Load() && c.out.behind.CompareAndSwap(false, true) {
		c.s.stall.enter()
	}
}

// enqueue hands a reply to the writer; the reader calls it. What waits is bounded by count and by
// bytes (MaxPendingReplies, ReplyMaxBytes). A client whose socket is full (the writer found no room
// for a while: out.stuck) is not reading its replies: past either bound it is cut off (1008,
// "replies not read") rather than allowed to grow the queue. A client that reads, but pipelines
// requests faster than their replies are written, is slowed instead: the reader waits for the
// writer to take the replies before it reads on, and cuts the client off only if that does not
// happen within a write timeout, or its socket fills meanwhile.
func (c *conn) enqueue(r reply) {
	if c.rd.batch.pending() {
		c.flushPublishes() // the publishes read before r's frame are answered before it
	}
	if c.out.add(r, c.s.cfg.MaxPendingReplies, int(c.s.cfg.ReplyMaxBytes)) {
		c.Wake()
		return
	}
	switch c.awaitReplyRoom(r) {
	case replyAdded:
		c.Wake()
		return
	case replyEnding:
		return // the connection is being torn down: the reply has nobody to go to
	}
	c.s.tel.Metrics.LimitRejectedFor(telemetry.LimitReplies, "", c.remote)
	c.s.tel.Refusals.Warn(context.Background(), "ws connection closed: replies not read", "conn_id", c.id,
		"remote", c.remote, "limit", telemetry.LimitReplies, "max_reply_bytes", c.s.cfg.ReplyMaxBytes)
	c.setClose(websocket.ClosePolicyViolation, "replies not read")
	c.stopReading()
}

// replyPoll is how often a reader waiting for room in the replies looks whether the client's socket
// has filled meanwhile.
const replyPoll = 20 * time.Millisecond

// What awaitReplyRoom did with a reply.
const (
	replyAdded   = iota // the writer made room
	replyRefused        // the client does not read: cut it off
	replyEnding         // the connection is being closed: reading is over
)

// awaitReplyRoom waits until the writer has taken the replies waiting and r fits. It gives up when
// the client's socket is full or a write timeout has passed (refused), or when reading is to stop
// (ending): teardown waits for the reader, so the reader must never wait for teardown.
func (c *conn) awaitReplyRoom(r reply) int {
	c.Wake() // the writer may not know of the replies yet
	deadline := time.Now().Add(c.s.cfg.WriteTimeout)
	t := time.NewTicker(replyPoll)
	defer t.Stop()
	for {
		switch {
		case c.rd.stop.Load():
			return replyEnding
		case c.out.stuck.Load() || !time.Now().Before(deadline):
			return replyRefused
		}
		select {
		case <-c.out.room:
			if c.out.add(r, c.s.cfg.MaxPendingReplies, int(c.s.cfg.ReplyMaxBytes)) {
				return replyAdded
			}
		case <-t.C:
		}
	}
}

// requestShutdown asks the writer to say goodbye and close (see shutdown).
func (c *conn) requestShutdown() {
	c.out.stopping.Store(true)
	c.Wake()
}

// abort cuts the connection off: its goroutines fail on the closed socket and end.
func (c *conn) abort() {
	c.setClose(websocket.CloseGoingAway, "")
	c.endReading()
	_ = c.nc.Close()
}

// forget tells the server the connection is gone; once.
func (c *conn) forget() { c.gone.Do(func() { c.s.forget(c) }) }

// panicked handles a value recovered from a panic in one of the connection's goroutines, and
// reports whether there was one: it is logged and counted, and the connection is closed with 1011.
func (c *conn) panicked(v any, component string) bool {
	if v == nil {
		return false
	}
	c.reportPanic(v, component)
	// The writer's teardown sends the 1011 close frame and releases everything.
	c.setClose(websocket.CloseInternalServerErr, "internal error")
	return true
}

func (c *conn) reportPanic(v any, component string) {
	c.logf(context.Background(), slog.LevelError, "panic while serving a connection; closing it", "where", component,
		"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	c.s.tel.Metrics.Error(wire.CodeInternal)
	c.s.tel.Metrics.Panicked(component)
}
