//go:build linux

// The end-to-end observability test runs the real pubsubd binary against a real Jaeger v2 and a real
// Prometheus, all on free loopback ports, and checks what an operator would see: one trace per
// publish with its fan-out and one delivery span per subscriber, the published/delivered counters and
// a latency quantile in Prometheus, a /metrics page that promtool lints clean, and a clean exit on
// SIGTERM. It needs binaries that an ordinary `go test` run does not have, so it skips unless asked:
//
//	(cd .ci/jaeger && go build -o "$BIN/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger)
//	apt-get install -y --no-install-recommends prometheus   # prometheus + promtool on PATH
//	PUBSUB_E2E_JAEGER="$BIN/jaeger" go test -race -run TestE2E ./cmd/pubsubd
//
// It is linux-only because it asks the kernel to kill the child processes if the test binary dies
// (Pdeathsig): a `go test -timeout` panic skips t.Cleanup, and a leaked Jaeger or Prometheus would
// outlive the run.
package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/pubsubd/pubsub/internal/logbuffer"
)

// e2eSubscribers is how many WebSocket subscribers receive the published message; the trace must
// hold exactly this many delivery spans.
const e2eSubscribers = 3

func TestE2EObservability(t *testing.T) {
	jaegerBin := os.Getenv("PUBSUB_E2E_JAEGER")
	if jaegerBin == "" {
		t.Skip("end-to-end observability test skipped: set PUBSUB_E2E_JAEGER to a Jaeger v2 binary " +
			"(built from .ci/jaeger) and put prometheus and promtool on PATH to run it")
	}
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skipf("end-to-end observability test skipped: prometheus is not on PATH (%v)", err)
	}
	promtoolBin, err := exec.LookPath("promtool")
	if err != nil {
		t.Skipf("end-to-end observability test skipped: promtool is not on PATH (%v)", err)
	}
	jaegerConfig, err := filepath.Abs(filepath.Join("..", "..", ".ci", "jaeger", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	pubsubdBin := buildPubsubd(t, dir)

	// One deadline for everything after the build, so a hung component fails the test well inside
	// go test's own timeout (whose panic would skip the cleanups and their logs).
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()

	// Jaeger: OTLP/HTTP in, query JSON API out, memory storage; every other listener is off or on
	// 127.0.0.1:0 (see .ci/jaeger/config.yaml).
	otlpAddr, queryAddr := freeAddr(t), freeAddr(t)
	jaeger := startProcess(t, "jaeger", jaegerBin, []string{"--config=file:" + jaegerConfig}, []string{
		"JAEGER_OTLP_HTTP=" + otlpAddr,
		"JAEGER_QUERY_HTTP=" + queryAddr,
	})

	// Prometheus scrapes the admin listener every second so counters show up within the deadline.
	adminAddr, appAddr, promAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	promConfig := filepath.Join(dir, "prometheus.yml")
	writeFile(t, promConfig, fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: pubsub
    static_configs:
      - targets: [%q]
`, adminAddr))
	prom := startProcess(t, "prometheus", promBin, []string{
		"--config.file=" + promConfig,
		"--storage.tsdb.path=" + filepath.Join(dir, "prometheus-data"),
		"--web.listen-address=" + promAddr,
		"--log.level=warn",
	}, nil)

	svc := startProcess(t, "pubsubd", pubsubdBin, nil, []string{
		"PUBSUB_HOST=127.0.0.1",
		"PUBSUB_PORT=" + portOf(t, appAddr),
		"PUBSUB_ADMIN_ADDR=" + adminAddr,
		"PUBSUB_LOG_FORMAT=text",
		"PUBSUB_DRAIN_TIMEOUT=5s",
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + otlpAddr,
		"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_TRACES_SAMPLER=always_on",
		// The batch span processor's export interval (ms): short, so spans reach Jaeger quickly.
		"OTEL_BSP_SCHEDULE_DELAY=200",
	})
	all := []*process{jaeger, prom, svc}

	httpc := &http.Client{Timeout: 5 * time.Second}
	// Any HTTP answer from the OTLP port means the receiver listens; the query API may come up
	// before the receivers do, so both are waited for.
	eventually(ctx, t, "jaeger OTLP receiver listening", all, func() (bool, string) {
		return httpStatus(httpc, "http://"+otlpAddr+"/v1/traces") != 0, "no answer"
	})
	eventually(ctx, t, "jaeger query API up", all, func() (bool, string) {
		code := httpStatus(httpc, "http://"+queryAddr+"/api/services")
		return code == http.StatusOK, "status " + strconv.Itoa(code)
	})
	eventually(ctx, t, "prometheus ready", all, func() (bool, string) {
		code := httpStatus(httpc, "http://"+promAddr+"/-/ready")
		return code == http.StatusOK, "status " + strconv.Itoa(code)
	})
	eventually(ctx, t, "pubsubd ready", all, func() (bool, string) {
		code := httpStatus(httpc, "http://"+appAddr+"/readyz")
		return code == http.StatusOK, "status " + strconv.Itoa(code)
	})

	topic := "e2e.orders"
	createTopic(ctx, t, httpc, appAddr, topic)

	wsURL := "ws://" + appAddr + "/ws"
	subs := make([]*wsClient, e2eSubscribers)
	for i := range subs {
		subs[i] = dialWS(ctx, t, wsURL)
		reqID := fmt.Sprintf("sub-%d", i)
		sendFrame(t, subs[i], map[string]any{
			"type": "subscribe", "topic": topic, "client_id": fmt.Sprintf("e2e-sub-%d", i), "request_id": reqID,
		})
		expectAck(ctx, t, subs[i], reqID)
	}

	// rate() needs two samples: Prometheus must have scraped the zero state before the publish,
	// or its first sample already holds the deliveries and the latency rate stays empty (NaN).
	eventually(ctx, t, "prometheus scraped pubsubd before the publish", all, func() (bool, string) {
		v, err := queryPrometheus(httpc, promAddr, "sum(pubsub_delivery_latency_seconds_count)")
		if err != nil {
			return false, err.Error()
		}
		return v == 0, fmt.Sprintf("pubsub_delivery_latency_seconds_count = %v", v)
	})

	pub := dialWS(ctx, t, wsURL)
	msgID := uuid.NewString()
	payload := json.RawMessage(`{"order":42,"note":"e2e"}`)
	sendFrame(t, pub, map[string]any{
		"type": "publish", "topic": topic, "request_id": "pub-1",
		"message": map[string]any{"id": msgID, "payload": payload},
	})
	expectAck(ctx, t, pub, "pub-1")

	// Every subscriber gets the event, unchanged, with the traceparent of the server's publish span.
	var traceparents []string
	for i, c := range subs {
		f := readFrameUntil(ctx, t, c, fmt.Sprintf("event %s on subscriber %d", msgID, i), func(f wsFrame) bool {
			return f.Type == "event" && f.Message != nil && f.Message.ID == msgID
		})
		if f.Topic != topic {
			t.Errorf("subscriber %d: event topic = %q, want %q", i, f.Topic, topic)
		}
		if !jsonEqual(f.Message.Payload, payload) {
			t.Errorf("subscriber %d: payload = %s, want %s", i, f.Message.Payload, payload)
		}
		traceparents = append(traceparents, f.Message.Headers["traceparent"])
	}
	traceID, publishSpanID := parseTraceparent(t, traceparents[0])
	for i, tp := range traceparents[1:] {
		if tp != traceparents[0] {
			t.Errorf("subscriber %d: traceparent %q differs from subscriber 0's %q", i+1, tp, traceparents[0])
		}
	}

	trace := waitForPublishTrace(ctx, t, httpc, queryAddr, topic, all)
	checkPublishTrace(t, trace, topic, msgID, traceID, publishSpanID)

	promQuery := func(what, query string, ok func(float64) bool) {
		eventually(ctx, t, what, all, func() (bool, string) {
			v, err := queryPrometheus(httpc, promAddr, query)
			if err != nil {
				return false, err.Error()
			}
			return ok(v), fmt.Sprintf("%s = %v", query, v)
		})
	}
	promQuery("published counter scraped", "sum(pubsub_messages_published_total)",
		func(v float64) bool { return v >= 1 })
	promQuery("delivered counter scraped", "sum(pubsub_messages_delivered_total)",
		func(v float64) bool { return v >= e2eSubscribers })
	promQuery("delivery latency p99 computable",
		"histogram_quantile(0.99, sum(rate(pubsub_delivery_latency_seconds_bucket[1m])) by (le))",
		func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) && v >= 0 })

	lintMetrics(ctx, t, httpc, promtoolBin, adminAddr)

	// Graceful shutdown: each subscriber is told and closed with 1001, and the process exits 0.
	if err := svc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM pubsubd: %v", err)
	}
	for i, c := range subs {
		expectShutdown(ctx, t, c, i)
	}
	select {
	case <-svc.done:
	case <-ctx.Done():
		t.Fatal("pubsubd did not exit after SIGTERM before the deadline")
	}
	if svc.err != nil {
		t.Fatalf("pubsubd exited with %v after SIGTERM, want exit status 0", svc.err)
	}
}

// buildPubsubd builds the package under test into dir. When this test binary was built with the
// race detector, so is pubsubd: a race in the service then makes it exit non-zero, which the
// SIGTERM check reports.
func buildPubsubd(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "pubsubd")
	args := []string{"build", "-o", bin}
	if raceEnabled() {
		args = append(args, "-race")
	}
	args = append(args, ".")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bin
}

func raceEnabled() bool {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range info.Settings {
		if s.Key == "-race" && s.Value == "true" {
			return true
		}
	}
	return false
}

// process is a child process whose combined output is kept for the failure log.
// done is closed once the process has exited; err is its Wait result and is valid only after that.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *logbuffer.Buffer
	done chan struct{}
	err  error
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// startProcess starts bin with an environment stripped of the caller's PUBSUB_*, OTEL_* and
// JAEGER_* variables (so a developer's shell cannot change what is tested) plus extraEnv. Its
// cleanup stops the process (SIGTERM, then SIGKILL after 10s) and logs its output if the test
// failed.
func startProcess(t *testing.T, name, bin string, args, extraEnv []string) *process {
	t.Helper()
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "PUBSUB_") || strings.HasPrefix(kv, "OTEL_") || strings.HasPrefix(kv, "JAEGER_")
	})
	p := &process{name: name, out: &logbuffer.Buffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(env, extraEnv...)
	p.cmd.Dir = t.TempDir()
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				t.Errorf("%s did not stop within 10s of SIGTERM; killing it", name)
				_ = p.cmd.Process.Kill()
				<-p.done
			}
		}
		if t.Failed() {
			t.Logf("---- %s output (exit: %v) ----\n%s", name, p.err, p.out.Tail(64<<10))
		}
	})
	return p
}

// eventually polls check until it reports true, failing the test when ctx ends or one of the
// watched processes exits first (with the last detail check gave, and the process's exit status).
func eventually(ctx context.Context, t *testing.T, what string, watch []*process, check func() (bool, string)) {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last := ""
	for {
		ok, detail := check()
		if ok {
			return
		}
		last = detail
		for _, p := range watch {
			if p.exited() {
				t.Fatalf("waiting for %s: %s exited early: %v (last: %s)", what, p.name, p.err, last)
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: deadline reached; last: %s", what, last)
		case <-tick.C:
		}
	}
}

// freeAddr returns a 127.0.0.1 address whose port was free a moment ago. Another process may take
// it before the child binds it; that race is rare enough for a test that owns the machine.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// httpStatus GETs url and returns the status code, or 0 when nothing answered.
func httpStatus(c *http.Client, url string) int {
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func createTopic(ctx context.Context, t *testing.T, c *http.Client, appAddr, topic string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"name": topic})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+appAddr+"/topics", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST /topics: %v", err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /topics %s: status %d, body %s; want 201", body, resp.StatusCode, got)
	}
}

// wsFrame holds the fields of a server frame that this test reads.
type wsFrame struct {
	Type      string `json:"type"`
	RequestID string `json:"request_id"`
	Topic     string `json:"topic"`
	Status    string `json:"status"`
	Msg       string `json:"msg"`
	Message   *struct {
		ID      string            `json:"id"`
		Payload json.RawMessage   `json:"payload"`
		Headers map[string]string `json:"headers"`
	} `json:"message"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// wsClient is a test WebSocket client. A goroutine reads the connection the whole time, as a real
// client does: gorilla/websocket answers the server's ping control frames only while a read is in
// progress, and without pongs the server drops the connection (PUBSUB_WS_PING_TIMEOUT) while the
// test is busy polling Jaeger and Prometheus.
type wsClient struct {
	conn   *websocket.Conn
	frames chan []byte   // data frames read, in order; closed when reading stops
	stop   chan struct{} // closed by cleanup so a reader blocked on a full frames exits
	err    error         // why reading stopped; valid once frames is closed
}

func dialWS(ctx context.Context, t *testing.T, url string) *wsClient {
	t.Helper()
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, resp, err := websocket.DefaultDialer.DialContext(dctx, url, nil)
	if err != nil {
		status := "no response"
		if resp != nil {
			status = resp.Status
		}
		t.Fatalf("dial %s: %v (%s)", url, err, status)
	}
	c := &wsClient{conn: conn, frames: make(chan []byte, 64), stop: make(chan struct{})}
	go func() {
		defer close(c.frames)
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				c.err = err
				return
			}
			select {
			case c.frames <- data:
			case <-c.stop:
				c.err = errors.New("test finished")
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(c.stop)
		conn.Close()
		for range c.frames { // wait for the reader to exit
		}
	})
	return c
}

// next returns the next data frame; ok is false when the connection has ended (see c.err).
func (c *wsClient) next(ctx context.Context, t *testing.T, what string) (frame []byte, ok bool) {
	t.Helper()
	select {
	case data, ok := <-c.frames:
		return data, ok
	case <-ctx.Done():
		t.Fatalf("waiting for %s: deadline reached", what)
		return nil, false
	}
}

func sendFrame(t *testing.T, c *wsClient, frame map[string]any) {
	t.Helper()
	if err := c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := c.conn.WriteJSON(frame); err != nil {
		t.Fatalf("write %v: %v", frame, err)
	}
}

// readFrameUntil reads frames until match accepts one, skipping others (heartbeats, acks); an
// error frame fails the test, as does ctx ending or the connection closing.
func readFrameUntil(ctx context.Context, t *testing.T, c *wsClient, what string, match func(wsFrame) bool) wsFrame {
	t.Helper()
	for {
		data, ok := c.next(ctx, t, what)
		if !ok {
			t.Fatalf("waiting for %s: connection ended: %v", what, c.err)
		}
		var f wsFrame
		if err := json.Unmarshal(data, &f); err != nil {
			t.Fatalf("waiting for %s: frame is not JSON: %v: %s", what, err, data)
		}
		if match(f) {
			return f
		}
		if f.Type == "error" {
			t.Fatalf("waiting for %s: got error frame %s", what, data)
		}
	}
}

func expectAck(ctx context.Context, t *testing.T, c *wsClient, requestID string) {
	t.Helper()
	f := readFrameUntil(ctx, t, c, "ack "+requestID, func(f wsFrame) bool {
		return f.Type == "ack" && f.RequestID == requestID
	})
	if f.Status != "ok" {
		t.Fatalf("ack %s: status %q, want ok", requestID, f.Status)
	}
}

// expectShutdown reads subscriber i's connection until the server closes it, and checks that the
// server said server_shutdown before closing with 1001 (going away).
func expectShutdown(ctx context.Context, t *testing.T, c *wsClient, i int) {
	t.Helper()
	told := false
	for {
		data, ok := c.next(ctx, t, fmt.Sprintf("server_shutdown and close on subscriber %d", i))
		if !ok {
			break
		}
		var f wsFrame
		if json.Unmarshal(data, &f) == nil && f.Type == "info" && f.Msg == "server_shutdown" {
			told = true
		}
	}
	if !told {
		t.Errorf("subscriber %d: connection ended (%v) without an info server_shutdown frame", i, c.err)
	}
	if !websocket.IsCloseError(c.err, websocket.CloseGoingAway) {
		t.Errorf("subscriber %d: connection ended with %v, want close 1001", i, c.err)
	}
}

func jsonEqual(a, b json.RawMessage) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	ja, _ := json.Marshal(va)
	jb, _ := json.Marshal(vb)
	return bytes.Equal(ja, jb)
}

// parseTraceparent splits a W3C traceparent ("00-<trace id>-<span id>-<flags>") and checks that
// the sampled flag is set, as it must be under OTEL_TRACES_SAMPLER=always_on.
func parseTraceparent(t *testing.T, tp string) (traceID, spanID string) {
	t.Helper()
	parts := strings.Split(tp, "-")
	if len(parts) != 4 || parts[0] != "00" || len(parts[1]) != 32 || len(parts[2]) != 16 || len(parts[3]) != 2 {
		t.Fatalf("event message.headers.traceparent = %q, want a W3C traceparent 00-<32 hex>-<16 hex>-<2 hex>", tp)
	}
	flags, err := strconv.ParseUint(parts[3], 16, 8)
	if err != nil || flags&1 == 0 {
		t.Fatalf("event traceparent %q is not sampled, want the sampled flag with always_on", tp)
	}
	return parts[1], parts[2]
}

// jaegerTrace is one trace of Jaeger's query JSON API (/api/traces).
type jaegerTrace struct {
	TraceID string       `json:"traceID"`
	Spans   []jaegerSpan `json:"spans"`
}

type jaegerSpan struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	References    []struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	Tags []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	} `json:"tags"`
}

// tag returns the span's tag value formatted as a string, or "" when it has none.
func (s jaegerSpan) tag(key string) string {
	for _, kv := range s.Tags {
		if kv.Key == key {
			return fmt.Sprint(kv.Value)
		}
	}
	return ""
}

// refersTo reports whether the span has a reference (parent or link) to spanID. Jaeger's v1 JSON
// shows a span that is both a child of X and linked to X (as a delivery span is to its publish
// span) with one FOLLOWS_FROM reference to X instead of CHILD_OF, so either type counts.
func (s jaegerSpan) refersTo(spanID string) bool {
	for _, r := range s.References {
		if (r.RefType == "CHILD_OF" || r.RefType == "FOLLOWS_FROM") && normID(r.SpanID, 16) == spanID {
			return true
		}
	}
	return false
}

// normID left-pads a hex id: Jaeger prints a trace id whose high 64 bits are zero with 16 digits.
func normID(id string, width int) string {
	if len(id) < width {
		return strings.Repeat("0", width-len(id)) + id
	}
	return strings.ToLower(id)
}

// waitForPublishTrace polls Jaeger until one trace of service pubsub holds the publish span, the
// fan-out span and all delivery spans of the topic. Spans arrive in several export batches, so a
// partial trace is waited on, not judged.
func waitForPublishTrace(ctx context.Context, t *testing.T, c *http.Client, queryAddr, topic string, watch []*process) jaegerTrace {
	t.Helper()
	q := url.Values{"service": {"pubsub"}, "limit": {"100"}}
	u := "http://" + queryAddr + "/api/traces?" + q.Encode()
	var found jaegerTrace
	eventually(ctx, t, "trace with publish, fanout and "+strconv.Itoa(e2eSubscribers)+" deliver spans in jaeger", watch, func() (bool, string) {
		var body struct {
			Data   []jaegerTrace `json:"data"`
			Errors []any         `json:"errors"`
		}
		if err := getJSON(c, u, &body); err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, tr := range body.Data {
			count := map[string]int{}
			for _, s := range tr.Spans {
				count[s.OperationName]++
			}
			if count["publish "+topic] == 1 && count["fanout "+topic] == 1 && count["deliver "+topic] == e2eSubscribers {
				found = tr
				return true, ""
			}
			seen = append(seen, fmt.Sprintf("trace %s: %v", tr.TraceID, count))
		}
		return false, fmt.Sprintf("%d traces (errors %v): %s", len(body.Data), body.Errors, strings.Join(seen, "; "))
	})
	return found
}

// checkPublishTrace checks the trace's shape against the span contract and ties it to the
// traceparent the subscribers received.
func checkPublishTrace(t *testing.T, tr jaegerTrace, topic, msgID, traceID, publishSpanID string) {
	t.Helper()
	if got := normID(tr.TraceID, 32); got != traceID {
		t.Errorf("jaeger trace id %s, want %s (the trace id of the events' traceparent)", got, traceID)
	}
	var publish jaegerSpan
	for _, s := range tr.Spans {
		if s.OperationName == "publish "+topic {
			publish = s
		}
	}
	if got := normID(publish.SpanID, 16); got != publishSpanID {
		t.Errorf("publish span id %s, want %s (the span id of the events' traceparent)", got, publishSpanID)
	}
	if got := publish.tag("span.kind"); got != "producer" {
		t.Errorf("publish span kind %q, want producer", got)
	}
	for key, want := range map[string]string{
		"messaging.system":           "pubsub",
		"messaging.destination.name": topic,
		"messaging.message.id":       msgID,
	} {
		if got := publish.tag(key); got != want {
			t.Errorf("publish span attribute %s = %q, want %q", key, got, want)
		}
	}
	for _, s := range tr.Spans {
		if got := normID(s.TraceID, 32); got != traceID {
			t.Errorf("span %q has trace id %s, want %s", s.OperationName, got, traceID)
		}
		switch s.OperationName {
		case "fanout " + topic:
			if !s.refersTo(publishSpanID) {
				t.Errorf("fanout span references %+v, want the publish span %s as parent", s.References, publishSpanID)
			}
			if got := s.tag("pubsub.fanout.subscribers"); got != strconv.Itoa(e2eSubscribers) {
				t.Errorf("fanout span pubsub.fanout.subscribers = %q, want %d", got, e2eSubscribers)
			}
		case "deliver " + topic:
			if !s.refersTo(publishSpanID) {
				t.Errorf("deliver span %s references %+v, want the publish span %s", s.SpanID, s.References, publishSpanID)
			}
			if got := s.tag("span.kind"); got != "consumer" {
				t.Errorf("deliver span %s kind %q, want consumer", s.SpanID, got)
			}
			if got := s.tag("messaging.destination.name"); got != topic {
				t.Errorf("deliver span %s messaging.destination.name = %q, want %q", s.SpanID, got, topic)
			}
		}
	}
}

func getJSON(c *http.Client, url string, v any) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d: %.300s", url, resp.StatusCode, body)
	}
	return json.Unmarshal(body, v)
}

// queryPrometheus runs an instant query whose result is a single sample and returns its value.
func queryPrometheus(c *http.Client, promAddr, query string) (float64, error) {
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := getJSON(c, "http://"+promAddr+"/api/v1/query?"+url.Values{"query": {query}}.Encode(), &body); err != nil {
		return 0, err
	}
	if body.Status != "success" {
		return 0, fmt.Errorf("query %s: %s", query, body.Error)
	}
	if len(body.Data.Result) != 1 {
		return 0, fmt.Errorf("query %s: %d samples, want 1", query, len(body.Data.Result))
	}
	s, ok := body.Data.Result[0].Value[1].(string)
	if !ok {
		return 0, errors.New("query " + query + ": sample value is not a string")
	}
	return strconv.ParseFloat(s, 64)
}

// lintMetrics scrapes /metrics in the classic text format, as promtool reads it, and fails on any
// problem promtool reports.
func lintMetrics(ctx context.Context, t *testing.T, c *http.Client, promtool, adminAddr string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+adminAddr+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("scrape /metrics: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape /metrics: status %d, err %v", resp.StatusCode, err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("/metrics Content-Type %q for Accept text/plain, want text/plain", ct)
	}
	cmd := exec.CommandContext(ctx, promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
