// Package ws serves the /ws endpoint: the upgrade, a reader per connection (parked when idle), frame
// dispatch to the service, batched writes by a pool of flushers (or a connection's own writer when a
// write must wait), bounded publisher stalls when delivery falls behind, heartbeats, and the
// connection's part of graceful shutdown. conn.go says which part of a connection does what.
package ws

import (
	"context"
	"hash/maphash"
	"log/slog"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pubsubd/pubsub/internal/auth"
	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/service"
	"github.com/pubsubd/pubsub/internal/transport/wire"
	"github.com/pubsubd/pubsub/telemetry"
)

// Config tunes connections. Zero durations disable the matching timer.
type Config struct {
	PingInterval  time.Duration // WebSocket ping control frames to detect dead peers
	PingTimeout   time.Duration // how long past a ping interval a peer may stay silent
	Heartbeat     time.Duration // {"type":"info","msg":"ping"} interval
	WriteTimeout  time.Duration // how long a write may make no progress before the peer is cut
	MaxFrameBytes int64         // larger client frames close the connection with 1009
	// AllowedOrigins are the browser Origins allowed to open /ws besides the request's own host;
	// "*" allows any. Requests without Origin (not from a browser) always pass.
	AllowedOrigins []string
	// MaxPendingReplies bounds the replies (ack, pong, error, info) waiting for a client that sends
	// requests but does not read; past it the connection is closed with 1008.
	MaxPendingReplies int
	// ReplyMaxBytes bounds those replies by bytes as well (PUBSUB_MAX_REPLY_BYTES; 0: 64 KiB): past
	// it the connection is closed with 1008 "replies not read".
	ReplyMaxBytes int64
	// BatchMaxBytes bounds the events of one write batch (PUBSUB_MAX_BATCH_BYTES; 0: 256 KiB): what a
	// connection's subscriptions hold beyond it stays in their queues, in order, for the next batch,
	// so a backlog is never copied whole into a write buffer. An event larger than it goes out alone
	// (and, when Buffers will not grow the buffer for it, from its own shared bytes, uncopied).
	BatchMaxBytes int64
	// IdleAfter is the server clock's period: a connection's writer goroutine or reader that has had
	// nothing to do for a whole period is released (0: 2s).
	IdleAfter time.Duration
	// PublishStallMax bounds how long a publishing connection's reader pauses while delivery to
	// subscribers that read is behind (see stallGate); 0 disables the pause.
	PublishStallMax time.Duration
	// Buffers is the process-wide allowance for connection buffers beyond each connection's small
	// one: large frames being read and write batches waiting for the socket (nil: unlimited).
	// PUBSUB_MAX_BUFFER_BYTES sizes it; the read side and the write side take from the same one.
	// A connection's write side holds at most its own 16 KiB, what it took from Buffers, and its
	// unread replies (ReplyMaxBytes): an event that does not fit is written from the bytes every
	// subscriber shares, not copied, when Buffers refuses (see batch.go).
	Buffers *domain.Budget
	// Auth authenticates the handshake (nil: authentication is off and every connection acts for
	// auth.Anonymous). See auth.go.
	Auth *auth.Authenticator
	// MessageTimeout bounds how long a client message may take to arrive whole once its first
	// bytes have come (fragments and interleaved pings included); past it the connection is closed
	// with 1008. The server's clock checks it, so it is enforced within IdleAfter (0: 10s).
	MessageTimeout time.Duration
	// Fields bounds the lengths of client_id, request_id and header keys and values, checked
	// while a frame is decoded (zero: wire's defaults).
	Fields wire.Limits

	// Limits; zero turns each off.
	MaxConnections          int     // connections in total; more are refused with 503
	MaxConnectionsPerAddr   int     // connections from one client IP; more are refused with 429
	PublishRate             float64 // publishes a second per connection, after PublishBurst at once
	PublishBurst            int     // the publish bucket's size (at least 1)
	MaxSubscriptionsPerConn int     // subscriptions one connection may hold
}

// Server accepts and tracks WebSocket connections. Create it with NewServer, then Start it; every
// started Server must be shut down.
type Server struct {
	cfg      Config
	api      service.API
	batches  bool // api.BatchesPublishes: readers group the publishes they read (publishbatch.go)
	tel      *telemetry.Telemetry
	log      *slog.Logger
	upgrader websocket.Upgrader
	sampled  func(*domain.Event) bool // nil when tracing is off
	stall    stallGate
	pubLocks publishLocks
	limits   connLimits

	mu       sync.Mutex
	conns    map[*conn]struct{}
	closing  bool
	wg       sync.WaitGroup
	count    atomic.Int64
	deadline atomic.Pointer[time.Time] // drain deadline once shutdown has begun

	started  atomic.Bool
	tickStop chan struct{} // closed by Shutdown; ends the clock
	tickDone chan struct{} // closed by the clock when it ends
	stopOnce sync.Once

	parker    *parker       // idle readers' sockets; nil where unsupported
	ready     chan *conn    // connections waiting for a flusher
	flushStop chan struct{} // closed by Shutdown once every connection is gone
	flushers  sync.WaitGroup
	flushOnce sync.Once
}

// readyQueue bounds the flushers' queue; a connection that finds it full gets its own writer
// goroutine, so a burst larger than this is served, only less cheaply.
const readyQueue = 16384

// writeBufferPool lends gorilla a write buffer only while it writes a control frame, so idle
// connections hold none.
var writeBufferPool sync.Pool

// NewServer returns a Server that dispatches frames to api. It starts nothing: see Start.
func NewServer(cfg Config, api service.API, tel *telemetry.Telemetry) *Server {
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.IdleAfter <= 0 {
		cfg.IdleAfter = 2 * time.Second
	}
	if cfg.MaxPendingReplies <= 0 {
		cfg.MaxPendingReplies = 4096
	}
	if cfg.MessageTimeout <= 0 {
		cfg.MessageTimeout = 10 * time.Second
	}
	if cfg.ReplyMaxBytes <= 0 {
		cfg.ReplyMaxBytes = 64 << 10
	}
	if cfg.BatchMaxBytes <= 0 {
		cfg.BatchMaxBytes = 256 << 10
	}
	s := &Server{cfg: cfg, api: api, batches: api != nil && api.BatchesPublishes(), tel: tel, log: tel.Logger, conns: make(map[*conn]struct{})}
	s.pubLocks.seed = maphash.MakeSeed()
	s.limits.maxTotal, s.limits.maxPerAddr = cfg.MaxConnections, cfg.MaxConnectionsPerAddr
	s.upgrader = websocket.Upgrader{
		// The reader reads frames itself (frame.go) and the writer frames its own; gorilla does
		// the handshake, and its buffers are kept at their minimum.
		ReadBufferSize:  1,
		WriteBufferSize: 512,
		WriteBufferPool: &writeBufferPool,
		// admit has checked the Origin before the upgrade, counting and logging a refusal.
		CheckOrigin: func(*http.Request) bool { return true },
		// A browser offers its token as a second subprotocol beside "pubsub"; only "pubsub" is
		// ever selected, so the token is never echoed in the response.
		Subprotocols: []string{auth.Protocol},
		Error:        s.upgradeError,
	}
	if tel.TracingEnabled() {
		s.sampled = tel.Sampled
	}
	s.tickStop, s.tickDone = make(chan struct{}), make(chan struct{})
	if p, err := newParker(); err == nil {
		s.parker = p
	} else {
		s.log.Warn("idle connections keep their reader goroutine", "reason", err.Error())
	}
	s.ready, s.flushStop = make(chan *conn, readyQueue), make(chan struct{})
	return s
}

// Start starts the server's goroutines: its clock, the parker of idle readers and the flushers.
// Call it once, before serving connections.
func (s *Server) Start() {
	if !s.started.CompareAndSwap(false, true) {
		return
	}
	go s.runClock()
	if s.parker != nil {
		s.parker.start(s.recovered)
	}
	for range runtime.GOMAXPROCS(0) {
		s.flushers.Go(s.flushLoop)
	}
}

// upgradeError answers a failed handshake in the contract's JSON error shape.
func (s *Server) upgradeError(w http.ResponseWriter, r *http.Request, status int, reason error) {
	code := wire.CodeBadRequest
	if status == http.StatusForbidden {
		code = wire.CodeUnauthorized
	}
	s.tel.Metrics.Error(code)
	wire.WriteError(w, status, code, "websocket handshake failed: "+reason.Error())
}

// Connections returns the number of open connections.
func (s *Server) Connections() int { return int(s.count.Load()) }

// ParkedReaders returns how many connections are idle with their reader parked (no goroutine).
func (s *Server) ParkedReaders() int {
	if s.parker == nil {
		return 0
	}
	return s.parker.count()
}

// ServeHTTP upgrades the request and starts the connection's reader and writer. It returns at once;
// the connection lives on in those two goroutines.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		s.tel.Metrics.Error(wire.CodeUnavailable)
		wire.WriteError(w, http.StatusServiceUnavailable, wire.CodeUnavailable, "server is shutting down")
		return
	}
	addr, ok := s.admit(w, r)
	if !ok {
		return // admit has answered
	}
	principal := s.authenticate(w, r)
	if principal == nil {
		s.limits.leave(addr)
		return // refused with 401, before any upgrade
	}
	wsc, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.limits.leave(addr)
		return // the upgrader has answered
	}
	// The HTTP server's read deadline (PUBSUB_HTTP_READ_TIMEOUT) is still on the hijacked socket:
	// a WebSocket lives for hours, and its reader sets deadlines of its own.
	_ = wsc.NetConn().SetDeadline(time.Time{})
	c := newConn(s, wsc, r)
	c.principal = principal
	c.addr = addr
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		s.limits.leave(addr)
		_ = wsc.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "server is shutting down"), time.Now().Add(time.Second))
		_ = wsc.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.count.Add(1)
	s.tel.Metrics.ConnsOpened.Inc()
	c.start()
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.limits.leave(c.addr)
	s.count.Add(-1)
	s.wg.Done()
}

// Shutdown refuses new connections, then asks every connection to flush what it has queued, send
// server_shutdown and close with 1001. It returns when all are closed, or when ctx ends, after
// cutting off those that are left. Every Server must be shut down: it stops the server's clock.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() { close(s.tickStop) })
	if s.started.Load() {
		defer func() { <-s.tickDone }()
	}
	if d, ok := ctx.Deadline(); ok {
		s.deadline.Store(&d)
	}
	s.mu.Lock()
	s.closing = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.requestShutdown()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	defer s.flushOnce.Do(func() {
		// No connection is left to wake a flusher or to park.
		close(s.flushStop)
		s.flushers.Wait()
		if s.parker != nil {
			s.parker.close()
		}
	})
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	for c := range s.conns {
		c.abort()
	}
	s.mu.Unlock()
	<-done // aborting closes the sockets, so the goroutines end promptly
	return ctx.Err()
}

// writeDeadline is when the next write must be done: the write timeout, shortened by the drain
// deadline during shutdown.
func (s *Server) writeDeadline(now time.Time) time.Time {
	d := now.Add(s.cfg.WriteTimeout)
	if dl := s.deadline.Load(); dl != nil && dl.Before(d) {
		return *dl
	}
	return d
}
