// Package console serves the web console on the admin listener: one page of plain HTML, CSS and
// JavaScript embedded in the binary, that shows the cluster, the topics with their counts and
// rates, a live tail of one topic, a publish form and the recent slow-consumer and limit incidents.
//
// The page speaks the service's own REST API and WebSocket protocol. It reaches them through this
// handler, under /console/app/, which serves the application's own handler in process rather than
// sending the browser to the application listener: the page and its API then share one origin,
// so no CORS header is needed and the application's allowed Origins stay as they are, and the
// console works when only the admin port is reachable (a port-forward to 9464). Only the console's
// own origin may use that mount (any other Origin is refused), whatever PUBSUB_ALLOWED_ORIGINS
// allows on the application listener.
//
// Authentication is the application's: the page asks for an API key or a token, keeps it in
// sessionStorage (gone with the tab) and sends it as X-API-Key or Authorization: Bearer on every
// request. A browser cannot set a header on a WebSocket handshake, so the page offers a token as
// the subprotocol pubsub.token.<jwt>, as any browser client does, or the key as the subprotocol
// pubsub.key.<base64url(key)>, which this mount alone understands: it takes it off the offered
// protocols and hands it to /ws as X-API-Key, so the key is never echoed, and never in a URL.
package console

import (
	"context"
	"embed"
	"encoding/base64"
	"errors"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pubsubd/pubsub/internal/auth"
	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/transport/wire"
	"github.com/pubsubd/pubsub/telemetry"
)

//go:embed static
var static embed.FS

// Prefix is where the console is mounted on the admin listener.
const Prefix = "/console/"

// KeyProtocolPrefix is the subprotocol in which the console's page offers an API key on the
// WebSocket handshake, base64url-encoded without padding (a key may hold characters a
// subprotocol may not).
const KeyProtocolPrefix = "pubsub.key."

// Options is what the console needs from the process.
type Options struct {
	// App is the application's handler (REST and /ws), served under /console/app/.
	App http.Handler
	// Auth authenticates the console's own JSON endpoints; nil means authentication is off.
	Auth *auth.Authenticator
	// Replicas lists the processes serving the topics, this one first (service.Service.Replicas).
	Replicas func(ctx context.Context) ([]domain.ReplicaStats, error)
	// Engine names the engine: "memory" or "redis".
	Engine string
	// Telemetry counts refused requests and holds the incidents ring.
	Telemetry *telemetry.Telemetry
}

// Handler returns the console, to be mounted at Prefix on the admin listener's mux.
func Handler(o Options) http.Handler {
	files, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is part of the binary: a wrong name is a build mistake
	}
	h := &handler{o: o}
	mux := http.NewServeMux()
	mux.Handle("GET /console/{$}", h.page(http.FileServerFS(files)))
	mux.Handle("GET /console/console.js", h.page(http.StripPrefix("/console", http.FileServerFS(files))))
	mux.Handle("GET /console/console.css", h.page(http.StripPrefix("/console", http.FileServerFS(files))))
	mux.HandleFunc("GET /console/config.json", h.config)
	mux.Handle("GET /console/cluster.json", h.guard(http.HandlerFunc(h.cluster)))
	mux.Handle("GET /console/incidents.json", h.guard(http.HandlerFunc(h.incidents)))
	mux.Handle("/console/app/", h.sameOrigin(http.StripPrefix("/console/app", keyToHeader(o.App))))
	return mux
}

type handler struct{ o Options }

// page serves the static files with headers that keep the page to itself: scripts, styles and
// connections only from its own origin, never framed (clickjacking), no referrer sent out.
func (h *handler) page(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Cache-Control", "no-cache")
		if r.URL.Path == Prefix {
			// FileServer would redirect /index.html to ./; serve the directory's index itself.
			r = r.Clone(r.Context())
			r.URL.Path = "/"
		}
		next.ServeHTTP(w, r)
	})
}

// configBody tells the page how to reach the service. It holds nothing secret, so it is served
// without authentication: the page needs it to know whether to ask for a credential.
type configBody struct {
	Auth   bool   `json:"auth"`
	Engine string `json:"engine"`
	API    string `json:"api"` // the path prefix of the REST API and /ws, from the page's origin
}

func (h *handler) config(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	wire.WriteJSON(w, http.StatusOK, configBody{Auth: h.o.Auth != nil, Engine: h.o.Engine, API: "/console/app"})
}

// guard lets through a request with a valid key or token (any scope: what /stats and /health
// ask), and answers any other with the application's 401, counted and logged the same way.
func (h *handler) guard(next http.Handler) http.Handler {
	if h.o.Auth == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := h.o.Auth.Request(r, false); err != nil {
			reason := telemetry.AuthOther
			var f *auth.Failure
			if errors.As(err, &f) {
				switch f.Reason {
				case auth.ReasonMissing:
					reason = telemetry.AuthMissing
				case auth.ReasonInvalid:
					reason = telemetry.AuthInvalid
				}
			}
			h.o.Telemetry.Metrics.AuthFailed(reason)
			h.o.Telemetry.Refusals.Warn(r.Context(), "console request refused", "reason", reason,
				"path", r.URL.Path, "remote", r.RemoteAddr, "error", err.Error())
			status, code, msg := wire.HTTPError(err)
			w.Header().Set("WWW-Authenticate", auth.Challenge)
			wire.WriteError(w, status, code, msg)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// replicaBody is one replica in cluster.json.
type replicaBody struct {
	ID          string     `json:"id"`
	Self        bool       `json:"self"`
	Topics      int        `json:"topics"`
	Subscribers int        `json:"subscribers"`
	Heartbeat   *time.Time `json:"heartbeat,omitempty"` // absent for the answering process
	// HeartbeatAgeMS is how long ago Heartbeat was, by this server's clock: the page shows it
	// without comparing its own clock (a laptop's, through a port-forward) with the server's.
	HeartbeatAgeMS *int64 `json:"heartbeat_age_ms,omitempty"`
}

type clusterBody struct {
	Engine   string        `json:"engine"`
	Replicas []replicaBody `json:"replicas"`
}

func (h *handler) cluster(w http.ResponseWriter, r *http.Request) {
	rs, err := h.o.Replicas(r.Context())
	if err != nil {
		status, code, msg := wire.HTTPError(err)
		wire.WriteError(w, status, code, msg)
		return
	}
	now := time.Now()
	body := clusterBody{Engine: h.o.Engine, Replicas: make([]replicaBody, 0, len(rs))}
	for _, rep := range rs {
		b := replicaBody{ID: rep.ID, Self: rep.Self, Topics: rep.Topics, Subscribers: rep.Subscribers}
		if !rep.Heartbeat.IsZero() {
			hb, age := rep.Heartbeat.UTC(), max(now.Sub(rep.Heartbeat).Milliseconds(), 0)
			b.Heartbeat, b.HeartbeatAgeMS = &hb, &age
		}
		body.Replicas = append(body.Replicas, b)
	}
	w.Header().Set("Cache-Control", "no-store")
	wire.WriteJSON(w, http.StatusOK, body)
}

type incidentsBody struct {
	Incidents []telemetry.Incident `json:"incidents"`
}

func (h *handler) incidents(w http.ResponseWriter, _ *http.Request) {
	in := h.o.Telemetry.Metrics.Incidents.Recent()
	if in == nil {
		in = []telemetry.Incident{}
	}
	w.Header().Set("Cache-Control", "no-store")
	wire.WriteJSON(w, http.StatusOK, incidentsBody{Incidents: in})
}

// sameOrigin refuses a browser request to the application's mount from any page but the
// console's own (its Origin's host is not the request's Host): another site open in the
// operator's browser must not drive the API through the admin port. Requests without Origin do
// not come from a browser page's script and pass, as on the application listener.
func (h *handler) sameOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" {
			u, err := url.Parse(o)
			if err != nil || !strings.EqualFold(u.Host, r.Host) {
				h.o.Telemetry.Metrics.AuthFailed(telemetry.AuthOrigin)
				wire.WriteError(w, http.StatusForbidden, wire.CodeUnauthorized,
					"the console's API is served to the console's own page only")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// keyToHeader moves an API key the page offered as a subprotocol (KeyProtocolPrefix) to the
// X-API-Key header /ws reads, and takes it off the offered subprotocols, so it is never selected
// or echoed. A request that carries a key header already keeps it: the first credential wins, as
// in auth.Authenticator.Request.
func keyToHeader(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		offered := r.Header.Values("Sec-WebSocket-Protocol")
		if len(offered) == 0 {
			next.ServeHTTP(w, r)
			return
		}
		var keep []string
		var key string
		found := false
		for _, h := range offered {
			for p := range strings.SplitSeq(h, ",") {
				p = strings.TrimSpace(p)
				if enc, ok := strings.CutPrefix(p, KeyProtocolPrefix); ok {
					found = true
					if k, err := base64.RawURLEncoding.DecodeString(enc); err == nil {
						key = string(k)
					}
					continue
				}
				if p != "" {
					keep = append(keep, p)
				}
			}
		}
		if !found {
			next.ServeHTTP(w, r)
			return
		}
		r = r.Clone(r.Context())
		r.Header.Del("Sec-WebSocket-Protocol")
		if len(keep) > 0 {
			r.Header.Set("Sec-WebSocket-Protocol", strings.Join(keep, ", "))
		}
		if key != "" && r.Header.Get(auth.HeaderAPIKey) == "" {
			r.Header.Set(auth.HeaderAPIKey, key)
		}
		next.ServeHTTP(w, r)
	})
}
