package main

import (
	"context"
	"errors"
	"flag"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pubsubd/pubsub/internal/config"
	"github.com/pubsubd/pubsub/internal/logbuffer"
)

// runMainEnv, set in a child's environment, makes the test binary run main instead of the tests.
const runMainEnv = "PUBSUBD_TEST_RUN_MAIN"

// TestMain runs pubsubd's own main when a test re-executes this binary with runMainEnv=1, so that
// exit statuses and stderr are tested as an operator sees them, without building the command.
func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main() // exits
	}
	os.Exit(m.Run())
}

func env(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

func TestRunRefusesBadConfiguration(t *testing.T) {
	var out logbuffer.Buffer
	err := run(context.Background(), nil, env(map[string]string{"PUBSUB_OVERFLOW_POLICY": "drop_newest"}), &out)
	var cfgErr *config.Error
	if !errors.As(err, &cfgErr) || !strings.Contains(err.Error(), "PUBSUB_OVERFLOW_POLICY") || !strings.Contains(err.Error(), "drop_oldest, disconnect") {
		t.Fatalf("err = %v", err)
	}
	err = run(context.Background(), nil, env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"}), &out)
	if !errors.As(err, &cfgErr) || !strings.Contains(err.Error(), "grpc, http/protobuf") {
		t.Fatalf("bad OTLP protocol: err = %v", err)
	}
}

func TestRunHelp(t *testing.T) {
	var out logbuffer.Buffer
	if err := run(context.Background(), []string{"-h"}, env(nil), &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(out.String(), "PUBSUB_DRAIN_TIMEOUT") {
		t.Fatalf("usage does not list the variables:\n%s", out.String())
	}
}

// TestRunStartsAndStops starts on free ports and stops cleanly when its context ends.
func TestRunStartsAndStops(t *testing.T) {
	var out logbuffer.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-port=0", "-host=127.0.0.1", "-admin-addr=127.0.0.1:0", "-log-format=json"}, env(nil), &out)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "pubsubd started") {
		if time.Now().After(deadline) {
			t.Fatalf("not started:\n%s", out.String())
		}
		time.Sleep(5 * time.Millisecond) // polling a condition with a deadline
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
	if !strings.Contains(out.String(), "pubsubd stopped") {
		t.Fatalf("no stop line:\n%s", out.String())
	}
}

// TestExitStatus runs main in a child process: a clean -h exits 0, a refused value 2, and a
// listener that cannot be bound 1, with the reason on stderr (it used to be logged only).
func TestExitStatus(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	_, port, _ := net.SplitHostPort(taken.Addr().String())
	badKeys := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(badKeys, []byte(`{"keys":[{"id":"ingest","sha256":"not-a-digest"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		status int
		stderr []string
	}{
		{"help", []string{"-h"}, 0, []string{"Usage: pubsubd"}},
		{"refused value", []string{"-overflow-policy=drop_newest"}, 2, []string{"pubsubd: configuration: -overflow-policy="}},
		{"malformed keys file", []string{"-api-keys-file=" + badKeys}, 2,
			[]string{"pubsubd: configuration: API keys file " + badKeys, `key "ingest": sha256 must be`}},
		{"application port in use", []string{"-host=127.0.0.1", "-port=" + port, "-admin-addr=off"}, 1,
			[]string{"pubsubd: app listener: listen tcp " + taken.Addr().String(), "address already in use"}},
		{"admin address in use", []string{"-host=127.0.0.1", "-port=0", "-admin-addr=" + taken.Addr().String()}, 1,
			[]string{"pubsubd: admin listener: listen tcp " + taken.Addr().String(), "address already in use"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], append(tt.args, "-log-format=json")...)
			// The developer's PUBSUB_* and OTEL_* variables must not change what is tested.
			cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
				return strings.HasPrefix(kv, "PUBSUB_") || strings.HasPrefix(kv, "OTEL_")
			}), runMainEnv+"=1")
			var stderr logbuffer.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			status := cmd.ProcessState.ExitCode()
			if ctx.Err() != nil || status != tt.status {
				t.Fatalf("exit status %d (%v), want %d; stderr:\n%s", status, err, tt.status, stderr.String())
			}
			for _, want := range tt.stderr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
				}
			}
		})
	}
}
