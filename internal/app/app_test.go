package app_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"

	"github.com/pubsubd/pubsub/internal/app"
	"github.com/pubsubd/pubsub/internal/config"
	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/logbuffer"
	"github.com/pubsubd/pubsub/internal/service"
)

// Every goroutine the app starts ends by the time Serve or Shutdown has returned.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitFor bounds every wait: long enough for a loaded machine, short enough to fail a hang quickly.
const waitFor = 10 * time.Second

// testConfig is the defaults, on free loopback ports, with JSON logs.
func testConfig(t *testing.T, flags ...string) config.Config {
	t.Helper()
	args := append([]string{"-host=127.0.0.1", "-port=0", "-admin-addr=127.0.0.1:0", "-log-format=json"}, flags...)
	cfg, err := config.Load(args, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// running is an App whose Serve runs in a goroutine.
type running struct {
	*app.App
	logs   *logbuffer.Buffer
	cancel context.CancelFunc
	served chan error // receives Serve's result once
}

// start builds the app, binds its listeners and serves in the background. The cleanup stops it
// and fails the test if it does not stop in time.
func start(t *testing.T, cfg config.Config, opts app.Options) *running {
	t.Helper()
	r := &running{logs: &logbuffer.Buffer{}, served: make(chan error, 1)}
	opts.LogOutput = r.logs
	a, err := app.New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Listen(); err != nil {
		t.Fatal(err)
	}
	r.App = a
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.served <- a.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.served:
		case <-time.After(waitFor):
			t.Error("Serve did not return after its context ended")
		}
		if t.Failed() {
			t.Logf("app log:\n%s", r.logs.String())
		}
	})
	return r
}

// wait returns Serve's result, failing the test if it does not come in time.
func (r *running) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.served:
		r.served <- err // for the cleanup
		return err
	case <-time.After(waitFor):
		t.Fatal("Serve did not return in time")
		return nil
	}
}

// newClient is an HTTP client of its own, whose idle connections the cleanup closes (goleak).
func newClient(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: waitFor}
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func refused(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, waitFor)
	if err == nil {
		c.Close()
	}
	return err != nil
}

// wsClient reads its connection in a goroutine, as a real client does, so the server's close is
// answered at once.
type wsClient struct {
	conn   *websocket.Conn
	frames chan string // data frames in order; closed when reading stops
	err    error       // why reading stopped; valid once frames is closed
}

func dial(t *testing.T, addr string) *wsClient {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: waitFor}
	conn, resp, err := d.Dial("ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatalf("dial /ws: %v (%v)", err, resp)
	}
	c := &wsClient{conn: conn, frames: make(chan string, 64)}
	go func() {
		defer close(c.frames)
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				c.err = err
				return
			}
			c.frames <- string(data)
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		for range c.frames {
		}
	})
	return c
}

func (c *wsClient) next(t *testing.T) string {
	t.Helper()
	select {
	case f, ok := <-c.frames:
		if !ok {
			t.Fatalf("connection ended: %v", c.err)
		}
		return f
	case <-time.After(waitFor):
		t.Fatal("no frame in time")
		return ""
	}
}

// rest returns the frames left until the connection ends, and why it ended.
func (c *wsClient) rest(t *testing.T) ([]string, error) {
	t.Helper()
	var out []string
	deadline := time.After(waitFor)
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				return out, c.err
			}
			out = append(out, f)
		case <-deadline:
			t.Fatal("connection did not end in time")
		}
	}
}

// TestServesOnFreePorts: the process serves the probes and /ws on the application listener, and
// metrics and profiles on the admin listener only; a context that ends stops it cleanly.
func TestServesOnFreePorts(t *testing.T) {
	r := start(t, testConfig(t, "-pprof=true"), app.Options{Version: "v1.2.3", Revision: "abc"})
	c := newClient(t)
	base, admin := "http://"+r.Addr(), "http://"+r.AdminAddr()
	if r.AdminAddr() == "" || strings.HasSuffix(r.Addr(), ":0") {
		t.Fatalf("addresses %q, %q: want bound ports", r.Addr(), r.AdminAddr())
	}
	for _, path := range []string{"/livez", "/readyz"} {
		if code, body := get(t, c, base+path); code != http.StatusOK {
			t.Errorf("GET %s: %d %s", path, code, body)
		}
	}
	ws := dial(t, r.Addr())
	if err := ws.conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","request_id":"r1"}`)); err != nil {
		t.Fatal(err)
	}
	if f := ws.next(t); !strings.Contains(f, `"type":"pong"`) || !strings.Contains(f, `"request_id":"r1"`) {
		t.Fatalf("answer to ping: %s", f)
	}
	if code, body := get(t, c, admin+"/metrics"); code != http.StatusOK || !strings.Contains(body, `pubsub_build_info{`) || !strings.Contains(body, `version="v1.2.3"`) {
		t.Errorf("GET admin /metrics: %d, build info with version v1.2.3 missing:\n%.2000s", code, body)
	}
	if code, _ := get(t, c, admin+"/debug/pprof/"); code != http.StatusOK {
		t.Errorf("GET admin /debug/pprof/: %d", code)
	}
	for _, path := range []string{"/metrics", "/debug/pprof/"} {
		if code, _ := get(t, c, base+path); code != http.StatusNotFound {
			t.Errorf("GET %s on the application listener: %d, want 404", path, code)
		}
	}

	r.cancel()
	if err := r.wait(t); err != nil {
		t.Fatalf("Serve after its context ended: %v, want nil", err)
	}
	if _, err := ws.rest(t); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Errorf("client's connection ended with %v, want close 1001", err)
	}
	if !refused(r.Addr()) || !refused(r.AdminAddr()) {
		t.Error("a listener still accepts after Serve returned")
	}
	for _, line := range []string{`"msg":"pubsubd started"`, `"version":"v1.2.3"`, `"msg":"pubsubd stopped"`} {
		if !strings.Contains(r.logs.String(), line) {
			t.Errorf("log lacks %s", line)
		}
	}
}

// detachGate holds the WebSocket drain open: a closing connection releases its subscriptions
// (Detach) before the server counts it gone, so the test can look at the process mid-drain.
type detachGate struct {
	service.API
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (g *detachGate) Detach(subs []*domain.Subscription) uint64 {
	g.once.Do(func() { close(g.entered) })
	<-g.release
	return g.API.Detach(subs)
}

// flushProbe is a span processor whose Shutdown (the telemetry flush) runs a check.
type flushProbe struct {
	sdktrace.SpanProcessor
	atFlush func()
}

func (p flushProbe) Shutdown(ctx context.Context) error { p.atFlush(); return nil }

// TestShutdownIsOrdered checks each step of the stop against the next: readiness is false and
// upgrades are refused while WebSocket clients drain, with the application listener still open;
// the application listener is closed before telemetry is flushed; the admin listener still serves
// metrics during the flush and closes last.
func TestShutdownIsOrdered(t *testing.T) {
	gate := &detachGate{entered: make(chan struct{}), release: make(chan struct{})}
	type atFlush struct {
		conns       int
		appRefused  bool
		adminStatus int
		adminErr    error
	}
	flushed := make(chan atFlush, 1)
	var r *running
	c := newClient(t)
	probe := flushProbe{SpanProcessor: sdktrace.NewSimpleSpanProcessor(tracetest.NewNoopExporter()), atFlush: func() {
		s := atFlush{conns: r.WebSocket().Connections(), appRefused: refused(r.Addr())}
		resp, err := c.Get("http://" + r.AdminAddr() + "/metrics")
		if err == nil {
			s.adminStatus = resp.StatusCode
			resp.Body.Close()
		}
		s.adminErr = err
		flushed <- s
	}}
	r = start(t, testConfig(t), app.Options{
		WrapAPI:       func(api service.API) service.API { gate.API = api; return gate },
		SpanProcessor: probe,
	})
	ws := dial(t, r.Addr())
	// The client's handshake can complete before the server has counted the connection; a shutdown
	// in between refuses it without a drain, which is not what this test looks at.
	for deadline := time.Now().Add(waitFor); r.WebSocket().Connections() != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the server never counted the WebSocket connection")
		}
	}
	shutdownDone := make(chan error, 1)
	go func() { shutdownDone <- r.Shutdown(context.Background()) }()

	select {
	case <-gate.entered:
	case <-time.After(waitFor):
		t.Fatal("the WebSocket connection was never closed")
	}
	// Mid-drain.
	if r.Service().Ready(context.Background()) == nil {
		t.Error("ready during the drain")
	}
	if code, body := get(t, c, "http://"+r.Addr()+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz during the drain: %d %s, want 503", code, body)
	}
	if _, resp, err := websocket.DefaultDialer.Dial("ws://"+r.Addr()+"/ws", nil); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("upgrade during the drain: %v (%v), want 503", err, resp)
	}
	select {
	case <-flushed:
		t.Fatal("telemetry was flushed before the WebSocket drain ended")
	default:
	}
	close(gate.release)

	var s atFlush
	select {
	case s = <-flushed:
	case <-time.After(waitFor):
		t.Fatal("telemetry was never flushed")
	}
	if s.conns != 0 || !s.appRefused {
		t.Errorf("at the flush: %d connections, application listener refusing %v; want 0, true", s.conns, s.appRefused)
	}
	if s.adminErr != nil || s.adminStatus != http.StatusOK {
		t.Errorf("admin /metrics during the flush: %d %v; want 200", s.adminStatus, s.adminErr)
	}
	select {
	case err := <-shutdownDone:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Shutdown did not return")
	}
	if !refused(r.AdminAddr()) {
		t.Error("admin listener still accepts after Shutdown")
	}
	frames, err := ws.rest(t)
	if !websocket.IsCloseError(err, websocket.CloseGoingAway) || len(frames) == 0 || !strings.Contains(frames[len(frames)-1], `"msg":"server_shutdown"`) {
		t.Errorf("client saw %q then %v; want server_shutdown, then close 1001", frames, err)
	}
	if err := r.wait(t); err != nil {
		t.Errorf("Serve after Shutdown: %v, want nil", err)
	}
	if err := r.Shutdown(context.Background()); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
}

// TestListenFailureIsAnError: an address that cannot be bound makes Serve return an error naming
// the listener, after a shutdown that leaves nothing bound.
func TestListenFailureIsAnError(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	_, port, _ := net.SplitHostPort(taken.Addr().String())
	tests := []struct {
		name  string
		flags []string
		want  string
	}{
		{"application port taken", []string{"-port=" + port}, "app listener: listen tcp " + taken.Addr().String()},
		{"admin address taken", []string{"-admin-addr=" + taken.Addr().String()}, "admin listener: listen tcp " + taken.Addr().String()},
		{"admin address unusable", []string{"-admin-addr=256.0.0.1:0"}, "admin listener: listen tcp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs logbuffer.Buffer
			a, err := app.New(testConfig(t, tt.flags...), app.Options{LogOutput: &logs})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			err = a.Serve(ctx)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Serve: %v, want an error containing %q", err, tt.want)
			}
			if a.Addr() != "" || a.AdminAddr() != "" {
				t.Errorf("still bound: %q, %q", a.Addr(), a.AdminAddr())
			}
			if !strings.Contains(logs.String(), `"msg":"pubsubd stopped"`) {
				t.Errorf("no orderly stop after the failure:\n%s", logs.String())
			}
		})
	}
}

// TestServeFailsWhenTheListenerDies: a listener that fails while serving stops the process, and
// Serve says which listener failed (the process must not exit 0 as if it had been asked to stop).
func TestServeFailsWhenTheListenerDies(t *testing.T) {
	tests := []struct {
		name string
		die  func(net.Listener) (net.Conn, error) // Accept, once the server is serving
		want string
	}{
		{"closed", func(ln net.Listener) (net.Conn, error) { ln.Close(); return ln.Accept() }, "use of closed network connection"},
		{"panics", func(net.Listener) (net.Conn, error) { panic("accept exploded") }, "app listener: panic: accept exploded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs logbuffer.Buffer
			a, err := app.New(testConfig(t), app.Options{LogOutput: &logs})
			if err != nil {
				t.Fatal(err)
			}
			if err := a.Listen(); err != nil {
				t.Fatal(err)
			}
			addr := a.Addr()
			kill := make(chan struct{})
			a.WrapListener(func(ln net.Listener) net.Listener { return &doomedListener{Listener: ln, kill: kill, die: tt.die} })
			served := make(chan error, 1)
			go func() { served <- a.Serve(context.Background()) }()
			// One request proves the server is serving; then the next Accept fails.
			c := newClient(t)
			if code, _ := get(t, c, "http://"+addr+"/livez"); code != http.StatusOK {
				t.Fatalf("GET /livez: %d", code)
			}
			close(kill)
			_ = ensureAccept(addr) // wakes a blocked Accept
			select {
			case err := <-served:
				if err == nil || !strings.Contains(err.Error(), "app listener") || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("Serve: %v, want an error naming the app listener and %q", err, tt.want)
				}
			case <-time.After(waitFor):
				t.Fatal("Serve did not return after its listener died")
			}
			if !strings.Contains(logs.String(), `"msg":"pubsubd stopped"`) {
				t.Errorf("no orderly stop after the failure:\n%s", logs.String())
			}
		})
	}
}

// doomedListener is a listener whose Accept, once kill is closed, is die's.
type doomedListener struct {
	net.Listener
	kill <-chan struct{}
	die  func(net.Listener) (net.Conn, error)
}

func (l *doomedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	select {
	case <-l.kill:
		if c != nil {
			c.Close() // the connection that woke us (ensureAccept)
		}
		return l.die(l.Listener)
	default:
	}
	return c, err
}

// ensureAccept opens and closes a connection so that a blocked Accept returns.
func ensureAccept(addr string) error {
	c, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		return err
	}
	return c.Close()
}

// TestNewStartsNothing: New starts no goroutine and binds nothing; Shutdown without Serve is
// clean and idempotent, and Serve after Shutdown refuses.
func TestNewStartsNothing(t *testing.T) {
	before := goleak.IgnoreCurrent()
	cfg := testConfig(t)
	a, err := app.New(cfg, app.Options{LogOutput: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	goleak.VerifyNone(t, before)
	if a.Addr() != "" || a.AdminAddr() != "" {
		t.Fatalf("bound before Listen: %q %q", a.Addr(), a.AdminAddr())
	}
	for range 2 {
		if err := a.Shutdown(context.Background()); err != nil {
			t.Fatalf("Shutdown without Serve: %v", err)
		}
	}
	if err := a.Serve(context.Background()); err == nil {
		t.Fatal("Serve after Shutdown: nil error")
	}
	goleak.VerifyNone(t, before)
}

// TestNewRefusesBadTelemetryConfig: an OTEL_* variable telemetry refuses is a configuration error.
func TestNewRefusesBadTelemetryConfig(t *testing.T) {
	env := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"}
	_, err := app.New(testConfig(t), app.Options{LogOutput: io.Discard, Getenv: func(k string) string { return env[k] }})
	var cfgErr *config.Error
	if !errors.As(err, &cfgErr) {
		t.Fatalf("err = %v, want a *config.Error", err)
	}
}
