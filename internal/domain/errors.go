// Package domain holds the pub/sub model: topic names, messages, events, the per-topic history ring,
// the bounded per-subscriber queue and the topic registry. It does no I/O and knows nothing of
// telemetry or transports; every other layer depends on it, never the other way round.
package domain

import (
	"errors"
	"fmt"
)

// Kind classifies a failure. Transports map each Kind, in exactly one table, to an HTTP status and a
// wire error code, so the domain never needs to know either.
type Kind uint8

// The failure kinds. KindInternal is the zero value on purpose: an unclassified error is internal.
const (
	KindInternal Kind = iota
	KindInvalid
	KindNotFound
	KindExists
	KindUnavailable
	KindTooLarge
	KindSlowConsumer
	KindUnauthorized
	KindRateLimited
)

// Error is a classified failure with a message meant for the person at the other end.
type Error struct {
	Kind Kind
	Msg  string
	// Limit names the configured bound that refused the request (one of the Limit* constants), ""
	// when none did. The telemetry at the edge counts refusals by it; Kind alone decides the status
	// and the wire code.
	Limit string
}

// The bounds the domain enforces, as Error.Limit names them. The values are those of the limit
// label of pubsub_limit_rejections_total.
const (
	LimitTopics        = "topics"        // TopicConfig.MaxTopics
	LimitSubscriptions = "subscriptions" // TopicConfig.MaxSubscriptions
	LimitEventMemory   = "event_memory"  // TopicConfig.Events
)

// Error returns the human-readable message.
func (e *Error) Error() string { return e.Msg }

// Is makes errors.Is(err, ErrNotFound) true for every *Error of the same Kind, whatever its message.
// Only the message-less sentinels below match by kind; two messages never match each other.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Msg == "" && t.Kind == e.Kind
}

// Sentinels, one per kind, for errors.Is.
var (
	ErrInvalid      = &Error{Kind: KindInvalid}
	ErrNotFound     = &Error{Kind: KindNotFound}
	ErrExists       = &Error{Kind: KindExists}
	ErrUnavailable  = &Error{Kind: KindUnavailable}
	ErrTooLarge     = &Error{Kind: KindTooLarge}
	ErrSlowConsumer = &Error{Kind: KindSlowConsumer}
)

// ErrNotOwner matches (errors.Is) the refusal to take over or end a client id that belongs to
// another principal. Such an error is also of KindUnauthorized.
var ErrNotOwner = errors.New("client id belongs to another principal")

// notOwner is the error behind ErrNotOwner: classified like any *Error, and telling its cause
// apart from other refusals (an operation outside a principal's scopes), which are counted apart.
type notOwner struct{ err Error }

func (e *notOwner) Error() string { return e.err.Msg }

func (e *notOwner) Unwrap() error { return &e.err }

func (e *notOwner) Is(target error) bool { return target == ErrNotOwner }

func errNotOwner(topic TopicName, clientID string) error {
	return &notOwner{err: Error{Kind: KindUnauthorized,
		Msg: "client_id " + quote(clientID) + " of topic " + quote(string(topic)) + " belongs to another principal"}}
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

// Errorf builds a classified error with a formatted message.
func Errorf(k Kind, format string, args ...any) error {
	return &Error{Kind: k, Msg: fmt.Sprintf(format, args...)}
}

// LimitErrorf builds a classified error that names the limit which refused the request.
func LimitErrorf(k Kind, limit, format string, args ...any) error {
	return &Error{Kind: k, Msg: fmt.Sprintf(format, args...), Limit: limit}
}

// LimitOf returns the limit that refused err (Error.Limit), "" when no limit did.
func LimitOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Limit
	}
	return ""
}

// KindOf returns the Kind of err, KindInternal when err carries none. It searches the whole tree
// errors.As searches (errors.Join, several %w), so it agrees with the message transports show.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}
