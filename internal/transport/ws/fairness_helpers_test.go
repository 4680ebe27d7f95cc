package ws_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	dto "github.com/prometheus/client_model/go"

	"github.com/pubsubd/pubsub/internal/transport/ws"
)

// seqPayload is the payload of the fairness tests' messages: publisher p's n-th message of round
// r, padded to the size a test asks for.
type seqPayload struct {
	R   int    `json:"r"`
	P   int    `json:"p"`
	N   int    `json:"n"`
	Pad string `json:"pad,omitempty"`
}

// publishFrames encodes publisher p's messages 0..n-1 of round r as publish frames, with request ids
// that name them.
func publishFrames(topic string, r, p, n, pad int) [][]byte {
	padding := strings.Repeat("x", pad)
	out := make([][]byte, n)
	for i := range out {
		out[i], _ = json.Marshal(map[string]any{"type": "publish", "topic": topic, "request_id": fmt.Sprintf("p%d-%d", p, i),
			"message": map[string]any{"id": uuid.NewString(), "payload": seqPayload{R: r, P: p, N: i, Pad: padding}}})
	}
	return out
}

// pipeline sends every frame without waiting, then reads one ack per frame, in order. It runs on
// a goroutine of its own, so it returns errors instead of failing the test. Each send has its own
// deadline: the server may stall a publisher many times, and how long all the sends take together
// depends on the machine's speed (one deadline for the whole run was a flake on a loaded machine:
// "publisher 0: send 582: i/o timeout" in TestStalledSubscriberStillGetsItsPolicy).
func pipeline(c *client, p int, frames [][]byte) error {
	for i, f := range frames {
		_ = c.conn.SetWriteDeadline(time.Now().Add(waitFor))
		if err := c.conn.WriteMessage(websocket.TextMessage, f); err != nil {
			return fmt.Errorf("publisher %d: send %d: %v", p, i, err)
		}
	}
	for i := range frames {
		f, err := c.tryRead(waitFor)
		for err == nil && f.Type == "info" && f.Msg == "ping" {
			f, err = c.tryRead(waitFor)
		}
		if err != nil {
			return fmt.Errorf("publisher %d: ack %d of %d: %v", p, i, len(frames), err)
		}
		if want := fmt.Sprintf("p%d-%d", p, i); f.Type != "ack" || f.RequestID == nil || *f.RequestID != want {
			return fmt.Errorf("publisher %d: got %.200s, want the ack of %s", p, f.raw, want)
		}
	}
	return nil
}

// tally is what one subscriber saw of a topic: its events, the drops it was told of, and the
// first things that were wrong.
type tally struct {
	events    int
	lastSeq   uint64
	notices   int    // SLOW_CONSUMER notices
	announced uint64 // drops they announced
	firstNote string
	problems  []string
	err       error // the read that ended it early
}

func (y *tally) problem(format string, args ...any) {
	if len(y.problems) < 5 {
		y.problems = append(y.problems, fmt.Sprintf(format, args...))
	}
}

// lossless reports what was wrong when a subscriber did not get every one of total events exactly
// once and in order, with no drop announced; "" when it did.
func (y *tally) lossless(total int) string {
	var b strings.Builder
	if y.events != total {
		fmt.Fprintf(&b, "received %d of %d events; ", y.events, total)
	}
	if y.notices > 0 {
		fmt.Fprintf(&b, "%d SLOW_CONSUMER notices announced %d drops (first %q); ", y.notices, y.announced, y.firstNote)
	}
	if len(y.problems) > 0 {
		fmt.Fprintf(&b, "problems: %s; ", strings.Join(y.problems, " | "))
	}
	if y.err != nil {
		fmt.Fprintf(&b, "reading ended: %v", y.err)
	}
	return strings.TrimSuffix(b.String(), "; ")
}

// readTopic reads c's frames of topic until the event with seq total (the topic's last message:
// drop_oldest never drops the newest), checking that seq only jumps by the drops a SLOW_CONSUMER
// notice announced just before, and that each publisher's messages of round r come in that
// publisher's order, each once. It runs on a goroutine of its own and never fails the test itself.
func readTopic(c *client, topic string, r, pubs, total int) *tally {
	y := &tally{}
	next := make([]int, pubs)
	var pending uint64 // announced and not yet seen as a seq gap
	for y.lastSeq < uint64(total) {
		f, err := c.tryRead(waitFor)
		if err != nil {
			y.err = err
			return y
		}
		switch {
		case f.Type == "info" && f.Msg == "ping":
		case f.Type == "error" && f.Error != nil && f.Error.Code == "SLOW_CONSUMER" && f.Topic == topic:
			var k uint64
			if _, err := fmt.Sscanf(f.Error.Message, "dropped %d messages", &k); err != nil {
				y.problem("SLOW_CONSUMER notice %q does not say how many were dropped", f.Error.Message)
			}
			if y.notices == 0 {
				y.firstNote = f.Error.Message
			}
			y.notices++
			y.announced += k
			pending += k
		case f.Type == "event" && f.Topic == topic && f.Message != nil:
			if f.Seq != y.lastSeq+1+pending {
				y.problem("seq %d after %d with %d drops announced", f.Seq, y.lastSeq, pending)
			}
			pending = 0
			y.lastSeq = f.Seq
			y.events++
			var m seqPayload
			if err := json.Unmarshal(f.Message.Payload, &m); err != nil || m.R != r || m.P < 0 || m.P >= pubs {
				y.problem("seq %d: payload not of this round: %.100s", f.Seq, f.Message.Payload)
				continue
			}
			if m.N < next[m.P] {
				y.problem("seq %d: publisher %d message %d again or out of order (next is %d)", f.Seq, m.P, m.N, next[m.P])
			} else if m.N > next[m.P] && y.notices == 0 {
				y.problem("seq %d: publisher %d message %d, but %d was never announced lost", f.Seq, m.P, m.N, next[m.P])
			}
			next[m.P] = max(next[m.P], m.N+1)
		default:
			y.problem("unexpected frame %.200s", f.raw)
		}
	}
	return y
}

// burnCPU runs n spinning processes beside the test, until the test ends or limit passes, whichever
// comes first, so that the server does not get the CPU it would like. They are this test binary
// run as TestCPUBurnerProcess, which also stops itself at limit: a test process that dies cannot
// leave them spinning.
func burnCPU(t *testing.T, n int, limit time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	var cmds []*exec.Cmd
	t.Cleanup(func() {
		cancel()
		for _, cmd := range cmds {
			_ = cmd.Wait() // killed by the context; its exit status says so
		}
	})
	for range n {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCPUBurnerProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), "PUBSUB_TEST_BURN_CPU="+limit.String(), "GOMAXPROCS=1")
		cmd.WaitDelay = time.Second
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting a CPU burner: %v", err)
		}
		cmds = append(cmds, cmd)
	}
}

// TestCPUBurnerProcess is not a test: it is the process burnCPU starts, which spins for the
// duration in PUBSUB_TEST_BURN_CPU (and is killed sooner when its test ends).
func TestCPUBurnerProcess(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("PUBSUB_TEST_BURN_CPU"))
	if err != nil {
		t.Skip("the CPU burner of burnCPU; runs only as its child process")
	}
	end := time.Now().Add(d)
	for x := 0; time.Now().Before(end); {
		for range 1 << 20 {
			x++
		}
	}
}

// histogramAbove sums, over every series of the histogram family name, the observations above the
// first bucket bound at or above limit: observations that certainly exceeded limit are counted,
// and some up to that bound may not be. It fails the test when the family is not registered or
// has no such bucket.
func histogramAbove(t *testing.T, s *testServer, name string, limit time.Duration) (above uint64, count uint64) {
	t.Helper()
	mfs, err := s.Tel.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			h := m.GetHistogram()
			if h == nil {
				t.Fatalf("%s is not a histogram", name)
			}
			b := bucketAtOrAbove(h, limit.Seconds())
			if b == nil {
				t.Fatalf("%s has no bucket at or above %v, so this test cannot check it", name, limit)
			}
			above += h.GetSampleCount() - b.GetCumulativeCount()
			count += h.GetSampleCount()
		}
		return above, count
	}
	t.Fatalf("no metric %s in the registry", name)
	return 0, 0
}

func bucketAtOrAbove(h *dto.Histogram, bound float64) *dto.Bucket {
	for _, b := range h.GetBucket() {
		if b.GetUpperBound() >= bound {
			return b
		}
	}
	return nil
}

// runBurstRounds runs rounds of the fairness test against one server: each round, on a topic of its
// own, subs subscribers read continuously while pubs publishers each send each messages without
// waiting for the acks; every subscriber must get every message, in each publisher's order, once.
func runBurstRounds(t *testing.T, rounds, subs, pubs, each int) {
	// The default queue (100) and policy (drop_oldest). The stall bound is the test's own: a stall
	// ends as soon as delivery has caught up, so a long bound costs nothing while the server keeps
	// up; the service's 100ms would be outlasted by this machine's flushers under the race detector
	// and a CPU burner, and the test would measure the machine, not the mechanism.
	s := newServer(t, serverOpts{ws: ws.Config{PublishStallMax: burstStallMax}})
	readers := make([]*client, subs)
	for i := range readers {
		readers[i] = s.dial(t)
	}
	publishers := make([]*client, pubs)
	for p := range publishers {
		publishers[p] = s.dial(t)
	}
	failed := 0
	for r := range rounds {
		reusable := false
		if !t.Run(fmt.Sprintf("round_%02d", r), func(t *testing.T) { reusable = burstRound(t, s, readers, publishers, r, each) }) {
			failed++
		}
		if !reusable {
			t.Fatalf("round %d left its connections unusable; %d of %d rounds failed so far", r, failed, r+1)
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d rounds failed", failed, rounds)
	}
}

// burstRound is one round of runBurstRounds. It reports whether the connections are fit for another
// round: nothing left unread, nothing still subscribed.
func burstRound(t *testing.T, s *testServer, readers, publishers []*client, r, each int) (reusable bool) {
	topic := fmt.Sprintf("burst-%02d", r)
	total := len(publishers) * each
	s.createTopic(t, topic)
	// This round's view of the shared connections: their helpers fail this subtest.
	subs := make([]*client, len(readers))
	for i, c := range readers {
		subs[i] = &client{t: t, conn: c.conn}
		subs[i].subscribe(topic, fmt.Sprintf("s%d", i), 0)
	}
	frames := make([][][]byte, len(publishers))
	for p := range publishers {
		frames[p] = publishFrames(topic, r, p, each, 0)
	}

	tallies := make([]*tally, len(subs))
	var rwg sync.WaitGroup
	for i, c := range subs {
		rwg.Go(func() { tallies[i] = readTopic(c, topic, r, len(publishers), total) })
	}
	start := make(chan struct{})
	errs := make(chan error, len(publishers))
	var pwg sync.WaitGroup
	for p, c := range publishers {
		pwg.Go(func() {
			<-start
			if err := pipeline(&client{t: t, conn: c.conn}, p, frames[p]); err != nil {
				errs <- err
			}
		})
	}
	close(start) // every publisher bursts at once
	pwg.Wait()
	rwg.Wait()
	close(errs)
	broken := false
	for err := range errs {
		t.Error(err)
		broken = true
	}
	// One line per round: the subscriber that fared worst, and what the others received.
	worst, bad := -1, 0
	received := make([]int, len(tallies))
	for i, y := range tallies {
		received[i] = y.events
		if y.lossless(total) != "" {
			bad++
			if worst < 0 || y.events < tallies[worst].events {
				worst = i
			}
		}
		broken = broken || y.err != nil
	}
	if bad > 0 {
		t.Errorf("%d of %d reading subscribers did not get all %d messages exactly once, in order (events received: %v); subscriber %d: %s",
			bad, len(tallies), total, received, worst, tallies[worst].lossless(total))
	}
	if broken {
		return false // frames may still be on their way, or a connection is gone
	}
	// Every reader has the topic's last event, so nothing of this round is left to come: a frame
	// before the barrier's pong is one too many.
	for i, c := range subs {
		if extra := c.barrier(); len(extra) != 0 {
			t.Fatalf("subscriber %d: a frame after the last event: %.200s", i, extra[0].raw)
		}
		c.send(map[string]any{"type": "unsubscribe", "topic": topic, "client_id": fmt.Sprintf("s%d", i)})
		c.expect("ack")
	}
	return true
}
