package httpapi

import (
	"errors"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/pubsubd/pubsub/internal/auth"
	"github.com/pubsubd/pubsub/internal/transport/wire"
	"github.com/pubsubd/pubsub/telemetry"
)

// open are the routes served without authentication: the probes, which the kubelet calls with no
// credentials; /ws, whose handshake the WebSocket server authenticates itself (it also accepts a
// token as a subprotocol); and the API descriptions, which say how to call the API and hold no
// data (no topic, no count, no key): they are what a client, a code generator or a gateway
// reads before it has a credential, and they are the documents in the source tree.
var open = map[string]bool{"/livez": true, "/readyz": true, "/ws": true, "/openapi.json": true, "/asyncapi.json": true}

// manage are the routes that need the manage scope, by method and route template.
var manage = map[string]bool{http.MethodPost + " /topics": true, http.MethodDelete + " /topics/{name}": true}

// guard refuses, with 401 and the contract's UNAUTHORIZED body, a request without a valid key or
// token, and a create or delete from a principal without the manage scope. With authentication
// off (a nil Authenticator) it lets everything through and costs nothing.
func (h *handlers) guard(next http.Handler) http.Handler {
	if h.auth == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route := ""
		if cr := mux.CurrentRoute(r); cr != nil {
			route, _ = cr.GetPathTemplate()
		}
		if open[route] {
			next.ServeHTTP(w, r)
			return
		}
		p, err := h.auth.Request(r, false)
		if err == nil && manage[r.Method+" "+route] && !p.CanManage() {
			err = p.Refuse("create or delete topics")
		}
		if err != nil {
			h.refuse(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// refuse counts, logs (at a bounded rate, never the credential) and answers one refused request.
func (h *handlers) refuse(w http.ResponseWriter, r *http.Request, err error) {
	reason := telemetry.AuthOther
	var f *auth.Failure
	if errors.As(err, &f) {
		switch f.Reason {
		case auth.ReasonMissing:
			reason = telemetry.AuthMissing
		case auth.ReasonInvalid:
			reason = telemetry.AuthInvalid
		case auth.ReasonScope:
			reason = telemetry.AuthScope
		}
	}
	status, code, msg := wire.HTTPError(err)
	h.tel.Metrics.AuthFailed(reason)
	h.tel.Metrics.Error(code)
	h.tel.Refusals.Warn(r.Context(), "http request refused", "reason", reason, "method", r.Method,
		"path", r.URL.Path, "remote", r.RemoteAddr, "error", err.Error())
	w.Header().Set("WWW-Authenticate", auth.Challenge)
	wire.WriteError(w, status, code, msg)
}
