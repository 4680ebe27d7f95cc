package schemacheck

import (
	"maps"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestParseRedisBytes(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		bad  bool
	}{
		{in: "1gb", want: 1 << 30},
		{in: "1GB", want: 1 << 30},
		{in: "1g", want: 1e9},
		{in: "512mb", want: 512 << 20},
		{in: "100k", want: 100e3},
		{in: "4096", want: 4096},
		{in: "0", want: 0},
		{in: "", bad: true},
		{in: "lots", bad: true},
		{in: "-1mb", bad: true},
		{in: "1tb", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseRedisBytes(tt.in)
			if tt.bad {
				if err == nil {
					t.Fatalf("parseRedisBytes(%q) = %d, want an error", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseRedisBytes(%q) = %d, %v, want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestRedisArgs(t *testing.T) {
	tests := []struct {
		name          string
		command, args []string
		want          map[string]string
		file          bool
	}{
		{
			name: "args after the image's entrypoint",
			args: []string{"redis-server", "--appendonly", "yes", "--client-output-buffer-limit", "pubsub", "64mb", "16mb", "60", "--save", ""},
			want: map[string]string{"appendonly": "yes", "client-output-buffer-limit": "pubsub 64mb 16mb 60", "save": ""},
		},
		{
			name:    "command with a path, names in any case",
			command: []string{"/usr/local/bin/redis-server"},
			args:    []string{"--MaxMemory-Policy", "noeviction"},
			want:    map[string]string{"maxmemory-policy": "noeviction"},
		},
		{
			name: "a configuration file",
			args: []string{"redis-server", "/etc/redis/redis.conf", "--port", "6379"},
			file: true,
		},
		{
			name: "the image's defaults",
			want: map[string]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := redisArgs(corev1.Container{Command: tt.command, Args: tt.args})
			if ok == tt.file {
				t.Fatalf("redisArgs reports a command line readable = %v, want %v", ok, !tt.file)
			}
			if !tt.file && !maps.Equal(got, tt.want) {
				t.Errorf("redisArgs = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestIsRedisImage(t *testing.T) {
	for image, want := range map[string]bool{
		"redis":                            true,
		"redis:7.4":                        true,
		"redis:7.4@sha256:0123":            true,
		"docker.io/library/redis:7.4":      true,
		"registry.local:5000/redis@sha256": true,
		"bitnami/redis-sentinel:7":         false,
		"ghcr.io/pubsubd/pubsub:latest":    false,
		"redis-exporter":                   false,
	} {
		if got := isRedisImage(image); got != want {
			t.Errorf("isRedisImage(%q) = %v, want %v", image, got, want)
		}
	}
}
