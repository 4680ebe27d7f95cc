package wire

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/pubsubd/pubsub/internal/domain"
)

// FuzzDecodeRequest feeds arbitrary frames to the decoder. It must never panic; whatever it accepts
// must be a consistent Request whose replies and event encode to valid JSON; whatever it refuses
// must be a BAD_REQUEST that still echoes a readable request_id. Crashers found by -fuzz live in
// testdata/fuzz/FuzzDecodeRequest as regression seeds.
func FuzzDecodeRequest(f *testing.F) {
	for _, seed := range []string{
		`{"type":"subscribe","topic":"orders","client_id":"s1","last_n":5,"request_id":"r-1"}`,
		`{"type":"unsubscribe","topic":"orders","client_id":"s1","request_id":"r-2"}`,
		`{"type":"publish","topic":"orders","message":{"id":"` + testUUID + `","payload":{"any":"json"}},"request_id":"r-3"}`,
		`{"type":"ping","request_id":"r-4"}`,
		`{"type":"publish","topic":"t","message":{"id":"` + testUUID + `","payload":null,"headers":{"traceparent":"` + testTP + `"}}}`,
		`{"type":"subscribe","topic":"t","client_id":"c","last_n":1e400}`,
		`{"type":"subscribe","topic":"t","client_id":"c","since_seq":18446744073709551615,"epoch":"ab","last_n":2}`,
		`{"type":"subscribe","topic":"t","client_id":"c","since_seq":-0,"epoch":""}`,
		`{"type":"subscribe","topic":"t","client_id":"c","since_seq":1e2,"epoch":7}`,
		`[]`,
		``,
	} {
		f.Add([]byte(seed))
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, frame []byte) {
		req, err := DecodeRequest(frame)
		if req.RequestID != nil {
			checkEcho(t, AppendPong(nil, req.RequestID, now), *req.RequestID)
		}
		if err != nil {
			if domain.KindOf(err) != domain.KindInvalid {
				t.Fatalf("error %q has kind %d, want KindInvalid", err, domain.KindOf(err))
			}
			if req.Type != "" && !slices.Contains(ClientTypes[:4], req.Type) {
				t.Fatalf("error with Type %q", req.Type)
			}
			code, msg := WSError(err)
			reply := AppendError(nil, req.RequestID, "", code, msg, now)
			if !json.Valid(reply) || code != CodeBadRequest {
				t.Fatalf("error reply %q (code %s) is not a valid BAD_REQUEST frame", reply, code)
			}
			return
		}
		checkRequest(t, req)
		if req.Type == TypePublish {
			ev := &domain.Event{Topic: req.Topic, Seq: 1, Time: now, Message: req.Message}
			var f eventFrame
			if err := json.Unmarshal(EncodeEvent(ev), &f); err != nil {
				t.Fatalf("EncodeEvent of an accepted publish is invalid JSON: %v\n%s", err, EncodeEvent(ev))
			}
			if !bytes.Equal(f.Message.Payload, req.Message.Payload) {
				t.Fatalf("payload %q came back as %q", req.Message.Payload, f.Message.Payload)
			}
		}
	})
}

// checkRequest asserts what an accepted Request promises to the service.
func checkRequest(t *testing.T, req Request) {
	t.Helper()
	if req.TraceParent != "" && !ValidTraceParent(req.TraceParent) {
		t.Fatalf("accepted invalid traceparent %q", req.TraceParent)
	}
	if len(req.TraceState) > MaxHeaderValue {
		t.Fatalf("accepted a %d-byte tracestate", len(req.TraceState))
	}
	if req.Type == TypePing {
		if req.Topic != "" || req.ClientID != "" || req.LastN != 0 || req.Message.Payload != nil {
			t.Fatalf("ping carries operation fields: %+v", req)
		}
		return
	}
	if n, err := domain.ParseTopicName(string(req.Topic)); err != nil || n != req.Topic {
		t.Fatalf("accepted topic %q: %v", req.Topic, err)
	}
	switch req.Type {
	case TypeSubscribe, TypeUnsubscribe:
		if req.ClientID == "" || len(req.ClientID) > MaxClientIDLen {
			t.Fatalf("accepted client_id of %d bytes", len(req.ClientID))
		}
		if req.LastN < 0 || req.LastN > math.MaxInt32 || (req.Type == TypeUnsubscribe && req.LastN != 0) {
			t.Fatalf("%s with last_n %d", req.Type, req.LastN)
		}
		if req.Message.Payload != nil {
			t.Fatalf("%s carries a message", req.Type)
		}
	case TypePublish:
		m := req.Message
		if m.ID == uuid.Nil || !json.Valid(m.Payload) {
			t.Fatalf("accepted message id %v payload %q", m.ID, m.Payload)
		}
		if len(m.Headers) > MaxHeaders {
			t.Fatalf("accepted %d headers", len(m.Headers))
		}
		for k, v := range m.Headers {
			if k == "" || len(k) > MaxHeaderKey || len(v) > MaxHeaderValue {
				t.Fatalf("accepted header %q of %d bytes", k, len(v))
			}
		}
		if tp, ok := m.Headers["traceparent"]; ok && tp != req.TraceParent {
			t.Fatalf("headers.traceparent %q but TraceParent %q", tp, req.TraceParent)
		}
	default:
		t.Fatalf("accepted type %q", req.Type)
	}
}

// checkEcho asserts that a reply is valid JSON whose request_id is the one the client sent.
func checkEcho(t *testing.T, reply []byte, requestID string) {
	t.Helper()
	var r struct {
		RequestID *string `json:"request_id"`
	}
	if err := json.Unmarshal(reply, &r); err != nil {
		t.Fatalf("reply %q is invalid JSON: %v", reply, err)
	}
	if r.RequestID == nil || *r.RequestID != requestID {
		t.Fatalf("reply echoes request_id %v, want %q", r.RequestID, requestID)
	}
}
