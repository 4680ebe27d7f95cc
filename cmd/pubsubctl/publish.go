package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/pubsubd/pubsub/internal/transport/wire"
)

// maxPayloadInput bounds what publish reads from a file or stdin; the server refuses frames over
// its PUBSUB_MAX_FRAME_BYTES anyway, so more would only be memory spent for a refusal.
const maxPayloadInput = 64 << 20

// headerFlags collects repeated --header k=v.
type headerFlags map[string]string

func (h headerFlags) String() string { return "" }

func (h headerFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not k=v", v)
	}
	h[k] = val
	return nil
}

// publishLine is one line of "publish -o json": a message the server acknowledged.
type publishLine struct {
	Topic string `json:"topic"`
	ID    string `json:"id"`
	TS    string `json:"ts"`
}

// pubResult is what the reader goroutine hands the sender: one frame, or the reason reading ended.
type pubResult struct {
	f   wire.ServerFrame
	err error
}

func publishCmd(e *env, args []string) error {
	fs := newFlags(e, "publish", "publish TOPIC [PAYLOAD] [flags]",
		"Publishes over /ws and waits for each message's ack. The payload is the argument, the content\n"+
			"of --file, or stdin (no argument, or \"-\"); text that is valid JSON is sent as that JSON value,\n"+
			"anything else as a JSON string. Each message gets a new UUID.\n"+
			"Output: \"published ID to TOPIC\" per acknowledged message, or with -o json\n"+
			"{\"topic\":TOPIC,\"id\":UUID,\"ts\":ACK_TIME}; a summary on stderr. With --count 0, publishes until\n"+
			"Ctrl-C (exit 0); Ctrl-C before --count messages were acknowledged exits 130. With --lines, each\n"+
			"non-empty line of --file or stdin is one message, sent as soon as it is read (e.g. jq -c '.[]' f |\n"+
			"pubsubctl publish orders --lines), until the end of the input.\n")
	var c common
	c.register(fs)
	file := fs.String("file", "", "read the payload from this file")
	count := fs.Int("count", 1, "how many messages to publish (0: until Ctrl-C)")
	rate := fs.Float64("rate", 0, "messages per second at most (0: as fast as acks allow)")
	window := fs.Int("window", 64, "messages sent but not yet acknowledged, at most")
	quiet := fs.Bool("q", false, "print only the summary")
	lines := fs.Bool("lines", false, "each line of --file or stdin is one message, published as it is read (--count is ignored)")
	headers := headerFlags{}
	fs.Var(headers, "header", "a message header k=v (repeatable)")
	pos, err := parse(e, fs, args)
	if err != nil {
		return err
	}
	if err := c.resolve(e); err != nil {
		return err
	}
	switch {
	case len(pos) == 0:
		return usageErr("publish needs a topic: pubsubctl publish TOPIC [PAYLOAD]")
	case len(pos) > 2:
		return usageErr("publish takes a topic and one payload, got %d arguments (quote the payload)", len(pos))
	case *count < 0, *rate < 0, *window < 1:
		return usageErr("--count and --rate must not be negative, and --window must be at least 1")
	case len(pos) == 2 && pos[1] != "-" && *file != "":
		return usageErr("give the payload as an argument or with --file, not both")
	case *lines && len(pos) == 2 && pos[1] != "-":
		return usageErr("--lines reads --file or stdin, not an argument")
	}
	topic := pos[0]
	var input io.Reader
	if *lines {
		if *file != "" {
			f, err := os.Open(*file)
			if err != nil {
				return usageErr("--file: %v", err)
			}
			defer f.Close()
			input = f
		} else {
			input = e.stdin
		}
	}
	var raw []byte
	switch {
	case *lines: // read line by line as the messages go, below
	case len(pos) == 2 && pos[1] != "-":
		raw = []byte(pos[1])
	case *file != "":
		f, err := os.Open(*file)
		if err != nil {
			return usageErr("--file: %v", err)
		}
		raw, err = io.ReadAll(io.LimitReader(f, maxPayloadInput+1))
		f.Close()
		if err != nil {
			return usageErr("--file: %v", err)
		}
	default:
		if f, ok := e.stdin.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				// A person who forgot the payload would otherwise wait on a silent command.
				fmt.Fprintln(e.stderr, "pubsubctl: reading the payload from the terminal; end it with Ctrl-D")
			}
		}
		raw, err = io.ReadAll(io.LimitReader(e.stdin, maxPayloadInput+1))
		if err != nil {
			return usageErr("reading stdin: %v", err)
		}
	}
	if len(raw) > maxPayloadInput {
		return usageErr("the payload is larger than %d bytes", maxPayloadInput)
	}
	conn, err := dialWS(e.ctx, &c)
	if err != nil {
		if e.ctx.Err() != nil {
			return &exitError{code: exitInterrupted, msg: "interrupted"}
		}
		return err
	}
	p := &publisher{e: e, conn: conn, url: wsURL(&c), topic: topic, headers: headers,
		out: printer{e.stdout, c.json()}, quiet: *quiet, ids: map[string]string{}}
	if input != nil {
		stop := make(chan struct{})
		defer close(stop)
		p.lines = readLines(input, stop)
		return p.run(0, *rate, *window, c.timeout)
	}
	p.payload = toPayload(raw)
	return p.run(*count, *rate, *window, c.timeout)
}

// line is one payload of --lines, or the error that ended the input.
type line struct {
	payload json.RawMessage
	err     error
}

// readLines reads r line by line in a goroutine of its own and hands each non-empty line on as a
// payload; the channel closes at the end of the input. The goroutine ends at the end of the input
// or when stop closes; a read blocked on a terminal outlives Ctrl-C only until the process exits.
func readLines(r io.Reader, stop <-chan struct{}) <-chan line {
	out := make(chan line)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 0, 64<<10), maxPayloadInput)
		for sc.Scan() {
			if len(bytes.TrimSpace(sc.Bytes())) == 0 {
				continue
			}
			select {
			case out <- line{payload: toPayload(sc.Bytes())}:
			case <-stop:
				return
			}
		}
		if err := sc.Err(); err != nil {
			select {
			case out <- line{err: err}:
			case <-stop:
			}
		}
	}()
	return out
}

// toPayload is the JSON value a payload argument stands for: itself when it is JSON, else the
// text as a JSON string. A trailing newline (echo, a file) is not part of the value.
func toPayload(raw []byte) json.RawMessage {
	t := bytes.TrimSpace(raw)
	if len(t) > 0 && json.Valid(t) {
		return json.RawMessage(t)
	}
	s, _ := json.Marshal(strings.TrimRight(string(raw), "\r\n"))
	return s
}

// publisher sends one topic's messages on one connection: the calling goroutine sends and counts,
// a reader goroutine hands it every frame through results. Only the calling goroutine touches the
// fields; the reader owns nothing but its reads.
type publisher struct {
	e       *env
	conn    *websocket.Conn
	url     string // for messages
	topic   string
	payload json.RawMessage // every message's, unless lines is set
	lines   <-chan line     // --lines: one payload per line, until it closes
	headers map[string]string
	out     printer
	quiet   bool
	ids     map[string]string // request_id -> message id, for messages not yet acknowledged
	sent    int
	acked   int
}

func (p *publisher) run(count int, rate float64, window int, drainTimeout time.Duration) error {
	results := make(chan pubResult, window+1)
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			f, err := readFrame(p.conn)
			select {
			case results <- pubResult{f, err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		close(stop)
		closeWS(p.conn)
		<-readerDone
	}()

	start := time.Now()
	var interval time.Duration
	if rate > 0 {
		interval = time.Duration(float64(time.Second) / rate)
	}
	var pace *time.Timer
	var err error
	interrupted := false
send:
	for count == 0 || p.sent < count {
		// Wait for room in the window, and for the pace, taking acks as they come.
		for len(p.ids) >= window || (interval > 0 && time.Since(start) < time.Duration(p.sent)*interval) {
			var tick <-chan time.Time
			if len(p.ids) < window {
				wait := time.Duration(p.sent)*interval - time.Since(start)
				if pace == nil {
					pace = time.NewTimer(wait)
				} else {
					pace.Reset(wait)
				}
				tick = pace.C
			}
			select {
			case r := <-results:
				if err := p.handle(r); err != nil {
					return err
				}
			case <-tick:
			case <-p.e.ctx.Done():
				interrupted = true
				break send
			}
		}
		select {
		case <-p.e.ctx.Done():
			interrupted = true
			break send
		default:
		}
		payload := p.payload
		if p.lines != nil {
			var more bool
			payload, more, err = p.nextLine(results)
			if err != nil {
				return err
			}
			if !more {
				interrupted = p.e.ctx.Err() != nil
				break send
			}
		}
		if err := p.send(payload); err != nil {
			return unavailable("sending to %s: %v", p.url, err)
		}
	}
	// Every message sent gets its ack (or its error) before the command ends, within a bound.
	drain := time.NewTimer(drainTimeout)
	defer drain.Stop()
	for len(p.ids) > 0 {
		select {
		case r := <-results:
			if err := p.handle(r); err != nil {
				return err
			}
		case <-drain.C:
			return unavailable("%d messages sent were not acknowledged within %s", len(p.ids), drainTimeout)
		}
	}
	elapsed := time.Since(start)
	perSec := float64(p.acked) / max(elapsed.Seconds(), 1e-9)
	fmt.Fprintf(p.e.stderr, "pubsubctl: published %d message(s) to %s in %s (%.0f/s)\n", p.acked, p.topic, elapsed.Round(time.Millisecond), perSec)
	switch {
	case interrupted && count > 0 && p.acked < count:
		return &exitError{code: exitInterrupted, msg: fmt.Sprintf("interrupted after %d of %d messages", p.acked, count)}
	case interrupted && p.lines != nil:
		return &exitError{code: exitInterrupted, msg: fmt.Sprintf("interrupted after %d lines, before the end of the input", p.acked)}
	}
	return nil
}

// nextLine waits for the next payload of --lines, taking acks meanwhile. more is false at the end
// of the input and on Ctrl-C.
func (p *publisher) nextLine(results <-chan pubResult) (payload json.RawMessage, more bool, err error) {
	for {
		select {
		case l, ok := <-p.lines:
			switch {
			case !ok:
				return nil, false, nil
			case l.err != nil:
				return nil, false, usageErr("reading the input: %v", l.err)
			}
			return l.payload, true, nil
		case r := <-results:
			if err := p.handle(r); err != nil {
				return nil, false, err
			}
		case <-p.e.ctx.Done():
			return nil, false, nil
		}
	}
}

// send writes the next message.
func (p *publisher) send(payload json.RawMessage) error {
	id := uuid.NewString()
	rid := "p-" + strconv.Itoa(p.sent+1)
	msg := map[string]any{"id": id, "payload": payload}
	if len(p.headers) > 0 {
		msg["headers"] = p.headers
	}
	frame, err := json.Marshal(map[string]any{"type": wire.TypePublish, "topic": p.topic, "message": msg, "request_id": rid})
	if err != nil {
		return err
	}
	if err := p.conn.WriteMessage(websocket.TextMessage, frame); err != nil {
		return err
	}
	p.ids[rid] = id
	p.sent++
	return nil
}

// handle takes one frame (or the end of reading): an ack is printed, an error ends the command.
func (p *publisher) handle(r pubResult) error {
	if r.err != nil {
		return unavailable("the connection ended after %d of %d messages sent were acknowledged: %v", p.acked, p.sent, r.err)
	}
	f := r.f
	switch f.Type {
	case wire.TypeAck:
		id, ok := p.ids[f.RequestID]
		if !ok {
			return nil
		}
		delete(p.ids, f.RequestID)
		p.acked++
		if p.quiet {
			return nil
		}
		return p.out.line(publishLine{Topic: p.topic, ID: id, TS: f.TS}, fmt.Sprintf("published %s to %s", id, p.topic))
	case wire.TypeError:
		return fmt.Errorf("publish to %q (after %d acknowledged): %w", p.topic, p.acked, frameError(f))
	case wire.TypeInfo:
		if f.Msg == wire.InfoServerShutdown {
			fmt.Fprintln(p.e.stderr, "pubsubctl: the server is shutting down")
		}
	}
	return nil
}
