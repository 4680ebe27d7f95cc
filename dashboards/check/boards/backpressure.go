package boards

import (
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/heatmap"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
)

// overflowDrops selects the drops caused by a full subscriber queue, as opposed to those caused by a
// topic being deleted or a connection closing with events still queued.
const overflowDrops = `reason=~"overflow_.*"`

// Backpressure answers "is a subscriber falling behind, and what does the service do about it":
// queue depth, drops by reason, slow-consumer disconnects, fan-out width and duration, the gap
// between what fan-out handed to queues and what reached sockets, and publisher stalls.
func Backpressure() (dashboard.Dashboard, error) {
	b := base("pubsub-backpressure", "PubSub / Backpressure",
		"Subscriber queue depth, drops by reason, slow-consumer disconnects, fan-out width and duration, the gap between published and delivered, and publisher stalls.").
		WithRow(row("Is anyone falling behind?")).
		WithPanel(single("Drops / s", "Messages a subscriber did not get, all reasons, per second.", "short", quarter,
			q(`sum(rate(pubsub_messages_dropped_total{`+Sel+`}[$__rate_interval]))`, "dropped"))).
		WithPanel(single("Slow-consumer disconnects", "Connections closed with 1008 by the disconnect overflow policy over the dashboard's time range.", "none", quarter,
			total(`sum(increase(pubsub_slow_consumer_disconnects_total{`+Sel+`}[$__range]))`, "disconnects")).
			GraphMode(common.BigValueGraphModeNone)).
		WithPanel(single("Queue depth p99", "99th percentile of the deepest subscriber queue at each fan-out. Compare with PUBSUB_MAX_QUEUE_SIZE.", "none", quarter,
			q(`histogram_quantile(0.99, sum by (le) (rate(pubsub_subscriber_queue_depth_bucket{`+Sel+`}[$__rate_interval])))`, "p99"))).
		WithPanel(single("Delivery p99", "99th percentile of publish accepted -> event written to the subscriber socket.", "s", quarter,
			latency(`histogram_quantile(0.99, sum by (le) (rate(pubsub_delivery_latency_seconds_bucket{`+Sel+`}[$__rate_interval])))`, "p99"))).
		WithRow(row("Subscriber queues")).
		WithPanel(graph("Queue depth at enqueue", "Depth of the deepest subscriber queue of each fan-out, when the message was enqueued. A queue at PUBSUB_MAX_QUEUE_SIZE overflows: drop_oldest drops, disconnect closes the connection.", "none", half, tall,
			quantiles("pubsub_subscriber_queue_depth", false)...).Min(0)).
		WithPanel(heatmap.NewPanelBuilder().
			Title("Queue depth distribution").
			Description("How many fan-outs found their deepest subscriber queue at each depth. Mass moving up means consumers slower than publishers.").
			Datasource(promDS()).
			Span(half).
			Height(tall).
			Calculate(false).
			Color(heatmap.NewHeatmapColorOptionsBuilder().Mode(heatmap.HeatmapColorModeScheme).Scheme("Oranges").Exponent(0.5).Steps(64)).
			YAxis(heatmap.NewYAxisConfigBuilder().Unit("none")).
			WithTarget(prometheus.NewDataqueryBuilder().
				Datasource(promDS()).
				RefId("A").
				Expr(`sum by (le) (increase(pubsub_subscriber_queue_depth_bucket{` + Sel + `}[$__rate_interval]))`).
				LegendFormat("{{le}}").
				Format(prometheus.PromQueryFormatHeatmap).
				Range())).
		WithRow(row("Drops and disconnects")).
		WithPanel(stacked("Dropped messages by reason", "overflow_drop_oldest: a full queue dropped its oldest event; overflow_disconnect: a full queue closed the connection; topic_deleted and connection_closed: events still queued when the topic or connection went away.", "short", third, tall,
			q(`sum by (reason) (rate(pubsub_messages_dropped_total{`+Sel+`}[$__rate_interval]))`, "{{reason}}"))).
		WithPanel(graph("Overflow drop ratio", "Share of deliveries lost to a full queue: overflow drops / (delivered + overflow drops).", "percentunit", third, tall,
			q(`sum(rate(pubsub_messages_dropped_total{`+Sel+`, `+overflowDrops+`}[$__rate_interval])) / (sum(rate(pubsub_messages_delivered_total{`+Sel+`}[$__rate_interval])) + sum(rate(pubsub_messages_dropped_total{`+Sel+`, `+overflowDrops+`}[$__rate_interval])))`, "overflow drops")).
			Min(0)).
		WithPanel(graph("Slow-consumer disconnects and close codes", "Connections closed by the disconnect overflow policy, next to all closes by WebSocket close code (1008 policy, 1009 message too big).", "short", third, tall,
			q(`sum(rate(pubsub_slow_consumer_disconnects_total{`+Sel+`}[$__rate_interval]))`, "slow consumer"),
			q(`sum by (code) (rate(pubsub_ws_connections_closed_total{`+Sel+`}[$__rate_interval]))`, "closed {{code}}"))).
		WithRow(row("Fan-out")).
		WithPanel(graph("Fan-out width", "Subscribers a message was handed to.", "none", half, tall,
			append(quantiles("pubsub_fanout_subscribers", false),
				q(`sum(rate(pubsub_fanout_subscribers_sum{`+Sel+`}[$__rate_interval])) / sum(rate(pubsub_fanout_subscribers_count{`+Sel+`}[$__rate_interval]))`, "mean"))...).
			Min(0)).
		WithPanel(graph("Fan-out duration", "Time to hand one message to every subscriber queue of its topic. The query asks for exemplars; they show as dots once the service attaches trace ids to this histogram (today only delivery latency has them).", "s", half, tall,
			quantiles("pubsub_fanout_duration_seconds", true)...)).
		WithRow(row("Published vs delivered")).
		WithPanel(graph("Published, handed to queues, delivered", "published: messages accepted; handed to queues: the sum of fan-out widths (live deliveries owed); replayed: history events queued for last_n replay; delivered: events written to sockets (live and replayed).", "short", third, tall,
			q(`sum(rate(pubsub_messages_published_total{`+Sel+`}[$__rate_interval]))`, "published"),
			q(`sum(rate(pubsub_fanout_subscribers_sum{`+Sel+`}[$__rate_interval]))`, "handed to queues"),
			q(`sum(rate(pubsub_messages_replayed_total{`+Sel+`}[$__rate_interval]))`, "replayed"),
			q(`sum(rate(pubsub_messages_delivered_total{`+Sel+`}[$__rate_interval]))`, "delivered"))).
		WithPanel(graph("Delivery gap", "Deliveries owed (handed to queues + replayed) minus events written to sockets, per second. Near 0 when consumers keep up; positive while queues grow or events are dropped.", "short", third, tall,
			q(`sum(rate(pubsub_fanout_subscribers_sum{`+Sel+`}[$__rate_interval])) + sum(rate(pubsub_messages_replayed_total{`+Sel+`}[$__rate_interval])) - sum(rate(pubsub_messages_delivered_total{`+Sel+`}[$__rate_interval]))`, "owed - delivered"))).
		WithPanel(graph("Delivery latency", "Publish accepted -> event written to the subscriber socket. Dots are exemplars of sampled traces: hover one and click View trace in Jaeger to open the publish trace.", "s", third, tall,
			quantiles("pubsub_delivery_latency_seconds", true)...)).
		// Last, so the panels above keep their ids (and viewPanel links).
		WithRow(row("Publisher stalls")).
		WithPanel(graph("Publisher stalls", "Publishing connections paused per second: when delivery to subscribers whose sockets are writable falls behind, a publisher's reader stops reading for a bounded time instead of letting subscriber queues overflow. Stalls slow publishers down; drops and disconnects should stay flat while they happen.", "short", half, tall,
			q(`sum(rate(pubsub_publisher_stalls_total{`+Sel+`}[$__rate_interval]))`, "stalls"))).
		WithPanel(graph("Publisher stall time", "p50 and p99 length of one stall (each is bounded), and the time publishers spent stalled per second, summed over publishing connections: with one publisher, the share of its time it was paused. Stalls carry no trace, so no exemplars show.", "s", half, tall,
			latency(`histogram_quantile(0.5, sum by (le) (rate(pubsub_publisher_stall_seconds_bucket{`+Sel+`}[$__rate_interval])))`, "p50"),
			latency(`histogram_quantile(0.99, sum by (le) (rate(pubsub_publisher_stall_seconds_bucket{`+Sel+`}[$__rate_interval])))`, "p99"),
			q(`sum(rate(pubsub_publisher_stall_seconds_sum{`+Sel+`}[$__rate_interval]))`, "stalled per second")).
			Min(0))
	return build(b)
}
