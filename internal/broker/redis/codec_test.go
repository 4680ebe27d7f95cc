package redis

import (
	"bytes"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/pubsubd/pubsub/internal/domain"
)

func wireLike(e *domain.Event) ([]byte, int) {
	b := fmt.Appendf(nil, `{"type":"event","topic":%q,"message":{"payload":`, e.Topic)
	at := len(b)
	b = append(b, e.Message.Payload...)
	return fmt.Appendf(b, `},"seq":%d,"ts":"x"}`, e.Seq), at
}

// An event encoded once by the publisher comes back whole on every receiver: the frame the
// encoder would have made for its seq, the payload inside it, the headers and the time.
func TestCodecRoundTrip(t *testing.T) {
	now := time.Unix(1700000000, 123456789)
	tests := []struct {
		name string
		enc  domain.Encoder
	}{
		{"payload inside the frame", wireLike},
		{"payload apart", func(e *domain.Event) ([]byte, int) { b, _ := wireLike(e); return b, -1 }},
		{"no encoder", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := domain.Message{ID: [16]byte{1, 2, 3}, Payload: []byte(`{"n":18446744073709551615}`),
				Headers: map[string]string{"traceparent": "00-abc-def-01", "k": "v"}}
			enc, err := encodeEvent("orders", msg, now, tt.enc)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := decodeEvent("orders", 42, enc.body)
			if err != nil {
				t.Fatal(err)
			}
			if tt.enc != nil {
				want, _ := tt.enc(&domain.Event{Topic: "orders", Seq: 42, Time: now, Message: msg})
				if !bytes.Equal(ev.Frame, want) {
					t.Fatalf("frame %q, want %q", ev.Frame, want)
				}
			}
			if ev.Seq != 42 || !ev.Time.Equal(now) || ev.Message.ID != msg.ID || string(ev.Message.Payload) != string(msg.Payload) ||
				!maps.Equal(ev.Message.Headers, msg.Headers) {
				t.Fatalf("event %+v, want the message back", ev)
			}
			if ev.Size() != enc.size {
				t.Fatalf("received size %d, publisher charged %d", ev.Size(), enc.size)
			}
		})
	}
}

// Whatever Redis hands back, decoding returns an event or errBadEncoding, and never panics.
func FuzzDecodeEvent(f *testing.F) {
	enc, _ := encodeEvent("t", domain.Message{Payload: []byte(`1`), Headers: map[string]string{"a": "b"}}, time.Unix(1, 0), wireLike)
	f.Add(enc.body)
	f.Add([]byte{codecVersion})
	f.Add([]byte{codecVersion, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := decodeEvent("t", 7, b); err != nil && err != errBadEncoding {
			t.Fatalf("error %v, want errBadEncoding", err)
		}
		_, _ = parseNotice(b)
	})
}
