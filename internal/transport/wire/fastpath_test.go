package wire

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// FuzzTypedMatchesByField: the one-pass decoder must accept, refuse and describe every frame it
// can read exactly as the precise field-by-field decoder does; it is only a faster road there.
func FuzzTypedMatchesByField(f *testing.F) {
	for _, seed := range []string{
		`{"type":"subscribe","topic":"orders","client_id":"s1","last_n":5,"request_id":"r-1"}`,
		`{"type":"unsubscribe","topic":"orders","client_id":"","request_id":null}`,
		`{"type":"publish","topic":"orders","message":{"id":"` + testUUID + `","payload":{"any":"json"}},"request_id":"r-3"}`,
		`{"type":"publish","topic":"t","message":{"id":"` + testUUID + `","payload":null,"headers":{"traceparent":"` + testTP + `","k":"v"}}}`,
		`{"type":"publish","topic":"t","message":{"id":"","payload":1,"headers":{}}}`,
		`{"type":"publish","topic":"t","message":{"payload":1}}`,
		`{"type":"publish","topic":"t","message":null}`,
		`{"type":"ping","traceparent":"` + testTP + `","tracestate":"a=b"}`,
		`{"type":"ping","traceparent":""}`,
		`{"type":"","topic":null}`,
		`{"type":"subscribe","topic":"t","client_id":"c","last_n":1.5}`,
		`{"type":"subscribe","topic":"a b","client_id":"c"}`,
		`{"type":"subscribe","topic":"t","client_id":"c","since_seq":18446744073709551615,"epoch":"ab","last_n":2}`,
		`{"type":"subscribe","topic":"t","client_id":"c","since_seq":-0,"epoch":""}`,
		`{"type":"subscribe","topic":"t","client_id":"c","since_seq":1e2,"epoch":"` + strings.Repeat("e", 257) + `"}`,
		`{"TYPE":"ping","Request_ID":"x"}`,
		`{"type":"ping","request_id":"` + strings.Repeat(`\u0041`, 257) + `"}`,
		`{"type":"publish","topic":"t","message":{"id":"` + testUUID + `","payload":1,"headers":{ "a\"b" : null , "c":"\u00e9"}}}`,
		`{"type":"publish","topic":"t","message":{"id":"` + testUUID + `","payload":1,"headers":` + headersJSON(17, 3, 1) + `}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tf := newTypedFrame(Limits{})
		if json.Unmarshal(data, &tf) != nil {
			return // only the precise decoder reads this frame
		}
		fast, fastErr := tf.request(Limits{})
		slow, slowErr := decodeByField(data, Limits{})
		if (fastErr == nil) != (slowErr == nil) || (fastErr != nil && fastErr.Error() != slowErr.Error()) {
			t.Fatalf("%s:\n typed:    %v\n by field: %v", data, fastErr, slowErr)
		}
		if fastErr == nil && !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%s:\n typed:    %+v\n by field: %+v", data, fast, slow)
		}
		if !reflect.DeepEqual(fast.RequestID, slow.RequestID) {
			t.Fatalf("%s: request_id %v vs %v", data, fast.RequestID, slow.RequestID)
		}
	})
}
