package app_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/pubsubd/pubsub/internal/app"
	"github.com/pubsubd/pubsub/internal/broker/redis/redistest"
)

// Two processes' worth of apps on one Redis: a topic created through one exists on the other,
// /readyz turns 503 while Redis is paused (and /livez stays 200), and logs and spans name the
// replica (spans by their resource's service.instance.id).
func TestRedisEngine(t *testing.T) {
	srv, done, err := redistest.StartTemp()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(done)
	flags := []string{"-broker=redis", "-redis-url=" + srv.URL(), "-redis-timeout=300ms"}
	spans := tracetest.NewSpanRecorder()
	a := start(t, testConfig(t, append(flags, "-replica-id=one")...),
		app.Options{SpanProcessor: spans, Sampler: sdktrace.AlwaysSample()})
	b := start(t, testConfig(t, append(flags, "-replica-id=two")...), app.Options{})
	c := newClient(t)
	req, _ := http.NewRequest(http.MethodPost, "http://"+a.Addr()+"/topics", strings.NewReader(`{"name":"orders"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /topics on one: %d", resp.StatusCode)
	}
	if code, body := get(t, c, "http://"+b.Addr()+"/topics"); code != 200 || !strings.Contains(body, `"orders"`) {
		t.Fatalf("GET /topics on two: %d %s", code, body)
	}
	if code, _ := get(t, c, "http://"+b.Addr()+"/readyz"); code != 200 {
		t.Fatalf("/readyz with Redis up: %d", code)
	}
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitFor)
	for {
		code, _ := get(t, c, "http://"+b.Addr()+"/readyz")
		if code == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			_ = srv.Resume()
			t.Fatalf("/readyz with Redis paused: %d, want 503", code)
		}
		time.Sleep(50 * time.Millisecond) // polling an HTTP endpoint: bounded by the deadline
	}
	code, _ := get(t, c, "http://"+b.Addr()+"/livez")
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	if code != 200 {
		t.Fatalf("/livez with Redis paused: %d, want 200", code)
	}
	if !strings.Contains(a.logs.String(), `"replica":"one"`) {
		t.Fatalf("logs do not name the replica:\n%s", a.logs.String())
	}
	// The POST /topics span ends in the middleware, possibly just after the client read the
	// response: wait for it.
	deadline = time.Now().Add(waitFor)
	for len(spans.Ended()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no span recorded on one")
		}
		time.Sleep(10 * time.Millisecond) // no event to wait on in the recorder: bounded by the deadline
	}
	for _, s := range spans.Ended() {
		var instance string
		for _, kv := range s.Resource().Attributes() {
			if kv.Key == "service.instance.id" {
				instance = kv.Value.AsString()
			}
		}
		if instance != "one" {
			t.Fatalf("span %q has service.instance.id %q, want the replica id one", s.Name(), instance)
		}
	}
}
