package app_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/pubsubd/pubsub/internal/app"
	"github.com/pubsubd/pubsub/internal/broker/redis/redistest"
)

// TestConsoleOnTheAdminListener: the admin listener serves the web console and, under
// /console/app/, the application's own REST and /ws with its authentication, to the console's
// own origin only; a key offered as the console's subprotocol opens /ws and is never echoed.
// (The page itself is driven in Chromium by internal/transport/console's browser test.)
func TestConsoleOnTheAdminListener(t *testing.T) {
	const key = "console-app-test-key-0123456789"
	r := start(t, testConfig(t, "-api-key="+key), app.Options{})
	admin := "http://" + r.AdminAddr()
	c := newClient(t)

	if code, body := get(t, c, admin+"/console/"); code != http.StatusOK || !strings.Contains(body, "pubsub console") {
		t.Fatalf("GET /console/: %d", code)
	}
	if code, _ := get(t, c, admin+"/console/app/stats"); code != http.StatusUnauthorized {
		t.Errorf("the application's /stats without a key through the console: %d, want 401", code)
	}
	req, _ := http.NewRequest("GET", admin+"/console/app/stats", nil)
	req.Header.Set("X-API-Key", key)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the application's /stats with the key through the console: %d", resp.StatusCode)
	}

	dialWS := func(origin, credential string) (*websocket.Conn, int) {
		t.Helper()
		d := websocket.Dialer{HandshakeTimeout: waitFor,
			Subprotocols: []string{"pubsub", "pubsub.key." + base64.RawURLEncoding.EncodeToString([]byte(credential))}}
		conn, resp, err := d.Dial("ws://"+r.AdminAddr()+"/console/app/ws", http.Header{"Origin": {origin}})
		if err != nil {
			if resp == nil {
				t.Fatalf("dial: %v", err)
			}
			return nil, resp.StatusCode
		}
		t.Cleanup(func() { conn.Close() })
		return conn, resp.StatusCode
	}
	conn, code := dialWS(admin, key)
	if conn == nil {
		t.Fatalf("the console's page with the key: handshake %d, want an upgrade", code)
	}
	if p := conn.Subprotocol(); p != "pubsub" {
		t.Errorf("selected subprotocol %q, want pubsub (the key is never echoed)", p)
	}
	if err := conn.WriteJSON(map[string]string{"type": "ping", "request_id": "p"}); err != nil {
		t.Fatal(err)
	}
	var pong struct{ Type string }
	if err := conn.ReadJSON(&pong); err != nil || pong.Type != "pong" {
		t.Fatalf("ping through the console: %+v, %v", pong, err)
	}
	if _, code := dialWS(admin, "not-the-key-not-the-key"); code != http.StatusUnauthorized {
		t.Errorf("a wrong key: handshake %d, want 401", code)
	}
	if _, code := dialWS("http://evil.example", key); code != http.StatusForbidden {
		t.Errorf("another site's page: handshake %d, want 403", code)
	}
}

// TestConsoleClusterOnRedis: on the Redis engine the console's cluster.json lists every replica,
// the answering one first and marked self, the other with its last heartbeat.
func TestConsoleClusterOnRedis(t *testing.T) {
	srv, done, err := redistest.StartTemp()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(done)
	flags := []string{"-broker=redis", "-redis-url=" + srv.URL()}
	a := start(t, testConfig(t, append(flags, "-replica-id=one")...), app.Options{})
	start(t, testConfig(t, append(flags, "-replica-id=two")...), app.Options{})
	c := newClient(t)
	type replica struct {
		ID        string `json:"id"`
		Self      bool   `json:"self"`
		Heartbeat string `json:"heartbeat"`
	}
	var got struct {
		Engine   string    `json:"engine"`
		Replicas []replica `json:"replicas"`
	}
	// Two's first heartbeat is written before its New returns; the list is read at once.
	code, body := get(t, c, "http://"+a.AdminAddr()+"/console/cluster.json")
	if err := json.Unmarshal([]byte(body), &got); code != http.StatusOK || err != nil {
		t.Fatalf("cluster.json: %d %s (%v)", code, body, err)
	}
	if got.Engine != "redis" || len(got.Replicas) != 2 || got.Replicas[0] != (replica{ID: "one", Self: true}) ||
		got.Replicas[1].ID != "two" || got.Replicas[1].Self || got.Replicas[1].Heartbeat == "" {
		t.Fatalf("cluster.json %s: want redis, one (self) then two with a heartbeat", body)
	}
}

// TestConsoleListsLimitRefusals: a refusal by a limit shows in the console's incidents with the
// topic and the client's address, as its log line says.
func TestConsoleListsLimitRefusals(t *testing.T) {
	r := start(t, testConfig(t, "-publish-rate=1", "-publish-burst=1"), app.Options{})
	c := newClient(t)
	req, _ := http.NewRequest(http.MethodPost, "http://"+r.Addr()+"/topics", strings.NewReader(`{"name":"orders"}`))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ws := dial(t, r.Addr())
	for i := range 2 {
		if err := ws.conn.WriteJSON(map[string]any{"type": "publish", "topic": "orders",
			"message": map[string]any{"id": fmt.Sprintf("6f1c0000-0000-4000-8000-%012d", i), "payload": i}}); err != nil {
			t.Fatal(err)
		}
	}
	for !strings.Contains(ws.next(t), "RATE_LIMITED") { // the first is acknowledged, the second refused
	}
	code, body := get(t, c, "http://"+r.AdminAddr()+"/console/incidents.json")
	var got struct {
		Incidents []struct{ Kind, Limit, Topic, Remote string }
	}
	if err := json.Unmarshal([]byte(body), &got); code != http.StatusOK || err != nil || len(got.Incidents) != 1 {
		t.Fatalf("incidents.json: %d %s (%v)", code, body, err)
	}
	if in := got.Incidents[0]; in.Kind != "limit" || in.Limit != "publish_rate" || in.Topic != "orders" || !strings.HasPrefix(in.Remote, "127.0.0.1:") {
		t.Fatalf("incident %+v, want publish_rate on orders from 127.0.0.1", in)
	}
}

// TestConsoleOff: PUBSUB_CONSOLE=false leaves the console and the application's mount off the
// admin listener; metrics stay.
func TestConsoleOff(t *testing.T) {
	r := start(t, testConfig(t, "-console=false"), app.Options{})
	c := newClient(t)
	for _, path := range []string{"/console/", "/console/app/stats", "/console/config.json"} {
		if code, _ := get(t, c, "http://"+r.AdminAddr()+path); code != http.StatusNotFound {
			t.Errorf("GET %s with the console off: %d, want 404", path, code)
		}
	}
	if code, _ := get(t, c, "http://"+r.AdminAddr()+"/metrics"); code != http.StatusOK {
		t.Errorf("/metrics with the console off: %d", code)
	}
}
