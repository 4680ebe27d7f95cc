package ws

import (
	"encoding/binary"
	"errors"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/pubsubd/pubsub/internal/transport/wsframe"
)

// The server reads client frames itself instead of through gorilla/websocket, whose read state is
// sticky (one timeout ends the connection) and whose buffer is hidden: an idle connection's reader
// must be able to stop between frames, hand its socket to the parker and hold no memory for it
// (see park.go). gorilla still does the upgrade and writes control frames.

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
	buf  []byte // buf[r:] is unparsed input
	r    int
	msgs wsframe.Reader // fragments and the message limit
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
func (f *frameReader) idle() bool { return len(f.buf) == f.r && !f.msgs.Pending() }

// release drops the buffers; only valid when idle.
func (f *frameReader) release() { f.buf, f.r = nil, 0 }

// next returns the next whole message (text or binary, fragments joined) or control frame. ok is
// false when more input is needed. The payload is unmasked in place and valid until the next call
// to spare.
func (f *frameReader) next() (op byte, payload []byte, ok bool, err error) {
	for {
		b := f.buf[f.r:]
		h, ok, err := wsframe.ParseHeader(b)
		if err == nil && ok && !h.Masked {
			err = wsframe.ProtocolError("client frames must be masked")
		}
		if err == nil && ok {
			err = f.msgs.Check(h)
		}
		if err != nil {
			return 0, nil, false, closeErrorOf(err)
		}
		if !ok {
			return 0, nil, false, nil
		}
		total := h.Size + int(h.Len) // Check bounded Len by the limit
		if len(b) < total {
			if total > cap(f.buf) {
				// Grow once to the frame's size so spare can take it.
				grown := make([]byte, len(b), total)
				copy(grown, b)
				f.buf, f.r = grown, 0
			}
			return 0, nil, false, nil
		}
		f.r += total
		p := b[h.Size:total]
		wsframe.Unmask(p, h.Mask)
		if op, m, done := f.msgs.Add(h, p); done {
			return op, m, true, nil
		}
	}
}

// closeErrorOf turns a framing error into the close code and reason we answer it with.
func closeErrorOf(err error) error {
	var pe wsframe.ProtocolError
	switch {
	case errors.As(err, &pe):
		return &closeError{code: websocket.CloseProtocolError, reason: string(pe)}
	case errors.Is(err, wsframe.ErrTooBig):
		return errTooBig
	}
	return err
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
