package ws_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/pubsubd/pubsub/internal/config"
	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/service"
	"github.com/pubsubd/pubsub/internal/transport/ws"
)

// The write side's byte bounds (#11): a connection's batch, its unread replies, and a write timeout
// that cuts only a peer that makes no progress.

// liveHeap returns the bytes of live heap objects, after a collection: what the process holds, not
// the garbage it has not collected yet.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// publishBehind publishes like publishDirect on another goroutine, so that the test's client reads
// meanwhile; the test waits for it in its cleanup.
func publishBehind(t *testing.T, s *testServer, topic string, n, size int) {
	done := make(chan struct{})
	t.Cleanup(func() { <-done })
	go func() {
		defer close(done)
		payload := []byte(`"` + strings.Repeat("x", size-2) + `"`)
		for range n {
			if _, err := s.Svc.Publish(context.Background(), service.PublishRequest{Topic: domain.TopicName(topic),
				Message: domain.Message{ID: uuid.New(), Payload: payload}}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
}

// publishDirect publishes n messages whose payload is a JSON string of size bytes, through the
// service (no publishing client to slow the test down).
func publishDirect(t *testing.T, s *testServer, topic string, n, size int) {
	t.Helper()
	payload := []byte(`"` + strings.Repeat("x", size-2) + `"`)
	for range n {
		if _, err := s.Svc.Publish(context.Background(), service.PublishRequest{Topic: domain.TopicName(topic),
			Message: domain.Message{ID: uuid.New(), Payload: payload}}); err != nil {
			t.Fatal(err)
		}
	}
}

// peekedFrame is a server frame read without decoding its (possibly large) JSON.
type peekedFrame struct {
	typ string
	seq uint64
}

// readRaw reads one text frame and picks its type and an event's seq out of the bytes: decoding a
// 1 MiB frame as JSON, hundreds of times under the race detector, would be most of the test.
func readRaw(c *websocket.Conn) (peekedFrame, error) {
	_ = c.SetReadDeadline(time.Now().Add(waitFor))
	_, data, err := c.ReadMessage()
	if err != nil {
		return peekedFrame{}, err
	}
	var f peekedFrame
	if i := bytes.Index(data, []byte(`"type":"`)); i >= 0 {
		rest := data[i+8:]
		f.typ = string(rest[:bytes.IndexByte(rest, '"')])
	}
	if f.typ == "event" {
		i := bytes.LastIndex(data, []byte(`"seq":`))
		rest := data[i+6:]
		end := bytes.IndexAny(rest, ",}")
		f.seq, _ = strconv.ParseUint(string(rest[:end]), 10, 64)
	}
	return f, nil
}

// TestLastNOfLargeMessagesIsNotCopiedWhole: a subscribe with last_n against a topic holding 100
// messages of 1 MiB used to copy the whole replay (and every other pending event of the connection)
// into one write buffer: 100 MiB per subscribe. The batch is bounded by bytes now, so the server's
// heap grows by a few events at most while a client reads such replays, one or four at once, and
// every event arrives once, in order.
func TestLastNOfLargeMessagesIsNotCopiedWhole(t *testing.T) {
	const (
		messages = 100
		size     = 1 << 20
		bound    = 32 << 20 // a few 1 MiB events in flight, the client's read buffers; the replay is 100 MiB
	)
	s := newServer(t, serverOpts{history: messages, queue: messages, ws: ws.Config{MaxFrameBytes: 2 << 20}})
	s.createTopic(t, "big")
	publishDirect(t, s, "big", messages, size)
	for _, subs := range []int{1, 4} {
		t.Run(strconv.Itoa(subs)+" subscriptions", func(t *testing.T) {
			c := s.dial(t)
			base := liveHeap()
			for i := range subs {
				c.send(map[string]any{"type": "subscribe", "topic": "big", "client_id": "r" + strconv.Itoa(subs) + "-" + strconv.Itoa(i),
					"last_n": messages, "request_id": strconv.Itoa(i)})
			}
			var peak uint64
			acks, events := 0, 0
			next := make([]uint64, subs) // events of different subscriptions interleave; each is in order
			for acks < subs || events < subs*messages {
				f, err := readRaw(c.conn)
				if err != nil {
					t.Fatalf("after %d acks and %d events: %v", acks, events, err)
				}
				switch f.typ {
				case "ack":
					acks++
				case "event":
					// Replays arrive in seq order per subscription; with one topic, the k-th
					// replay's n-th event is seq n, so count how often each seq was seen.
					events++
					matched := false
					for i := range next {
						if next[i]+1 == f.seq {
							next[i]++
							matched = true
							break
						}
					}
					if !matched {
						t.Fatalf("event seq %d out of order (next expected per subscription: %v)", f.seq, next)
					}
					if events%20 == 0 {
						peak = max(peak, liveHeap())
					}
				default:
					t.Fatalf("unexpected %q frame", f.typ)
				}
			}
			growth := int64(peak) - int64(base)
			t.Logf("%d subscribe(s) with last_n=%d of %d KiB messages: peak live heap growth %.1f MiB (bound %d MiB)",
				subs, messages, size>>10, float64(growth)/(1<<20), bound>>20)
			if growth > bound {
				t.Fatalf("peak live heap grew by %.1f MiB reading the replays; want at most %d MiB", float64(growth)/(1<<20), bound>>20)
			}
		})
	}
}

// TestWideFanOutOnOneConnectionIsBounded: 20,000 subscriptions on one connection and one 10 KB
// publish used to build a 200 MB batch. The batch is bounded by bytes, so the heap grows by far less
// while the client reads the 20,000 events, and it gets all of them.
func TestWideFanOutOnOneConnectionIsBounded(t *testing.T) {
	const (
		subs  = 20000
		size  = 10_000
		bound = 48 << 20 // the events are 200 MB
	)
	s := newServer(t, serverOpts{})
	s.createTopic(t, "wide")
	c := s.dial(t)
	// Subscribe while reading the acks: the replies of a client that does not read are bounded.
	sent := make(chan error, 1)
	go func() {
		for i := range subs {
			b := []byte(`{"type":"subscribe","topic":"wide","client_id":"w` + strconv.Itoa(i) + `"}`)
			_ = c.conn.SetWriteDeadline(time.Now().Add(waitFor))
			if err := c.conn.WriteMessage(websocket.TextMessage, b); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	for i := range subs {
		f, err := readRaw(c.conn)
		if err != nil || f.typ != "ack" {
			t.Fatalf("ack %d: %q %v", i, f.typ, err)
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	base := liveHeap()
	publishDirect(t, s, "wide", 1, size)
	var peak uint64
	for i := range subs {
		f, err := readRaw(c.conn)
		if err != nil || f.typ != "event" || f.seq != 1 {
			t.Fatalf("event %d: %q seq %d, %v", i, f.typ, f.seq, err)
		}
		if i%2000 == 0 {
			peak = max(peak, liveHeap())
		}
	}
	growth := int64(peak) - int64(base)
	t.Logf("%d subscriptions on one connection, one %d-byte publish: peak live heap growth %.1f MiB (bound %d MiB)",
		subs, size, float64(growth)/(1<<20), bound>>20)
	if growth > bound {
		t.Fatalf("peak live heap grew by %.1f MiB; want at most %d MiB", float64(growth)/(1<<20), bound>>20)
	}
	c.barrier() // and the connection still answers
}

// TestUnreadRepliesAreBoundedByBytes: a client that sends requests and never reads its replies is
// closed with 1008 once the replies waiting for it pass ReplyMaxBytes, and it is counted; the
// server goes on serving others.
func TestUnreadRepliesAreBoundedByBytes(t *testing.T) {
	s := newServer(t, serverOpts{limits: config.Limits{ReplyMaxBytes: 4096},
		// Only the reply limit may act on the client that does not read, never the write timeout.
		ws: ws.Config{WriteTimeout: stalledPeerWriteTimeout(t)}})
	before := metric(t, s, "pubsub_limit_rejections_total", "limit", "replies")
	c := dialSmallBuffer(t, s)
	ping := []byte(`{"type":"ping","request_id":"` + strings.Repeat("p", 64) + `"}`)
	// Until the server has refused: the pongs fill the client's socket buffers, then the outbox.
	for i := 1; i%1000 != 0 || metric(t, s, "pubsub_limit_rejections_total", "limit", "replies") == before; i++ {
		if i == 1_000_000 {
			t.Fatal("a million unread pongs and no refusal")
		}
		_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
		if err := c.conn.WriteMessage(websocket.TextMessage, ping); err != nil {
			break // the server has stopped reading us
		}
	}
	expectMetric(t, s, before+1, "pubsub_limit_rejections_total", "limit", "replies")
	for {
		_, err := readRaw(c.conn)
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			if ce.Code != websocket.ClosePolicyViolation || ce.Text != "replies not read" {
				t.Fatalf("closed with %d %q; want 1008 \"replies not read\"", ce.Code, ce.Text)
			}
			break
		}
		if err != nil {
			t.Fatalf("want close 1008, got %v", err)
		}
	}
	other := s.dial(t)
	other.barrier()
}

// throttledConn reads at most chunk bytes per Read and pauses pause after each: a client that reads
// steadily, at a pace far below what the server writes.
type throttledConn struct {
	net.Conn
	chunk int
	pause time.Duration
}

func (c *throttledConn) Read(b []byte) (int, error) {
	time.Sleep(c.pause) // the pace of a slow client, not a synchronisation
	return c.Conn.Read(b[:min(len(b), c.chunk)])
}

// dialThrottled dials with a small receive buffer and reads at chunk bytes per pause.
func dialThrottled(t *testing.T, s *testServer, chunk int, pause time.Duration) *client {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: waitFor, ReadBufferSize: chunk, NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		_ = c.(*net.TCPConn).SetReadBuffer(256 << 10) // not less: see dialSmallBuffer
		return &throttledConn{Conn: c, chunk: chunk, pause: pause}, nil
	}}
	c, resp, err := d.Dial("ws"+strings.TrimPrefix(s.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &client{t: t, conn: c}
}

// TestSlowSteadyReaderIsNotCutByTheWriteTimeout: a client that reads slowly but steadily is not cut
// by the write timeout, although a write to it takes several write timeouts: each write that moves
// bytes gets a new deadline. The batch limit is raised so that one write holds all the events (as
// one did before batches were bounded): the write timeout alone is under test.
//
// "Moves bytes" is as the kernel sees it: a writer blocked on a full socket is woken once about half
// the send buffer (which Linux grows to 4 MiB) has drained. So the client reads 32 KiB per 4 ms, at
// most 8 MB/s, and the write timeout is a second: 2 MiB drain in a quarter of it.
func TestSlowSteadyReaderIsNotCutByTheWriteTimeout(t *testing.T) {
	const (
		messages = 256
		size     = 64 << 10 // 16 MiB in all: two seconds at least, two write timeouts
	)
	s := newServer(t, serverOpts{queue: 1000, history: messages, limits: config.Limits{BatchMaxBytes: 64 << 20},
		ws: ws.Config{WriteTimeout: time.Second}})
	s.createTopic(t, "slow")
	c := dialThrottled(t, s, 32<<10, 4*time.Millisecond)
	c.subscribe("slow", "slow", 0)
	publishBehind(t, s, "slow", messages, size)
	for i := 1; i <= messages; i++ {
		f, err := readRaw(c.conn)
		if err != nil || f.typ != "event" || f.seq != uint64(i) {
			t.Fatalf("event %d: %q seq %d, %v", i, f.typ, f.seq, err)
		}
	}
	c.barrier()
	if n := s.WS.Connections(); n != 1 {
		t.Fatalf("%d connections; want the slow reader's", n)
	}
}

// TestSlowSteadyReaderGetsItsOverflowPolicy: with the default batch limit, a slow reader whose
// queue overflows is told of the drops (drop_oldest) and goes on reading; it is never cut.
func TestSlowSteadyReaderGetsItsOverflowPolicy(t *testing.T) {
	// 19 MiB published at once, read at 16 KiB per 4 ms (4 MB/s at most): the queue of 10 and the
	// socket buffers (a few MiB) overflow whatever the machine's speed.
	const messages, size = 300, 64 << 10
	s := newServer(t, serverOpts{queue: 10, ws: ws.Config{WriteTimeout: 2 * time.Second}})
	s.createTopic(t, "slow")
	c := dialThrottled(t, s, 16<<10, 4*time.Millisecond)
	c.subscribe("slow", "slow", 0)
	publishBehind(t, s, "slow", messages, size)
	notices, last := 0, uint64(0)
	for last < messages {
		f, err := readRaw(c.conn)
		switch {
		case err != nil:
			t.Fatalf("after seq %d: %v", last, err)
		case f.typ == "error":
			notices++
		case f.typ == "event":
			if f.seq <= last {
				t.Fatalf("seq %d after %d", f.seq, last)
			}
			last = f.seq
		}
	}
	if notices == 0 {
		t.Fatal("no SLOW_CONSUMER notice although the queue of 10 overflowed")
	}
	expectPositive(t, s, "pubsub_messages_dropped_total", "reason", "overflow_drop_oldest")
	c.barrier()
}

// TestNonReadingPeerIsCutByTheWriteTimeout: a peer that reads nothing is still cut once a write to
// it has moved nothing for the write timeout, and what it did not get is counted.
func TestNonReadingPeerIsCutByTheWriteTimeout(t *testing.T) {
	s := newServer(t, serverOpts{queue: 1000, ws: ws.Config{WriteTimeout: 300 * time.Millisecond}})
	s.createTopic(t, "deaf")
	c := dialSmallBuffer(t, s)
	c.subscribe("deaf", "deaf", 0)
	// 24 MiB: more than the socket buffers on both sides hold.
	publishDirect(t, s, "deaf", 384, 64<<10)
	deadline := time.Now().Add(waitFor)
	for s.WS.Connections() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the peer that reads nothing was not cut")
		}
		time.Sleep(5 * time.Millisecond) // polling with a deadline
	}
	expectPositive(t, s, "pubsub_messages_dropped_total", "reason", "connection_closed")
	other := s.dial(t)
	other.barrier()
}

// TestBufferBudgetRefusedWritesSmallerBatches: when the shared buffer budget refuses a batch's
// growth past the connection's own allowance, the batch goes out at that size, the refusal is
// counted, and the client gets everything, in order.
func TestBufferBudgetRefusedWritesSmallerBatches(t *testing.T) {
	const messages = 50
	s := newServer(t, serverOpts{limits: config.Limits{BufferMaxBytes: 1}})
	s.createTopic(t, "small")
	c := s.dial(t)
	c.subscribe("small", "small", 0)
	before := metric(t, s, "pubsub_limit_rejections_total", "limit", "buffer_memory")
	publishDirect(t, s, "small", messages, 8<<10)
	for i := 1; i <= messages; i++ {
		f, err := readRaw(c.conn)
		if err != nil || f.typ != "event" || f.seq != uint64(i) {
			t.Fatalf("event %d: %q seq %d, %v", i, f.typ, f.seq, err)
		}
	}
	if v := metric(t, s, "pubsub_limit_rejections_total", "limit", "buffer_memory"); v <= before {
		t.Fatalf("buffer_memory refusals %v; want more than %v", v, before)
	}
}

// TestOversizedEventsUnderARefusingBudgetAreNotCopied: when the shared buffer budget refuses a
// batch the growth an event larger than the connection's allowance needs, the event goes out from
// its own shared bytes (the batch's tail), not from a copy per connection. Subscribers that read get
// every event whole, in order, byte for byte; subscribers that read nothing hold no copy of the
// event they are stuck on, so the heap does not grow by connections x event size; the refusal is
// counted.
func TestOversizedEventsUnderARefusingBudgetAreNotCopied(t *testing.T) {
	s := newServer(t, serverOpts{queue: 100, history: 100, ws: ws.Config{MaxFrameBytes: 2 << 20},
		limits: config.Limits{BufferMaxBytes: 1, QueueMaxBytes: 64 << 20, HistoryMaxBytes: 64 << 20, EventMaxBytes: 1 << 30}})

	t.Run("readers get every event whole", func(t *testing.T) {
		const (
			readers = 3
			events  = 4
			size    = 512 << 10
		)
		s.createTopic(t, "large")
		cs := make([]*client, readers)
		for i := range cs {
			cs[i] = s.dial(t)
			cs[i].subscribe("large", "reader-"+strconv.Itoa(i), 0)
		}
		before := metric(t, s, "pubsub_limit_rejections_total", "limit", "buffer_memory")
		payloads := make([][]byte, events)
		for i := range payloads {
			payloads[i] = []byte(`"` + strings.Repeat(string(rune('a'+i)), size-2) + `"`)
			if _, err := s.Svc.Publish(context.Background(), service.PublishRequest{Topic: "large",
				Message: domain.Message{ID: uuid.New(), Payload: payloads[i]}}); err != nil {
				t.Fatal(err)
			}
		}
		for r, c := range cs {
			for i := range events {
				f := c.expect("event")
				if f.Seq != uint64(i+1) || f.Message == nil || !bytes.Equal(f.Message.Payload, payloads[i]) {
					t.Fatalf("reader %d, event %d: seq %d, payload not the one published", r, i+1, f.Seq)
				}
			}
			c.barrier() // and nothing else, nothing twice
		}
		if v := metric(t, s, "pubsub_limit_rejections_total", "limit", "buffer_memory"); v < before+readers {
			t.Fatalf("buffer_memory refusals %v, want at least one per reader beyond %v", v, before)
		}
	})

	t.Run("stalled subscribers hold no copies", func(t *testing.T) {
		const (
			conns  = 20
			events = 10 // per connection more than its socket buffers hold on both sides
			size   = 1 << 20
		)
		// What the events cost the process themselves (history, queues share them): measured on
		// a topic nobody reads.
		s.createTopic(t, "control")
		base := liveHeap()
		publishDirect(t, s, "control", events, size)
		shared := int64(liveHeap()) - int64(base)

		s.createTopic(t, "stalled")
		for i := range conns {
			c := dialSmallBuffer(t, s)
			c.subscribe("stalled", "stalled-"+strconv.Itoa(i), 0) // then never reads again
		}
		before := metric(t, s, "pubsub_limit_rejections_total", "limit", "buffer_memory")
		base = liveHeap()
		publishDirect(t, s, "stalled", events, size)
		waitMetric(t, s, "a refusal per stalled connection", func(v float64) bool { return v >= before+conns },
			"pubsub_limit_rejections_total", "limit", "buffer_memory")
		growth := int64(liveHeap()) - int64(base)
		const slack = 6 << 20 // each connection's allowance, scratch; a copy each would be 20 MiB
		t.Logf("%d stalled connections, %d events of %d KiB: heap growth %.1f MiB, of which the events themselves %.1f MiB",
			conns, events, size>>10, float64(growth)/(1<<20), float64(shared)/(1<<20))
		if growth > shared+slack {
			t.Fatalf("heap grew by %.1f MiB, the events themselves take %.1f MiB: want at most %d MiB more, not a copy per connection",
				float64(growth)/(1<<20), float64(shared)/(1<<20), slack>>20)
		}
	})
}
