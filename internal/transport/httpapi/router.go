// Package httpapi is the REST side of the contract (topics, health, stats), the probes, and the
// middleware every request passes through: panic recovery, a span and metrics per route template.
package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/gorilla/mux"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/pubsubd/pubsub/internal/auth"
	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/service"
	"github.com/pubsubd/pubsub/internal/transport/httpapi/api"
	"github.com/pubsubd/pubsub/internal/transport/wire"
	"github.com/pubsubd/pubsub/telemetry"
)

// Defaults of the Options limits, for a router built without them.
const (
	defaultMaxBodyBytes = 64 << 10 // a topic name is at most 255 characters
	defaultListPageMax  = 1000
)

// Options wire the router to the rest of the process.
type Options struct {
	API       service.API
	Telemetry *telemetry.Telemetry
	WS        http.Handler // serves /ws
	// Ready answers /readyz: nil when the process takes new work, else why not. It bounds its own
	// wait on the engine (service.Service.Ready does).
	Ready func(ctx context.Context) error
	// Auth authenticates requests (nil: authentication is off). See auth.go.
	Auth *auth.Authenticator
	// MaxBodyBytes bounds REST request bodies: larger ones get 413 (0: 64 KiB).
	MaxBodyBytes int64
	// ListPageMax bounds the entries of one page of GET /topics and GET /stats, and is the page
	// size when the client asks for none (0: 1000).
	ListPageMax int
}

// NewRouter returns the application's handler: REST, probes, /ws and the API descriptions
// (GET /openapi.json and GET /asyncapi.json, see package api).
func NewRouter(o Options) http.Handler {
	h := &handlers{api: o.API, tel: o.Telemetry, ready: o.Ready, maxBody: o.MaxBodyBytes, pageMax: o.ListPageMax, auth: o.Auth}
	if h.maxBody <= 0 {
		h.maxBody = defaultMaxBodyBytes
	}
	if h.pageMax <= 0 {
		h.pageMax = defaultListPageMax
	}
	r := mux.NewRouter()
	// mux runs its middleware only on matched routes, so the unrouted handlers are wrapped here:
	// they are counted under route "other" like the metric contract says.
	// Paths and methods outside the contract keep their HTTP statuses (404, 405) but speak the
	// contract's error shape with its BAD_REQUEST code: the contract has no code of its own for them.
	r.NotFoundHandler = h.instrument(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.tel.Metrics.Error(wire.CodeBadRequest)
		wire.WriteError(w, http.StatusNotFound, wire.CodeBadRequest, "no such endpoint: "+r.URL.Path)
	}))
	r.MethodNotAllowedHandler = h.instrument(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.tel.Metrics.Error(wire.CodeBadRequest)
		wire.WriteError(w, http.StatusMethodNotAllowed, wire.CodeBadRequest, "method "+r.Method+" is not allowed on "+r.URL.Path)
	}))
	for _, rt := range h.routes(o.WS) {
		r.Handle(rt.Path, rt.handler).Methods(rt.Method)
	}
	// The recoverer inside instrument turns a panic into the 500 that the span, the request metrics
	// and the log (with the request's trace) all see; the outer one guards the unrouted handlers.
	// The guard comes after both, so refusals are traced and counted like any other answer.
	r.Use(h.instrument, h.recoverer, h.guard)
	return h.recoverer(r)
}

// Route is one method and path template the router serves.
type Route struct {
	Method, Path string
	handler      http.Handler
}

// routes is the one list of what the router serves: NewRouter registers exactly these, and Routes
// reports them, so the test that holds openapi.json to the router reads the real table.
func (h *handlers) routes(ws http.Handler) []Route {
	return []Route{
		{http.MethodPost, "/topics", http.HandlerFunc(h.createTopic)},
		{http.MethodGet, "/topics", http.HandlerFunc(h.listTopics)},
		{http.MethodDelete, "/topics/{name}", http.HandlerFunc(h.deleteTopic)},
		{http.MethodGet, "/health", http.HandlerFunc(h.health)},
		{http.MethodGet, "/stats", http.HandlerFunc(h.stats)},
		{http.MethodGet, "/livez", http.HandlerFunc(h.livez)},
		{http.MethodGet, "/readyz", http.HandlerFunc(h.readyz)},
		{http.MethodGet, "/ws", ws},
		{http.MethodGet, "/openapi.json", document(api.OpenAPI)},
		{http.MethodGet, "/asyncapi.json", document(api.AsyncAPI)},
	}
}

// Routes returns the method and path template of every route NewRouter registers, in order.
func Routes() []Route {
	rs := (&handlers{}).routes(nil)
	for i := range rs {
		rs[i].handler = nil
	}
	return rs
}

type handlers struct {
	api     service.API
	tel     *telemetry.Telemetry
	ready   func(context.Context) error
	maxBody int64
	pageMax int
	auth    *auth.Authenticator // nil: off
}

func (h *handlers) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, code, msg := wire.HTTPError(err)
	h.tel.Metrics.Error(code)
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	h.tel.Logger.Log(r.Context(), level, "http request failed", "method", r.Method, "path", r.URL.Path,
		"status", status, "code", code, "error", err.Error())
	wire.WriteError(w, status, code, msg)
}

func (h *handlers) createTopic(w http.ResponseWriter, r *http.Request) {
	var body wire.CreateTopicRequest
	if r.ContentLength > h.maxBody { // refused before a byte of it is read
		h.bodyTooLarge(w, r)
		return
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err := dec.Decode(&body); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			h.bodyTooLarge(w, r)
			return
		}
		if errors.Is(err, io.EOF) {
			h.fail(w, r, domain.Errorf(domain.KindInvalid, `request body must be JSON like {"name":"orders"}`))
			return
		}
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			h.fail(w, r, domain.Errorf(domain.KindInvalid, "%s must be a string", fieldOr(typeErr.Field, "body")))
			return
		}
		h.fail(w, r, domain.Errorf(domain.KindInvalid, "request body is not valid JSON"))
		return
	}
	if body.Name == nil {
		h.fail(w, r, domain.Errorf(domain.KindInvalid, "name is required"))
		return
	}
	name, err := domain.ParseTopicName(*body.Name)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.api.CreateTopic(r.Context(), name); err != nil {
		h.fail(w, r, err)
		return
	}
	wire.WriteJSON(w, http.StatusCreated, wire.TopicStatus{Status: "created", Topic: string(name)})
}

func fieldOr(f, def string) string {
	if f == "" {
		return def
	}
	return f
}

func (h *handlers) deleteTopic(w http.ResponseWriter, r *http.Request) {
	raw := mux.Vars(r)["name"]
	name, err := domain.ParseTopicName(raw)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.api.DeleteTopic(r.Context(), name); err != nil {
		h.fail(w, r, err)
		return
	}
	wire.WriteJSON(w, http.StatusOK, wire.TopicStatus{Status: "deleted", Topic: string(name)})
}

func (h *handlers) listTopics(w http.ResponseWriter, r *http.Request) {
	pg, err := h.parsePage(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	all, err := h.api.ListTopics(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ts, next := pg.of(all)
	out := wire.TopicList{Topics: make([]wire.TopicItem, len(ts)), Next: next}
	for i, t := range ts {
		out.Topics[i] = wire.TopicItem{Name: string(t.Name), Subscribers: t.Subscribers}
	}
	pg.link(w, r, next)
	wire.WriteJSON(w, http.StatusOK, out)
}

func (h *handlers) health(w http.ResponseWriter, r *http.Request) {
	hl, err := h.api.Health(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	wire.WriteJSON(w, http.StatusOK, wire.Health{UptimeSec: int64(hl.Uptime / time.Second), Topics: hl.Topics, Subscribers: hl.Subscriptions})
}

func (h *handlers) stats(w http.ResponseWriter, r *http.Request) {
	pg, err := h.parsePage(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	all, err := h.api.Stats(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ts, next := pg.of(all)
	pg.link(w, r, next)
	out := wire.Stats{Topics: make(map[string]wire.TopicStats, len(ts)), Next: next}
	for _, t := range ts {
		out.Topics[string(t.Name)] = wire.TopicStats{Messages: t.Messages, Subscribers: t.Subscribers}
	}
	wire.WriteJSON(w, http.StatusOK, out)
}

// livez answers as long as the process can serve HTTP: it depends on nothing outside the process,
// so a restart is never triggered by a dependency's outage.
func (h *handlers) livez(w http.ResponseWriter, _ *http.Request) {
	wire.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 503 while the process is draining or its engine does not take work, so that the
// Service sends new clients elsewhere; it is never a reason to restart the pod (that is /livez).
func (h *handlers) readyz(w http.ResponseWriter, r *http.Request) {
	if h.ready != nil {
		if err := h.ready(r.Context()); err != nil {
			wire.WriteError(w, http.StatusServiceUnavailable, wire.CodeUnavailable, "not ready: "+err.Error())
			return
		}
	}
	wire.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// document serves one of the API descriptions built into the binary (package api), as it is.
func document(doc []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(doc)
	}
}

// statusWriter remembers the status for metrics. It passes Hijack through for /ws.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Hijack hands the connection to the WebSocket upgrader, which asserts http.Hijacker directly.
func (s *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := s.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("httpapi: response writer cannot be hijacked")
	}
	s.status = http.StatusSwitchingProtocols
	return hj.Hijack()
}

// instrument gives every request a server span named by its route template (continuing a
// traceparent header) and counts it by route, method and status. Probes are counted, not traced.
func (h *handlers) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route := "other"
		if cr := mux.CurrentRoute(r); cr != nil {
			if tpl, err := cr.GetPathTemplate(); err == nil {
				route = tpl
			}
		}
		method := r.Method
		if !knownMethods[method] {
			method = "_OTHER" // a client must not be able to mint label values (OTel's spelling)
		}
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		// Probes and the WebSocket handshake are not traced (the frames are), nor is unrouted traffic.
		traced := route != "/livez" && route != "/readyz" && route != "/ws" && route != "other"
		if traced {
			ctx := h.tel.Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
			ctx, span := h.tel.Tracer.Start(ctx, method+" "+route, trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(attribute.String("http.request.method", method), attribute.String("http.route", route)))
			defer func() {
				span.SetAttributes(attribute.Int("http.response.status_code", sw.code()))
				if sw.code() >= 500 {
					span.SetStatus(codes.Error, http.StatusText(sw.code()))
				}
				span.End()
			}()
			r = r.WithContext(ctx)
		}
		next.ServeHTTP(sw, r)
		h.tel.Metrics.HTTPRequest(route, method, sw.code(), time.Since(start), trace.SpanContextFromContext(r.Context()))
	})
}

// knownMethods are the HTTP methods used as label values as they are; any other is "_OTHER".
var knownMethods = map[string]bool{http.MethodGet: true, http.MethodHead: true, http.MethodPost: true,
	http.MethodPut: true, http.MethodPatch: true, http.MethodDelete: true, http.MethodConnect: true,
	http.MethodOptions: true, http.MethodTrace: true}

func (s *statusWriter) code() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}

// recoverer turns a panic in a handler into a 500 with the contract's body, and a log line with the
// stack, instead of a dropped connection.
func (h *handlers) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				h.tel.Logger.ErrorContext(r.Context(), "panic while serving a request", "method", r.Method,
					"path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				h.tel.Metrics.Error(wire.CodeInternal)
				h.tel.Metrics.Panicked(telemetry.PanicHTTP)
				wire.WriteError(w, http.StatusInternalServerError, wire.CodeInternal, "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}
