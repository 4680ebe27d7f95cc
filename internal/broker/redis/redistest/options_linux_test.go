//go:build linux

package redistest_test

import (
	"testing"

	"github.com/pubsubd/pubsub/internal/broker/redis/redistest"
)

// StartWith runs the server with its options, and RestartWith keeps them across a kill: a write
// acknowledged under appendfsync always is there after the restart.
func TestStartWithFsyncAlways(t *testing.T) {
	opts := redistest.Options{FsyncAlways: true}
	srv, err := redistest.StartWith(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	for round := range 2 {
		if v, err := srv.Do("CONFIG", "GET", "appendfsync"); err != nil || v != "appendfsync\nalways" {
			t.Fatalf("round %d: CONFIG GET appendfsync = %q, %v; want always", round, v, err)
		}
		if _, err := srv.Do("INCR", "n"); err != nil {
			t.Fatal(err)
		}
		if err := srv.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := srv.RestartWith(opts); err != nil {
			t.Fatal(err)
		}
		if v, err := srv.Do("GET", "n"); err != nil || v != string(rune('1'+round)) {
			t.Fatalf("round %d: after kill -9 and restart GET n = %q, %v; want %d", round, v, err, round+1)
		}
	}
}

// A copy of the AOF restored after a kill gives a Redis that lost every write made after the copy.
func TestRestoreAOFLosesLaterWrites(t *testing.T) {
	opts := redistest.Options{FsyncAlways: true}
	srv, err := redistest.StartWith(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	if _, err := srv.Do("SET", "k", "before"); err != nil {
		t.Fatal(err)
	}
	snap := t.TempDir()
	if err := srv.CopyAOF(snap); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Do("SET", "k", "after"); err != nil {
		t.Fatal(err)
	}
	if err := srv.RestoreAOF(snap); err == nil {
		t.Fatal("RestoreAOF on a running server: no error")
	}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := srv.RestoreAOF(snap); err != nil {
		t.Fatal(err)
	}
	if err := srv.RestartWith(opts); err != nil {
		t.Fatal(err)
	}
	if v, err := srv.Do("GET", "k"); err != nil || v != "before" {
		t.Fatalf("GET k = %q, %v after restoring the copy; want before", v, err)
	}
}
