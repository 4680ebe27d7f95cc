//go:build linux

package main

import (
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStaticBinaryAndCtrlC builds pubsubctl as the Dockerfile does (CGO_ENABLED=0), checks that it
// is static (no ELF interpreter, so it runs on a distroless image or anywhere), and that the
// real process ends tail on SIGINT with exit 0 and its summary: main's signal handling, which the
// in-process tests cannot reach.
func TestStaticBinaryAndCtrlC(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := filepath.Join(t.TempDir(), "pubsubctl")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("pubsubctl needs a dynamic loader: it is not static")
		}
	}
	f.Close()

	s := startServer(t)
	must(t, 0, map[string]string{"PUBSUB_URL": s.url()}, "", "topics", "create", "orders")
	cmd := exec.Command(bin, "tail", "orders")
	cmd.Env = append(os.Environ(), "PUBSUB_URL="+s.url())
	stdout, stderr := newBuffer(), newBuffer()
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	stderr.waitFor(t, "subscribed to orders")
	must(t, 0, map[string]string{"PUBSUB_URL": s.url()}, "", "publish", "orders", "hi")
	stdout.waitFor(t, `#1  "hi"`)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("tail after SIGINT: exit %d, want 0; stderr:\n%s", ee.ExitCode(), stderr.String())
		} else if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitFor):
		t.Fatalf("tail did not end after SIGINT; stderr:\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "tail ended: 1 event(s) from orders") {
		t.Errorf("no summary after SIGINT: %q", stderr.String())
	}
}
