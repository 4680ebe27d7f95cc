package ws_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
)

func TestREST(t *testing.T) {
	s := newServer(t, serverOpts{})
	long := strings.Repeat("a", 256)
	steps := []struct {
		name, method, path, body string
		status                   int
		want                     string // JSON the body must equal (ignoring uptime)
	}{
		{"create", "POST", "/topics", `{"name":"orders"}`, 201, `{"status":"created","topic":"orders"}`},
		{"create again", "POST", "/topics", `{"name":"orders"}`, 409, `{"error":{"code":"TOPIC_EXISTS","message":"topic \"orders\" already exists"}}`},
		{"create second", "POST", "/topics", `{"name":"a.b_c-d:E9"}`, 201, `{"status":"created","topic":"a.b_c-d:E9"}`},
		{"not JSON", "POST", "/topics", `{name`, 400, `{"error":{"code":"BAD_REQUEST","message":"request body is not valid JSON"}}`},
		{"empty body", "POST", "/topics", ``, 400, `{"error":{"code":"BAD_REQUEST","message":"request body must be JSON like {\"name\":\"orders\"}"}}`},
		{"name missing", "POST", "/topics", `{}`, 400, `{"error":{"code":"BAD_REQUEST","message":"name is required"}}`},
		{"name not string", "POST", "/topics", `{"name":5}`, 400, `{"error":{"code":"BAD_REQUEST","message":"name must be a string"}}`},
		{"name empty", "POST", "/topics", `{"name":""}`, 400, `{"error":{"code":"BAD_REQUEST","message":"topic is required"}}`},
		{"name invalid", "POST", "/topics", `{"name":"a/b"}`, 400, `{"error":{"code":"BAD_REQUEST","message":"topic name \"a/b\" has a character outside A-Z a-z 0-9 . _ - :"}}`},
		{"name too long", "POST", "/topics", `{"name":"` + long + `"}`, 400, `{"error":{"code":"BAD_REQUEST","message":"topic name is 256 characters long; the limit is 255"}}`},
		{"list", "GET", "/topics", ``, 200, `{"topics":[{"name":"a.b_c-d:E9","subscribers":0},{"name":"orders","subscribers":0}]}`},
		{"stats", "GET", "/stats", ``, 200, `{"topics":{"a.b_c-d:E9":{"messages":0,"subscribers":0},"orders":{"messages":0,"subscribers":0}}}`},
		{"delete", "DELETE", "/topics/orders", ``, 200, `{"status":"deleted","topic":"orders"}`},
		{"delete again", "DELETE", "/topics/orders", ``, 404, `{"error":{"code":"TOPIC_NOT_FOUND","message":"topic \"orders\" does not exist"}}`},
		{"delete invalid", "DELETE", "/topics/a%20b", ``, 400, `{"error":{"code":"BAD_REQUEST","message":"topic name \"a b\" has a character outside A-Z a-z 0-9 . _ - :"}}`},
		{"health", "GET", "/health", ``, 200, `{"uptime_sec":0,"topics":1,"subscribers":0}`},
		{"livez", "GET", "/livez", ``, 200, `{"status":"ok"}`},
		{"readyz", "GET", "/readyz", ``, 200, `{"status":"ready"}`},
	}
	for _, st := range steps {
		code, body := s.do(t, st.method, st.path, st.body)
		if _, ok := body["uptime_sec"]; ok {
			body["uptime_sec"] = float64(0)
		}
		var want map[string]any
		if err := json.Unmarshal([]byte(st.want), &want); err != nil {
			t.Fatalf("%s: bad want: %v", st.name, err)
		}
		got, _ := json.Marshal(body)
		exp, _ := json.Marshal(want)
		if code != st.status || string(got) != string(exp) {
			t.Errorf("%s: %s %s = %d %s; want %d %s", st.name, st.method, st.path, code, got, st.status, exp)
		}
	}
}

func TestHealthCountsSubscribers(t *testing.T) {
	s := newServer(t, serverOpts{})
	s.createTopic(t, "a")
	s.createTopic(t, "b")
	c := s.dial(t)
	c.subscribe("a", "s1", 0)
	c.subscribe("a", "s2", 0)
	c.subscribe("b", "s1", 0)
	_, h := s.do(t, "GET", "/health", "")
	if h["topics"] != float64(2) || h["subscribers"] != float64(3) {
		t.Fatalf("health = %v", h)
	}
	_, l := s.do(t, "GET", "/topics", "")
	if b, _ := json.Marshal(l); string(b) != `{"topics":[{"name":"a","subscribers":2},{"name":"b","subscribers":1}]}` {
		t.Fatalf("topics = %s", b)
	}
}

func TestPublishSubscribeRoundTrip(t *testing.T) {
	s := newServer(t, serverOpts{})
	s.createTopic(t, "orders")
	sub, pub := s.dial(t), s.dial(t)
	ack := sub.subscribe("orders", "s1", 0)
	if _, err := time.Parse(time.RFC3339, ack.TS); err != nil || !strings.HasSuffix(ack.TS, "Z") || len(ack.TS) != len("2026-01-01T10:00:00.000Z") {
		t.Fatalf("ack ts %q is not RFC 3339 UTC with milliseconds", ack.TS)
	}
	payloads := []string{`{"any":"json","n":[1,2.5e3,{"x":null}]}`, `null`, `"text"`, `42`, `[]`, `{"unicode":"héllo ☃ \u0000"}`}
	ids := make([]string, len(payloads))
	for i, p := range payloads {
		ids[i] = uuid.NewString()
		pub.sendRaw(fmt.Sprintf(`{"type":"publish","topic":"orders","request_id":"p%d","message":{"id":%q,"payload":%s}}`, i, ids[i], p))
		a := pub.expect("ack")
		if *a.RequestID != fmt.Sprintf("p%d", i) || a.Topic != "orders" || a.Status != "ok" {
			t.Fatalf("publish ack %s", a.raw)
		}
	}
	for i, p := range payloads {
		ev := sub.expect("event")
		if ev.Topic != "orders" || ev.Message.ID != ids[i] || ev.Seq != uint64(i+1) {
			t.Fatalf("event %d: %s", i, ev.raw)
		}
		if string(ev.Message.Payload) != p {
			t.Fatalf("payload %d = %s, want %s", i, ev.Message.Payload, p)
		}
		if _, err := time.Parse(time.RFC3339, ev.TS); err != nil {
			t.Fatalf("event ts %q: %v", ev.TS, err)
		}
	}
	// The publisher is not subscribed, so it gets nothing but its acks.
	if extra := pub.barrier(); len(extra) != 0 {
		t.Fatalf("publisher received %v", extra[0].raw)
	}
	_, st := s.do(t, "GET", "/stats", "")
	if b, _ := json.Marshal(st); string(b) != `{"topics":{"orders":{"messages":6,"subscribers":1}}}` {
		t.Fatalf("stats = %s", b)
	}
}

func TestPingAndUnsubscribe(t *testing.T) {
	s := newServer(t, serverOpts{})
	s.createTopic(t, "t")
	c := s.dial(t)
	c.send(map[string]any{"type": "ping", "request_id": "r-4"})
	if p := c.expect("pong"); *p.RequestID != "r-4" || p.TS == "" {
		t.Fatalf("pong %s", p.raw)
	}
	c.send(map[string]any{"type": "ping"})
	if p := c.expect("pong"); p.RequestID != nil {
		t.Fatalf("pong without request_id echoed one: %s", p.raw)
	}
	c.subscribe("t", "s1", 0)
	for i := 0; i < 2; i++ { // idempotent
		c.send(map[string]any{"type": "unsubscribe", "topic": "t", "client_id": "s1", "request_id": "u"})
		if a := c.expect("ack"); *a.RequestID != "u" || a.Topic != "t" {
			t.Fatalf("unsubscribe ack %s", a.raw)
		}
	}
	s.dial(t).publish("t", 1, "p")
	if got := c.barrier(); len(got) != 0 {
		t.Fatalf("unsubscribed client received %s", got[0].raw)
	}
}

func TestBadFramesKeepTheConnection(t *testing.T) {
	s := newServer(t, serverOpts{})
	s.createTopic(t, "t")
	c := s.dial(t)
	id := uuid.NewString()
	cases := []struct {
		name, frame, code, msg string
		echo                   bool
	}{
		{"not JSON", `{"type":`, "BAD_REQUEST", "frame is not valid JSON", false},
		{"array", `[1,2]`, "BAD_REQUEST", "frame must be a JSON object", false},
		{"no type", `{"request_id":"r"}`, "BAD_REQUEST", "type is required", true},
		{"unknown type", `{"type":"dance","request_id":"r"}`, "BAD_REQUEST", `unknown type "dance": expected subscribe, unsubscribe, publish or ping`, true},
		{"type not string", `{"type":1,"request_id":"r"}`, "BAD_REQUEST", "type must be a string", true},
		{"subscribe no topic", `{"type":"subscribe","client_id":"c","request_id":"r"}`, "BAD_REQUEST", "topic is required", true},
		{"subscribe bad topic", `{"type":"subscribe","topic":"a b","client_id":"c","request_id":"r"}`, "BAD_REQUEST", `topic name "a b" has a character outside A-Z a-z 0-9 . _ - :`, true},
		{"subscribe no client", `{"type":"subscribe","topic":"t","request_id":"r"}`, "BAD_REQUEST", "client_id is required", true},
		{"subscribe negative last_n", `{"type":"subscribe","topic":"t","client_id":"c","last_n":-1,"request_id":"r"}`, "BAD_REQUEST", "last_n must be a non-negative integer", true},
		{"subscribe fractional last_n", `{"type":"subscribe","topic":"t","client_id":"c","last_n":1.5,"request_id":"r"}`, "BAD_REQUEST", "last_n must be a non-negative integer", true},
		{"subscribe string last_n", `{"type":"subscribe","topic":"t","client_id":"c","last_n":"5","request_id":"r"}`, "BAD_REQUEST", "last_n must be a non-negative integer", true},
		{"subscribe missing topic", `{"type":"subscribe","topic":"nope","client_id":"c","request_id":"r"}`, "TOPIC_NOT_FOUND", `topic "nope" does not exist`, true},
		{"unsubscribe missing topic", `{"type":"unsubscribe","topic":"nope","client_id":"c","request_id":"r"}`, "TOPIC_NOT_FOUND", `topic "nope" does not exist`, true},
		{"unsubscribe no client", `{"type":"unsubscribe","topic":"t","request_id":"r"}`, "BAD_REQUEST", "client_id is required", true},
		{"publish no message", `{"type":"publish","topic":"t","request_id":"r"}`, "BAD_REQUEST", "message is required", true},
		{"publish bad id", `{"type":"publish","topic":"t","request_id":"r","message":{"id":"42","payload":1}}`, "BAD_REQUEST", "message.id must be a valid UUID", true},
		{"publish no id", `{"type":"publish","topic":"t","request_id":"r","message":{"payload":1}}`, "BAD_REQUEST", "message.id is required", true},
		{"publish no payload", `{"type":"publish","topic":"t","request_id":"r","message":{"id":"` + id + `"}}`, "BAD_REQUEST", "message.payload is required (null is allowed)", true},
		{"publish missing topic", `{"type":"publish","topic":"nope","request_id":"r","message":{"id":"` + id + `","payload":1}}`, "TOPIC_NOT_FOUND", `topic "nope" does not exist`, true},
		{"bad traceparent", `{"type":"ping","request_id":"r","traceparent":"00-xyz"}`, "BAD_REQUEST", "traceparent is not a valid W3C traceparent", true},
	}
	for _, tc := range cases {
		c.sendRaw(tc.frame)
		f := c.expect("error")
		if f.Error == nil || f.Error.Code != tc.code || f.Error.Message != tc.msg {
			t.Errorf("%s: got %s, want %s %q", tc.name, f.raw, tc.code, tc.msg)
		}
		if tc.echo != (f.RequestID != nil && *f.RequestID == "r") {
			t.Errorf("%s: request_id echo = %v in %s", tc.name, !tc.echo, f.raw)
		}
		if f.TS == "" {
			t.Errorf("%s: error without ts", tc.name)
		}
	}
	if err := c.conn.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if f := c.expect("error"); f.Error.Code != "BAD_REQUEST" || !strings.Contains(f.Error.Message, "binary") {
		t.Fatalf("binary frame: %s", f.raw)
	}
	// Still usable.
	c.subscribe("t", "c", 0)
}

func TestFrameOverLimitCloses1009(t *testing.T) {
	s := newServer(t, serverOpts{ws: wsConfig(func(c *wsCfg) { c.MaxFrameBytes = 1024 })})
	s.createTopic(t, "t")
	// Several times, and much larger than the limit: most of the frame is still unread when the
	// server closes, which must not cost the client its close frame.
	for i := 0; i < 10; i++ {
		c := s.dial(t)
		c.publish("t", strings.Repeat("x", 256<<10), "big")
		if code, _ := c.expectClose(); code != websocket.CloseMessageTooBig {
			t.Fatalf("attempt %d: close code %d, want 1009", i, code)
		}
	}
}

func TestOriginAllowList(t *testing.T) {
	s := newServer(t, serverOpts{ws: wsConfig(func(c *wsCfg) { c.AllowedOrigins = []string{"https://ok.example"} })})
	u := "ws" + strings.TrimPrefix(s.URL, "http") + "/ws"
	h := http.Header{"Origin": {"https://evil.example"}}
	if _, resp, err := websocket.DefaultDialer.Dial(u, h); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: err=%v resp=%v", err, resp)
	}
	h.Set("Origin", "https://ok.example")
	c, _, err := websocket.DefaultDialer.Dial(u, h)
	if err != nil {
		t.Fatalf("allowed origin refused: %v", err)
	}
	c.Close()
}

func TestHeartbeat(t *testing.T) {
	s := newServer(t, serverOpts{ws: wsConfig(func(c *wsCfg) { c.Heartbeat = 20 * time.Millisecond })})
	c := s.dial(t)
	for i := 0; i < 2; i++ {
		if f := c.expect("info"); f.Msg != "ping" || f.TS == "" {
			t.Fatalf("heartbeat %s", f.raw)
		}
	}
}

func TestDeadPeerIsDropped(t *testing.T) {
	s := newServer(t, serverOpts{ws: wsConfig(func(c *wsCfg) { c.PingInterval, c.PingTimeout = 30*time.Millisecond, 30*time.Millisecond })})
	c := s.dial(t)
	// A peer that never reads never answers pings (gorilla answers them while reading).
	deadline := time.Now().Add(waitFor)
	for s.WS.Connections() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("silent peer was not dropped")
		}
		time.Sleep(5 * time.Millisecond) // polling a condition with a deadline, not synchronising
	}
	_ = c
}
