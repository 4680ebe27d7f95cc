package wire

import (
	"testing"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/pubsubd/pubsub/internal/domain"
)

// A publish as a typical client sends it: a small JSON object and a trace context.
var benchPublish = []byte(`{"type":"publish","topic":"orders.eu-west","request_id":"r-184467",` +
	`"message":{"id":"550e8400-e29b-41d4-a716-446655440000","payload":{"order_id":"A-1029384",` +
	`"amount":129.95,"currency":"EUR","items":[{"sku":"X-1","qty":2},{"sku":"Y-7","qty":1}]},` +
	`"headers":{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}}`)

func BenchmarkDecodePublish(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchPublish)))
	for b.Loop() {
		if _, err := DecodeRequest(benchPublish); err != nil {
			b.Fatal(err)
		}
	}
}

// EncodeEvent runs once per publish, under the topic's lock: its cost bounds publish throughput.
func BenchmarkEncodeEvent(b *testing.B) {
	req, err := DecodeRequest(benchPublish)
	if err != nil {
		b.Fatal(err)
	}
	ev := &domain.Event{Topic: req.Topic, Seq: 184467, Time: t1, Message: domain.Message{
		ID: uuid.MustParse(testUUID), Payload: req.Message.Payload, Headers: req.Message.Headers}}
	b.ReportAllocs()
	b.SetBytes(int64(len(EncodeEvent(ev))))
	for b.Loop() {
		EncodeEvent(ev)
	}
}

// BenchmarkDecodePublishAsServed is what the WebSocket reader does with each text message since
// issue #11: the UTF-8 check on the whole message, then the decode within the default limits.
// Compare it with BenchmarkDecodePublish of before that change for the read side's cost.
func BenchmarkDecodePublishAsServed(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchPublish)))
	for b.Loop() {
		if !utf8.Valid(benchPublish) {
			b.Fatal("invalid UTF-8")
		}
		if _, err := DecodeRequestLimited(benchPublish, DefaultLimits); err != nil {
			b.Fatal(err)
		}
	}
}
