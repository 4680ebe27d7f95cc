// Command pubsubctl is the command-line client of pubsub: it manages topics and reads stats and
// health over REST, publishes and tails topics over the WebSocket protocol, and mints browser
// tokens. Every subcommand prints readable lines, or JSON lines with -o json, and ends with an
// exit status a script can rely on (see usage).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Exit statuses: the same for every subcommand, and listed in usage and the README.
const (
	exitOK           = 0
	exitRefused      = 1   // the server answered with an error code (shown on stderr)
	exitUsage        = 2   // bad flags or arguments: nothing was sent
	exitUnavailable  = 3   // the server cannot be reached, or is not ready (503 UNAVAILABLE)
	exitUnauthorized = 4   // the server refused the credentials (401 UNAUTHORIZED)
	exitLost         = 5   // tail: the subscription was taken over or ended by another client
	exitInterrupted  = 130 // publish: interrupted (Ctrl-C) before --count messages were sent
)

const usage = `pubsubctl: the command-line client of pubsub

Usage:
  pubsubctl topics create NAME...       create topics
  pubsubctl topics delete NAME...       delete topics
  pubsubctl topics list                 list topics and their subscribers
  pubsubctl publish TOPIC [PAYLOAD]     publish messages (payload from the argument, --file or stdin)
  pubsubctl tail TOPIC                  print a topic's events as they come; reconnects and resumes
  pubsubctl subscribe TOPIC             the same as tail
  pubsubctl stats                       messages and subscribers per topic
  pubsubctl health                      uptime, counts and readiness
  pubsubctl token -key-file F -sub NAME mint a signed browser token (no server needed)

Every subcommand takes --help. Common flags (before or after the arguments):
  --server URL     the service, e.g. http://127.0.0.1:8080 (default $PUBSUB_URL, else http://127.0.0.1:8080)
  --api-key KEY    sent as X-API-Key (default $PUBSUB_API_KEY)
  -o text|json     readable lines (default), or one JSON object per line
  --timeout D      bound on each REST request and on connecting (default 10s)

Output: results on stdout; errors, notices and summaries on stderr.

Exit status:
  0    ok (tail: ended with Ctrl-C)
  1    the server refused (its error code is shown: TOPIC_EXISTS, TOPIC_NOT_FOUND, BAD_REQUEST,
       RATE_LIMITED ...)
  2    usage error: bad flags or arguments
  3    cannot connect, or the server is unavailable (503, not ready, shutting down)
  4    unauthorized: missing or wrong credentials, or a key without the scope
  5    tail: another client took over or ended the subscription
  130  publish: interrupted before --count messages were acknowledged (--lines: before the end)
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// env is what run reads from outside its arguments, so tests can run it in process.
type env struct {
	ctx    context.Context
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// run executes one command line and returns its exit status. ctx ending is Ctrl-C: tail and
// publish stop cleanly, REST calls are abandoned.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{ctx: ctx, getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	// The common flags may come before the command too ("pubsubctl --server URL health"): they
	// are handed to the command after its name, where its flag set reads them.
	var lead []string
	for len(args) > 0 && strings.HasPrefix(args[0], "-") && !isHelp(args[0]) {
		n := 1
		if name := strings.TrimLeft(args[0], "-"); !strings.Contains(name, "=") && valueFlags[name] {
			n = 2
		}
		n = min(n, len(args))
		lead, args = append(lead, args[:n]...), args[n:]
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch {
	case len(lead) == 0:
	case cmd == "topics" && len(rest) > 0: // after the subcommand: topics list --server URL
		rest = slices.Concat(rest[:1], lead, rest[1:])
	default:
		rest = slices.Concat(lead, rest)
	}
	var err error
	switch cmd {
	case "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	case "topics":
		err = topicsCmd(e, rest)
	case "publish", "pub":
		err = publishCmd(e, rest)
	case "tail", "subscribe", "sub":
		err = tailCmd(e, rest)
	case "stats":
		err = statsCmd(e, rest)
	case "health":
		err = healthCmd(e, rest)
	case "token":
		err = tokenCmd(e, rest)
	default:
		err = usageErr("unknown command %q (see pubsubctl --help)", cmd)
	}
	return report(stderr, err)
}

// valueFlags are the common flags that take a value, for reading them before the command.
var valueFlags = map[string]bool{"server": true, "api-key": true, "o": true, "timeout": true}

func isHelp(arg string) bool { return arg == "-h" || arg == "-help" || arg == "--help" }

// exitError is an error with the exit status it ends the command with.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func usageErr(format string, args ...any) error {
	return &exitError{code: exitUsage, msg: fmt.Sprintf(format, args...)}
}

func unavailable(format string, args ...any) error {
	return &exitError{code: exitUnavailable, msg: fmt.Sprintf(format, args...)}
}

// report prints err (if any) on stderr and returns the exit status it stands for.
func report(stderr io.Writer, err error) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) && ee.msg == "" {
		return ee.code // already told
	}
	fmt.Fprintln(stderr, "pubsubctl:", err)
	return exitCode(err)
}

// exitCode is the exit status err stands for: its own, the server's answer's, else 1.
func exitCode(err error) int {
	var ee *exitError
	var se *serverError
	switch {
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &se):
		return se.exitCode()
	}
	return exitRefused
}

// common holds the flags every subcommand that talks to the server takes.
type common struct {
	server  string
	apiKey  string
	output  string
	timeout time.Duration
}

func (c *common) register(fs *flag.FlagSet) {
	// The defaults shown by --help must not print a key: the environment is read after parsing.
	fs.StringVar(&c.server, "server", "", "the service's URL (default $PUBSUB_URL, else http://127.0.0.1:8080)")
	fs.StringVar(&c.apiKey, "api-key", "", "API key, sent as X-API-Key (default $PUBSUB_API_KEY)")
	fs.StringVar(&c.output, "o", "text", "output: text or json (one JSON object per line)")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "bound on each REST request and on connecting")
}

// resolve fills what the flags left to the environment and checks the values.
func (c *common) resolve(e *env) error {
	if c.server == "" {
		c.server = e.getenv("PUBSUB_URL")
	}
	if c.server == "" {
		c.server = "http://127.0.0.1:8080"
	}
	if c.apiKey == "" {
		c.apiKey = e.getenv("PUBSUB_API_KEY")
	}
	if c.output != "text" && c.output != "json" {
		return usageErr("-o must be text or json, not %q", c.output)
	}
	if c.timeout <= 0 {
		return usageErr("--timeout must be positive")
	}
	s := strings.TrimRight(c.server, "/")
	switch {
	case strings.HasPrefix(s, "http://"), strings.HasPrefix(s, "https://"):
	case strings.HasPrefix(s, "ws://"):
		s = "http://" + strings.TrimPrefix(s, "ws://")
	case strings.HasPrefix(s, "wss://"):
		s = "https://" + strings.TrimPrefix(s, "wss://")
	case strings.Contains(s, "://"):
		return usageErr("--server %q: the scheme must be http or https", c.server)
	default:
		s = "http://" + s // "localhost:8080"
	}
	c.server = strings.TrimSuffix(s, "/ws")
	return nil
}

func (c *common) json() bool { return c.output == "json" }

// newFlags returns the flag set of one subcommand, its usage text printed by --help.
func newFlags(e *env, name, synopsis, details string) *flag.FlagSet {
	fs := flag.NewFlagSet("pubsubctl "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: pubsubctl %s\n\n%s\nFlags:\n", synopsis, details)
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), "\nExit status: 0 ok, 1 refused by the server, 2 usage, 3 unavailable, 4 unauthorized (pubsubctl --help)\n")
	}
	return fs
}

// parse parses args with fs, allowing flags after positional arguments ("publish orders --count 3"),
// and returns the positional arguments. "--" ends the flags.
func parse(e *env, fs *flag.FlagSet, args []string) ([]string, error) {
	// Help that was asked for goes to stdout (to page or grep it); after a mistake, to stderr.
	for _, a := range args {
		if a == "--" {
			break
		}
		if isHelp(a) {
			fs.SetOutput(e.stdout)
		}
	}
	var pos []string
	for {
		before := args
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				// --help: the usage went to stderr; for a person asking, that is success.
				return nil, err
			}
			return nil, &exitError{code: exitUsage} // flag already printed the error and usage
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if i := len(before) - len(args) - 1; i >= 0 && before[i] == "--" {
			return append(pos, args...), nil // flag consumed the "--": the rest is arguments
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
