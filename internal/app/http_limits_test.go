package app_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pubsubd/pubsub/internal/app"
	"github.com/pubsubd/pubsub/internal/config"
)

// holdKinds are the ways a client holds a REST connection without finishing with it.
var holdKinds = []string{
	"",                                   // connects and sends nothing
	"GET /livez HTTP/1.1\r\nHost: x\r\n", // headers never finished
	"POST /topics HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"na", // body never finished
	"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n", // a whole request, then idle on keep-alive
}

// hold opens n connections to addr, of every kind in turn.
func hold(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := range n {
		c, err := net.DialTimeout("tcp", addr, waitFor)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
		if k := holdKinds[i%len(holdKinds)]; k != "" {
			if _, err := io.WriteString(c, k); err != nil {
				t.Fatal(err)
			}
		}
	}
	return conns
}

// closedByServer reads c until the server closes it (an end or a reset), within the deadline.
func closedByServer(c net.Conn, deadline time.Time) bool {
	_ = c.SetReadDeadline(deadline)
	_, err := io.Copy(io.Discard, bufio.NewReader(c))
	return !errors.Is(err, os.ErrDeadlineExceeded)
}

// memInUse is the heap and the goroutine stacks in use.
func memInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

// TestRESTListenerTimeouts: 1,100 connections that send nothing, half a request, half a body, or
// sit idle on keep-alive do not stop /livez from answering, cost a bounded amount of memory, and
// are all closed by the listener's timeouts, their goroutines gone.
func TestRESTListenerTimeouts(t *testing.T) {
	r := start(t, testConfig(t, "-http-read-header-timeout=3s", "-http-read-timeout=3s", "-http-idle-timeout=3s"), app.Options{})
	c := newClient(t)
	if code, _ := get(t, c, "http://"+r.Addr()+"/livez"); code != http.StatusOK {
		t.Fatalf("/livez: %d", code)
	}
	goroutines, mem := runtime.NumGoroutine(), memInUse()
	opened := time.Now()
	conns := hold(t, r.Addr(), 1100)
	t.Logf("1100 connections opened in %v", time.Since(opened))
	began := time.Now()
	if code, _ := get(t, c, "http://"+r.Addr()+"/livez"); code != http.StatusOK {
		t.Fatalf("/livez with 1100 connections held: %d", code)
	}
	t.Logf("/livez with 1100 connections held answered in %v", time.Since(began))
	grown := int64(memInUse()) - int64(mem)
	t.Logf("1100 held connections: +%d KiB heap and stacks (client and server sides), %d goroutines more",
		grown>>10, runtime.NumGoroutine()-goroutines)
	if grown > 64<<20 {
		t.Errorf("1100 held connections cost %d MiB, want under 64 MiB", grown>>20)
	}

	deadline := time.Now().Add(waitFor)
	for i, conn := range conns {
		if !closedByServer(conn, deadline) {
			t.Fatalf("connection %d (kind %d) was not closed by the server", i, i%len(holdKinds))
		}
	}
	t.Logf("all closed %v after they were opened", time.Since(opened))
	for runtime.NumGoroutine() > goroutines+10 {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines, %d before the connections", runtime.NumGoroutine(), goroutines)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition with a deadline
	}
	t.Logf("goroutines back to %d (%d before) %v after opening", runtime.NumGoroutine(), goroutines, time.Since(opened))
	if code, _ := get(t, c, "http://"+r.Addr()+"/livez"); code != http.StatusOK {
		t.Fatalf("/livez after: %d", code)
	}
}

// TestShutdownIsNotHeldByRESTClients: idle keep-alives and clients that never finish a request
// (the read timeout is the default 30s, the drain 20s) do not stretch a shutdown: it ends soon
// after the WebSocket drain, not at the drain timeout.
func TestShutdownIsNotHeldByRESTClients(t *testing.T) {
	r := start(t, testConfig(t, "-drain-timeout=20s"), app.Options{})
	conns := hold(t, r.Addr(), 40)
	// The whole requests have their answers: they are idle keep-alives now.
	for i := 3; i < len(conns); i += len(holdKinds) {
		br := bufio.NewReader(conns[i])
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	began := time.Now()
	r.cancel()
	if err := r.wait(t); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	took := time.Since(began)
	t.Logf("shutdown with 40 REST connections held took %v", took)
	if took > 5*time.Second {
		t.Errorf("shutdown took %v, want well under the 20s drain timeout", took)
	}
}

// TestAdminListenerDefaults: the admin listener is on loopback unless configured, and serves
// /debug/pprof only when PUBSUB_PPROF is on; metrics are served either way.
func TestAdminListenerDefaults(t *testing.T) {
	cfg, err := config.Load(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if host, _, _ := net.SplitHostPort(cfg.AdminAddr); host != "127.0.0.1" || cfg.PprofEnabled {
		t.Fatalf("default admin address %q, pprof %v: want loopback, off", cfg.AdminAddr, cfg.PprofEnabled)
	}
	for _, pprof := range []bool{false, true} {
		flags := []string{}
		if pprof {
			flags = append(flags, "-pprof=true")
		}
		r := start(t, testConfig(t, flags...), app.Options{})
		c := newClient(t)
		admin := "http://" + r.AdminAddr()
		if !strings.HasPrefix(r.AdminAddr(), "127.0.0.1:") {
			t.Errorf("admin listener on %s", r.AdminAddr())
		}
		if code, _ := get(t, c, admin+"/metrics"); code != http.StatusOK {
			t.Errorf("pprof=%v: /metrics %d", pprof, code)
		}
		want := http.StatusNotFound
		if pprof {
			want = http.StatusOK
		}
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline"} {
			if code, _ := get(t, c, admin+path); code != want {
				t.Errorf("pprof=%v: %s %d, want %d", pprof, path, code, want)
			}
		}
	}
}
