package wire

import (
	"encoding/json"
	"math"
	"strconv"

	"github.com/google/uuid"

	"github.com/pubsubd/pubsub/internal/domain"
)

// Client frame types. TypeInvalid labels frames that could not be decoded, for metrics.
const (
	TypeSubscribe   = "subscribe"
	TypeUnsubscribe = "unsubscribe"
	TypePublish     = "publish"
	TypePing        = "ping"
	TypeInvalid     = "invalid"
)

// ClientTypes lists every client frame type label, so metrics can pre-create them.
var ClientTypes = []string{TypeSubscribe, TypeUnsubscribe, TypePublish, TypePing, TypeInvalid}

// Limits on message.headers (an extension): enough for W3C trace context and a few of the
// publisher's own keys, small enough that headers cannot be used to smuggle payloads past accounting.
const (
	MaxHeaders     = 16
	MaxHeaderKey   = 128
	MaxHeaderValue = 1024
)

// Request is a decoded, validated client frame. Raw strings have become domain values here, once.
type Request struct {
	Type      string  // one of the client frame types (never TypeInvalid on success)
	RequestID *string // nil when the client sent none; echoed in the reply otherwise
	Topic     domain.TopicName
	ClientID  string
	LastN     int
	// Resume (extension) is set when a subscribe carried since_seq: SinceSeq and Epoch then say
	// what the client already has, and LastN is ignored.
	Resume   bool
	SinceSeq uint64
	Epoch    string
	Message  domain.Message
	// TraceParent and TraceState are the W3C trace context the client sent, from message.headers
	// or, failing that, from the frame's top level; empty when none.
	TraceParent string
	TraceState  string
}

type rawFrame struct {
	Type        json.RawMessage `json:"type"`
	RequestID   json.RawMessage `json:"request_id"`
	Topic       json.RawMessage `json:"topic"`
	ClientID    json.RawMessage `json:"client_id"`
	LastN       json.RawMessage `json:"last_n"`
	SinceSeq    json.RawMessage `json:"since_seq"`
	Epoch       json.RawMessage `json:"epoch"`
	Message     json.RawMessage `json:"message"`
	TraceParent json.RawMessage `json:"traceparent"`
	TraceState  json.RawMessage `json:"tracestate"`
}

type rawMessage struct {
	ID      json.RawMessage `json:"id"`
	Payload json.RawMessage `json:"payload"`
	Headers json.RawMessage `json:"headers"`
}

func invalid(format string, args ...any) error {
	return domain.Errorf(domain.KindInvalid, format, args...)
}

// DecodeRequest parses one client frame. On failure the error is a domain.KindInvalid with a
// message a person can act on, and the returned Request still carries RequestID and Type when they
// could be read, so the error reply can echo the request_id.
//
// Well-typed frames, nearly all of them, are decoded in one pass into typed fields; a frame with a
// field of the wrong JSON type is decoded again field by field, only to say precisely what is wrong.
func DecodeRequest(data []byte) (Request, error) { return DecodeRequestLimited(data, Limits{}) }

// DecodeRequestLimited is DecodeRequest with the given limits on the lengths of client-chosen
// strings. A request_id over its limit is refused and not echoed: the error's Request has no
// RequestID. A length refusal is a LengthError.
func DecodeRequestLimited(data []byte, lim Limits) (Request, error) {
	f := newTypedFrame(lim)
	if err := json.Unmarshal(data, &f); err == nil {
		return f.request(lim)
	}
	return decodeByField(data, lim)
}

// typedFrame is a client frame whose fields all have the JSON types the contract says. A nil
// pointer is a field that was absent or null.
type typedFrame struct {
	Type        *string         `json:"type"`
	RequestID   limitedString   `json:"request_id"`
	Topic       *string         `json:"topic"`
	ClientID    limitedString   `json:"client_id"`
	LastN       json.RawMessage `json:"last_n"`
	SinceSeq    json.RawMessage `json:"since_seq"`
	Epoch       limitedString   `json:"epoch"`
	Message     *typedMessage   `json:"message"`
	TraceParent *string         `json:"traceparent"`
	TraceState  *string         `json:"tracestate"`
}

type typedMessage struct {
	ID      *string         `json:"id"`
	Payload json.RawMessage `json:"payload"`
	Headers json.RawMessage `json:"headers"` // read by parseHeaders, within the limits
}

// newTypedFrame returns a frame to decode into, its length-checked fields set to lim.
func newTypedFrame(lim Limits) typedFrame {
	return typedFrame{RequestID: limitedString{max: lim.id()}, ClientID: limitedString{max: lim.id()},
		Epoch: limitedString{max: lim.id()}}
}

// request validates f in the same order, and with the same messages, as decodeByField.
func (f *typedFrame) request(lim Limits) (Request, error) {
	var req Request
	if f.RequestID.long {
		return req, tooLong("request_id is longer than %d bytes", lim.id())
	}
	if f.RequestID.set {
		req.RequestID = &f.RequestID.s
	}
	if f.Type == nil {
		return req, invalid("type is required")
	}
	switch typ := *f.Type; typ {
	case TypeSubscribe, TypeUnsubscribe, TypePublish, TypePing:
		req.Type = typ
	default:
		return req, invalid("unknown type %q: expected subscribe, unsubscribe, publish or ping", truncate(typ))
	}
	if f.TraceParent != nil {
		if !ValidTraceParent(*f.TraceParent) {
			return req, invalid("traceparent is not a valid W3C traceparent")
		}
		req.TraceParent = *f.TraceParent
	}
	if f.TraceState != nil {
		if len(*f.TraceState) > lim.value() {
			return req, tooLong("tracestate is longer than %d bytes", lim.value())
		}
		req.TraceState = *f.TraceState
	}
	if req.Type == TypePing {
		return req, nil
	}
	var err error
	if f.Topic == nil {
		return req, invalid("topic is required")
	}
	if req.Topic, err = domain.ParseTopicName(*f.Topic); err != nil {
		return req, err
	}
	switch req.Type {
	case TypeSubscribe, TypeUnsubscribe:
		if req.ClientID, err = checkClientID(f.ClientID, lim); err != nil {
			return req, err
		}
		if req.Type == TypeSubscribe {
			if req.LastN, err = lastNField(f.LastN); err != nil {
				return req, err
			}
			if err = resumeFields(f.SinceSeq, f.Epoch, &req, lim); err != nil {
				return req, err
			}
		}
	case TypePublish:
		m := f.Message
		if m == nil {
			return req, invalid("message is required")
		}
		if m.ID == nil {
			return req, invalid("message.id is required")
		}
		uid, err := parseID(*m.ID)
		if err != nil {
			return req, err
		}
		if m.Payload == nil {
			return req, invalid("message.payload is required (null is allowed)")
		}
		req.Message = domain.Message{ID: uid, Payload: m.Payload}
		if m.Headers != nil && !isNull(m.Headers) {
			h, err := parseHeaders(m.Headers, lim)
			if err != nil {
				return req, err
			}
			req.Message.Headers = h
			if err := headerTrace(h, &req); err != nil {
				return req, err
			}
		}
	}
	return req, nil
}

func parseID(id string) (uuid.UUID, error) {
	uid, err := uuid.Parse(id)
	if err != nil || len(id) != 36 || uid == uuid.Nil {
		return uuid.Nil, invalid("message.id must be a valid UUID")
	}
	return uid, nil
}

// headerTrace takes the trace context from message.headers, where it wins over the frame's.
func headerTrace(h map[string]string, req *Request) error {
	tp, ok := h["traceparent"]
	if !ok {
		return nil
	}
	if !ValidTraceParent(tp) {
		return invalid("message.headers.traceparent is not a valid W3C traceparent")
	}
	req.TraceParent, req.TraceState = tp, h["tracestate"]
	return nil
}

func checkClientID(id limitedString, lim Limits) (string, error) {
	if id.long {
		return "", tooLong("client_id is longer than %d bytes", lim.id())
	}
	if !id.set || id.s == "" {
		return "", invalid("client_id is required")
	}
	return id.s, nil
}

// decodeByField is the precise path: each field is decoded on its own, so a field of the wrong type
// is named in the error.
func decodeByField(data []byte, lim Limits) (Request, error) {
	var req Request
	var raw rawFrame
	if err := json.Unmarshal(data, &raw); err != nil {
		if _, ok := err.(*json.UnmarshalTypeError); ok {
			return req, invalid("frame must be a JSON object")
		}
		return req, invalid("frame is not valid JSON")
	}
	if raw.RequestID != nil && !isNull(raw.RequestID) {
		id, err := limitedField(raw.RequestID, "request_id", lim.id())
		if err != nil {
			return req, err
		}
		req.RequestID = &id.s
	}
	if raw.Type == nil || isNull(raw.Type) {
		return req, invalid("type is required")
	}
	typ, err := stringField(raw.Type, "type")
	if err != nil {
		return req, err
	}
	switch typ {
	case TypeSubscribe, TypeUnsubscribe, TypePublish, TypePing:
		req.Type = typ
	default:
		return req, invalid("unknown type %q: expected subscribe, unsubscribe, publish or ping", truncate(typ))
	}
	if req.TraceParent, req.TraceState, err = traceContext(raw.TraceParent, raw.TraceState, lim); err != nil {
		return req, err
	}
	if req.Type == TypePing {
		return req, nil
	}
	if req.Topic, err = topicField(raw.Topic); err != nil {
		return req, err
	}
	switch req.Type {
	case TypeSubscribe:
		if req.ClientID, err = clientIDField(raw.ClientID, lim); err != nil {
			return req, err
		}
		if req.LastN, err = lastNField(raw.LastN); err != nil {
			return req, err
		}
		var epoch limitedString
		if raw.Epoch != nil && !isNull(raw.Epoch) {
			if epoch, err = limitedField(raw.Epoch, "epoch", lim.id()); err != nil {
				return req, err
			}
		}
		if err = resumeFields(raw.SinceSeq, epoch, &req, lim); err != nil {
			return req, err
		}
	case TypeUnsubscribe:
		if req.ClientID, err = clientIDField(raw.ClientID, lim); err != nil {
			return req, err
		}
	case TypePublish:
		if err = decodeMessage(raw.Message, &req, lim); err != nil {
			return req, err
		}
	}
	return req, nil
}

func decodeMessage(data json.RawMessage, req *Request, lim Limits) error {
	if data == nil || isNull(data) {
		return invalid("message is required")
	}
	var m rawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return invalid("message must be an object with id and payload")
	}
	if m.ID == nil || isNull(m.ID) {
		return invalid("message.id is required")
	}
	var id string
	if err := json.Unmarshal(m.ID, &id); err != nil {
		return invalid("message.id must be a valid UUID")
	}
	uid, err := parseID(id)
	if err != nil {
		return err
	}
	if m.Payload == nil {
		return invalid("message.payload is required (null is allowed)")
	}
	req.Message = domain.Message{ID: uid, Payload: m.Payload}
	if m.Headers != nil && !isNull(m.Headers) {
		h, err := parseHeaders(m.Headers, lim)
		if err != nil {
			return err
		}
		req.Message.Headers = h
		return headerTrace(h, req)
	}
	return nil
}

func traceContext(tpRaw, tsRaw json.RawMessage, lim Limits) (string, string, error) {
	var tp, ts string
	var err error
	if tpRaw != nil && !isNull(tpRaw) {
		if tp, err = stringField(tpRaw, "traceparent"); err != nil {
			return "", "", err
		}
		if !ValidTraceParent(tp) {
			return "", "", invalid("traceparent is not a valid W3C traceparent")
		}
	}
	if tsRaw != nil && !isNull(tsRaw) {
		if ts, err = stringField(tsRaw, "tracestate"); err != nil {
			return "", "", err
		}
		if len(ts) > lim.value() {
			return "", "", tooLong("tracestate is longer than %d bytes", lim.value())
		}
	}
	return tp, ts, nil
}

// ValidTraceParent reports whether s is a W3C traceparent of version 00 with non-zero ids.
func ValidTraceParent(s string) bool {
	// 00-<32 hex trace id>-<16 hex span id>-<2 hex flags>
	if len(s) != 55 || s[2] != '-' || s[35] != '-' || s[52] != '-' || s[:2] != "00" {
		return false
	}
	allZero := func(h string) bool { return h == "00000000000000000000000000000000"[:len(h)] }
	for _, part := range []string{s[3:35], s[36:52], s[53:]} {
		for i := 0; i < len(part); i++ {
			c := part[i]
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return !allZero(s[3:35]) && !allZero(s[36:52])
}

func topicField(data json.RawMessage) (domain.TopicName, error) {
	if data == nil || isNull(data) {
		return "", invalid("topic is required")
	}
	s, err := stringField(data, "topic")
	if err != nil {
		return "", err
	}
	return domain.ParseTopicName(s)
}

// MaxClientIDLen bounds client ids: they end up in logs and subscription maps.
const MaxClientIDLen = 256

func clientIDField(data json.RawMessage, lim Limits) (string, error) {
	if data == nil || isNull(data) {
		return "", invalid("client_id is required")
	}
	s, err := limitedField(data, "client_id", lim.id())
	if err != nil {
		return "", err
	}
	return checkClientID(s, lim)
}

// limitedField reads a string field within max bytes; one over it is a LengthError, reported by
// the caller (checkClientID) or here (request_id).
func limitedField(data json.RawMessage, name string, max int) (limitedString, error) {
	s, long, ok := unquote(data, max)
	if !ok {
		return limitedString{}, invalid("%s must be a string", name)
	}
	if long && name == "request_id" {
		return limitedString{}, tooLong("request_id is longer than %d bytes", max)
	}
	return limitedString{max: max, set: true, long: long, s: s}, nil
}

func lastNField(data json.RawMessage) (int, error) {
	if data == nil || isNull(data) {
		return 0, nil
	}
	const msg = "last_n must be a non-negative integer"
	if c := data[0]; c != '-' && (c < '0' || c > '9') {
		return 0, invalid(msg)
	}
	// JSON has one number type: 5.0 and 1e2 are integers too; 1.5 is not. A positive number beyond
	// float64 (1e400) is an integer larger than any history; one that underflows to 0 (1e-400) is a
	// fraction.
	f, err := strconv.ParseFloat(string(data), 64)
	if (err != nil && !math.IsInf(f, 1)) || f != math.Trunc(f) || f < 0 || (f == 0 && !zeroDigits(data)) {
		return 0, invalid(msg)
	}
	if f > math.MaxInt32 {
		return math.MaxInt32, nil // more than any history holds: "the whole history"
	}
	return int(f), nil
}

// resumeFields reads since_seq and epoch (extension) into req. since_seq makes the subscribe a
// resume; epoch is then required, since a seq means nothing without the topic's life it counts
// in. An epoch without since_seq asks for nothing and is ignored.
func resumeFields(sinceSeq json.RawMessage, epoch limitedString, req *Request, lim Limits) error {
	if epoch.long {
		return tooLong("epoch is longer than %d bytes", lim.id())
	}
	if sinceSeq == nil || isNull(sinceSeq) {
		return nil
	}
	seq, err := sinceSeqField(sinceSeq)
	if err != nil {
		return err
	}
	if !epoch.set || epoch.s == "" {
		return invalid("epoch is required with since_seq: send the epoch of the ack that gave you the seq")
	}
	req.Resume, req.SinceSeq, req.Epoch = true, seq, epoch.s
	return nil
}

// sinceSeqField reads since_seq: an integer from 0 to 2^64-1. Digits alone are read exactly; a
// JSON number in another form (5.0, 1e2) is accepted when it is an integer that a float64 holds
// exactly (up to 2^53), so that a seq is never rounded into another one.
func sinceSeqField(data json.RawMessage) (uint64, error) {
	const msg = "since_seq must be an integer from 0 to 18446744073709551615"
	if c := data[0]; c != '-' && (c < '0' || c > '9') {
		return 0, invalid(msg)
	}
	if n, err := strconv.ParseUint(string(data), 10, 64); err == nil {
		return n, nil
	}
	f, err := strconv.ParseFloat(string(data), 64)
	if err != nil || f != math.Trunc(f) || f < 0 || f > 1<<53 || (f == 0 && !zeroDigits(data)) {
		return 0, invalid(msg)
	}
	return uint64(f), nil
}

// zeroDigits reports whether every digit of the JSON number's mantissa is 0.
func zeroDigits(num []byte) bool {
	for _, c := range num {
		if c == 'e' || c == 'E' {
			break
		}
		if '1' <= c && c <= '9' {
			return false
		}
	}
	return true
}

func stringField(data json.RawMessage, name string) (string, error) {
	if len(data) == 0 || data[0] != '"' {
		return "", invalid("%s must be a string", name)
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return "", invalid("%s must be a string", name)
	}
	return s, nil
}

func isNull(data json.RawMessage) bool { return string(data) == "null" }

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
