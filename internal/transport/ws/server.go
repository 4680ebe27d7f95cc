// Package ws serves the /ws endpoint: the upgrade, a reader goroutine per connection, frame dispatch
// to the service, batched writes by a pool of flushers (or a connection's own writer when a write
// would block), heartbeats and the connection's part of graceful shutdown.
package ws

import (
	"context"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pubsubd/pubsub/internal/service"
	"github.com/pubsubd/pubsub/internal/transport/wire"
	"github.com/pubsubd/pubsub/telemetry"
)

// Config tunes connections. Zero durations disable the matching timer.
type Config struct {
	PingInterval   time.Duration // WebSocket ping control frames to detect dead peers
	PingTimeout    time.Duration // how long past a ping interval a peer may stay silent
	Heartbeat      time.Duration // {"type":"info","msg":"ping"} interval
	WriteTimeout   time.Duration // deadline for one batched write
	MaxFrameBytes  int64         // larger client frames close the connection with 1009
	AllowedOrigins []string      // empty: any Origin
	// MaxPendingReplies bounds the replies (ack, pong, error, info) waiting for a client that sends
	// requests but does not read; past it the connection is closed with 1008.
	MaxPendingReplies int
	// IdleAfter is the server clock's period: a connection's writer goroutine or reader that has had
	// nothing to do for a whole period is released (0: 2s).
	IdleAfter time.Duration
}

// Server accepts and tracks WebSocket connections. Create it with NewServer, then Start it.
type Server struct {
	cfg      Config
	api      service.API
	tel      *telemetry.Telemetry
	log      *slog.Logger
	upgrader websocket.Upgrader

	mu       sync.Mutex
	conns    map[*conn]struct{}
	closing  bool
	started  bool // set by Start; Shutdown waits for the goroutines only if they were started
	wg       sync.WaitGroup
	count    atomic.Int64
	deadline atomic.Pointer[time.Time] // drain deadline once shutdown has begun

	tickStop chan struct{} // closed by Shutdown; ends the tick goroutine
	tickDone chan struct{}
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

// NewServer returns a Server that dispatches frames to api. It starts no goroutine: call Start.
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
	s := &Server{cfg: cfg, api: api, tel: tel, log: tel.Logger, conns: make(map[*conn]struct{})}
	s.upgrader = websocket.Upgrader{
		// The reader reads frames itself (frame.go); gorilla's read buffer, which it allocates
		// anyway, is kept at its minimum.
		ReadBufferSize:  1,
		WriteBufferSize: 512,
		WriteBufferPool: &writeBufferPool,
		CheckOrigin:     s.checkOrigin,
		Error:           s.upgradeError,
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

// Start starts the server's goroutines: its clock, the parker's loop and the flushers. Call it
// once, before the server serves connections (a connection served before Start is never written
// to); later calls, and calls after Shutdown has begun, do nothing. Shutdown stops what Start
// started; a Server that was never started can still be shut down, and that returns promptly.
func (s *Server) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closing {
		return
	}
	s.started = true
	go s.tick()
	if s.parker != nil {
		s.parker.start()
	}
	for range runtime.GOMAXPROCS(0) {
		s.flushers.Go(s.flushLoop)
	}
}

// tick is the server's one clock for pings, heartbeats and idle writers: it marks connections and
// wakes their writers. Timers per connection would cost 10,000 idle connections 30,000 timers.
func (s *Server) tick() {
	defer close(s.tickDone)
	idle := time.NewTicker(s.cfg.IdleAfter)
	defer idle.Stop()
	var pingC, beatC <-chan time.Time
	if d := s.cfg.PingInterval; d > 0 {
		t := time.NewTicker(d)
		defer t.Stop()
		pingC = t.C
	}
	if d := s.cfg.Heartbeat; d > 0 {
		t := time.NewTicker(d)
		defer t.Stop()
		beatC = t.C
	}
	for {
		select {
		case <-s.tickStop:
			return
		case <-pingC:
			s.each(func(c *conn) { c.pingDue.Store(true) })
		case <-beatC:
			s.each(func(c *conn) { c.beatDue.Store(true) })
		case <-idle.C:
			s.retireIdleWriters()
		}
	}
}

// flushLoop is one flusher: it serves ready connections until the server has shut down.
func (s *Server) flushLoop() {
	for {
		select {
		case c := <-s.ready:
			c.serveInline()
		case <-s.flushStop:
			return
		}
	}
}

// retireIdleWriters asks every writer that wrote nothing since the last look to exit, and every
// connection that went quiet with counts not yet in the shared metrics to add them. It also asks
// readers that read nothing since the last look to park, and restarts parked readers whose peer
// has been silent past the ping timeout, so that they find it dead.
func (s *Server) retireIdleWriters() {
	now := time.Now()
	dead := now.Add(-(s.cfg.PingInterval + s.cfg.PingTimeout)).UnixNano()
	s.mu.Lock()
	var idle, quiet, park, wake []*conn
	for c := range s.conns {
		busy := c.busy.Swap(false)
		switch {
		case c.writing.Load() && !busy:
			idle = append(idle, c)
		case !busy && c.statsWaiting.Load():
			quiet = append(quiet, c)
		}
		if s.parker == nil {
			continue
		}
		switch c.readState.Load() {
		case readRunning:
			if !c.readBusy.Swap(false) && !c.parkReq.Load() {
				park = append(park, c)
			}
		case readParked:
			if s.cfg.PingInterval > 0 && c.lastRead.Load() < dead {
				wake = append(wake, c)
			}
		}
	}
	s.mu.Unlock()
	for _, c := range park {
		c.parkReq.Store(true)
		_ = c.nc.SetReadDeadline(now) // the reader's read returns, and it parks
	}
	for _, c := range wake {
		if s.parker.take(c, readRunning) {
			go c.readLoop() // its deadline has passed: it fails at once
		}
	}
	for _, c := range idle {
		c.retire.Store(true)
		c.Wake()
	}
	for _, c := range quiet {
		c.statsDue.Store(true)
		c.Wake()
	}
}

func (s *Server) each(mark func(*conn)) {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		mark(c)
		c.Wake()
	}
}

func (s *Server) checkOrigin(r *http.Request) bool {
	if len(s.cfg.AllowedOrigins) == 0 {
		return true
	}
	origin := r.Header.Get("Origin")
	return origin == "" || slices.ContainsFunc(s.cfg.AllowedOrigins, func(o string) bool { return strings.EqualFold(o, origin) })
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
	wsc, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	c := newConn(s, wsc, r)
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
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
	s.count.Add(-1)
	s.wg.Done()
}

// Shutdown refuses new connections, then asks every connection to flush what it has queued, send
// server_shutdown and close with 1001. It returns when all are closed, or when ctx ends, after
// cutting off those that are left. Every started Server must be shut down: it stops the goroutines
// Start started. It may be called more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() { close(s.tickStop) })
	if d, ok := ctx.Deadline(); ok {
		s.deadline.Store(&d)
	}
	s.mu.Lock()
	s.closing = true // from here on Start does nothing, so started is settled
	if s.started {
		defer func() { <-s.tickDone }()
	}
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
