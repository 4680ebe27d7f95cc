package boards

import "github.com/grafana/grafana-foundation-sdk/go/dashboard"

// Overview is the board an operator opens first: is the service up, how much work is it doing, how
// much of it fails, and how long do deliveries take.
func Overview() (dashboard.Dashboard, error) {
	b := base("pubsub-overview", "PubSub / Overview",
		"Rate, errors and duration per operation; connections, subscriptions, topics; publish and delivery rates; delivery latency with trace exemplars; error codes; limit rejections and auth failures.").
		WithRow(row("At a glance")).
		WithPanel(single("Ready pods", "Pods accepting new work (pubsub_ready). Lower than the pod count while a pod starts or drains.", "none", 4,
			q(`sum(pubsub_ready{`+Sel+`})`, "ready"))).
		WithPanel(single("Connections", "Open WebSocket connections over the selected pods.", "none", 4,
			q(`sum(pubsub_ws_connections{`+Sel+`})`, "connections"))).
		WithPanel(single("Subscriptions", "Active subscriptions over all topics and the selected pods.", "none", 4,
			q(`sum(pubsub_subscriptions{`+Sel+`})`, "subscriptions"))).
		WithPanel(single("Topics", "Topics summed over the selected pods. With the in-memory broker each pod holds its own topics.", "none", 4,
			q(`sum(pubsub_topics{`+Sel+`})`, "topics"))).
		WithPanel(single("Published / s", "Messages accepted by a topic, per second.", "short", 4,
			q(`sum(rate(pubsub_messages_published_total{`+Sel+`}[$__rate_interval]))`, "published"))).
		WithPanel(single("Delivery p99", "99th percentile of publish accepted -> event written to the subscriber socket.", "s", 4,
			latency(`histogram_quantile(0.99, sum by (le) (rate(pubsub_delivery_latency_seconds_bucket{`+Sel+`}[$__rate_interval])))`, "p99"))).
		WithRow(row("Operations (rate, errors, duration)")).
		WithPanel(stacked("Operation rate", "Operations handled per second, by operation (REST and WebSocket).", "reqps", third, tall,
			q(`sum by (operation) (rate(pubsub_operations_total{`+Sel+`}[$__rate_interval]))`, "{{operation}}"))).
		WithPanel(graph("Operation error ratio", "Share of operations that ended with result=error, by operation.", "percentunit", third, tall,
			q(`sum by (operation) (rate(pubsub_operations_total{`+Sel+`, result="error"}[$__rate_interval])) / sum by (operation) (rate(pubsub_operations_total{`+Sel+`}[$__rate_interval]))`, "{{operation}}")).
			Min(0)).
		WithPanel(graph("Operation duration p99", "99th percentile duration by operation. The query asks for exemplars; they show as dots once the service attaches trace ids to this histogram (today only delivery latency has them).", "s", third, tall,
			latency(`histogram_quantile(0.99, sum by (operation, le) (rate(pubsub_operation_duration_seconds_bucket{`+Sel+`}[$__rate_interval])))`, "{{operation}}"))).
		WithRow(row("Messages")).
		WithPanel(graph("Publish and delivery rate", "Messages accepted by topics, events written to subscriber sockets (live and replayed), history events queued for replay, and messages a subscriber did not get.", "short", half, tall,
			q(`sum(rate(pubsub_messages_published_total{`+Sel+`}[$__rate_interval]))`, "published"),
			q(`sum(rate(pubsub_messages_delivered_total{`+Sel+`}[$__rate_interval]))`, "delivered"),
			q(`sum(rate(pubsub_messages_replayed_total{`+Sel+`}[$__rate_interval]))`, "replayed"),
			q(`sum(rate(pubsub_messages_dropped_total{`+Sel+`}[$__rate_interval]))`, "dropped"))).
		WithPanel(graph("Delivery latency", "Publish accepted -> event written to the subscriber socket. Dots are exemplars of sampled traces: hover one and click View trace in Jaeger to open the publish trace.", "s", half, tall,
			quantiles("pubsub_delivery_latency_seconds", true)...)).
		WithRow(row("Connections and subscriptions")).
		WithPanel(graph("Open connections", "Open WebSocket connections, by pod.", "none", third, tall,
			q(`sum by (pod) (pubsub_ws_connections{`+Sel+`})`, "{{pod}}"))).
		WithPanel(graph("Connections opened and closed", "WebSocket connections accepted, and closed by close code (1000 normal, 1001 going away, 1006 abnormal, 1008 policy/slow consumer, 1009 too big, 1011 server error).", "short", third, tall,
			q(`sum(rate(pubsub_ws_connections_opened_total{`+Sel+`}[$__rate_interval]))`, "opened"),
			q(`sum by (code) (rate(pubsub_ws_connections_closed_total{`+Sel+`}[$__rate_interval]))`, "closed {{code}}"))).
		WithPanel(graph("Subscriptions and topics", "Active subscriptions and topics, summed over the selected pods.", "none", third, tall,
			q(`sum(pubsub_subscriptions{`+Sel+`})`, "subscriptions"),
			q(`sum(pubsub_topics{`+Sel+`})`, "topics"))).
		WithRow(row("Errors and traffic")).
		WithPanel(stacked("Errors by code", "Errors returned to clients (REST and WebSocket), by wire code.", "short", third, tall,
			q(`sum by (code) (rate(pubsub_errors_total{`+Sel+`}[$__rate_interval]))`, "{{code}}"))).
		WithPanel(stacked("HTTP requests", "REST requests by route template and status code.", "reqps", third, tall,
			q(`sum by (route, code) (rate(pubsub_http_requests_total{`+Sel+`}[$__rate_interval]))`, "{{route}} {{code}}"))).
		WithPanel(graph("HTTP duration p99", "99th percentile REST request duration, by route template. The query asks for exemplars; they show as dots once the service attaches trace ids to this histogram.", "s", third, tall,
			latency(`histogram_quantile(0.99, sum by (route, le) (rate(pubsub_http_request_duration_seconds_bucket{`+Sel+`}[$__rate_interval])))`, "{{route}}"))).
		WithPanel(graph("WebSocket frames", "Frames read (in) and written (out), by frame type.", "short", half, tall,
			q(`sum by (type) (rate(pubsub_ws_frames_received_total{`+Sel+`}[$__rate_interval]))`, "in {{type}}"),
			q(`sum by (type) (rate(pubsub_ws_frames_sent_total{`+Sel+`}[$__rate_interval]))`, "out {{type}}"))).
		WithPanel(graph("WebSocket bytes", "Bytes of frames read (in) and written (out).", "Bps", half, tall,
			q(`sum(rate(pubsub_ws_received_bytes_total{`+Sel+`}[$__rate_interval]))`, "in"),
			q(`sum(rate(pubsub_ws_sent_bytes_total{`+Sel+`}[$__rate_interval]))`, "out")).
			AxisSoftMin(0)).
		WithRow(row("Limits and auth")).
		WithPanel(stacked("Limit rejections by limit", "Requests, frames and connections refused because a configured limit was reached (PUBSUB_MAX_*, publish rate, frame and field sizes, message timeout), by limit. event_memory means PUBSUB_MAX_EVENT_BYTES is full and publishes are refused for every topic.", "short", half, tall,
			q(`sum by (limit) (rate(pubsub_limit_rejections_total{`+Sel+`}[$__rate_interval]))`, "{{limit}}"))).
		WithPanel(stacked("Auth failures by reason", "Requests, frames and handshakes refused by authentication or authorization: missing (no key or token), invalid (unknown key, bad or expired token), scope (the key lacks the scope for the operation or topic), takeover (a client_id held by another principal), origin (a browser Origin not allowed to open /ws).", "short", half, tall,
			q(`sum by (reason) (rate(pubsub_auth_failures_total{`+Sel+`}[$__rate_interval]))`, "{{reason}}")))
	return build(b)
}
