package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/pubsubd/pubsub/telemetry"
)

// spanContext returns a context carrying a valid, sampled span context with fixed ids, the way a
// traced operation's context does.
func spanContext(t *testing.T) (context.Context, trace.SpanContext) {
	t.Helper()
	tid, err := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	if err != nil {
		t.Fatal(err)
	}
	sid, err := trace.SpanIDFromHex("00f067aa0ba902b7")
	if err != nil {
		t.Fatal(err)
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	return trace.ContextWithSpanContext(context.Background(), sc), sc
}

// jsonLines decodes every line of a JSON log.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		recs = append(recs, m)
	}
	return recs
}

func TestJSONLoggerAddsTraceAndSpanIDs(t *testing.T) {
	var buf bytes.Buffer
	log, err := telemetry.NewLogger(&buf, "json", slog.LevelInfo)
	if err != nil {
		t.Fatal(err)
	}
	ctx, sc := spanContext(t)
	log.InfoContext(ctx, "inside", "k", "v")
	// Attributes bound with With must not lose the trace fields (the handler wraps every derivative).
	log.With("conn_id", "c1").WarnContext(ctx, "derived")
	log.InfoContext(context.Background(), "outside")
	log.DebugContext(ctx, "below the level")

	recs := jsonLines(t, buf.String())
	if len(recs) != 3 {
		t.Fatalf("got %d records, want 3 (debug must be filtered at INFO):\n%s", len(recs), buf.String())
	}
	for _, r := range recs[:2] {
		if r["trace_id"] != sc.TraceID().String() || r["span_id"] != sc.SpanID().String() {
			t.Errorf("record %v: want trace_id %s span_id %s", r, sc.TraceID(), sc.SpanID())
		}
	}
	if recs[0]["k"] != "v" || recs[1]["conn_id"] != "c1" || recs[1]["level"] != "WARN" {
		t.Errorf("attributes lost: %v", recs[:2])
	}
	if _, ok := recs[2]["trace_id"]; ok {
		t.Errorf("a record without a span got a trace_id: %v", recs[2])
	}
}

func TestTextLoggerIsPlainWhenNotATerminal(t *testing.T) {
	var buf bytes.Buffer
	log, err := telemetry.NewLogger(&buf, "text", slog.LevelDebug)
	if err != nil {
		t.Fatal(err)
	}
	ctx, sc := spanContext(t)
	log.DebugContext(ctx, "hello", "topic", "orders")
	out := buf.String()
	for _, want := range []string{"hello", "topic=orders", "trace_id=" + sc.TraceID().String(), "span_id=" + sc.SpanID().String()} {
		if !strings.Contains(out, want) {
			t.Errorf("text log %q lacks %q", out, want)
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Errorf("text log to a buffer has colour escapes: %q", out)
	}
	if json.Valid([]byte(strings.TrimSpace(out))) {
		t.Errorf("text format wrote JSON: %q", out)
	}
}

func TestLoggerRejectsUnknownFormat(t *testing.T) {
	_, err := telemetry.NewLogger(&bytes.Buffer{}, "yaml", slog.LevelInfo)
	if err == nil || !strings.Contains(err.Error(), "auto, text, json") {
		t.Fatalf("err = %v, want one naming the accepted values", err)
	}
}

// TestAutoFormatPicksJSONForMachines: a buffer and a regular file are not terminals, so auto (and
// the empty default) must write JSON a log pipeline can parse.
func TestAutoFormatPicksJSONForMachines(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var buf bytes.Buffer
	for _, tc := range []struct {
		name   string
		format string
		w      interface{ Write([]byte) (int, error) }
		read   func() string
	}{
		{"buffer auto", "auto", &buf, buf.String},
		{"file default", "", f, func() string { b, _ := os.ReadFile(f.Name()); return string(b) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log, err := telemetry.NewLogger(tc.w, tc.format, slog.LevelInfo)
			if err != nil {
				t.Fatal(err)
			}
			log.Info("machine readable")
			recs := jsonLines(t, tc.read())
			if recs[0]["msg"] != "machine readable" {
				t.Fatalf("record %v", recs[0])
			}
		})
	}
}
