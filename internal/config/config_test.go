package config_test

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pubsubd/pubsub/internal/config"
	"github.com/pubsubd/pubsub/internal/domain"
)

// env is a fake environment for Load's getenv.
type env map[string]string

func (e env) get(k string) string { return e[k] }

// allVariables is every PUBSUB_* variable of the service's documentation; -h must describe each.
var allVariables = []string{
	"PUBSUB_HOST", "PUBSUB_PORT", "PUBSUB_ADMIN_ADDR", "PUBSUB_MAX_QUEUE_SIZE", "PUBSUB_HISTORY_SIZE",
	"PUBSUB_OVERFLOW_POLICY", "PUBSUB_LOG_LEVEL", "PUBSUB_LOG_FORMAT", "PUBSUB_WS_PING_INTERVAL",
	"PUBSUB_WS_PING_TIMEOUT", "PUBSUB_HEARTBEAT_INTERVAL", "PUBSUB_MAX_FRAME_BYTES", "PUBSUB_DRAIN_TIMEOUT",
	"PUBSUB_WRITE_TIMEOUT", "PUBSUB_PUBLISH_STALL_MAX", "PUBSUB_ALLOWED_ORIGINS", "PUBSUB_TRACE_DELIVERY_SPANS",
	"PUBSUB_PPROF", "PUBSUB_CONSOLE", "PUBSUB_MAX_TOPICS", "PUBSUB_MAX_SUBSCRIPTIONS", "PUBSUB_MAX_SUBSCRIPTIONS_PER_CONN",
	"PUBSUB_MAX_CONNECTIONS", "PUBSUB_MAX_CONNECTIONS_PER_ADDR", "PUBSUB_PUBLISH_RATE", "PUBSUB_PUBLISH_BURST",
	"PUBSUB_HISTORY_MAX_BYTES", "PUBSUB_MAX_QUEUE_BYTES", "PUBSUB_MAX_EVENT_BYTES", "PUBSUB_MAX_BATCH_BYTES",
	"PUBSUB_MAX_REPLY_BYTES", "PUBSUB_MAX_BUFFER_BYTES", "PUBSUB_MESSAGE_TIMEOUT", "PUBSUB_MAX_ID_BYTES",
	"PUBSUB_MAX_HEADER_BYTES", "PUBSUB_MAX_BODY_BYTES", "PUBSUB_HTTP_READ_HEADER_TIMEOUT", "PUBSUB_HTTP_READ_TIMEOUT",
	"PUBSUB_HTTP_IDLE_TIMEOUT", "PUBSUB_HTTP_MAX_HEADER_BYTES", "PUBSUB_LIST_PAGE_MAX", "PUBSUB_API_KEY",
	"PUBSUB_API_KEYS_FILE", "PUBSUB_TOKEN_KEY_FILE", "PUBSUB_BROKER", "PUBSUB_REDIS_URL",
	"PUBSUB_REDIS_SENTINEL_MASTER", "PUBSUB_REDIS_SENTINEL_ADDRS", "PUBSUB_REDIS_TIMEOUT", "PUBSUB_REPLICA_ID",
}

func defaults() config.Config {
	return config.Config{
		Host:            "",
		Port:            8080,
		AdminAddr:       "127.0.0.1:9464",
		MaxQueueSize:    100,
		HistorySize:     100,
		OverflowPolicy:  domain.DropOldest,
		LogLevel:        slog.LevelInfo,
		LogFormat:       "auto",
		PingInterval:    30 * time.Second,
		PingTimeout:     10 * time.Second,
		Heartbeat:       30 * time.Second,
		MaxFrameBytes:   1 << 20,
		DrainTimeout:    10 * time.Second,
		WriteTimeout:    10 * time.Second,
		PublishStallMax: 100 * time.Millisecond,
		AllowedOrigins:  nil,
		DeliverySpans:   16,
		Limits: config.Limits{
			MaxTopics: 10000, MaxSubscriptions: 50000, MaxSubscriptionsPerConn: 100,
			MaxConnections: 5000, MaxConnectionsPerAddr: 1000, PublishRate: 10000, PublishBurst: 1000,
			HistoryMaxBytes: 1 << 20, QueueMaxBytes: 1 << 20, EventMaxBytes: 128 << 20,
			BatchMaxBytes: 256 << 10, ReplyMaxBytes: 64 << 10, BufferMaxBytes: 64 << 20,
			MessageTimeout: 10 * time.Second, MaxIDBytes: 256, MaxHeaderBytes: 1024,
			MaxBodyBytes: 64 << 10, HTTPReadHeaderTimeout: 5 * time.Second, HTTPReadTimeout: 30 * time.Second,
			HTTPIdleTimeout: time.Minute, HTTPMaxHeaderBytes: 32 << 10, ListPageMax: 1000,
		},
		Backplane: config.Backplane{Broker: "memory", RedisTimeout: 2 * time.Second},
	}
}

func TestLoadDefaults(t *testing.T) {
	got, err := config.Load(nil, env{}.get, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := defaults(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Load() =\n%+v\nwant\n%+v", got, want)
	}
	if got.Addr() != ":8080" {
		t.Fatalf("Addr() = %q, want :8080", got.Addr())
	}
}

func TestLoadEnv(t *testing.T) {
	tests := []struct {
		name   string
		env    env
		modify func(c *config.Config) // turns the defaults into the expected configuration
	}{
		{"host and port", env{"PUBSUB_HOST": "127.0.0.1", "PUBSUB_PORT": "9000"}, func(c *config.Config) { c.Host, c.Port = "127.0.0.1", 9000 }},
		{"port 0 picks a free port", env{"PUBSUB_PORT": "0"}, func(c *config.Config) { c.Port = 0 }},
		{"port with spaces", env{"PUBSUB_PORT": " 81 "}, func(c *config.Config) { c.Port = 81 }},
		{"admin addr", env{"PUBSUB_ADMIN_ADDR": "127.0.0.1:9999"}, func(c *config.Config) { c.AdminAddr = "127.0.0.1:9999" }},
		{"byte sizes with suffixes", env{"PUBSUB_MAX_QUEUE_BYTES": "64KiB", "PUBSUB_MAX_EVENT_BYTES": "2GiB", "PUBSUB_MAX_BATCH_BYTES": "65536"},
			func(c *config.Config) {
				c.Limits.QueueMaxBytes, c.Limits.EventMaxBytes, c.Limits.BatchMaxBytes = 64<<10, 2<<30, 65536
			}},
		{"limits off", env{"PUBSUB_MAX_TOPICS": "0", "PUBSUB_PUBLISH_RATE": "0", "PUBSUB_MAX_CONNECTIONS_PER_ADDR": "0"},
			func(c *config.Config) {
				c.Limits.MaxTopics, c.Limits.PublishRate, c.Limits.MaxConnectionsPerAddr = 0, 0, 0
			}},
		{"auth", env{"PUBSUB_API_KEY": "0123456789abcdef0123", "PUBSUB_API_KEYS_FILE": "/etc/pubsub/keys.json", "PUBSUB_TOKEN_KEY_FILE": "/etc/pubsub/token.key"},
			func(c *config.Config) {
				c.Auth = config.Auth{APIKey: "0123456789abcdef0123", KeysFile: "/etc/pubsub/keys.json", TokenKeyFile: "/etc/pubsub/token.key"}
			}},
		{"pprof", env{"PUBSUB_PPROF": "true"}, func(c *config.Config) { c.PprofEnabled = true }},
		{"console off", env{"PUBSUB_CONSOLE": "false"}, func(c *config.Config) { c.ConsoleDisabled = true }},
		{"queue and history", env{"PUBSUB_MAX_QUEUE_SIZE": "1", "PUBSUB_HISTORY_SIZE": "0"}, func(c *config.Config) { c.MaxQueueSize, c.HistorySize = 1, 0 }},
		{"policy", env{"PUBSUB_OVERFLOW_POLICY": "disconnect"}, func(c *config.Config) { c.OverflowPolicy = domain.Disconnect }},
		{"log level", env{"PUBSUB_LOG_LEVEL": "DEBUG"}, func(c *config.Config) { c.LogLevel = slog.LevelDebug }},
		{"log level lower case", env{"PUBSUB_LOG_LEVEL": "warn"}, func(c *config.Config) { c.LogLevel = slog.LevelWarn }},
		{"log level error", env{"PUBSUB_LOG_LEVEL": "ERROR"}, func(c *config.Config) { c.LogLevel = slog.LevelError }},
		{"log format", env{"PUBSUB_LOG_FORMAT": "json"}, func(c *config.Config) { c.LogFormat = "json" }},
		{"ping in legacy seconds", env{"PUBSUB_WS_PING_INTERVAL": "45", "PUBSUB_WS_PING_TIMEOUT": "5"}, func(c *config.Config) {
			c.PingInterval, c.PingTimeout = 45*time.Second, 5*time.Second
		}},
		{"ping as Go durations", env{"PUBSUB_WS_PING_INTERVAL": "1m30s", "PUBSUB_WS_PING_TIMEOUT": "1500ms"}, func(c *config.Config) {
			c.PingInterval, c.PingTimeout = 90*time.Second, 1500*time.Millisecond
		}},
		{"ping off", env{"PUBSUB_WS_PING_INTERVAL": "0", "PUBSUB_WS_PING_TIMEOUT": "0s"}, func(c *config.Config) { c.PingInterval, c.PingTimeout = 0, 0 }},
		{"heartbeat", env{"PUBSUB_HEARTBEAT_INTERVAL": "250ms"}, func(c *config.Config) { c.Heartbeat = 250 * time.Millisecond }},
		{"heartbeat off", env{"PUBSUB_HEARTBEAT_INTERVAL": "0"}, func(c *config.Config) { c.Heartbeat = 0 }},
		{"frame limit", env{"PUBSUB_MAX_FRAME_BYTES": "512"}, func(c *config.Config) { c.MaxFrameBytes = 512 }},
		{"drain and write timeouts", env{"PUBSUB_DRAIN_TIMEOUT": "1ms", "PUBSUB_WRITE_TIMEOUT": "2m"}, func(c *config.Config) {
			c.DrainTimeout, c.WriteTimeout = time.Millisecond, 2*time.Minute
		}},
		{"origins trimmed, empties skipped", env{"PUBSUB_ALLOWED_ORIGINS": " https://a.example , ,https://b.example,"}, func(c *config.Config) {
			c.AllowedOrigins = []string{"https://a.example", "https://b.example"}
		}},
		{"delivery spans", env{"PUBSUB_TRACE_DELIVERY_SPANS": "0"}, func(c *config.Config) { c.DeliverySpans = 0 }},
		{"publisher stalls", env{"PUBSUB_PUBLISH_STALL_MAX": "200ms"}, func(c *config.Config) { c.PublishStallMax = 200 * time.Millisecond }},
		{"publisher stalls off", env{"PUBSUB_PUBLISH_STALL_MAX": "0"}, func(c *config.Config) { c.PublishStallMax = 0 }},
		{"other variables ignored", env{"PUBSUB_UNKNOWN": "x", "PORT": "1"}, func(c *config.Config) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := config.Load(nil, tt.env.get, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			want := defaults()
			tt.modify(&want)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Load =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestLoadFlagsWinOverEnv(t *testing.T) {
	e := env{
		"PUBSUB_PORT": "9000", "PUBSUB_OVERFLOW_POLICY": "disconnect", "PUBSUB_WS_PING_INTERVAL": "5",
		"PUBSUB_ALLOWED_ORIGINS": "https://env.example", "PUBSUB_LOG_LEVEL": "ERROR", "PUBSUB_HOST": "10.0.0.1",
	}
	args := []string{"-port", "9100", "--overflow-policy=drop_oldest", "-ws-ping-interval=2m",
		"-allowed-origins", "https://flag.example", "-log-level", "DEBUG", "-admin-addr="}
	got, err := config.Load(args, e.get, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := defaults()
	want.Host = "10.0.0.1" // from the environment: no flag for it
	want.Port, want.OverflowPolicy, want.PingInterval = 9100, domain.DropOldest, 2*time.Minute
	want.AllowedOrigins, want.LogLevel, want.AdminAddr = []string{"https://flag.example"}, slog.LevelDebug, ""
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Load =\n%+v\nwant\n%+v", got, want)
	}
}

func TestLoadInvalid(t *testing.T) {
	tests := []struct {
		name string
		env  env
		args []string
		// want are substrings of the message: the variable or flag, and the accepted values.
		want []string
	}{
		{"port not a number", env{"PUBSUB_PORT": "http"}, nil, []string{`PUBSUB_PORT="http"`, "integers from 0 to 65535"}},
		{"port too large", env{"PUBSUB_PORT": "65536"}, nil, []string{"PUBSUB_PORT", "integers from 0 to 65535"}},
		{"port negative", env{"PUBSUB_PORT": "-1"}, nil, []string{"PUBSUB_PORT", "integers from 0 to 65535"}},
		{"queue size 0", env{"PUBSUB_MAX_QUEUE_SIZE": "0"}, nil, []string{"PUBSUB_MAX_QUEUE_SIZE", "integers from 1 to 1048576"}},
		{"queue size huge", env{"PUBSUB_MAX_QUEUE_SIZE": "1048577"}, nil, []string{"PUBSUB_MAX_QUEUE_SIZE", "integers from 1 to 1048576"}},
		{"history negative", env{"PUBSUB_HISTORY_SIZE": "-1"}, nil, []string{"PUBSUB_HISTORY_SIZE", "integers from 0 to 1048576"}},
		{"history fractional", env{"PUBSUB_HISTORY_SIZE": "1.5"}, nil, []string{"PUBSUB_HISTORY_SIZE", "integers from 0 to 1048576"}},
		{"policy", env{"PUBSUB_OVERFLOW_POLICY": "block"}, nil, []string{"PUBSUB_OVERFLOW_POLICY", "drop_oldest, disconnect"}},
		{"log level", env{"PUBSUB_LOG_LEVEL": "TRACE"}, nil, []string{"PUBSUB_LOG_LEVEL", "DEBUG, INFO, WARN, ERROR"}},
		{"log format", env{"PUBSUB_LOG_FORMAT": "xml"}, nil, []string{"PUBSUB_LOG_FORMAT", "auto, text, json"}},
		{"ping interval negative", env{"PUBSUB_WS_PING_INTERVAL": "-5"}, nil, []string{"PUBSUB_WS_PING_INTERVAL", "whole seconds (30) or Go durations"}},
		{"ping interval negative duration", env{"PUBSUB_WS_PING_INTERVAL": "-5s"}, nil, []string{"PUBSUB_WS_PING_INTERVAL", "whole seconds"}},
		{"ping timeout words", env{"PUBSUB_WS_PING_TIMEOUT": "ten"}, nil, []string{"PUBSUB_WS_PING_TIMEOUT", "whole seconds"}},
		{"ping timeout fractional seconds", env{"PUBSUB_WS_PING_TIMEOUT": "1.5"}, nil, []string{"PUBSUB_WS_PING_TIMEOUT", "whole seconds"}},
		{"heartbeat without unit", env{"PUBSUB_HEARTBEAT_INTERVAL": "30"}, nil, []string{"PUBSUB_HEARTBEAT_INTERVAL", "Go durations"}},
		{"heartbeat negative", env{"PUBSUB_HEARTBEAT_INTERVAL": "-1s"}, nil, []string{"PUBSUB_HEARTBEAT_INTERVAL", "Go durations"}},
		{"heartbeat below a millisecond", env{"PUBSUB_HEARTBEAT_INTERVAL": "500us"}, nil, []string{"PUBSUB_HEARTBEAT_INTERVAL", "Go durations"}},
		{"frame limit too small", env{"PUBSUB_MAX_FRAME_BYTES": "511"}, nil, []string{"PUBSUB_MAX_FRAME_BYTES", "integers from 512 to 67108864"}},
		{"frame limit too large", env{"PUBSUB_MAX_FRAME_BYTES": "67108865"}, nil, []string{"PUBSUB_MAX_FRAME_BYTES", "integers from 512 to 67108864"}},
		{"frame limit with unit", env{"PUBSUB_MAX_FRAME_BYTES": "1MB"}, nil, []string{"PUBSUB_MAX_FRAME_BYTES", "integers from 512"}},
		{"byte size with a unit we do not read", env{"PUBSUB_MAX_QUEUE_BYTES": "1MB"}, nil, []string{"PUBSUB_MAX_QUEUE_BYTES", "KiB, MiB or GiB"}},
		{"byte size below its floor", env{"PUBSUB_MAX_BATCH_BYTES": "1KiB"}, nil, []string{"PUBSUB_MAX_BATCH_BYTES", "at least 4096"}},
		{"negative rate", env{"PUBSUB_PUBLISH_RATE": "-1"}, nil, []string{"PUBSUB_PUBLISH_RATE", "numbers from 0"}},
		{"short api key", env{"PUBSUB_API_KEY": "secret"}, nil, []string{"PUBSUB_API_KEY", "at least 16 characters"}},
		{"pprof not a bool", env{"PUBSUB_PPROF": "yes please"}, nil, []string{"PUBSUB_PPROF", "true, false"}},
		{"console not a bool", env{"PUBSUB_CONSOLE": "maybe"}, nil, []string{"PUBSUB_CONSOLE", "true, false"}},
		{"drain timeout zero", env{"PUBSUB_DRAIN_TIMEOUT": "0s"}, nil, []string{"PUBSUB_DRAIN_TIMEOUT", "at least 1ms"}},
		{"drain timeout without unit", env{"PUBSUB_DRAIN_TIMEOUT": "10"}, nil, []string{"PUBSUB_DRAIN_TIMEOUT", "at least 1ms"}},
		{"write timeout", env{"PUBSUB_WRITE_TIMEOUT": "soon"}, nil, []string{"PUBSUB_WRITE_TIMEOUT", "at least 1ms"}},
		{"publisher stall negative", env{"PUBSUB_PUBLISH_STALL_MAX": "-1ms"}, nil, []string{"PUBSUB_PUBLISH_STALL_MAX", "Go durations"}},
		{"delivery spans", env{"PUBSUB_TRACE_DELIVERY_SPANS": "100001"}, nil, []string{"PUBSUB_TRACE_DELIVERY_SPANS", "integers from 0 to 100000"}},
		{"ping on without a timeout", env{"PUBSUB_WS_PING_TIMEOUT": "0"}, nil, []string{"PUBSUB_WS_PING_TIMEOUT", "PUBSUB_WS_PING_INTERVAL", "positive"}},

		{"flag port", nil, []string{"-port", "x"}, []string{`-port="x"`, "integers from 0 to 65535"}},
		{"flag policy", nil, []string{"-overflow-policy=block"}, []string{"-overflow-policy", "drop_oldest, disconnect"}},
		{"flag ping timeout", nil, []string{"-ws-ping-timeout=-1s"}, []string{"-ws-ping-timeout", "whole seconds"}},
		{"flag wins even when invalid", env{"PUBSUB_PORT": "9000"}, []string{"-port=99999"}, []string{"-port", "integers from 0 to 65535"}},
		{"flag without value", nil, []string{"-port"}, []string{"-port"}},
		{"unknown flag", nil, []string{"-verbose"}, []string{"-verbose"}},
		{"positional argument", nil, []string{"serve"}, []string{`unexpected argument "serve"`, "flags only"}},
		{"argument after flags", nil, []string{"-port=1", "extra"}, []string{`unexpected argument "extra"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load(tt.args, tt.env.get, io.Discard)
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

func TestLoadHelp(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		t.Run(arg, func(t *testing.T) {
			var out bytes.Buffer
			_, err := config.Load([]string{arg}, env{"PUBSUB_PORT": "1"}.get, &out)
			if !errors.Is(err, flag.ErrHelp) {
				t.Fatalf("Load(%s) error = %v, want flag.ErrHelp", arg, err)
			}
			usage := out.String()
			for _, v := range allVariables {
				if !strings.Contains(usage, v) {
					t.Errorf("usage does not mention %s", v)
				}
			}
			for _, s := range []string{"Usage: pubsubd", "OTEL_", `default "8080"`, "drop_oldest or disconnect"} {
				if !strings.Contains(usage, s) {
					t.Errorf("usage does not contain %q", s)
				}
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		modify  func(c *config.Config)
		wantErr bool
	}{
		{"defaults", func(c *config.Config) {}, false},
		{"pings off, no timeout", func(c *config.Config) { c.PingInterval, c.PingTimeout = 0, 0 }, false},
		{"pings on, no timeout", func(c *config.Config) { c.PingTimeout = 0 }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := defaults()
			tt.modify(&c)
			err := c.Validate()
			var ce *config.Error
			if tt.wantErr != errors.As(err, &ce) || tt.wantErr != (err != nil) {
				t.Fatalf("Validate() = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

// The configuration is logged at start as one record; every value must be there.
func TestLogValue(t *testing.T) {
	var out bytes.Buffer
	slog.New(slog.NewTextHandler(&out, nil)).Info("config", "config", defaults())
	for _, s := range []string{"config.addr=:8080", "config.admin_addr=127.0.0.1:9464", "config.max_queue_size=100",
		"config.history_size=100", "config.overflow_policy=drop_oldest", "config.log_level=INFO",
		"config.log_format=auto", "config.ws_ping_interval=30s", "config.ws_ping_timeout=10s",
		"config.heartbeat_interval=30s", "config.max_frame_bytes=1048576", "config.drain_timeout=10s",
		"config.write_timeout=10s", "config.publish_stall_max=100ms", "config.allowed_origins=[]", "config.trace_delivery_spans=16"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("log record %q lacks %q", out.String(), s)
		}
	}
}
