package ws_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/transport/ws"
)

// TestStalledSubscriberStillGetsItsPolicy: a subscriber that stops reading is not waited for. Its
// queue's policy applies as before (drop_oldest: it is told of the drops and gets the newest
// events once it reads again; disconnect: SLOW_CONSUMER, then close 1008), the subscribers that
// read lose nothing, and no publish waits longer than the stall bound.
func TestStalledSubscriberStillGetsItsPolicy(t *testing.T) {
	const (
		readers = 2
		// 16 KiB each, 12.8 MB in all: more than the stalled client's socket buffers hold (its
		// receive buffer is shrunk, the server's send buffer grows to a few MiB) plus its queue,
		// and little enough for two cores under the race detector.
		total = 800
		pad   = 16 << 10
		bound = 400 * time.Millisecond
		slack = 500 * time.Millisecond // a timed-out stall also waits for the scheduler to run it
	)
	for _, tt := range []struct {
		name   string
		policy domain.Policy
	}{{"drop_oldest", domain.DropOldest}, {"disconnect", domain.Disconnect}} {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, serverOpts{policy: tt.policy, ws: ws.Config{
				PublishStallMax: bound,
				// Only the policy under test may act on the stalled client, never the write timeout.
				WriteTimeout: stalledPeerWriteTimeout(t),
			}})
			s.createTopic(t, "t")
			stalled := dialSmallBuffer(t, s)
			stalled.subscribe("t", "stalled", 0)
			subs := make([]*client, readers)
			for i := range subs {
				subs[i] = s.dial(t)
				subs[i].subscribe("t", "reader"+string(rune('0'+i)), 0)
			}
			tallies := make([]*tally, readers)
			var wg sync.WaitGroup
			for i, c := range subs {
				wg.Go(func() { tallies[i] = readTopic(c, "t", 0, 1, total) })
			}
			if err := pipeline(s.dial(t), 0, publishFrames("t", 0, 0, total, pad)); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			for i, y := range tallies {
				if msg := y.lossless(total); msg != "" {
					t.Errorf("reading subscriber %d: %s", i, msg)
				}
			}
			if above, n := histogramAbove(t, s, "pubsub_publisher_stall_seconds", bound+slack); above > 0 {
				t.Errorf("%d of %d publisher stalls lasted longer than the bound (%v, plus %v for the scheduler)", above, n, bound, slack)
			}

			switch tt.policy {
			case domain.DropOldest:
				expectPositive(t, s, "pubsub_messages_dropped_total", "reason", "overflow_drop_oldest")
				// Reading again, it is told what it lost and catches up with the present.
				y := readTopic(stalled, "t", 0, 1, total)
				if y.err != nil || len(y.problems) > 0 || y.notices == 0 || y.lastSeq != total {
					t.Fatalf("the stalled subscriber, reading again: %s (notices %d, last seq %d); want drops announced and seq %d last",
						y.lossless(total), y.notices, y.lastSeq, total)
				}
			case domain.Disconnect:
				// Its writer waits on its full socket, as it always has: the disconnect is carried out
				// (and counted) once the client reads again.
				code, frames := stalled.expectClose()
				if code != 1008 || len(frames) == 0 || frames[len(frames)-1].Error == nil || frames[len(frames)-1].Error.Code != "SLOW_CONSUMER" {
					t.Fatalf("the stalled subscriber got close %d after %d frames; want SLOW_CONSUMER, then 1008", code, len(frames))
				}
				expectMetric(t, s, 1, "pubsub_slow_consumer_disconnects_total")
			}
		})
	}
}

// TestDeliveryCountedWithinOneSecond: a delivery to an otherwise quiet connection is in the shared
// metrics within a second, although the connection's counts are added in windows.
func TestDeliveryCountedWithinOneSecond(t *testing.T) {
	// The service's clock period: the fixture's 20ms would hide a count that waits for it.
	s := newServer(t, serverOpts{ws: ws.Config{IdleAfter: 2 * time.Second}})
	s.createTopic(t, "quiet")
	sub, pub := s.dial(t), s.dial(t)
	sub.subscribe("quiet", "q", 0)
	delivered := metric(t, s, "pubsub_messages_delivered_total")
	events := metric(t, s, "pubsub_ws_frames_sent_total", "type", "event")
	pub.publish("quiet", "x", "p1")
	pub.expect("ack")
	sub.expect("event")
	read := time.Now()
	for metric(t, s, "pubsub_messages_delivered_total") < delivered+1 || metric(t, s, "pubsub_ws_frames_sent_total", "type", "event") < events+1 {
		if time.Since(read) > time.Second {
			t.Fatalf("a delivery read by its client was not counted within 1s (delivered %v, event frames %v)",
				metric(t, s, "pubsub_messages_delivered_total")-delivered, metric(t, s, "pubsub_ws_frames_sent_total", "type", "event")-events)
		}
		time.Sleep(2 * time.Millisecond) // polling the registry with a deadline
	}
}

// dialSmallBuffer dials like testServer.dial, with a 256 KiB socket receive buffer, so that a
// client that stops reading fills its socket with little data. Not less: a window under a few
// loopback segments (64 KiB each) makes reading it back crawl, one delayed ACK per window.
func dialSmallBuffer(t *testing.T, s *testServer) *client {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: waitFor, NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(256 << 10)
		}
		return c, err
	}}
	c, resp, err := d.Dial("ws"+strings.TrimPrefix(s.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &client{t: t, conn: c}
}
