// Package wsframe reads and writes WebSocket frames (RFC 6455, section 5) for the two sides this
// module speaks: the service, which reads masked client frames, and pubsub-bench's client, which
// reads unmasked server frames. It parses from and appends to byte slices, so that each side keeps
// its own buffering: the service's readers must be able to stop between frames and hold nothing.
package wsframe

import (
	"encoding/binary"
	"errors"
)

// Opcodes (RFC 6455 5.2).
const (
	OpContinuation byte = 0x0
	OpText         byte = 0x1
	OpBinary       byte = 0x2
	OpClose        byte = 0x8
	OpPing         byte = 0x9
	OpPong         byte = 0xA
)

// MaxControlPayload is the largest payload of a control frame.
const MaxControlPayload = 125

// Header is a frame's header.
type Header struct {
	Fin    bool
	Op     byte
	Masked bool
	Mask   [4]byte
	Len    uint64 // payload length
	Size   int    // header length in bytes
}

// Control reports whether the frame is a control frame (close, ping, pong).
func (h Header) Control() bool { return h.Op >= OpClose }

// ProtocolError is a frame that breaks RFC 6455: the connection must be closed (1002).
type ProtocolError string

func (e ProtocolError) Error() string { return string(e) }

// ErrTooBig is a message over the reader's limit (1009).
var ErrTooBig = errors.New("message too big")

// ParseHeader parses the frame header at the start of b. ok is false while b is too short to hold
// it. Reserved bits, unknown opcodes and malformed control frames are protocol errors.
func ParseHeader(b []byte) (h Header, ok bool, err error) {
	if len(b) < 2 {
		return h, false, nil
	}
	if b[0]&0x70 != 0 {
		return h, false, ProtocolError("reserved bits set without an extension")
	}
	h.Fin, h.Op, h.Masked = b[0]&0x80 != 0, b[0]&0x0f, b[1]&0x80 != 0
	if (h.Op > OpBinary && h.Op < OpClose) || h.Op > OpPong {
		return h, false, ProtocolError("unknown opcode")
	}
	h.Size, h.Len = 2, uint64(b[1]&0x7f)
	switch h.Len {
	case 126:
		if len(b) < 4 {
			return h, false, nil
		}
		h.Size, h.Len = 4, uint64(binary.BigEndian.Uint16(b[2:]))
	case 127:
		if len(b) < 10 {
			return h, false, nil
		}
		h.Size, h.Len = 10, binary.BigEndian.Uint64(b[2:])
		if h.Len>>63 != 0 {
			return h, false, ProtocolError("payload length with its top bit set")
		}
	}
	if h.Control() && (!h.Fin || h.Len > MaxControlPayload) {
		return h, false, ProtocolError("control frames must be whole and at most 125 bytes")
	}
	if h.Masked {
		if len(b) < h.Size+4 {
			return h, false, nil
		}
		copy(h.Mask[:], b[h.Size:])
		h.Size += 4
	}
	return h, true, nil
}

// Unmask applies mask to p in place (masking and unmasking are the same XOR).
func Unmask(p []byte, mask [4]byte) {
	for i := range p {
		p[i] ^= mask[i&3]
	}
}

// Reader assembles messages from frames: it joins fragments, checks their order and the size
// limit, and passes control frames (which may come between fragments) through.
type Reader struct {
	Limit int64 // largest message in bytes; <= 0 (or over 1 GiB): 1 GiB
	msg   []byte
	op    byte
	frag  bool
}

// Check validates a frame against the fragments so far and the limit, from its header alone, so
// that a frame over the limit is refused before its payload is read.
func (r *Reader) Check(h Header) error {
	switch {
	case h.Control():
		return nil
	case h.Op == OpContinuation && !r.frag:
		return ProtocolError("continuation frame without a message to continue")
	case h.Op != OpContinuation && r.frag:
		return ProtocolError("new message before the previous one ended")
	case h.Len > uint64(r.limit())-uint64(len(r.msg)):
		return ErrTooBig
	}
	return nil
}

// maxUnlimited bounds a message when no limit is set, so that no length read off the wire makes a
// reader allocate without bound.
const maxUnlimited = 1 << 30

func (r *Reader) limit() int64 {
	if r.Limit <= 0 || r.Limit > maxUnlimited {
		return maxUnlimited
	}
	return r.Limit
}

// Add takes a checked frame's unmasked payload and returns the message or control frame it
// completes, if any. An unfragmented message or a control frame aliases p.
func (r *Reader) Add(h Header, p []byte) (op byte, msg []byte, done bool) {
	switch {
	case h.Control():
		return h.Op, p, true
	case h.Fin && !r.frag:
		return h.Op, p, true
	case !r.frag:
		r.msg, r.op, r.frag = append(r.msg[:0], p...), h.Op, true
		return 0, nil, false
	}
	r.msg = append(r.msg, p...)
	if !h.Fin {
		return 0, nil, false
	}
	msg, op = r.msg, r.op
	r.msg, r.frag = nil, false
	return op, msg, true
}

// Pending reports whether a fragmented message is being assembled.
func (r *Reader) Pending() bool { return r.frag }

// AppendHeader appends the header of an unmasked, unfragmented frame whose payload is n bytes, for
// a writer that sends the payload from where it already is instead of copying it after the header.
func AppendHeader(b []byte, op byte, n int) []byte { return appendHeader(b, op, 0, n) }

func appendHeader(b []byte, op, m byte, n int) []byte {
	switch {
	case n < 126:
		return append(b, 0x80|op, m|byte(n))
	case n <= 0xffff:
		return append(b, 0x80|op, m|126, byte(n>>8), byte(n))
	}
	b = append(b, 0x80|op, m|127)
	return binary.BigEndian.AppendUint64(b, uint64(n))
}

// AppendFrame appends payload as one final frame with opcode op, masked with mask when mask is not
// nil (client frames are masked, server frames are not).
func AppendFrame(b []byte, op byte, mask *[4]byte, payload []byte) []byte {
	var m byte
	if mask != nil {
		m = 0x80
	}
	b = appendHeader(b, op, m, len(payload))
	if mask == nil {
		return append(b, payload...)
	}
	b = append(b, mask[:]...)
	start := len(b)
	b = append(b, payload...)
	Unmask(b[start:], *mask)
	return b
}
