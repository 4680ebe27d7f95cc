package redis_test

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pubsubd/pubsub/internal/broker/redis"
	"github.com/pubsubd/pubsub/internal/broker/redis/redistest"
	"github.com/pubsubd/pubsub/internal/domain"
)

// srv is the package's one redis-server; every engine of a test gets keys of its own (a prefix),
// so tests never see each other's topics.
var srv *redistest.Server

func TestMain(m *testing.M) {
	s, done, err := redistest.StartTemp()
	if err != nil {
		fmt.Fprintln(os.Stderr, "redis tests need redis-server:", err)
		os.Exit(1)
	}
	srv = s
	code := m.Run()
	done()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left behind:", err)
			code = 1
		}
	}
	os.Exit(code)
}

var prefixes atomic.Int64

// newPrefix returns a key prefix no other engine of this process uses.
func newPrefix() string { return fmt.Sprintf("t%d:", prefixes.Add(1)) }

// options are the tests' engine options: short timers so that reconnects and probes happen
// within a test's patience.
func options(prefix, replica string) redis.Options {
	return redis.Options{URL: srv.URL(), Prefix: prefix, Replica: replica, Timeout: 2 * time.Second,
		UnsubscribeDelay: 50 * time.Millisecond, Heartbeat: 200 * time.Millisecond, ProbeIdle: time.Second}
}

// newEngine starts an engine on the package's server, closed at the test's end.
func newEngine(t testing.TB, cfg domain.TopicConfig, opts redis.Options) *redis.Engine {
	t.Helper()
	e, err := redis.New(t.Context(), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}
