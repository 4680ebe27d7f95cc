package ws_test

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/pubsubd/pubsub/internal/service"
)

// batchRecorder is the service as the transport sees it, noting the size of every PublishBatch.
type batchRecorder struct {
	service.API
	batches bool // what BatchesPublishes says
	mu      sync.Mutex
	sizes   []int
}

func (b *batchRecorder) PublishBatch(items []service.PublishItem) {
	b.mu.Lock()
	b.sizes = append(b.sizes, len(items))
	b.mu.Unlock()
	b.API.PublishBatch(items)
}

// BatchesPublishes, true, makes the transport batch over the memory engine too (the service then
// publishes the items one by one), so that these tests see the transport's batching.
func (b *batchRecorder) BatchesPublishes() bool { return b.batches }

func (b *batchRecorder) largest() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := 0
	for _, n := range b.sizes {
		m = max(m, n)
	}
	return m
}

// batchServer is a test server whose publish batches are recorded.
func batchServer(t *testing.T) (*testServer, *batchRecorder) {
	rec := &batchRecorder{batches: true}
	s := newServer(t, serverOpts{wrap: func(a service.API) service.API { rec.API = a; return rec }})
	return s, rec
}

// maskedText is a client text frame (all-zero mask) of up to 64 KiB.
func maskedText(payload string) []byte {
	var f []byte
	if len(payload) < 126 {
		f = []byte{0x81, 0x80 | byte(len(payload))}
	} else {
		f = []byte{0x81, 0x80 | 126, 0, 0}
		binary.BigEndian.PutUint16(f[2:], uint16(len(payload)))
	}
	return append(append(f, 0, 0, 0, 0), payload...)
}

func publishJSON(topic, requestID string, payload int) string {
	return fmt.Sprintf(`{"type":"publish","topic":%q,"request_id":%q,"message":{"id":%q,"payload":%d}}`,
		topic, requestID, uuid.NewString(), payload)
}

// replyIDs reads n replies and returns "<type>:<request_id>" for each, pongs of the client's
// pings (control frames) as "control-pong".
func replyIDs(t *testing.T, conn *websocket.Conn, pongs chan string, n int) []string {
	t.Helper()
	c := &client{t: t, conn: conn}
	var out []string
	for len(out) < n {
		f := c.read()
		for len(pongs) > 0 {
			out = append(out, <-pongs)
		}
		if f.Type == "info" {
			continue
		}
		rid := ""
		if f.RequestID != nil {
			rid = *f.RequestID
		}
		out = append(out, f.Type+":"+rid)
	}
	return out
}

// events reads n events of sub and returns their topic, seq and payload.
func events(t *testing.T, sub *client, n int) []frame {
	t.Helper()
	out := make([]frame, 0, n)
	for len(out) < n {
		if f := sub.read(); f.Type == "event" {
			out = append(out, f)
		}
	}
	return out
}

func checkOrder(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d replies %v, want %v", len(got), got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("reply %d is %s, want %s\ngot  %v\nwant %v", i, got[i], want[i], got, want)
		}
	}
}

// checkEvents checks that evs are the payloads from..from+len-1 with consecutive seqs from 1.
func checkEvents(t *testing.T, evs []frame, payloads []int) {
	t.Helper()
	for i, ev := range evs {
		if ev.Seq != uint64(i+1) || string(ev.Message.Payload) != strconv.Itoa(payloads[i]) {
			t.Fatalf("event %d: seq %d payload %s, want seq %d payload %d", i, ev.Seq, ev.Message.Payload, i+1, payloads[i])
		}
	}
}

func TestPipelinedPublishesAreAckedInOrder(t *testing.T) {
	s, rec := batchServer(t)
	s.createTopic(t, "t")
	sub := s.dial(t)
	sub.subscribe("t", "s", 0)
	conn, nc := rawClient(t, s)
	pongs := make(chan string, 4)
	conn.SetPongHandler(func(string) error { pongs <- "control-pong"; return nil })

	// One write: 30 publishes, a JSON ping, a WebSocket ping, 20 publishes. The server reads
	// them together and serves the publishes in batches; every reply keeps its frame's place.
	var buf []byte
	var want []string
	var payloads []int
	for i := range 50 {
		if i == 30 {
			buf = append(buf, maskedText(`{"type":"ping","request_id":"ping"}`)...)
			buf = append(buf, 0x89, 0x80, 0, 0, 0, 0) // a ping control frame, empty
			want = append(want, "pong:ping", "control-pong")
		}
		rid := "p" + strconv.Itoa(i)
		buf = append(buf, maskedText(publishJSON("t", rid, i))...)
		want = append(want, "ack:"+rid)
		payloads = append(payloads, i)
	}
	if _, err := nc.Write(buf); err != nil {
		t.Fatal(err)
	}
	checkOrder(t, replyIDs(t, conn, pongs, len(want)), want)
	checkEvents(t, events(t, sub, 50), payloads)
	if rec.largest() < 2 {
		t.Fatalf("publishes read together were served one by one: batches %v", rec.sizes)
	}
}

func TestBadFrameInABatchIsAnsweredInOrder(t *testing.T) {
	s, _ := batchServer(t)
	s.createTopic(t, "t")
	sub := s.dial(t)
	sub.subscribe("t", "s", 0)
	conn, nc := rawClient(t, s)
	var buf []byte
	var want []string
	var payloads []int
	for i := range 10 {
		rid := "p" + strconv.Itoa(i)
		switch i {
		case 4:
			buf = append(buf, maskedText(`{"type":"publish","topic":"t","request_id":"bad"`)...)
			want = append(want, "error:")
		case 7:
			// A publish refused by the service (no message id) between two accepted ones.
			buf = append(buf, maskedText(`{"type":"publish","topic":"t","request_id":"noid","message":{"payload":1}}`)...)
			want = append(want, "error:noid")
		}
		buf = append(buf, maskedText(publishJSON("t", rid, i))...)
		want = append(want, "ack:"+rid)
		payloads = append(payloads, i)
	}
	if _, err := nc.Write(buf); err != nil {
		t.Fatal(err)
	}
	checkOrder(t, replyIDs(t, conn, nil, len(want)), want)
	checkEvents(t, events(t, sub, 10), payloads)
}

func TestBatchAcrossTopicsKeepsEachTopicsOrder(t *testing.T) {
	s, _ := batchServer(t)
	s.createTopic(t, "a")
	s.createTopic(t, "b")
	subA, subB := s.dial(t), s.dial(t)
	subA.subscribe("a", "sa", 0)
	subB.subscribe("b", "sb", 0)
	conn, nc := rawClient(t, s)
	var buf []byte
	var want []string
	var pa, pb []int
	for i := range 40 {
		topic := "a"
		if (i/3)%2 == 1 { // runs of three: a a a b b b a a a ...
			topic = "b"
		}
		if i == 20 {
			// A topic that does not exist fails its own publish only.
			buf = append(buf, maskedText(publishJSON("nope", "nope", i))...)
			want = append(want, "error:nope")
		}
		rid := topic + strconv.Itoa(i)
		buf = append(buf, maskedText(publishJSON(topic, rid, i))...)
		want = append(want, "ack:"+rid)
		if topic == "a" {
			pa = append(pa, i)
		} else {
			pb = append(pb, i)
		}
	}
	if _, err := nc.Write(buf); err != nil {
		t.Fatal(err)
	}
	checkOrder(t, replyIDs(t, conn, nil, len(want)), want)
	checkEvents(t, events(t, subA, len(pa)), pa)
	checkEvents(t, events(t, subB, len(pb)), pb)
}

func TestPublishesReadBeforeACloseFrameArePublished(t *testing.T) {
	s, _ := batchServer(t)
	s.createTopic(t, "t")
	sub := s.dial(t)
	sub.subscribe("t", "s", 0)
	conn, nc := rawClient(t, s)
	var buf []byte
	var payloads []int
	for i := range 20 {
		buf = append(buf, maskedText(publishJSON("t", "p"+strconv.Itoa(i), i))...)
		payloads = append(payloads, i)
	}
	// The close frame (code 1000) comes in the same write: reading ends after it, and the
	// publishes read before it are still published, not dropped with the batch.
	buf = append(buf, 0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8)
	if _, err := nc.Write(buf); err != nil {
		t.Fatal(err)
	}
	checkEvents(t, events(t, sub, 20), payloads)
	// Whatever replies the closing connection still wrote are acks, in order, before its close.
	c := &client{t: t, conn: conn}
	code, frames := c.expectClose()
	if code != websocket.CloseNormalClosure {
		t.Fatalf("close code %d, want 1000", code)
	}
	for i, f := range frames {
		if f.Type != "ack" || *f.RequestID != "p"+strconv.Itoa(i) {
			t.Fatalf("reply %d before the close is %s", i, f.raw)
		}
	}
}

// The bounds of a batch: a client that pipelines more than a batch holds gets every publish
// answered, in order.
func TestLongPipelineIsServedInBoundedBatches(t *testing.T) {
	s, rec := batchServer(t)
	s.createTopic(t, "t")
	conn, nc := rawClient(t, s)
	var buf []byte
	var want []string
	for i := range 300 {
		rid := "p" + strconv.Itoa(i)
		buf = append(buf, maskedText(publishJSON("t", rid, i))...)
		want = append(want, "ack:"+rid)
	}
	_ = nc.SetWriteDeadline(time.Now().Add(waitFor))
	if _, err := nc.Write(buf); err != nil {
		t.Fatal(err)
	}
	checkOrder(t, replyIDs(t, conn, nil, len(want)), want)
	if m := rec.largest(); m > 64 {
		t.Fatalf("a batch of %d publishes, more than the bound of 64", m)
	}
}

// The memory engine gains nothing from batches: its publishes are served one at a time, each
// looking at the stall gate, however many were read together.
func TestEngineWithoutBatchesIsServedOnePublishAtATime(t *testing.T) {
	rec := &batchRecorder{}
	s := newServer(t, serverOpts{wrap: func(a service.API) service.API { rec.API = a; return rec }})
	s.createTopic(t, "t")
	conn, nc := rawClient(t, s)
	var buf []byte
	var want []string
	for i := range 30 {
		rid := "p" + strconv.Itoa(i)
		buf = append(buf, maskedText(publishJSON("t", rid, i))...)
		want = append(want, "ack:"+rid)
	}
	if _, err := nc.Write(buf); err != nil {
		t.Fatal(err)
	}
	checkOrder(t, replyIDs(t, conn, nil, len(want)), want)
	if len(rec.sizes) != 0 {
		t.Fatalf("batches %v over an engine that does not batch", rec.sizes)
	}
}
