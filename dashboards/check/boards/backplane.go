package boards

import (
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// Backplane answers "do the replicas still act as one service through Redis": is each pod connected,
// how fast and how often do Redis calls fail, how late do messages arrive from other replicas, how
// often does a pod lose its pub/sub connection, and what could not be repaired. Every series here is
// exported only with PUBSUB_BROKER=redis; on the in-memory broker the board stays empty.
func Backplane() (dashboard.Dashboard, error) {
	b := base("pubsub-backplane", "PubSub / Backplane",
		"Several replicas on Redis: Redis reachability per pod, Redis call latency and errors by operation, receive lag, reconnects and probe restarts, repairs, gaps announced to subscribers, worker overflows and the replicas each pod sees.").
		WithRow(row("Is the backplane healthy?")).
		WithPanel(single("Redis up", "1 while a pod's connections to Redis work (pubsub_backplane_up), per pod. A 0 means its publishes, creates and deletes fail and it reports not ready; PubsubRedisUnreachable fires after a minute.", "none", half,
			q(`min by (pod) (pubsub_backplane_up{`+Sel+`})`, "{{pod}}")).
			TextMode(common.BigValueTextModeValueAndName).
			GraphMode(common.BigValueGraphModeNone)).
		WithPanel(single("Replicas seen", "Replicas with a fresh heartbeat in Redis, as the selected pods see them (the lowest view). Below the pod count: a replica lost Redis or crashed within the heartbeat TTL.", "none", quarter,
			q(`min(pubsub_backplane_replicas{`+Sel+`})`, "replicas"))).
		WithPanel(single("Gaps announced", "Gap notices sent to subscribers over the dashboard's time range: events that could not be recovered from Redis. PubsubBackplaneGapsAnnounced fires on any.", "none", quarter,
			total(`sum(increase(pubsub_backplane_gaps_total{`+Sel+`}[$__range]))`, "gaps")).
			GraphMode(common.BigValueGraphModeNone)).
		WithRow(row("Redis calls")).
		WithPanel(graph("Redis call latency", "p50 and p99 duration of one call to Redis, by operation (the script or command). Publishes wait on the publish script: its p99 is a floor under publish latency.", "s", half, tall,
			latency(`histogram_quantile(0.5, sum by (operation, le) (rate(pubsub_redis_call_duration_seconds_bucket{`+Sel+`}[$__rate_interval])))`, "p50 {{operation}}"),
			latency(`histogram_quantile(0.99, sum by (operation, le) (rate(pubsub_redis_call_duration_seconds_bucket{`+Sel+`}[$__rate_interval])))`, "p99 {{operation}}"))).
		WithPanel(stacked("Redis errors by operation", "Calls to Redis that failed, per second, by operation. Publishes, creates and deletes that fail here are answered with an error; nothing is acknowledged that Redis did not store.", "short", half, tall,
			q(`sum by (operation) (rate(pubsub_redis_errors_total{`+Sel+`}[$__rate_interval]))`, "{{operation}}"))).
		WithRow(row("Receiving from other replicas")).
		WithPanel(graph("Receive lag", "Publish time stamped by the publishing replica -> arrival on this pod through Redis, p50 and p99 per pod. Every subscriber of a pod is at least this late. Across nodes it includes their clock skew. PubsubBackplaneReceiveLagHigh fires on a p99 above 1s for 5 minutes.", "s", half, tall,
			latency(`histogram_quantile(0.5, sum by (pod, le) (rate(pubsub_backplane_receive_lag_seconds_bucket{`+Sel+`}[$__rate_interval])))`, "p50 {{pod}}"),
			latency(`histogram_quantile(0.99, sum by (pod, le) (rate(pubsub_backplane_receive_lag_seconds_bucket{`+Sel+`}[$__rate_interval])))`, "p99 {{pod}}"))).
		WithPanel(graph("Worker overflows", "Messages a pod's full per-topic worker could not take, per second. Each marks its topic for repair from history: the pod receives faster than it can hand messages on.", "short", half, tall,
			q(`sum by (pod) (rate(pubsub_backplane_worker_overflows_total{`+Sel+`}[$__rate_interval]))`, "{{pod}}")).
			Min(0)).
		WithRow(row("Connection to Redis")).
		WithPanel(graph("Reconnects and probe restarts", "Pub/sub connections lost and dialled again, and those replaced because the pod's own probe message did not come back in time (a connection that looked healthy but delivered nothing), per pod in each interval.", "none", third, tall,
			q(`sum by (pod) (increase(pubsub_backplane_reconnects_total{`+Sel+`}[$__rate_interval]))`, "reconnects {{pod}}"),
			q(`sum by (pod) (increase(pubsub_backplane_probe_restarts_total{`+Sel+`}[$__rate_interval]))`, "probe restarts {{pod}}")).
			Min(0)).
		WithPanel(graph("Resubscribe time", "Time to resubscribe every local topic after a reconnect, p50 and p99. Messages published meanwhile are repaired from history afterwards.", "s", third, tall,
			latency(`histogram_quantile(0.5, sum by (le) (rate(pubsub_backplane_resubscribe_duration_seconds_bucket{`+Sel+`}[$__rate_interval])))`, "p50"),
			latency(`histogram_quantile(0.99, sum by (le) (rate(pubsub_backplane_resubscribe_duration_seconds_bucket{`+Sel+`}[$__rate_interval])))`, "p99"))).
		WithPanel(graph("Replicas seen", "Replicas with a fresh heartbeat in Redis, as each pod sees them. Pods that disagree for longer than the heartbeat TTL do not share one Redis view.", "none", third, tall,
			q(`max by (pod) (pubsub_backplane_replicas{`+Sel+`})`, "{{pod}}")).
			Min(0)).
		WithRow(row("Repairs and gaps")).
		WithPanel(stacked("Repairs by result", "Holes in a topic's sequence a pod tried to fill from the topic's history in Redis, per second: ok (the subscribers got the events, in order) or failed (they got a gap notice instead). PubsubBackplaneRepairsFailing fires on failures for 5 minutes.", "short", third, tall,
			q(`sum by (result) (rate(pubsub_backplane_repairs_total{`+Sel+`}[$__rate_interval]))`, "{{result}}"))).
		WithPanel(graph("Gaps announced", "Gap notices sent to subscribers, per pod in each interval: events no repair could recover (trimmed history, or writes a Redis failover or restart lost).", "none", third, tall,
			q(`sum by (pod) (increase(pubsub_backplane_gaps_total{`+Sel+`}[$__rate_interval]))`, "{{pod}}")).
			Min(0)).
		WithPanel(graph("Anomalies", "Messages that arrived with a seq below what the pod had delivered, outside a subscribe or a repair, per pod in each interval. Each is counted and logged; any at all is worth reading the log for.", "none", third, tall,
			q(`sum by (pod) (increase(pubsub_backplane_anomalies_total{`+Sel+`}[$__rate_interval]))`, "{{pod}}")).
			Min(0))
	return build(b)
}
