package telemetry

import (
	"runtime/debug"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/trace"
)

// Operation names, the values of the operation label.
const (
	OpTopicCreate = "topic_create"
	OpTopicDelete = "topic_delete"
	OpTopicList   = "topic_list"
	OpSubscribe   = "subscribe"
	OpUnsubscribe = "unsubscribe"
	OpPublish     = "publish"
	OpPing        = "ping"
	OpStats       = "stats"
)

var operations = []string{OpTopicCreate, OpTopicDelete, OpTopicList, OpSubscribe, OpUnsubscribe, OpPublish, OpPing, OpStats}

// Drop reasons, the values of pubsub_messages_dropped_total's reason label.
const (
	DropOverflowOldest     = "overflow_drop_oldest"
	DropOverflowDisconnect = "overflow_disconnect"
	DropTopicDeleted       = "topic_deleted"
	DropConnectionClosed   = "connection_closed"
)

// Panic components, the values of pubsub_panics_total's component label: the goroutine that
// recovered the panic. Panicked counts any other name as PanicOther, so a panic is never lost.
const (
	PanicReader  = "reader"  // a connection's reader goroutine
	PanicWriter  = "writer"  // a connection's writer goroutine
	PanicFlusher = "flusher" // a flusher goroutine writing for busy connections
	PanicClock   = "clock"   // the server's clock: pings, heartbeats, idle readers and writers
	PanicParker  = "parker"  // the epoll loop that restarts parked readers
	PanicHTTP    = "http"    // a REST handler
	PanicOther   = "other"   // any component not listed above
)

var panicComponents = []string{PanicReader, PanicWriter, PanicFlusher, PanicClock, PanicParker, PanicHTTP, PanicOther}

// Limits, the values of pubsub_limit_rejections_total's limit label: which bound refused a client.
const (
	LimitTopics            = "topics"             // PUBSUB_MAX_TOPICS
	LimitSubscriptions     = "subscriptions"      // PUBSUB_MAX_SUBSCRIPTIONS
	LimitConnSubscriptions = "conn_subscriptions" // PUBSUB_MAX_SUBSCRIPTIONS_PER_CONN
	LimitConnections       = "connections"        // PUBSUB_MAX_CONNECTIONS
	LimitAddrConnections   = "addr_connections"   // PUBSUB_MAX_CONNECTIONS_PER_ADDR
	LimitPublishRate       = "publish_rate"       // PUBSUB_PUBLISH_RATE / _BURST
	LimitEventMemory       = "event_memory"       // PUBSUB_MAX_EVENT_BYTES
	LimitBufferMemory      = "buffer_memory"      // PUBSUB_MAX_BUFFER_BYTES
	LimitReplies           = "replies"            // PUBSUB_MAX_REPLY_BYTES: a client that does not read its replies
	LimitFrameSize         = "frame_size"         // PUBSUB_MAX_FRAME_BYTES (close 1009)
	LimitMessageTimeout    = "message_timeout"    // PUBSUB_MESSAGE_TIMEOUT: an unfinished message
	LimitFieldLength       = "field_length"       // client_id, request_id, message.headers
	LimitBodySize          = "body_size"          // PUBSUB_MAX_BODY_BYTES
	LimitOther             = "other"              // any limit not listed above
)

var limitNames = []string{LimitTopics, LimitSubscriptions, LimitConnSubscriptions, LimitConnections,
	LimitAddrConnections, LimitPublishRate, LimitEventMemory, LimitBufferMemory, LimitReplies, LimitFrameSize,
	LimitMessageTimeout, LimitFieldLength, LimitBodySize, LimitOther}

// Authentication failure reasons, the values of pubsub_auth_failures_total's reason label.
const (
	AuthMissing  = "missing"  // no key and no token
	AuthInvalid  = "invalid"  // a key or token that is not ours, or a token past its expiry
	AuthScope    = "scope"    // a valid principal without the scope for the operation or topic
	AuthTakeover = "takeover" // a client_id held by another principal
	AuthOrigin   = "origin"   // a browser Origin that is not allowed to open /ws
	AuthOther    = "other"
)

var authReasons = []string{AuthMissing, AuthInvalid, AuthScope, AuthTakeover, AuthOrigin, AuthOther}

// CloseCodes are the values of the connections-closed code label; anything else is "other".
var closeCodes = []int{1000, 1001, 1006, 1007, 1008, 1009, 1011, 1013}

// Routes are the REST route templates, the values of the route label.
var Routes = []string{"/topics", "/topics/{name}", "/health", "/stats", "/livez", "/readyz", "/ws", "other"}

// latencyBuckets resolve from 25 µs to 10 s: in-process fan-out and loopback delivery live in the
// sub-millisecond range, a stalled consumer in seconds.
var latencyBuckets = []float64{.000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// stallBuckets double from 50 µs to 1.64 s: a publisher stall is bounded (tens of milliseconds by
// default), so the buckets resolve the short pauses finely and put the bound itself, and any bound
// configured up to a second, inside a bucket of its own.
var stallBuckets = prometheus.ExponentialBuckets(.00005, 2, 16)

// Metrics holds every series the service exports, with children resolved at start so the hot path
// only touches atomics and every series exists from the first scrape. Safe for concurrent use.
type Metrics struct {
	Registry *prometheus.Registry

	ops       map[string]*opMetrics
	errors    map[string]prometheus.Counter
	Published prometheus.Counter
	Delivered prometheus.Counter
	Replayed  prometheus.Counter
	dropped   map[string]prometheus.Counter
	SlowDisc  prometheus.Counter

	publisherStalls    prometheus.Counter
	publisherStallTime prometheus.Histogram
	panics             map[string]prometheus.Counter
	limitRejections    map[string]prometheus.Counter
	authFailures       map[string]prometheus.Counter

	FanoutDuration prometheus.Histogram
	FanoutWidth    prometheus.Histogram
	DeliveryLat    prometheus.Histogram
	QueueDepth     prometheus.Histogram

	framesIn, framesOut map[string]prometheus.Counter
	bytesIn, bytesOut   map[string]prometheus.Counter

	ConnsOpened prometheus.Counter
	connsClosed map[string]prometheus.Counter

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec

	// Incidents keeps the recent slow-consumer episodes and limit refusals for the web console:
	// LimitRejected records each refusal there as it counts it.
	Incidents *Incidents

	gauges Gauges
}

// BindGauges tells the scrape-time gauges where to read. Call it once, before serving /metrics.
func (m *Metrics) BindGauges(g Gauges) { m.gauges = g }

type opMetrics struct {
	ok, err  prometheus.Counter
	duration prometheus.Observer
}

// Gauges are read at scrape time from the running service.
type Gauges struct {
	Connections func() int
	// ParkedReaders counts idle connections whose reader goroutine has stopped (see the ws package).
	ParkedReaders func() int
	Topics        func() (topics, subscriptions int)
	Ready         func() bool
}

// BuildInfo labels pubsub_build_info.
type BuildInfo struct{ Version, Revision string }

func (g *Gauges) topics() (int, int) {
	if g.Topics == nil {
		return 0, 0
	}
	return g.Topics()
}

func newHistogram(name, help string, buckets []float64) prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: name, Help: help, Buckets: buckets,
		NativeHistogramBucketFactor:     1.1,
		NativeHistogramMaxBucketNumber:  160,
		NativeHistogramMinResetDuration: time.Hour,
	})
}

// Labels are the label values that belong to the transports' wire contract (error codes and frame
// types). main passes them in, so telemetry stays independent of the transports while every child
// still exists at zero from the first scrape.
type Labels struct {
	Codes, ClientTypes, ServerTypes []string
}

// NewMetrics registers every series on a fresh registry, every labelled child at zero.
func NewMetrics(info BuildInfo, labels Labels) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{Registry: reg, Incidents: NewIncidents(DefaultIncidents)}
	g := &m.gauges

	opsTotal := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pubsub_operations_total",
		Help: "Service operations handled, by operation and result (ok or error)."}, []string{"operation", "result"})
	opsDur := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pubsub_operation_duration_seconds",
		Help: "Duration of one service operation.", Buckets: latencyBuckets,
		NativeHistogramBucketFactor: 1.1, NativeHistogramMaxBucketNumber: 160, NativeHistogramMinResetDuration: time.Hour},
		[]string{"operation"})
	m.ops = make(map[string]*opMetrics, len(operations))
	for _, op := range operations {
		m.ops[op] = &opMetrics{ok: opsTotal.WithLabelValues(op, "ok"), err: opsTotal.WithLabelValues(op, "error"),
			duration: opsDur.WithLabelValues(op)}
	}

	errs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pubsub_errors_total",
		Help: "Errors returned to clients over REST and WebSocket, by wire code."}, []string{"code"})
	m.errors = children(errs, labels.Codes)

	m.Published = prometheus.NewCounter(prometheus.CounterOpts{Name: "pubsub_messages_published_total", Help: "Messages accepted by a topic."})
	m.Delivered = prometheus.NewCounter(prometheus.CounterOpts{Name: "pubsub_messages_delivered_total", Help: "Events written to subscriber sockets, live and replayed."})
	m.Replayed = prometheus.NewCounter(prometheus.CounterOpts{Name: "pubsub_messages_replayed_total", Help: "History events queued for last_n replay."})
	drops := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pubsub_messages_dropped_total",
		Help: "Messages a subscriber did not get, by reason."}, []string{"reason"})
	m.dropped = children(drops, []string{DropOverflowOldest, DropOverflowDisconnect, DropTopicDeleted, DropConnectionClosed})
	m.SlowDisc = prometheus.NewCounter(prometheus.CounterOpts{Name: "pubsub_slow_consumer_disconnects_total",
		Help: "Connections closed (1008) by the disconnect overflow policy."})

	m.publisherStalls = prometheus.NewCounter(prometheus.CounterOpts{Name: "pubsub_publisher_stalls_total",
		Help: "Publishing connections whose reader paused because delivery to subscribers fell behind."})
	m.publisherStallTime = newHistogram("pubsub_publisher_stall_seconds", "How long each publisher stall lasted.", stallBuckets)
	panics := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pubsub_panics_total",
		Help: "Panics recovered in long-lived and per-connection goroutines, by component."}, []string{"component"})
	m.panics = children(panics, panicComponents)
	limits := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pubsub_limit_rejections_total",
		Help: "Requests, frames and connections refused because a configured limit was reached, by limit."}, []string{"limit"})
	m.limitRejections = children(limits, limitNames)
	auth := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pubsub_auth_failures_total",
		Help: "Requests, frames and handshakes refused by authentication or authorization, by reason."}, []string{"reason"})
	m.authFailures = children(auth, authReasons)

	m.FanoutDuration = newHistogram("pubsub_fanout_duration_seconds", "Time to hand one message to every subscriber queue of its topic.", latencyBuckets)
	m.FanoutWidth = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "pubsub_fanout_subscribers",
		Help: "Fan-out width: subscribers one message was handed to.", Buckets: prometheus.ExponentialBuckets(1, 4, 9)})
	m.DeliveryLat = newHistogram("pubsub_delivery_latency_seconds", "Publish accepted to event written to the subscriber socket, observed for the oldest event each connection wrote in each 50 ms window.", latencyBuckets)
	m.QueueDepth = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "pubsub_subscriber_queue_depth",
		Help: "Subscriber queue depth at enqueue: the deepest queue of each fan-out.", Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}})

	fin := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pubsub_ws_frames_received_total", Help: "WebSocket frames read, by client frame type."}, []string{"type"})
	fout := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pubsub_ws_frames_sent_total", Help: "WebSocket frames written, by server frame type."}, []string{"type"})
	bin := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pubsub_ws_received_bytes_total", Help: "Bytes of WebSocket frames read, by client frame type."}, []string{"type"})
	bout := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pubsub_ws_sent_bytes_total", Help: "Bytes of WebSocket frames written, by server frame type."}, []string{"type"})
	m.framesIn, m.bytesIn = children(fin, labels.ClientTypes), children(bin, labels.ClientTypes)
	m.framesOut, m.bytesOut = children(fout, labels.ServerTypes), children(bout, labels.ServerTypes)

	m.ConnsOpened = prometheus.NewCounter(prometheus.CounterOpts{Name: "pubsub_ws_connections_opened_total", Help: "WebSocket connections accepted."})
	closed := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pubsub_ws_connections_closed_total", Help: "WebSocket connections closed, by close code."}, []string{"code"})
	codeLabels := []string{"other"}
	for _, c := range closeCodes {
		codeLabels = append(codeLabels, strconv.Itoa(c))
	}
	m.connsClosed = children(closed, codeLabels)

	m.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pubsub_http_requests_total",
		Help: "HTTP requests, by route template, method and status code."}, []string{"route", "method", "code"})
	m.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pubsub_http_request_duration_seconds",
		Help: "HTTP request duration, by route template and method.", Buckets: latencyBuckets}, []string{"route", "method"})

	gauges := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pubsub_ws_connections", Help: "Open WebSocket connections."},
			func() float64 {
				if g.Connections == nil {
					return 0
				}
				return float64(g.Connections())
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pubsub_ws_readers_parked",
			Help: "Idle WebSocket connections holding no reader goroutine (their sockets wait in the server's epoll set)."},
			func() float64 {
				if g.ParkedReaders == nil {
					return 0
				}
				return float64(g.ParkedReaders())
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pubsub_subscriptions", Help: "Active subscriptions over all topics."},
			func() float64 { _, s := g.topics(); return float64(s) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pubsub_topics", Help: "Topics."},
			func() float64 { t, _ := g.topics(); return float64(t) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pubsub_ready", Help: "1 while the process accepts new work, 0 while starting or draining."},
			func() float64 {
				if g.Ready != nil && g.Ready() {
					return 1
				}
				return 0
			}),
	}
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pubsub_build_info", Help: "Build information; always 1."}, []string{"version", "revision", "goversion"})
	goVersion := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
	}
	build.WithLabelValues(info.Version, info.Revision, goVersion).Set(1)

	reg.MustRegister(opsTotal, opsDur, errs, m.Published, m.Delivered, m.Replayed, drops, m.SlowDisc,
		m.publisherStalls, m.publisherStallTime, panics, limits, auth,
		m.FanoutDuration, m.FanoutWidth, m.DeliveryLat, m.QueueDepth, fin, fout, bin, bout,
		m.ConnsOpened, closed, m.httpRequests, m.httpDuration, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(gauges...)
	// The status codes are open-ended, so the request counter is pre-created at the success code
	// only: enough for the family to exist on the first scrape, and for a rate to read 0, not "no data".
	for _, route := range Routes {
		for _, method := range []string{"GET", "POST", "DELETE"} {
			m.httpDuration.WithLabelValues(route, method)
			m.httpRequests.WithLabelValues(route, method, "200")
		}
	}
	return m
}

func children(v *prometheus.CounterVec, labels []string) map[string]prometheus.Counter {
	out := make(map[string]prometheus.Counter, len(labels))
	for _, l := range labels {
		out[l] = v.WithLabelValues(l)
	}
	return out
}

// Operation records one operation's outcome and duration, with the trace as an exemplar when sc is
// sampled.
func (m *Metrics) Operation(op string, err error, d time.Duration, sc trace.SpanContext) {
	o := m.ops[op]
	if o == nil {
		return
	}
	if err != nil {
		o.err.Inc()
	} else {
		o.ok.Inc()
	}
	observe(o.duration, d.Seconds(), sc)
}

// Error counts an error returned to a client.
func (m *Metrics) Error(code string) {
	if c := m.errors[code]; c != nil {
		c.Inc()
	}
}

// Dropped counts n messages lost for reason.
func (m *Metrics) Dropped(reason string, n uint64) {
	if c := m.dropped[reason]; c != nil && n > 0 {
		c.Add(float64(n))
	}
}

// PublisherStalled records one publisher stall: a publishing connection's reader paused for d
// because delivery to subscribers fell behind. Call it once the stall ends.
func (m *Metrics) PublisherStalled(d time.Duration) {
	m.publisherStalls.Inc()
	m.publisherStallTime.Observe(d.Seconds())
}

// Panicked counts a panic recovered in a goroutine of component (one of the Panic* constants;
// anything else counts as PanicOther, so a panic in a component not listed yet still alerts).
func (m *Metrics) Panicked(component string) {
	c := m.panics[component]
	if c == nil {
		c = m.panics[PanicOther]
	}
	c.Inc()
}

// LimitRejected counts one refusal by limit (one of the Limit* constants; anything else counts as
// LimitOther) and records it in Incidents, when the refusal's topic and client are not known.
func (m *Metrics) LimitRejected(limit string) { m.LimitRejectedFor(limit, "", "") }

// LimitRejectedFor is LimitRejected for a refusal whose topic or client address (either may be
// empty) is known: the incident then says which, as the refusal's log line does.
func (m *Metrics) LimitRejectedFor(limit, topic, remote string) {
	c := m.limitRejections[limit]
	if c == nil {
		c = m.limitRejections[LimitOther]
	}
	c.Inc()
	m.Incidents.Add(Incident{Kind: IncidentLimit, Limit: limit, Topic: topic, Remote: remote})
}

// AuthFailed counts one refusal by authentication or authorization (one of the Auth* constants;
// anything else counts as AuthOther).
func (m *Metrics) AuthFailed(reason string) {
	c := m.authFailures[reason]
	if c == nil {
		c = m.authFailures[AuthOther]
	}
	c.Inc()
}

// FrameIn counts a frame read.
func (m *Metrics) FrameIn(typ string, bytes int) {
	if c := m.framesIn[typ]; c != nil {
		c.Inc()
		m.bytesIn[typ].Add(float64(bytes))
	}
}

// FramesOut counts n frames of one type written, with their total size.
func (m *Metrics) FramesOut(typ string, n, bytes int) {
	if c := m.framesOut[typ]; c != nil && n > 0 {
		c.Add(float64(n))
		m.bytesOut[typ].Add(float64(bytes))
	}
}

// ConnClosed counts a closed connection by close code.
func (m *Metrics) ConnClosed(code int) {
	c := m.connsClosed[strconv.Itoa(code)]
	if c == nil {
		c = m.connsClosed["other"]
	}
	c.Inc()
}

// observe records v on h, with the trace id as an exemplar when sc is sampled, so a slow bucket
// links to its trace in Jaeger.
func observe(h prometheus.Observer, v float64, sc trace.SpanContext) {
	if sc.IsSampled() {
		if eo, ok := h.(prometheus.ExemplarObserver); ok {
			eo.ObserveWithExemplar(v, prometheus.Labels{"trace_id": sc.TraceID().String()})
			return
		}
	}
	h.Observe(v)
}

// HTTPRequest counts a REST request by route template.
func (m *Metrics) HTTPRequest(route, method string, code int, d time.Duration, sc trace.SpanContext) {
	m.httpRequests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	observe(m.httpDuration.WithLabelValues(route, method), d.Seconds(), sc)
}
