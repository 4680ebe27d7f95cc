package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/pubsubd/pubsub/internal/transport/wire"
)

// maxBody bounds what pubsubctl reads of one REST answer: a list page is at most a few megabytes.
const maxBody = 64 << 20

// serverError is an error code the server answered with, over REST (status set) or WebSocket.
type serverError struct {
	status int // HTTP status; 0 for a WebSocket error frame
	code   string
	msg    string
}

func (e *serverError) Error() string {
	return fmt.Sprintf("server refused: %s: %s", e.code, e.msg)
}

// exitCode maps the server's answer to the exit statuses of usage.
func (e *serverError) exitCode() int {
	switch {
	case e.code == wire.CodeUnauthorized || e.status == http.StatusUnauthorized:
		return exitUnauthorized
	case e.code == wire.CodeUnavailable || e.status == http.StatusServiceUnavailable:
		return exitUnavailable
	}
	return exitRefused
}

// restClient calls the REST API of one server with the common flags' credentials and timeout.
type restClient struct {
	c    *common
	http *http.Client
}

func newREST(c *common) *restClient {
	return &restClient{c: c, http: &http.Client{Timeout: c.timeout}}
}

// do sends one request and decodes a 2xx JSON answer into out. A non-2xx answer is a
// *serverError with the code of the contract's error body; no answer at all is exit status 3.
func (r *restClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.c.server+path, rd)
	if err != nil {
		return usageErr("--server %q: %v", r.c.server, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.c.apiKey != "" {
		req.Header.Set("X-API-Key", r.c.apiKey)
	}
	resp, err := r.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return &exitError{code: exitInterrupted, msg: "interrupted"}
		}
		return unavailable("cannot connect to %s: %v", r.c.server, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return unavailable("reading the answer of %s %s: %v", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var eb wire.ErrorBody
		if json.Unmarshal(data, &eb) != nil || eb.Error.Code == "" {
			// Not the service (a proxy's page, a wrong --server): say what came back.
			return &serverError{status: resp.StatusCode, code: fmt.Sprintf("HTTP %d", resp.StatusCode), msg: snippet(data)}
		}
		return &serverError{status: resp.StatusCode, code: eb.Error.Code, msg: eb.Error.Message}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return unavailable("%s %s%s answered what is not the service's JSON (%v): %s", method, r.c.server, path, err, snippet(data))
	}
	return nil
}

func snippet(b []byte) string {
	const n = 200
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// printer writes results on stdout: one JSON object per line with -o json, readable text otherwise.
type printer struct {
	w    io.Writer
	json bool
}

// line prints v as a JSON line, or the text line in text mode.
func (p printer) line(v any, text string) error {
	if p.json {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		_, err = p.w.Write(append(b, '\n'))
		return err
	}
	_, err := fmt.Fprintln(p.w, text)
	return err
}

func topicsCmd(e *env, args []string) error {
	if len(args) == 0 {
		return usageErr("topics needs a subcommand: create, delete or list (pubsubctl topics list --help)")
	}
	switch args[0] {
	case "create", "delete":
		return topicsChange(e, args[0], args[1:])
	case "list", "ls":
		return topicsList(e, args[1:])
	case "-h", "-help", "--help":
		fmt.Fprint(e.stdout, "Usage: pubsubctl topics create|delete NAME... [flags]\n       pubsubctl topics list [flags]\n(pubsubctl topics create --help for the flags)\n")
		return nil
	}
	return usageErr("unknown topics subcommand %q: create, delete or list", args[0])
}

func topicsChange(e *env, verb string, args []string) error {
	fs := newFlags(e, "topics "+verb, "topics "+verb+" NAME... [flags]",
		"Creates (POST /topics) or deletes (DELETE /topics/NAME) each topic in turn, and stops at the first\n"+
			"refusal. Output: \"created topic NAME\" / \"deleted topic NAME\", or with -o json the server's\n"+
			"answer: {\"status\":\"created\"|\"deleted\",\"topic\":NAME}.\n")
	var c common
	c.register(fs)
	names, err := parse(e, fs, args)
	if err != nil {
		return err
	}
	if err := c.resolve(e); err != nil {
		return err
	}
	if len(names) == 0 {
		return usageErr("topics %s needs at least one topic name", verb)
	}
	rc, out := newREST(&c), printer{e.stdout, c.json()}
	for _, name := range names {
		var st wire.TopicStatus
		if verb == "create" {
			err = rc.do(e.ctx, http.MethodPost, "/topics", map[string]string{"name": name}, &st)
		} else {
			err = rc.do(e.ctx, http.MethodDelete, "/topics/"+url.PathEscape(name), nil, &st)
		}
		if err != nil {
			return fmt.Errorf("%s %q: %w", verb, name, err)
		}
		if err := out.line(st, fmt.Sprintf("%s topic %s", st.Status, st.Topic)); err != nil {
			return err
		}
	}
	return nil
}

// topicLine is one line of "topics list -o json".
type topicLine struct {
	Name        string `json:"name"`
	Subscribers int    `json:"subscribers"`
}

func topicsList(e *env, args []string) error {
	fs := newFlags(e, "topics list", "topics list [flags]",
		"Lists every topic in name order (GET /topics, following its pages).\n"+
			"Output: a table NAME SUBSCRIBERS, or with -o json one {\"name\":NAME,\"subscribers\":N} per topic.\n")
	var c common
	c.register(fs)
	pos, err := parse(e, fs, args)
	if err != nil {
		return err
	}
	if err := c.resolve(e); err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("topics list takes no arguments, got %q", pos)
	}
	var lines []topicLine
	err = fetchPages(e.ctx, newREST(&c), "/topics", func(page *wire.TopicList) string {
		for _, t := range page.Topics {
			lines = append(lines, topicLine(t))
		}
		return page.Next
	})
	if err != nil {
		return err
	}
	return writeRows(e, c.json(), "NAME\tSUBSCRIBERS", lines, func(t topicLine) string {
		return fmt.Sprintf("%s\t%d", t.Name, t.Subscribers)
	})
}

// statsLine is one line of "stats -o json".
type statsLine struct {
	Topic       string `json:"topic"`
	Messages    uint64 `json:"messages"`
	Subscribers int    `json:"subscribers"`
}

func statsCmd(e *env, args []string) error {
	fs := newFlags(e, "stats", "stats [flags]",
		"Messages accepted and subscribers, per topic in name order (GET /stats, following its pages).\n"+
			"Output: a table TOPIC MESSAGES SUBSCRIBERS, or with -o json one\n"+
			"{\"topic\":NAME,\"messages\":N,\"subscribers\":N} per topic.\n")
	var c common
	c.register(fs)
	pos, err := parse(e, fs, args)
	if err != nil {
		return err
	}
	if err := c.resolve(e); err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("stats takes no arguments, got %q", pos)
	}
	var lines []statsLine
	err = fetchPages(e.ctx, newREST(&c), "/stats", func(page *wire.Stats) string {
		for name, st := range page.Topics {
			lines = append(lines, statsLine{Topic: name, Messages: st.Messages, Subscribers: st.Subscribers})
		}
		return page.Next
	})
	if err != nil {
		return err
	}
	// A page is a JSON object, so its topics come in no order.
	slices.SortFunc(lines, func(a, b statsLine) int { return strings.Compare(a.Topic, b.Topic) })
	return writeRows(e, c.json(), "TOPIC\tMESSAGES\tSUBSCRIBERS", lines, func(l statsLine) string {
		return fmt.Sprintf("%s\t%d\t%d", l.Topic, l.Messages, l.Subscribers)
	})
}

// fetchPages GETs path and every page after it (the after cursor from each page's next), handing
// each decoded page to take, which returns that page's next cursor.
func fetchPages[P any](ctx context.Context, rc *restClient, path string, take func(*P) string) error {
	for after := ""; ; {
		var page P
		p := path
		if after != "" {
			p += "?after=" + url.QueryEscape(after)
		}
		if err := rc.do(ctx, http.MethodGet, p, nil, &page); err != nil {
			return err
		}
		next := take(&page)
		if next == "" || next == after {
			return nil
		}
		after = next
	}
}

// writeRows prints rows as JSON lines, or as a table under header with cells giving each row's
// tab-separated cells.
func writeRows[T any](e *env, asJSON bool, header string, rows []T, cells func(T) string) error {
	if asJSON {
		out := printer{e.stdout, true}
		for _, r := range rows {
			if err := out.line(r, ""); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, cells(r))
	}
	return tw.Flush()
}

// healthLine is the output of "health -o json": GET /health's fields and whether /readyz said 200.
type healthLine struct {
	UptimeSec   int64 `json:"uptime_sec"`
	Topics      int   `json:"topics"`
	Subscribers int   `json:"subscribers"`
	Ready       bool  `json:"ready"`
}

func healthCmd(e *env, args []string) error {
	fs := newFlags(e, "health", "health [flags]",
		"GET /health and GET /readyz. Exit status 0 when the server is ready, 3 when it is not (draining,\n"+
			"or its engine does not take work) or cannot be reached.\n"+
			"Output: \"ready: uptime 12s, 2 topics, 4 subscribers\", or with -o json\n"+
			"{\"uptime_sec\":N,\"topics\":N,\"subscribers\":N,\"ready\":true|false}.\n")
	var c common
	c.register(fs)
	pos, err := parse(e, fs, args)
	if err != nil {
		return err
	}
	if err := c.resolve(e); err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("health takes no arguments, got %q", pos)
	}
	rc := newREST(&c)
	var h wire.Health
	if err := rc.do(e.ctx, http.MethodGet, "/health", nil, &h); err != nil {
		return err
	}
	line := healthLine{UptimeSec: h.UptimeSec, Topics: h.Topics, Subscribers: h.Subscribers, Ready: true}
	var notReady error
	if err := rc.do(e.ctx, http.MethodGet, "/readyz", nil, nil); err != nil {
		var se *serverError
		if !errors.As(err, &se) || se.exitCode() != exitUnavailable {
			return err
		}
		line.Ready, notReady = false, unavailable("not ready: %s", se.msg)
	}
	state := "ready"
	if !line.Ready {
		state = "NOT READY"
	}
	text := fmt.Sprintf("%s: uptime %ds, %d topics, %d subscribers", state, h.UptimeSec, h.Topics, h.Subscribers)
	if err := (printer{e.stdout, c.json()}).line(line, text); err != nil {
		return err
	}
	return notReady
}
