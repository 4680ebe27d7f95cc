// Command pubsub-bench drives a running pubsub service over its real
// protocol (REST to create topics, WebSocket frames on /ws) and reports
// throughput, publish-ack and end-to-end latency percentiles, exact loss,
// duplicates, reordering, seq gaps, errors by code and the server's CPU
// per million deliveries. Run it with -h for the scenarios and flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// The first signal ends publishing and the run still drains and
		// reports; restoring the default lets a second one kill it.
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole command: exit status 0 on a completed run, 1 when the
// run failed or -check found a broken invariant, 2 for bad flags.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseConfig(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "pubsub-bench: %v\n", err)
		return 2
	}
	// Every connection is a file descriptor; 20,000 of them exceed the
	// usual soft limit of 1024.
	need := uint64(cfg.Conns + cfg.Topics*(cfg.Pubs+cfg.Subs+cfg.SlowSubs+cfg.StalledSubs) + 64)
	if got, err := raiseFileLimit(need); err != nil || got < need {
		fmt.Fprintf(stderr, "pubsub-bench: warning: open-file limit %d is below the %d this run needs (%v); raise the hard limit (ulimit -Hn) or expect too_many_open_files errors\n", got, need, err)
	}
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(stderr, "pubsub-bench: -cpuprofile: %v\n", err)
			return 2
		}
		defer func() {
			pprof.StopCPUProfile()
			_ = f.Close()
		}()
	}
	r, err := newBench(cfg, stderr).run(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "pubsub-bench: %v\n", err)
		return 1
	}
	if cfg.JSON {
		err = r.writeJSON(stdout)
	} else {
		err = r.writeTable(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "pubsub-bench: %v\n", err)
		return 1
	}
	if cfg.Check && len(r.Violations) > 0 {
		return 1
	}
	return 0
}
