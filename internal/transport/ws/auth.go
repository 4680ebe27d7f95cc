package ws

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/pubsubd/pubsub/internal/auth"
	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/transport/wire"
	"github.com/pubsubd/pubsub/telemetry"
)

// Authentication happens once, on the handshake, before the upgrade: a client without a valid key
// or token gets 401 and never a WebSocket. Authorization happens on every subscribe, unsubscribe and
// publish frame, against the principal's topic scopes, with the decision cached per connection and
// topic. A subscription belongs to its connection's principal (conn implements domain.Holder).

// authenticate returns the principal of the handshake r, or answers 401 and returns nil.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) *auth.Principal {
	p, err := s.cfg.Auth.Request(r, true)
	if err == nil {
		return p
	}
	reason := authReason(err)
	s.tel.Metrics.AuthFailed(reason)
	s.tel.Metrics.Error(wire.CodeUnauthorized)
	s.tel.Refusals.Warn(r.Context(), "ws handshake refused", "reason", reason, "remote", r.RemoteAddr, "error", err.Error())
	w.Header().Set("WWW-Authenticate", auth.Challenge)
	status, code, msg := wire.HTTPError(err)
	wire.WriteError(w, status, code, msg)
	return nil
}

// authReason returns the metric label of an authentication or authorization refusal.
func authReason(err error) string {
	var f *auth.Failure
	switch {
	case errors.Is(err, domain.ErrNotOwner):
		return telemetry.AuthTakeover
	case !errors.As(err, &f):
		return telemetry.AuthOther
	case f.Reason == auth.ReasonMissing:
		return telemetry.AuthMissing
	case f.Reason == auth.ReasonInvalid:
		return telemetry.AuthInvalid
	case f.Reason == auth.ReasonScope:
		return telemetry.AuthScope
	}
	return telemetry.AuthOther
}

// Principal implements domain.Holder: the connection's subscriptions belong to its principal.
// A conn built without newConn (in unit tests) is anonymous.
func (c *conn) Principal() string {
	if c.principal == nil {
		return ""
	}
	return c.principal.ID()
}

// scopeCacheMax bounds a connection's cached decisions; a client that names more topics than this
// starts the cache afresh rather than growing it.
const scopeCacheMax = 256

// Bits of a cached decision: known says the decision was made, the other says what it was.
const (
	knowPublish uint8 = 1 << iota
	mayPublish
	knowSubscribe
	maySubscribe
)

// authorize reports whether the connection's principal may do what req asks on req.Topic, and
// answers UNAUTHORIZED when it may not. It runs on the reader goroutine, which owns c.scopes.
func (c *conn) authorize(ctx context.Context, req wire.Request) bool {
	p := c.principal
	if p.Unrestricted() {
		return true // authentication off, or a key for every topic: nothing to look up
	}
	know, may, verb := knowSubscribe, maySubscribe, "subscribe to"
	check := p.CanSubscribe
	if req.Type == wire.TypePublish {
		know, may, verb, check = knowPublish, mayPublish, "publish to", p.CanPublish
	}
	bits, ok := c.scopes[req.Topic]
	if !ok || bits&know == 0 {
		if c.scopes == nil || len(c.scopes) >= scopeCacheMax {
			c.scopes = make(map[domain.TopicName]uint8)
		}
		bits |= know
		if check(req.Topic) {
			bits |= may
		}
		c.scopes[req.Topic] = bits
	}
	if bits&may != 0 {
		return true
	}
	c.refuse(ctx, req, p.Refuse(fmt.Sprintf("%s topic %q", verb, string(req.Topic))))
	return false
}

// refusedTakeover answers a subscribe or unsubscribe of a client id that belongs to another
// principal, and reports whether err was that refusal.
func (c *conn) refusedTakeover(ctx context.Context, req wire.Request, err error) bool {
	if !errors.Is(err, domain.ErrNotOwner) {
		return false
	}
	c.refuse(ctx, req, err)
	return true
}

// refuse counts, logs (at a bounded rate, without any secret) and answers one refused operation.
func (c *conn) refuse(ctx context.Context, req wire.Request, err error) {
	code, msg := wire.WSError(err)
	reason := authReason(err)
	c.s.tel.Metrics.Error(code)
	c.s.tel.Metrics.AuthFailed(reason)
	c.s.tel.Refusals.Warn(ctx, "ws operation refused", "reason", reason, "principal", c.principal.ID(),
		"type", req.Type, "topic", string(req.Topic), "client_id", req.ClientID, "conn_id", c.id, "remote", c.remote)
	c.enqueue(reply{typ: wire.TypeError, data: wire.AppendError(nil, req.RequestID, string(req.Topic), code, msg, time.Now())})
}
