package wire_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/transport/wire"
)

// TestServerFrameReadsWhatTheServerWrites: every frame the encoders append decodes into
// ServerFrame with its fields where a client looks for them.
func TestServerFrameReadsWhatTheServerWrites(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	rid := "r-1"
	decode := func(b []byte) wire.ServerFrame {
		t.Helper()
		var f wire.ServerFrame
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		return f
	}

	ack := decode(wire.AppendSubscribeAck(nil, &rid, "orders", wire.SubscribeAck{Epoch: "9b2e", Seq: 42, Resumed: true}, now))
	if ack.Type != wire.TypeAck || ack.RequestID != rid || ack.Topic != "orders" || ack.Status != "ok" ||
		ack.Epoch != "9b2e" || ack.Seq != 42 || ack.Recovered == nil || *ack.Recovered || ack.TS != "2026-11-27T10:00:00.000Z" {
		t.Errorf("subscribe ack: %+v", ack)
	}
	if plain := decode(wire.AppendAck(nil, &rid, "orders", now)); plain.Recovered != nil || plain.Status != "ok" {
		t.Errorf("publish ack: %+v", plain)
	}

	id := uuid.New()
	ev := &domain.Event{Topic: "orders", Seq: 7, Time: now, Message: domain.Message{
		ID: id, Payload: json.RawMessage(`{"n":7}`), Headers: map[string]string{"k": "v"}}}
	e := decode(wire.EncodeEvent(ev))
	if e.Type != wire.TypeEvent || e.Topic != "orders" || e.Seq != 7 || e.Message == nil || e.Message.ID != id.String() ||
		string(e.Message.Payload) != `{"n":7}` || e.Message.Headers["k"] != "v" {
		t.Errorf("event: %+v %+v", e, e.Message)
	}

	er := decode(wire.AppendError(nil, &rid, "orders", wire.CodeTopicNotFound, "no such topic", now))
	if er.Type != wire.TypeError || er.Error == nil || er.Error.Code != wire.CodeTopicNotFound || er.Error.Message != "no such topic" {
		t.Errorf("error: %+v", er)
	}

	in := decode(wire.AppendInfo(nil, "orders", wire.InfoTopicDeleted, now))
	if in.Type != wire.TypeInfo || in.Msg != wire.InfoTopicDeleted || in.Topic != "orders" {
		t.Errorf("info: %+v", in)
	}
	gap := decode([]byte(`{"type":"info","topic":"orders","msg":"gap","from_seq":41,"to_seq":44,"ts":"2026-11-27T10:00:00.000Z"}`))
	if gap.Msg != wire.InfoGap || gap.FromSeq != 41 || gap.ToSeq != 44 {
		t.Errorf("gap: %+v", gap)
	}
}
