package ws

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/transport/wire"
	"github.com/pubsubd/pubsub/internal/transport/wsframe"
)

// An event larger than the room that the budget will not grow the buffer for goes as the batch's
// tail: its bytes are not copied, the buffer stays at the allowance, nothing is framed after it,
// and the ping and replies it would have been followed by lead the next batch's replies.
func TestBatchTailWhenTheBudgetRefuses(t *testing.T) {
	_, top := newTopic(t, 10, domain.DropOldest)
	sub := subscribeLive(t, top, "c", 0)
	sub.Release()
	publishSized(t, top, 3, 64<<10)

	budget := domain.NewBudget(1)
	b := batch{limit: 256 << 10, budget: budget}
	defer b.release()
	subs := []*domain.Subscription{sub}
	info := reply{typ: wire.TypeInfo, data: wire.AppendInfo(nil, "", "hello", time.Now())}
	b.build(subs, []reply{info}, true, time.Now(), nil)
	if b.tail == nil || !b.refused || !b.more {
		t.Fatalf("tail %d bytes, refused %v, more %v: want a tail, a refusal and more to come", len(b.tail), b.refused, b.more)
	}
	if cap(b.buf) != writeAllowance || budget.Used() != 0 {
		t.Fatalf("buffer cap %d, budget used %d: the event was copied past the allowance", cap(b.buf), budget.Used())
	}
	if len(b.buf)+len(b.tail) > writeAllowance+len(b.tail) || len(b.tail) < 48<<10 {
		t.Fatalf("buffer %d bytes, tail %d: want the allowance at most in the buffer, the rest by reference", len(b.buf), len(b.tail))
	}
	fs := parseFrames(t, append(append([]byte(nil), b.buf...), b.tail...))
	if len(fs) != 1 || fs[0].seq != 1 || b.st.delivered != 1 || b.st.frames[1] != 1 || b.st.bytes[1] < 64<<10 {
		t.Fatalf("tail batch %+v (stats %+v): want event 1 alone, counted whole", fs, b.st)
	}

	// The batches that follow: the carried ping and reply go out with no event larger than the
	// room ahead of them, then the next events, each a tail, in order.
	var all []frame
	for range 10 {
		b.reset()
		b.build(subs, nil, false, time.Now(), nil)
		all = append(all, parseFrames(t, append(append([]byte(nil), b.buf...), b.tail...))...)
		if !b.more {
			break
		}
	}
	var got []string
	for _, f := range all {
		switch {
		case f.op == wsframe.OpPing:
			got = append(got, "ping")
		case f.typ == wire.TypeInfo:
			got = append(got, f.msg)
		default:
			got = append(got, f.typ+string(rune('0'+f.seq)))
		}
	}
	if want := "[ping hello event2 event3]"; fmtList(got) != want {
		t.Fatalf("batches after the tail: %v, want %s", got, want)
	}
	if budget.Used() != 0 {
		t.Fatalf("budget used %d", budget.Used())
	}
}

func fmtList(s []string) string {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, x := range s {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(x)
	}
	b.WriteByte(']')
	return b.String()
}

// When the budget grants the growth, a large event is copied into the grown buffer as before, and
// the batch goes on after it.
func TestBatchCopiesALargeEventTheBudgetGrants(t *testing.T) {
	_, top := newTopic(t, 10, domain.DropOldest)
	sub := subscribeLive(t, top, "c", 0)
	sub.Release()
	publishSized(t, top, 1, 64<<10)
	budget := domain.NewBudget(1 << 20)
	b := batch{limit: 256 << 10, budget: budget}
	defer b.release()
	info := reply{typ: wire.TypeInfo, data: wire.AppendInfo(nil, "", "hello", time.Now())}
	b.build([]*domain.Subscription{sub}, []reply{info}, false, time.Now(), nil)
	if b.tail != nil || b.refused || budget.Used() == 0 || budget.Used() != b.held {
		t.Fatalf("tail %d, refused %v, used %d, held %d: want a copy taken from the budget", len(b.tail), b.refused, budget.Used(), b.held)
	}
	fs := parseFrames(t, b.buf)
	if len(fs) != 2 || fs[0].seq != 1 || fs[1].msg != "hello" {
		t.Fatalf("batch %+v: want event 1 then the reply", fs)
	}
}

// A subscription that ends with an event that became a tail: its end notice is carried.
func TestBatchTailCarriesTheEndNotice(t *testing.T) {
	_, top := newTopic(t, 10, domain.DropOldest)
	sub := subscribeLive(t, top, "c", 0)
	sub.Release()
	publishSized(t, top, 1, 64<<10)
	// Another owner takes the client id over: sub flushes its event, then ends.
	if _, err := top.Subscribe(domain.SubscribeSpec{ClientID: "c", Owner: &otherWaker{}}); err != nil {
		t.Fatal(err)
	}
	b := batch{limit: 256 << 10, budget: domain.NewBudget(1)}
	defer b.release()
	var all []frame
	subs := []*domain.Subscription{sub}
	for range 5 {
		b.build(subs, nil, false, time.Now(), nil)
		all = append(all, parseFrames(t, append(append([]byte(nil), b.buf...), b.tail...))...)
		if len(b.ended) > 0 {
			subs = nil // as the writer forgets it (settle)
		}
		more := b.more
		b.reset()
		if !more {
			break
		}
	}
	if len(all) != 2 || all[0].seq != 1 || all[1].msg != wire.InfoSubscriptionReplaced {
		t.Fatalf("frames %+v: want event 1, then the replaced notice", all)
	}
}

type otherWaker struct{ _ byte }

func (*otherWaker) Wake() {}

// scriptSocket takes, at each write, what its script says: step.n bytes (-1: all), then step.err.
type scriptSocket struct {
	script    []step
	written   []byte
	calls     []string
	deadlines int
}

type step struct {
	n   int
	err error
}

func (s *scriptSocket) take(kind string, b []byte) (int, error) {
	s.calls = append(s.calls, kind)
	st := step{n: -1}
	if len(s.script) > 0 {
		st, s.script = s.script[0], s.script[1:]
	}
	n := len(b)
	if st.n >= 0 {
		n = min(n, st.n)
	}
	s.written = append(s.written, b[:n]...)
	return n, st.err
}

func (s *scriptSocket) TryWrite(b []byte) (int, error)   { return s.take("try", b) }
func (s *scriptSocket) Write(b []byte) (int, error)      { return s.take("write", b) }
func (s *scriptSocket) SetWriteDeadline(time.Time) error { s.deadlines++; return nil }
func (s *scriptSocket) CloseWrite() error                { return nil }

// sockWriter writes a batch's buffer, then its tail, whatever pieces the socket takes them in.
func TestSockWriterWritesBufferThenTail(t *testing.T) {
	buf, tail := []byte("0123456789"), []byte("abcdefghijklmnopqrst")
	want := "0123456789abcdefghijklmnopqrst"
	full := step{n: 0} // a non-blocking write that finds the socket full
	late := func(n int) step { return step{n: n, err: os.ErrDeadlineExceeded} }
	boom := errors.New("boom")
	tests := []struct {
		name      string
		patience  time.Duration
		script    []step
		done      bool
		stuck     int
		wantErr   error
		wantCalls string
	}{
		{"all at once", 0, nil, true, 0, nil, "[try try]"},
		{"buffer partly", 0, []step{{n: 3}}, false, 0, nil, "[try write write]"},
		{"buffer whole, tail partly", 0, []step{{n: -1}, {n: 5}}, false, 0, nil, "[try try write]"},
		{"socket full at the tail", 0, []step{{n: -1}, full}, false, 0, nil, "[try try write]"},
		{"write timeout with progress", 0, []step{{n: 3}, late(2), {n: -1}, late(4), {n: -1}}, false, 0, nil, "[try write write write write]"},
		{"patience runs out in the buffer", time.Second, []step{{n: 3}, late(2)}, false, 1, nil, "[try write write write]"},
		{"patience runs out in the tail", time.Second, []step{{n: 3}, {n: -1}, late(4)}, false, 1, nil, "[try write write write]"},
		{"patience enough", time.Second, []step{{n: 3}}, false, 0, nil, "[try write write]"},
		{"tail fails", 0, []step{{n: -1}, {n: 2, err: boom}}, false, 0, boom, "[try try]"},
		{"finish fails in the tail", 0, []step{{n: 3}, {n: -1}, {n: 1, err: boom}}, false, 0, boom, "[try write write]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock := &scriptSocket{script: tt.script}
			w := sockWriter{sock: sock, timeout: time.Minute, patience: tt.patience,
				limit: func(now time.Time) time.Time { return now.Add(time.Minute) }}
			done, err := w.try(buf, tail, time.Now())
			if done != tt.done {
				t.Fatalf("try: done %v, want %v", done, tt.done)
			}
			if err == nil && !done {
				if !w.pending() {
					t.Fatal("a batch try did not finish is not pending")
				}
				stuck := 0
				err = w.finish(time.Now(), func() { stuck++ })
				if stuck != tt.stuck {
					t.Fatalf("stuck told %d times, want %d", stuck, tt.stuck)
				}
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			if got := fmtList(sock.calls); got != tt.wantCalls {
				t.Fatalf("calls %s, want %s", got, tt.wantCalls)
			}
			if w.pending() {
				t.Fatal("still pending after finish")
			}
			if tt.wantErr == nil && string(sock.written) != want {
				t.Fatalf("written %q, want %q", sock.written, want)
			}
		})
	}
}

// Under a refusing budget a batch holds its allowance, what the budget granted, and the replies
// framed after its events, nothing more: frame headers and notices fit the slack every drain keeps.
func TestBatchBufferBoundUnderARefusingBudget(t *testing.T) {
	var subs []*domain.Subscription
	for i := range 4 {
		_, top := newTopic(t, 1000, domain.DropOldest)
		sub := subscribeLive(t, top, "c"+string(rune('0'+i)), 0)
		sub.Release()
		publishSized(t, top, 300, 100)
		subs = append(subs, sub)
	}
	var replies []reply
	framed := 2 // the ping
	for range 10 {
		r := reply{typ: wire.TypeInfo, data: wire.AppendInfo(nil, "", "hello", time.Now())}
		replies = append(replies, r)
		framed += maxHeader + len(r.data)
	}
	b := batch{limit: 256 << 10, budget: domain.NewBudget(1)}
	defer b.release()
	b.build(subs, replies, true, time.Now(), nil)
	if !b.refused || b.held != 0 {
		t.Fatalf("refused %v, held %d: want a refused growth", b.refused, b.held)
	}
	if limit := writeAllowance + framed; cap(b.buf) > limit {
		t.Fatalf("buffer capacity %d, want at most the allowance and the replies, %d", cap(b.buf), limit)
	}
	if fs := parseFrames(t, b.buf); len(seqsOf(fs)) == 0 || fs[len(fs)-1].msg != "hello" {
		t.Fatal("the batch has no events, or does not end with the replies")
	}
}
