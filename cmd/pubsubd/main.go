// Command pubsubd is the pub/sub service: WebSocket /ws and REST on one listener, /metrics and
// pprof on an admin listener. main only wires the layers together and orders the shutdown.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pubsubd/pubsub/internal/broker/memory"
	"github.com/pubsubd/pubsub/internal/config"
	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/service"
	"github.com/pubsubd/pubsub/internal/transport/httpapi"
	"github.com/pubsubd/pubsub/internal/transport/wire"
	"github.com/pubsubd/pubsub/internal/transport/ws"
	"github.com/pubsubd/pubsub/telemetry"
)

// Set by the build (-ldflags "-X main.version=... -X main.revision=...").
var (
	version  = "dev"
	revision = "unknown"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	var cfgErr *config.Error
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.As(err, &cfgErr):
		fmt.Fprintln(os.Stderr, "pubsubd: configuration:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "pubsubd:", err)
		os.Exit(1)
	}
}

// run starts the service and blocks until ctx ends, then shuts down in order: readiness false and
// new work refused, WebSocket clients drained and closed, listeners closed, telemetry flushed.
func run(ctx context.Context, args []string, getenv func(string) string, logOut io.Writer) error {
	cfg, err := config.Load(args, getenv, logOut)
	if err != nil {
		return err
	}
	tel, err := telemetry.Setup(ctx, telemetry.Config{
		ServiceName: "pubsub", Build: telemetry.BuildInfo{Version: version, Revision: revision},
		Labels:   telemetry.Labels{Codes: wire.Codes, ClientTypes: wire.ClientTypes, ServerTypes: wire.ServerTypes},
		LogLevel: cfg.LogLevel, LogFormat: cfg.LogFormat, LogOutput: logOut,
		DeliverySpans: cfg.DeliverySpans, Getenv: getenv,
	})
	if err != nil {
		return &config.Error{Msg: err.Error()}
	}
	log := tel.Logger

	broker := memory.New(domain.TopicConfig{
		HistorySize: cfg.HistorySize, QueueSize: cfg.MaxQueueSize, Policy: cfg.OverflowPolicy, Encoder: wire.EncodeEvent,
	})
	svc := service.New(broker, service.Options{Observer: tel.Observer()})
	api := tel.Instrument(svc, wire.CodeOf)
	wsServer := ws.NewServer(ws.Config{
		PingInterval: cfg.PingInterval, PingTimeout: cfg.PingTimeout, Heartbeat: cfg.Heartbeat,
		WriteTimeout: cfg.WriteTimeout, MaxFrameBytes: cfg.MaxFrameBytes, AllowedOrigins: cfg.AllowedOrigins,
	}, api, tel)
	wsServer.Start()
	tel.Metrics.BindGauges(telemetry.Gauges{Connections: wsServer.Connections, ParkedReaders: wsServer.ParkedReaders, Topics: broker.Counts, Ready: svc.Ready})

	appLn, err := net.Listen("tcp", cfg.Addr())
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Addr(), err)
	}
	app := &http.Server{
		Handler:           httpapi.NewRouter(httpapi.Options{API: api, Telemetry: tel, WS: wsServer, Ready: svc.Ready}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 2)
	go func() { errc <- serve(app, appLn) }()

	var admin *http.Server
	if cfg.AdminAddr != "" {
		adminLn, err := net.Listen("tcp", cfg.AdminAddr)
		if err != nil {
			_ = appLn.Close()
			return fmt.Errorf("listen %s (admin): %w", cfg.AdminAddr, err)
		}
		admin = &http.Server{Handler: adminMux(tel), ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- serve(admin, adminLn) }()
		log.Info("admin listening", "addr", adminLn.Addr().String())
	}
	log.Info("pubsubd started", "addr", appLn.Addr().String(), "version", version, "config", cfg,
		"tracing", tel.TracingEnabled())

	select {
	case <-ctx.Done():
		log.Info("shutdown requested; draining", "drain_timeout", cfg.DrainTimeout.String())
	case err := <-errc:
		log.Error("listener failed; shutting down", "error", err.Error())
	}
	return shutdown(cfg.DrainTimeout, log, svc, wsServer, app, admin, tel)
}

func serve(s *http.Server, ln net.Listener) error {
	if err := s.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// shutdown runs the ordered, bounded stop of PROTOCOL.md. The whole of it fits in the drain
// timeout, so the process exits well before a Kubernetes grace period that is longer.
func shutdown(drain time.Duration, log *slog.Logger, svc *service.Service, wsServer *ws.Server,
	app, admin *http.Server, tel *telemetry.Telemetry) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	svc.BeginDrain() // readiness false, new operations refused
	if err := wsServer.Shutdown(ctx); err != nil {
		log.Warn("drain timed out; remaining connections were cut", "error", err.Error())
	}
	if err := app.Shutdown(ctx); err != nil {
		_ = app.Close()
	}
	flushCtx, cancelFlush := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancelFlush()
	if err := tel.Shutdown(flushCtx); err != nil {
		log.Warn("telemetry flush failed", "error", err.Error())
	}
	if admin != nil {
		_ = admin.Close()
	}
	log.Info("pubsubd stopped", "took", time.Since(start).Round(time.Millisecond).String())
	return nil
}

// adminMux serves metrics and profiles on their own listener, never on http.DefaultServeMux, so
// they can be kept off the public port.
func adminMux(tel *telemetry.Telemetry) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(tel.Metrics.Registry, promhttp.HandlerOpts{
		EnableOpenMetrics: true, Registry: tel.Metrics.Registry, ErrorLog: slog.NewLogLogger(tel.Logger.Handler(), slog.LevelWarn),
	}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
