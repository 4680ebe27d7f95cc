// Command pubsubd is the pub/sub service: WebSocket /ws and REST on one listener, /metrics and
// pprof on an admin listener. main loads the configuration and hands it to internal/app, which
// assembles the process and orders its shutdown. "pubsubd token ..." prints a signed token for a
// browser client instead (see token.go).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/pubsubd/pubsub/internal/app"
	"github.com/pubsubd/pubsub/internal/config"
)

// Set by the build (-ldflags "-X main.version=... -X main.revision=...").
var (
	version  = "dev"
	revision = "unknown"
)

// main exits 0 on a clean stop or -h, 2 on a configuration error, 1 on anything else (a listener
// that cannot be bound or that fails while serving among them).
func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	var err error
	if len(os.Args) > 1 && os.Args[1] == "token" {
		err = mintToken(os.Args[2:], os.Stdout, os.Stderr)
	} else {
		err = run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	}
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

// run serves until ctx ends, then shuts down in order (see app.App.Shutdown). out receives the
// usage (-h) and the logs. It returns nil after a clean stop, and an error when the configuration
// is refused or a listener cannot be bound or fails.
func run(ctx context.Context, args []string, getenv func(string) string, out io.Writer) error {
	cfg, err := config.Load(args, getenv, out)
	if err != nil {
		return err
	}
	a, err := app.New(cfg, app.Options{Version: version, Revision: revision, LogOutput: out, Getenv: getenv})
	if err != nil {
		return err
	}
	return a.Serve(ctx)
}
