package telemetry

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestRefusalLogIsBoundedAndCountsWhatItSkips(t *testing.T) {
	var buf bytes.Buffer
	r := NewRefusalLog(slog.New(slog.NewTextHandler(&buf, nil)), 10, 5)
	for range 1000 {
		r.Warn(context.Background(), "bad frame", "code", "BAD_REQUEST")
	}
	if n := strings.Count(buf.String(), "bad frame"); n != 5 {
		t.Fatalf("%d records for 1000 refusals at once, want the burst of 5:\n%s", n, buf.String())
	}
	// A second later the budget has refilled, and the first record to pass says what was skipped.
	r.mu.Lock()
	r.last = r.last.Add(-time.Second)
	r.mu.Unlock()
	buf.Reset()
	r.Warn(context.Background(), "bad frame")
	if !strings.Contains(buf.String(), "suppressed=995") {
		t.Fatalf("record after the pause = %q, want suppressed=995", buf.String())
	}
}

func TestRefusalLogNilIsQuiet(t *testing.T) {
	var r *RefusalLog
	r.Warn(context.Background(), "ignored")
}
