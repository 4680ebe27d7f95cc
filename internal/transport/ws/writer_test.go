package ws

import (
	"context"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/service"
	"github.com/pubsubd/pubsub/internal/transport/wire"
	"github.com/pubsubd/pubsub/telemetry"
	"github.com/pubsubd/pubsub/telemetry/telemetrytest"
)

// waitFor bounds every wait in these tests.
const waitFor = 10 * time.Second

// fakeSocket is a socket whose buffer holds room bytes (-1: unlimited) until Write, which waits
// for room, takes the rest. close makes every write fail, as a socket the peer went away from.
type fakeSocket struct {
	mu        sync.Mutex
	room      int
	written   []byte
	tries     int
	writes    int
	deadlines int
	changed   chan struct{} // signalled after every write
	closed    chan struct{}
	hold      chan struct{} // when set, Write waits for it (or close, or the deadline) before writing
	deadline  time.Time
}

func newFakeSocket(room int) *fakeSocket {
	return &fakeSocket{room: room, changed: make(chan struct{}, 1), closed: make(chan struct{})}
}

func (f *fakeSocket) TryWrite(b []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tries++
	select {
	case <-f.closed:
		return 0, net.ErrClosed
	default:
	}
	n := len(b)
	if f.room >= 0 {
		n = min(n, f.room)
		f.room -= n
	}
	f.written = append(f.written, b[:n]...)
	f.signal()
	return n, nil
}

func (f *fakeSocket) Write(b []byte) (int, error) {
	f.mu.Lock()
	hold, deadline := f.hold, f.deadline
	f.mu.Unlock()
	if hold != nil {
		var expired <-chan time.Time
		if !deadline.IsZero() {
			t := time.NewTimer(time.Until(deadline))
			defer t.Stop()
			expired = t.C
		}
		select {
		case <-hold:
		case <-f.closed:
		case <-expired:
			return 0, os.ErrDeadlineExceeded
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.closed:
		return 0, net.ErrClosed
	default:
	}
	f.writes++
	f.written = append(f.written, b...)
	f.signal()
	return len(b), nil
}

func (f *fakeSocket) SetWriteDeadline(d time.Time) error {
	f.mu.Lock()
	f.deadline = d
	f.deadlines++
	f.mu.Unlock()
	return nil
}

func (f *fakeSocket) CloseWrite() error { return nil }

func (f *fakeSocket) signal() {
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

// waitWritten waits until the socket holds n bytes and returns them.
func (f *fakeSocket) waitWritten(t *testing.T, n int) []byte {
	t.Helper()
	f.waitUntil(t, func() bool { return len(f.written) >= n })
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]byte(nil), f.written...)
}

// waitUntil waits until cond, called under the socket's lock, holds.
func (f *fakeSocket) waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		f.mu.Lock()
		ok := cond()
		f.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-f.changed:
		case <-deadline:
			t.Fatal("the socket never got what the test waited for")
		}
	}
}

// detachAPI is the part of service.API a connection calls at teardown.
type detachAPI struct{ service.API }

// BatchesPublishes: the unit tests' connections publish nothing.
func (detachAPI) BatchesPublishes() bool { return false }

func (detachAPI) Detach(subs []*domain.Subscription) (lost uint64) {
	for _, s := range subs {
		lost += s.Abandon()
	}
	return lost
}

// newUnitServer is a Server that is never started: the test plays the flushers, by taking
// connections from the ready queue.
func newUnitServer(t *testing.T) *Server {
	t.Helper()
	tel, err := telemetry.Setup(context.Background(), telemetry.Config{
		Labels:    telemetry.Labels{Codes: wire.Codes, ClientTypes: wire.ClientTypes, ServerTypes: wire.ServerTypes},
		LogOutput: io.Discard, LogFormat: "json",
	})
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(Config{WriteTimeout: time.Minute, PublishStallMax: time.Minute, MaxPendingReplies: 16}, detachAPI{}, tel)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s
}

// newUnitConn is a connection of s writing to sock; its reader side is one end of a pipe, the
// other end of which is returned.
func newUnitConn(t *testing.T, s *Server, sock socket) (*conn, net.Conn) {
	t.Helper()
	nc, peer := net.Pipe()
	t.Cleanup(func() { _ = peer.Close() })
	c := &conn{s: s, nc: nc, id: "unit", opened: time.Now(), inline: true, out: newOutbox()}
	c.rd.init(nil, -1, 1<<20, nil)
	c.w.sock = sockWriter{sock: sock, timeout: s.cfg.WriteTimeout, limit: s.writeDeadline}
	return c, peer
}

// flusher plays one flusher's turn on the next ready connection.
func flusher(t *testing.T, s *Server) *conn {
	t.Helper()
	select {
	case c := <-s.ready:
		c.serveInline()
		return c
	case <-time.After(waitFor):
		t.Fatal("no connection became ready")
		return nil
	}
}

// subscribeConn subscribes c to top, acked, as dispatch would.
func subscribeConn(t *testing.T, c *conn, top *domain.Topic) *domain.Subscription {
	t.Helper()
	res, err := top.Subscribe(domain.SubscribeSpec{ClientID: "c", Owner: c})
	if err != nil {
		t.Fatal(err)
	}
	c.out.addSub(res.Sub)
	res.Sub.Release()
	return res.Sub
}

// retire lets c's writer goroutine go, as the server's clock does for an idle one, and waits until
// it has.
func retire(t *testing.T, c *conn) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for i := 0; c.out.writing.Load(); i++ {
		if time.Now().After(deadline) {
			t.Fatal("the writer goroutine did not retire")
		}
		if i%100 == 0 {
			// Ask again now and then, not every time: a wake left pending is work, and a writer
			// that finds one keeps going instead of retiring. Only the token: Wake would hand a
			// connection whose writer has just retired to the ready queue, which no flusher serves
			// here, and it would stay owned.
			c.out.retire.Store(true)
			c.out.busy.Store(false)
			c.out.signal()
		}
		time.Sleep(time.Millisecond) // polling a flag the goroutine clears; not a synchronisation
	}
}

func TestFlusherWritesABatchInOneWrite(t *testing.T) {
	s := newUnitServer(t)
	sock := newFakeSocket(-1)
	c, _ := newUnitConn(t, s, sock)
	_, top := newTopic(t, 10, domain.DropOldest)
	subscribeConn(t, c, top)
	publishN(t, top, 3)

	flusher(t, s)
	if got := seqsOf(parseFrames(t, sock.waitWritten(t, 1))); len(got) != 3 {
		t.Fatalf("wrote events %v, want 1 2 3", got)
	}
	if sock.tries != 1 || sock.writes != 0 {
		t.Fatalf("%d non-blocking and %d blocking writes, want one non-blocking write", sock.tries, sock.writes)
	}
	if c.out.writing.Load() || c.w.b.buf != nil {
		t.Fatal("after its turn the flusher must let the connection go and return the batch buffer")
	}
}

func TestFullSocketHandsOverToTheConnectionsWriter(t *testing.T) {
	s := newUnitServer(t)
	sock := newFakeSocket(100) // less than one batch
	c, _ := newUnitConn(t, s, sock)
	_, top := newTopic(t, 10, domain.DropOldest)
	subscribeConn(t, c, top)
	publishN(t, top, 5)

	flusher(t, s)
	// The writer goroutine the flusher handed over to finishes the batch, waiting for room.
	sock.waitUntil(t, func() bool { return sock.writes == 1 })
	if s := seqsOf(parseFrames(t, sock.waitWritten(t, 1))); len(s) != 5 || s[0] != 1 || s[4] != 5 {
		t.Fatalf("events %v, want 1..5 in order, each once", s)
	}
	if c.out.stuck.Load() {
		t.Fatal("a socket that took the batch's end at once is not stuck")
	}
	if sock.writes != 1 {
		t.Fatalf("%d blocking writes, want one for the batch's end", sock.writes)
	}
	retire(t, c)

	// With room again, the next wake goes to a flusher.
	sock.mu.Lock()
	sock.room = -1
	sock.mu.Unlock()
	publishN(t, top, 1)
	flusher(t, s)
	if got := seqsOf(parseFrames(t, sock.waitWritten(t, 1))); len(got) != 6 {
		t.Fatalf("events %v after the flusher's turn, want 1..6", got)
	}
}

func TestTheStallGateWaitsOnlyForConnectionsThatCanBeWritten(t *testing.T) {
	s := newUnitServer(t)
	sock := newFakeSocket(-1)
	c, _ := newUnitConn(t, s, sock)
	_, top := newTopic(t, 4, domain.DropOldest)
	subscribeConn(t, c, top)

	publishN(t, top, 2) // half of the queue: the subscription tells its owner
	if !c.out.behind.Load() || s.stall.behind.Load() != 1 {
		t.Fatal("a half-full queue on a writable connection must hold publishers back")
	}
	flusher(t, s) // it catches up
	if c.out.behind.Load() || s.stall.behind.Load() != 0 {
		t.Fatal("a connection that caught up must release the publishers")
	}
	if d := s.stall.wait(time.Minute); d != 0 {
		t.Fatalf("a publisher waited %v with nobody behind", d)
	}

	// A socket that is full for a moment: the client still reads, so publishers keep waiting.
	c.w.sock.patience = 50 * time.Millisecond
	sock.mu.Lock()
	sock.room = 0
	sock.mu.Unlock()
	publishN(t, top, 2)
	flusher(t, s) // the socket takes nothing without waiting: handed over to the writer goroutine
	sock.waitUntil(t, func() bool { return sock.writes == 1 })
	if c.out.stuck.Load() {
		t.Fatal("a socket that took a waiting write at once is stuck")
	}
	retire(t, c)

	// A socket that takes nothing for a whole stall bound: the client is slow, not the server, so
	// publishers stop waiting for it, and do not wait for it again until a write fits at once.
	sock.mu.Lock()
	sock.hold = make(chan struct{})
	sock.mu.Unlock()
	publishN(t, top, 2)
	if s.stall.behind.Load() != 1 {
		t.Fatal("not behind before the socket was found stuck")
	}
	start := time.Now()
	flusher(t, s)
	if d := s.stall.wait(waitFor); d > waitFor/2 {
		t.Fatalf("a publisher waited %v for a stuck client; the bound is %v", d, c.w.sock.patience)
	}
	if !c.out.stuck.Load() || s.stall.behind.Load() != 0 || time.Since(start) < c.w.sock.patience {
		t.Fatalf("stuck=%v behind=%d after %v: a client that takes nothing for the bound must leave the gate, not sooner",
			c.out.stuck.Load(), s.stall.behind.Load(), time.Since(start))
	}
	publishN(t, top, 4) // the queue refills past half: still nobody to wait for
	if s.stall.behind.Load() != 0 {
		t.Fatal("a stuck connection entered the gate")
	}
	close(sock.hold) // the client reads again
	sock.waitUntil(t, func() bool { return sock.writes >= 2 })
	retire(t, c)
}

func TestStallIsBounded(t *testing.T) {
	var g stallGate
	g.enter()
	if d := g.wait(20 * time.Millisecond); d < 20*time.Millisecond {
		t.Fatalf("waited %v, want the whole bound while someone is behind", d)
	}
	done := make(chan time.Duration)
	go func() { done <- g.wait(time.Minute) }()
	g.leave()
	select {
	case <-done:
	case <-time.After(waitFor):
		t.Fatal("leave did not end the wait")
	}
	if d := g.wait(time.Minute); d != 0 {
		t.Fatalf("waited %v with nobody behind", d)
	}
	g.enter()
	if d := g.wait(0); d != 0 {
		t.Fatal("a zero bound must disable stalls")
	}
	g.leave()
}

func TestWriteDeadlineMovesLazily(t *testing.T) {
	sock := newFakeSocket(-1)
	base := time.Now()
	limit := base.Add(time.Hour)
	w := sockWriter{sock: sock, timeout: 10 * time.Second, limit: func(now time.Time) time.Time {
		return minTime(now.Add(10*time.Second), limit)
	}}
	for i := range 4 {
		if _, err := w.try([]byte("x"), nil, base.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if sock.deadlines != 1 {
		t.Fatalf("deadline set %d times over 4 writes within half the timeout, want once", sock.deadlines)
	}
	_, _ = w.try([]byte("x"), nil, base.Add(6*time.Second))
	if sock.deadlines != 2 {
		t.Fatalf("deadline set %d times, want it moved once it lagged by more than half the timeout", sock.deadlines)
	}
	limit = base.Add(7 * time.Second) // shutdown: the drain deadline is nearer
	_, _ = w.try([]byte("x"), nil, base.Add(6*time.Second))
	if sock.deadlines != 3 || !w.deadline.Equal(limit) {
		t.Fatalf("deadline %v (set %d times), want it moved closer to %v at once", w.deadline, sock.deadlines, limit)
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func TestCloseWhileWritingLosesTheBatchAndTearsDown(t *testing.T) {
	s := newUnitServer(t)
	sock := newFakeSocket(0)
	sock.hold = make(chan struct{}) // the client never reads
	c, _ := newUnitConn(t, s, sock)
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.count.Add(1)
	go c.readLoop()
	_, top := newTopic(t, 10, domain.DropOldest)
	subscribeConn(t, c, top)
	publishN(t, top, 3)

	flusher(t, s) // hands over: the writer goroutine waits in Write
	close(sock.closed)
	deadline := time.Now().Add(waitFor)
	for s.Connections() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the connection was not torn down")
		}
		time.Sleep(time.Millisecond) // polling the count teardown decrements; not a synchronisation
	}
	m, err := telemetrytest.Series(s.tel.Metrics.Registry, "pubsub_messages_dropped_total", map[string]string{"reason": telemetry.DropConnectionClosed})
	if err != nil {
		t.Fatal(err)
	}
	if v := telemetrytest.Value(m); v != 3 {
		t.Fatalf("dropped{connection_closed} = %v, want the 3 events of the batch that never reached the client", v)
	}
	m, err = telemetrytest.Series(s.tel.Metrics.Registry, "pubsub_ws_connections_closed_total", map[string]string{"code": "1006"})
	if err != nil || telemetrytest.Value(m) != 1 {
		t.Fatalf("connections closed with 1006: %v, %v", m, err)
	}
}
