package app_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pubsubd/pubsub/internal/app"
	"github.com/pubsubd/pubsub/internal/broker/redis/redistest"
)

// Two processes' worth of apps on one Redis: a topic created through one exists on the other,
// /readyz turns 503 while Redis is paused (and /livez stays 200), and logs name the replica.
func TestRedisEngine(t *testing.T) {
	srv, done, err := redistest.StartTemp()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(done)
	flags := []string{"-broker=redis", "-redis-url=" + srv.URL(), "-redis-timeout=300ms"}
	a := start(t, testConfig(t, append(flags, "-replica-id=one")...), app.Options{})
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
}
