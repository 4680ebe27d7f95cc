package redis

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strconv"
	"time"

	"github.com/pubsubd/pubsub/internal/domain"
)

// An event travels through Redis encoded once, by the publisher's replica: the history entry and
// the channel message carry the same bytes, and receivers rebuild the event from them without
// encoding it again. The seq is not known until the publish script has run, so the wire frame is
// stored in two parts around it; a receiver joins them with the seq's digits (one copy per replica,
// not per subscriber).
//
// Layout, integers as uvarints:
//
//	version (1) | time (unix ns) | message id (16 bytes) | header count | (key, value)* |
//	payload offset in the frame + 1 (0: the payload follows here on its own) [| payload] |
//	frame before the seq | frame after the seq
//
// Strings are a uvarint length and the bytes. The headers carry the W3C trace context, so one
// trace runs from the publisher's replica to the deliveries on every replica.
const codecVersion = 1

// seqMark is the seq the publisher encodes the frame with, to find where the seq goes: larger than
// any real seq, and written in decimal by every Encoder this service has (the seq is the last number
// of the wire frame, after the payload and headers, so its last occurrence is the seq).
const seqMark = "18446744073709551615"

// errBadEncoding is a history entry or channel message this engine cannot read: written by a
// newer version, or damaged.
var errBadEncoding = errors.New("the event in Redis is not in a format this version reads")

// encoded is an event ready for the publish script.
type encoded struct {
	body []byte
	size int64 // what the event will hold in memory once received (domain.Event.Size)
}

// encodeEvent encodes msg, stamped at now, for topic with enc (nil: no frame).
func encodeEvent(topic domain.TopicName, msg domain.Message, now time.Time, enc domain.Encoder) (encoded, error) {
	var pre, post []byte
	at := -1
	if enc != nil {
		probe := &domain.Event{Topic: topic, Seq: ^uint64(0), Time: now, Message: msg}
		frame, payloadAt := enc(probe)
		i := bytes.LastIndex(frame, []byte(seqMark))
		if i < 0 {
			return encoded{}, domain.Errorf(domain.KindInternal, "the event encoder does not write the seq in decimal")
		}
		pre, post = frame[:i], frame[i+len(seqMark):]
		if p := len(msg.Payload); payloadAt >= 0 && payloadAt+p <= i {
			at = payloadAt // only a payload before the seq keeps its offset once the seq is in
		}
	}
	n := 64 + len(pre) + len(post)
	for k, v := range msg.Headers {
		n += len(k) + len(v) + 4
	}
	if at < 0 {
		n += len(msg.Payload)
	}
	b := make([]byte, 0, n)
	b = append(b, codecVersion)
	b = binary.AppendUvarint(b, uint64(now.UnixNano()))
	b = append(b, msg.ID[:]...)
	b = binary.AppendUvarint(b, uint64(len(msg.Headers)))
	for k, v := range msg.Headers {
		b = appendString(b, k)
		b = appendString(b, v)
	}
	b = binary.AppendUvarint(b, uint64(at+1))
	if at < 0 {
		b = appendString(b, string(msg.Payload))
	} else {
		b = binary.AppendUvarint(b, uint64(len(msg.Payload)))
	}
	b = appendString(b, string(pre))
	b = appendString(b, string(post))
	// The size a receiver will charge: the frame with a seq as long as the mark at most, the
	// headers, and the payload when it is not inside the frame.
	p := msg.Payload[:len(msg.Payload):len(msg.Payload)] // a receiver holds exactly its bytes
	var fb []byte
	if len(pre)+len(post) > 0 {
		fb = frameBuffer(len(pre), len(post))
	}
	ev := domain.NewEvent(topic, 0, now, domain.Message{ID: msg.ID, Payload: p, Headers: msg.Headers}, fb, at >= 0)
	return encoded{body: b, size: ev.Size()}, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decoder reads the layout above; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errBadEncoding
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errBadEncoding
		return nil
	}
	out := d.b[:n:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) string() []byte { return d.bytes(d.uvarint()) }

// decodeEvent rebuilds the event seq of topic from body. The event shares no bytes with body
// except the payload when it was stored apart, so body may be a buffer the caller reuses only in
// that it must not be modified.
func decodeEvent(topic domain.TopicName, seq uint64, body []byte) (*domain.Event, error) {
	if len(body) == 0 || body[0] != codecVersion {
		return nil, errBadEncoding
	}
	d := decoder{b: body[1:]}
	ts := time.Unix(0, int64(d.uvarint()))
	var msg domain.Message
	copy(msg.ID[:], d.bytes(16))
	if nh := d.uvarint(); nh > 0 && d.err == nil {
		if nh > uint64(len(d.b)) {
			return nil, errBadEncoding
		}
		msg.Headers = make(map[string]string, nh)
		for range nh {
			k := d.string()
			msg.Headers[string(k)] = string(d.string())
		}
	}
	atv := d.uvarint()
	if atv > uint64(len(body)) {
		return nil, errBadEncoding
	}
	at := int(atv) - 1
	var payload []byte
	plen := 0
	if at < 0 {
		src := d.string()
		payload = make([]byte, len(src)) // exactly its bytes: the size the publisher charged
		copy(payload, src)
	} else {
		pl := d.uvarint()
		if pl > uint64(len(body)) {
			return nil, errBadEncoding
		}
		plen = int(pl)
	}
	pre, post := d.string(), d.string()
	if d.err != nil {
		return nil, d.err
	}
	var frame []byte
	if len(pre)+len(post) > 0 {
		frame = frameBuffer(len(pre), len(post))
		frame = append(frame, pre...)
		frame = strconv.AppendUint(frame, seq, 10)
		frame = append(frame, post...)
	}
	shared := false
	if at >= 0 {
		// The encoder copied the payload verbatim before the seq: point into the frame, so the
		// event holds its payload once.
		if at+plen > len(pre) {
			return nil, errBadEncoding
		}
		payload, shared = frame[at:at+plen:at+plen], true
	}
	msg.Payload = payload
	return domain.NewEvent(topic, seq, ts, msg, frame, shared), nil
}

// frameBuffer returns an empty buffer for a frame of pre and post bytes around a seq of up to 20
// digits. Its capacity depends on pre and post only, never on the seq: so the size the publisher
// charges the history with (before the seq exists) is the size every receiver holds. It is rounded
// as the allocator rounds it anyway (what append gives), which is what the memory engine's frames
// hold too.
func frameBuffer(pre, post int) []byte {
	return append([]byte(nil), make([]byte, pre+len(seqMark)+post)...)[:0]
}

// notice is one channel message, parsed.
type notice struct {
	kind  byte // 'm' event, 'd' deleted, 'r' epoch rotated
	epoch string
	seq   uint64
	body  []byte
}

// parseNotice parses "<kind><epoch>:<seq>:<body>".
func parseNotice(b []byte) (notice, bool) {
	if len(b) < 4 {
		return notice{}, false
	}
	n := notice{kind: b[0]}
	rest := b[1:]
	i := bytes.IndexByte(rest, ':')
	if i <= 0 {
		return notice{}, false
	}
	n.epoch, rest = string(rest[:i]), rest[i+1:]
	j := bytes.IndexByte(rest, ':')
	if j <= 0 {
		return notice{}, false
	}
	seq, err := strconv.ParseUint(string(rest[:j]), 10, 64)
	if err != nil {
		return notice{}, false
	}
	n.seq, n.body = seq, rest[j+1:]
	return n, true
}

// newEpoch returns a random epoch: 128 bits, hex. A new one at every create tells a resuming
// client that the seqs it holds name events of a topic that no longer exists.
func newEpoch() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it panics if the system has no randomness)
	return hex.EncodeToString(b[:])
}
