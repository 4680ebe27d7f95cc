package ws

import (
	"encoding/binary"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// The server reads client frames itself instead of through gorilla/websocket, whose read state is
// sticky (one timeout ends the connection) and whose buffer is hidden: an idle connection's reader
// must be able to stop between frames, hand its socket to the parker and hold no memory for it
// (see park.go). gorilla still does the upgrade and writes control frames.

// WebSocket opcodes (RFC 6455 5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// closeError is a reason to close the connection found while reading: the close code for our close
// frame and its reason text.
type closeError struct {
	code   int
	reason string
}

func (e *closeError) Error() string { return e.reason }

func protocolError(reason string) error {
	return &closeError{code: websocket.CloseProtocolError, reason: reason}
}

// errTooBig is a message over the read limit (1009).
var errTooBig = &closeError{code: websocket.CloseMessageTooBig, reason: "message too big"}

// frameReader parses client frames from bytes read off the socket. It holds a buffer only while the
// reader runs: release gives it back, so a parked connection holds none.
type frameReader struct {
	buf   []byte // buf[r:] is unparsed input
	r     int
	msg   []byte // a fragmented message being assembled
	msgOp byte
	limit int64 // largest message accepted; <= 0: no limit
}

// readBufSize is what a reader starts with; fill doubles it, up to maxReadBuf, while reads fill it
// (a client pipelining requests), so a quiet connection reads into little.
const (
	readBufSize = 512
	maxReadBuf  = 64 << 10
)

// spare returns room to read into at the end of the buffer, first moving unparsed bytes to its
// start and growing it if full.
func (f *frameReader) spare() []byte {
	if f.buf == nil {
		f.buf = make([]byte, 0, readBufSize)
	}
	if f.r > 0 {
		n := copy(f.buf, f.buf[f.r:])
		f.buf, f.r = f.buf[:n], 0
	}
	if len(f.buf) == cap(f.buf) {
		f.buf = append(f.buf, make([]byte, min(max(cap(f.buf), readBufSize), maxReadBuf))...)[:len(f.buf)]
	}
	return f.buf[len(f.buf):cap(f.buf)]
}

// filled records n bytes read into spare's slice.
func (f *frameReader) filled(n int) { f.buf = f.buf[:len(f.buf)+n] }

// idle reports whether nothing is buffered: the reader may stop without losing input.
func (f *frameReader) idle() bool { return len(f.buf) == f.r && f.msg == nil }

// release drops the buffers; only valid when idle.
func (f *frameReader) release() { f.buf, f.r = nil, 0 }

// next returns the next whole message (text or binary, fragments joined) or control frame. ok is
// false when more input is needed. The payload is unmasked in place and valid until the next call
// to spare.
func (f *frameReader) next() (op byte, payload []byte, ok bool, err error) {
	for {
		b := f.buf[f.r:]
		if len(b) < 2 {
			return 0, nil, false, nil
		}
		fin, op := b[0]&0x80 != 0, b[0]&0x0f
		if b[0]&0x70 != 0 {
			return 0, nil, false, protocolError("reserved bits set without an extension")
		}
		if b[1]&0x80 == 0 {
			return 0, nil, false, protocolError("client frames must be masked")
		}
		hdr, n := 6, uint64(b[1]&0x7f)
		switch n {
		case 126:
			if len(b) < 4 {
				return 0, nil, false, nil
			}
			hdr, n = 8, uint64(binary.BigEndian.Uint16(b[2:]))
		case 127:
			if len(b) < 10 {
				return 0, nil, false, nil
			}
			hdr, n = 14, binary.BigEndian.Uint64(b[2:])
		}
		control := op >= opClose
		switch {
		case op > opBinary && op < opClose, op > opPong:
			return 0, nil, false, protocolError("unknown opcode")
		case control && (!fin || n > 125):
			return 0, nil, false, protocolError("control frames must be whole and at most 125 bytes")
		case !control && f.limit > 0 && n > uint64(f.limit)-uint64(len(f.msg)):
			return 0, nil, false, errTooBig
		}
		total := hdr + int(n)
		if len(b) < total {
			if total > cap(f.buf) {
				// Grow once to the frame's size (bounded by the limit above) so spare can take it.
				grown := make([]byte, len(b), total)
				copy(grown, b)
				f.buf, f.r = grown, 0
			}
			return 0, nil, false, nil
		}
		f.r += total
		mask, p := b[hdr-4:hdr], b[hdr:total]
		for i := range p {
			p[i] ^= mask[i&3]
		}
		switch {
		case control:
			return op, p, true, nil
		case op == opContinuation && f.msg == nil:
			return 0, nil, false, protocolError("continuation frame without a message to continue")
		case op != opContinuation && f.msg != nil:
			return 0, nil, false, protocolError("new message before the previous one ended")
		case fin && f.msg == nil:
			return op, p, true, nil
		case op != opContinuation:
			f.msg, f.msgOp = append(make([]byte, 0, 2*len(p)), p...), op
		default:
			f.msg = append(f.msg, p...)
			if fin {
				m, mop := f.msg, f.msgOp
				f.msg = nil
				return mop, m, true, nil
			}
		}
	}
}

// parseClose reads a close frame's payload: its code (1005 when absent) or a protocol error for a
// malformed one (RFC 6455 7.4).
func parseClose(p []byte) (int, error) {
	switch {
	case len(p) == 0:
		return websocket.CloseNoStatusReceived, nil
	case len(p) == 1:
		return 0, protocolError("close frame with a one-byte payload")
	}
	code := int(binary.BigEndian.Uint16(p))
	if !validCloseCode(code) || !utf8.Valid(p[2:]) {
		return 0, protocolError("invalid close code or reason")
	}
	return code, nil
}

func validCloseCode(code int) bool {
	switch {
	case code >= 3000 && code <= 4999:
		return true
	case code < 1000 || code > 1014:
		return false
	}
	return code != 1004 && code != 1005 && code != 1006
}
