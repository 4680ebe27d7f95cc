// Package wire is the JSON wire contract of PROTOCOL.md: the client frames and their decoder, the
// server frames and their encoders, the REST bodies, and the one table that maps every error to an
// HTTP status and a wire error code.
package wire

import (
	"errors"
	"net/http"

	"github.com/pubsubd/pubsub/internal/domain"
)

// Wire error codes, exactly as PROTOCOL.md spells them.
const (
	CodeBadRequest      = "BAD_REQUEST"
	CodeUnauthorized    = "UNAUTHORIZED"
	CodeTopicNotFound   = "TOPIC_NOT_FOUND"
	CodeTopicExists     = "TOPIC_EXISTS"
	CodePayloadTooLarge = "PAYLOAD_TOO_LARGE"
	CodeUnavailable     = "UNAVAILABLE"
	CodeSlowConsumer    = "SLOW_CONSUMER"
	CodeRateLimited     = "RATE_LIMITED"
	CodeInternal        = "INTERNAL"
)

// Codes lists every code that can be reported, REST or WebSocket, so metrics can pre-create them.
var Codes = []string{CodeBadRequest, CodeUnauthorized, CodeTopicNotFound, CodeTopicExists,
	CodePayloadTooLarge, CodeUnavailable, CodeSlowConsumer, CodeRateLimited, CodeInternal}

type mapping struct {
	status int    // REST
	rest   string // REST error code
	ws     string // WebSocket error code
}

// errorTable is the one place where a failure kind becomes a status and a code. PROTOCOL.md has no
// UNAVAILABLE on the WebSocket: there, shutting down is reported as INTERNAL.
// KindRateLimited is every refusal by a configured bound, not only by a rate: the topic and
// subscription caps and the process's event memory as well (the message names which; the
// domain.Error's Limit labels the metric). All of them tell the client the same thing, to back off
// and try later, and RATE_LIMITED (429) is the contract's one code for that on both transports.
var errorTable = map[domain.Kind]mapping{
	domain.KindInvalid:      {http.StatusBadRequest, CodeBadRequest, CodeBadRequest},
	domain.KindUnauthorized: {http.StatusUnauthorized, CodeUnauthorized, CodeUnauthorized},
	domain.KindNotFound:     {http.StatusNotFound, CodeTopicNotFound, CodeTopicNotFound},
	domain.KindExists:       {http.StatusConflict, CodeTopicExists, CodeTopicExists},
	domain.KindTooLarge:     {http.StatusRequestEntityTooLarge, CodePayloadTooLarge, CodeBadRequest},
	domain.KindUnavailable:  {http.StatusServiceUnavailable, CodeUnavailable, CodeInternal},
	domain.KindSlowConsumer: {http.StatusServiceUnavailable, CodeSlowConsumer, CodeSlowConsumer},
	domain.KindRateLimited:  {http.StatusTooManyRequests, CodeRateLimited, CodeRateLimited},
	domain.KindInternal:     {http.StatusInternalServerError, CodeInternal, CodeInternal},
}

// HTTPError returns the status, code and message a REST client gets for err. An unclassified error
// never leaks its text: the client reads "internal error" and the log keeps the detail.
func HTTPError(err error) (status int, code, msg string) {
	m := errorTable[domain.KindOf(err)]
	return m.status, m.rest, publicMessage(err)
}

// WSError returns the code and message a WebSocket client gets for err.
func WSError(err error) (code, msg string) {
	return errorTable[domain.KindOf(err)].ws, publicMessage(err)
}

// CodeOf returns the WebSocket code of err; telemetry records it on spans.
func CodeOf(err error) string {
	code, _ := WSError(err)
	return code
}

func publicMessage(err error) string {
	var de *domain.Error
	if errors.As(err, &de) && de.Kind != domain.KindInternal {
		return de.Msg
	}
	return "internal error"
}
