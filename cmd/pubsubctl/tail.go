package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/pubsubd/pubsub/internal/transport/wire"
)

// eventLine is one line of "tail -o json": an event, with the epoch it belongs to so that a
// script can resume with --since-seq SEQ --epoch EPOCH.
type eventLine struct {
	Topic   string            `json:"topic"`
	Epoch   string            `json:"epoch"`
	Seq     uint64            `json:"seq"`
	ID      string            `json:"id"`
	TS      string            `json:"ts"`
	Payload json.RawMessage   `json:"payload"`
	Headers map[string]string `json:"headers,omitempty"`
}

func tailCmd(e *env, args []string) error {
	fs := newFlags(e, "tail", "tail TOPIC [flags]   (also: subscribe TOPIC)",
		"Subscribes to TOPIC over /ws and prints its events until Ctrl-C (exit 0, with a summary on stderr).\n"+
			"When the connection ends (server restart, network), it reconnects with backoff and resumes after\n"+
			"the last seq it printed, with the epoch it saw: nothing is printed twice. What could not be\n"+
			"recovered is said on stderr: \"could not recover\" (the ack's recovered:false: the server restarted\n"+
			"without its history, or the topic was created again), a gap (from_seq..to_seq), a discontinuity\n"+
			"(a new epoch). When the topic is deleted, or is missing after a reconnect, tail says so and waits\n"+
			"for it to be created again. Exit 1 if the topic does not exist when tail starts, 3 if the server\n"+
			"cannot be reached when it starts, 5 if another client takes the subscription over.\n"+
			"Output: \"TS TOPIC #SEQ PAYLOAD\" per event, or with -o json\n"+
			"{\"topic\":T,\"epoch\":E,\"seq\":N,\"id\":UUID,\"ts\":TS,\"payload\":JSON,\"headers\":{...}} (headers only\n"+
			"when the message has some). Notices and the summary go to stderr.\n")
	var c common
	c.register(fs)
	lastN := fs.Int("last-n", 0, "replay up to this many of the topic's latest messages first")
	sinceSeq := fs.Uint64("since-seq", 0, "resume after this seq (needs --epoch): the messages after it come first")
	epoch := fs.String("epoch", "", "the topic's epoch that --since-seq belongs to (from a subscribe ack or a JSON line)")
	clientID := fs.String("client-id", "", "the subscription's client_id (default pubsubctl-<random>)")
	maxBackoff := fs.Duration("max-backoff", 5*time.Second, "longest wait between reconnection attempts")
	idle := fs.Duration("idle-timeout", 90*time.Second, "reconnect when nothing (not even a heartbeat) came for this long")
	pos, err := parse(e, fs, args)
	if err != nil {
		return err
	}
	if err := c.resolve(e); err != nil {
		return err
	}
	sinceSet := false
	fs.Visit(func(f *flag.Flag) { sinceSet = sinceSet || f.Name == "since-seq" })
	switch {
	case len(pos) != 1:
		return usageErr("tail needs exactly one topic: pubsubctl tail TOPIC")
	case *lastN < 0:
		return usageErr("--last-n must not be negative")
	case sinceSet != (*epoch != ""):
		return usageErr("--since-seq and --epoch go together")
	case *maxBackoff <= 0 || *idle <= 0:
		return usageErr("--max-backoff and --idle-timeout must be positive")
	}
	if *clientID == "" {
		*clientID = "pubsubctl-" + uuid.NewString()[:8]
	}
	t := &tailer{e: e, c: &c, topic: pos[0], clientID: *clientID, lastN: *lastN,
		have: sinceSet, epoch: *epoch, last: *sinceSeq, maxBackoff: *maxBackoff, idle: *idle,
		out: printer{e.stdout, c.json()}}
	return t.run()
}

// tailer follows one topic across connections. Only the goroutine of run touches its fields.
type tailer struct {
	e          *env
	c          *common
	topic      string
	clientID   string
	lastN      int
	maxBackoff time.Duration
	idle       time.Duration
	out        printer

	// The resume point: have says epoch and last are known; last is the seq of the last event
	// printed (or skipped over by a gap, or the seq a live subscription started from).
	have  bool
	epoch string
	last  uint64
	// fresh: the next event starts a new numbering (after a discontinuity), so it is not checked
	// against last.
	fresh bool

	subscribed bool // a subscribe succeeded once: later failures are waited out, not fatal
	printed    int  // events printed
	lastNotice string
}

// retry is a session's end that tail rides out by reconnecting; msg (if any) is told on stderr.
type retry struct{ msg string }

func (r *retry) Error() string { return r.msg }

func (t *tailer) notice(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if msg == t.lastNotice {
		return // a server down for minutes is said once, not at every attempt
	}
	t.lastNotice = msg
	fmt.Fprintln(t.e.stderr, "pubsubctl:", msg)
}

func (t *tailer) run() error {
	connected := false
	for attempt := 0; ; attempt++ {
		ok, err := t.session(&connected)
		if t.e.ctx.Err() != nil {
			t.summary()
			return nil
		}
		var r *retry
		if !errors.As(err, &r) {
			return err
		}
		if r.msg != "" {
			t.notice("%s", r.msg)
		}
		if ok {
			attempt = 0
		}
		// Exponential backoff from 100 ms, with jitter so that many tails do not come back at once.
		d := min(100*time.Millisecond<<min(attempt, 10), t.maxBackoff)
		d = d/2 + rand.N(d/2+1)
		timer := time.NewTimer(d)
		select {
		case <-t.e.ctx.Done():
			timer.Stop()
			t.summary()
			return nil
		case <-timer.C:
		}
	}
}

func (t *tailer) summary() {
	if t.have {
		fmt.Fprintf(t.e.stderr, "pubsubctl: tail ended: %d event(s) from %s; resume with --since-seq %d --epoch %s\n",
			t.printed, t.topic, t.last, t.epoch)
		return
	}
	fmt.Fprintf(t.e.stderr, "pubsubctl: tail ended: %d event(s) from %s\n", t.printed, t.topic)
}

// session is one connection: dial, subscribe, print until it ends. ok reports that the subscribe
// was acknowledged. A *retry error is a reason to reconnect; any other error ends tail.
func (t *tailer) session(connected *bool) (ok bool, err error) {
	conn, err := dialWS(t.e.ctx, t.c)
	if err != nil {
		if !*connected || exitCode(err) != exitUnavailable {
			return false, err // the first attempt, or a refusal (401 ...): a script wants to know now
		}
		// No answer, or a 503 from a server that is draining or not ready yet.
		return false, &retry{msg: "cannot reach the server (" + err.Error() + "); retrying"}
	}
	*connected = true
	stop := make(chan struct{})
	watcherDone := make(chan struct{})
	go func() {
		defer close(watcherDone)
		select {
		case <-t.e.ctx.Done():
			closeWS(conn) // ends the ReadMessage below
		case <-stop:
		}
	}()
	defer func() {
		close(stop)
		<-watcherDone
		closeWS(conn)
	}()
	// The server's pings and frames keep the read deadline moving; a silent peer is dead.
	_ = conn.SetReadDeadline(time.Now().Add(t.idle))
	conn.SetPingHandler(func(data string) error {
		_ = conn.SetReadDeadline(time.Now().Add(t.idle))
		err := conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		return err
	})

	sub := map[string]any{"type": wire.TypeSubscribe, "topic": t.topic, "client_id": t.clientID, "request_id": "sub"}
	resumed := t.have
	if resumed {
		sub["since_seq"], sub["epoch"] = t.last, t.epoch
	} else if t.lastN > 0 {
		sub["last_n"] = t.lastN
	}
	frame, _ := json.Marshal(sub)
	if err := conn.WriteMessage(websocket.TextMessage, frame); err != nil {
		return false, &retry{msg: "connection lost: " + err.Error() + "; reconnecting"}
	}
	shutdown := false
	for {
		f, err := readFrame(conn)
		if err != nil {
			if shutdown {
				return ok, &retry{}
			}
			return ok, &retry{msg: "connection lost (" + err.Error() + "); reconnecting"}
		}
		_ = conn.SetReadDeadline(time.Now().Add(t.idle))
		switch f.Type {
		case wire.TypeAck:
			if f.RequestID != "sub" {
				continue
			}
			ok = true
			t.acked(f, resumed)
		case wire.TypeEvent:
			if f.Topic == t.topic && f.Message != nil {
				if err := t.event(f); err != nil {
					return ok, err
				}
			}
		case wire.TypeError:
			se := frameError(f)
			switch {
			case f.RequestID == "sub" && se.code == wire.CodeTopicNotFound && t.subscribed:
				return ok, &retry{msg: fmt.Sprintf("topic %q does not exist now (deleted, or the server restarted without it); waiting for it to be created again", t.topic)}
			case f.RequestID == "sub" && t.subscribed && (se.code == wire.CodeInternal || se.code == wire.CodeUnavailable):
				// A server shutting down answers INTERNAL on the WebSocket: another will take over.
				return ok, &retry{msg: "subscribe refused for now (" + se.Error() + "); retrying"}
			case f.RequestID == "sub":
				return ok, fmt.Errorf("subscribe to %q: %w", t.topic, se)
			case se.code == wire.CodeSlowConsumer:
				t.notice("the server dropped events for this slow subscriber: %s", se.msg)
				t.fresh = true // the seq jump that follows was just announced
			default:
				t.notice("server error: %s", se.Error())
			}
		case wire.TypeInfo:
			if f.Topic != "" && f.Topic != t.topic {
				continue
			}
			switch f.Msg {
			case wire.InfoServerShutdown:
				t.notice("the server is shutting down; reconnecting")
				shutdown = true
			case wire.InfoTopicDeleted:
				return ok, &retry{msg: fmt.Sprintf("topic %q was deleted; waiting for it to be created again", t.topic)}
			case wire.InfoSubscriptionReplaced, wire.InfoUnsubscribed:
				return ok, &exitError{code: exitLost, msg: fmt.Sprintf("another client took client_id %q of %q over (%s)", t.clientID, t.topic, f.Msg)}
			case wire.InfoGap:
				t.notice("events %d to %d of %s cannot be delivered (gap): they are lost", f.FromSeq, f.ToSeq, t.topic)
				t.last = max(t.last, f.ToSeq)
			case wire.InfoDiscontinuity:
				t.notice("the stream of %s restarted with epoch %s (discontinuity): its seqs start over", t.topic, f.Epoch)
				t.epoch, t.last, t.fresh = f.Epoch, 0, true
			}
		}
	}
}

// acked takes a subscribe ack: the resume point, and what was not recovered.
func (t *tailer) acked(f wire.ServerFrame, resumed bool) {
	t.subscribed = true
	switch {
	case resumed && f.Recovered != nil && *f.Recovered:
		t.notice("subscribed to %s; resumed after seq %d (recovered)", t.topic, t.last)
		if f.Epoch != "" {
			t.epoch = f.Epoch
		}
	case resumed:
		t.notice("could not recover the events of %s after seq %d of epoch %s (recovered:false; the topic is now epoch %s at seq %d); going on live from there",
			t.topic, t.last, t.epoch, f.Epoch, f.Seq)
		t.epoch, t.last, t.fresh = f.Epoch, f.Seq, false
	default:
		t.notice("subscribed to %s (epoch %s, seq %d)", t.topic, f.Epoch, f.Seq)
		// The replay of last_n, if any, follows with seqs up to f.Seq: resuming from its start
		// covers a connection lost in the middle of it.
		// The history may hold fewer than last_n: the first event is not checked for a hole.
		t.epoch, t.last, t.fresh = f.Epoch, f.Seq-min(uint64(t.lastN), f.Seq), t.lastN > 0
	}
	t.have = true
}

// event prints one event, unless it was printed before (a replay overlapping what this tail has).
func (t *tailer) event(f wire.ServerFrame) error {
	switch {
	case t.fresh:
		t.fresh = false
	case f.Seq <= t.last:
		return nil
	case f.Seq > t.last+1:
		t.notice("events %d to %d of %s were skipped without a notice from the server", t.last+1, f.Seq-1, t.topic)
	}
	t.last = f.Seq
	t.printed++
	m := f.Message
	line := eventLine{Topic: f.Topic, Epoch: t.epoch, Seq: f.Seq, ID: m.ID, TS: f.TS, Payload: m.Payload, Headers: m.Headers}
	if t.out.json {
		return t.out.line(line, "")
	}
	// One event, one line: a payload published pretty-printed is shown compact.
	var compact bytes.Buffer
	payload := []byte(m.Payload)
	if json.Compact(&compact, payload) == nil {
		payload = compact.Bytes()
	}
	return t.out.line(nil, fmt.Sprintf("%s  %s  #%d  %s", f.TS, f.Topic, f.Seq, payload))
}
