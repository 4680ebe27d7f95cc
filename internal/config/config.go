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

	// Limits: everything a client can grow is bounded by count and by bytes. README's "Limits and
	// the memory bound" writes the worst case as a formula of these.
	Limits Limits
	// Auth turns authentication on when a key, a key file or a token key is set.
	Auth Auth
	// PprofEnabled serves /debug/pprof on the admin listener.
	PprofEnabled bool
	// ConsoleDisabled keeps the web console (and the application's API it serves to its page) off
	// the admin listener. The zero value serves it, as PUBSUB_CONSOLE's default does.
	ConsoleDisabled bool
	// Backplane chooses the engine and, for Redis, how to reach it (see backplane.go).
	Backplane Backplane
}

// Limits bound what clients can make the process hold. Zero disables a count or rate limit; byte
// budgets and timeouts are always on.
type Limits struct {
	MaxTopics               int // topics in the process
	MaxSubscriptions        int // subscriptions in the process
	MaxSubscriptionsPerConn int
	MaxConnections          int
	MaxConnectionsPerAddr   int     // per client IP address
	PublishRate             float64 // publishes per second per connection (token bucket)
	PublishBurst            int     // the bucket's size

	HistoryMaxBytes int64 // per topic: payload bytes kept for last_n
	QueueMaxBytes   int64 // per subscription: bytes of events queued
	EventMaxBytes   int64 // whole process: bytes of events held by topics (history and queues)
	BatchMaxBytes   int64 // per connection: one write batch
	ReplyMaxBytes   int64 // per connection: replies the client has not read yet
	BufferMaxBytes  int64 // whole process: connection read and write buffers beyond a small allowance

	MessageTimeout time.Duration // a client message that has started must be complete within this
	MaxIDBytes     int           // client_id and request_id
	MaxHeaderBytes int           // each key and each value of message.headers

	MaxBodyBytes          int64 // REST request body
	HTTPReadHeaderTimeout time.Duration
	HTTPReadTimeout       time.Duration
	HTTPIdleTimeout       time.Duration
	HTTPMaxHeaderBytes    int
	ListPageMax           int // entries in one page of GET /topics and GET /stats
}

// Auth configures authentication. It is on when any of the three is set.
type Auth struct {
	APIKey       string // one key with every scope (PUBSUB_API_KEY)
	KeysFile     string // hashed keys with scopes
	TokenKeyFile string // HMAC secret that signs browser tokens
}

// Enabled reports whether requests must authenticate.
func (a Auth) Enabled() bool { return a.APIKey != "" || a.KeysFile != "" || a.TokenKeyFile != "" }

// Addr is the application listener's address.
func (c Config) Addr() string { return c.Host + ":" + strconv.Itoa(c.Port) }

// setting is one configuration value: its flag, its variable, its default and how to parse it.
type setting struct {
	flag, env, def, help string
	set                  func(c *Config, v string) error
}

func settings() []setting {
	base := []setting{
		{"host", "PUBSUB_HOST", "", "interface to listen on (empty: all)", func(c *Config, v string) error { c.Host = v; return nil }},
		{"port", "PUBSUB_PORT", "8080", "port of the WebSocket and REST listener (0: any free port)", func(c *Config, v string) error {
			return intIn(&c.Port, v, 0, 65535)
		}},
		{"admin-addr", "PUBSUB_ADMIN_ADDR", "127.0.0.1:9464", "address of the admin listener (/metrics, /debug/pprof): loopback unless set (Kubernetes sets :9464); off disables it", func(c *Config, v string) error {
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
		{"write-timeout", "PUBSUB_WRITE_TIMEOUT", "10s", "how long a write to a client may make no progress; a peer that takes nothing for that long is dropped (a slow reader meets its overflow policy instead)", func(c *Config, v string) error {
			return duration(&c.WriteTimeout, v, time.Millisecond)
		}},
		{"publish-stall-max", "PUBSUB_PUBLISH_STALL_MAX", "100ms", "longest pause of a publisher's reading while delivery to subscribers that read is behind (Go duration); 0 disables it", func(c *Config, v string) error {
			return duration(&c.PublishStallMax, v, 0)
		}},
		{"allowed-origins", "PUBSUB_ALLOWED_ORIGINS", "", "comma-separated Origins allowed to open /ws; * allows any; empty: only the request's own host (clients that send no Origin are not browsers and pass)", func(c *Config, v string) error {
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
		{"pprof", "PUBSUB_PPROF", "false", "serve /debug/pprof on the admin listener", func(c *Config, v string) error {
			return boolean(&c.PprofEnabled, v)
		}},
		{"console", "PUBSUB_CONSOLE", "true", "serve the web console (/console/) on the admin listener", func(c *Config, v string) error {
			on := true
			if err := boolean(&on, v); err != nil {
				return err
			}
			c.ConsoleDisabled = !on
			return nil
		}},
	}
	return append(append(base, limitSettings()...), backplaneSettings()...)
}

// limitSettings are the bounds of #11: counts, rates, byte budgets, timeouts and authentication.
func limitSettings() []setting {
	l := func(c *Config) *Limits { return &c.Limits }
	return []setting{
		{"max-topics", "PUBSUB_MAX_TOPICS", "10000", "topics the process holds; creating more is refused (0: no limit)", func(c *Config, v string) error {
			return intIn(&l(c).MaxTopics, v, 0, 1<<30)
		}},
		{"max-subscriptions", "PUBSUB_MAX_SUBSCRIPTIONS", "50000", "subscriptions the process holds (0: no limit); the default keeps the worst case (README) inside 1 GiB", func(c *Config, v string) error {
			return intIn(&l(c).MaxSubscriptions, v, 0, 1<<30)
		}},
		{"max-subscriptions-per-conn", "PUBSUB_MAX_SUBSCRIPTIONS_PER_CONN", "100", "subscriptions one connection may hold (0: no limit)", func(c *Config, v string) error {
			return intIn(&l(c).MaxSubscriptionsPerConn, v, 0, 1<<30)
		}},
		{"max-connections", "PUBSUB_MAX_CONNECTIONS", "5000", "WebSocket connections the process accepts (0: no limit); the default keeps the worst case (README) inside 1 GiB", func(c *Config, v string) error {
			return intIn(&l(c).MaxConnections, v, 0, 1<<30)
		}},
		{"max-connections-per-addr", "PUBSUB_MAX_CONNECTIONS_PER_ADDR", "1000", "WebSocket connections from one client IP address (0: no limit)", func(c *Config, v string) error {
			return intIn(&l(c).MaxConnectionsPerAddr, v, 0, 1<<30)
		}},
		{"publish-rate", "PUBSUB_PUBLISH_RATE", "10000", "publishes per second one connection may sustain, beyond its burst (0: no limit)", func(c *Config, v string) error {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || f < 0 || f > 1e9 {
				return errors.New("accepted values are numbers from 0 to 1e9")
			}
			l(c).PublishRate = f
			return nil
		}},
		{"publish-burst", "PUBSUB_PUBLISH_BURST", "1000", "publishes one connection may send at once before its rate applies", func(c *Config, v string) error {
			return intIn(&l(c).PublishBurst, v, 1, 1<<30)
		}},
		{"history-max-bytes", "PUBSUB_HISTORY_MAX_BYTES", "1MiB", "bytes of events each topic keeps for last_n (beside PUBSUB_HISTORY_SIZE)", func(c *Config, v string) error {
			return byteSize(&l(c).HistoryMaxBytes, v, 0)
		}},
		{"max-queue-bytes", "PUBSUB_MAX_QUEUE_BYTES", "1MiB", "bytes of events queued per subscriber before the overflow policy applies (beside PUBSUB_MAX_QUEUE_SIZE)", func(c *Config, v string) error {
			return byteSize(&l(c).QueueMaxBytes, v, 1024)
		}},
		{"max-event-bytes", "PUBSUB_MAX_EVENT_BYTES", "128MiB", "bytes of events all topics together hold in history and subscriber queues", func(c *Config, v string) error {
			return byteSize(&l(c).EventMaxBytes, v, 1<<20)
		}},
		{"max-batch-bytes", "PUBSUB_MAX_BATCH_BYTES", "256KiB", "bytes of one write to a client (a larger single frame goes alone)", func(c *Config, v string) error {
			return byteSize(&l(c).BatchMaxBytes, v, 4096)
		}},
		{"max-reply-bytes", "PUBSUB_MAX_REPLY_BYTES", "64KiB", "bytes of replies a client may leave unread before its connection is closed (1008)", func(c *Config, v string) error {
			return byteSize(&l(c).ReplyMaxBytes, v, 4096)
		}},
		{"max-buffer-bytes", "PUBSUB_MAX_BUFFER_BYTES", "64MiB", "bytes all connections together may hold in read and write buffers beyond a small allowance each", func(c *Config, v string) error {
			return byteSize(&l(c).BufferMaxBytes, v, 1<<20)
		}},
		{"message-timeout", "PUBSUB_MESSAGE_TIMEOUT", "10s", "how long a client message, once started, may take to arrive whole (fragments included)", func(c *Config, v string) error {
			return duration(&l(c).MessageTimeout, v, time.Millisecond)
		}},
		{"max-id-bytes", "PUBSUB_MAX_ID_BYTES", "256", "longest client_id and request_id", func(c *Config, v string) error {
			return intIn(&l(c).MaxIDBytes, v, 16, 1<<16)
		}},
		{"max-header-bytes", "PUBSUB_MAX_HEADER_BYTES", "1024", "longest value in message.headers and tracestate (keys: 128 bytes, or this if lower)", func(c *Config, v string) error {
			return intIn(&l(c).MaxHeaderBytes, v, 64, 1<<16)
		}},
		{"max-body-bytes", "PUBSUB_MAX_BODY_BYTES", "64KiB", "largest REST request body", func(c *Config, v string) error {
			return byteSize(&l(c).MaxBodyBytes, v, 1024)
		}},
		{"http-read-header-timeout", "PUBSUB_HTTP_READ_HEADER_TIMEOUT", "5s", "time a client has to send a request's headers", func(c *Config, v string) error {
			return duration(&l(c).HTTPReadHeaderTimeout, v, time.Millisecond)
		}},
		{"http-read-timeout", "PUBSUB_HTTP_READ_TIMEOUT", "30s", "time a client has to send a whole REST request", func(c *Config, v string) error {
			return duration(&l(c).HTTPReadTimeout, v, time.Millisecond)
		}},
		{"http-idle-timeout", "PUBSUB_HTTP_IDLE_TIMEOUT", "60s", "how long an idle keep-alive connection is kept", func(c *Config, v string) error {
			return duration(&l(c).HTTPIdleTimeout, v, time.Millisecond)
		}},
		{"http-max-header-bytes", "PUBSUB_HTTP_MAX_HEADER_BYTES", "32KiB", "largest request header block", func(c *Config, v string) error {
			var n int64
			if err := byteSize(&n, v, 4096); err != nil {
				return err
			}
			l(c).HTTPMaxHeaderBytes = int(n)
			return nil
		}},
		{"list-page-max", "PUBSUB_LIST_PAGE_MAX", "1000", "entries in one page of GET /topics and GET /stats", func(c *Config, v string) error {
			return intIn(&l(c).ListPageMax, v, 1, 1<<20)
		}},
		{"api-key", "PUBSUB_API_KEY", "", "one API key with every scope; turns authentication on", func(c *Config, v string) error {
			if v != "" && len(v) < 16 {
				return errors.New("an API key needs at least 16 characters")
			}
			c.Auth.APIKey = v
			return nil
		}},
		{"api-keys-file", "PUBSUB_API_KEYS_FILE", "", "JSON file of hashed API keys with scopes; turns authentication on", func(c *Config, v string) error {
			c.Auth.KeysFile = v
			return nil
		}},
		{"token-key-file", "PUBSUB_TOKEN_KEY_FILE", "", "file holding the HMAC secret that signs browser tokens; turns authentication on", func(c *Config, v string) error {
			c.Auth.TokenKeyFile = v
			return nil
		}},
	}
}

func boolean(dst *bool, v string) error {
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	if err != nil {
		return errors.New("accepted values are true, false")
	}
	*dst = b
	return nil
}

// byteSize accepts plain byte counts and the binary suffixes KiB, MiB and GiB ("64KiB").
func byteSize(dst *int64, v string, min int64) error {
	v = strings.TrimSpace(v)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if strings.HasSuffix(v, u.suffix) {
			v, mult = strings.TrimSuffix(v, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > (1<<40)/mult || n*mult < min {
		return fmt.Errorf("accepted values are byte counts of at least %d, optionally with KiB, MiB or GiB (e.g. 65536, 64KiB)", min)
	}
	*dst = n * mult
	return nil
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
	return c.Backplane.validate()
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
		slog.Bool("pprof", c.PprofEnabled),
		slog.Bool("console", !c.ConsoleDisabled),
		slog.Any("limits", c.Limits),
		slog.Bool("auth", c.Auth.Enabled()),
		slog.Any("backplane", c.Backplane),
	)
}
