package ws_test

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pubsubd/pubsub/internal/auth"
	"github.com/pubsubd/pubsub/internal/config"
	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/transport/wire"
	"github.com/pubsubd/pubsub/telemetry"
)

// The keys of authServer, and what each may do.
const (
	pubKey   = "publisher-key-0123456789"  // publish orders.*
	subKey   = "subscriber-key-0123456789" // subscribe orders.*
	otherKey = "other-key-0123456789abcd"  // subscribe *, another principal
	tokenKey = "token-signing-key-0123456789abcdef0123"
)

// authServer runs the process with authentication on: a keys file and a token key, and the
// topics orders.eu and payments.
func authServer(t *testing.T) *testServer {
	t.Helper()
	dir := t.TempDir()
	sum := func(k string) string { d := sha256.Sum256([]byte(k)); return hex.EncodeToString(d[:]) }
	keys := `{"keys":[
		{"id":"publisher","sha256":"` + sum(pubKey) + `","publish":["orders.*"]},
		{"id":"subscriber","sha256":"` + sum(subKey) + `","subscribe":["orders.*"]},
		{"id":"other","sha256":"` + sum(otherKey) + `","subscribe":["*"]}]}`
	keysFile, tokenFile := filepath.Join(dir, "keys.json"), filepath.Join(dir, "token.key")
	for name, content := range map[string]string{keysFile: keys, tokenFile: tokenKey} {
		if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := newServer(t, serverOpts{auth: config.Auth{KeysFile: keysFile, TokenKeyFile: tokenFile}})
	for _, topic := range []string{"orders.eu", "payments"} {
		if err := s.Svc.CreateTopic(t.Context(), domain.TopicName(topic)); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// dialAuth opens /ws with header and subprotocols; on a refused handshake it returns the response.
func (s *testServer) dialAuth(t *testing.T, header http.Header, protocols ...string) (*client, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{Subprotocols: protocols, HandshakeTimeout: waitFor}
	c, resp, err := d.Dial("ws"+strings.TrimPrefix(s.URL, "http")+"/ws", header)
	if err != nil {
		return nil, resp, err
	}
	t.Cleanup(func() { _ = c.Close() })
	return &client{t: t, conn: c}, resp, nil
}

func (s *testServer) dialKey(t *testing.T, key string) *client {
	t.Helper()
	c, resp, err := s.dialAuth(t, http.Header{"X-API-Key": {key}})
	if err != nil {
		t.Fatalf("dial with a valid key: %v (%v)", err, resp)
	}
	return c
}

func authFailures(t *testing.T, s *testServer, reason string) float64 {
	t.Helper()
	return metric(t, s, "pubsub_auth_failures_total", "reason", reason)
}

// expectRefused reads the next reply, which must be an UNAUTHORIZED error for requestID, and the
// auth failure it caused must have been counted under reason.
func (c *client) expectRefused(s *testServer, requestID, reason string, before float64) {
	c.t.Helper()
	f := c.expect("error")
	if f.Error == nil || f.Error.Code != wire.CodeUnauthorized || f.RequestID == nil || *f.RequestID != requestID {
		c.t.Fatalf("got %s, want an UNAUTHORIZED error for %s", f.raw, requestID)
	}
	if got := authFailures(c.t.(*testing.T), s, reason); got != before+1 {
		c.t.Errorf("pubsub_auth_failures_total{reason=%q} went %v -> %v, want +1", reason, before, got)
	}
}

// TestWSHandshakeAuthentication: without a key, with a wrong key and with an expired token the
// handshake is refused with 401 before any upgrade, in the contract's error shape, and counted;
// with the right key the connection opens.
func TestWSHandshakeAuthentication(t *testing.T) {
	s := authServer(t)
	expired, err := auth.Mint([]byte(tokenKey), "browser", auth.Grant{Subscribe: []string{"*"}}, time.Minute, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		header    http.Header
		protocols []string
		reason    string
	}{
		{"no key", nil, nil, telemetry.AuthMissing},
		{"wrong key", http.Header{"X-API-Key": {"wrong-key-0123456789"}}, nil, telemetry.AuthInvalid},
		{"expired token", nil, []string{auth.Protocol, auth.TokenProtocolPrefix + expired}, telemetry.AuthInvalid},
		{"bad token", nil, []string{auth.Protocol, auth.TokenProtocolPrefix + "x.y.z"}, telemetry.AuthInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := authFailures(t, s, tt.reason)
			_, resp, err := s.dialAuth(t, tt.header, tt.protocols...)
			if err == nil || resp == nil {
				t.Fatalf("dial: %v, want a refused handshake", err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), `"code":"UNAUTHORIZED"`) {
				t.Errorf("handshake answered %d %s, want 401 UNAUTHORIZED", resp.StatusCode, body)
			}
			if resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("no WWW-Authenticate header")
			}
			if got := authFailures(t, s, tt.reason); got != before+1 {
				t.Errorf("pubsub_auth_failures_total{reason=%q} went %v -> %v, want +1", tt.reason, before, got)
			}
		})
	}
	if s.WS.Connections() != 0 {
		t.Errorf("%d connections open after refused handshakes", s.WS.Connections())
	}
	c := s.dialKey(t, subKey)
	c.subscribe("orders.eu", "c1", 0)
	if strings.Contains(s.logs.String(), expired) || strings.Contains(s.logs.String(), "wrong-key-0123456789") {
		t.Error("a credential reached the log")
	}
}

// TestWSBrowserToken: a browser cannot set X-API-Key on the handshake, so it offers its token as a
// subprotocol beside "pubsub"; the server selects "pubsub" and never echoes the token, and the
// token's scopes apply to every frame.
func TestWSBrowserToken(t *testing.T) {
	s := authServer(t)
	tok, err := auth.Mint([]byte(tokenKey), "browser-1", auth.Grant{Subscribe: []string{"orders.*"}}, 10*time.Minute, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c, resp, err := s.dialAuth(t, nil, auth.Protocol, auth.TokenProtocolPrefix+tok)
	if err != nil {
		t.Fatalf("dial with a token: %v (%v)", err, resp)
	}
	if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != auth.Protocol || c.conn.Subprotocol() != auth.Protocol {
		t.Errorf("selected protocol %q (header %q), want %q", c.conn.Subprotocol(), got, auth.Protocol)
	}
	c.subscribe("orders.eu", "b1", 0)
	before := authFailures(t, s, telemetry.AuthScope)
	c.publish("orders.eu", "hi", "p1")
	c.expectRefused(s, "p1", telemetry.AuthScope, before)
	// A token-authenticated REST call works too (Authorization: Bearer).
	req, _ := http.NewRequest("GET", s.URL+"/topics", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != 200 {
		t.Errorf("GET /topics with the token: %d", r.StatusCode)
	}
}

// TestWSScopes: publish and subscribe frames are checked against the principal's topics; a
// refused publish reaches no one, and the connection stays usable.
func TestWSScopes(t *testing.T) {
	s := authServer(t)
	pub, sub := s.dialKey(t, pubKey), s.dialKey(t, subKey)
	sub.subscribe("orders.eu", "s1", 0)

	before := authFailures(t, s, telemetry.AuthScope)
	pub.publish("payments", "no", "p-out-of-scope")
	pub.expectRefused(s, "p-out-of-scope", telemetry.AuthScope, before)

	before = authFailures(t, s, telemetry.AuthScope)
	pub.send(map[string]any{"type": "subscribe", "topic": "orders.eu", "client_id": "x", "request_id": "s-no-scope"})
	pub.expectRefused(s, "s-no-scope", telemetry.AuthScope, before)

	before = authFailures(t, s, telemetry.AuthScope)
	sub.publish("orders.eu", "no", "p-no-scope")
	sub.expectRefused(s, "p-no-scope", telemetry.AuthScope, before)

	before = authFailures(t, s, telemetry.AuthScope)
	sub.send(map[string]any{"type": "subscribe", "topic": "payments", "client_id": "s2", "request_id": "s-out-of-scope"})
	sub.expectRefused(s, "s-out-of-scope", telemetry.AuthScope, before)

	// The same refusal again comes from the connection's cache, and is counted again.
	before = authFailures(t, s, telemetry.AuthScope)
	pub.publish("payments", "no", "p-again")
	pub.expectRefused(s, "p-again", telemetry.AuthScope, before)

	pub.publish("orders.eu", "yes", "p-ok")
	pub.expect("ack")
	ev := sub.expect("event")
	if string(ev.Message.Payload) != `"yes"` {
		t.Errorf("subscriber got %s, want only the allowed publish", ev.raw)
	}
	if fs := sub.barrier(); len(fs) != 0 {
		t.Errorf("subscriber got %d more frames, first %s", len(fs), fs[0].raw)
	}
}

// TestWSClientIDOwnership: a client_id belongs to the principal that subscribed it. Another
// principal can neither take it over nor end it (refused, counted as takeover); another connection
// of the same principal can, and the connection that held it is told.
func TestWSClientIDOwnership(t *testing.T) {
	s := authServer(t)
	a := s.dialKey(t, subKey)
	a.subscribe("orders.eu", "c1", 0)

	mallory := s.dialKey(t, otherKey)
	before := authFailures(t, s, telemetry.AuthTakeover)
	mallory.send(map[string]any{"type": "subscribe", "topic": "orders.eu", "client_id": "c1", "request_id": "steal"})
	mallory.expectRefused(s, "steal", telemetry.AuthTakeover, before)
	before = authFailures(t, s, telemetry.AuthTakeover)
	mallory.send(map[string]any{"type": "unsubscribe", "topic": "orders.eu", "client_id": "c1", "request_id": "end"})
	mallory.expectRefused(s, "end", telemetry.AuthTakeover, before)

	pub := s.dialKey(t, pubKey)
	pub.publish("orders.eu", 1, "p1")
	pub.expect("ack")
	if ev := a.expect("event"); string(ev.Message.Payload) != "1" {
		t.Fatalf("the owner's stream: %s", ev.raw)
	}

	// Same principal, another connection: takes over; the old one is told.
	b := s.dialKey(t, subKey)
	b.subscribe("orders.eu", "c1", 0)
	if f := a.expect("info"); f.Msg != wire.InfoSubscriptionReplaced || f.Topic != "orders.eu" {
		t.Fatalf("old holder got %s, want subscription_replaced", f.raw)
	}
	// Same principal, a third connection ends it; the holder is told.
	c := s.dialKey(t, subKey)
	c.send(map[string]any{"type": "unsubscribe", "topic": "orders.eu", "client_id": "c1", "request_id": "u1"})
	c.expect("ack")
	if f := b.expect("info"); f.Msg != wire.InfoUnsubscribed || f.Topic != "orders.eu" {
		t.Fatalf("holder got %s, want unsubscribed", f.raw)
	}
	if fs := c.barrier(); len(fs) != 0 {
		t.Errorf("the connection that unsubscribed got %s: it asked, it needs no notice", fs[0].raw)
	}
}

// TestUnsubscribeNoticeWithoutAuth: with authentication off every connection is the same
// (anonymous) principal, so another connection may still end a client_id, as before; but the
// connection that held it is now told instead of going silent.
func TestUnsubscribeNoticeWithoutAuth(t *testing.T) {
	s := newServer(t, serverOpts{})
	s.createTopic(t, "orders")
	a, b := s.dial(t), s.dial(t)
	a.subscribe("orders", "c1", 0)
	b.send(map[string]any{"type": "unsubscribe", "topic": "orders", "client_id": "c1", "request_id": "u1"})
	b.expect("ack")
	if f := a.expect("info"); f.Msg != wire.InfoUnsubscribed || f.Topic != "orders" {
		t.Fatalf("holder got %s, want unsubscribed", f.raw)
	}
	// Its own unsubscribe is acknowledged without a notice.
	a.subscribe("orders", "c2", 0)
	a.send(map[string]any{"type": "unsubscribe", "topic": "orders", "client_id": "c2", "request_id": "u2"})
	a.expect("ack")
	if fs := a.barrier(); len(fs) != 0 {
		t.Errorf("own unsubscribe was followed by %s", fs[0].raw)
	}
}

// TestRefusedHandshakeFlood: a client hammering /ws with bad credentials is refused every time
// and counted every time, but the log only gets a bounded sample, the heap does not grow with the
// attempts, and the server goes on answering.
func TestRefusedHandshakeFlood(t *testing.T) {
	s := authServer(t)
	const attempts = 1000
	before := authFailures(t, s, telemetry.AuthInvalid)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	heapBefore := ms.HeapAlloc
	start := time.Now()
	huge := strings.Repeat("k", 4<<10) // a large wrong key costs one hash, nothing kept
	for i := range attempts {
		key := "wrong-key-0123456789"
		if i%2 == 0 {
			key = huge
		}
		_, resp, err := s.dialAuth(t, http.Header{"X-API-Key": {key}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %v, want 401", i, err)
		}
		resp.Body.Close()
	}
	elapsed := time.Since(start)
	if got := authFailures(t, s, telemetry.AuthInvalid); got != before+attempts {
		t.Errorf("counted %v refusals, want %d", got-before, attempts)
	}
	// The refusal log lets 20 through at once, then 10 a second.
	lines := strings.Count(s.logs.String(), `"msg":"ws handshake refused"`)
	if limit := 20 + int(elapsed.Seconds()*10) + 1; lines > limit {
		t.Errorf("%d log lines for %d refusals in %s, want at most %d", lines, attempts, elapsed, limit)
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	if grown := int64(ms.HeapAlloc) - int64(heapBefore); grown > 8<<20 {
		t.Errorf("heap grew %d bytes over %d refused handshakes", grown, attempts)
	}
	t.Logf("%d refused handshakes in %s: %d log lines, heap %+d bytes", attempts, elapsed, lines, int64(ms.HeapAlloc)-int64(heapBefore))
	resp, err := http.Get(s.URL + "/livez")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/livez after the flood: %v %v", resp, err)
	}
	resp.Body.Close()
	s.dialKey(t, subKey).subscribe("orders.eu", "after", 0)
}
