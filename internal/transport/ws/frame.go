package ws

import (
	"encoding/binary"
	"errors"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/transport/wsframe"
	"github.com/pubsubd/pubsub/telemetry"
)

// The server reads client frames itself instead of through gorilla/websocket, whose read state is
// sticky (one timeout ends the connection) and whose buffer is hidden: an idle connection's reader
// must be able to stop between frames, hand its socket to the parker and hold no memory for it
// (see park_linux.go). gorilla still does the upgrade and writes control frames.

// closeError is a reason to close the connection found while reading: the close code for our close
// frame and its reason text, and the limit it counts as (telemetry.Limit*), if any.
type closeError struct {
	code   int
	reason string
	limit  string
}

func (e *closeError) Error() string { return e.reason }

// The reasons to close found while reading that are refusals of a client, each with its close code.
var (
	// errTooBig is a message over the read limit (1009).
	errTooBig = &closeError{code: websocket.CloseMessageTooBig, reason: "message too big (PUBSUB_MAX_FRAME_BYTES)",
		limit: telemetry.LimitFrameSize}
	// errNoBuffer is the process-wide buffer budget spent: the client may try again later (1013).
	errNoBuffer = &closeError{code: websocket.CloseTryAgainLater, reason: "server buffer memory exhausted (PUBSUB_MAX_BUFFER_BYTES); try again later",
		limit: telemetry.LimitBufferMemory}
	// errBadUTF8 is a text message that is not UTF-8 (1007, RFC 6455 8.1): refused before it is
	// decoded, so it is never stored or relayed.
	errBadUTF8 = &closeError{code: websocket.CloseInvalidFramePayloadData, reason: "text message is not valid UTF-8"}
)

// readFree is how many bytes of read buffers a connection holds without taking them from the
// server's buffer budget: enough for every ordinary request, so that only large messages take.
const readFree = 16 << 10

// newFrameReader returns the stream a connection's client frames are parsed from: masked, with
// the message limit (1 GiB when none is configured), read into 512 bytes at first; beyond readFree
// bytes its buffers are taken from budget (nil: unlimited).
func newFrameReader(limit int64, budget *domain.Budget) wsframe.Stream {
	s := wsframe.Stream{Reader: wsframe.Reader{Limit: limit}, Masked: true, MinBuf: 512, MaxBuf: 64 << 10, Free: readFree}
	if budget != nil {
		s.Budget = budget
	}
	return s
}

// closeErrorOf turns a framing error into the close code and reason we answer it with.
func closeErrorOf(err error) error {
	var pe wsframe.ProtocolError
	switch {
	case errors.As(err, &pe):
		return &closeError{code: websocket.CloseProtocolError, reason: string(pe)}
	case errors.Is(err, wsframe.ErrTooBig):
		return errTooBig
	case errors.Is(err, wsframe.ErrNoBuffer):
		return errNoBuffer
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
