package app_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pubsubd/pubsub/internal/app"
)

// The domain's bounds of issue #11 seen from a client: the topic cap, the subscription cap and the
// event memory budget refuse with RATE_LIMITED and are counted by limit; a topic of 1 MiB messages
// costs about its history bound, each payload held once.

// limitRejections reads pubsub_limit_rejections_total{limit=...} from the admin listener.
func limitRejections(t *testing.T, r *running, limit string) float64 {
	t.Helper()
	code, body := get(t, newClient(t), "http://"+r.AdminAddr()+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d", code)
	}
	want := `pubsub_limit_rejections_total{limit="` + limit + `"} `
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), want); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no %s in /metrics", want)
	return 0
}

func postTopic(t *testing.T, c *http.Client, r *running, name string) (int, string) {
	t.Helper()
	resp, err := c.Post("http://"+r.Addr()+"/topics", "application/json", strings.NewReader(`{"name":"`+name+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.Error.Code + ": " + body.Error.Message
}

// replyTo reads frames until the reply to requestID (ack or error) and returns it decoded.
func replyTo(t *testing.T, c *wsClient, requestID string) map[string]any {
	t.Helper()
	for {
		var f map[string]any
		if err := json.Unmarshal([]byte(c.next(t)), &f); err != nil {
			t.Fatal(err)
		}
		if f["request_id"] == requestID {
			return f
		}
	}
}

func errorCode(f map[string]any) string {
	if e, ok := f["error"].(map[string]any); ok {
		return fmt.Sprint(e["code"], ": ", e["message"])
	}
	return ""
}

func send(t *testing.T, c *wsClient, frame string) {
	t.Helper()
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		t.Fatal(err)
	}
}

// Attack: create topics past the cap, as 200,000 were created in 22 s. Every one past the cap is
// refused with 429 RATE_LIMITED naming the limit and counted; the server still answers.
func TestTopicCapRefusesAndCounts(t *testing.T) {
	r := start(t, testConfig(t, "-max-topics=3"), app.Options{})
	c := newClient(t)
	for i := range 3 {
		if code, msg := postTopic(t, c, r, fmt.Sprint("t", i)); code != http.StatusCreated {
			t.Fatalf("topic %d: %d %s", i, code, msg)
		}
	}
	const past = 200
	for i := range past {
		code, msg := postTopic(t, c, r, fmt.Sprint("more", i))
		if code != http.StatusTooManyRequests || !strings.HasPrefix(msg, "RATE_LIMITED: ") || !strings.Contains(msg, "topic limit (3)") {
			t.Fatalf("topic past the cap: %d %q, want 429 RATE_LIMITED naming the topic limit", code, msg)
		}
	}
	if got := limitRejections(t, r, "topics"); got != past {
		t.Fatalf("limit_rejections{topics} = %v, want %d", got, past)
	}
	if code, body := get(t, c, "http://"+r.Addr()+"/health"); code != http.StatusOK || !strings.Contains(body, `"topics":3`) {
		t.Fatalf("/health = %d %s, want 3 topics", code, body)
	}
	if code, _ := get(t, c, "http://"+r.Addr()+"/livez"); code != http.StatusOK {
		t.Fatalf("/livez = %d", code)
	}
}

func TestSubscriptionCapRefusesAndCounts(t *testing.T) {
	r := start(t, testConfig(t, "-max-subscriptions=2"), app.Options{})
	if code, msg := postTopic(t, newClient(t), r, "orders"); code != http.StatusCreated {
		t.Fatal(code, msg)
	}
	a, b := dial(t, r.Addr()), dial(t, r.Addr())
	send(t, a, `{"type":"subscribe","topic":"orders","client_id":"c1","request_id":"r1"}`)
	if f := replyTo(t, a, "r1"); f["type"] != "ack" {
		t.Fatalf("first subscribe: %v", f)
	}
	send(t, b, `{"type":"subscribe","topic":"orders","client_id":"c2","request_id":"r2"}`)
	if f := replyTo(t, b, "r2"); f["type"] != "ack" {
		t.Fatalf("second subscribe: %v", f)
	}
	send(t, b, `{"type":"subscribe","topic":"orders","client_id":"c3","request_id":"r3"}`)
	if f := replyTo(t, b, "r3"); !strings.HasPrefix(errorCode(f), "RATE_LIMITED: ") || !strings.Contains(errorCode(f), "subscription limit (2)") {
		t.Fatalf("third subscribe: %v, want RATE_LIMITED naming the subscription limit", f)
	}
	if got := limitRejections(t, r, "subscriptions"); got != 1 {
		t.Fatalf("limit_rejections{subscriptions} = %v, want 1", got)
	}
	// The connection stays usable, and a place freed is a place taken.
	send(t, a, `{"type":"unsubscribe","topic":"orders","client_id":"c1","request_id":"r4"}`)
	replyTo(t, a, "r4")
	send(t, b, `{"type":"subscribe","topic":"orders","client_id":"c3","request_id":"r5"}`)
	if f := replyTo(t, b, "r5"); f["type"] != "ack" {
		t.Fatalf("subscribe after a place was freed: %v", f)
	}
}

// A subscriber that never reads keeps its queue full; when that holds the process's event memory,
// publishes are refused with RATE_LIMITED (never accepted and then lost), counted as event_memory.
func TestEventMemoryRefusesPublishes(t *testing.T) {
	r := start(t, testConfig(t, "-max-event-bytes=1MiB", "-max-queue-bytes=1MiB", "-history-max-bytes=1MiB",
		"-publish-stall-max=0"), app.Options{})
	if code, msg := postTopic(t, newClient(t), r, "orders"); code != http.StatusCreated {
		t.Fatal(code, msg)
	}
	// The stuck subscriber: subscribes, reads its ack, then never reads again.
	d := websocket.Dialer{HandshakeTimeout: waitFor}
	stuck, _, err := d.Dial("ws://"+r.Addr()+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	if err := stuck.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","topic":"orders","client_id":"stuck"}`)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := stuck.ReadMessage(); err != nil {
		t.Fatal(err)
	}

	pub := dial(t, r.Addr())
	payload := `"` + strings.Repeat("x", 64<<10) + `"`
	refusedAt := 0
	// Loopback socket buffers take a few MiB before the queue holds anything; 64 MiB of publishes
	// is far more than that.
	for i := 1; i <= 1024 && refusedAt == 0; i++ {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		send(t, pub, `{"type":"publish","topic":"orders","request_id":"p`+strconv.Itoa(i)+`","message":{"id":"`+id+`","payload":`+payload+`}}`)
		switch f := replyTo(t, pub, "p"+strconv.Itoa(i)); {
		case f["type"] == "ack":
		case strings.HasPrefix(errorCode(f), "RATE_LIMITED: ") && strings.Contains(errorCode(f), "event memory"):
			refusedAt = i
		default:
			t.Fatalf("publish %d: %v", i, f)
		}
	}
	if refusedAt == 0 {
		t.Fatal("no publish was refused although a subscriber never reads and the event memory is 1 MiB")
	}
	if got := limitRejections(t, r, "event_memory"); got < 1 {
		t.Fatalf("limit_rejections{event_memory} = %v, want >= 1", got)
	}
	t.Logf("first refusal at publish %d (64 KiB each)", refusedAt)
	// The stuck subscriber goes away: its queue's bytes come back and publishing works again.
	stuck.Close()
	deadline := time.Now().Add(waitFor)
	for i := 2000; ; i++ {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		send(t, pub, `{"type":"publish","topic":"orders","request_id":"q`+strconv.Itoa(i)+`","message":{"id":"`+id+`","payload":1}}`)
		if f := replyTo(t, pub, "q"+strconv.Itoa(i)); f["type"] == "ack" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("publishes still refused after the stuck subscriber left")
		}
		// Poll, within the deadline, until the server has seen the close and let the queue go.
		<-time.After(10 * time.Millisecond)
	}
}

// heapInUse is the live heap after a full collection.
func heapInUse() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// Attack: fill a topic with 1 MiB messages. It used to cost 2.3 times its payload (each payload
// held twice, as the decoded message and in the encoded frame); now the history's byte bound is
// what the topic costs, each payload held once.
func TestFullTopicOfLargeMessagesCostsItsHistoryBound(t *testing.T) {
	const (
		payloadBytes = 1 << 20
		historyBytes = 16 << 20
	)
	r := start(t, testConfig(t, "-max-frame-bytes=2097152", "-history-size=100",
		"-history-max-bytes="+strconv.Itoa(historyBytes), "-max-event-bytes=64MiB"), app.Options{})
	if code, msg := postTopic(t, newClient(t), r, "big"); code != http.StatusCreated {
		t.Fatal(code, msg)
	}
	pub := dial(t, r.Addr())
	frame := []byte(`{"type":"publish","topic":"big","request_id":"p","message":{"id":"00000000-0000-4000-8000-000000000001","payload":"` +
		strings.Repeat("x", payloadBytes-2) + `"}}`)
	send(t, pub, string(frame[:100])+`}`) // warm up: a bad frame, so buffers and pools exist before the baseline
	before := heapInUse()
	const published = 20
	for i := range published {
		if err := pub.conn.WriteMessage(websocket.TextMessage, frame); err != nil {
			t.Fatal(err)
		}
		if f := replyTo(t, pub, "p"); f["type"] != "ack" {
			t.Fatalf("publish %d: %v", i, f)
		}
	}
	after := heapInUse()
	grown := int64(after) - int64(before)
	held := historyBytes / (payloadBytes + 512) // events the history's bytes keep
	perStored := float64(grown) / float64(held*payloadBytes)
	t.Logf("heap grew %.1f MiB for %d payloads of 1 MiB held in history: %.2f bytes of heap per payload byte",
		float64(grown)/(1<<20), held, perStored)
	if grown > historyBytes*5/4 {
		t.Fatalf("heap grew %d bytes, more than 1.25 x the history bound of %d", grown, historyBytes)
	}
	if perStored > 1.2 {
		t.Fatalf("%.2f bytes of heap per stored payload byte, want about 1 (each payload held once)", perStored)
	}
	if code, _ := get(t, newClient(t), "http://"+r.Addr()+"/livez"); code != http.StatusOK {
		t.Fatalf("/livez = %d", code)
	}
}

// The same attack with the defaults (100 events, 1 MiB of history per topic, 1 MiB frames): the
// topic that cost 216 MiB now costs about its 1 MiB history bound.
func TestFullTopicWithDefaultsCostsAboutOneMiB(t *testing.T) {
	r := start(t, testConfig(t), app.Options{})
	if code, msg := postTopic(t, newClient(t), r, "big"); code != http.StatusCreated {
		t.Fatal(code, msg)
	}
	pub := dial(t, r.Addr())
	head := `{"type":"publish","topic":"big","request_id":"p","message":{"id":"00000000-0000-4000-8000-000000000001","payload":"`
	frame := []byte(head + strings.Repeat("x", 1<<20-len(head)-8) + `"}}`) // the largest frame the default allows
	send(t, pub, string(frame[:100])+`}`)
	before := heapInUse()
	for i := range 30 {
		if err := pub.conn.WriteMessage(websocket.TextMessage, frame); err != nil {
			t.Fatal(err)
		}
		if f := replyTo(t, pub, "p"); f["type"] != "ack" {
			t.Fatalf("publish %d: %v", i, f)
		}
	}
	grown := int64(heapInUse()) - int64(before)
	t.Logf("heap grew %.2f MiB after 30 messages of 1 MiB with the default history bounds", float64(grown)/(1<<20))
	if grown > 3<<20 {
		t.Fatalf("heap grew %d bytes, want about the 1 MiB history bound (at most 3 MiB)", grown)
	}
	// last_n replays what the bytes kept: the newest message only.
	sub := dial(t, r.Addr())
	send(t, sub, `{"type":"subscribe","topic":"big","client_id":"late","last_n":100,"request_id":"s"}`)
	if f := replyTo(t, sub, "s"); f["type"] != "ack" {
		t.Fatalf("subscribe: %v", f)
	}
	var ev struct {
		Type string `json:"type"`
		Seq  uint64 `json:"seq"`
	}
	if err := json.Unmarshal([]byte(sub.next(t)), &ev); err != nil || ev.Type != "event" || ev.Seq != 30 {
		t.Fatalf("replay: %+v, %v; want the newest event, seq 30", ev, err)
	}
	send(t, sub, `{"type":"ping","request_id":"after"}`)
	if f := sub.next(t); !strings.Contains(f, `"type":"pong"`) {
		t.Fatalf("after the replay: %.200s, want the pong with no other event before it", f)
	}
}
