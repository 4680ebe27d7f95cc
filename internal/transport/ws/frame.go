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
// (see park_linux.go). gorilla still does the upgrade and writes control frames.

// closeError is a reason to close the connection found while reading: the close code for our close
// frame and its reason text.
type closeError struct {
	code   int
	reason string
}

func (e *closeError) Error() string { return e.reason }

// errTooBig is a message over the read limit (1009).
var errTooBig = &closeError{code: websocket.CloseMessageTooBig, reason: "message too big"}

// newFrameReader returns the stream a connection's client frames are parsed from: masked, with
// the message limit (1 GiB when none is configured), read into 512 bytes at first and at most
// 64 KiB more at a time.
func newFrameReader(limit int64) wsframe.Stream {
	return wsframe.Stream{Reader: wsframe.Reader{Limit: limit}, Masked: true, MinBuf: 512, MaxBuf: 64 << 10}
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
		return 0, wsframe.ProtocolError("close frame with a one-byte payload")
	}
	code := int(binary.BigEndian.Uint16(p))
	if !validCloseCode(code) || !utf8.Valid(p[2:]) {
		return 0, wsframe.ProtocolError("invalid close code or reason")
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
