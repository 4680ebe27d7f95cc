//go:build linux

// The end-to-end backplane trace test runs three real pubsubd replicas on one throwaway Redis, all
// exporting to one real Jaeger v2, and checks what an operator chasing one message across the
// cluster sees (issue #12): ONE trace that holds the publish span on the publisher's replica, the
// Redis call of the publish script under it, and a delivery span on every replica that has a
// subscriber, each span naming its replica (service.instance.id), and logs that name the replica
// on every line. It reuses e2e_test.go's helpers and is gated the same way:
//
//	(cd .ci/jaeger && go build -o "$BIN/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger)
//	apt-get install -y --no-install-recommends redis-server   # redis-server on PATH
//	PUBSUB_E2E_JAEGER="$BIN/jaeger" go test -race -run TestE2E ./cmd/pubsubd
package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/pubsubd/pubsub/internal/broker/redis/redistest"
)

// btReplica is one pubsubd process of the backplane trace test.
type btReplica struct {
	id   string // PUBSUB_REPLICA_ID, expected as service.instance.id and as the logs' replica
	addr string // the application listener
	proc *process
}

// btSpan is a Jaeger span with the process (resource) it was recorded by.
type btSpan struct {
	jaegerSpan
	ProcessID string `json:"processID"`
}

// btTrace is one trace of Jaeger's query API with its processes: one per resource, whose tags are
// the resource's attributes (service.instance.id among them).
type btTrace struct {
	TraceID   string   `json:"traceID"`
	Spans     []btSpan `json:"spans"`
	Processes map[string]struct {
		ServiceName string `json:"serviceName"`
		Tags        []struct {
			Key   string `json:"key"`
			Value any    `json:"value"`
		} `json:"tags"`
	} `json:"processes"`
}

// replicaOf returns the service.instance.id of the process that recorded s, or "" if it has none.
func (tr btTrace) replicaOf(s btSpan) string {
	for _, kv := range tr.Processes[s.ProcessID].Tags {
		if kv.Key == "service.instance.id" {
			return fmt.Sprint(kv.Value)
		}
	}
	return ""
}

func TestE2EBackplaneTrace(t *testing.T) {
	jaegerBin := os.Getenv("PUBSUB_E2E_JAEGER")
	if jaegerBin == "" {
		t.Skip("end-to-end backplane trace test skipped: set PUBSUB_E2E_JAEGER to a Jaeger v2 binary " +
			"(built from .ci/jaeger) and put redis-server on PATH to run it")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skipf("end-to-end backplane trace test skipped: redis-server is not on PATH (%v)", err)
	}
	jaegerConfig, err := filepath.Abs(filepath.Join("..", "..", ".ci", "jaeger", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pubsubdBin := buildPubsubd(t, dir)

	rdb, err := redistest.Start(t.TempDir())
	if err != nil {
		t.Fatalf("redis: %v", err)
	}
	t.Cleanup(rdb.Stop)

	// One deadline for everything after the build (three race-built replicas and a Jaeger on a
	// loaded machine), well inside go test's own timeout, whose panic would skip the cleanups.
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()

	otlpAddr, queryAddr := freeAddr(t), freeAddr(t)
	jaeger := startProcess(t, "jaeger", jaegerBin, []string{"--config=file:" + jaegerConfig}, []string{
		"JAEGER_OTLP_HTTP=" + otlpAddr,
		"JAEGER_QUERY_HTTP=" + queryAddr,
	})
	all := []*process{jaeger}

	// Replica ids unique to this run, so a span can only be attributed to a replica of this test.
	run := uuid.NewString()[:8]
	replicas := make([]*btReplica, 3)
	for i, name := range []string{"a", "b", "c"} {
		r := &btReplica{id: "e2e-" + name + "-" + run, addr: freeAddr(t)}
		r.proc = startProcess(t, "pubsubd "+r.id, pubsubdBin, nil, []string{
			"PUBSUB_HOST=127.0.0.1",
			"PUBSUB_PORT=" + portOf(t, r.addr),
			"PUBSUB_ADMIN_ADDR=off",
			"PUBSUB_LOG_FORMAT=json",
			"PUBSUB_DRAIN_TIMEOUT=5s",
			"PUBSUB_BROKER=redis",
			"PUBSUB_REDIS_URL=" + rdb.URL(),
			"PUBSUB_REPLICA_ID=" + r.id,
			"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + otlpAddr,
			"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
			"OTEL_TRACES_SAMPLER=always_on",
			"OTEL_BSP_SCHEDULE_DELAY=200",
		})
		replicas[i] = r
		all = append(all, r.proc)
	}
	a := replicas[0]

	httpc := &http.Client{Timeout: 5 * time.Second}
	eventually(ctx, t, "jaeger OTLP receiver listening", all, func() (bool, string) {
		return httpStatus(httpc, "http://"+otlpAddr+"/v1/traces") != 0, "no answer"
	})
	eventually(ctx, t, "jaeger query API up", all, func() (bool, string) {
		code := httpStatus(httpc, "http://"+queryAddr+"/api/services")
		return code == http.StatusOK, "status " + strconv.Itoa(code)
	})
	for _, r := range replicas {
		eventually(ctx, t, r.id+" ready", all, func() (bool, string) {
			code := httpStatus(httpc, "http://"+r.addr+"/readyz")
			return code == http.StatusOK, "status " + strconv.Itoa(code)
		})
	}

	// Created on A, the topic exists on every replica (it lives in Redis).
	topic := "e2e.backplane"
	createTopic(ctx, t, httpc, a.addr, topic)

	// One subscriber per replica; the ack of a subscribe means the replica follows the topic, so
	// a publish after the three acks reaches all three.
	subs := make([]*wsClient, len(replicas))
	for i, r := range replicas {
		subs[i] = dialWS(ctx, t, "ws://"+r.addr+"/ws")
		reqID := "sub-" + r.id
		sendFrame(t, subs[i], map[string]any{
			"type": "subscribe", "topic": topic, "client_id": "e2e-sub-" + r.id, "request_id": reqID,
		})
		expectAck(ctx, t, subs[i], reqID)
	}

	pub := dialWS(ctx, t, "ws://"+a.addr+"/ws")
	msgID := uuid.NewString()
	payload := json.RawMessage(`{"order":7,"note":"across replicas"}`)
	sendFrame(t, pub, map[string]any{
		"type": "publish", "topic": topic, "request_id": "pub-1",
		"message": map[string]any{"id": msgID, "payload": payload},
	})
	expectAck(ctx, t, pub, "pub-1")

	// Every subscriber, whatever its replica, gets the event with the traceparent of A's publish
	// span: the headers went through Redis unchanged.
	var traceparents []string
	for i, c := range subs {
		f := readFrameUntil(ctx, t, c, fmt.Sprintf("event %s on %s", msgID, replicas[i].id), func(f wsFrame) bool {
			return f.Type == "event" && f.Message != nil && f.Message.ID == msgID
		})
		if !jsonEqual(f.Message.Payload, payload) {
			t.Errorf("%s: payload = %s, want %s", replicas[i].id, f.Message.Payload, payload)
		}
		traceparents = append(traceparents, f.Message.Headers["traceparent"])
	}
	traceID, publishSpanID := parseTraceparent(t, traceparents[0])
	for i, tp := range traceparents[1:] {
		if tp != traceparents[0] {
			t.Errorf("%s: traceparent %q differs from %s's %q", replicas[i+1].id, tp, a.id, traceparents[0])
		}
	}

	tr := waitForBackplaneTrace(ctx, t, httpc, queryAddr, traceID, topic, replicas, all)
	checkBackplaneTrace(t, tr, topic, msgID, traceID, publishSpanID, replicas)

	// A clean stop: each replica exits 0 (under -race, a race in the service would make it exit
	// non-zero), and only then are its logs complete.
	for _, r := range replicas {
		if err := r.proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatalf("SIGTERM %s: %v", r.id, err)
		}
	}
	for _, r := range replicas {
		select {
		case <-r.proc.done:
		case <-ctx.Done():
			t.Fatalf("%s did not exit after SIGTERM before the deadline", r.id)
		}
		if r.proc.err != nil {
			t.Errorf("%s exited with %v after SIGTERM, want exit status 0", r.id, r.proc.err)
		}
		checkReplicaLogs(t, r)
	}
}

// waitForBackplaneTrace polls Jaeger for the trace traceID until it holds the publish span, a
// Redis publish call and one delivery span per replica. The replicas export in their own batches,
// so a partial trace is waited on, not judged.
func waitForBackplaneTrace(ctx context.Context, t *testing.T, c *http.Client, queryAddr, traceID, topic string, replicas []*btReplica, watch []*process) btTrace {
	t.Helper()
	u := "http://" + queryAddr + "/api/traces/" + traceID
	var found btTrace
	what := fmt.Sprintf("trace %s with publish, redis publish and %d deliver spans in jaeger", traceID, len(replicas))
	eventually(ctx, t, what, watch, func() (bool, string) {
		var body struct {
			Data   []btTrace `json:"data"`
			Errors []any     `json:"errors"`
		}
		if err := getJSON(c, u, &body); err != nil {
			return false, err.Error()
		}
		if len(body.Data) != 1 {
			return false, fmt.Sprintf("%d traces (errors %v)", len(body.Data), body.Errors)
		}
		count := map[string]int{}
		for _, s := range body.Data[0].Spans {
			count[s.OperationName]++
		}
		if count["publish "+topic] == 1 && count["redis publish"] >= 1 && count["deliver "+topic] == len(replicas) {
			found = body.Data[0]
			return true, ""
		}
		return false, fmt.Sprintf("spans by name: %v", count)
	})
	return found
}

// checkBackplaneTrace checks that the trace runs from A's publish span through its Redis call to a
// delivery on every replica, as one tree: each span has the events' trace id, names its replica,
// and hangs off the publish span as in the single-process trace (e2e_test.go).
func checkBackplaneTrace(t *testing.T, tr btTrace, topic, msgID, traceID, publishSpanID string, replicas []*btReplica) {
	t.Helper()
	a := replicas[0]
	if got := normID(tr.TraceID, 32); got != traceID {
		t.Errorf("jaeger trace id %s, want %s (the trace id of the events' traceparent)", got, traceID)
	}
	for _, s := range tr.Spans {
		if got := normID(s.TraceID, 32); got != traceID {
			t.Errorf("span %q has trace id %s, want %s", s.OperationName, got, traceID)
		}
		if tr.replicaOf(s) == "" {
			t.Errorf("span %q (%s) has no service.instance.id: its replica is unknown", s.OperationName, s.SpanID)
		}
	}
	delivered := map[string]int{}
	for _, s := range tr.Spans {
		replica := tr.replicaOf(s)
		switch s.OperationName {
		case "publish " + topic:
			if got := normID(s.SpanID, 16); got != publishSpanID {
				t.Errorf("publish span id %s, want %s (the span id of the events' traceparent)", got, publishSpanID)
			}
			if replica != a.id {
				t.Errorf("publish span recorded by %q, want the publisher's replica %q", replica, a.id)
			}
			if got := s.tag("span.kind"); got != "producer" {
				t.Errorf("publish span kind %q, want producer", got)
			}
			if got := s.tag("messaging.message.id"); got != msgID {
				t.Errorf("publish span messaging.message.id = %q, want %q", got, msgID)
			}
		case "redis publish":
			if replica != a.id {
				t.Errorf("redis publish span recorded by %q, want the publisher's replica %q", replica, a.id)
			}
			if len(s.References) != 1 || !s.refersTo(publishSpanID) {
				t.Errorf("redis publish span %s references %+v, want only the publish span %s, its parent", s.SpanID, s.References, publishSpanID)
			}
			if got := s.tag("span.kind"); got != "client" {
				t.Errorf("redis publish span kind %q, want client", got)
			}
			for key, want := range map[string]string{"db.system.name": "redis", "db.operation.name": "publish"} {
				if got := s.tag(key); got != want {
					t.Errorf("redis publish span %s = %q, want %q", key, got, want)
				}
			}
		case "deliver " + topic:
			delivered[replica]++
			// In the publish's trace, with one reference, to the publish span: its parent (Jaeger
			// shows a parent that is also a link as FOLLOWS_FROM, see refersTo), not some other span
			// of the receiving replica.
			if len(s.References) != 1 || !s.refersTo(publishSpanID) {
				t.Errorf("deliver span %s on %s references %+v, want only the publish span %s, its parent", s.SpanID, replica, s.References, publishSpanID)
			}
			if got := s.tag("span.kind"); got != "consumer" {
				t.Errorf("deliver span %s on %s kind %q, want consumer", s.SpanID, replica, got)
			}
			if got, want := s.tag("messaging.client.id"), "e2e-sub-"+replica; got != want {
				t.Errorf("deliver span %s on %s messaging.client.id = %q, want %q (the subscriber on that replica)", s.SpanID, replica, got, want)
			}
		}
	}
	for _, r := range replicas {
		if delivered[r.id] != 1 {
			t.Errorf("deliver spans by replica %v: want exactly one on each of the %d replicas", delivered, len(replicas))
			break
		}
	}
}

// checkReplicaLogs checks that every line r wrote is a JSON log record naming r: the field an
// operator filters on to follow one replica through an incident.
func checkReplicaLogs(t *testing.T, r *btReplica) {
	t.Helper()
	out := strings.TrimSpace(r.proc.out.String())
	if out == "" {
		t.Errorf("%s wrote no log record", r.id)
		return
	}
	lines := strings.Split(out, "\n")
	bad, first := 0, ""
	for _, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec["replica"] != r.id {
			if bad++; bad == 1 {
				first = line
			}
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d log lines are not JSON records with replica %q; the first: %.300s", r.id, bad, len(lines), r.id, first)
	}
}
