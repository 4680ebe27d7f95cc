package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pubsubd/pubsub/internal/app"
	"github.com/pubsubd/pubsub/internal/config"
	"github.com/pubsubd/pubsub/internal/logbuffer"
)

// Every test runs pubsubctl's run in process against real servers built with internal/app; goleak
// proves that tail and publish leave no goroutine behind when they end.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitFor bounds every wait: long enough for a loaded 2-core machine under -race.
const waitFor = 20 * time.Second

// server is one in-process pubsubd.
type server struct {
	t      *testing.T
	flags  []string
	port   int
	a      *app.App
	logs   *logbuffer.Buffer
	cancel context.CancelFunc
	served chan error
}

// startServer starts a server on a free loopback port with flags on top of the test defaults.
func startServer(t *testing.T, flags ...string) *server {
	t.Helper()
	s := &server{t: t, flags: flags}
	s.start()
	t.Cleanup(s.stop)
	return s
}

// start (re)starts the server, on the port it had before if it had one.
func (s *server) start() {
	s.t.Helper()
	args := append([]string{"-host=127.0.0.1", "-port=" + strconv.Itoa(s.port), "-admin-addr=off",
		"-log-format=json", "-drain-timeout=2s"}, s.flags...)
	cfg, err := config.Load(args, func(string) string { return "" }, io.Discard)
	if err != nil {
		s.t.Fatal(err)
	}
	s.logs = &logbuffer.Buffer{}
	a, err := app.New(cfg, app.Options{LogOutput: s.logs})
	if err != nil {
		s.t.Fatal(err)
	}
	if err := a.Listen(); err != nil {
		s.t.Fatal(err)
	}
	_, p, _ := net.SplitHostPort(a.Addr())
	s.port, _ = strconv.Atoi(p)
	ctx, cancel := context.WithCancel(context.Background())
	s.a, s.cancel, s.served = a, cancel, make(chan error, 1)
	go func() { s.served <- a.Serve(ctx) }()
}

// stop shuts the server down (gracefully: clients get server_shutdown and a 1001 close).
func (s *server) stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	select {
	case err := <-s.served:
		if err != nil {
			s.t.Errorf("server: %v", err)
		}
	case <-time.After(waitFor):
		s.t.Error("the server did not stop in time")
	}
	s.cancel = nil
	if s.t.Failed() {
		s.t.Logf("server log:\n%s", s.logs.Tail(4000))
	}
}

func (s *server) url() string { return "http://" + s.a.Addr() }

// buffer is a logbuffer that tells waiters when something was written.
type buffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced at every write
}

func newBuffer() *buffer { return &buffer{changed: make(chan struct{})} }

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.changed)
	b.changed = make(chan struct{})
	return b.buf.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitUntil waits until cond holds for what was written, failing the test at the deadline.
func (b *buffer) waitUntil(t *testing.T, what string, cond func(string) bool) string {
	t.Helper()
	deadline := time.NewTimer(waitFor)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		s, ch := b.buf.String(), b.changed
		b.mu.Unlock()
		if cond(s) {
			return s
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("waiting for %s; got:\n%s", what, s)
		}
	}
}

func (b *buffer) waitFor(t *testing.T, substr string) string {
	t.Helper()
	return b.waitUntil(t, fmt.Sprintf("%q", substr), func(s string) bool { return strings.Contains(s, substr) })
}

// result is one finished run of pubsubctl.
type result struct {
	code           int
	stdout, stderr string
}

// ctl runs pubsubctl with args, env as its environment (nil: empty) and stdin, and returns what it
// did. The command must end by itself within waitFor.
func ctl(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	var out, errOut bytes.Buffer
	code := run(ctx, args, func(k string) string { return env[k] }, strings.NewReader(stdin), &out, &errOut)
	if ctx.Err() != nil {
		t.Fatalf("pubsubctl %q did not end in time; stderr:\n%s", args, errOut.String())
	}
	return result{code, out.String(), errOut.String()}
}

// must runs pubsubctl and fails the test unless it exits with want.
func must(t *testing.T, want int, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	r := ctl(t, env, stdin, args...)
	if r.code != want {
		t.Fatalf("pubsubctl %q: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", args, r.code, want, r.stdout, r.stderr)
	}
	return r
}

// background is a pubsubctl running in a goroutine (tail, or an endless publish).
type background struct {
	stdout, stderr *buffer
	cancel         context.CancelFunc
	done           chan int
}

func start(t *testing.T, env map[string]string, args ...string) *background {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b := &background{stdout: newBuffer(), stderr: newBuffer(), cancel: cancel, done: make(chan int, 1)}
	go func() {
		b.done <- run(ctx, args, func(k string) string { return env[k] }, strings.NewReader(""), b.stdout, b.stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-b.done:
		case <-time.After(waitFor):
			t.Errorf("pubsubctl %q did not end after Ctrl-C", args)
		}
	})
	return b
}

// interrupt is Ctrl-C: it returns the exit status.
func (b *background) interrupt(t *testing.T) int {
	t.Helper()
	b.cancel()
	return b.wait(t)
}

// wait returns the exit status once the command ends by itself.
func (b *background) wait(t *testing.T) int {
	t.Helper()
	select {
	case code := <-b.done:
		b.done <- code // for the cleanup
		return code
	case <-time.After(waitFor):
		t.Fatalf("pubsubctl did not end; stderr:\n%s", b.stderr.String())
		return -1
	}
}

// jsonLines decodes every line of out into a T, failing on any line that is not one.
func jsonLines[T any](t *testing.T, out string) []T {
	t.Helper()
	var all []T
	for line := range strings.Lines(out) {
		var v T
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("line %q is not the documented JSON: %v", line, err)
		}
		all = append(all, v)
	}
	return all
}

// events waits for n event lines (-o json) on b's stdout and returns them.
func (b *background) events(t *testing.T, n int) []eventLine {
	t.Helper()
	out := b.stdout.waitUntil(t, fmt.Sprintf("%d events", n), func(s string) bool { return strings.Count(s, "\n") >= n })
	return jsonLines[eventLine](t, out)
}
