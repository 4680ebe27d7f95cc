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
}

// Encoder turns an event into the bytes subscribers receive. It is called once per publish, under
// the topic's lock, so it must be quick and must not call back into the topic.
type Encoder func(*Event) []byte
