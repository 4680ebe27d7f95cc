package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// result is the outcome of a run; its JSON form is the -json output.
type result struct {
	Scenario      string           `json:"scenario"`
	Config        config           `json:"config"`
	DurationSec   float64          `json:"duration_sec"` // publishing phase
	DrainTimedOut bool             `json:"drain_timed_out"`
	Publish       publishStats     `json:"publish"`
	Deliveries    int64            `json:"deliveries"`
	DeliveryRate  float64          `json:"deliveries_per_sec"`
	Groups        []*groupStats    `json:"groups"`
	Errors        map[string]int64 `json:"errors"`
	Infos         map[string]int64 `json:"infos,omitempty"`
	Server        *serverStats     `json:"server,omitempty"`
	Bench         cpuStats         `json:"bench"`
	Conns         *connStats       `json:"conns,omitempty"`
	// With several servers: each one's share, and the end-to-end latency
	// of deliveries that crossed from a publisher's server to another.
	Servers        []*serverShare  `json:"servers,omitempty"`
	CrossServerE2E *latencySummary `json:"cross_server_e2e_latency,omitempty"`
	Violations     []string        `json:"violations"`
	Warnings       []string        `json:"warnings,omitempty"`
}

type publishStats struct {
	Publishers  int            `json:"publishers"`
	Sent        int64          `json:"sent"`
	Acked       int64          `json:"acked"`
	ErrReplies  int64          `json:"error_replies"`
	Unanswered  int64          `json:"unanswered"`
	DupReplies  int64          `json:"duplicate_replies"`
	Unmatched   int64          `json:"unmatched_replies"`
	Echoes      int64          `json:"echoes"` // events on publisher connections
	AckedPerSec float64        `json:"acked_per_sec"`
	AckLatency  latencySummary `json:"ack_latency"`
}

// groupStats sums the subscribers of one kind.
type groupStats struct {
	Name          string         `json:"name"`
	Subscribers   int            `json:"subscribers"`
	Deliveries    int64          `json:"deliveries"`
	Expected      int64          `json:"expected"`
	Lost          int64          `json:"lost"`
	LossySubs     int            `json:"lossy_subscribers"`
	MaxLost       int64          `json:"max_lost_per_subscriber"`
	Tail          int64          `json:"tail"` // lost after the last seq seen
	Unacked       int64          `json:"received_unacked"`
	Duplicates    int64          `json:"duplicates"`
	Reordered     int64          `json:"reordered"`
	SeqGaps       int64          `json:"seq_gaps"`
	SeqMissed     int64          `json:"seq_missed"`
	SeqBack       int64          `json:"seq_backwards"`
	NoSeq         int64          `json:"events_without_seq"`
	DropNotices   int64          `json:"slow_consumer_notices"`
	DropsReported int64          `json:"drops_reported"`
	Leaks         int64          `json:"leaks"`
	Foreign       int64          `json:"foreign"`
	Closed        map[string]int `json:"closed_by_server,omitempty"` // by close code
	E2E           latencySummary `json:"e2e_latency"`
	hist          histogram
}

// serverShare is one server's part of a run across several.
type serverShare struct {
	URL         string         `json:"url"`
	Subscribers int            `json:"subscribers"` // open (subscribed) on it
	Failed      int            `json:"failed_subscribers"`
	Publishers  int            `json:"publishers"`
	Deliveries  int64          `json:"deliveries"`
	E2E         latencySummary `json:"e2e_latency"`
	hist        histogram
}

// processCPU is one process's (or metrics endpoint's) part of the server
// CPU, when it is summed over several.
type processCPU struct {
	Name   string  `json:"name"` // "pid N" or the metrics URL
	CPUSec float64 `json:"cpu_sec"`
	RSSMiB float64 `json:"rss_after_mib"`
}

type serverStats struct {
	Source            string       `json:"source"`
	CPUSec            float64      `json:"cpu_sec"` // summed over Processes when there are several
	Processes         []processCPU `json:"processes,omitempty"`
	CPUPerMDeliveries float64      `json:"cpu_sec_per_million_deliveries"`
	RSSBeforeMiB      float64      `json:"rss_before_mib"`
	RSSAfterMiB       float64      `json:"rss_after_mib"`
	Published         *float64     `json:"published,omitempty"` // metric deltas, when scraped
	Delivered         *float64     `json:"delivered,omitempty"`
	Dropped           *float64     `json:"dropped,omitempty"`
	SlowDisconnects   *float64     `json:"slow_consumer_disconnects,omitempty"`
	PublisherStalls   *float64     `json:"publisher_stalls,omitempty"`
	StalledSec        *float64     `json:"publisher_stalled_sec,omitempty"` // summed over the stalls
}

type cpuStats struct {
	CPUSec            float64 `json:"cpu_sec"`
	CPUPerMDeliveries float64 `json:"cpu_sec_per_million_deliveries"`
}

type connStats struct {
	Target            int     `json:"target"`
	Open              int     `json:"open"`
	OpenSec           float64 `json:"open_sec"`
	Received          int     `json:"received_all"` // connections that got every verification message
	HealthSubscribers int     `json:"health_subscribers"`
	RSSBeforeMiB      float64 `json:"rss_before_mib"`
	RSSHeldMiB        float64 `json:"rss_held_mib"`
	RSSPerConnKiB     float64 `json:"rss_per_conn_kib"`
	RSSSource         string  `json:"rss_source,omitempty"`
}

// collect merges the per-connection results (their goroutines have ended)
// into the report and lists broken invariants.
func (b *bench) collect(base, before, after phase, held *phase, pt phaseTimes, drainTimedOut bool) *result {
	r := &result{Scenario: b.cfg.Scenario, Config: b.cfg, DrainTimedOut: drainTimedOut,
		DurationSec: secs(pt.stop - pt.start), Errors: map[string]int64{}}
	var all tally
	for k, v := range b.setupErrs {
		r.Errors[k] += v
	}

	// Publishers.
	ps := &r.Publish
	ps.Publishers = len(b.pubs)
	var ackHist histogram
	var lastReply int64
	acked := make([][]bitset, len(b.topics))
	accepted := make([]int64, len(b.topics))
	for _, p := range b.pubs {
		res := &p.res
		ps.Sent += p.sent
		ps.Acked += res.ackedN
		ps.ErrReplies += res.errReplies
		ps.Unanswered += max(p.sent-res.ackedN-res.errReplies, 0)
		ps.DupReplies += res.dupReplies
		ps.Unmatched += res.unmatched
		ps.Echoes += res.echoes
		ackHist.merge(&res.ackLatency)
		lastReply = max(lastReply, res.lastReplyAt)
		acked[p.topic.index] = append(acked[p.topic.index], res.acked)
		accepted[p.topic.index] += res.ackedN
		all.merge(&res.tally)
		if p.writeErr != nil {
			r.Errors["publish_write_"+errorKey(p.writeErr)]++
		}
	}
	ps.AckLatency = ackHist.summary()
	ps.AckedPerSec = rate(ps.Acked, lastReply-pt.start)

	// Subscribers, by kind.
	groups := map[subKind]*groupStats{}
	var lastEvent int64
	silent, unannounced, tailLoss := 0, 0, 0
	for _, s := range b.subs {
		g := groups[s.kind]
		if g == nil {
			g = &groupStats{Name: s.kind.String()}
			groups[s.kind] = g
		}
		res := &s.res
		t := &res.track
		loss := t.loss(acked[s.topic.index], accepted[s.topic.index])
		g.Subscribers++
		g.Deliveries += t.received
		g.Expected += loss.expected
		g.Lost += loss.lost
		if loss.lost > 0 {
			g.LossySubs++
		}
		g.MaxLost = max(g.MaxLost, loss.lost)
		g.Tail += loss.tail
		g.Unacked += loss.unacked
		g.Duplicates += t.duplicates
		g.Reordered += t.reordered
		g.SeqGaps += t.seqGaps
		g.SeqMissed += t.seqMissed
		g.SeqBack += t.seqBack
		g.NoSeq += t.noSeq
		g.DropNotices += t.dropNotices
		g.DropsReported += t.dropsReported
		g.Leaks += res.leaks
		g.Foreign += res.foreign
		if c := res.tally.closeCode; c != 0 {
			if g.Closed == nil {
				g.Closed = map[string]int{}
			}
			g.Closed[strconv.Itoa(c)]++
		}
		g.hist.merge(&res.e2e)
		all.merge(&res.tally)
		lastEvent = max(lastEvent, res.lastAt)
		r.Deliveries += t.received

		// Loss is never silent: every lost message must show as a seq gap
		// announced by SLOW_CONSUMER, or lie after the last event of a
		// connection the server closed or the drain deadline cut off.
		// (drop_oldest never drops a topic's newest message.)
		if t.noSeq == 0 && loss.lost != t.seqMissed+loss.tail {
			silent++
		}
		if t.seqMissed > t.dropsReported {
			unannounced++
		}
		if loss.tail > 0 && res.tally.closeCode == 0 && !drainTimedOut {
			tailLoss++
		}
	}
	for _, k := range []subKind{kindFast, kindSlow, kindStalled, kindIdle} {
		if g := groups[k]; g != nil {
			g.E2E = g.hist.summary()
			if k == kindSlow {
				g.Name = fmt.Sprintf("slow(%s)", b.cfg.SlowDelay)
			}
			r.Groups = append(r.Groups, g)
		}
	}
	r.DeliveryRate = rate(r.Deliveries, lastEvent-pt.start)
	b.collectServers(r)
	for k, v := range all.errs {
		r.Errors[k] += v
	}
	r.Infos = all.infos

	// Resources.
	cpu := after.selfCPU - before.selfCPU
	r.Bench = cpuStats{CPUSec: round3(cpu), CPUPerMDeliveries: perMillion(cpu, r.Deliveries)}
	if before.server.ok && after.server.ok {
		d := after.server.cpuSec - before.server.cpuSec
		r.Server = &serverStats{
			Source: after.server.source, CPUSec: round3(d), CPUPerMDeliveries: perMillion(d, r.Deliveries),
			RSSBeforeMiB: mib(before.server.rssBytes), RSSAfterMiB: mib(after.server.rssBytes),
			Published:       counterDelta(before, after, "pubsub_messages_published_total"),
			Delivered:       counterDelta(before, after, "pubsub_messages_delivered_total"),
			Dropped:         counterDelta(before, after, "pubsub_messages_dropped_total"),
			SlowDisconnects: counterDelta(before, after, "pubsub_slow_consumer_disconnects_total"),
			PublisherStalls: counterDelta(before, after, "pubsub_publisher_stalls_total"),
			StalledSec:      counterDelta(before, after, "pubsub_publisher_stall_seconds_sum"),
			Processes:       processDeltas(before.server, after.server),
		}
	} else if after.serverE != nil {
		r.Warnings = append(r.Warnings, after.serverE.Error())
	}
	if held != nil {
		c := &connStats{Target: b.cfg.Conns, Open: b.openOK, OpenSec: round3(b.openSec), HealthSubscribers: -1}
		for _, s := range b.subs {
			l := s.res.track.loss(acked[s.topic.index], accepted[s.topic.index])
			if l.lost == 0 && l.expected > 0 {
				c.Received++
			}
		}
		if base.server.ok && held.server.ok {
			c.RSSSource = held.server.source
			c.RSSBeforeMiB, c.RSSHeldMiB = mib(base.server.rssBytes), mib(held.server.rssBytes)
			if b.openOK > 0 {
				c.RSSPerConnKiB = round3((held.server.rssBytes - base.server.rssBytes) / 1024 / float64(b.openOK))
			}
		}
		r.Conns = c
	}

	r.Violations = violations(r, silent, unannounced, tailLoss)
	return r
}

// collectServers fills in each server's share of a run across several,
// and the latency of deliveries that crossed servers: those to subscribers
// on a server that none of their topic's publishers is on (with one
// publisher per topic, every subscriber not on the publisher's server).
func (b *bench) collectServers(r *result) {
	if len(b.cfg.servers) < 2 {
		return
	}
	shares := make([]*serverShare, len(b.cfg.servers))
	for i, e := range b.cfg.servers {
		shares[i] = &serverShare{URL: e.rest, Failed: b.failedOn[i]}
	}
	for _, p := range b.pubs {
		shares[p.server].Publishers++
	}
	var cross histogram
	for _, s := range b.subs {
		sh := shares[s.server]
		sh.Subscribers++
		sh.Deliveries += s.res.track.received
		sh.hist.merge(&s.res.e2e)
		if !slices.ContainsFunc(s.topic.pubs, func(p *publisher) bool { return p.server == s.server }) {
			cross.merge(&s.res.e2e)
		}
	}
	for _, sh := range shares {
		sh.E2E = sh.hist.summary()
	}
	r.Servers = shares
	cs := cross.summary()
	r.CrossServerE2E = &cs
}

// processDeltas is each process's CPU over the phase, when the server CPU
// was summed over several.
func processDeltas(before, after serverSample) []processCPU {
	if len(after.procs) < 2 || len(before.procs) != len(after.procs) {
		return nil
	}
	out := make([]processCPU, len(after.procs))
	for i, a := range after.procs {
		out[i] = processCPU{Name: a.name, CPUSec: round3(a.cpuSec - before.procs[i].cpuSec), RSSMiB: mib(a.rssBytes)}
	}
	return out
}

// violations lists the broken protocol invariants (what -check fails on).
func violations(r *result, silent, unannounced, tailLoss int) []string {
	v := []string{}
	add := func(n int64, format string) {
		if n > 0 {
			v = append(v, fmt.Sprintf(format, n))
		}
	}
	p := r.Publish
	add(p.ErrReplies, "%d publishes answered with an error")
	add(p.Unanswered, "%d publishes never answered")
	add(p.DupReplies, "%d publishes answered twice")
	add(p.Unmatched, "%d replies matching no publish")
	add(p.Echoes, "%d events delivered to unsubscribed publisher connections")
	for _, g := range r.Groups {
		add(g.Duplicates, g.Name+": %d duplicate deliveries")
		add(g.Reordered, g.Name+": %d deliveries out of publish order")
		add(g.Leaks, g.Name+": %d events from another topic (isolation broken)")
		add(g.SeqBack, g.Name+": %d events whose seq did not increase")
		add(g.Unacked, g.Name+": %d deliveries of messages whose publish was not acked")
		add(g.Foreign, g.Name+": %d events this run did not publish")
	}
	add(int64(silent), "%d subscribers lost messages their seq numbers do not account for")
	add(int64(unannounced), "%d subscribers saw seq gaps larger than the drops SLOW_CONSUMER reported")
	add(int64(tailLoss), "%d open subscribers never got their topic's last message")
	if r.Conns != nil {
		add(int64(r.Conns.Open-r.Conns.Received), "%d connections did not receive the verification messages")
	}
	return v
}

func counterDelta(a, b phase, name string) *float64 {
	x, ok1 := a.server.counters[name]
	y, ok2 := b.server.counters[name]
	if !ok1 || !ok2 {
		return nil
	}
	d := y - x
	return &d
}

func secs(ns int64) float64 { return round3(float64(ns) / 1e9) }

func rate(n, ns int64) float64 {
	if ns <= 0 || n == 0 {
		return 0
	}
	return math.Round(float64(n) / (float64(ns) / 1e9))
}

func perMillion(cpu float64, n int64) float64 {
	if n == 0 {
		return 0
	}
	return round3(cpu / float64(n) * 1e6)
}

func mib(b float64) float64 { return math.Round(b/(1<<20)*10) / 10 }

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// writeJSON prints the result as one line.
func (r *result) writeJSON(w io.Writer) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// writeTable prints the result for a human.
func (r *result) writeTable(w io.Writer) error {
	c := r.Config
	rateS := "max"
	if c.Rate > 0 {
		rateS = fmt.Sprintf("%g/s", c.Rate)
	}
	fmt.Fprintf(w, "pubsub-bench %s  %s  topics=%d pubs/topic=%d size=%dB rate=%s window=%d duration=%s\n",
		r.Scenario, c.URL, c.Topics, c.Pubs, c.Size, rateS, c.Window, c.Duration)
	if r.Conns != nil {
		cs := r.Conns
		fmt.Fprintf(w, "connections  %d/%d open in %.1fs, /health subscribers %d, %d received the verification message\n",
			cs.Open, cs.Target, cs.OpenSec, cs.HealthSubscribers, cs.Received)
		if cs.RSSSource != "" {
			fmt.Fprintf(w, "server RSS   %.1f MiB -> %.1f MiB held: %.2f KiB per connection [%s]\n",
				cs.RSSBeforeMiB, cs.RSSHeldMiB, cs.RSSPerConnKiB, cs.RSSSource)
		}
	}
	p := r.Publish
	fmt.Fprintf(w, "publish      %d publishers  sent %d  acked %d  errors %d  unanswered %d  in %.2fs: %.0f acked/s\n",
		p.Publishers, p.Sent, p.Acked, p.ErrReplies, p.Unanswered, r.DurationSec, p.AckedPerSec)
	fmt.Fprintf(w, "deliver      %d deliveries: %.0f/s%s\n", r.Deliveries, r.DeliveryRate,
		map[bool]string{true: "  (drain deadline reached)"}[r.DrainTimedOut])

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "latency µs\tcount\tmean\tp50\tp99\tp99.9\tmax\t")
	lat := func(name string, s latencySummary) {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t\n", name, s.Count, s.Mean, s.P50, s.P99, s.P999, s.Max)
	}
	lat("publish->ack", p.AckLatency)
	for _, g := range r.Groups {
		lat("e2e "+g.Name, g.E2E)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "subscribers\tsubs\treceived\texpected\tlost\tlossy\ttail\tdup\treorder\tseq gaps\tseq missed\tdrops reported\tleaks\tclosed\t")
	for _, g := range r.Groups {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n", g.Name, g.Subscribers,
			g.Deliveries, g.Expected, g.Lost, g.LossySubs, g.Tail, g.Duplicates, g.Reordered, g.SeqGaps,
			g.SeqMissed, g.DropsReported, g.Leaks, formatCounts(g.Closed))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Errors) > 0 {
		fmt.Fprintf(w, "errors       %s\n", formatCounts(r.Errors))
	}
	if len(r.Infos) > 0 {
		fmt.Fprintf(w, "infos        %s\n", formatCounts(r.Infos))
	}
	if len(r.Servers) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "server\tsubs\tfailed\tpubs\treceived\te2e p50 µs\te2e p99 µs\t")
		for _, sh := range r.Servers {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.1f\t%.1f\t\n", sh.URL, sh.Subscribers, sh.Failed, sh.Publishers,
				sh.Deliveries, sh.E2E.P50, sh.E2E.P99)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if c := r.CrossServerE2E; c != nil {
			fmt.Fprintf(w, "cross-server %d deliveries to a server no publisher of the topic is on: e2e p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f µs\n",
				c.Count, c.P50, c.P99, c.P999, c.Max)
		}
	}
	if s := r.Server; s != nil {
		fmt.Fprintf(w, "server cpu   %.2fs = %.2fs per 1M deliveries   RSS %.1f -> %.1f MiB [%s]\n",
			s.CPUSec, s.CPUPerMDeliveries, s.RSSBeforeMiB, s.RSSAfterMiB, s.Source)
		if len(s.Processes) > 0 {
			parts := make([]string, len(s.Processes))
			for i, p := range s.Processes {
				parts[i] = fmt.Sprintf("%s %.2fs", p.Name, p.CPUSec)
			}
			fmt.Fprintf(w, "server cpu   summed over %s\n", strings.Join(parts, ", "))
		}
		if s.Delivered != nil {
			fmt.Fprintf(w, "server says  published %s  delivered %s  dropped %s  slow-consumer disconnects %s\n",
				fmtPtr(s.Published), fmtPtr(s.Delivered), fmtPtr(s.Dropped), fmtPtr(s.SlowDisconnects))
		}
		if s.PublisherStalls != nil && *s.PublisherStalls > 0 && s.StalledSec != nil {
			fmt.Fprintf(w, "server says  %s publishes stalled, %.2fs in all (delivery was behind for subscribers that read)\n",
				fmtPtr(s.PublisherStalls), *s.StalledSec)
		}
	}
	fmt.Fprintf(w, "bench cpu    %.2fs = %.2fs per 1M deliveries\n", r.Bench.CPUSec, r.Bench.CPUPerMDeliveries)
	for _, s := range r.Warnings {
		fmt.Fprintf(w, "warning      %s\n", s)
	}
	if len(r.Violations) == 0 {
		_, err := fmt.Fprintln(w, "invariants   ok")
		return err
	}
	_, err := fmt.Fprintf(w, "VIOLATIONS   %s\n", strings.Join(r.Violations, "; "))
	return err
}

func fmtPtr(f *float64) string {
	if f == nil {
		return "?"
	}
	return strconv.FormatFloat(*f, 'f', -1, 64)
}

// formatCounts renders a map as "k=v k=v" in key order, "-" when empty.
func formatCounts[V int | int64](m map[string]V) string {
	if len(m) == 0 {
		return "-"
	}
	var sb strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if sb.Len() > 0 {
			sb.WriteByte(' ')
		}
		fmt.Fprintf(&sb, "%s=%d", k, m[k])
	}
	return sb.String()
}
