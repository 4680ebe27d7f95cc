package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// scripted is a WebSocket server that plays the Redis engine's rarer frames to tail, which a real
// server sends only after failures the other tests cannot cause on demand: gap, discontinuity, a
// slow-consumer drop. Each connection's subscribe frame is handed to the test on subs, and the
// test's frames for that connection come from plays.
type scripted struct {
	subs  chan map[string]any
	plays chan []string // frames to send on the current connection, then close it
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	_, data, err := conn.ReadMessage()
	if err != nil {
		return
	}
	var sub map[string]any
	if json.Unmarshal(data, &sub) != nil {
		return
	}
	s.subs <- sub
	play, ok := <-s.plays
	if !ok {
		return
	}
	for _, f := range play {
		if conn.WriteMessage(websocket.TextMessage, []byte(f)) != nil {
			return
		}
	}
	// Closing abruptly is the connection lost; an empty close reason is enough for tail.
	_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, ""), time.Now().Add(time.Second))
	for {
		if _, _, err := conn.ReadMessage(); err != nil {
			return
		}
	}
}

func event(seq int, payload string) string {
	return fmt.Sprintf(`{"type":"event","topic":"orders","message":{"id":"00000000-0000-4000-8000-%012d","payload":%s},"seq":%d,"ts":"2026-12-06T10:00:00.000Z"}`, seq, payload, seq)
}

// TestTailNotices: everything tail cannot print is told on stderr (a gap, a discontinuity, a
// slow-consumer drop, a hole the server did not announce); a replayed duplicate is not printed
// twice; and after the connection is lost, tail resumes from the last seq it printed, in the epoch
// it saw last.
func TestTailNotices(t *testing.T) {
	s := &scripted{subs: make(chan map[string]any, 1), plays: make(chan []string, 1)}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(s.plays) })
	tail := start(t, map[string]string{"PUBSUB_URL": srv.URL}, "tail", "orders", "-o", "json", "--max-backoff", "100ms")

	first := <-s.subs
	if first["topic"] != "orders" || first["since_seq"] != nil || first["last_n"] != nil {
		t.Fatalf("first subscribe: %v", first)
	}
	s.plays <- []string{
		`{"type":"ack","request_id":"sub","topic":"orders","status":"ok","epoch":"e1","seq":0,"ts":"2026-12-06T10:00:00.000Z"}`,
		event(1, `"a"`),
		`{"type":"info","topic":"orders","msg":"gap","from_seq":2,"to_seq":3,"ts":"2026-12-06T10:00:00.000Z"}`,
		event(4, `"b"`),
		event(4, `"b"`), // a duplicate: not printed again
		`{"type":"error","topic":"orders","error":{"code":"SLOW_CONSUMER","message":"dropped 2 messages"},"ts":"2026-12-06T10:00:00.000Z"}`,
		event(7, `"c"`), // the jump the drop announced
		event(9, `"d"`), // a hole nobody announced
		`{"type":"info","topic":"orders","msg":"discontinuity","epoch":"e2","ts":"2026-12-06T10:00:00.000Z"}`,
		event(1, `"e"`),
		event(2, `"f"`),
	}
	evs := tail.events(t, 6)
	want := []struct {
		seq          uint64
		epoch, value string
	}{{1, "e1", `"a"`}, {4, "e1", `"b"`}, {7, "e1", `"c"`}, {9, "e1", `"d"`}, {1, "e2", `"e"`}, {2, "e2", `"f"`}}
	for i, w := range want {
		if evs[i].Seq != w.seq || evs[i].Epoch != w.epoch || string(evs[i].Payload) != w.value {
			t.Errorf("event %d: %+v, want seq %d epoch %s payload %s", i, evs[i], w.seq, w.epoch, w.value)
		}
	}

	second := <-s.subs
	if second["since_seq"] != float64(2) || second["epoch"] != "e2" {
		t.Errorf("resubscribe after the connection was lost: %v, want since_seq 2 epoch e2", second)
	}
	s.plays <- []string{`{"type":"ack","request_id":"sub","topic":"orders","status":"ok","epoch":"e2","seq":2,"recovered":true,"ts":"2026-12-06T10:00:00.000Z"}`}
	stderr := tail.stderr.waitFor(t, "resumed after seq 2 (recovered)")
	for _, notice := range []string{
		"events 2 to 3 of orders cannot be delivered (gap)",
		"the server dropped events for this slow subscriber: dropped 2 messages",
		"events 8 to 8 of orders were skipped without a notice from the server",
		"restarted with epoch e2 (discontinuity)",
		"connection lost",
	} {
		if !strings.Contains(stderr, notice) {
			t.Errorf("stderr lacks %q:\n%s", notice, stderr)
		}
	}
	if strings.Contains(stderr, "events 5 to 6") {
		t.Errorf("the announced drop was reported again as a hole:\n%s", stderr)
	}
	<-s.subs // the third connection, after the second play ended
	if code := tail.interrupt(t); code != 0 {
		t.Errorf("tail: exit %d, want 0", code)
	}
}
