package ws_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"

	"github.com/pubsubd/pubsub/internal/app"
	"github.com/pubsubd/pubsub/internal/config"
	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/logbuffer"
	"github.com/pubsubd/pubsub/internal/service"
	"github.com/pubsubd/pubsub/internal/transport/wire"
	"github.com/pubsubd/pubsub/internal/transport/ws"
	"github.com/pubsubd/pubsub/telemetry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitFor bounds every wait in these tests: long enough for a loaded CI machine, short enough
// that a hang fails quickly.
const waitFor = 10 * time.Second

type serverOpts struct {
	queue, history int
	policy         domain.Policy
	ws             ws.Config
	limits         config.Limits // through config and the app's wiring, as pubsubd gets them
	wrap           func(service.API) service.API
	// Tracing: when spans is set, every trace is recorded there (unless sampler says otherwise).
	spans   *tracetest.SpanRecorder
	sampler sdktrace.Sampler
	auth    config.Auth // authentication settings; zero: off
}

type testServer struct {
	URL  string
	Tel  *telemetry.Telemetry
	Svc  *service.Service
	WS   *ws.Server
	logs *logbuffer.Buffer
}

// newServer runs the whole process, as pubsubd assembles it (internal/app), on a free loopback
// port with the admin listener off. Its cleanup stops it the way SIGTERM does.
func newServer(t testing.TB, o serverOpts) *testServer {
	t.Helper()
	if o.queue == 0 {
		o.queue = 100
	}
	if o.history == 0 {
		o.history = 100
	}
	if o.ws.WriteTimeout == 0 {
		o.ws.WriteTimeout = 5 * time.Second
	}
	if o.ws.MaxFrameBytes == 0 {
		o.ws.MaxFrameBytes = 1 << 20
	}
	if o.ws.IdleAfter == 0 {
		// Far shorter than the service's 2s, so that every test also runs with readers parking and
		// writers retiring between its frames.
		o.ws.IdleAfter = 20 * time.Millisecond
	}
	switch {
	case o.ws.PublishStallMax == 0:
		o.ws.PublishStallMax = 100 * time.Millisecond // the service's default
	case o.ws.PublishStallMax < 0:
		o.ws.PublishStallMax = 0 // off
	}
	cfg := config.Config{
		Host: "127.0.0.1", Port: 0, AdminAddr: "",
		MaxQueueSize: o.queue, HistorySize: o.history, OverflowPolicy: o.policy,
		LogLevel: slog.LevelDebug, LogFormat: "json",
		PingInterval: o.ws.PingInterval, PingTimeout: o.ws.PingTimeout, Heartbeat: o.ws.Heartbeat,
		MaxFrameBytes: o.ws.MaxFrameBytes, WriteTimeout: o.ws.WriteTimeout, AllowedOrigins: o.ws.AllowedOrigins,
		DrainTimeout: waitFor, DeliverySpans: 16, PublishStallMax: o.ws.PublishStallMax,
		Auth:   o.auth,
		Limits: o.limits,
	}
	logs := &logbuffer.Buffer{}
	a, err := app.New(cfg, app.Options{
		LogOutput: logs, WrapAPI: o.wrap, SpanProcessor: spanProcessor(o.spans), Sampler: o.sampler,
		// What config.Config carries went through cfg; these are the knobs only tests turn.
		TuneWS: func(c *ws.Config) { c.IdleAfter, c.MaxPendingReplies = o.ws.IdleAfter, o.ws.MaxPendingReplies },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx) }()
	ts := &testServer{URL: "http://" + a.Addr(), Tel: a.Telemetry(), Svc: a.Service(), WS: a.WebSocket(), logs: logs}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(2 * waitFor): // the drain may take waitFor
			t.Error("the server did not stop")
		}
		// The server has closed its side; close the client side's idle connections now, as
		// httptest.Server.Close did, so that goleak does not wait on their goroutines.
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return ts
}

func spanProcessor(r *tracetest.SpanRecorder) sdktrace.SpanProcessor {
	if r == nil {
		return nil
	}
	return r
}

// do sends a REST request and decodes the JSON answer.
func (s *testServer) do(t testing.TB, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: body %q is not a JSON object: %v", method, path, raw, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	return resp.StatusCode, out
}

func (s *testServer) createTopic(t testing.TB, name string) {
	t.Helper()
	if code, body := s.do(t, "POST", "/topics", fmt.Sprintf(`{"name":%q}`, name)); code != 201 {
		t.Fatalf("create %s: %d %v", name, code, body)
	}
}

// frame is a decoded server frame.
type frame struct {
	Type      string            `json:"type"`
	RequestID *string           `json:"request_id"`
	Topic     string            `json:"topic"`
	Status    string            `json:"status"`
	Msg       string            `json:"msg"`
	Seq       uint64            `json:"seq"`
	TS        string            `json:"ts"`
	Message   *eventMessage     `json:"message"`
	Error     *wire.ErrorDetail `json:"error"`
	raw       []byte
}

type eventMessage struct {
	ID      string            `json:"id"`
	Payload json.RawMessage   `json:"payload"`
	Headers map[string]string `json:"headers"`
}

type client struct {
	t    testing.TB
	conn *websocket.Conn
}

func (s *testServer) dial(t testing.TB) *client {
	t.Helper()
	u := "ws" + strings.TrimPrefix(s.URL, "http") + "/ws"
	c, resp, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	cl := &client{t: t, conn: c}
	t.Cleanup(func() { _ = c.Close() })
	return cl
}

func (c *client) sendRaw(data string) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(waitFor))
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte(data)); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *client) send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(string(b))
}

// read returns the next frame, failing the test if none arrives in time.
func (c *client) read() frame {
	c.t.Helper()
	f, err := c.tryRead(waitFor)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return f
}

func (c *client) tryRead(d time.Duration) (frame, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	mt, data, err := c.conn.ReadMessage()
	if err != nil {
		return frame{}, err
	}
	if mt != websocket.TextMessage {
		return frame{}, fmt.Errorf("message type %d", mt)
	}
	var f frame
	if err := json.Unmarshal(data, &f); err != nil {
		return frame{}, fmt.Errorf("frame %q: %v", data, err)
	}
	f.raw = data
	return f, nil
}

// readType skips heartbeat info pings and returns the next frame, which must be of type typ.
func (c *client) expect(typ string) frame {
	c.t.Helper()
	for {
		f := c.read()
		if f.Type == "info" && f.Msg == "ping" && typ != "info" {
			continue
		}
		if f.Type != typ {
			c.t.Fatalf("got %s, want a %s frame", f.raw, typ)
		}
		return f
	}
}

func (c *client) subscribe(topic, clientID string, lastN int) frame {
	c.t.Helper()
	rid := "sub-" + clientID
	c.send(map[string]any{"type": "subscribe", "topic": topic, "client_id": clientID, "last_n": lastN, "request_id": rid})
	f := c.expect("ack")
	if f.RequestID == nil || *f.RequestID != rid || f.Topic != topic || f.Status != "ok" {
		c.t.Fatalf("subscribe ack: %s", f.raw)
	}
	return f
}

func (c *client) publish(topic string, payload any, requestID string) {
	c.t.Helper()
	c.send(map[string]any{"type": "publish", "topic": topic, "request_id": requestID,
		"message": map[string]any{"id": uuid.NewString(), "payload": payload}})
}

// barrier sends a ping and returns every frame that arrived before its pong: since replies and
// events leave one connection in order, anything the server had queued is among them.
func (c *client) barrier() []frame {
	c.t.Helper()
	rid := "barrier-" + uuid.NewString()
	c.send(map[string]any{"type": "ping", "request_id": rid})
	var before []frame
	for {
		f := c.read()
		if f.Type == "pong" && f.RequestID != nil && *f.RequestID == rid {
			return before
		}
		before = append(before, f)
	}
}

// expectClose reads until the connection closes and returns the close code.
func (c *client) expectClose() (int, []frame) {
	c.t.Helper()
	var frames []frame
	for {
		f, err := c.tryRead(waitFor)
		if err != nil {
			if ce, ok := err.(*websocket.CloseError); ok {
				return ce.Code, frames
			}
			c.t.Fatalf("want a close frame, got %v", err)
		}
		frames = append(frames, f)
	}
}

type wsCfg = ws.Config

func wsConfig(f func(*wsCfg)) ws.Config {
	var c ws.Config
	f(&c)
	return c
}

// publishUntilDisconnected publishes 32 KiB messages to topic in bursts, far faster than a slow
// subscriber reads, until the server has cut one of the two connections off.
func publishUntilDisconnected(t *testing.T, s *testServer, pub *client, topic string) {
	t.Helper()
	payload := strings.Repeat("x", 32<<10)
	// How long the overflow takes depends on what the kernel's socket buffers hold and on how often
	// the stall gate paces the publisher, both slower on a loaded machine (CI builds Jaeger and the
	// Kubernetes servers beside the tests): seen at 10 s with a load of 9 on two cores. The bound only
	// keeps a broken server from hanging the test.
	deadline := time.Now().Add(6 * waitFor)
	for s.WS.Connections() == 2 {
		if time.Now().After(deadline) {
			t.Fatal("slow subscriber was never disconnected")
		}
		for i := 0; i < 50; i++ {
			pub.publish(topic, payload, fmt.Sprint(i))
		}
		for i := 0; i < 50; i++ {
			pub.expect("ack")
		}
	}
}
