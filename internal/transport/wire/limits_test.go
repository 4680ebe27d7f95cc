package wire

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pubsubd/pubsub/internal/domain"
)

// allocated returns the bytes and allocations f makes.
func allocated(f func()) (bytes, allocs uint64) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, after.Mallocs - before.Mallocs
}

// manyHeaders is a publish whose message.headers has n entries.
func manyHeaders(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"type":"publish","topic":"t","request_id":"r","message":{"id":"` + testUUID + `","payload":1,"headers":{`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"k%07d":"v"`, i)
	}
	b.WriteString(`}}}`)
	return []byte(b.String())
}

// The attack of issue #11: a million header keys were decoded into a map before the 16-entry check
// (779 ms, 96 MiB). They are now refused at the 17th key: the decoder allocates about one copy of
// the frame (the raw headers) and a few small objects, never a map of a million entries.
func TestMillionHeadersStopAtTheSeventeenth(t *testing.T) {
	frame := manyHeaders(1 << 20)
	var err error
	var req Request
	start := time.Now()
	bytes, allocs := allocated(func() { req, err = DecodeRequest(frame) })
	took := time.Since(start)
	if !IsLengthError(err) || domain.KindOf(err) != domain.KindInvalid || !strings.Contains(err.Error(), "more than 16 entries") {
		t.Fatalf("error %v, want a length error naming the 16-entry limit", err)
	}
	if req.RequestID == nil || *req.RequestID != "r" {
		t.Fatalf("request_id %v, want r echoed", req.RequestID)
	}
	if limit := uint64(len(frame)) + 256<<10; bytes > limit || allocs > 1000 {
		t.Fatalf("a %d-byte frame of 2^20 headers allocated %d bytes in %d allocations; want at most %d bytes, 1000 allocations",
			len(frame), bytes, allocs, limit)
	}
	t.Logf("frame %d bytes: decode allocated %d bytes in %d allocations, %v (GC included)", len(frame), bytes, allocs, took)
}

func TestLengthLimits(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	escaped := func(n int) string { return strings.Repeat(`\u0041`, n) } // 6 bytes on the wire, 1 decoded
	lim := Limits{MaxIDBytes: 20, MaxHeaderBytes: 64}
	for _, tc := range []struct {
		name    string
		lim     Limits
		in      string
		wantErr string // "" = accepted
		echo    bool   // the error still echoes the request_id
	}{
		{name: "request_id at the default limit", in: `{"type":"ping","request_id":"` + long(256) + `"}`},
		{name: "request_id over the default limit", in: `{"type":"ping","request_id":"` + long(257) + `"}`, wantErr: "request_id is longer than 256 bytes"},
		{name: "request_id of escapes at the limit", in: `{"type":"ping","request_id":"` + escaped(256) + `"}`},
		{name: "request_id of escapes over the limit", in: `{"type":"ping","request_id":"` + escaped(257) + `"}`, wantErr: "request_id is longer than 256 bytes"},
		{name: "request_id over a set limit", lim: lim, in: `{"type":"ping","request_id":"` + long(21) + `"}`, wantErr: "request_id is longer than 20 bytes"},
		{name: "request_id of the wrong type stays precise", lim: lim, in: `{"type":"ping","request_id":5}`, wantErr: "request_id must be a string"},
		{name: "client_id over a set limit", lim: lim, in: `{"type":"subscribe","topic":"t","request_id":"r","client_id":"` + long(21) + `"}`, wantErr: "client_id is longer than 20 bytes", echo: true},
		{name: "client_id over, unsubscribe", lim: lim, in: `{"type":"unsubscribe","topic":"t","request_id":"r","client_id":"` + long(1000) + `"}`, wantErr: "client_id is longer than 20 bytes", echo: true},
		{name: "client_id at a set limit", lim: lim, in: `{"type":"subscribe","topic":"t","client_id":"` + long(20) + `"}`},
		{name: "header value over a set limit", lim: lim, in: publishFrame(`{"id":"` + testUUID + `","payload":1,"headers":{"k":"` + long(65) + `"}}`), wantErr: `message.headers["k"] is longer than 64 bytes`, echo: true},
		{name: "header key over a set limit", lim: lim, in: publishFrame(`{"id":"` + testUUID + `","payload":1,"headers":{"` + long(65) + `":"v"}}`), wantErr: "message.headers keys must be 1 to 64 bytes", echo: true},
		{name: "header key over the default key limit", in: publishFrame(`{"id":"` + testUUID + `","payload":1,"headers":{"` + long(129) + `":"v"}}`), wantErr: "message.headers keys must be 1 to 128 bytes", echo: true},
		{name: "sixteen headers", in: publishFrame(`{"id":"` + testUUID + `","payload":1,"headers":` + headersJSON(16, 4, 1) + `}`)},
		{name: "tracestate over a set limit", lim: lim, in: `{"type":"ping","request_id":"r","tracestate":"` + long(65) + `"}`, wantErr: "tracestate is longer than 64 bytes", echo: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := DecodeRequestLimited([]byte(tc.in), tc.lim)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			if code, _ := WSError(err); code != CodeBadRequest {
				t.Fatalf("code %s, want BAD_REQUEST", code)
			}
			if want := !strings.Contains(tc.wantErr, "must be"); IsLengthError(err) != want && !strings.Contains(tc.wantErr, "keys must be") {
				t.Fatalf("IsLengthError = %v, want %v", IsLengthError(err), want)
			}
			if (req.RequestID != nil) != tc.echo {
				t.Fatalf("request_id echoed: %v, want %v", req.RequestID != nil, tc.echo)
			}
		})
	}
}

// A request_id far over its limit is refused without being copied: checked while decoding.
func TestLongIDIsNotCopied(t *testing.T) {
	for _, f := range []string{
		`{"type":"ping","request_id":"` + strings.Repeat("x", 1<<20) + `"}`,
		`{"type":"ping","request_id":"` + strings.Repeat("\\n", 1<<19) + `"}`,
	} {
		frame := []byte(f)
		var err error
		bytes, _ := allocated(func() { _, err = DecodeRequest(frame) })
		if !IsLengthError(err) {
			t.Fatalf("a 1 MiB request_id: %v, want a length error", err)
		}
		if bytes > 64<<10 {
			t.Fatalf("a 1 MiB request_id allocated %d bytes; want under 64 KiB", bytes)
		}
	}
}
