package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/websocket"
)

// fakeServer is a small in-process pubsub speaking PROTOCOL.md, so the
// bench's plumbing and accounting run end to end in `go test` without the
// real service. It implements drop_oldest queues (with the SLOW_CONSUMER
// notice and seq) and can inject faults the bench must catch. With several
// listeners (newFakeCluster) it is replicas sharing one state, as servers
// on one backplane are: a topic created through any is on all, and an
// event published through one reaches subscribers on every one.
type fakeServer struct {
	t        *testing.T
	srv      *httptest.Server   // the first replica
	srvs     []*httptest.Server // every replica
	queueCap int

	mu     sync.Mutex
	topics map[string]*fakeTopic
	// Per replica (its listener address): subscriptions taken, GET /topics
	// and /metrics requests served.
	subsOn    map[string]int
	listingOn map[string]int
	scrapesOn map[string]int

	// hideListings delays replication: replicas other than the first do
	// not list, and refuse subscribers to, any topic until they have
	// served that many GET /topics.
	hideListings int

	// Faults, applied to the first subscriber of each topic.
	skipSeq   int64 // never deliver this seq, silently
	dupSeq    int64 // deliver this seq twice
	leakTopic bool  // deliver each event to the first subscriber of every other topic too
}

type fakeTopic struct {
	name string
	seq  int64
	subs []*fakeConn
}

type fakeConn struct {
	ws   *websocket.Conn
	mu   sync.Mutex
	q    [][]byte
	drop int
	wake chan struct{}
}

func newFakeServer(t *testing.T, queueCap int) *fakeServer {
	return newFakeCluster(t, 1, queueCap)
}

// newFakeCluster starts n replicas of one fake service.
func newFakeCluster(t *testing.T, n, queueCap int) *fakeServer {
	f := &fakeServer{t: t, queueCap: queueCap, topics: map[string]*fakeTopic{},
		subsOn: map[string]int{}, listingOn: map[string]int{}, scrapesOn: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /topics", func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Name string }
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Name == "" {
			http.Error(w, `{"error":{"code":"BAD_REQUEST","message":"bad"}}`, http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.topics[body.Name] != nil {
			http.Error(w, `{"error":{"code":"TOPIC_EXISTS","message":"exists"}}`, http.StatusConflict)
			return
		}
		f.topics[body.Name] = &fakeTopic{name: body.Name}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"status":"created","topic":%q}`, body.Name)
	})
	mux.HandleFunc("DELETE /topics/{name}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		name := r.PathValue("name")
		if f.topics[name] == nil {
			http.Error(w, `{"error":{"code":"TOPIC_NOT_FOUND","message":"no"}}`, http.StatusNotFound)
			return
		}
		delete(f.topics, name)
		fmt.Fprintf(w, `{"status":"deleted","topic":%q}`, name)
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		n := 0
		for _, tp := range f.topics {
			n += len(tp.subs)
		}
		fmt.Fprintf(w, `{"uptime_sec":1,"topics":%d,"subscribers":%d}`, len(f.topics), n)
	})
	mux.HandleFunc("GET /topics", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.listingOn[r.Host]++
		// Pages of at most two entries, so the bench's paging is exercised.
		after := r.URL.Query().Get("after")
		var names []string
		for name := range f.topics {
			if name > after && f.visible(r.Host) {
				names = append(names, name)
			}
		}
		slices.Sort(names)
		page := struct {
			Topics []map[string]any `json:"topics"`
			Next   string           `json:"next,omitempty"`
		}{Topics: []map[string]any{}}
		for i, name := range names {
			if i == 2 {
				page.Next = names[1]
				break
			}
			page.Topics = append(page.Topics, map[string]any{"name": name, "subscribers": len(f.topics[name].subs)})
		}
		_ = json.NewEncoder(w).Encode(page)
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		// Each scrape of a replica finds it one CPU second further on, so a
		// run's server CPU is exactly the number of replicas scraped.
		f.mu.Lock()
		f.scrapesOn[r.Host]++
		cpu := f.scrapesOn[r.Host]
		f.mu.Unlock()
		fmt.Fprintf(w, "process_cpu_seconds_total %d\nprocess_resident_memory_bytes 1048576\n", cpu)
	})
	mux.HandleFunc("GET /ws", f.serveWS)
	for range n {
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		f.srvs = append(f.srvs, srv)
	}
	f.srv = f.srvs[0]
	return f
}

// visible reports whether the replica at host sees the topics yet.
// The caller holds f.mu.
func (f *fakeServer) visible(host string) bool {
	return host == f.srv.Listener.Addr().String() || f.listingOn[host] > f.hideListings
}

// urls returns every replica's base URL, comma-separated, and the same
// for their metrics endpoints.
func (f *fakeServer) urls() (base, metrics string) {
	var b, m []string
	for _, s := range f.srvs {
		b = append(b, s.URL)
		m = append(m, s.URL+"/metrics")
	}
	return strings.Join(b, ","), strings.Join(m, ",")
}

func (f *fakeServer) serveWS(w http.ResponseWriter, r *http.Request) {
	ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
	if err != nil {
		return
	}
	if tc, ok := ws.NetConn().(*net.TCPConn); ok {
		// A small send buffer makes a stalled reader back up after a few
		// kilobytes, as a busy server's would after megabytes.
		_ = tc.SetWriteBuffer(8 << 10)
	}
	c := &fakeConn{ws: ws, wake: make(chan struct{}, 1)}
	done := make(chan struct{})
	defer func() {
		close(done)
		f.unsubscribe(c)
		_ = ws.Close()
	}()
	go c.writeLoop(done)
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		var req struct {
			Type      string `json:"type"`
			Topic     string `json:"topic"`
			RequestID string `json:"request_id"`
			Message   *struct {
				ID      string          `json:"id"`
				Payload json.RawMessage `json:"payload"`
			} `json:"message"`
		}
		if err := json.Unmarshal(data, &req); err != nil {
			c.send(fmt.Appendf(nil, `{"type":"error","request_id":%q,"error":{"code":"BAD_REQUEST","message":"json"}}`, req.RequestID), 0)
			continue
		}
		f.mu.Lock()
		tp := f.topics[req.Topic]
		switch {
		case tp == nil || !f.visible(r.Host):
			c.send(fmt.Appendf(nil, `{"type":"error","request_id":%q,"error":{"code":"TOPIC_NOT_FOUND","message":"no"}}`, req.RequestID), 0)
		case req.Type == "subscribe":
			tp.subs = append(tp.subs, c)
			f.subsOn[r.Host]++
			c.send(fmt.Appendf(nil, `{"type":"ack","request_id":%q,"topic":%q,"status":"ok","ts":"2026-01-01T00:00:00.000Z"}`, req.RequestID, tp.name), 0)
		case req.Type == "publish" && req.Message != nil:
			tp.seq++
			ev := fmt.Appendf(nil, `{"type":"event","topic":%q,"message":{"id":%q,"payload":%s},"seq":%d,"ts":"2026-01-01T00:00:00.000Z"}`,
				tp.name, req.Message.ID, req.Message.Payload, tp.seq)
			for i, s := range tp.subs {
				if i == 0 && tp.seq == f.skipSeq {
					continue
				}
				s.send(ev, f.queueCap)
				if i == 0 && tp.seq == f.dupSeq {
					s.send(ev, f.queueCap)
				}
			}
			if f.leakTopic {
				for _, other := range f.topics {
					if other != tp && len(other.subs) > 0 {
						other.subs[0].send(ev, f.queueCap)
					}
				}
			}
			c.send(fmt.Appendf(nil, `{"type":"ack","request_id":%q,"topic":%q,"status":"ok","ts":"2026-01-01T00:00:00.000Z"}`, req.RequestID, tp.name), 0)
		default:
			c.send(fmt.Appendf(nil, `{"type":"error","request_id":%q,"error":{"code":"BAD_REQUEST","message":"type"}}`, req.RequestID), 0)
		}
		f.mu.Unlock()
	}
}

func (f *fakeServer) unsubscribe(c *fakeConn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, tp := range f.topics {
		for i, s := range tp.subs {
			if s == c {
				tp.subs = append(tp.subs[:i], tp.subs[i+1:]...)
				break
			}
		}
	}
}

// send queues a frame; with limit > 0 the oldest queued frame is dropped
// on overflow and the next frame written is preceded by a SLOW_CONSUMER
// notice, as PROTOCOL.md's drop_oldest says.
func (c *fakeConn) send(b []byte, limit int) {
	c.mu.Lock()
	if limit > 0 && len(c.q) >= limit {
		c.q = c.q[1:]
		c.drop++
	}
	c.q = append(c.q, b)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *fakeConn) writeLoop(done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case <-c.wake:
		}
		for {
			c.mu.Lock()
			if len(c.q) == 0 {
				c.mu.Unlock()
				break
			}
			b, drop := c.q[0], c.drop
			c.q, c.drop = c.q[1:], 0
			c.mu.Unlock()
			if drop > 0 {
				n := fmt.Appendf(nil, `{"type":"error","topic":"t","error":{"code":"SLOW_CONSUMER","message":"dropped %d messages"}}`, drop)
				if c.ws.WriteMessage(websocket.TextMessage, n) != nil {
					return
				}
			}
			if c.ws.WriteMessage(websocket.TextMessage, b) != nil {
				return
			}
		}
	}
}

// runBench runs the command against the fake and decodes its JSON line.
func (f *fakeServer) runBench(t *testing.T, args ...string) (*result, int, string) {
	t.Helper()
	args = append([]string{"-url", f.srv.URL, "-metrics-url", "", "-json", "-drain", "3s"}, args...)
	var out, errOut strings.Builder
	code := run(t.Context(), args, &out, &errOut)
	var r result
	if code != 2 && out.Len() > 0 {
		if err := json.Unmarshal([]byte(out.String()), &r); err != nil {
			t.Fatalf("bad JSON output %q: %v", out.String(), err)
		}
	}
	return &r, code, errOut.String()
}

func TestBenchAgainstFakeServer(t *testing.T) {
	tests := []struct {
		name  string
		setup func(f *fakeServer)
		args  []string
		code  int
		check func(t *testing.T, r *result)
	}{
		{
			name: "fanout is clean",
			args: []string{"-scenario", "fanout", "-pubs", "2", "-subs", "3", "-count", "300", "-duration", "5s", "-window", "16", "-check"},
			check: func(t *testing.T, r *result) {
				g := r.Groups[0]
				if r.Publish.Sent != 600 || r.Publish.Acked != 600 || g.Deliveries != 1800 || g.Expected != 1800 || g.Lost != 0 {
					t.Errorf("sent/acked %d/%d, deliveries/expected/lost %d/%d/%d; want 600/600, 1800/1800/0",
						r.Publish.Sent, r.Publish.Acked, g.Deliveries, g.Expected, g.Lost)
				}
				if g.E2E.Count != 1800 || r.Publish.AckLatency.Count != 600 || g.E2E.P50 <= 0 {
					t.Errorf("latency counts %d/%d p50 %g", g.E2E.Count, r.Publish.AckLatency.Count, g.E2E.P50)
				}
			},
		},
		{
			name: "fanout through gorilla, a goroutine per subscriber",
			args: []string{"-scenario", "fanout", "-pubs", "2", "-subs", "3", "-count", "300", "-duration", "5s", "-window", "16", "-pollers", "0", "-check"},
			check: func(t *testing.T, r *result) {
				g := r.Groups[0]
				if g.Deliveries != 1800 || g.Lost != 0 || g.E2E.Count != 1800 {
					t.Errorf("deliveries/lost/latencies %d/%d/%d; want 1800/0/1800", g.Deliveries, g.Lost, g.E2E.Count)
				}
			},
		},
		{
			name: "rate limit paces publishing",
			args: []string{"-pubs", "1", "-subs", "1", "-rate", "200", "-duration", "500ms", "-check"},
			check: func(t *testing.T, r *result) {
				if r.Publish.Sent < 80 || r.Publish.Sent > 120 {
					t.Errorf("sent %d in 0.5s at 200/s, want about 100", r.Publish.Sent)
				}
			},
		},
		{
			name:  "a silently skipped message is a violation",
			setup: func(f *fakeServer) { f.skipSeq = 5 },
			args:  []string{"-subs", "2", "-count", "20", "-check"},
			code:  1,
			check: func(t *testing.T, r *result) {
				g := r.Groups[0]
				if g.Lost != 1 || g.LossySubs != 1 || g.SeqGaps != 1 || g.SeqMissed != 1 {
					t.Errorf("lost %d in %d subs, gaps %d missed %d; want 1,1,1,1", g.Lost, g.LossySubs, g.SeqGaps, g.SeqMissed)
				}
				if !hasViolation(r, "seq gaps larger than the drops") {
					t.Errorf("violations %q lack the unannounced gap", r.Violations)
				}
			},
		},
		{
			name:  "a duplicate is a violation",
			setup: func(f *fakeServer) { f.dupSeq = 3 },
			args:  []string{"-subs", "2", "-count", "10", "-check"},
			code:  1,
			check: func(t *testing.T, r *result) {
				if r.Groups[0].Duplicates != 1 || !hasViolation(r, "duplicate") {
					t.Errorf("duplicates %d, violations %q", r.Groups[0].Duplicates, r.Violations)
				}
			},
		},
		{
			name:  "topics isolation breach is caught",
			setup: func(f *fakeServer) { f.leakTopic = true },
			args:  []string{"-scenario", "topics", "-topics", "3", "-subs", "1", "-count", "5", "-check"},
			code:  1,
			check: func(t *testing.T, r *result) {
				// Each topic's first subscriber gets the events of the 2 other topics published
				// after it subscribed: up to 3 x 2 x 5, fewer when another topic's publisher
				// started first. Any leak must be caught.
				if r.Groups[0].Leaks == 0 || r.Groups[0].Leaks > 30 || !hasViolation(r, "isolation") {
					t.Errorf("leaks %d, violations %q", r.Groups[0].Leaks, r.Violations)
				}
			},
		},
		{
			name: "topics without faults",
			args: []string{"-scenario", "topics", "-topics", "4", "-pubs", "2", "-subs", "2", "-count", "50", "-check"},
			check: func(t *testing.T, r *result) {
				g := r.Groups[0]
				if g.Subscribers != 8 || g.Deliveries != 4*2*2*50 || g.Lost != 0 || g.Leaks != 0 {
					t.Errorf("subs %d deliveries %d lost %d leaks %d", g.Subscribers, g.Deliveries, g.Lost, g.Leaks)
				}
			},
		},
		{
			name: "slow and stalled subscribers lose only announced messages",
			setup: func(f *fakeServer) {
				f.queueCap = 256
			},
			args: []string{"-scenario", "slow", "-subs", "2", "-slow-subs", "1", "-stalled-subs", "1",
				"-slow-delay", "2ms", "-count", "1000", "-rate", "5000", "-duration", "5s", "-check"},
			check: func(t *testing.T, r *result) {
				byName := map[string]*groupStats{}
				for _, g := range r.Groups {
					byName[strings.SplitN(g.Name, "(", 2)[0]] = g
				}
				fast, slow, stalled := byName["fast"], byName["slow"], byName["stalled"]
				if fast == nil || slow == nil || stalled == nil {
					t.Fatalf("groups %v", r.Groups)
				}
				// Fast subscribers normally lose nothing, but a loaded machine
				// can stall them too; whatever they lose must be announced.
				if fast.Lost != fast.SeqMissed+fast.Tail || fast.SeqMissed != fast.DropsReported {
					t.Errorf("fast: lost %d, seq missed %d, tail %d, drops reported %d",
						fast.Lost, fast.SeqMissed, fast.Tail, fast.DropsReported)
				}
				// The fake's queue holds 256 and the writer blocks on the socket of
				// the stalled subscriber, so it must have lost most messages,
				// all of them announced.
				if stalled.Lost == 0 || stalled.DropsReported != stalled.SeqMissed || stalled.DropNotices == 0 {
					t.Errorf("stalled: lost %d, drops reported %d, seq missed %d, notices %d",
						stalled.Lost, stalled.DropsReported, stalled.SeqMissed, stalled.DropNotices)
				}
				if r.Errors["SLOW_CONSUMER"] == 0 {
					t.Errorf("errors %v lack SLOW_CONSUMER", r.Errors)
				}
			},
		},
		{
			name: "conns opens, holds and verifies",
			args: []string{"-scenario", "conns", "-conns", "50", "-topics", "3", "-duration", "200ms", "-check"},
			check: func(t *testing.T, r *result) {
				c := r.Conns
				if c == nil || c.Open != 50 || c.Received != 50 || c.HealthSubscribers != 50 {
					t.Fatalf("conns %+v", c)
				}
				if r.Publish.Sent != 3 || r.Deliveries != 50 {
					t.Errorf("sent %d deliveries %d, want 3 and 50", r.Publish.Sent, r.Deliveries)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeServer(t, 0)
			if tc.setup != nil {
				tc.setup(f)
			}
			r, code, stderr := f.runBench(t, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %s; violations %q", code, tc.code, stderr, r.Violations)
			}
			tc.check(t, r)
			f.mu.Lock()
			left := len(f.topics)
			f.mu.Unlock()
			if left != 0 {
				t.Errorf("%d topics left behind", left)
			}
		})
	}
}

func TestBenchFailsCleanlyWhenNothingListens(t *testing.T) {
	f := newFakeServer(t, 0)
	url := f.srv.URL
	f.srv.Close()
	var out, errOut strings.Builder
	code := run(t.Context(), []string{"-url", url, "-metrics-url", "", "-duration", "1s"}, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "create topic") {
		t.Fatalf("exit %d stderr %q, want 1 and a create-topic error", code, errOut.String())
	}
}

func TestTableOutput(t *testing.T) {
	f := newFakeServer(t, 0)
	var out strings.Builder
	code := run(t.Context(), []string{"-url", f.srv.URL, "-metrics-url", "", "-subs", "2", "-count", "10"}, &out, &strings.Builder{})
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"publish->ack", "e2e fast", "acked/s", "invariants   ok", "bench cpu"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func hasViolation(r *result, sub string) bool {
	for _, v := range r.Violations {
		if strings.Contains(v, sub) {
			return true
		}
	}
	return false
}
