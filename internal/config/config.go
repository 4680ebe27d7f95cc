// Package config loads the service's configuration from flags and PUBSUB_* environment variables
// (flags win), validates it, and describes it for -h.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/pubsubd/pubsub/internal/domain"
)

// Config is the whole configuration of pubsubd. The zero value is not useful; use Load.
type Config struct {
	Host           string
	Port           int
	AdminAddr      string
	MaxQueueSize   int
	HistorySize    int
	OverflowPolicy domain.Policy
	LogLevel       slog.Level
	LogFormat      string
	PingInterval   time.Duration
	PingTimeout    time.Duration
	Heartbeat      time.Duration
	MaxFrameBytes  int64
	DrainTimeout   time.Duration
	WriteTimeout   time.Duration
	// PublishStallMax bounds how long a publisher's reading pauses while delivery to subscribers
	// that read is behind; 0 disables the pause.
	PublishStallMax time.Duration
	AllowedOrigins  []string
	DeliverySpans   int
}

// Addr is the application listener's address.
func (c Config) Addr() string { return c.Host + ":" + strconv.Itoa(c.Port) }

// setting is one configuration value: its flag, its variable, its default and how to parse it.
type setting struct {
	flag, env, def, help string
	set                  func(c *Config, v string) error
}

func settings() []setting {
	return []setting{
		{"host", "PUBSUB_HOST", "", "interface to listen on (empty: all)", func(c *Config, v string) error { c.Host = v; return nil }},
		{"port", "PUBSUB_PORT", "8080", "port of the WebSocket and REST listener (0: any free port)", func(c *Config, v string) error {
			return intIn(&c.Port, v, 0, 65535)
		}},
		{"admin-addr", "PUBSUB_ADMIN_ADDR", ":9464", "address of the admin listener (/metrics, /debug/pprof); off disables it", func(c *Config, v string) error {
			if v == "off" {
				v = ""
			}
			c.AdminAddr = v
			return nil
		}},
		{"max-queue-size", "PUBSUB_MAX_QUEUE_SIZE", "100", "events queued per subscriber before the overflow policy applies", func(c *Config, v string) error {
			return intIn(&c.MaxQueueSize, v, 1, 1<<20)
		}},
		{"history-size", "PUBSUB_HISTORY_SIZE", "100", "events kept per topic for last_n replay", func(c *Config, v string) error {
			return intIn(&c.HistorySize, v, 0, 1<<20)
		}},
		{"overflow-policy", "PUBSUB_OVERFLOW_POLICY", "drop_oldest", "what a full subscriber queue does: drop_oldest or disconnect", func(c *Config, v string) error {
			p, err := domain.ParsePolicy(v)
			if err != nil {
				return errors.New("accepted values are drop_oldest, disconnect")
			}
			c.OverflowPolicy = p
			return nil
		}},
		{"log-level", "PUBSUB_LOG_LEVEL", "INFO", "DEBUG, INFO, WARN or ERROR", func(c *Config, v string) error {
			if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
				return errors.New("accepted values are DEBUG, INFO, WARN, ERROR")
			}
			return nil
		}},
		{"log-format", "PUBSUB_LOG_FORMAT", "auto", "auto (text on a terminal, JSON otherwise), text or json", func(c *Config, v string) error {
			switch v {
			case "auto", "text", "json":
				c.LogFormat = v
				return nil
			}
			return errors.New("accepted values are auto, text, json")
		}},
		{"ws-ping-interval", "PUBSUB_WS_PING_INTERVAL", "30", "seconds (or a Go duration) between WebSocket pings; 0 disables them", func(c *Config, v string) error {
			return seconds(&c.PingInterval, v)
		}},
		{"ws-ping-timeout", "PUBSUB_WS_PING_TIMEOUT", "10", "seconds (or a Go duration) a peer may stay silent past a ping interval", func(c *Config, v string) error {
			return seconds(&c.PingTimeout, v)
		}},
		{"heartbeat-interval", "PUBSUB_HEARTBEAT_INTERVAL", "30s", `interval of {"type":"info","msg":"ping"} frames (Go duration); 0 disables them`, func(c *Config, v string) error {
			return duration(&c.Heartbeat, v, 0)
		}},
		{"max-frame-bytes", "PUBSUB_MAX_FRAME_BYTES", "1048576", "largest client frame; larger ones close the connection with 1009", func(c *Config, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 512 || n > 64<<20 {
				return errors.New("accepted values are integers from 512 to 67108864")
			}
			c.MaxFrameBytes = n
			return nil
		}},
		{"drain-timeout", "PUBSUB_DRAIN_TIMEOUT", "10s", "how long graceful shutdown may take to flush queues and close connections", func(c *Config, v string) error {
			return duration(&c.DrainTimeout, v, time.Millisecond)
		}},
		{"write-timeout", "PUBSUB_WRITE_TIMEOUT", "10s", "deadline for one write to a client; a peer that takes longer is dropped", func(c *Config, v string) error {
			return duration(&c.WriteTimeout, v, time.Millisecond)
		}},
		{"publish-stall-max", "PUBSUB_PUBLISH_STALL_MAX", "100ms", "longest pause of a publisher's reading while delivery to subscribers that read is behind (Go duration); 0 disables it", func(c *Config, v string) error {
			return duration(&c.PublishStallMax, v, 0)
		}},
		{"allowed-origins", "PUBSUB_ALLOWED_ORIGINS", "", "comma-separated Origins allowed to open /ws (empty: any)", func(c *Config, v string) error {
			c.AllowedOrigins = nil
			for _, o := range strings.Split(v, ",") {
				if o = strings.TrimSpace(o); o != "" {
					c.AllowedOrigins = append(c.AllowedOrigins, o)
				}
			}
			return nil
		}},
		{"trace-delivery-spans", "PUBSUB_TRACE_DELIVERY_SPANS", "16", "delivery spans recorded per sampled publish", func(c *Config, v string) error {
			return intIn(&c.DeliverySpans, v, 0, 100000)
		}},
	}
}

func intIn(dst *int, v string, lo, hi int) error {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < lo || n > hi {
		return fmt.Errorf("accepted values are integers from %d to %d", lo, hi)
	}
	*dst = n
	return nil
}

// seconds accepts the earlier version's whole seconds ("30") and Go durations ("1m30s").
func seconds(dst *time.Duration, v string) error {
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
		*dst = time.Duration(n) * time.Second
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return errors.New("accepted values are whole seconds (30) or Go durations (30s, 1m)")
	}
	*dst = d
	return nil
}

func duration(dst *time.Duration, v string, min time.Duration) error {
	d, err := time.ParseDuration(v)
	if err != nil || d < min || (d != 0 && d < time.Millisecond) {
		return fmt.Errorf("accepted values are Go durations of at least %s (e.g. 500ms, 10s, 1m)", max(min, 0))
	}
	*dst = d
	return nil
}

// Error is a configuration value that was refused. main exits with status 2 on it.
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }

// Load reads the configuration: defaults, overridden by PUBSUB_* variables, overridden by flags.
// -h prints the usage (with every variable) to out and returns flag.ErrHelp.
func Load(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	var c Config
	all := settings()
	for _, s := range all {
		v, src := s.def, "default"
		if e := getenv(s.env); e != "" {
			v, src = e, s.env
		}
		if err := s.set(&c, v); err != nil {
			if src == "default" {
				panic("config: bad default for " + s.env) // a programming error, caught by tests
			}
			return c, &Error{Msg: fmt.Sprintf("%s=%q is invalid: %v", s.env, v, err)}
		}
	}
	fs := flag.NewFlagSet("pubsubd", flag.ContinueOnError)
	fs.SetOutput(out)
	var flagErr error
	for _, s := range all {
		s := s
		fs.Func(s.flag, fmt.Sprintf("%s (env %s, default %q)", s.help, s.env, s.def), func(v string) error {
			if err := s.set(&c, v); err != nil {
				flagErr = &Error{Msg: fmt.Sprintf("-%s=%q is invalid: %v", s.flag, v, err)}
				return err
			}
			return nil
		})
	}
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: pubsubd [flags]\n\nA WebSocket pub/sub service. Every flag can also be set by its environment variable;\na flag wins over its variable. OpenTelemetry reads the standard OTEL_* variables.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		if flagErr != nil {
			return c, flagErr
		}
		return c, &Error{Msg: err.Error()}
	}
	if fs.NArg() > 0 {
		return c, &Error{Msg: fmt.Sprintf("unexpected argument %q: pubsubd takes flags only", fs.Arg(0))}
	}
	return c, c.Validate()
}

// Validate refuses combinations that no single value shows to be wrong.
func (c Config) Validate() error {
	if c.PingInterval > 0 && c.PingTimeout <= 0 {
		return &Error{Msg: "PUBSUB_WS_PING_TIMEOUT must be positive while PUBSUB_WS_PING_INTERVAL is on"}
	}
	return nil
}

// LogValue lets the configuration be logged at start as one structured record.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("addr", c.Addr()), slog.String("admin_addr", c.AdminAddr),
		slog.Int("max_queue_size", c.MaxQueueSize), slog.Int("history_size", c.HistorySize),
		slog.String("overflow_policy", c.OverflowPolicy.String()), slog.String("log_level", c.LogLevel.String()),
		slog.String("log_format", c.LogFormat), slog.String("ws_ping_interval", c.PingInterval.String()),
		slog.String("ws_ping_timeout", c.PingTimeout.String()), slog.String("heartbeat_interval", c.Heartbeat.String()),
		slog.Int64("max_frame_bytes", c.MaxFrameBytes), slog.String("drain_timeout", c.DrainTimeout.String()),
		slog.String("write_timeout", c.WriteTimeout.String()), slog.String("publish_stall_max", c.PublishStallMax.String()),
		slog.Any("allowed_origins", c.AllowedOrigins),
		slog.Int("trace_delivery_spans", c.DeliverySpans),
	)
}
