package wire

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/pubsubd/pubsub/internal/domain"
)

// Limits bounds the client-chosen strings of a frame. They are checked while the frame is decoded,
// not after: a string over its limit is never unquoted, and message.headers is read entry by entry,
// refused at its 17th key without reading the rest, so a frame of a million keys costs a scan of
// its bytes, not a million map entries. The zero value is the defaults (DefaultLimits).
type Limits struct {
	// MaxIDBytes bounds client_id and request_id (PUBSUB_MAX_ID_BYTES); <= 0: MaxClientIDLen.
	MaxIDBytes int
	// MaxHeaderBytes bounds each value of message.headers and tracestate (PUBSUB_MAX_HEADER_BYTES),
	// and each header key as well when it is below MaxHeaderKey; <= 0: MaxHeaderValue.
	MaxHeaderBytes int
}

// DefaultLimits are the limits DecodeRequest applies.
var DefaultLimits = Limits{MaxIDBytes: MaxClientIDLen, MaxHeaderBytes: MaxHeaderValue}

func (l Limits) id() int {
	if l.MaxIDBytes <= 0 {
		return MaxClientIDLen
	}
	return l.MaxIDBytes
}

func (l Limits) value() int {
	if l.MaxHeaderBytes <= 0 {
		return MaxHeaderValue
	}
	return l.MaxHeaderBytes
}

func (l Limits) key() int { return min(MaxHeaderKey, l.value()) }

// LengthError is a refusal for a field over its length limit: a KindInvalid error (BAD_REQUEST) that
// transports can also tell apart, to count it as a limit (errors.As).
type LengthError struct{ err *domain.Error }

func (e *LengthError) Error() string { return e.err.Msg }

// Unwrap returns the classified error, so that domain.KindOf and WSError see a KindInvalid.
func (e *LengthError) Unwrap() error { return e.err }

func tooLong(format string, args ...any) error {
	return &LengthError{err: &domain.Error{Kind: domain.KindInvalid, Msg: fmt.Sprintf(format, args...)}}
}

// IsLengthError reports whether err refuses a field over its length limit.
func IsLengthError(err error) bool {
	var le *LengthError
	return errors.As(err, &le)
}

// unquote decodes the JSON string literal q (quotes included) unless its text is over max bytes;
// long reports that it is. An escape is never shorter than what it stands for, except invalid
// UTF-8 (one byte, replaced by three), so a literal whose inside is over 6*max bytes is over max
// without being decoded, and decoding one within that allocates a bounded amount. ok is false when
// q is not a string literal.
func unquote(q []byte, max int) (s string, long, ok bool) {
	if len(q) < 2 || q[0] != '"' || q[len(q)-1] != '"' {
		return "", false, false
	}
	in := q[1 : len(q)-1]
	if len(in) > 6*max {
		return "", true, true
	}
	simple := true
	for _, c := range in {
		if c < 0x20 || c == '\\' || c == '"' || c >= 0x80 {
			simple = false
			break
		}
	}
	if simple {
		s = string(in)
	} else if json.Unmarshal(q, &s) != nil {
		return "", false, false
	}
	return s, len(s) > max, true
}

// limitedString is a string field checked as it is decoded (see Limits). Before decoding, max is
// set; absent and null leave it unset. A value that is not a string fails the one-pass decoder,
// and the precise decoder then names the field.
type limitedString struct {
	max  int
	set  bool
	long bool
	s    string
}

var errNotString = errors.New("not a JSON string")

// UnmarshalJSON implements json.Unmarshaler.
func (l *limitedString) UnmarshalJSON(data []byte) error {
	*l = limitedString{max: l.max}
	if string(data) == "null" {
		return nil
	}
	s, long, ok := unquote(data, l.max)
	if !ok {
		return errNotString
	}
	l.set, l.long, l.s = true, long, s
	return nil
}

// parseHeaders reads message.headers, a JSON object of string values already known to be valid
// JSON, entry by entry: it stops at the first key or value over its limit and at the entry after
// the MaxHeaders-th, without reading further. A null value reads as "", as encoding/json reads it.
func parseHeaders(data []byte, lim Limits) (map[string]string, error) {
	notObject := func() error { return invalid("message.headers must be an object of string values") }
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, notObject()
	}
	h := make(map[string]string)
	for n := 0; ; n++ {
		i = skipSpace(data, i+1)
		if i < len(data) && data[i] == '}' && n == 0 {
			return h, nil
		}
		if n == MaxHeaders {
			return nil, tooLong("message.headers has more than %d entries", MaxHeaders)
		}
		end := stringEnd(data, i)
		if end < 0 {
			return nil, notObject()
		}
		k, long, ok := unquote(data[i:end], lim.key())
		if !ok {
			return nil, notObject()
		}
		if long || k == "" {
			if long {
				return nil, tooLong("message.headers keys must be 1 to %d bytes", lim.key())
			}
			return nil, invalid("message.headers keys must be 1 to %d bytes", lim.key())
		}
		i = skipSpace(data, end)
		if i >= len(data) || data[i] != ':' {
			return nil, notObject()
		}
		i = skipSpace(data, i+1)
		var v string
		switch {
		case i+4 <= len(data) && string(data[i:i+4]) == "null":
			end = i + 4
		default:
			if end = stringEnd(data, i); end < 0 {
				return nil, notObject()
			}
			if v, long, ok = unquote(data[i:end], lim.value()); !ok {
				return nil, notObject()
			}
			if long {
				return nil, tooLong("message.headers[%q] is longer than %d bytes", truncate(k), lim.value())
			}
		}
		h[k] = v
		i = skipSpace(data, end)
		if i >= len(data) {
			return nil, notObject()
		}
		switch data[i] {
		case ',':
		case '}':
			return h, nil
		default:
			return nil, notObject()
		}
	}
}

// stringEnd returns the index just past the JSON string literal starting at data[i], or -1.
func stringEnd(data []byte, i int) int {
	if i >= len(data) || data[i] != '"' {
		return -1
	}
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}
