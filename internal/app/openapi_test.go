package app_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/pubsubd/pubsub/internal/app"
	"github.com/pubsubd/pubsub/internal/transport/httpapi/api/apitest"
)

// handshake sends a GET /ws with the given headers (pairs) and returns the exchange. A 101's
// connection is closed when the test ends, unless the caller closes it first (close).
func handshake(t *testing.T, c *http.Client, addr string, header ...string) (apitest.Exchange, func()) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET /ws: %v", err)
	}
	var body []byte
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ = io.ReadAll(resp.Body)
	}
	closeConn := func() { resp.Body.Close() }
	t.Cleanup(closeConn)
	return apitest.Exchange{Request: req, Status: resp.StatusCode, Header: resp.Header, Body: body}, closeConn
}

// upgrade are the headers of a valid WebSocket handshake.
var upgrade = []string{"Connection", "Upgrade", "Upgrade", "websocket", "Sec-WebSocket-Version", "13",
	"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}

// TestOpenAPIDescribesTheHandshake: the real WebSocket server's answers to GET /ws (101 and every
// refusal before the upgrade) match openapi.json, and each documented one is provoked.
func TestOpenAPIDescribesTheHandshake(t *testing.T) {
	doc := apitest.Load(t)
	check := func(t *testing.T, e apitest.Exchange, want apitest.Want, status int) {
		t.Helper()
		if e.Status != status {
			t.Fatalf("GET /ws: %d %s, want %d", e.Status, e.Body, status)
		}
		doc.Check(t, e, want)
	}
	const key = "handshake-test-key-0123456789"
	creds := apitest.Want{Credentials: true}
	with := func(h ...string) []string { return append(append([]string{}, upgrade...), h...) }

	t.Run("authentication", func(t *testing.T) {
		r := start(t, testConfig(t, "-api-key="+key), app.Options{})
		c := newClient(t)
		e, closeConn := handshake(t, c, r.Addr(), with("X-API-Key", key, "Sec-WebSocket-Protocol", "pubsub")...)
		check(t, e, creds, http.StatusSwitchingProtocols)
		closeConn()
		e, _ = handshake(t, c, r.Addr(), upgrade...)
		check(t, e, apitest.Want{}, http.StatusUnauthorized)
		e, _ = handshake(t, c, r.Addr(), with("X-API-Key", "wrong-key-0123456789")...)
		check(t, e, apitest.Want{}, http.StatusUnauthorized)
		e, _ = handshake(t, c, r.Addr(), with("X-API-Key", key, "Origin", "https://elsewhere.example")...)
		check(t, e, creds, http.StatusForbidden)
		// Authenticated, but not a WebSocket handshake.
		e, _ = handshake(t, c, r.Addr(), "X-API-Key", key)
		check(t, e, apitest.Want{BadRequest: true, Credentials: true}, http.StatusBadRequest)
	})

	t.Run("connections from one address", func(t *testing.T) {
		r := start(t, testConfig(t, "-max-connections-per-addr=1"), app.Options{})
		c := newClient(t)
		e, _ := handshake(t, c, r.Addr(), upgrade...)
		check(t, e, apitest.Want{}, http.StatusSwitchingProtocols)
		e, _ = handshake(t, c, r.Addr(), upgrade...)
		check(t, e, apitest.Want{}, http.StatusTooManyRequests)
	})

	t.Run("connections in total", func(t *testing.T) {
		r := start(t, testConfig(t, "-max-connections=1"), app.Options{})
		c := newClient(t)
		e, _ := handshake(t, c, r.Addr(), upgrade...)
		check(t, e, apitest.Want{}, http.StatusSwitchingProtocols)
		e, _ = handshake(t, c, r.Addr(), upgrade...)
		check(t, e, apitest.Want{}, http.StatusServiceUnavailable)
		if !strings.Contains(string(e.Body), "UNAVAILABLE") || e.Header.Get("Retry-After") == "" {
			t.Errorf("503 without UNAVAILABLE or Retry-After: %v %s", e.Header, e.Body)
		}
	})

	if t.Failed() {
		return
	}
	ws := func(path string) bool { return path == "/ws" }
	unprovoked := map[string]string{"GET /ws 500": "only a panic in the handler, which the recoverer answers"}
	if unseen := doc.Unseen(ws, unprovoked); len(unseen) > 0 {
		t.Errorf("documented handshake answers no test provoked:\n  %s", strings.Join(unseen, "\n  "))
	}
}
