package wire

import (
	"bytes"
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/transport/httpapi/api"
)

// The AsyncAPI document (package api) against this package, which encodes and decodes every frame:
// each frame the encoders write is valid by its message's schema, and uses every field the schema
// has; each field the decoder reads is in the document, and the decoder and the schemas agree on
// which client frames are valid; the frame types, info notices and error codes are the same sets.
//
// The schemas are JSON Schema draft 7, the AsyncAPI 3.0 default, checked with
// santhosh-tekuri/jsonschema (already in the module graph through kin-openapi, which uses it for
// OpenAPI 3.1): a full draft 7 validator, formats (date-time, uuid) asserted, so const, oneOf,
// dependencies and propertyNames mean what the linters and code generators read them to mean.

const asyncapiURL = "urn:pubsub:asyncapi.json"

// asyncDoc is asyncapi.json, decoded, with a compiler of its schemas.
type asyncDoc struct {
	raw      map[string]any
	compiler *jsonschema.Compiler
}

func loadAsyncAPI(t *testing.T) *asyncDoc {
	t.Helper()
	var raw map[string]any
	if err := json.Unmarshal(api.AsyncAPI, &raw); err != nil {
		t.Fatalf("asyncapi.json is not JSON: %v", err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(api.AsyncAPI))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7)
	c.AssertFormat()
	if err := c.AddResource(asyncapiURL, doc); err != nil {
		t.Fatal(err)
	}
	return &asyncDoc{raw: raw, compiler: c}
}

// obj walks the decoded document by keys; nil where a key is missing.
func obj(v any, keys ...string) map[string]any {
	for _, k := range keys {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	m, _ := v.(map[string]any)
	return m
}

// messages returns the component messages by name.
func (d *asyncDoc) messages() map[string]map[string]any {
	out := map[string]map[string]any{}
	for name, m := range obj(d.raw, "components", "messages") {
		out[name] = m.(map[string]any)
	}
	return out
}

// payloadSchema returns the schema (decoded) and its compiled form of a component message.
func (d *asyncDoc) payloadSchema(t *testing.T, message string) (map[string]any, *jsonschema.Schema) {
	t.Helper()
	ref, _ := obj(d.raw, "components", "messages", message, "payload")["$ref"].(string)
	if !strings.HasPrefix(ref, "#/components/schemas/") {
		t.Fatalf("message %s: payload is not a $ref to a component schema: %q", message, ref)
	}
	s, err := d.compiler.Compile(asyncapiURL + ref)
	if err != nil {
		t.Fatalf("message %s: schema %s does not compile: %v", message, ref, err)
	}
	return obj(d.raw, "components", "schemas", strings.TrimPrefix(ref, "#/components/schemas/")), s
}

func validate(s *jsonschema.Schema, frame []byte) error {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(frame))
	if err != nil {
		return err
	}
	return s.Validate(inst)
}

// constOf returns the const of a schema's property (type, msg), "" if none.
func constOf(schema map[string]any, prop string) string {
	c, _ := obj(schema, "properties", prop)["const"].(string)
	return c
}

// fieldPaths lists the fields of a decoded JSON object: its keys, and "key.sub" for the keys of
// the objects message and error, which are the frames' nested records. Payloads and headers are
// open, so nothing below them is listed.
func fieldPaths(v map[string]any) []string {
	var out []string
	for k, sub := range v {
		out = append(out, k)
		if m, ok := sub.(map[string]any); ok && (k == "message" || k == "error") {
			for sk := range m {
				out = append(out, k+"."+sk)
			}
		}
	}
	return out
}

// schemaPaths lists the fields a schema declares, as fieldPaths lists a frame's.
func (d *asyncDoc) schemaPaths(schema map[string]any) []string {
	var out []string
	for k, sub := range obj(schema, "properties") {
		out = append(out, k)
		if k != "message" && k != "error" {
			continue
		}
		for sk := range obj(sub, "properties") {
			out = append(out, k+"."+sk)
		}
	}
	return out
}

// TestAsyncAPIServerFrames encodes every server frame this package writes, in each of its shapes,
// and validates it against its message in asyncapi.json; and each field the document declares for
// a message is written by at least one of them, so the document describes no field the server
// never sends. gap and discontinuity are encoded by the Redis engine: their examples are checked
// in TestAsyncAPIExamples.
func TestAsyncAPIServerFrames(t *testing.T) {
	d := loadAsyncAPI(t)
	now := time.Date(2026, 1, 2, 3, 4, 5, 678e6, time.UTC)
	rid := "r-1"
	odd := "r-\"quoted\"\n\x01é\xff" // escapes and invalid UTF-8 echo back as valid JSON
	id := uuid.MustParse("550e8400-e29b-41d4-a716-446655440000")
	event := func(payload string, headers map[string]string, seq uint64) []byte {
		return EncodeEvent(&domain.Event{Topic: "orders", Seq: seq, Time: now,
			Message: domain.Message{ID: id, Payload: json.RawMessage(payload), Headers: headers}})
	}
	frames := []struct {
		message string
		frame   []byte
	}{
		{"Ack", AppendAck(nil, &rid, "orders", now)},
		{"Ack", AppendAck(nil, nil, "", now)},
		{"Ack", AppendAck(nil, &odd, "orders.eu:1", now)},
		{"SubscribeAck", AppendSubscribeAck(nil, &rid, "orders", SubscribeAck{Epoch: "9b2e51c07d3fa468", Seq: 42}, now)},
		{"SubscribeAck", AppendSubscribeAck(nil, nil, "orders", SubscribeAck{Epoch: "9b2e51c07d3fa468", Resumed: true, Recovered: true}, now)},
		{"SubscribeAck", AppendSubscribeAck(nil, nil, "orders", SubscribeAck{Epoch: "e", Seq: ^uint64(0), Resumed: true}, now)},
		{"Error", AppendError(nil, &rid, "", CodeBadRequest, "message.id must be a valid UUID", now)},
		{"Error", AppendError(nil, &odd, "orders", CodeUnauthorized, "may not publish to topic \"orders\"", now)},
		{"Error", AppendError(nil, nil, "", CodeInternal, "internal error", now)},
		{"SlowConsumer", AppendError(nil, nil, "orders", CodeSlowConsumer, "dropped 17 messages", now)},
		{"Error", AppendError(nil, nil, "orders", CodeSlowConsumer, "dropped 17 messages", now)},
		{"Pong", AppendPong(nil, &rid, now)},
		{"Pong", AppendPong(nil, nil, now)},
		{"Heartbeat", AppendInfo(nil, "", InfoPing, now)},
		{"ServerShutdown", AppendInfo(nil, "", InfoServerShutdown, now)},
		{"TopicDeleted", AppendInfo(nil, "orders", InfoTopicDeleted, now)},
		{"SubscriptionReplaced", AppendInfo(nil, "orders", InfoSubscriptionReplaced, now)},
		{"Unsubscribed", AppendInfo(nil, "orders", InfoUnsubscribed, now)},
		{"Event", event(`{"any":"json"}`, nil, 1)},
		{"Event", event(`null`, nil, 42)},
		{"Event", event(`[1,"two",{"three":3.5}]`, map[string]string{
			"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate": "k=v", "tenant": "eu-1"}, ^uint64(0))},
	}
	// Every error code the table gives a WebSocket client, in an error reply.
	for _, m := range errorTable {
		frames = append(frames, struct {
			message string
			frame   []byte
		}{"Error", AppendError(nil, &rid, "", m.ws, "x", now)})
	}

	seen := map[string]map[string]bool{}
	for _, f := range frames {
		_, s := d.payloadSchema(t, f.message)
		if err := validate(s, f.frame); err != nil {
			t.Errorf("%s frame %s breaks asyncapi.json: %v", f.message, f.frame, err)
			continue
		}
		var v map[string]any
		if err := json.Unmarshal(f.frame, &v); err != nil {
			t.Fatalf("%s: %v", f.frame, err)
		}
		if seen[f.message] == nil {
			seen[f.message] = map[string]bool{}
		}
		for _, p := range fieldPaths(v) {
			seen[f.message][p] = true
		}
	}
	elsewhere := map[string]string{
		"Gap":           "written by the Redis engine (broker/redis gapNotice)",
		"Discontinuity": "written by the Redis engine (broker/redis discontinuity)",
	}
	for name, m := range d.messages() {
		schema, _ := d.payloadSchema(t, name)
		if constOf(schema, "type") == "" || !slices.Contains(ServerTypes, constOf(schema, "type")) {
			continue // a client frame
		}
		if _, ok := elsewhere[name]; ok {
			continue
		}
		if seen[name] == nil {
			t.Errorf("message %s (%v) is never encoded by this test: add its encoder", name, m["summary"])
			continue
		}
		for _, p := range d.schemaPaths(schema) {
			if !seen[name][p] {
				t.Errorf("message %s declares field %q, which no encoded frame carries", name, p)
			}
		}
	}
}

// TestAsyncAPIClientFrames: every field the decoder reads is a field of a client frame in
// asyncapi.json and the other way round, and for a table of valid and invalid frames the decoder
// and the document's schema agree.
func TestAsyncAPIClientFrames(t *testing.T) {
	d := loadAsyncAPI(t)
	byType := map[string]string{}
	documented := map[string]bool{}
	for name := range d.messages() {
		schema, _ := d.payloadSchema(t, name)
		typ := constOf(schema, "type")
		if !slices.Contains(ClientTypes, typ) {
			continue
		}
		byType[typ] = name
		for _, p := range d.schemaPaths(schema) {
			documented[p] = true
		}
	}
	decoded := map[string]bool{}
	for _, typ := range []reflect.Type{reflect.TypeFor[rawFrame](), reflect.TypeFor[typedFrame]()} {
		for f := range typ.Fields() {
			decoded[f.Tag.Get("json")] = true
		}
	}
	for _, typ := range []reflect.Type{reflect.TypeFor[rawMessage](), reflect.TypeFor[typedMessage]()} {
		for f := range typ.Fields() {
			decoded["message."+f.Tag.Get("json")] = true
		}
	}
	if got, want := slices.Sorted(maps.Keys(documented)), slices.Sorted(maps.Keys(decoded)); !slices.Equal(got, want) {
		t.Errorf("client frame fields in asyncapi.json:\n  %v\nfields the decoder reads:\n  %v", got, want)
	}

	const id = `"550e8400-e29b-41d4-a716-446655440000"`
	tp := `"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"`
	many := make([]string, MaxHeaders+1)
	for i := range many {
		many[i] = `"k` + string(rune('a'+i)) + `":"v"`
	}
	tests := []struct {
		frame string
		valid bool
	}{
		{`{"type":"ping"}`, true},
		{`{"type":"ping","request_id":"r-4","traceparent":` + tp + `,"tracestate":"k=v"}`, true},
		{`{"type":"ping","traceparent":"00-0-0-01"}`, false},
		{`{"type":"subscribe","topic":"orders","client_id":"s1"}`, true},
		{`{"type":"subscribe","topic":"orders","client_id":"s1","last_n":5,"request_id":"r-1","unknown":true}`, true},
		{`{"type":"subscribe","topic":"orders","client_id":"s1","last_n":5.0}`, true},
		{`{"type":"subscribe","topic":"orders","client_id":"s1","since_seq":41,"epoch":"9b2e51c07d3fa468"}`, true},
		{`{"type":"subscribe","topic":"orders","client_id":"s1","since_seq":0,"epoch":"e","last_n":3}`, true},
		{`{"type":"subscribe","topic":"orders","client_id":"s1","since_seq":41}`, false},
		{`{"type":"subscribe","topic":"orders","client_id":"s1","since_seq":-1,"epoch":"e"}`, false},
		{`{"type":"subscribe","topic":"orders","client_id":"s1","last_n":-1}`, false},
		{`{"type":"subscribe","topic":"orders","client_id":"s1","last_n":1.5}`, false},
		{`{"type":"subscribe","topic":"orders","client_id":"s1","last_n":"5"}`, false},
		{`{"type":"subscribe","topic":"orders"}`, false},
		{`{"type":"subscribe","topic":"orders","client_id":""}`, false},
		{`{"type":"subscribe","client_id":"s1"}`, false},
		{`{"type":"subscribe","topic":"bad name","client_id":"s1"}`, false},
		{`{"type":"subscribe","topic":"` + strings.Repeat("a", 256) + `","client_id":"s1"}`, false},
		{`{"type":"unsubscribe","topic":"orders","client_id":"s1","request_id":"r-2"}`, true},
		{`{"type":"unsubscribe","topic":"orders"}`, false},
		{`{"type":"unsubscribe","topic":7,"client_id":"s1"}`, false},
		{`{"type":"publish","topic":"orders","message":{"id":` + id + `,"payload":{"any":"json"}},"request_id":"r-3"}`, true},
		{`{"type":"publish","topic":"orders","message":{"id":` + id + `,"payload":null}}`, true},
		{`{"type":"publish","topic":"orders","message":{"id":` + id + `,"payload":1,"headers":{"traceparent":` + tp + `,"tenant":"eu"}}}`, true},
		{`{"type":"publish","topic":"orders","message":{"id":` + id + `,"payload":1,"headers":{"traceparent":"nope"}}}`, false},
		{`{"type":"publish","topic":"orders","message":{"id":` + id + `,"payload":1,"headers":{"n":1}}}`, false},
		{`{"type":"publish","topic":"orders","message":{"id":` + id + `,"payload":1,"headers":{` + strings.Join(many, ",") + `}}}`, false},
		{`{"type":"publish","topic":"orders","message":{"id":` + id + `,"payload":1,"headers":{"":"v"}}}`, false},
		{`{"type":"publish","topic":"orders","message":{"id":` + id + `}}`, false},
		{`{"type":"publish","topic":"orders","message":{"id":"not-a-uuid","payload":1}}`, false},
		{`{"type":"publish","topic":"orders","message":{"payload":1}}`, false},
		{`{"type":"publish","topic":"orders"}`, false},
		{`{"type":"publish","message":{"id":` + id + `,"payload":1}}`, false},
	}
	for _, tt := range tests {
		req, decErr := DecodeRequest([]byte(tt.frame))
		if (decErr == nil) != tt.valid {
			t.Errorf("DecodeRequest(%s): err %v, want valid=%v", tt.frame, decErr, tt.valid)
		}
		typ := req.Type
		if typ == "" {
			var f struct{ Type string }
			_ = json.Unmarshal([]byte(tt.frame), &f)
			typ = f.Type
		}
		name, ok := byType[typ]
		if !ok {
			t.Fatalf("%s: no client message of type %q in asyncapi.json", tt.frame, typ)
		}
		_, s := d.payloadSchema(t, name)
		if err := validate(s, []byte(tt.frame)); (err == nil) != tt.valid {
			t.Errorf("asyncapi.json %s on %s: %v, want valid=%v", name, tt.frame, err, tt.valid)
		}
	}
}

// TestAsyncAPIServerFrameFields: ServerFrame, which clients decode every server frame into, has
// a field for each field asyncapi.json gives any server frame, and no other.
func TestAsyncAPIServerFrameFields(t *testing.T) {
	d := loadAsyncAPI(t)
	documented := map[string]bool{}
	for name := range d.messages() {
		schema, _ := d.payloadSchema(t, name)
		if !slices.Contains(ServerTypes, constOf(schema, "type")) {
			continue
		}
		for _, p := range d.schemaPaths(schema) {
			documented[p] = true
		}
	}
	decoded := map[string]bool{}
	tag := func(f reflect.StructField) string { name, _, _ := strings.Cut(f.Tag.Get("json"), ","); return name }
	for f := range reflect.TypeFor[ServerFrame]().Fields() {
		decoded[tag(f)] = true
	}
	for prefix, typ := range map[string]reflect.Type{"message.": reflect.TypeFor[Event](), "error.": reflect.TypeFor[ErrorDetail]()} {
		for f := range typ.Fields() {
			decoded[prefix+tag(f)] = true
		}
	}
	if got, want := slices.Sorted(maps.Keys(documented)), slices.Sorted(maps.Keys(decoded)); !slices.Equal(got, want) {
		t.Errorf("server frame fields in asyncapi.json:\n  %v\nfields of ServerFrame:\n  %v", got, want)
	}
}

// TestAsyncAPIExamples: every example of every message is valid by its payload's schema (the
// AsyncAPI CLI does not check this), and every client example is a frame the decoder takes.
func TestAsyncAPIExamples(t *testing.T) {
	d := loadAsyncAPI(t)
	for name, m := range d.messages() {
		schema, s := d.payloadSchema(t, name)
		examples, _ := m["examples"].([]any)
		if len(examples) == 0 {
			t.Errorf("message %s has no example", name)
		}
		for _, e := range examples {
			raw, err := json.Marshal(obj(e, "payload"))
			if err != nil {
				t.Fatal(err)
			}
			if err := validate(s, raw); err != nil {
				t.Errorf("message %s: example %s breaks its schema: %v", name, raw, err)
			}
			if slices.Contains(ClientTypes, constOf(schema, "type")) {
				if _, err := DecodeRequest(raw); err != nil {
					t.Errorf("message %s: example %s is refused by the decoder: %v", name, raw, err)
				}
			}
		}
	}
}

// TestAsyncAPITypesNoticesAndCodes: the frame types, the info notices and the error codes of
// asyncapi.json are exactly the ones of this package (and the Redis engine's two notices), and
// every REST code of the table is in openapi.json.
func TestAsyncAPITypesNoticesAndCodes(t *testing.T) {
	d := loadAsyncAPI(t)
	types, notices := map[string]bool{}, map[string]bool{}
	for name := range d.messages() {
		schema, _ := d.payloadSchema(t, name)
		types[constOf(schema, "type")] = true
		if msg := constOf(schema, "msg"); msg != "" {
			notices[msg] = true
		}
	}
	wantTypes := slices.Concat(ServerTypes, slices.DeleteFunc(slices.Clone(ClientTypes), func(s string) bool { return s == TypeInvalid }))
	if got, want := slices.Sorted(maps.Keys(types)), slices.Sorted(slices.Values(wantTypes)); !slices.Equal(got, want) {
		t.Errorf("frame types in asyncapi.json %v, in wire %v", got, want)
	}
	wantNotices := []string{InfoPing, InfoTopicDeleted, InfoSubscriptionReplaced, InfoUnsubscribed, InfoServerShutdown,
		InfoGap, InfoDiscontinuity}
	if got, want := slices.Sorted(maps.Keys(notices)), slices.Sorted(slices.Values(wantNotices)); !slices.Equal(got, want) {
		t.Errorf("info notices in asyncapi.json %v, want %v", got, want)
	}

	enum := func(raw []byte, path ...string) []string {
		var doc map[string]any
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, v := range obj(doc, path...)["enum"].([]any) {
			out = append(out, v.(string))
		}
		slices.Sort(out)
		return out
	}
	ws, rest := map[string]bool{}, map[string]bool{}
	for _, m := range errorTable {
		ws[m.ws] = true
		rest[m.rest] = true
	}
	if got, want := enum(api.AsyncAPI, "components", "schemas", "ErrorCode"), slices.Sorted(maps.Keys(ws)); !slices.Equal(got, want) {
		t.Errorf("WebSocket error codes in asyncapi.json %v, in the table %v", got, want)
	}
	if got, want := enum(api.OpenAPI, "components", "schemas", "ErrorCode"), slices.Sorted(slices.Values(Codes)); !slices.Equal(got, want) {
		t.Errorf("error codes in openapi.json %v, in wire.Codes %v", got, want)
	}
	for code := range rest {
		if !slices.Contains(Codes, code) {
			t.Errorf("the table's REST code %s is not in wire.Codes", code)
		}
	}
}
