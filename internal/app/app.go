// Package app assembles the pubsubd process once: telemetry, the memory broker, the service and its
// instrumentation, the WebSocket server, the REST router, and the HTTP servers of the application
// and admin listeners. main and every test that needs a whole server use it, so there is one wiring
// to read and one ordered shutdown. It holds no logic beyond assembly and lifecycle.
//
// The lifecycle is New (build, start nothing), then Serve (listen, start, block), then Shutdown
// (the ordered, bounded stop, which Serve runs itself before it returns).
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/pubsubd/pubsub/internal/auth"
	"github.com/pubsubd/pubsub/internal/broker/memory"
	"github.com/pubsubd/pubsub/internal/broker/redis"
	"github.com/pubsubd/pubsub/internal/config"
	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/service"
	"github.com/pubsubd/pubsub/internal/transport/console"
	"github.com/pubsubd/pubsub/internal/transport/httpapi"
	"github.com/pubsubd/pubsub/internal/transport/wire"
	"github.com/pubsubd/pubsub/internal/transport/ws"
	"github.com/pubsubd/pubsub/telemetry"
)

// Options is what the caller injects besides the configuration. The zero value is valid: logs go
// to os.Stderr, no OTEL_* variable is read, and nothing is overridden.
type Options struct {
	// Version and Revision identify the build in the start log line and pubsub_build_info.
	Version, Revision string
	// LogOutput receives the logs; nil means os.Stderr.
	LogOutput io.Writer
	// Getenv reads the OTEL_* variables (os.Getenv in production); nil reads none.
	Getenv func(string) string

	// The fields below are for tests.

	// SpanProcessor, when set, replaces the OTLP exporter and turns tracing on.
	SpanProcessor sdktrace.SpanProcessor
	// Sampler, when set, replaces the sampler OTEL_TRACES_SAMPLER would choose.
	Sampler sdktrace.Sampler
	// WrapAPI, when set, wraps the instrumented service that the transports call (to inject
	// faults or observe calls).
	WrapAPI func(service.API) service.API
	// TuneWS, when set, may change the WebSocket server's configuration after New has derived it
	// from config.Config: for the knobs config does not carry (IdleAfter, MaxPendingReplies).
	TuneWS func(*ws.Config)
}

// App is the assembled process. Build it with New; Serve runs it; Shutdown stops it. Its methods
// are safe for concurrent use: the fields down to admin are set by New and only read after; mu
// guards the listeners and the lifecycle flags; Shutdown's result is written once, inside stopOnce.
type App struct {
	cfg      config.Config
	version  string // for the start line
	revision string
	log      *slog.Logger
	tel      *telemetry.Telemetry
	svc      *service.Service
	engine   io.Closer // the Redis engine, closed after the drain; nil with the memory engine
	ws       *ws.Server
	app      *http.Server
	admin    *http.Server // nil when the admin listener is off

	mu       sync.Mutex
	ln       net.Listener // the application listener, once Listen has bound it
	adminLn  net.Listener // the admin listener, once bound; nil when off
	serving  bool         // Serve has been called
	stopping bool         // Shutdown has begun: no more Listen or Serve

	stopOnce      sync.Once
	stopRequested chan struct{} // closed when Shutdown begins; Serve then stops waiting and returns
	stopErr       error         // Shutdown's result, written once inside stopOnce
}

// errStopped is returned by Listen and Serve once Shutdown has begun.
var errStopped = errors.New("app: shut down")

// New builds the whole process from cfg (as config.Load returns it) and starts nothing: no
// goroutine of its own, no listener. Errors of the configuration or of the telemetry setup (a bad
// OTEL_* variable) are *config.Error.
func New(cfg config.Config, opts Options) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// The secrets are read first: a key file that cannot be used is a configuration error (exit 2),
	// found before anything else is built.
	authn, err := auth.Load(auth.Settings{APIKey: cfg.Auth.APIKey, KeysFile: cfg.Auth.KeysFile, TokenKeyFile: cfg.Auth.TokenKeyFile})
	if err != nil {
		return nil, &config.Error{Msg: err.Error()}
	}
	// The replica id is chosen before telemetry is built: it names the process on every log
	// record and span (service.instance.id), not only in the engine.
	replica := ""
	if cfg.Backplane.Redis() {
		replica = cfg.Backplane.ReplicaID
		if replica == "" {
			replica = redis.DefaultReplicaID()
		}
	}
	tel, err := telemetry.Setup(context.Background(), telemetry.Config{
		ServiceName: "pubsub", Replica: replica, Build: telemetry.BuildInfo{Version: opts.Version, Revision: opts.Revision},
		Labels:   telemetry.Labels{Codes: wire.Codes, ClientTypes: wire.ClientTypes, ServerTypes: wire.ServerTypes},
		LogLevel: cfg.LogLevel, LogFormat: cfg.LogFormat, LogOutput: opts.LogOutput,
		DeliverySpans: cfg.DeliverySpans, Getenv: opts.Getenv,
		SpanProcessor: opts.SpanProcessor, Sampler: opts.Sampler,
	})
	if err != nil {
		return nil, &config.Error{Msg: err.Error()}
	}
	topicCfg := domain.TopicConfig{
		HistorySize: cfg.HistorySize, QueueSize: cfg.MaxQueueSize, Policy: cfg.OverflowPolicy, Encoder: wire.EventEncoder,
		HistoryBytes: cfg.Limits.HistoryMaxBytes, QueueBytes: cfg.Limits.QueueMaxBytes,
		Events:    domain.NewBudget(cfg.Limits.EventMaxBytes),
		MaxTopics: cfg.Limits.MaxTopics, MaxSubscriptions: cfg.Limits.MaxSubscriptions,
	}
	broker, engine, err := newBroker(cfg, topicCfg, tel, replica)
	if err != nil {
		_ = tel.Shutdown(context.Background())
		return nil, err
	}
	svc := service.New(broker, service.Options{Observer: tel.Observer()})
	var api service.API = tel.Instrument(svc, wire.CodeOf)
	if opts.WrapAPI != nil {
		api = opts.WrapAPI(api)
	}
	wsCfg := ws.Config{
		PingInterval: cfg.PingInterval, PingTimeout: cfg.PingTimeout, Heartbeat: cfg.Heartbeat,
		WriteTimeout: cfg.WriteTimeout, MaxFrameBytes: cfg.MaxFrameBytes, AllowedOrigins: cfg.AllowedOrigins,
		PublishStallMax: cfg.PublishStallMax,
		Buffers:         domain.NewBudget(cfg.Limits.BufferMaxBytes),
		Auth:            authn,
		MessageTimeout:  cfg.Limits.MessageTimeout,
		Fields:          wire.Limits{MaxIDBytes: cfg.Limits.MaxIDBytes, MaxHeaderBytes: cfg.Limits.MaxHeaderBytes},
		MaxConnections:  cfg.Limits.MaxConnections, MaxConnectionsPerAddr: cfg.Limits.MaxConnectionsPerAddr,
		PublishRate: cfg.Limits.PublishRate, PublishBurst: cfg.Limits.PublishBurst,
		MaxSubscriptionsPerConn: cfg.Limits.MaxSubscriptionsPerConn,
		BatchMaxBytes:           cfg.Limits.BatchMaxBytes,
		ReplyMaxBytes:           cfg.Limits.ReplyMaxBytes,
	}
	if opts.TuneWS != nil {
		opts.TuneWS(&wsCfg)
	}
	wsServer := ws.NewServer(wsCfg, api, tel)
	// The gauges are read at every scrape, so they count this process only (no I/O); /health
	// serves the cluster's counts. pubsub_ready says what /readyz says.
	tel.Metrics.BindGauges(telemetry.Gauges{Connections: wsServer.Connections, ParkedReaders: wsServer.ParkedReaders,
		Topics: broker.LocalCounts, Ready: func() bool { return svc.Ready(context.Background()) == nil }})

	errorLog := slog.NewLogLogger(tel.Logger.Handler(), slog.LevelWarn)
	router := httpapi.NewRouter(httpapi.Options{API: api, Telemetry: tel, WS: wsServer, Ready: svc.Ready, Auth: authn,
		MaxBodyBytes: cfg.Limits.MaxBodyBytes, ListPageMax: cfg.Limits.ListPageMax})
	a := &App{
		cfg: cfg, version: opts.Version, revision: opts.Revision,
		log: tel.Logger, tel: tel, svc: svc, ws: wsServer, engine: engine,
		app: &http.Server{
			Handler: router,
			// Without these a client holds a connection (and its goroutine) for ever by sending
			// nothing, half a request, or keeping it idle. ReadTimeout also bounds /ws handshakes;
			// ws clears it on the upgraded socket.
			ReadHeaderTimeout: orDefault(cfg.Limits.HTTPReadHeaderTimeout, 10*time.Second),
			ReadTimeout:       cfg.Limits.HTTPReadTimeout,
			IdleTimeout:       cfg.Limits.HTTPIdleTimeout,
			MaxHeaderBytes:    cfg.Limits.HTTPMaxHeaderBytes,
			ErrorLog:          errorLog,
		},
		stopRequested: make(chan struct{}),
	}
	if cfg.AdminAddr != "" {
		// The web console serves the application's own router (REST and /ws) to its page, so
		// the page and the API share the admin origin (see internal/transport/console).
		var con http.Handler
		if !cfg.ConsoleDisabled {
			engineName := "memory"
			if cfg.Backplane.Redis() {
				engineName = "redis"
			}
			con = console.Handler(console.Options{App: router, Auth: authn, Replicas: svc.Replicas, Engine: engineName, Telemetry: tel})
		}
		a.admin = &http.Server{Handler: adminMux(tel, cfg.PprofEnabled, con), ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout: time.Minute, IdleTimeout: time.Minute, ErrorLog: errorLog}
	}
	return a, nil
}

// newBroker builds the engine cfg chooses: memory (the default), or Redis as replica (whose id
// telemetry already puts on every log record and span). It returns the engine's closer (nil for
// memory). A Redis that cannot be reached at start is an error (not a configuration error: exit
// status 1).
func newBroker(cfg config.Config, topicCfg domain.TopicConfig, tel *telemetry.Telemetry, replica string) (service.Broker, io.Closer, error) {
	if !cfg.Backplane.Redis() {
		return memory.New(topicCfg), nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*orDefault(cfg.Backplane.RedisTimeout, 2*time.Second))
	defer cancel()
	e, err := redis.New(ctx, topicCfg, redis.Options{
		URL: cfg.Backplane.RedisURL, SentinelMaster: cfg.Backplane.SentinelMaster, SentinelAddrs: cfg.Backplane.SentinelAddrs,
		Timeout: cfg.Backplane.RedisTimeout, Replica: replica,
		Observer: tel.Backplane(), Logger: tel.Logger,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("redis engine: %w", err)
	}
	return e, e, nil
}

// Telemetry returns the process's telemetry (its registry, logger and tracer), for tests.
func (a *App) Telemetry() *telemetry.Telemetry { return a.tel }

// Service returns the service behind the transports, for tests.
func (a *App) Service() *service.Service { return a.svc }

// WebSocket returns the /ws server, for tests. The app starts and shuts it down.
func (a *App) WebSocket() *ws.Server { return a.ws }

// Addr returns the application listener's address (host:port) once Listen has bound it, else "".
func (a *App) Addr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ln == nil {
		return ""
	}
	return a.ln.Addr().String()
}

// AdminAddr returns the admin listener's address once Listen has bound it, else "" (and always ""
// when the admin listener is off).
func (a *App) AdminAddr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.adminLn == nil {
		return ""
	}
	return a.adminLn.Addr().String()
}

// Listen binds the application listener (cfg.Addr()) and, unless it is off, the admin listener.
// Serve calls it when nobody has; calling it first tells the caller the bound addresses (port 0
// picks a free one) before anything is served. Connections that arrive before Serve wait in the
// kernel's backlog. An address that cannot be bound is an error naming the listener, after which
// nothing is left bound. Once the listeners are bound, Listen does nothing.
func (a *App) Listen() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopping {
		return errStopped
	}
	if a.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", a.cfg.Addr())
	if err != nil {
		return fmt.Errorf("app listener: %w", err) // net's error names the address
	}
	if a.admin != nil {
		adminLn, err := net.Listen("tcp", a.cfg.AdminAddr)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("admin listener: %w", err)
		}
		a.adminLn = adminLn
	}
	a.ln = ln
	return nil
}

// Serve listens (unless Listen was called), starts the WebSocket server and the HTTP servers, and
// blocks until ctx ends, Shutdown is called, or a listener fails. Then it runs Shutdown and returns
// once every goroutine it started has ended. It returns nil after a stop that ctx or Shutdown
// asked for, and an error naming the listener when one could not be bound or failed while
// serving. Call it once.
func (a *App) Serve(ctx context.Context) error {
	a.mu.Lock()
	again, stopping := a.serving, a.stopping
	a.serving = true
	a.mu.Unlock()
	switch {
	case again:
		return errors.New("app: Serve called twice")
	case stopping:
		return errStopped
	}
	// Shutdown gets a context of its own: ctx has ended when the stop is asked for that way, and
	// the stop has its own bounds (the drain timeout and the telemetry flush).
	stopCtx := context.WithoutCancel(ctx)
	if err := a.Listen(); err != nil {
		a.log.Error("cannot listen; shutting down", "error", err.Error())
		_ = a.Shutdown(stopCtx)
		return err
	}

	a.mu.Lock()
	ln, adminLn := a.ln, a.adminLn
	a.mu.Unlock()
	a.ws.Start()
	failed := make(chan error, 2) // one per server: a send never blocks
	var wg sync.WaitGroup
	wg.Go(func() { a.serve("app", a.app, ln, failed) })
	if adminLn != nil {
		wg.Go(func() { a.serve("admin", a.admin, adminLn, failed) })
		a.log.Info("admin listening", "addr", adminLn.Addr().String())
	}
	a.log.Info("pubsubd started", "addr", ln.Addr().String(), "version", a.version, "revision", a.revision,
		"config", a.cfg, "tracing", a.tel.TracingEnabled())

	var err error
	select {
	case <-ctx.Done():
		a.log.Info("shutdown requested; draining", "drain_timeout", a.cfg.DrainTimeout.String())
	case <-a.stopRequested:
	case err = <-failed:
		a.log.Error("listener failed; shutting down", "error", err.Error())
	}
	_ = a.Shutdown(stopCtx) // it logs what went wrong; a stop that was asked for is still clean
	wg.Wait()
	return err
}

// serve runs srv on ln until srv is shut down or closed, and reports on failed a listener that
// fails (an Accept error net/http does not retry) or a panic in srv.Serve itself. Panics in
// handlers never get here: httpapi recovers them per request.
func (a *App) serve(name string, srv *http.Server, ln net.Listener, failed chan<- error) {
	defer func() {
		if v := recover(); v != nil {
			failed <- a.recovered(name+" listener", v)
		}
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		failed <- fmt.Errorf("%s listener %s: %w", name, ln.Addr(), err)
	}
}

// recovered logs a panic that reached the top of a goroutine the app started and returns it as an
// error, so that the process stops instead of running without the goroutine. Every such goroutine
// comes through here, and is counted in pubsub_panics_total.
func (a *App) recovered(where string, v any) error {
	a.log.Error("panic; shutting down", "where", where, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	a.tel.Metrics.Panicked(telemetry.PanicHTTP)
	return fmt.Errorf("%s: panic: %v", where, v)
}

// restGrace bounds how long Shutdown waits for REST requests in flight once the WebSocket drain is
// over: every REST operation is quick, so only a client that is slow to send can need longer.
const restGrace = time.Second

// orDefault is d, or def when d is zero (a Config built without Load).
func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// flushTimeout bounds the telemetry flush at the end of Shutdown.
const flushTimeout = 2 * time.Second

// Shutdown stops the process in the order of the protocol's graceful shutdown: readiness turns false
// and new operations are refused; WebSocket clients are drained (queued events flushed, then
// server_shutdown and close 1001) and new upgrades refused; the application listener closes; spans
// are flushed; the admin listener closes last, so metrics can be scraped until the end. The drain
// and the application listener's close share the drain timeout (or ctx, if it ends sooner); the
// flush has up to two seconds of its own, whatever ctx says, so that spans are not lost.
//
// Shutdown may be called whether or not Serve has run, and more than once: a later or concurrent
// call waits for the first and returns its result. It returns what went wrong (a drain cut short,
// a failed flush) joined; the process has stopped either way.
func (a *App) Shutdown(ctx context.Context) error {
	a.stopOnce.Do(func() {
		a.mu.Lock()
		a.stopping = true
		ln, adminLn := a.ln, a.adminLn
		a.mu.Unlock()
		close(a.stopRequested)
		a.stopErr = a.shutdown(ctx, ln, adminLn)
	})
	return a.stopErr
}

func (a *App) shutdown(ctx context.Context, ln, adminLn net.Listener) error {
	start := time.Now()
	var errs []error
	drainCtx, cancel := context.WithTimeout(ctx, a.cfg.DrainTimeout)
	defer cancel()

	a.svc.BeginDrain()
	if err := a.ws.Shutdown(drainCtx); err != nil {
		a.log.Warn("drain timed out; remaining connections were cut", "error", err.Error())
		errs = append(errs, fmt.Errorf("drain: %w", err))
	}
	// The WebSocket clients are gone; what is left are REST requests. Those in flight get a short
	// grace; idle keep-alives are closed at once, and a client still sending half a request is cut
	// at the end of the grace instead of holding the whole stop until its read timeout.
	restCtx, cancelREST := context.WithTimeout(drainCtx, restGrace)
	defer cancelREST()
	if err := a.app.Shutdown(restCtx); err != nil {
		_ = a.app.Close()
	}
	if ln != nil {
		_ = ln.Close() // bound but never served: http.Server does not know it
	}

	// The connections are drained: the engine's subscriptions are gone with them. It stops its
	// goroutines and takes this replica's counts out of Redis.
	if a.engine != nil {
		if err := a.engine.Close(); err != nil {
			errs = append(errs, fmt.Errorf("engine: %w", err))
		}
	}

	flushCtx, cancelFlush := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
	defer cancelFlush()
	if err := a.tel.Shutdown(flushCtx); err != nil {
		a.log.Warn("telemetry flush failed", "error", err.Error())
		errs = append(errs, fmt.Errorf("telemetry flush: %w", err))
	}

	if a.admin != nil {
		_ = a.admin.Close()
	}
	if adminLn != nil {
		_ = adminLn.Close()
	}
	a.log.Info("pubsubd stopped", "took", time.Since(start).Round(time.Millisecond).String())
	return errors.Join(errs...)
}

// adminMux serves metrics, the web console (con; nil when it is off) and profiles on their own listener, never on http.DefaultServeMux, so
// they can be kept off the public port.
// Profiles are mounted only when pprof is enabled (PUBSUB_PPROF): they reveal the process's
// memory and code, and a CPU profile or trace costs CPU while it runs.
func adminMux(tel *telemetry.Telemetry, pprofEnabled bool, con http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	if con != nil {
		mux.Handle(console.Prefix, con)
		mux.Handle("/console", http.RedirectHandler(console.Prefix, http.StatusFound))
	}
	mux.Handle("/metrics", promhttp.HandlerFor(tel.Metrics.Registry, promhttp.HandlerOpts{
		EnableOpenMetrics: true, Registry: tel.Metrics.Registry, ErrorLog: slog.NewLogLogger(tel.Logger.Handler(), slog.LevelWarn),
	}))
	if !pprofEnabled {
		return mux
	}
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
