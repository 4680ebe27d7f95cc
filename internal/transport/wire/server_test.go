package wire

import (
	"bytes"
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/pubsubd/pubsub/internal/domain"
)

// tsPattern is PROTOCOL.md's ts: RFC 3339 in UTC with a Z suffix, to the millisecond.
var tsPattern = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)

var (
	t0 = time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	// t1 is 10:00:00.123456789 UTC written in another zone: frames must convert and truncate it.
	t1 = time.Date(2026, 1, 1, 12, 0, 0, 123456789, time.FixedZone("CEST", 2*3600))
)

// eventFrame is the shape of an event frame, for decoding what EncodeEvent wrote.
type eventFrame struct {
	Type    string `json:"type"`
	Topic   string `json:"topic"`
	Message struct {
		ID      string            `json:"id"`
		Payload json.RawMessage   `json:"payload"`
		Headers map[string]string `json:"headers"`
	} `json:"message"`
	Seq uint64 `json:"seq"`
	TS  string `json:"ts"`
}

func TestEncodeEvent(t *testing.T) {
	id := uuid.MustParse(testUUID)
	tests := []struct {
		name   string
		ev     *domain.Event
		golden string
	}{
		{"PROTOCOL.md example",
			&domain.Event{Topic: "orders", Seq: 42, Time: t0, Message: domain.Message{ID: id, Payload: []byte(`{"any":"json"}`)}},
			`{"type":"event","topic":"orders","message":{"id":"550e8400-e29b-41d4-a716-446655440000","payload":{"any":"json"}},"seq":42,"ts":"2026-01-01T10:00:00.000Z"}`},
		{"null payload, other zone",
			&domain.Event{Topic: "a:b", Seq: 1, Time: t1, Message: domain.Message{ID: id, Payload: []byte(`null`)}},
			`{"type":"event","topic":"a:b","message":{"id":"550e8400-e29b-41d4-a716-446655440000","payload":null},"seq":1,"ts":"2026-01-01T10:00:00.123Z"}`},
		{"payload bytes kept as published",
			&domain.Event{Topic: "t", Seq: 18446744073709551615, Time: t0, Message: domain.Message{ID: id, Payload: []byte(`{"b" : 1,"a":[1.50, "\u00e9", "é"]}`)}},
			`{"type":"event","topic":"t","message":{"id":"550e8400-e29b-41d4-a716-446655440000","payload":{"b" : 1,"a":[1.50, "\u00e9", "é"]}},"seq":18446744073709551615,"ts":"2026-01-01T10:00:00.000Z"}`},
		{"headers sorted and escaped",
			&domain.Event{Topic: "t", Seq: 7, Time: t0, Message: domain.Message{ID: id, Payload: []byte(`1`),
				Headers: map[string]string{"traceparent": testTP, "a\"b": "line\nbreak", "tracestate": "k=v"}}},
			`{"type":"event","topic":"t","message":{"id":"550e8400-e29b-41d4-a716-446655440000","payload":1,"headers":{"a\"b":"line\nbreak","traceparent":"` + testTP + `","tracestate":"k=v"}},"seq":7,"ts":"2026-01-01T10:00:00.000Z"}`},
		{"empty headers omitted",
			&domain.Event{Topic: "t", Seq: 2, Time: t0, Message: domain.Message{ID: id, Payload: []byte(`[]`), Headers: map[string]string{}}},
			`{"type":"event","topic":"t","message":{"id":"550e8400-e29b-41d4-a716-446655440000","payload":[]},"seq":2,"ts":"2026-01-01T10:00:00.000Z"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := EncodeEvent(tt.ev)
			if string(got) != tt.golden {
				t.Fatalf("EncodeEvent =\n%s\nwant\n%s", got, tt.golden)
			}
			var f eventFrame
			if err := json.Unmarshal(got, &f); err != nil {
				t.Fatalf("EncodeEvent wrote invalid JSON: %v", err)
			}
			m := tt.ev.Message
			if f.Type != "event" || f.Topic != string(tt.ev.Topic) || f.Seq != tt.ev.Seq || f.Message.ID != m.ID.String() {
				t.Fatalf("decoded frame %+v does not match the event", f)
			}
			if !bytes.Equal(f.Message.Payload, m.Payload) {
				t.Fatalf("payload %s, want byte-identical %s", f.Message.Payload, m.Payload)
			}
			if len(m.Headers) > 0 && !reflect.DeepEqual(f.Message.Headers, m.Headers) {
				t.Fatalf("headers %v, want %v", f.Message.Headers, m.Headers)
			}
			if !tsPattern.MatchString(f.TS) {
				t.Fatalf("ts %q is not RFC 3339 UTC with milliseconds and Z", f.TS)
			}
			if ts, err := time.Parse(time.RFC3339Nano, f.TS); err != nil || !ts.Equal(tt.ev.Time.Truncate(time.Millisecond)) {
				t.Fatalf("ts %q parses to %v, %v; want %v", f.TS, ts, err, tt.ev.Time.Truncate(time.Millisecond))
			}
		})
	}
}

func TestAppendServerFrames(t *testing.T) {
	tests := []struct {
		name   string
		frame  []byte
		golden string
	}{
		{"ack", AppendAck(nil, strp("r-1"), "orders", t0),
			`{"type":"ack","request_id":"r-1","topic":"orders","status":"ok","ts":"2026-01-01T10:00:00.000Z"}`},
		{"ack without request_id or topic", AppendAck(nil, nil, "", t1),
			`{"type":"ack","status":"ok","ts":"2026-01-01T10:00:00.123Z"}`},
		{"ack with an empty request_id", AppendAck(nil, strp(""), "t", t0),
			`{"type":"ack","request_id":"","topic":"t","status":"ok","ts":"2026-01-01T10:00:00.000Z"}`},
		{"subscribe ack", AppendSubscribeAck(nil, strp("r-1"), "orders", SubscribeAck{Epoch: "9f3a", Seq: 42}, t0),
			`{"type":"ack","request_id":"r-1","topic":"orders","status":"ok","epoch":"9f3a","seq":42,"ts":"2026-01-01T10:00:00.000Z"}`},
		{"subscribe ack of a resume", AppendSubscribeAck(nil, nil, "orders", SubscribeAck{Epoch: "9f3a", Seq: 42, Resumed: true, Recovered: true}, t0),
			`{"type":"ack","topic":"orders","status":"ok","epoch":"9f3a","seq":42,"recovered":true,"ts":"2026-01-01T10:00:00.000Z"}`},
		{"subscribe ack of a resume not recovered", AppendSubscribeAck(nil, strp("r"), "orders", SubscribeAck{Epoch: "9f3a", Resumed: true}, t0),
			`{"type":"ack","request_id":"r","topic":"orders","status":"ok","epoch":"9f3a","seq":0,"recovered":false,"ts":"2026-01-01T10:00:00.000Z"}`},
		{"error", AppendError(nil, strp("r-9"), "", CodeBadRequest, "message.id must be a valid UUID", t0),
			`{"type":"error","request_id":"r-9","error":{"code":"BAD_REQUEST","message":"message.id must be a valid UUID"},"ts":"2026-01-01T10:00:00.000Z"}`},
		{"slow consumer", AppendError(nil, nil, "orders", CodeSlowConsumer, "dropped 17 messages", t0),
			`{"type":"error","topic":"orders","error":{"code":"SLOW_CONSUMER","message":"dropped 17 messages"},"ts":"2026-01-01T10:00:00.000Z"}`},
		{"error escapes its message", AppendError(nil, strp("a\"b"), "", CodeBadRequest, `unknown type "x\y"`, t0),
			`{"type":"error","request_id":"a\"b","error":{"code":"BAD_REQUEST","message":"unknown type \"x\\y\""},"ts":"2026-01-01T10:00:00.000Z"}`},
		{"pong", AppendPong(nil, strp("r-4"), t0),
			`{"type":"pong","request_id":"r-4","ts":"2026-01-01T10:00:00.000Z"}`},
		{"pong without request_id", AppendPong(nil, nil, t0),
			`{"type":"pong","ts":"2026-01-01T10:00:00.000Z"}`},
		{"info ping", AppendInfo(nil, "", InfoPing, t0),
			`{"type":"info","msg":"ping","ts":"2026-01-01T10:00:00.000Z"}`},
		{"info topic deleted", AppendInfo(nil, "orders", InfoTopicDeleted, t0),
			`{"type":"info","topic":"orders","msg":"topic_deleted","ts":"2026-01-01T10:00:00.000Z"}`},
		{"info subscription replaced", AppendInfo(nil, "orders", InfoSubscriptionReplaced, t0),
			`{"type":"info","topic":"orders","msg":"subscription_replaced","ts":"2026-01-01T10:00:00.000Z"}`},
		{"info server shutdown", AppendInfo(nil, "", InfoServerShutdown, t0),
			`{"type":"info","msg":"server_shutdown","ts":"2026-01-01T10:00:00.000Z"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if string(tt.frame) != tt.golden {
				t.Fatalf("frame =\n%s\nwant\n%s", tt.frame, tt.golden)
			}
			var m map[string]any
			if err := json.Unmarshal(tt.frame, &m); err != nil {
				t.Fatalf("invalid JSON: %v", err)
			}
			if ts, _ := m["ts"].(string); !tsPattern.MatchString(ts) {
				t.Fatalf("ts %q is not RFC 3339 UTC with milliseconds and Z", ts)
			}
		})
	}
}

// The writer appends several frames to one buffer; an Append must keep what is already there.
func TestAppendKeepsPrefix(t *testing.T) {
	b := []byte("prefix|")
	b = AppendPong(b, nil, t0)
	b = AppendInfo(b, "", InfoPing, t0)
	want := `prefix|{"type":"pong","ts":"2026-01-01T10:00:00.000Z"}{"type":"info","msg":"ping","ts":"2026-01-01T10:00:00.000Z"}`
	if string(b) != want {
		t.Fatalf("got %s", b)
	}
}

// TestAppendTS checks the hand-written formatter against time.Format's RFC 3339 with milliseconds,
// across zones, and the fallback for years it does not write itself.
func TestAppendTS(t *testing.T) {
	if got := string(appendTS(nil, t1)); got != `"ts":"2026-01-01T10:00:00.123Z"` {
		t.Fatalf("appendTS = %s", got)
	}
	cet := time.FixedZone("CET", 3600)
	for _, tm := range []time.Time{
		time.Date(1999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(2026, 7, 4, 0, 5, 9, 7000000, cet),
		time.Date(12345, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		want := `"ts":"` + tm.UTC().Format(tsLayout) + `"`
		if got := string(appendTS(nil, tm)); got != want {
			t.Errorf("appendTS(%v) = %s, want %s", tm, got, want)
		}
	}
}

func TestAppendString(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", `""`},
		{"plain", "hello world", `"hello world"`},
		{"quote", `say "hi"`, `"say \"hi\""`},
		{"backslash", `a\b`, `"a\\b"`},
		{"newline tab return", "a\nb\tc\rd", `"a\nb\tc\rd"`},
		{"NUL and other controls", "\x00\x01\x08\x0c\x1f", `"\u0000\u0001\u0008\u000c\u001f"`},
		{"DEL stays raw", "\x7f", "\"\x7f\""},
		{"slash stays raw", "a/b</script>", `"a/b</script>"`},
		{"multibyte UTF-8 stays raw", "café 日本 😀", `"café 日本 😀"`},
		{"line separator stays raw", "\u2028", "\"\u2028\""},
		{"invalid byte", "a\xffb", `"a\ufffdb"`},
		{"truncated sequence", "a\xc3", `"a\ufffd"`},
		{"encoded surrogate", "\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`},
		{"overlong slash", "\xc0\xaf", `"\ufffd\ufffd"`},
		{"invalid then escape", "\xff\"", `"\ufffd\""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := appendString([]byte("x"), tt.in)
			if string(got[1:]) != tt.want || got[0] != 'x' {
				t.Fatalf("appendString(%q) = %s, want %s", tt.in, got[1:], tt.want)
			}
			checkStringRoundTrip(t, tt.in, got[1:])
		})
	}
}

// Every one- and two-byte string encodes to valid JSON that decodes to the input with each invalid
// byte replaced by U+FFFD.
func TestAppendStringAllShortInputs(t *testing.T) {
	var buf []byte
	for i := range 256 {
		checkStringRoundTrip(t, string([]byte{byte(i)}), appendString(buf[:0], string([]byte{byte(i)})))
		for j := range 256 {
			in := string([]byte{byte(i), byte(j)})
			buf = appendString(buf[:0], in)
			checkStringRoundTrip(t, in, buf)
		}
	}
}

func checkStringRoundTrip(t *testing.T, in string, encoded []byte) {
	t.Helper()
	var out string
	if err := json.Unmarshal(encoded, &out); err != nil {
		t.Fatalf("appendString(%q) = %s is not a JSON string: %v", in, encoded, err)
	}
	if want := string([]rune(in)); out != want { // []rune makes each invalid byte U+FFFD
		t.Fatalf("appendString(%q) decodes to %q, want %q", in, out, want)
	}
	if strings.ContainsFunc(string(encoded), func(r rune) bool { return r < 0x20 }) {
		t.Fatalf("appendString(%q) = %q left a raw control character", in, encoded)
	}
}
