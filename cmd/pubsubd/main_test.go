package main

import (
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/pubsubd/pubsub/internal/config"
	"github.com/pubsubd/pubsub/internal/logbuffer"
)

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
