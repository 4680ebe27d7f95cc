package ws

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/transport/wire"
	"github.com/pubsubd/pubsub/internal/transport/wsframe"
)

// nopWaker owns subscriptions in tests that drain them by hand.
type nopWaker struct{}

func (nopWaker) Wake() {}

// frame is one frame of a batch, as a client would read it.
type frame struct {
	op   byte
	typ  string // the JSON "type" of a text frame
	seq  uint64 // of an event
	code string // of an error
	msg  string // of an info
}

// parseFrames reads every frame in b, which must hold whole frames only.
func parseFrames(t *testing.T, b []byte) []frame {
	t.Helper()
	s := wsframe.Stream{MinBuf: 512, MaxBuf: 1 << 20}
	s.Write(b)
	var out []frame
	for {
		op, p, ok, err := s.Next()
		if err != nil {
			t.Fatalf("batch does not parse: %v", err)
		}
		if !ok {
			if !s.Idle() {
				t.Fatalf("batch ends inside a frame")
			}
			return out
		}
		f := frame{op: op}
		if op == wsframe.OpText {
			var v struct {
				Type  string `json:"type"`
				Msg   string `json:"msg"`
				Seq   uint64 `json:"seq"`
				Error struct {
					Code string `json:"code"`
				} `json:"error"`
			}
			if err := json.Unmarshal(p, &v); err != nil {
				t.Fatalf("text frame %q: %v", p, err)
			}
			f.typ, f.seq, f.code, f.msg = v.Type, v.Seq, v.Error.Code, v.Msg
		}
		out = append(out, f)
	}
}

// newTopic returns a topic of a fresh registry that encodes events for the wire.
func newTopic(t *testing.T, queue int, p domain.Policy) (*domain.Registry, *domain.Topic) {
	t.Helper()
	reg := domain.NewRegistry(domain.TopicConfig{HistorySize: 100, QueueSize: queue, Policy: p, Encoder: wire.EventEncoder})
	top, err := reg.Create("orders", "epoch-1")
	if err != nil {
		t.Fatal(err)
	}
	return reg, top
}

func publishN(t *testing.T, top *domain.Topic, n int) {
	t.Helper()
	for range n {
		if _, _, err := top.Publish(domain.Message{ID: uuid.New(), Payload: []byte(`{"n":1}`)}); err != nil {
			t.Fatal(err)
		}
	}
}

func subscribeLive(t *testing.T, top *domain.Topic, id string, lastN int) *domain.Subscription {
	t.Helper()
	res, err := top.Subscribe(domain.SubscribeSpec{ClientID: id, Owner: nopWaker{}, LastN: lastN})
	if err != nil {
		t.Fatal(err)
	}
	return res.Sub
}

func seqsOf(fs []frame) []uint64 {
	var out []uint64
	for _, f := range fs {
		if f.typ == wire.TypeEvent {
			out = append(out, f.seq)
		}
	}
	return out
}

func TestBatchHoldsReplayUntilTheAckIsFramed(t *testing.T) {
	_, top := newTopic(t, 10, domain.DropOldest)
	publishN(t, top, 3)
	sub := subscribeLive(t, top, "c", 2)
	publishN(t, top, 1)
	ack := reply{typ: wire.TypeAck, data: wire.AppendAck(nil, nil, "orders", time.Now()), release: sub}

	var b batch
	b.build([]*domain.Subscription{sub}, []reply{ack}, false, time.Now(), nil)
	fs := parseFrames(t, b.buf)
	if len(fs) != 1 || fs[0].typ != wire.TypeAck {
		t.Fatalf("first batch = %+v, want the ack alone: nothing of the subscription may precede it", fs)
	}
	if !b.more {
		t.Fatal("an ack that releases a replay must ask for another batch")
	}
	b.reset()
	b.build([]*domain.Subscription{sub}, nil, false, time.Now(), nil)
	if got := seqsOf(parseFrames(t, b.buf)); fmt.Sprint(got) != "[2 3 4]" {
		t.Fatalf("second batch seqs = %v, want the replay 2 3 then the live 4", got)
	}
	if b.st.delivered != 3 || b.st.frames[1] != 3 || b.st.oldest == nil || b.st.oldest.Seq != 2 {
		t.Fatalf("stats = %+v, want 3 events delivered, the oldest seq 2", b.st)
	}
	if b.more {
		t.Fatal("more set with nothing left")
	}
}

func TestBatchOrder(t *testing.T) {
	_, top := newTopic(t, 10, domain.DropOldest)
	sub := subscribeLive(t, top, "c", 0)
	sub.Release()
	publishN(t, top, 2)
	pong := reply{typ: wire.TypePong, data: wire.AppendPong(nil, nil, time.Now())}
	ctl := reply{data: []byte("hi")} // a WebSocket ping's payload, answered with a pong control frame

	var b batch
	b.build([]*domain.Subscription{sub}, []reply{pong, ctl}, true, time.Now(), nil)
	fs := parseFrames(t, b.buf)
	want := []frame{
		{op: wsframe.OpText, typ: wire.TypeEvent, seq: 1}, {op: wsframe.OpText, typ: wire.TypeEvent, seq: 2},
		{op: wsframe.OpPing}, {op: wsframe.OpText, typ: wire.TypePong}, {op: wsframe.OpPong},
	}
	if fmt.Sprint(fs) != fmt.Sprint(want) {
		t.Fatalf("frames = %+v\nwant     %+v (events queued before a reply leave before it)", fs, want)
	}
	if b.st.frames[typeIndex(wire.TypePong)] != 1 || b.st.frames[typeIndex(wire.TypeEvent)] != 2 {
		t.Fatalf("frames by type = %v", b.st.frames)
	}
}

func TestBatchTakesAtMostMaxDrainPerSubscription(t *testing.T) {
	_, top := newTopic(t, 2*maxDrain, domain.DropOldest)
	a, c := subscribeLive(t, top, "a", 0), subscribeLive(t, top, "b", 0)
	a.Release()
	c.Release()
	publishN(t, top, maxDrain+1)

	var b batch
	b.build([]*domain.Subscription{a, c}, nil, false, time.Now(), nil)
	if n := len(seqsOf(parseFrames(t, b.buf))); n != 2*maxDrain || !b.more {
		t.Fatalf("first batch: %d events, more=%v; want %d and more", n, b.more, 2*maxDrain)
	}
	b.reset()
	b.build([]*domain.Subscription{a, c}, nil, false, time.Now(), nil)
	if got := seqsOf(parseFrames(t, b.buf)); fmt.Sprint(got) != fmt.Sprint([]uint64{maxDrain + 1, maxDrain + 1}) || b.more {
		t.Fatalf("second batch seqs = %v, more=%v", got, b.more)
	}
}

func TestBatchReportsDropsBeforeTheEvents(t *testing.T) {
	_, top := newTopic(t, 3, domain.DropOldest)
	sub := subscribeLive(t, top, "c", 0)
	sub.Release()
	publishN(t, top, 5)

	var b batch
	b.build([]*domain.Subscription{sub}, nil, false, time.Now(), nil)
	fs := parseFrames(t, b.buf)
	if len(fs) != 4 || fs[0].code != wire.CodeSlowConsumer || fmt.Sprint(seqsOf(fs)) != "[3 4 5]" {
		t.Fatalf("frames = %+v, want SLOW_CONSUMER then seqs 3 4 5", fs)
	}
	if len(b.drops) != 1 || b.drops[0].sub != sub || b.drops[0].n != 2 {
		t.Fatalf("drops = %+v, want 2 for the subscription", b.drops)
	}
}

func TestBatchStopsAtAnOverflow(t *testing.T) {
	_, top := newTopic(t, 2, domain.Disconnect)
	ok, full := subscribeLive(t, top, "ok", 0), subscribeLive(t, top, "full", 0)
	ok.Release()
	full.Release()
	publishN(t, top, 2)
	ok.Drain(nil, 10) // ok keeps up; full does not
	publishN(t, top, 1)

	var b batch
	b.build([]*domain.Subscription{ok, full}, []reply{{typ: wire.TypeAck, data: []byte(`{"type":"ack"}`)}}, false, time.Now(), nil)
	if b.overflow != full || b.lost != 3 {
		t.Fatalf("overflow = %v lost %d, want the full subscription with 3 lost", b.overflow, b.lost)
	}
	if fs := parseFrames(t, b.buf); fmt.Sprint(seqsOf(fs)) != "[3]" || len(fs) != 1 {
		t.Fatalf("frames = %+v, want only what came before the overflow", fs)
	}
}

func TestBatchEndNotices(t *testing.T) {
	reg, top := newTopic(t, 10, domain.DropOldest)
	sub := subscribeLive(t, top, "c", 0)
	sub.Release()
	publishN(t, top, 1)
	if err := reg.Delete("orders"); err != nil {
		t.Fatal(err)
	}
	var b batch
	b.build([]*domain.Subscription{sub}, nil, false, time.Now(), nil)
	fs := parseFrames(t, b.buf)
	if len(fs) != 1 || fs[0].typ != wire.TypeInfo || fs[0].msg != wire.InfoTopicDeleted {
		t.Fatalf("frames = %+v, want the topic_deleted notice alone", fs)
	}
	if len(b.ended) != 1 || b.ended[0] != sub || b.deletedLost != 1 {
		t.Fatalf("ended %v, deletedLost %d: want the subscription, 1 event lost", b.ended, b.deletedLost)
	}
}

func TestBatchKeepsOnlySampledEventsForSpans(t *testing.T) {
	_, top := newTopic(t, 10, domain.DropOldest)
	sub := subscribeLive(t, top, "c", 0)
	sub.Release()
	publishN(t, top, 4)
	var b batch
	b.build([]*domain.Subscription{sub}, nil, false, time.Now(), func(ev *domain.Event) bool { return ev.Seq%2 == 0 })
	if len(b.spans) != 1 || b.spans[0].clientID != "c" || len(b.spans[0].events) != 2 {
		t.Fatalf("spans = %+v, want events 2 and 4 for client c", b.spans)
	}
	b.release()
	if b.buf != nil || len(b.spans) != 0 {
		t.Fatal("release kept the buffer or the spans")
	}
}
