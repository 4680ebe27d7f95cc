package config_test

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pubsubd/pubsub/internal/config"
)

func TestBackplaneDefaults(t *testing.T) {
	got, err := config.Load(nil, env{}.get, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := config.Backplane{Broker: "memory", RedisTimeout: 2 * time.Second}
	if !reflect.DeepEqual(got.Backplane, want) {
		t.Fatalf("Backplane = %+v, want %+v", got.Backplane, want)
	}
	if got.Backplane.Redis() {
		t.Fatal("the default engine is Redis")
	}
}

func TestBackplaneLoad(t *testing.T) {
	tests := []struct {
		name string
		env  env
		want config.Backplane
	}{
		{"url", env{"PUBSUB_BROKER": "redis", "PUBSUB_REDIS_URL": "rediss://u:p@redis:6380/3", "PUBSUB_REPLICA_ID": "pod-1", "PUBSUB_REDIS_TIMEOUT": "500ms"},
			config.Backplane{Broker: "redis", RedisURL: "rediss://u:p@redis:6380/3", RedisTimeout: 500 * time.Millisecond, ReplicaID: "pod-1"}},
		{"sentinel", env{"PUBSUB_BROKER": "redis", "PUBSUB_REDIS_SENTINEL_MASTER": "mymaster", "PUBSUB_REDIS_SENTINEL_ADDRS": "s1:26379, s2:26379,"},
			config.Backplane{Broker: "redis", SentinelMaster: "mymaster", SentinelAddrs: []string{"s1:26379", "s2:26379"}, RedisTimeout: 2 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := config.Load(nil, tt.env.get, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Backplane, tt.want) {
				t.Fatalf("Backplane = %+v, want %+v", got.Backplane, tt.want)
			}
		})
	}
}

func TestBackplaneInvalid(t *testing.T) {
	tests := []struct {
		name string
		env  env
		want []string
	}{
		{"unknown engine", env{"PUBSUB_BROKER": "kafka"}, []string{"PUBSUB_BROKER", "memory, redis"}},
		{"redis without an address", env{"PUBSUB_BROKER": "redis"}, []string{"PUBSUB_BROKER=redis needs PUBSUB_REDIS_URL"}},
		{"url without redis", env{"PUBSUB_REDIS_URL": "redis://localhost:6379"}, []string{"need PUBSUB_BROKER=redis"}},
		{"url scheme", env{"PUBSUB_BROKER": "redis", "PUBSUB_REDIS_URL": "http://localhost:6379"}, []string{"PUBSUB_REDIS_URL", "redis://"}},
		{"url without host", env{"PUBSUB_BROKER": "redis", "PUBSUB_REDIS_URL": "redis://"}, []string{"PUBSUB_REDIS_URL"}},
		{"url database", env{"PUBSUB_BROKER": "redis", "PUBSUB_REDIS_URL": "redis://h:1/zero"}, []string{"PUBSUB_REDIS_URL", "database"}},
		{"sentinel master alone", env{"PUBSUB_BROKER": "redis", "PUBSUB_REDIS_URL": "redis://h:1", "PUBSUB_REDIS_SENTINEL_MASTER": "m"}, []string{"go together"}},
		{"sentinel addrs alone", env{"PUBSUB_BROKER": "redis", "PUBSUB_REDIS_SENTINEL_ADDRS": "s:1"}, []string{"go together"}},
		{"sentinel addr without port", env{"PUBSUB_BROKER": "redis", "PUBSUB_REDIS_SENTINEL_ADDRS": "s1"}, []string{"PUBSUB_REDIS_SENTINEL_ADDRS", "host:port"}},
		{"timeout too short", env{"PUBSUB_REDIS_TIMEOUT": "1ms"}, []string{"PUBSUB_REDIS_TIMEOUT", "at least 10ms"}},
		{"replica id with braces", env{"PUBSUB_REPLICA_ID": "a{b}"}, []string{"PUBSUB_REPLICA_ID", "braces"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load(nil, tt.env.get, io.Discard)
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("Load error = %v (%T), want *config.Error", err, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(ce.Error(), w) {
					t.Fatalf("message %q does not contain %q", ce.Error(), w)
				}
			}
		})
	}
}

// The URL's password never reaches the log.
func TestBackplaneLogValueRedacts(t *testing.T) {
	var out bytes.Buffer
	b := config.Backplane{Broker: "redis", RedisURL: "redis://user:s3cret@h:6379/1", RedisTimeout: time.Second}
	slog.New(slog.NewTextHandler(&out, nil)).Info("config", "backplane", b)
	if strings.Contains(out.String(), "s3cret") || !strings.Contains(out.String(), "backplane.broker=redis") {
		t.Fatalf("log record %q: want the engine and no password", out.String())
	}
}
