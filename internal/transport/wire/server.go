package wire

import (
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/pubsubd/pubsub/internal/domain"
)

// Server frame types, also the values of the frames-sent metric's type label.
const (
	TypeAck   = "ack"
	TypeEvent = "event"
	TypeError = "error"
	TypePong  = "pong"
	TypeInfo  = "info"
)

// ServerTypes lists every server frame type, so metrics can pre-create them.
var ServerTypes = []string{TypeAck, TypeEvent, TypeError, TypePong, TypeInfo}

// Info messages the server sends.
const (
	InfoPing                 = "ping"
	InfoTopicDeleted         = "topic_deleted"
	InfoSubscriptionReplaced = "subscription_replaced"
	// InfoUnsubscribed (extension) tells a connection that another connection of the same
	// principal ended one of its subscriptions.
	InfoUnsubscribed   = "unsubscribed"
	InfoServerShutdown = "server_shutdown"
)

// EncodeEvent encodes an event once, and every subscriber writes the same bytes. The payload is
// copied verbatim, so it reaches subscribers as published.
func EncodeEvent(ev *domain.Event) []byte {
	b, _ := EventEncoder(ev)
	return b
}

// EventEncoder is the domain.Encoder of the service: EncodeEvent, which also says where in the
// frame the payload lies, so the event keeps that copy only.
func EventEncoder(ev *domain.Event) ([]byte, int) {
	m := &ev.Message
	size := 128 + len(ev.Topic) + len(m.Payload)
	for k, v := range m.Headers {
		size += len(k) + len(v) + 8
	}
	b := make([]byte, 0, size)
	b = append(b, `{"type":"event","topic":`...)
	b = appendString(b, string(ev.Topic))
	b = append(b, `,"message":{"id":"`...)
	b = appendUUID(b, m.ID)
	b = append(b, `","payload":`...)
	at := len(b)
	b = append(b, m.Payload...)
	if len(m.Headers) > 0 {
		b = append(b, `,"headers":{`...)
		var arr [MaxHeaders]string // headers are bounded; sorting them needs no allocation
		keys := arr[:0]
		for k := range m.Headers {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, m.Headers[k])
		}
		b = append(b, '}')
	}
	b = append(b, `},"seq":`...)
	b = appendUint(b, ev.Seq)
	b = append(b, ',')
	b = appendTS(b, ev.Time)
	return append(b, '}'), at
}

func appendUUID(b []byte, id uuid.UUID) []byte {
	var buf [36]byte
	hexEnc := func(dst []byte, src []byte) {
		for i, c := range src {
			dst[i*2] = hexDigits[c>>4]
			dst[i*2+1] = hexDigits[c&0xf]
		}
	}
	hexEnc(buf[0:8], id[0:4])
	buf[8] = '-'
	hexEnc(buf[9:13], id[4:6])
	buf[13] = '-'
	hexEnc(buf[14:18], id[6:8])
	buf[18] = '-'
	hexEnc(buf[19:23], id[8:10])
	buf[23] = '-'
	hexEnc(buf[24:], id[10:])
	return append(b, buf[:]...)
}

// AppendAck appends an ack frame. topic may be empty (it is omitted then).
func AppendAck(b []byte, requestID *string, topic string, now time.Time) []byte {
	b = append(b, `{"type":"ack"`...)
	b = appendRequestID(b, requestID)
	if topic != "" {
		b = append(b, `,"topic":`...)
		b = appendString(b, topic)
	}
	b = append(b, `,"status":"ok",`...)
	b = appendTS(b, now)
	return append(b, '}')
}

// SubscribeAck is what a subscribe ack says beyond AppendAck's fields (extension): the topic's
// epoch and seq, and, for a resume, whether it recovered.
type SubscribeAck struct {
	Epoch     string
	Seq       uint64
	Resumed   bool // the subscribe carried since_seq: recovered is written
	Recovered bool
}

// AppendSubscribeAck appends the ack of a subscribe: AppendAck's frame with epoch, seq and, for a
// resume, recovered after status, so that a client that reads only the old fields sees them as
// before.
func AppendSubscribeAck(b []byte, requestID *string, topic string, a SubscribeAck, now time.Time) []byte {
	b = append(b, `{"type":"ack"`...)
	b = appendRequestID(b, requestID)
	b = append(b, `,"topic":`...)
	b = appendString(b, topic)
	b = append(b, `,"status":"ok","epoch":`...)
	b = appendString(b, a.Epoch)
	b = append(b, `,"seq":`...)
	b = appendUint(b, a.Seq)
	if a.Resumed {
		b = append(b, `,"recovered":`...)
		b = strconv.AppendBool(b, a.Recovered)
	}
	b = append(b, ',')
	b = appendTS(b, now)
	return append(b, '}')
}

// AppendError appends an error frame; requestID and topic are omitted when nil or empty.
func AppendError(b []byte, requestID *string, topic, code, msg string, now time.Time) []byte {
	b = append(b, `{"type":"error"`...)
	b = appendRequestID(b, requestID)
	if topic != "" {
		b = append(b, `,"topic":`...)
		b = appendString(b, topic)
	}
	b = append(b, `,"error":{"code":`...)
	b = appendString(b, code)
	b = append(b, `,"message":`...)
	b = appendString(b, msg)
	b = append(b, `},`...)
	b = appendTS(b, now)
	return append(b, '}')
}

// AppendPong appends a pong frame.
func AppendPong(b []byte, requestID *string, now time.Time) []byte {
	b = append(b, `{"type":"pong"`...)
	b = appendRequestID(b, requestID)
	b = append(b, ',')
	b = appendTS(b, now)
	return append(b, '}')
}

// AppendInfo appends an info frame; topic is omitted when empty.
func AppendInfo(b []byte, topic, msg string, now time.Time) []byte {
	b = append(b, `{"type":"info"`...)
	if topic != "" {
		b = append(b, `,"topic":`...)
		b = appendString(b, topic)
	}
	b = append(b, `,"msg":`...)
	b = appendString(b, msg)
	b = append(b, ',')
	b = appendTS(b, now)
	return append(b, '}')
}

func appendRequestID(b []byte, requestID *string) []byte {
	if requestID == nil {
		return b
	}
	b = append(b, `,"request_id":`...)
	return appendString(b, *requestID)
}
