package domain

import (
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// Message is what a publisher sends: an id, an opaque JSON payload and optional string headers
// (the W3C trace context travels there). The domain never looks inside Payload.
type Message struct {
	ID      uuid.UUID
	Payload []byte // raw JSON exactly as published; shared, never modified after Publish
	Headers map[string]string
}

// Event is a message accepted by a topic. Events are immutable once published and shared by pointer
// between the topic's history and every subscriber queue, so they are safe for concurrent reads.
//
// An event's bytes are held once: when the topic's Encoder copies the payload verbatim into Frame
// and says where, Message.Payload is re-pointed into Frame, so a 1 MiB message costs 1 MiB however
// many subscribers and history slots share it (it used to cost the raw payload plus the frame).
type Event struct {
	Topic   TopicName
	Seq     uint64    // 1 for the first message of the topic, +1 per accepted message
	Time    time.Time // when the topic accepted the message
	Message Message
	// Frame is the event encoded once for the wire by the topic's Encoder; every subscriber writes
	// these same bytes.
	Frame []byte
	// Traced counts the deliveries of this event that recorded a trace span. Transports use it to
	// cap such spans per publish; nothing in the domain reads it.
	Traced atomic.Int32

	// size is what the event holds in memory (see eventSize), charged to budget while the history
	// or a queue holds the event. Set once, before the event is shared.
	size   int64
	budget *Budget
	// refs counts the holders of the event: the history and each queue or replay that holds it.
	// The last holder to let go gives size back to budget. Holders take and drop references under
	// their own locks; the counter itself is atomic because those locks differ.
	refs atomic.Int64
}

// Size returns the bytes the event holds in memory, as charged to the topic's event budget and to
// the history and queue byte bounds: its frame, its payload unless that lies inside the frame, its
// headers, and a fixed overhead for the structures around them.
func (e *Event) Size() int64 { return e.size }

// eventOverhead is the heap an event costs beyond its bytes: the Event itself, the header map's
// buckets when it has one, and the history and queue slots that point to it (measured on amd64:
// an Event is 144 bytes; rounded up to keep the estimate on the safe side).
const eventOverhead = 256

// headerEntryOverhead is a map entry's cost beyond its key and value bytes.
const headerEntryOverhead = 48

// eventSize estimates the heap e holds once encoded.
func eventSize(e *Event, payloadShared bool) int64 {
	n := int64(eventOverhead + cap(e.Frame))
	if !payloadShared {
		n += int64(cap(e.Message.Payload))
	}
	for k, v := range e.Message.Headers {
		n += int64(len(k) + len(v) + headerEntryOverhead)
	}
	return n
}

// hold adds n references.
func (e *Event) hold(n int64) { e.refs.Add(n) }

// release drops n references; the last one gives the event's bytes back to its budget.
func (e *Event) release(n int64) {
	if n > 0 && e.refs.Add(-n) == 0 {
		e.budget.Release(e.size)
	}
}

// Encoder turns an event into the bytes subscribers receive. It returns the frame and the offset in
// it where the message's payload was copied verbatim, or -1 when it was not; the topic then points
// Message.Payload into the frame, so the event holds its payload once. It is called once per
// publish, under the topic's lock, so it must be quick and must not call back into the topic.
type Encoder func(*Event) (frame []byte, payloadAt int)
