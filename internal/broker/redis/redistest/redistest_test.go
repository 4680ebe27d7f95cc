package redistest_test

import (
	"testing"

	"github.com/pubsubd/pubsub/internal/broker/redis/redistest"
)

// The harness itself: a server starts, keeps its data across a kill and a restart (AOF), and
// answers again after a pause is resumed.
func TestServerLifecycle(t *testing.T) {
	srv, done, err := redistest.StartTemp()
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	if _, err := srv.Do("SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	// appendfsync everysec may lose the last second on a crash: make the write durable first.
	if _, err := srv.Do("CONFIG", "SET", "appendfsync", "always"); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Do("SET", "k2", "v2"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if v, err := srv.Do("GET", "k2"); err != nil || v != "v2" {
		t.Fatalf("after a restart GET k2 = %q, %v; want v2 from the AOF", v, err)
	}
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	if v, err := srv.Do("GET", "k"); err != nil || v != "v" {
		t.Fatalf("after a pause GET k = %q, %v", v, err)
	}
	if n, err := srv.KillPubSubClients(); err != nil || n != 0 {
		t.Fatalf("KillPubSubClients = %d, %v; want 0 with no subscriber", n, err)
	}
}
