package ws_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pubsubd/pubsub/internal/config"
	"github.com/pubsubd/pubsub/internal/transport/wire"
)

// handshake dials /ws with header, from the loopback address local ("" for the default), and
// returns the connection or, when the server refused, the status and the contract's error code.
func (s *testServer) handshake(t *testing.T, local string, header http.Header) (*websocket.Conn, int, string) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: waitFor}
	if local != "" {
		nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		d.NetDialContext = nd.DialContext
	}
	c, resp, err := d.Dial("ws"+strings.TrimPrefix(s.URL, "http")+"/ws", header)
	if err == nil {
		t.Cleanup(func() { _ = c.Close() })
		return c, http.StatusSwitchingProtocols, ""
	}
	if resp == nil {
		t.Fatalf("dial: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var body wire.ErrorBody
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("refusal %d is not the contract's error body: %q", resp.StatusCode, raw)
	}
	return nil, resp.StatusCode, body.Error.Code
}

// waitConnections waits, with a deadline, until the server counts n connections: a client's close
// reaches the server a moment after the client has made it.
func waitConnections(t *testing.T, s *testServer, n int) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for s.WS.Connections() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections, want %d", s.WS.Connections(), n)
		}
		time.Sleep(2 * time.Millisecond) // polling a condition with a deadline
	}
}

// TestConnectionLimitTotal: past PUBSUB_MAX_CONNECTIONS a handshake is refused before the upgrade
// with 503 UNAVAILABLE, counted; a connection that ends gives its slot back.
func TestConnectionLimitTotal(t *testing.T) {
	s := newServer(t, serverOpts{limits: config.Limits{MaxConnections: 3}})
	var conns []*websocket.Conn
	for range 3 {
		c, status, code := s.handshake(t, "", nil)
		if c == nil {
			t.Fatalf("connection under the limit refused: %d %s", status, code)
		}
		conns = append(conns, c)
	}
	if _, status, code := s.handshake(t, "", nil); status != http.StatusServiceUnavailable || code != wire.CodeUnavailable {
		t.Fatalf("4th connection: %d %s, want 503 %s", status, code, wire.CodeUnavailable)
	}
	expectMetric(t, s, 1, "pubsub_limit_rejections_total", "limit", "connections")
	if code, _ := s.do(t, "GET", "/livez", ""); code != http.StatusOK {
		t.Fatalf("/livez at the connection limit: %d", code)
	}
	// No leak: every connection that ends frees its slot, over and over.
	waitConnections(t, s, 3)
	for i := range 10 {
		_ = conns[i%3].Close()
		waitConnections(t, s, 2)
		c, status, code := s.handshake(t, "", nil)
		if c == nil {
			t.Fatalf("round %d: a freed slot was not given back: %d %s", i, status, code)
		}
		conns[i%3] = c
		waitConnections(t, s, 3) // the client may see the upgrade before the server counts it
	}
	expectMetric(t, s, 1, "pubsub_limit_rejections_total", "limit", "connections")
}

// TestConnectionLimitPerAddr: past PUBSUB_MAX_CONNECTIONS_PER_ADDR one client IP is refused with 429
// RATE_LIMITED, counted, while another address still connects; closing gives the slot back.
// X-Forwarded-For is not believed.
func TestConnectionLimitPerAddr(t *testing.T) {
	s := newServer(t, serverOpts{limits: config.Limits{MaxConnectionsPerAddr: 2}})
	a, _, _ := s.handshake(t, "127.0.0.1", nil)
	if b, status, code := s.handshake(t, "127.0.0.1", nil); a == nil || b == nil {
		t.Fatalf("connections under the limit refused: %d %s", status, code)
	}
	forged := http.Header{"X-Forwarded-For": {"203.0.113.9"}}
	if _, status, code := s.handshake(t, "127.0.0.1", forged); status != http.StatusTooManyRequests || code != wire.CodeRateLimited {
		t.Fatalf("3rd connection from one address: %d %s, want 429 %s", status, code, wire.CodeRateLimited)
	}
	expectMetric(t, s, 1, "pubsub_limit_rejections_total", "limit", "addr_connections")
	if c, status, code := s.handshake(t, "127.0.0.2", nil); c == nil {
		t.Fatalf("another address refused: %d %s", status, code)
	}
	waitConnections(t, s, 3)
	_ = a.Close()
	waitConnections(t, s, 2)
	if c, status, code := s.handshake(t, "127.0.0.1", nil); c == nil {
		t.Fatalf("a freed slot was not given back: %d %s", status, code)
	}
}

// TestOriginDefaultIsSameHost: with no allow-list a browser page may open /ws only from the
// server's own host; clients that send no Origin are not browsers and pass. A refusal is 403
// UNAUTHORIZED before the upgrade, counted as an authentication failure.
func TestOriginDefaultIsSameHost(t *testing.T) {
	s := newServer(t, serverOpts{})
	if c, status, code := s.handshake(t, "", http.Header{"Origin": {s.URL}}); c == nil {
		t.Fatalf("same-host origin refused: %d %s", status, code)
	}
	if c, status, code := s.handshake(t, "", nil); c == nil {
		t.Fatalf("client without Origin refused: %d %s", status, code)
	}
	for i, origin := range []string{"https://evil.example", "http://127.0.0.1", "null"} {
		if _, status, code := s.handshake(t, "", http.Header{"Origin": {origin}}); status != http.StatusForbidden || code != wire.CodeUnauthorized {
			t.Fatalf("origin %s: %d %s, want 403 %s", origin, status, code, wire.CodeUnauthorized)
		}
		expectMetric(t, s, float64(i+1), "pubsub_auth_failures_total", "reason", "origin")
	}
	if n := strings.Count(s.logs.String(), "origin not allowed"); n == 0 {
		t.Error("refusals were not logged")
	}
}

// TestOriginAllowListAndStar: PUBSUB_ALLOWED_ORIGINS adds origins; * allows any.
func TestOriginAllowListAndStar(t *testing.T) {
	s := newServer(t, serverOpts{ws: wsConfig(func(c *wsCfg) { c.AllowedOrigins = []string{"https://app.example"} })})
	for origin, ok := range map[string]bool{"https://app.example": true, "https://APP.example": true, s.URL: true, "https://evil.example": false} {
		c, status, _ := s.handshake(t, "", http.Header{"Origin": {origin}})
		if (c != nil) != ok {
			t.Errorf("origin %s: status %d, want allowed=%v", origin, status, ok)
		}
	}
	expectMetric(t, s, 1, "pubsub_auth_failures_total", "reason", "origin")

	any := newServer(t, serverOpts{ws: wsConfig(func(c *wsCfg) { c.AllowedOrigins = []string{"*"} })})
	if c, status, code := any.handshake(t, "", http.Header{"Origin": {"https://evil.example"}}); c == nil {
		t.Fatalf("* refused an origin: %d %s", status, code)
	}
}

// TestPublishRateLimit: a connection gets its burst of publishes, then RATE_LIMITED with its
// request_id for each publish over the rate, counted; its other requests and other connections are
// not affected. The rate is so low that no token comes back during the test, however slow it runs.
func TestPublishRateLimit(t *testing.T) {
	s := newServer(t, serverOpts{limits: config.Limits{PublishRate: 1e-6, PublishBurst: 5}})
	s.createTopic(t, "t")
	c := s.dial(t)
	for i := range 8 {
		c.publish("t", i, fmt.Sprint("p", i))
	}
	for i := range 8 {
		f := c.read()
		rid := fmt.Sprint("p", i)
		if f.RequestID == nil || *f.RequestID != rid {
			t.Fatalf("reply %d: %s, want request_id %s", i, f.raw, rid)
		}
		switch {
		case i < 5 && f.Type != "ack":
			t.Fatalf("publish %d within the burst: %s", i, f.raw)
		case i >= 5 && (f.Type != "error" || f.Error == nil || f.Error.Code != wire.CodeRateLimited):
			t.Fatalf("publish %d over the rate: %s, want %s", i, f.raw, wire.CodeRateLimited)
		}
	}
	expectMetric(t, s, 3, "pubsub_limit_rejections_total", "limit", "publish_rate")
	c.barrier() // the connection is still served
	other := s.dial(t)
	other.publish("t", "x", "o1")
	if f := other.expect("ack"); *f.RequestID != "o1" {
		t.Fatalf("another connection's publish: %s", f.raw)
	}
}

// TestSubscriptionsPerConnLimit: past PUBSUB_MAX_SUBSCRIPTIONS_PER_CONN a subscribe is refused with
// RATE_LIMITED, counted; renewing a held client id is not a new subscription, and unsubscribing
// frees a slot.
func TestSubscriptionsPerConnLimit(t *testing.T) {
	s := newServer(t, serverOpts{limits: config.Limits{MaxSubscriptionsPerConn: 3}})
	for _, name := range []string{"a", "b", "c", "d"} {
		s.createTopic(t, name)
	}
	c := s.dial(t)
	c.subscribe("a", "u", 0)
	c.subscribe("b", "u", 0)
	c.subscribe("c", "u", 0)
	c.send(map[string]any{"type": "subscribe", "topic": "d", "client_id": "u", "request_id": "over"})
	if f := c.expect("error"); f.Error.Code != wire.CodeRateLimited || *f.RequestID != "over" {
		t.Fatalf("4th subscription: %s, want %s", f.raw, wire.CodeRateLimited)
	}
	expectMetric(t, s, 1, "pubsub_limit_rejections_total", "limit", "conn_subscriptions")
	c.subscribe("a", "u", 0) // renewal at the limit
	c.send(map[string]any{"type": "unsubscribe", "topic": "b", "client_id": "u", "request_id": "unsub"})
	if f := c.expect("ack"); *f.RequestID != "unsub" {
		t.Fatalf("unsubscribe: %s", f.raw)
	}
	c.subscribe("d", "u", 0)
	if code, _ := s.do(t, "DELETE", "/topics/d", ""); code != http.StatusOK {
		t.Fatalf("delete d: %d", code)
	}
	c.expect("info") // topic_deleted: that subscription has ended too
	c.subscribe("b", "u", 0)
	expectMetric(t, s, 1, "pubsub_limit_rejections_total", "limit", "conn_subscriptions")
}

// TestReadTimeoutSparesWebSockets: the REST listener's read timeout is on the socket when /ws
// hijacks it; the WebSocket must outlive it.
func TestReadTimeoutSparesWebSockets(t *testing.T) {
	s := newServer(t, serverOpts{
		ws:     wsConfig(func(c *wsCfg) { c.Heartbeat = 50 * time.Millisecond }),
		limits: config.Limits{HTTPReadTimeout: 100 * time.Millisecond, HTTPIdleTimeout: 100 * time.Millisecond},
	})
	c := s.dial(t)
	start := time.Now()
	for time.Since(start) < 500*time.Millisecond { // five read timeouts, heartbeat by heartbeat
		c.expect("info")
	}
	c.barrier()
}
