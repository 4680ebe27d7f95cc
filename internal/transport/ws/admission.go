package ws

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/transport/wire"
	"github.com/pubsubd/pubsub/telemetry"
)

// Admission is what a handshake must pass before it is upgraded: the Origin check and the
// connection limits. A refusal is an HTTP answer in the contract's error shape, counted and logged
// at a bounded rate; it costs no goroutine beyond the request's own.

// originAllowed reports whether a browser page at the request's Origin may open /ws. A request
// without Origin does not come from a browser (browsers always send it on a WebSocket handshake)
// and passes: the check is against cross-site WebSocket hijacking, not an authentication. The
// request's own host always passes; AllowedOrigins adds others, and "*" any.
func (s *Server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	for _, o := range s.cfg.AllowedOrigins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// connLimits counts connections, in total and by client address, so that one client cannot take
// every file descriptor and every byte of connection state. A slot is taken before the upgrade
// (handshakes in progress count) and given back when the connection is forgotten. Safe for
// concurrent use: mu guards the counts, held for a map operation.
type connLimits struct {
	maxTotal, maxPerAddr int // 0: no limit

	mu      sync.Mutex
	total   int
	perAddr map[string]int // only addresses with a connection: the map shrinks as they leave
}

// admitResult is what connLimits.enter decided.
type admitResult uint8

const (
	admitted admitResult = iota
	refusedTotal
	refusedAddr
)

// enter takes a slot for a connection from addr, unless a limit is reached.
func (l *connLimits) enter(addr string) admitResult {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.maxTotal > 0 && l.total >= l.maxTotal {
		return refusedTotal
	}
	if l.maxPerAddr > 0 && l.perAddr[addr] >= l.maxPerAddr {
		return refusedAddr
	}
	l.total++
	if l.perAddr == nil {
		l.perAddr = make(map[string]int)
	}
	l.perAddr[addr]++
	return admitted
}

// leave gives back the slot enter took for addr.
func (l *connLimits) leave(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if n := l.perAddr[addr] - 1; n > 0 {
		l.perAddr[addr] = n
	} else {
		delete(l.perAddr, addr)
	}
}

// clientAddr is the address connections are counted by: the peer's IP. X-Forwarded-For is not
// read: any client can write it, so trusting it would let one client pose as many. Behind a proxy
// that terminates connections, every client has the proxy's address, and the per-address limit
// should be raised or turned off (PUBSUB_MAX_CONNECTIONS_PER_ADDR=0).
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// admit runs the checks that come before the upgrade. It returns the address whose slot the
// connection holds, or false after answering the request with the refusal.
func (s *Server) admit(w http.ResponseWriter, r *http.Request) (string, bool) {
	if !s.originAllowed(r) {
		// 403, not the table's 401 for UNAUTHORIZED: no credential would help this page.
		origin := clip(r.Header.Get("Origin"), 256) // the client's text: keep log lines small
		s.tel.Metrics.AuthFailed(telemetry.AuthOrigin)
		s.tel.Metrics.Error(wire.CodeUnauthorized)
		s.tel.Refusals.Warn(r.Context(), "ws handshake refused: origin not allowed",
			"origin", origin, "host", clip(r.Host, 256), "remote", r.RemoteAddr)
		wire.WriteError(w, http.StatusForbidden, wire.CodeUnauthorized,
			"origin "+origin+" may not open /ws (PUBSUB_ALLOWED_ORIGINS)")
		return "", false
	}
	addr := clientAddr(r)
	var limit string
	var err error
	switch s.limits.enter(addr) {
	case admitted:
		return addr, true
	case refusedTotal:
		limit = telemetry.LimitConnections
		err = domain.Errorf(domain.KindUnavailable, "the server holds its limit of %d connections; try again later", s.cfg.MaxConnections)
	case refusedAddr:
		limit = telemetry.LimitAddrConnections
		err = domain.Errorf(domain.KindRateLimited, "your address holds its limit of %d connections; close one first", s.cfg.MaxConnectionsPerAddr)
	}
	status, code, msg := wire.HTTPError(err)
	s.tel.Metrics.LimitRejectedFor(limit, "", r.RemoteAddr)
	s.tel.Metrics.Error(code)
	s.tel.Refusals.Warn(r.Context(), "ws handshake refused by a limit", "limit", limit, "remote", r.RemoteAddr)
	w.Header().Set("Retry-After", "1")
	wire.WriteError(w, status, code, msg)
	return "", false
}

// clip shortens s to at most n bytes.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// logRefusal is the bounded-rate log line of a refused WebSocket request.
func (c *conn) logRefusal(ctx context.Context, msg string, args ...any) {
	c.s.tel.Refusals.Warn(ctx, msg, append([]any{"conn_id", c.id, "remote", c.remote}, args...)...)
}
