package wire

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/pubsubd/pubsub/internal/domain"
)

const (
	testUUID = "550e8400-e29b-41d4-a716-446655440000"
	testTP   = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	testTP2  = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
)

func strp(s string) *string { return &s }

func headersJSON(n, keyLen, valLen int) string {
	var parts []string
	for i := range n {
		k := fmt.Sprintf("k%0*d", max(keyLen-1, 1), i)
		parts = append(parts, fmt.Sprintf("%q:%q", k, strings.Repeat("v", valLen)))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func publishFrame(message string) string {
	return `{"type":"publish","topic":"orders","message":` + message + `,"request_id":"r"}`
}

func TestDecodeRequest(t *testing.T) {
	id := uuid.MustParse(testUUID)
	tests := []struct {
		name string
		in   string
		want Request // on success the whole Request; on error its Type and RequestID
		// wantErr is a substring of the error message; empty means success.
		wantErr string
	}{
		// The four client frames of PROTOCOL.md.
		{name: "subscribe", in: `{"type":"subscribe","topic":"orders","client_id":"s1","last_n":5,"request_id":"r-1"}`,
			want: Request{Type: TypeSubscribe, RequestID: strp("r-1"), Topic: "orders", ClientID: "s1", LastN: 5}},
		{name: "unsubscribe", in: `{"type":"unsubscribe","topic":"orders","client_id":"s1","request_id":"r-2"}`,
			want: Request{Type: TypeUnsubscribe, RequestID: strp("r-2"), Topic: "orders", ClientID: "s1"}},
		{name: "publish", in: `{"type":"publish","topic":"orders","message":{"id":"` + testUUID + `","payload":{"any":"json"}},"request_id":"r-3"}`,
			want: Request{Type: TypePublish, RequestID: strp("r-3"), Topic: "orders",
				Message: domain.Message{ID: id, Payload: []byte(`{"any":"json"}`)}}},
		{name: "ping", in: `{"type":"ping","request_id":"r-4"}`, want: Request{Type: TypePing, RequestID: strp("r-4")}},

		// Optional and ignored fields.
		{name: "ping without request_id", in: `{"type":"ping"}`, want: Request{Type: TypePing}},
		{name: "ping ignores a bad topic", in: `{"type":"ping","topic":"a b"}`, want: Request{Type: TypePing}},
		{name: "request_id null is none", in: `{"type":"ping","request_id":null}`, want: Request{Type: TypePing}},
		{name: "empty request_id is echoed", in: `{"type":"ping","request_id":""}`, want: Request{Type: TypePing, RequestID: strp("")}},
		{name: "unknown fields ignored", in: `{"type":"unsubscribe","topic":"t","client_id":"c","extra":[1,{"x":2}],"v":2}`,
			want: Request{Type: TypeUnsubscribe, Topic: "t", ClientID: "c"}},
		{name: "unsubscribe ignores last_n", in: `{"type":"unsubscribe","topic":"t","client_id":"c","last_n":-1}`,
			want: Request{Type: TypeUnsubscribe, Topic: "t", ClientID: "c"}},
		{name: "whitespace around the frame", in: " \n{ \"type\" : \"ping\" }\t", want: Request{Type: TypePing}},
		{name: "255-character topic", in: `{"type":"unsubscribe","topic":"` + strings.Repeat("t", 255) + `","client_id":"c"}`,
			want: Request{Type: TypeUnsubscribe, Topic: domain.TopicName(strings.Repeat("t", 255)), ClientID: "c"}},
		{name: "client_id of 256 bytes", in: `{"type":"unsubscribe","topic":"t","client_id":"` + strings.Repeat("c", 256) + `"}`,
			want: Request{Type: TypeUnsubscribe, Topic: "t", ClientID: strings.Repeat("c", 256)}},

		// last_n: any JSON number with an integral value, capped where no history reaches.
		{name: "last_n absent", in: `{"type":"subscribe","topic":"t","client_id":"c"}`, want: Request{Type: TypeSubscribe, Topic: "t", ClientID: "c"}},
		{name: "last_n null", in: `{"type":"subscribe","topic":"t","client_id":"c","last_n":null}`, want: Request{Type: TypeSubscribe, Topic: "t", ClientID: "c"}},
		{name: "last_n 0", in: `{"type":"subscribe","topic":"t","client_id":"c","last_n":0}`, want: Request{Type: TypeSubscribe, Topic: "t", ClientID: "c"}},
		{name: "last_n 5.0", in: `{"type":"subscribe","topic":"t","client_id":"c","last_n":5.0}`, want: Request{Type: TypeSubscribe, Topic: "t", ClientID: "c", LastN: 5}},
		{name: "last_n 1e2", in: `{"type":"subscribe","topic":"t","client_id":"c","last_n":1e2}`, want: Request{Type: TypeSubscribe, Topic: "t", ClientID: "c", LastN: 100}},
		{name: "last_n -0", in: `{"type":"subscribe","topic":"t","client_id":"c","last_n":-0}`, want: Request{Type: TypeSubscribe, Topic: "t", ClientID: "c"}},
		{name: "last_n 0.0e5", in: `{"type":"subscribe","topic":"t","client_id":"c","last_n":0.0e5}`, want: Request{Type: TypeSubscribe, Topic: "t", ClientID: "c"}},
		{name: "last_n huge", in: `{"type":"subscribe","topic":"t","client_id":"c","last_n":99999999999999999999}`,
			want: Request{Type: TypeSubscribe, Topic: "t", ClientID: "c", LastN: math.MaxInt32}},
		{name: "last_n 1e30", in: `{"type":"subscribe","topic":"t","client_id":"c","last_n":1e30}`,
			want: Request{Type: TypeSubscribe, Topic: "t", ClientID: "c", LastN: math.MaxInt32}},
		{name: "last_n beyond float64", in: `{"type":"subscribe","topic":"t","client_id":"c","last_n":1e400}`,
			want: Request{Type: TypeSubscribe, Topic: "t", ClientID: "c", LastN: math.MaxInt32}},

		// since_seq and epoch (extension): an exact unsigned 64-bit integer, with the epoch it counts in.
		{name: "since_seq with epoch", in: `{"type":"subscribe","topic":"t","client_id":"c","since_seq":3,"epoch":"ab12"}`,
			want: Request{Type: TypeSubscribe, Topic: "t", ClientID: "c", Resume: true, SinceSeq: 3, Epoch: "ab12"}},
		{name: "since_seq 0", in: `{"type":"subscribe","topic":"t","client_id":"c","since_seq":0,"epoch":"e"}`,
			want: Request{Type: TypeSubscribe, Topic: "t", ClientID: "c", Resume: true, Epoch: "e"}},
		{name: "since_seq max uint64 read exactly", in: `{"type":"subscribe","topic":"t","client_id":"c","since_seq":18446744073709551615,"epoch":"e"}`,
			want: Request{Type: TypeSubscribe, Topic: "t", ClientID: "c", Resume: true, SinceSeq: math.MaxUint64, Epoch: "e"}},
		{name: "since_seq 2^53+1 read exactly", in: `{"type":"subscribe","topic":"t","client_id":"c","since_seq":9007199254740993,"epoch":"e"}`,
			want: Request{Type: TypeSubscribe, Topic: "t", ClientID: "c", Resume: true, SinceSeq: 1<<53 + 1, Epoch: "e"}},
		{name: "since_seq 5.0", in: `{"type":"subscribe","topic":"t","client_id":"c","since_seq":5.0,"epoch":"e"}`,
			want: Request{Type: TypeSubscribe, Topic: "t", ClientID: "c", Resume: true, SinceSeq: 5, Epoch: "e"}},
		{name: "since_seq keeps last_n", in: `{"type":"subscribe","topic":"t","client_id":"c","since_seq":1,"epoch":"e","last_n":4}`,
			want: Request{Type: TypeSubscribe, Topic: "t", ClientID: "c", LastN: 4, Resume: true, SinceSeq: 1, Epoch: "e"}},
		{name: "since_seq null is no resume", in: `{"type":"subscribe","topic":"t","client_id":"c","since_seq":null,"epoch":"e"}`,
			want: Request{Type: TypeSubscribe, Topic: "t", ClientID: "c"}},
		{name: "epoch alone is ignored", in: `{"type":"subscribe","topic":"t","client_id":"c","epoch":"e"}`,
			want: Request{Type: TypeSubscribe, Topic: "t", ClientID: "c"}},
		{name: "unsubscribe ignores since_seq", in: `{"type":"unsubscribe","topic":"t","client_id":"c","since_seq":-1,"epoch":7}`,
			want: Request{Type: TypeUnsubscribe, Topic: "t", ClientID: "c"}},
		{name: "since_seq negative", in: `{"type":"subscribe","topic":"t","client_id":"c","since_seq":-1,"epoch":"e"}`,
			want: Request{Type: TypeSubscribe}, wantErr: "since_seq must be an integer from 0"},
		{name: "since_seq fraction", in: `{"type":"subscribe","topic":"t","client_id":"c","since_seq":0.5,"epoch":"e"}`,
			want: Request{Type: TypeSubscribe}, wantErr: "since_seq must be an integer from 0"},
		{name: "since_seq tiny", in: `{"type":"subscribe","topic":"t","client_id":"c","since_seq":1e-400,"epoch":"e"}`,
			want: Request{Type: TypeSubscribe}, wantErr: "since_seq must be an integer from 0"},
		{name: "since_seq beyond uint64", in: `{"type":"subscribe","topic":"t","client_id":"c","since_seq":18446744073709551616,"epoch":"e"}`,
			want: Request{Type: TypeSubscribe}, wantErr: "since_seq must be an integer from 0"},
		{name: "since_seq as a float beyond 2^53", in: `{"type":"subscribe","topic":"t","client_id":"c","since_seq":1e17,"epoch":"e"}`,
			want: Request{Type: TypeSubscribe}, wantErr: "since_seq must be an integer from 0"},
		{name: "since_seq string", in: `{"type":"subscribe","topic":"t","client_id":"c","since_seq":"3","epoch":"e"}`,
			want: Request{Type: TypeSubscribe}, wantErr: "since_seq must be an integer from 0"},
		{name: "since_seq array", in: `{"type":"subscribe","topic":"t","client_id":"c","since_seq":[3],"epoch":"e"}`,
			want: Request{Type: TypeSubscribe}, wantErr: "since_seq must be an integer from 0"},
		{name: "since_seq without epoch", in: `{"type":"subscribe","topic":"t","client_id":"c","since_seq":3}`,
			want: Request{Type: TypeSubscribe}, wantErr: "epoch is required with since_seq"},
		{name: "epoch number", in: `{"type":"subscribe","topic":"t","client_id":"c","since_seq":3,"epoch":3}`,
			want: Request{Type: TypeSubscribe}, wantErr: "epoch must be a string"},
		{name: "epoch too long", in: `{"type":"subscribe","topic":"t","client_id":"c","since_seq":3,"epoch":"` + strings.Repeat("e", 257) + `"}`,
			want: Request{Type: TypeSubscribe}, wantErr: "epoch is longer than 256 bytes"},

		// Publish variants: payload is any JSON value, byte for byte.
		{name: "payload null", in: publishFrame(`{"id":"` + testUUID + `","payload":null}`),
			want: Request{Type: TypePublish, RequestID: strp("r"), Topic: "orders", Message: domain.Message{ID: id, Payload: []byte(`null`)}}},
		{name: "payload keeps its bytes", in: publishFrame(`{"id":"` + testUUID + `","payload":{"b" : 1,"a":[1.50, "\u00e9"]}}`),
			want: Request{Type: TypePublish, RequestID: strp("r"), Topic: "orders", Message: domain.Message{ID: id, Payload: []byte(`{"b" : 1,"a":[1.50, "\u00e9"]}`)}}},
		{name: "payload string", in: publishFrame(`{"id":"` + testUUID + `","payload":"hi"}`),
			want: Request{Type: TypePublish, RequestID: strp("r"), Topic: "orders", Message: domain.Message{ID: id, Payload: []byte(`"hi"`)}}},
		{name: "uppercase uuid", in: publishFrame(`{"id":"` + strings.ToUpper(testUUID) + `","payload":1}`),
			want: Request{Type: TypePublish, RequestID: strp("r"), Topic: "orders", Message: domain.Message{ID: id, Payload: []byte(`1`)}}},
		{name: "headers", in: publishFrame(`{"id":"` + testUUID + `","payload":1,"headers":{"traceparent":"` + testTP + `","tracestate":"a=b","x":"y"}}`),
			want: Request{Type: TypePublish, RequestID: strp("r"), Topic: "orders", TraceParent: testTP, TraceState: "a=b",
				Message: domain.Message{ID: id, Payload: []byte(`1`), Headers: map[string]string{"traceparent": testTP, "tracestate": "a=b", "x": "y"}}}},
		{name: "headers null", in: publishFrame(`{"id":"` + testUUID + `","payload":1,"headers":null}`),
			want: Request{Type: TypePublish, RequestID: strp("r"), Topic: "orders", Message: domain.Message{ID: id, Payload: []byte(`1`)}}},
		{name: "16 headers at the size limits", in: publishFrame(`{"id":"` + testUUID + `","payload":1,"headers":` + headersJSON(16, 128, 1024) + `}`),
			want: Request{Type: TypePublish, RequestID: strp("r"), Topic: "orders", Message: domain.Message{ID: id, Payload: []byte(`1`),
				Headers: mustHeaders(headersJSON(16, 128, 1024))}}},
		{name: "top-level traceparent", in: `{"type":"ping","traceparent":"` + testTP + `","tracestate":"k=v"}`,
			want: Request{Type: TypePing, TraceParent: testTP, TraceState: "k=v"}},
		{name: "headers traceparent wins over top-level", in: `{"type":"publish","topic":"t","traceparent":"` + testTP2 + `","message":{"id":"` + testUUID + `","payload":1,"headers":{"traceparent":"` + testTP + `"}}}`,
			want: Request{Type: TypePublish, Topic: "t", TraceParent: testTP,
				Message: domain.Message{ID: id, Payload: []byte(`1`), Headers: map[string]string{"traceparent": testTP}}}},

		// The frame itself.
		{name: "not JSON", in: `hello`, wantErr: "frame is not valid JSON"},
		{name: "empty frame", in: ``, wantErr: "frame is not valid JSON"},
		{name: "truncated JSON", in: `{"type":"ping"`, wantErr: "frame is not valid JSON"},
		{name: "two values", in: `{"type":"ping"}{}`, wantErr: "frame is not valid JSON"},
		{name: "JSON array", in: `[{"type":"ping"}]`, wantErr: "frame must be a JSON object"},
		{name: "JSON string", in: `"ping"`, wantErr: "frame must be a JSON object"},
		{name: "JSON number", in: `42`, wantErr: "frame must be a JSON object"},
		{name: "JSON null", in: `null`, wantErr: "type is required"},

		// type.
		{name: "type missing", in: `{"request_id":"r-5"}`, want: Request{RequestID: strp("r-5")}, wantErr: "type is required"},
		{name: "type null", in: `{"type":null}`, wantErr: "type is required"},
		{name: "type unknown", in: `{"type":"shout","request_id":"r-6"}`, want: Request{RequestID: strp("r-6")}, wantErr: `unknown type "shout"`},
		{name: "type wrong case", in: `{"type":"PING"}`, wantErr: `unknown type "PING"`},
		{name: "type not a string", in: `{"type":5,"request_id":"r-7"}`, want: Request{RequestID: strp("r-7")}, wantErr: "type must be a string"},
		{name: "type object", in: `{"type":{"a":1}}`, wantErr: "type must be a string"},
		{name: "long unknown type is truncated", in: `{"type":"` + strings.Repeat("x", 1000) + `"}`, wantErr: strings.Repeat("x", 64) + "…"},

		// request_id.
		{name: "request_id number", in: `{"type":"ping","request_id":7}`, wantErr: "request_id must be a string"},
		{name: "request_id object", in: `{"type":"ping","request_id":{}}`, wantErr: "request_id must be a string"},
		{name: "request_id echoed on a bad topic", in: `{"type":"subscribe","topic":"a/b","client_id":"c","request_id":"r-8"}`,
			want: Request{Type: TypeSubscribe, RequestID: strp("r-8")}, wantErr: "outside A-Z"},

		// topic.
		{name: "topic missing", in: `{"type":"subscribe","client_id":"c","request_id":"r"}`, want: Request{Type: TypeSubscribe, RequestID: strp("r")}, wantErr: "topic is required"},
		{name: "topic null", in: `{"type":"publish","topic":null}`, want: Request{Type: TypePublish}, wantErr: "topic is required"},
		{name: "topic empty", in: `{"type":"unsubscribe","topic":"","client_id":"c"}`, want: Request{Type: TypeUnsubscribe}, wantErr: "topic is required"},
		{name: "topic number", in: `{"type":"unsubscribe","topic":1,"client_id":"c"}`, want: Request{Type: TypeUnsubscribe}, wantErr: "topic must be a string"},
		{name: "topic with a space", in: `{"type":"subscribe","topic":"a b","client_id":"c"}`, want: Request{Type: TypeSubscribe}, wantErr: "outside A-Z"},
		{name: "topic with unicode", in: `{"type":"subscribe","topic":"caf\u00e9","client_id":"c"}`, want: Request{Type: TypeSubscribe}, wantErr: "outside A-Z"},
		{name: "topic with NUL", in: `{"type":"subscribe","topic":"a\u0000b","client_id":"c"}`, want: Request{Type: TypeSubscribe}, wantErr: "outside A-Z"},
		{name: "topic of 256 characters", in: `{"type":"subscribe","topic":"` + strings.Repeat("t", 256) + `","client_id":"c"}`, want: Request{Type: TypeSubscribe}, wantErr: "the limit is 255"},

		// client_id.
		{name: "client_id missing on subscribe", in: `{"type":"subscribe","topic":"t"}`, want: Request{Type: TypeSubscribe}, wantErr: "client_id is required"},
		{name: "client_id missing on unsubscribe", in: `{"type":"unsubscribe","topic":"t"}`, want: Request{Type: TypeUnsubscribe}, wantErr: "client_id is required"},
		{name: "client_id null", in: `{"type":"subscribe","topic":"t","client_id":null}`, want: Request{Type: TypeSubscribe}, wantErr: "client_id is required"},
		{name: "client_id empty", in: `{"type":"subscribe","topic":"t","client_id":""}`, want: Request{Type: TypeSubscribe}, wantErr: "client_id is required"},
		{name: "client_id number", in: `{"type":"subscribe","topic":"t","client_id":1}`, want: Request{Type: TypeSubscribe}, wantErr: "client_id must be a string"},
		{name: "client_id too long", in: `{"type":"subscribe","topic":"t","client_id":"` + strings.Repeat("c", 257) + `"}`, want: Request{Type: TypeSubscribe}, wantErr: "longer than 256 bytes"},

		// last_n.
		{name: "last_n negative", in: `{"type":"subscribe","topic":"t","client_id":"c","last_n":-1}`, want: Request{Type: TypeSubscribe}, wantErr: "last_n must be a non-negative integer"},
		{name: "last_n 1.5", in: `{"type":"subscribe","topic":"t","client_id":"c","last_n":1.5}`, want: Request{Type: TypeSubscribe}, wantErr: "last_n must be a non-negative integer"},
		{name: "last_n string", in: `{"type":"subscribe","topic":"t","client_id":"c","last_n":"5"}`, want: Request{Type: TypeSubscribe}, wantErr: "last_n must be a non-negative integer"},
		{name: "last_n bool", in: `{"type":"subscribe","topic":"t","client_id":"c","last_n":true}`, want: Request{Type: TypeSubscribe}, wantErr: "last_n must be a non-negative integer"},
		{name: "last_n array", in: `{"type":"subscribe","topic":"t","client_id":"c","last_n":[5]}`, want: Request{Type: TypeSubscribe}, wantErr: "last_n must be a non-negative integer"},
		{name: "last_n tiny fraction", in: `{"type":"subscribe","topic":"t","client_id":"c","last_n":1e-400}`, want: Request{Type: TypeSubscribe}, wantErr: "last_n must be a non-negative integer"},
		{name: "last_n huge negative", in: `{"type":"subscribe","topic":"t","client_id":"c","last_n":-1e400}`, want: Request{Type: TypeSubscribe}, wantErr: "last_n must be a non-negative integer"},

		// message.
		{name: "message missing", in: `{"type":"publish","topic":"t","request_id":"r"}`, want: Request{Type: TypePublish, RequestID: strp("r")}, wantErr: "message is required"},
		{name: "message null", in: publishFrame(`null`), want: Request{Type: TypePublish, RequestID: strp("r")}, wantErr: "message is required"},
		{name: "message string", in: publishFrame(`"hi"`), want: Request{Type: TypePublish, RequestID: strp("r")}, wantErr: "message must be an object"},
		{name: "message array", in: publishFrame(`[]`), want: Request{Type: TypePublish, RequestID: strp("r")}, wantErr: "message must be an object"},
		{name: "message.id missing", in: publishFrame(`{"payload":1}`), want: Request{Type: TypePublish, RequestID: strp("r")}, wantErr: "message.id is required"},
		{name: "message.id null", in: publishFrame(`{"id":null,"payload":1}`), want: Request{Type: TypePublish, RequestID: strp("r")}, wantErr: "message.id is required"},
		{name: "message.id number", in: publishFrame(`{"id":5,"payload":1}`), want: Request{Type: TypePublish, RequestID: strp("r")}, wantErr: "message.id must be a valid UUID"},
		{name: "message.id not a uuid", in: publishFrame(`{"id":"not-a-uuid","payload":1}`), want: Request{Type: TypePublish, RequestID: strp("r")}, wantErr: "message.id must be a valid UUID"},
		{name: "message.id nil uuid", in: publishFrame(`{"id":"00000000-0000-0000-0000-000000000000","payload":1}`), want: Request{Type: TypePublish, RequestID: strp("r")}, wantErr: "message.id must be a valid UUID"},
		{name: "message.id without hyphens", in: publishFrame(`{"id":"550e8400e29b41d4a716446655440000","payload":1}`), want: Request{Type: TypePublish, RequestID: strp("r")}, wantErr: "message.id must be a valid UUID"},
		{name: "message.id in braces", in: publishFrame(`{"id":"{` + testUUID + `}","payload":1}`), want: Request{Type: TypePublish, RequestID: strp("r")}, wantErr: "message.id must be a valid UUID"},
		{name: "message.id urn", in: publishFrame(`{"id":"urn:uuid:` + testUUID + `","payload":1}`), want: Request{Type: TypePublish, RequestID: strp("r")}, wantErr: "message.id must be a valid UUID"},
		{name: "payload missing", in: publishFrame(`{"id":"` + testUUID + `"}`), want: Request{Type: TypePublish, RequestID: strp("r")}, wantErr: "message.payload is required (null is allowed)"},

		// message.headers.
		{name: "headers array", in: publishFrame(`{"id":"` + testUUID + `","payload":1,"headers":["a"]}`), want: Request{Type: TypePublish, RequestID: strp("r")}, wantErr: "message.headers must be an object of string values"},
		{name: "headers number value", in: publishFrame(`{"id":"` + testUUID + `","payload":1,"headers":{"a":1}}`), want: Request{Type: TypePublish, RequestID: strp("r")}, wantErr: "message.headers must be an object of string values"},
		{name: "headers too many", in: publishFrame(`{"id":"` + testUUID + `","payload":1,"headers":` + headersJSON(17, 4, 1) + `}`), want: Request{Type: TypePublish, RequestID: strp("r")}, wantErr: "has more than 16 entries"},
		{name: "headers key too long", in: publishFrame(`{"id":"` + testUUID + `","payload":1,"headers":` + headersJSON(1, 129, 1) + `}`), want: Request{Type: TypePublish, RequestID: strp("r")}, wantErr: "keys must be 1 to 128 bytes"},
		{name: "headers key empty", in: publishFrame(`{"id":"` + testUUID + `","payload":1,"headers":{"":"v"}}`), want: Request{Type: TypePublish, RequestID: strp("r")}, wantErr: "keys must be 1 to 128 bytes"},
		{name: "headers value too long", in: publishFrame(`{"id":"` + testUUID + `","payload":1,"headers":` + headersJSON(1, 4, 1025) + `}`), want: Request{Type: TypePublish, RequestID: strp("r")}, wantErr: "is longer than 1024 bytes"},
		{name: "headers invalid traceparent", in: publishFrame(`{"id":"` + testUUID + `","payload":1,"headers":{"traceparent":"00-xyz"}}`), want: Request{Type: TypePublish, RequestID: strp("r")}, wantErr: "message.headers.traceparent is not a valid W3C traceparent"},

		// Top-level trace context.
		{name: "top-level traceparent invalid", in: `{"type":"ping","traceparent":"garbage","request_id":"r"}`, want: Request{Type: TypePing, RequestID: strp("r")}, wantErr: "traceparent is not a valid W3C traceparent"},
		{name: "top-level traceparent not a string", in: `{"type":"ping","traceparent":1}`, want: Request{Type: TypePing}, wantErr: "traceparent must be a string"},
		{name: "top-level tracestate not a string", in: `{"type":"ping","tracestate":[]}`, want: Request{Type: TypePing}, wantErr: "tracestate must be a string"},
		{name: "top-level tracestate too long", in: `{"type":"ping","tracestate":"` + strings.Repeat("a", 1025) + `"}`, want: Request{Type: TypePing}, wantErr: "tracestate is longer than 1024 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeRequest([]byte(tt.in))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("DecodeRequest: %v", err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("DecodeRequest =\n%+v\nwant\n%+v", got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("DecodeRequest = %+v, want an error containing %q", got, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %q does not contain %q", err.Error(), tt.wantErr)
			}
			if domain.KindOf(err) != domain.KindInvalid {
				t.Fatalf("error kind = %d, want KindInvalid (BAD_REQUEST)", domain.KindOf(err))
			}
			if got.Type != tt.want.Type || !reflect.DeepEqual(got.RequestID, tt.want.RequestID) {
				t.Fatalf("on error: Type %q RequestID %v, want %q %v (for the error reply)",
					got.Type, deref(got.RequestID), tt.want.Type, deref(tt.want.RequestID))
			}
		})
	}
}

func mustHeaders(s string) map[string]string {
	var h map[string]string
	if err := json.Unmarshal([]byte(s), &h); err != nil {
		panic(err)
	}
	return h
}

func deref(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

// The decoded payload must not alias the frame buffer: the connection reuses it for the next frame
// while the event is still queued for subscribers.
func TestDecodeRequestPayloadDoesNotAliasFrame(t *testing.T) {
	frame := []byte(publishFrame(`{"id":"` + testUUID + `","payload":"abc"}`))
	req, err := DecodeRequest(frame)
	if err != nil {
		t.Fatal(err)
	}
	for i := range frame {
		frame[i] = 'X'
	}
	if string(req.Message.Payload) != `"abc"` {
		t.Fatalf("payload changed with the frame buffer: %q", req.Message.Payload)
	}
}

func TestValidTraceParent(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"valid sampled", testTP, true},
		{"valid unsampled", testTP2, true},
		{"empty", "", false},
		{"version ff", "ff" + testTP[2:], false},
		{"version 01", "01" + testTP[2:], false},
		{"uppercase hex", strings.ToUpper(testTP), false},
		{"zero trace id", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", false},
		{"zero span id", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false},
		{"non-hex flags", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g", false},
		{"wrong separator", "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
		{"too long", testTP + "-00", false},
		{"too short", testTP[:54], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidTraceParent(tt.in); got != tt.want {
				t.Fatalf("ValidTraceParent(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}
