package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/pubsubd/pubsub/internal/app"
	"github.com/pubsubd/pubsub/internal/auth"
	"github.com/pubsubd/pubsub/internal/config"
	"github.com/pubsubd/pubsub/internal/logbuffer"
)

// waitFor bounds every wait: long enough for a loaded 2-core machine running a browser.
const waitFor = 30 * time.Second

const apiKey = "console-browser-test-key-0123456789"

// chromium finds Debian's chromium (PUBSUB_CHROMIUM may name another binary), or skips the test
// with what to install: CI installs it (.ci/test), a developer's machine may not have it.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PUBSUB_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium on PATH: apt-get install chromium (or set PUBSUB_CHROMIUM) to run the console's browser test")
	return ""
}

// server is a whole pubsubd in process, authentication on, on free loopback ports.
type server struct {
	*app.App
	logs *logbuffer.Buffer
	cred http.Header // what the Go clients authenticate with
}

// startServer starts a server whose Go clients send cred, with flags besides the defaults.
func startServer(t *testing.T, cred http.Header, flags ...string) *server {
	t.Helper()
	cfg, err := config.Load(append([]string{"-host=127.0.0.1", "-port=0", "-admin-addr=127.0.0.1:0", "-log-format=json",
		// A small queue and a long write timeout: a subscriber that reads nothing overflows its
		// queue (a slow consumer) rather than being cut for a stalled write.
		"-max-queue-size=8", "-write-timeout=2m"}, flags...), func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	s := &server{logs: &logbuffer.Buffer{}, cred: cred}
	a, err := app.New(cfg, app.Options{LogOutput: s.logs})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Listen(); err != nil {
		t.Fatal(err)
	}
	s.App = a
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-served:
		case <-time.After(waitFor):
			t.Error("the server did not stop in time")
		}
		if t.Failed() {
			t.Logf("server log (end):\n%s", s.logs.Tail(8000))
		}
	})
	return s
}

func (s *server) createTopic(t *testing.T, name string) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+s.Addr()+"/topics", strings.NewReader(`{"name":"`+name+`"}`))
	for k, v := range s.cred {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create %s: %d", name, resp.StatusCode)
	}
}

// frame is what the Go clients read of a server frame.
type frame struct {
	Type    string `json:"type"`
	Topic   string `json:"topic"`
	Seq     uint64 `json:"seq"`
	Message struct {
		Payload json.RawMessage `json:"payload"`
	} `json:"message"`
	Error struct {
		Code, Message string
	} `json:"error"`
}

// client is a Go WebSocket client of the application listener, with the API key. Its frames are
// read by a goroutine of its own once read starts (a slow consumer's reader starts late).
type client struct {
	t      *testing.T
	conn   *websocket.Conn
	frames chan frame
	once   sync.Once
}

func dial(t *testing.T, s *server) *client {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: waitFor}
	conn, resp, err := d.Dial("ws://"+s.Addr()+"/ws", s.cred)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	c := &client{t: t, conn: conn, frames: make(chan frame, 1024)}
	t.Cleanup(func() { conn.Close() })
	return c
}

func (c *client) read() {
	c.once.Do(func() {
		go func() {
			defer close(c.frames)
			for {
				_, data, err := c.conn.ReadMessage()
				if err != nil {
					return
				}
				var f frame
				if json.Unmarshal(data, &f) == nil {
					c.frames <- f
				}
			}
		}()
	})
}

func (c *client) send(v any) {
	c.t.Helper()
	if err := c.conn.WriteJSON(v); err != nil {
		c.t.Fatal(err)
	}
}

// next returns the next frame of type typ, skipping others, within waitFor.
func (c *client) next(typ string) frame {
	c.t.Helper()
	c.read()
	deadline := time.After(waitFor)
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				c.t.Fatalf("connection ended waiting for a %s", typ)
			}
			if f.Type == typ {
				return f
			}
		case <-deadline:
			c.t.Fatalf("no %s frame in time", typ)
		}
	}
}

func (c *client) subscribe(topic, clientID string) {
	c.t.Helper()
	c.send(map[string]any{"type": "subscribe", "topic": topic, "client_id": clientID})
	if f := c.next("ack"); f.Topic != topic {
		c.t.Fatalf("subscribe ack %+v", f)
	}
}

// publish sends n messages without waiting for their acks (its reader drains them).
func (c *client) publish(topic string, payloads ...any) {
	c.t.Helper()
	c.read()
	for _, p := range payloads {
		c.send(map[string]any{"type": "publish", "topic": topic, "message": map[string]any{"id": uuid.NewString(), "payload": p}})
	}
}

// js evaluates expr in the page until it returns a truthy value, and decodes that value into T.
func js[T any](t *testing.T, ctx context.Context, what, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Poll[T](expr, chromedp.WithPollingTimeout(waitFor), chromedp.WithPollingInterval(50*time.Millisecond)))
	if err != nil {
		state, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("main") ? document.body.innerText : ""`))
		t.Fatalf("%s: %v\npage text:\n%s", what, err, state)
	}
	return v
}

// setValue sets an input's value as a script would (a form filled in before its submit button
// is clicked, which is what the test asserts on).
func setValue(id, value string) chromedp.Action[chromedp.Void] {
	arg, _ := json.Marshal(value)
	return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.getElementById(%q).value = %s`, id, arg))
}

// openConsole starts a headless Chromium with the flags CI uses and a fresh profile, and opens the
// console of s in it. The browser stops at the test's end.
func openConsole(t *testing.T, s *server) context.Context {
	t.Helper()
	bin := chromium(t)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(bin),
		chromedp.Flag("headless", true), chromedp.Flag("no-sandbox", true), chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true), chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 800))
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first Run starts the browser; it gets no deadline of its own (see chromedp.Run).
	do(t, ctx, "open the console", chromedp.Navigate("http://"+s.AdminAddr()+"/console/"))
	return ctx
}

func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// TestConsoleInChromium drives the console in a real headless Chromium against a real server
// with authentication on: the page signs in, shows the topics with their counts, tails a topic
// with last_n and shows its events in order, publishes from its form to a Go subscriber, and
// lists a slow consumer. With PUBSUB_CONSOLE_SCREENSHOT=path it saves a screenshot there (the
// README's).
func TestConsoleInChromium(t *testing.T) {
	s := startServer(t, http.Header{"X-Api-Key": {apiKey}}, "-api-key="+apiKey)
	s.createTopic(t, "orders")
	s.createTopic(t, "bulk")
	ctx := openConsole(t, s)

	// Authentication is on: the page asks for a credential and refuses a wrong one.
	do(t, ctx, "a wrong key", chromedp.WaitVisible(chromedp.ID("credential")),
		chromedp.SendKeys(chromedp.ID("credential"), "not-the-key-at-all"), chromedp.Click(chromedp.ID("login-btn")))
	js[string](t, ctx, "the refusal", `document.getElementById("login-error").textContent.includes("UNAUTHORIZED") && document.getElementById("login-error").textContent`)
	do(t, ctx, "the right key", setValue("credential", ""),
		chromedp.SendKeys(chromedp.ID("credential"), apiKey), chromedp.Click(chromedp.ID("login-btn")),
		chromedp.WaitVisible(chromedp.ID("main")))

	// Real traffic: a Go subscriber on orders, three messages before the console tails it.
	sub := dial(t, s)
	sub.subscribe("orders", "go-sub")
	pub := dial(t, s)
	pub.publish("orders", map[string]int{"n": 1}, map[string]int{"n": 2}, map[string]int{"n": 3})
	for range 3 {
		sub.next("event")
	}

	// The tail with last_n 2 replays seq 2 and 3, then follows live events in order.
	do(t, ctx, "start the tail", setValue("tail-topic", "orders"),
		setValue("tail-lastn", "2"), chromedp.Click(chromedp.ID("tail-start")))
	js[bool](t, ctx, "the tail's ack", `document.getElementById("tail-state").textContent.startsWith("tailing orders")`)
	pub.publish("orders", map[string]int{"n": 4}, map[string]int{"n": 5}, map[string]int{"n": 6})
	for range 3 {
		sub.next("event")
	}
	tail := js[[]string](t, ctx, "the tail shows seq 2 to 6",
		`(() => { const l = [...document.querySelectorAll("#tail-events li[data-seq]")].map(li => li.dataset.seq + " " + li.querySelector(".payload").textContent);
		           return l.length >= 5 && l; })()`)
	want := []string{`2 {"n":2}`, `3 {"n":3}`, `4 {"n":4}`, `5 {"n":5}`, `6 {"n":6}`}
	if !slices.Equal(tail, want) {
		t.Fatalf("tail %q, want %q", tail, want)
	}

	// The topics table: counts from /stats, the console's own tail among the subscribers.
	js[bool](t, ctx, "orders' row: 6 messages, 2 subscribers",
		`(() => { const r = document.querySelector('#topics tr[data-topic="orders"]');
		           return r && r.querySelector(".messages").textContent === "6" && r.querySelector(".subscribers").textContent === "2"; })()`)
	js[bool](t, ctx, "a publish rate once two readings were taken",
		`/^\d+\.\d$/.test(document.querySelector('#topics tr[data-topic="orders"] .pubrate').textContent)`)
	js[bool](t, ctx, "the cluster: this process, in memory, two topics",
		`document.getElementById("engine").textContent === "memory" && document.getElementById("total-topics").textContent === "2" &&
		 document.querySelectorAll("#replicas tbody tr").length === 1`)

	// The publish form's message reaches the Go subscriber (and the tail).
	do(t, ctx, "publish from the form", setValue("pub-topic", "orders"),
		setValue("pub-payload", `{"from":"console"}`), chromedp.Click(chromedp.ID("pub-send")))
	if ev := sub.next("event"); ev.Seq != 7 || string(ev.Message.Payload) != `{"from":"console"}` {
		t.Fatalf("the Go subscriber got seq %d payload %s, want 7 {\"from\":\"console\"}", ev.Seq, ev.Message.Payload)
	}
	js[bool](t, ctx, "the form says published", `document.getElementById("pub-status").textContent.startsWith("published")`)
	js[bool](t, ctx, "the tail shows the form's message", `!!document.querySelector('#tail-events li[data-seq="7"]')`)

	// A slow consumer: it reads nothing while ~20 MB are published (more than the socket buffers
	// hold), so its queue of 8 overflows; once it has read everything, its episode ends and the
	// console lists it.
	slow := dial(t, s)
	slow.send(map[string]any{"type": "subscribe", "topic": "bulk", "client_id": "slow-sub"})
	big := strings.Repeat("x", 32<<10)
	const n = 600
	payloads := make([]any, n)
	for i := range payloads {
		payloads[i] = big
	}
	pub.publish("bulk", payloads...)
	for {
		if f := slow.next("event"); f.Seq == n {
			break
		}
	}
	row := js[[]string](t, ctx, "the slow consumer in the incidents",
		`(() => { const r = document.querySelector('#incidents tr[data-kind="slow_consumer"]');
		           return r && [...r.cells].map(c => c.textContent); })()`)
	if row[1] != "slow consumer (drop_oldest)" || row[2] != "bulk" || row[3] != "slow-sub" || row[4] == "" {
		t.Fatalf("incident row %q, want a drop_oldest slow consumer on bulk, slow-sub, with what it lost", row)
	}

	if path := os.Getenv("PUBSUB_CONSOLE_SCREENSHOT"); path != "" {
		pub.publish("orders", map[string]string{"order": "A-1042", "status": "paid"})
		js[bool](t, ctx, "the last event in the tail", `!!document.querySelector('#tail-events li[data-seq="8"]')`)
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s (%d bytes)", path, len(png))
	}
}

// TestConsoleWithAToken: a browser token (PUBSUB_TOKEN_KEY_FILE) signs the console in too: REST
// with Authorization: Bearer, and /ws with the token offered as the pubsub.token.<jwt>
// subprotocol, as any browser client does.
func TestConsoleWithAToken(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "token.key")
	if err := os.WriteFile(keyFile, []byte("a-token-signing-key-of-at-least-32-bytes"), 0o600); err != nil {
		t.Fatal(err)
	}
	tok, err := auth.TokenRequest{KeyFile: keyFile, Subject: "operator", TTL: time.Hour,
		Publish: "*", Subscribe: "*", Manage: true}.Mint(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, http.Header{"Authorization": {"Bearer " + tok}}, "-token-key-file="+keyFile)
	s.createTopic(t, "chat")
	ctx := openConsole(t, s)
	do(t, ctx, "sign in with the token", chromedp.WaitVisible(chromedp.ID("credential")),
		chromedp.SendKeys(chromedp.ID("credential"), tok), chromedp.Click(chromedp.ID("login-btn")),
		chromedp.WaitVisible(chromedp.ID("main")))
	do(t, ctx, "tail chat", setValue("tail-topic", "chat"), chromedp.Click(chromedp.ID("tail-start")))
	js[bool](t, ctx, "the tail's ack", `document.getElementById("tail-state").textContent.startsWith("tailing chat")`)

	pub := dial(t, s)
	pub.publish("chat", "hello")
	js[bool](t, ctx, "the tail shows the event", `(() => { const li = document.querySelector('#tail-events li[data-seq="1"]');
		return !!li && li.querySelector(".payload").textContent === '"hello"'; })()`)
	do(t, ctx, "publish from the form", setValue("pub-topic", "chat"), setValue("pub-payload", "not json"),
		chromedp.Click(chromedp.ID("pub-send")))
	js[bool](t, ctx, "the form's message in the tail, as a JSON string", `(() => { const li = document.querySelector('#tail-events li[data-seq="2"]');
		return !!li && li.querySelector(".payload").textContent === '"not json"'; })()`)
	js[bool](t, ctx, "the cluster read with the token", `document.querySelectorAll("#replicas tbody tr").length === 1`)
}
