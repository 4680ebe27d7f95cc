package main

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestScanFrame(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		ok    bool
		check func(t *testing.T, f *frame)
	}{
		{
			name: "event as the protocol shows it",
			in:   `{"type":"event","topic":"orders","message":{"id":"550e8400-e29b-41d4-a716-446655440000","payload":{"k":0,"p":1,"s":7,"t":123}},"seq":42,"ts":"2026-01-01T10:00:00.000Z"}`,
			ok:   true,
			check: func(t *testing.T, f *frame) {
				want(t, "type", f.typ, "event")
				want(t, "topic", f.topic, "orders")
				want(t, "id", f.msgID, "550e8400-e29b-41d4-a716-446655440000")
				want(t, "payload", f.payload, `{"k":0,"p":1,"s":7,"t":123}`)
				if !f.hasSeq || f.seq != 42 {
					t.Errorf("seq %d/%v, want 42", f.seq, f.hasSeq)
				}
			},
		},
		{
			name: "other field order, spaces, headers and tricky strings",
			in: "{ \"seq\" : 9 ,\n \"ts\":\"x\\\"}\", \"message\": {\"headers\":{\"traceparent\":\"00-ab-cd-01\"}, \"payload\" : [1,{\"a\":\"]}\"}], " +
				"\"id\":\"u\"}, \"topic\":\"a.b:c\", \"type\":\"event\" }",
			ok: true,
			check: func(t *testing.T, f *frame) {
				want(t, "type", f.typ, "event")
				want(t, "topic", f.topic, "a.b:c")
				want(t, "payload", f.payload, `[1,{"a":"]}"}]`)
				want(t, "id", f.msgID, "u")
				if f.seq != 9 || !f.hasSeq {
					t.Errorf("seq %d/%v, want 9", f.seq, f.hasSeq)
				}
			},
		},
		{
			name: "ack",
			in:   `{"type":"ack","request_id":"12.345","topic":"orders","status":"ok","ts":"2026-01-01T10:00:00.000Z"}`,
			ok:   true,
			check: func(t *testing.T, f *frame) {
				want(t, "type", f.typ, "ack")
				want(t, "request_id", f.requestID, "12.345")
				want(t, "status", f.status, "ok")
				if f.hasSeq || f.payload != nil {
					t.Error("an ack has no seq or payload")
				}
			},
		},
		{
			name: "slow consumer error",
			in:   `{"type":"error","topic":"orders","error":{"code":"SLOW_CONSUMER","message":"dropped 17 messages"}}`,
			ok:   true,
			check: func(t *testing.T, f *frame) {
				want(t, "code", f.errCode, "SLOW_CONSUMER")
				want(t, "message", f.errMsg, "dropped 17 messages")
				if got := parseDropped(f.errMsg); got != 17 {
					t.Errorf("parseDropped = %d, want 17", got)
				}
			},
		},
		{
			name: "info",
			in:   `{"type":"info","msg":"ping","ts":"2026-01-01T10:00:00.000Z"}`,
			ok:   true,
			check: func(t *testing.T, f *frame) {
				want(t, "msg", f.msg, "ping")
			},
		},
		{
			name: "escaped backslash before the closing quote",
			in:   `{"topic":"a\\","type":"x"}`,
			ok:   true,
			check: func(t *testing.T, f *frame) {
				want(t, "topic", f.topic, `a\\`)
				want(t, "type", f.typ, "x")
			},
		},
		{
			name: "non-integer and non-string values are not taken",
			in:   `{"type":1,"seq":1.5,"topic":null,"message":"m","error":[]}`,
			ok:   true,
			check: func(t *testing.T, f *frame) {
				if f.typ != nil || f.topic != nil || f.hasSeq || f.payload != nil {
					t.Errorf("got %+v, want nothing extracted", f)
				}
			},
		},
		{name: "empty object", in: `{}`, ok: true, check: func(*testing.T, *frame) {}},
		{name: "not an object", in: `[1]`},
		{name: "truncated", in: `{"type":"event","message":{"payload":{"a":1}`},
		{name: "unterminated string", in: `{"type":"ev`},
		{name: "missing colon", in: `{"type" "event"}`},
		{name: "empty input", in: ``},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var f frame
			ok := scanFrame([]byte(tc.in), &f)
			if ok != tc.ok {
				t.Fatalf("scanFrame ok = %v, want %v", ok, tc.ok)
			}
			if ok {
				tc.check(t, &f)
			}
		})
	}
}

func want(t *testing.T, field string, got []byte, w string) {
	t.Helper()
	if string(got) != w {
		t.Errorf("%s = %q, want %q", field, got, w)
	}
}

func TestScanEventFast(t *testing.T) {
	prefix := eventPrefix("bench.x.0")
	good := `{"type":"event","topic":"bench.x.0","message":{"id":"550e8400-e29b-41d4-a716-446655440000","payload":{"k":2,"p":1,"s":7,"t":123,"x":"xxxx"}},"seq":42,"ts":"2026-01-01T10:00:00.000Z"}`
	var f, g frame
	if !scanEventFast([]byte(good), prefix, &f) {
		t.Fatal("fast path rejected the service's layout")
	}
	if !scanFrame([]byte(good), &g) || !sameFrame(&f, &g) {
		t.Fatalf("fast %+v\ngeneric %+v", f, g)
	}
	if f.bench != (benchPayload{2, 1, 7, 123}) || f.seq != 42 || string(f.topic) != "bench.x.0" {
		t.Fatalf("fast path read %+v", f)
	}
	for _, variant := range []string{
		strings.Replace(good, `"topic":"bench.x.0"`, `"topic":"bench.x.1"`, 1),        // another topic
		strings.Replace(good, `"x":"xxxx"}}`, `"x":"xxxx"},"headers":{}}`, 1),         // headers
		strings.Replace(good, `"seq":42`, `"seq":4.2`, 1),                             // odd seq
		strings.Replace(good, `"x":"xxxx"`, `"x":"x\"xx"`, 1),                         // escapes in padding
		strings.Replace(good, `{"k":2,"p":1`, `{"p":1,"k":2`, 1),                      // field order
		strings.Replace(good, `"ts":"2026-01-01T10:00:00.000Z"}`, `"ts":"2026-01`, 1), // truncated
		good + `x`, // trailing garbage
	} {
		if scanEventFast([]byte(variant), prefix, &f) {
			t.Errorf("fast path accepted %s", variant)
		}
	}
}

func TestScanPayload(t *testing.T) {
	tests := []struct {
		in   string
		ok   bool
		want benchPayload
	}{
		{`{"k":3,"p":1,"s":99,"t":123456,"x":"xxxx"}`, true, benchPayload{3, 1, 99, 123456}},
		{`{"x":"p\"s","t":5,"s":4,"p":0,"k":0}`, true, benchPayload{0, 0, 4, 5}},
		{`{"k":3,"p":1,"s":99}`, false, benchPayload{}},
		{`{"k":"3","p":1,"s":99,"t":1}`, false, benchPayload{}},
		{`"just a string"`, false, benchPayload{}},
		{`null`, false, benchPayload{}},
	}
	for _, tc := range tests {
		var p benchPayload
		ok := scanPayload([]byte(tc.in), &p)
		if ok != tc.ok || (ok && p != tc.want) {
			t.Errorf("scanPayload(%s) = %+v, %v; want %+v, %v", tc.in, p, ok, tc.want, tc.ok)
		}
	}
}

func TestFrameBuilderRendersValidPublishFrames(t *testing.T) {
	idRE := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	for _, size := range []int{0, 40, 100, 1000} {
		fb := newFrameBuilder("bench.x.3", 3, 2, 1234, size, [16]byte{1, 2, 3})
		seen := map[string]bool{}
		for _, seq := range []int64{1, 2, 999_999_999} {
			var msg struct {
				Type      string `json:"type"`
				Topic     string `json:"topic"`
				RequestID string `json:"request_id"`
				Message   struct {
					ID      string          `json:"id"`
					Payload json.RawMessage `json:"payload"`
				} `json:"message"`
			}
			raw := fb.build(seq, 7_000_000_123)
			if err := json.Unmarshal(raw, &msg); err != nil {
				t.Fatalf("size %d: invalid JSON %s: %v", size, raw, err)
			}
			if msg.Type != "publish" || msg.Topic != "bench.x.3" {
				t.Errorf("type/topic %q/%q", msg.Type, msg.Topic)
			}
			if !idRE.MatchString(msg.Message.ID) || seen[msg.Message.ID] {
				t.Errorf("message id %q is not a fresh version-4 UUID", msg.Message.ID)
			}
			seen[msg.Message.ID] = true
			if size >= 60 && len(msg.Message.Payload) != size {
				t.Errorf("payload is %d bytes, want -size %d", len(msg.Message.Payload), size)
			}
			var p benchPayload
			if !scanPayload(msg.Message.Payload, &p) || p != (benchPayload{3, 2, seq, 7_000_000_123}) {
				t.Errorf("payload %s scans to %+v", msg.Message.Payload, p)
			}
			s, sent, ok := parseRequestID([]byte(msg.RequestID))
			if !ok || s != seq || sent != 7_000_000_123 {
				t.Errorf("request_id %q parses to %d %d %v", msg.RequestID, s, sent, ok)
			}
		}
	}
}

func TestParseRequestID(t *testing.T) {
	for _, bad := range []string{"", "12", ".5", "5.", "0.5", "a.5", "5.-1", "sub"} {
		if _, _, ok := parseRequestID([]byte(bad)); ok {
			t.Errorf("parseRequestID(%q) accepted", bad)
		}
	}
}

func TestParseDropped(t *testing.T) {
	for in, w := range map[string]int64{"dropped 17 messages": 17, "dropped 1 message": 1, "slow": 0, "": 0, "x 12345678901234567890": 0} {
		if got := parseDropped([]byte(in)); got != w {
			t.Errorf("parseDropped(%q) = %d, want %d", in, got, w)
		}
	}
}

func TestScanFrameDoesNotAllocate(t *testing.T) {
	b := []byte(`{"type":"event","topic":"bench.x.0","message":{"id":"550e8400-e29b-41d4-a716-446655440000","payload":{"k":0,"p":0,"s":7,"t":123,"x":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}},"seq":42,"ts":"2026-01-01T10:00:00.000Z"}`)
	var f frame
	if n := testing.AllocsPerRun(1000, func() {
		if !scanFrame(b, &f) || !f.hasBench {
			t.Fatal("scan failed")
		}
	}); n != 0 {
		t.Fatalf("scanning an event allocates %.1f times", n)
	}
}

func BenchmarkScanEvent(b *testing.B) {
	fb := newFrameBuilder("bench.x.0", 0, 0, 0, 100, [16]byte{})
	pub := fb.build(7, 123456789)
	// Turn the publish frame into what the server sends.
	ev := []byte(strings.Replace(strings.Replace(string(pub), `"type":"publish"`, `"type":"event"`, 1),
		`,"request_id":"7.123456789"`, `,"seq":7,"ts":"2026-01-01T10:00:00.000Z"`, 1))
	b.SetBytes(int64(len(ev)))
	prefix := eventPrefix("bench.x.0")
	b.Run("generic", func(b *testing.B) {
		var f frame
		for b.Loop() {
			if !scanFrame(ev, &f) || !f.hasBench {
				b.Fatal("scan failed")
			}
		}
	})
	b.Run("fast", func(b *testing.B) {
		var f frame
		for b.Loop() {
			if !scanEventFast(ev, prefix, &f) {
				b.Fatal("scan failed")
			}
		}
	})
}

// FuzzScanFrame checks that the scanner never panics and that, on valid
// JSON objects, it extracts the same fields encoding/json does.
func FuzzScanFrame(f *testing.F) {
	for _, s := range []string{
		`{"type":"event","topic":"orders","message":{"id":"u","payload":{"k":0,"p":1,"s":7,"t":123}},"seq":42,"ts":"t"}`,
		`{"type":"ack","request_id":"1.2","status":"ok"}`,
		`{"type":"error","error":{"code":"SLOW_CONSUMER","message":"dropped 3 messages"}}`,
		`{"type":"a\"b","seq":01,"message":{"payload":"\\"}}`,
		`{"seq":-1,"topic":"\u00e9"}`,
		`{"message":{"payload":[{"]":"}"}]}}`,
		`{`, `}`, `{"a":}`, `{"a":1,}`,
		`{"type":"event","topic":"orders","message":{"id":"550e8400-e29b-41d4-a716-446655440000","payload":{"k":0,"p":1,"s":7,"t":123,"x":"xx"}},"seq":42,"ts":"2026-01-01T10:00:00.000Z"}`,
		`{"type":"event","topic":"orders","message":{"id":"550e8400-e29b-41d4-a716-446655440000","payload":{"k":0,"p":1,"s":7,"t":123,"x":""}},"seq":42}`,
	} {
		f.Add([]byte(s))
	}
	prefix := eventPrefix("orders")
	f.Fuzz(func(t *testing.T, b []byte) {
		var fr frame
		ok := scanFrame(b, &fr)
		var fast frame
		if scanEventFast(b, prefix, &fast) {
			// The fast path may only accept what the generic scanner reads
			// the same way.
			if !ok || !sameFrame(&fast, &fr) {
				t.Fatalf("fast path %+v, generic %+v (ok %v) for %q", fast, fr, ok, b)
			}
		}
		var p benchPayload
		scanPayload(b, &p) // must not panic either
		var top map[string]json.RawMessage
		if json.Unmarshal(b, &top) != nil || top == nil {
			return // lenient on invalid input: only the absence of panics matters
		}
		if !ok {
			t.Fatalf("scanFrame rejected valid JSON object %q", b)
		}
		if bytes.Contains(b, []byte(`\u`)) {
			// A \u escape can spell a key ("typ\u0065"); the scanner
			// matches raw keys, which is all the server's output needs.
			return
		}
		checkString(t, top, "type", fr.typ)
		checkString(t, top, "topic", fr.topic)
		checkString(t, top, "request_id", fr.requestID)
		checkString(t, top, "status", fr.status)
		checkString(t, top, "msg", fr.msg)
		seqRaw, has := top["seq"]
		wantSeq := has && regexp.MustCompile(`^[0-9]{1,18}$`).Match(seqRaw)
		if fr.hasSeq != wantSeq {
			t.Fatalf("seq %q: hasSeq %v", seqRaw, fr.hasSeq)
		}
		if wantSeq {
			if n, _ := strconv.ParseInt(string(seqRaw), 10, 64); n != fr.seq {
				t.Fatalf("seq %q scanned as %d", seqRaw, fr.seq)
			}
		}
		var msg map[string]json.RawMessage
		if json.Unmarshal(top["message"], &msg) == nil && msg != nil {
			checkString(t, msg, "id", fr.msgID)
			if raw, ok := msg["payload"]; ok && string(raw) != string(fr.payload) {
				t.Fatalf("payload %q scanned as %q", raw, fr.payload)
			}
			// The in-pass payload fields agree with scanning it alone.
			var p benchPayload
			if ok := scanPayload(fr.payload, &p); ok != fr.hasBench || p != fr.bench {
				t.Fatalf("payload %q: in-frame %+v/%v, alone %+v/%v", fr.payload, fr.bench, fr.hasBench, p, ok)
			}
		}
		var e map[string]json.RawMessage
		if json.Unmarshal(top["error"], &e) == nil && e != nil {
			checkString(t, e, "code", fr.errCode)
			checkString(t, e, "message", fr.errMsg)
		}
	})
}

func sameFrame(a, b *frame) bool {
	eq := func(x, y []byte) bool { return string(x) == string(y) && (x == nil) == (y == nil) }
	return eq(a.typ, b.typ) && eq(a.topic, b.topic) && eq(a.requestID, b.requestID) && eq(a.status, b.status) &&
		eq(a.msg, b.msg) && eq(a.errCode, b.errCode) && eq(a.errMsg, b.errMsg) && eq(a.msgID, b.msgID) &&
		eq(a.payload, b.payload) && a.bench == b.bench && a.hasBench == b.hasBench && a.seq == b.seq && a.hasSeq == b.hasSeq
}

// checkString compares a scanned raw string with what encoding/json found:
// equal after unescaping if the member is a string, absent otherwise.
func checkString(t *testing.T, m map[string]json.RawMessage, key string, got []byte) {
	t.Helper()
	var w string
	raw, has := m[key]
	if !has || json.Unmarshal(raw, &w) != nil {
		if got != nil {
			t.Fatalf("%s: scanned %q from non-string %q", key, got, raw)
		}
		return
	}
	var g string
	if err := json.Unmarshal([]byte(`"`+string(got)+`"`), &g); err != nil || g != w {
		t.Fatalf("%s: scanned %q, encoding/json %q", key, got, w)
	}
}
