package wire

import "encoding/json"

// Info messages of the Redis engine (extension): a range of events that cannot be delivered, and
// a stream that restarted under a new epoch. The engine writes these frames itself (a broker may
// not import the transport); the names are here for clients that read them.
const (
	InfoGap           = "gap"
	InfoDiscontinuity = "discontinuity"
)

// ServerFrame is any server frame as a client decodes it: the union of the fields of ack, event,
// error, pong and info, each zero when the frame does not carry it. The server never builds one
// (it appends frames to bytes, see AppendAck and the others); clients such as pubsubctl and tests
// decode into it, so there is one spelling of the wire's field names for both directions.
type ServerFrame struct {
	Type      string `json:"type"`
	RequestID string `json:"request_id,omitempty"`
	Topic     string `json:"topic,omitempty"`
	// Status, Epoch, Seq and Recovered are an ack's; Seq is an event's too. Recovered is nil
	// unless the subscribe carried since_seq.
	Status    string       `json:"status,omitempty"`
	Epoch     string       `json:"epoch,omitempty"`
	Seq       uint64       `json:"seq,omitempty"`
	Recovered *bool        `json:"recovered,omitempty"`
	Message   *Event       `json:"message,omitempty"`
	Error     *ErrorDetail `json:"error,omitempty"`
	// Msg names an info frame (InfoPing, InfoTopicDeleted ...); FromSeq and ToSeq are a gap's.
	Msg     string `json:"msg,omitempty"`
	FromSeq uint64 `json:"from_seq,omitempty"`
	ToSeq   uint64 `json:"to_seq,omitempty"`
	TS      string `json:"ts,omitempty"`
}

// Event is the message of an event frame as a client reads it: the id, the payload exactly as
// published, and the headers (trace context among them) when there are any.
type Event struct {
	ID      string            `json:"id"`
	Payload json.RawMessage   `json:"payload"`
	Headers map[string]string `json:"headers,omitempty"`
}
