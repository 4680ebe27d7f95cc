package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pubsubd/pubsub/internal/auth"
)

// TestTopicsStatsHealth: topics create, list, delete; stats and health; in text and in JSON lines,
// with the server given by --server, by PUBSUB_URL, and before the command.
func TestTopicsStatsHealth(t *testing.T) {
	s := startServer(t)
	env := map[string]string{"PUBSUB_URL": s.url()}

	r := must(t, 0, env, "", "topics", "create", "orders")
	if r.stdout != "created topic orders\n" {
		t.Errorf("create: %q", r.stdout)
	}
	r = must(t, 0, nil, "", "topics", "create", "news", "chat.1", "--server", s.url(), "-o", "json")
	st := jsonLines[struct{ Status, Topic string }](t, r.stdout)
	if len(st) != 2 || st[0].Status != "created" || st[0].Topic != "news" || st[1].Topic != "chat.1" {
		t.Errorf("create -o json: %+v", st)
	}
	r = must(t, 1, env, "", "topics", "create", "orders")
	if !strings.Contains(r.stderr, "TOPIC_EXISTS") {
		t.Errorf("create twice: stderr %q does not show the server's code", r.stderr)
	}

	must(t, 0, env, "", "publish", "orders", "--count", "3", "-q")
	r = must(t, 0, nil, "", "--server", s.url(), "-o", "json", "topics", "list")
	list := jsonLines[topicLine](t, r.stdout)
	if len(list) != 3 || list[0].Name != "chat.1" || list[1].Name != "news" || list[2].Name != "orders" {
		t.Errorf("topics list -o json: %+v", list)
	}
	r = must(t, 0, env, "", "topics", "list")
	if !strings.HasPrefix(r.stdout, "NAME") || !strings.Contains(r.stdout, "orders") {
		t.Errorf("topics list: %q", r.stdout)
	}

	r = must(t, 0, env, "", "stats", "-o", "json")
	stats := jsonLines[statsLine](t, r.stdout)
	if len(stats) != 3 || stats[2] != (statsLine{Topic: "orders", Messages: 3}) {
		t.Errorf("stats -o json: %+v", stats)
	}
	r = must(t, 0, env, "", "stats")
	if !strings.Contains(r.stdout, "MESSAGES") || !strings.Contains(r.stdout, "orders") {
		t.Errorf("stats: %q", r.stdout)
	}

	r = must(t, 0, env, "", "health", "-o", "json")
	h := jsonLines[healthLine](t, r.stdout)
	if len(h) != 1 || !h[0].Ready || h[0].Topics != 3 {
		t.Errorf("health -o json: %+v", h)
	}
	r = must(t, 0, env, "", "health")
	if !strings.HasPrefix(r.stdout, "ready: ") {
		t.Errorf("health: %q", r.stdout)
	}
	// The server's address in the other spellings people paste.
	for _, u := range []string{strings.TrimPrefix(s.url(), "http://"), "ws://" + strings.TrimPrefix(s.url(), "http://") + "/ws", s.url() + "/"} {
		must(t, 0, nil, "", "health", "--server", u)
	}

	r = must(t, 0, env, "", "topics", "delete", "news", "-o", "json")
	if st := jsonLines[struct{ Status, Topic string }](t, r.stdout); len(st) != 1 || st[0].Status != "deleted" {
		t.Errorf("delete -o json: %+v", st)
	}
	r = must(t, 1, env, "", "topics", "delete", "news")
	if !strings.Contains(r.stderr, "TOPIC_NOT_FOUND") {
		t.Errorf("delete twice: stderr %q", r.stderr)
	}
	must(t, 0, env, "", "topics", "create", "ns:a.b_c-d")
	must(t, 0, env, "", "topics", "delete", "ns:a.b_c-d")
	r = must(t, 1, env, "", "topics", "create", "bad name")
	if !strings.Contains(r.stderr, "BAD_REQUEST") {
		t.Errorf("bad name: stderr %q", r.stderr)
	}
}

// TestPublishAndTail: every payload source reaches a tail exactly as published, with headers and
// consecutive seqs, in JSON lines; --last-n replays first; Ctrl-C ends tail with exit 0 and a
// summary that says how to resume.
func TestPublishAndTail(t *testing.T) {
	s := startServer(t)
	env := map[string]string{"PUBSUB_URL": s.url()}
	must(t, 0, env, "", "topics", "create", "orders")
	r := must(t, 0, env, "", "publish", "orders", `{"n":1}`, "-o", "json")
	pub := jsonLines[publishLine](t, r.stdout)
	if len(pub) != 1 || pub[0].Topic != "orders" || pub[0].ID == "" || pub[0].TS == "" {
		t.Fatalf("publish -o json: %+v", pub)
	}

	tail := start(t, env, "tail", "orders", "--last-n", "1", "-o", "json")
	first := tail.events(t, 1)
	if first[0].Seq != 1 || first[0].ID != pub[0].ID || string(first[0].Payload) != `{"n":1}` || first[0].Epoch == "" {
		t.Fatalf("replayed event: %+v", first[0])
	}
	tail.stderr.waitFor(t, "subscribed to orders")

	file := filepath.Join(t.TempDir(), "payload.json")
	if err := os.WriteFile(file, []byte("[1, 2, 3]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	must(t, 0, env, "", "publish", "orders", "--file", file)
	must(t, 0, env, "plain text\n", "publish", "orders")
	r = must(t, 0, env, "", "publish", "orders", "hello", "--count", "3", "--header", "k=v", "--rate", "1000")
	if strings.Count(r.stdout, "published ") != 3 || !strings.Contains(r.stderr, "published 3 message(s) to orders") {
		t.Errorf("publish --count 3: stdout %q stderr %q", r.stdout, r.stderr)
	}
	evs := tail.events(t, 6)
	want := []string{`{"n":1}`, `[1,2,3]`, `"plain text"`, `"hello"`, `"hello"`, `"hello"`}
	ids := map[string]bool{}
	for i, ev := range evs {
		if ev.Seq != uint64(i+1) || string(ev.Payload) != want[i] || ev.Topic != "orders" || ev.Epoch != first[0].Epoch {
			t.Errorf("event %d: %+v, want seq %d payload %s", i, ev, i+1, want[i])
		}
		ids[ev.ID] = true
		if i >= 3 && ev.Headers["k"] != "v" {
			t.Errorf("event %d lost its header: %+v", i, ev.Headers)
		}
	}
	if len(ids) != 6 {
		t.Errorf("messages do not each have their own id: %v", ids)
	}
	if code := tail.interrupt(t); code != 0 {
		t.Errorf("tail after Ctrl-C: exit %d, want 0", code)
	}
	if !strings.Contains(tail.stderr.String(), "tail ended: 6 event(s) from orders; resume with --since-seq 6 --epoch "+first[0].Epoch) {
		t.Errorf("tail's summary: %q", tail.stderr.String())
	}

	// Resuming from the summary prints only what came after it.
	must(t, 0, env, "", "publish", "orders", "7")
	again := start(t, env, "tail", "orders", "--since-seq", "6", "--epoch", first[0].Epoch, "-o", "json")
	if evs := again.events(t, 1); evs[0].Seq != 7 || string(evs[0].Payload) != "7" {
		t.Errorf("resumed tail: %+v", evs)
	}
	again.stderr.waitFor(t, "resumed after seq 6 (recovered)")

	// A text tail prints readable lines.
	text := start(t, env, "subscribe", "orders", "--last-n", "1")
	text.stdout.waitFor(t, "  orders  #7  7\n")
	must(t, 0, env, "", "publish", "orders", "{\n  \"pretty\": [1, 2]\n}\n")
	text.stdout.waitFor(t, `  orders  #8  {"pretty":[1,2]}`+"\n")

	// An endless publish ends with Ctrl-C, exit 0 and its summary.
	endless := start(t, env, "publish", "orders", "x", "--count", "0", "--rate", "200", "-q")
	again.events(t, 3)
	if code := endless.interrupt(t); code != 0 {
		t.Errorf("publish --count 0 after Ctrl-C: exit %d, want 0", code)
	}
	endless.stderr.waitFor(t, "message(s) to orders")

	// Ctrl-C before --count was reached: 130, and how far it got.
	long := start(t, env, "publish", "orders", "x", "--count", "1000000", "--rate", "100")
	long.stdout.waitFor(t, "published ")
	if code := long.interrupt(t); code != exitInterrupted {
		t.Errorf("publish interrupted before --count: exit %d, want %d", code, exitInterrupted)
	}
	long.stderr.waitFor(t, "interrupted after ")
}

// TestExitCodes: usage errors are 2, an unreachable server 3, refused credentials 4, a refusal 1,
// --help 0, for every subcommand that can fail that way.
func TestExitCodes(t *testing.T) {
	down := "http://127.0.0.1:1"
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{}, 2},
		{[]string{"bogus"}, 2},
		{[]string{"topics"}, 2},
		{[]string{"topics", "rename"}, 2},
		{[]string{"topics", "create"}, 2},
		{[]string{"publish"}, 2},
		{[]string{"publish", "a", "b", "c"}, 2},
		{[]string{"publish", "a", "--count", "-1"}, 2},
		{[]string{"tail"}, 2},
		{[]string{"tail", "a", "--since-seq", "3"}, 2},
		{[]string{"tail", "a", "--epoch", "e"}, 2},
		{[]string{"stats", "-o", "yaml"}, 2},
		{[]string{"health", "--nope"}, 2},
		{[]string{"token"}, 2},
		{[]string{"stats", "--server", "ftp://x"}, 2},
		{[]string{"--help"}, 0},
		{[]string{"publish", "--help"}, 0},
		{[]string{"tail", "-h"}, 0},
		{[]string{"topics", "list", "--help"}, 0},
		{[]string{"topics", "create", "--help"}, 0},
		{[]string{"stats", "--help"}, 0},
		{[]string{"health", "--help"}, 0},
		{[]string{"token", "--help"}, 0},
		{[]string{"health", "--server", down}, 3},
		{[]string{"stats", "--server", down}, 3},
		{[]string{"topics", "list", "--server", down}, 3},
		{[]string{"topics", "create", "x", "--server", down}, 3},
		{[]string{"publish", "x", "1", "--server", down}, 3},
		{[]string{"tail", "x", "--server", down}, 3},
	} {
		r := ctl(t, nil, "", tc.args...)
		if r.code != tc.code {
			t.Errorf("pubsubctl %q: exit %d, want %d; stderr %q", tc.args, r.code, tc.code, r.stderr)
		}
		if tc.code != 0 && r.stderr == "" {
			t.Errorf("pubsubctl %q: exit %d with nothing on stderr", tc.args, r.code)
		}
		if tc.code == 0 && (!strings.Contains(r.stdout, "Usage") || !strings.Contains(r.stdout, "xit status")) {
			t.Errorf("pubsubctl %q: the help on stdout does not show usage and exit statuses: %q", tc.args, r.stdout)
		}
	}

	const key = "a-key-of-at-least-16-chars"
	s := startServer(t, "-api-key="+key)
	wrong := map[string]string{"PUBSUB_URL": s.url(), "PUBSUB_API_KEY": "not-the-key-0123456789"}
	none := map[string]string{"PUBSUB_URL": s.url()}
	for _, env := range []map[string]string{wrong, none} {
		for _, args := range [][]string{
			{"topics", "create", "orders"}, {"topics", "list"}, {"stats"}, {"health"},
			{"publish", "orders", "1"}, {"tail", "orders"},
		} {
			if r := ctl(t, env, "", args...); r.code != 4 || !strings.Contains(r.stderr, "UNAUTHORIZED") {
				t.Errorf("pubsubctl %q with key %q: exit %d, want 4; stderr %q", args, env["PUBSUB_API_KEY"], r.code, r.stderr)
			}
		}
	}
	// The key from the environment, and from the flag.
	must(t, 0, map[string]string{"PUBSUB_URL": s.url(), "PUBSUB_API_KEY": key}, "", "topics", "create", "orders")
	must(t, 0, none, "", "publish", "orders", "1", "--api-key", key)
	// A refusal on the WebSocket is 1 too, with the server's code.
	if r := must(t, 1, none, "", "tail", "nope", "--api-key", key); !strings.Contains(r.stderr, "TOPIC_NOT_FOUND") {
		t.Errorf("tail of a missing topic: stderr %q", r.stderr)
	}
	if r := must(t, 1, none, "", "publish", "nope", "1", "--api-key", key); !strings.Contains(r.stderr, "TOPIC_NOT_FOUND") {
		t.Errorf("publish to a missing topic: stderr %q", r.stderr)
	}
}

// TestTailTakenOver: another client subscribing with the same client_id ends the first tail with
// exit 5 and says why.
func TestTailTakenOver(t *testing.T) {
	s := startServer(t)
	env := map[string]string{"PUBSUB_URL": s.url()}
	must(t, 0, env, "", "topics", "create", "orders")
	first := start(t, env, "tail", "orders", "--client-id", "me")
	first.stderr.waitFor(t, "subscribed to orders")
	second := start(t, env, "tail", "orders", "--client-id", "me")
	second.stderr.waitFor(t, "subscribed to orders")
	if code := first.wait(t); code != exitLost {
		t.Errorf("taken-over tail: exit %d, want %d", code, exitLost)
	}
	if !strings.Contains(first.stderr.String(), "subscription_replaced") {
		t.Errorf("taken-over tail: stderr %q", first.stderr.String())
	}
}

// TestToken: pubsubctl token mints, from the key file the server reads, a token the server
// accepts with the scopes asked for; -o json is parsed; a bad request is a usage error.
func TestToken(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "token.key")
	if err := os.WriteFile(keyFile, []byte("token-signing-key-0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := must(t, 0, nil, "", "token", "--key-file", keyFile, "--sub", "web", "--ttl", "10m", "--subscribe", "chat.*", "-o", "json")
	lines := jsonLines[struct{ Token, Sub, Expires string }](t, r.stdout)
	if len(lines) != 1 || lines[0].Sub != "web" || lines[0].Expires == "" {
		t.Fatalf("token -o json: %+v", lines)
	}
	a, err := auth.Load(auth.Settings{TokenKeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Token(lines[0].Token)
	if err != nil {
		t.Fatalf("the server refuses the token: %v", err)
	}
	if p.ID() != "web" || !p.CanSubscribe("chat.1") || p.CanPublish("chat.1") {
		t.Errorf("token principal: %+v", p)
	}
	r = must(t, 0, nil, "", "token", "--key-file", keyFile, "--sub", "web")
	if _, err := a.Token(strings.TrimSpace(r.stdout)); err != nil {
		t.Errorf("text token refused: %v", err)
	}
	must(t, 2, nil, "", "token", "--key-file", keyFile, "--sub", "web", "--ttl", "48h")
	must(t, 2, nil, "", "token", "--key-file", filepath.Join(t.TempDir(), "absent"), "--sub", "web")
	var js json.RawMessage
	if json.Unmarshal([]byte(r.stdout), &js) == nil {
		t.Errorf("text output is JSON: %q", r.stdout)
	}
}

// TestPublishLines: --lines publishes each non-empty line of stdin or --file as one message, and
// refuses an argument payload.
func TestPublishLines(t *testing.T) {
	s := startServer(t)
	env := map[string]string{"PUBSUB_URL": s.url()}
	must(t, 0, env, "", "topics", "create", "orders")
	tail := start(t, env, "tail", "orders", "-o", "json")
	tail.stderr.waitFor(t, "subscribed to orders")
	r := must(t, 0, env, "1\n\n{\"a\": 2}\nthree\n", "publish", "orders", "--lines", "-o", "json")
	if n := len(jsonLines[publishLine](t, r.stdout)); n != 3 {
		t.Errorf("publish --lines: %d acks, want 3", n)
	}
	file := filepath.Join(t.TempDir(), "lines")
	if err := os.WriteFile(file, []byte("4\n5"), 0o600); err != nil {
		t.Fatal(err)
	}
	must(t, 0, env, "", "publish", "orders", "--lines", "--file", file)
	evs := tail.events(t, 5)
	for i, want := range []string{`1`, `{"a":2}`, `"three"`, `4`, `5`} {
		if string(evs[i].Payload) != want {
			t.Errorf("event %d: payload %s, want %s", i, evs[i].Payload, want)
		}
	}
	must(t, 2, env, "", "publish", "orders", "x", "--lines")
}
