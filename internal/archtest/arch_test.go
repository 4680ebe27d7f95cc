package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// The test runs `go` as a child process; goleak proves no goroutine of os/exec outlives it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const mod = "github.com/pubsubd/pubsub"

// pkg is one node of the import graph, as `go list -json` describes it.
type pkg struct {
	ImportPath string
	Standard   bool
	Imports    []string
	Error      *struct{ Err string }
}

// graph maps import paths to packages: the module's packages and everything they depend on.
type graph map[string]*pkg

// under reports whether path is prefix or inside it ("os" covers "os/exec", not "osx").
func under(path string, prefixes ...string) bool {
	for _, p := range prefixes {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}

// rule is one row of DESIGN.md's dependency table.
type rule struct {
	name    string   // the layer, for messages
	applies []string // packages (and their subpackages) the rule governs
	// direct, when set, must accept every direct import; allowed says in words what it accepts.
	direct  func(g graph, imp string) bool
	allowed string
	// forbidden are never reached, directly or through any chain of imports, unless exempt.
	forbidden []string
	exempt    []string
}

// rules is DESIGN.md "Dependencies point inward". Direct-import allowlists only constrain the
// standard library where a transitive check cannot work (fmt itself imports os).
var rules = []rule{
	{
		name:    "domain",
		applies: []string{mod + "/internal/domain"},
		direct: func(g graph, imp string) bool {
			return isStd(g, imp) && !under(imp, "net", "os", "log", "syscall") ||
				under(imp, "github.com/google/uuid", mod+"/internal/domain")
		},
		allowed:   "the standard library without net, os, log, syscall; github.com/google/uuid",
		forbidden: []string{mod, "go.opentelemetry.io", "github.com/prometheus", "github.com/gorilla"},
		exempt:    []string{mod + "/internal/domain"},
	},
	{
		name:    "service",
		applies: []string{mod + "/internal/service"},
		// uuid is domain vocabulary (domain.Message.ID), not infrastructure.
		direct: func(g graph, imp string) bool {
			return isStd(g, imp) || under(imp, "github.com/google/uuid", mod+"/internal/domain", mod+"/internal/service")
		},
		allowed: "domain, the standard library, github.com/google/uuid",
		forbidden: []string{mod, "net/http", "go.opentelemetry.io", "github.com/prometheus", "github.com/gorilla",
			"github.com/redis"},
		exempt: []string{mod + "/internal/domain", mod + "/internal/service"},
	},
	{
		name:      "broker adapters",
		applies:   []string{mod + "/internal/broker"},
		forbidden: []string{mod + "/internal/transport", mod + "/telemetry", mod + "/cmd"},
	},
	{
		// The broker contract suite is test support every engine imports: written against the ports
		// only, so it can never lean on one engine's internals.
		name:    "broker contract suite",
		applies: []string{mod + "/internal/broker/brokertest"},
		direct: func(g graph, imp string) bool {
			return isStd(g, imp) || under(imp, mod+"/internal/domain", mod+"/internal/service", mod+"/internal/broker/brokertest")
		},
		allowed: "domain, service, the standard library",
	},
	{
		// Authentication is a library the transports call at their edge: the domain's vocabulary
		// (topic names, error kinds), the JWT library and the standard library, nothing that
		// does I/O of the process's own (telemetry, the service, a broker, a transport).
		name:    "auth",
		applies: []string{mod + "/internal/auth"},
		direct: func(g graph, imp string) bool {
			return isStd(g, imp) || under(imp, mod+"/internal/domain", mod+"/internal/auth", "github.com/golang-jwt/jwt/v5")
		},
		allowed: "domain, the standard library, github.com/golang-jwt/jwt/v5",
		forbidden: []string{mod + "/internal/service", mod + "/internal/transport", mod + "/internal/broker",
			mod + "/telemetry", mod + "/internal/config", "go.opentelemetry.io", "github.com/prometheus", "github.com/gorilla"},
		exempt: []string{mod + "/internal/domain", mod + "/internal/auth"},
	},
	{
		name:      "transports",
		applies:   []string{mod + "/internal/transport"},
		forbidden: []string{mod + "/internal/broker", mod + "/cmd"},
	},
	{
		name:      "ws transport",
		applies:   []string{mod + "/internal/transport/ws"},
		forbidden: []string{mod + "/internal/transport/httpapi"},
	},
	{
		// The console gets the application's handler injected: it never builds or reaches into
		// the transports it serves to its page.
		name:      "console transport",
		applies:   []string{mod + "/internal/transport/console"},
		forbidden: []string{mod + "/internal/transport/ws", mod + "/internal/transport/httpapi"},
	},
	{
		name:      "httpapi transport",
		applies:   []string{mod + "/internal/transport/httpapi"},
		forbidden: []string{mod + "/internal/transport/ws"},
	},
	{
		name:      "telemetry",
		applies:   []string{mod + "/telemetry"},
		forbidden: []string{mod + "/internal/transport", mod + "/internal/broker", mod + "/cmd"},
	},
	{
		// app is the outermost internal layer: it may assemble everything, so nothing it assembles
		// may lean on it. Only commands (and tests) import it.
		name: "layers under app",
		applies: []string{mod + "/internal/domain", mod + "/internal/service", mod + "/internal/broker",
			mod + "/internal/transport", mod + "/internal/config", mod + "/internal/auth", mod + "/telemetry"},
		forbidden: []string{mod + "/internal/app"},
	},
	{
		// Assembly and lifecycle only: our packages, the standard library, and the two libraries
		// whose values it wires in (the metrics handler, the span processor a test injects). A
		// transport library here would mean logic had moved into the assembly.
		name:    "app",
		applies: []string{mod + "/internal/app"},
		direct: func(g graph, imp string) bool {
			return isStd(g, imp) || under(imp, mod+"/internal", mod+"/telemetry",
				"github.com/prometheus/client_golang/prometheus/promhttp", "go.opentelemetry.io/otel/sdk/trace")
		},
		allowed:   "our internal packages, telemetry, the standard library, promhttp, the otel trace SDK",
		forbidden: []string{mod + "/cmd"},
	},
	{
		// main is thin: configuration, then app; and the token subcommand, which only hands its
		// flags to auth.Mint.
		name:    "pubsubd",
		applies: []string{mod + "/cmd/pubsubd"},
		direct: func(g graph, imp string) bool {
			return isStd(g, imp) || under(imp, mod+"/internal/app", mod+"/internal/config", mod+"/internal/auth")
		},
		allowed: "internal/app, internal/config, internal/auth (pubsubd token), the standard library",
	},
	{
		// The client speaks the wire contract (wire's frames and DTOs) over its own WebSocket
		// client, and mints tokens with auth; it never links the server it talks to.
		name:    "pubsubctl",
		applies: []string{mod + "/cmd/pubsubctl"},
		direct: func(g graph, imp string) bool {
			return isStd(g, imp) || under(imp, mod+"/internal/transport/wire", mod+"/internal/auth",
				"github.com/gorilla/websocket", "github.com/google/uuid")
		},
		allowed: "internal/transport/wire, internal/auth, gorilla/websocket, google/uuid, the standard library",
		forbidden: []string{mod + "/internal/app", mod + "/internal/service", mod + "/internal/broker",
			mod + "/internal/transport/ws", mod + "/internal/transport/httpapi", mod + "/internal/config", mod + "/telemetry"},
	},
}

// isStd trusts go list where it knows the package; otherwise a path whose first element has no
// dot is standard, which is the go command's own rule.
func isStd(g graph, path string) bool {
	if p, ok := g[path]; ok {
		return p.Standard
	}
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

// violation is one broken rule: pkg reaches forbidden through chain (pkg first, forbidden last).
type violation struct {
	rule  string
	chain []string
	why   string
}

func (v violation) String() string {
	return fmt.Sprintf("%s: %s (%s)", v.rule, strings.Join(v.chain, " -> "), v.why)
}

// check applies rules to every package in g, in a stable order. A broken inner layer is reported
// at every governed package that reaches it, so the chains show each layer the damage spreads to.
// A chain is reported once per rule, with the first reason found.
func check(g graph, rules []rule) []violation {
	var out []violation
	seen := map[string]bool{}
	add := func(v violation) {
		if key := v.rule + "\x00" + strings.Join(v.chain, " "); !seen[key] {
			seen[key] = true
			out = append(out, v)
		}
	}
	paths := make([]string, 0, len(g))
	for path := range g {
		paths = append(paths, path)
	}
	slices.Sort(paths)
	for _, path := range paths {
		for _, r := range rules {
			if !under(path, r.applies...) {
				continue
			}
			if r.direct != nil {
				for _, imp := range g[path].Imports {
					if !r.direct(g, imp) {
						add(violation{r.name, []string{path, imp}, "may import only " + r.allowed})
					}
				}
			}
			for _, v := range reach(g, path, r) {
				add(v)
			}
		}
	}
	return out
}

// reach walks the imports of from breadth first and reports every forbidden package it reaches,
// with the shortest chain that leads there. It does not walk past a forbidden package.
func reach(g graph, from string, r rule) []violation {
	parent := map[string]string{from: ""}
	queue := []string{from}
	var out []violation
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if i := slices.IndexFunc(r.forbidden, func(f string) bool { return under(cur, f) }); cur != from && i >= 0 && !under(cur, r.exempt...) {
			var chain []string
			for p := cur; p != ""; p = parent[p] {
				chain = append(chain, p)
			}
			slices.Reverse(chain)
			out = append(out, violation{r.name, chain, "must not depend on " + r.forbidden[i]})
			continue
		}
		var imports []string
		if p := g[cur]; p != nil {
			imports = p.Imports
		}
		for _, imp := range imports {
			if _, seen := parent[imp]; !seen {
				parent[imp] = cur
				queue = append(queue, imp)
			}
		}
	}
	return out
}

// loadGraph reads the import graph of every package of the module and of their dependencies.
func loadGraph(t *testing.T) graph {
	t.Helper()
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	cmd := exec.Command("go", "list", "-e", "-deps", "-json=ImportPath,Standard,Imports,Error", "./...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list in %s: %v\n%s", root, err, stderr.String())
	}
	g := graph{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		g[p.ImportPath] = &p
	}
	return g
}

func TestDependenciesPointInward(t *testing.T) {
	g := loadGraph(t)
	for path, p := range g {
		// A package go list could not load has an incomplete import list: the check would be blind.
		if under(path, mod) && p.Error != nil {
			t.Errorf("go list could not load %s: %s", path, p.Error.Err)
		}
	}
	// A rule that governs no package has rotted (a package moved); say so instead of passing.
	for _, r := range rules {
		matched := false
		for path := range g {
			matched = matched || under(path, r.applies...)
		}
		if !matched {
			t.Errorf("rule %q applies to no package of the module: update it", r.name)
		}
	}
	for _, v := range check(g, rules) {
		t.Error(v)
	}
}

// synthetic builds a graph from "package: imports..." lines, so the checker can be shown broken
// layers without breaking the real code.
func synthetic(lines ...string) graph {
	g := graph{}
	add := func(path string) *pkg {
		if g[path] == nil {
			g[path] = &pkg{ImportPath: path, Standard: isStd(nil, path)}
		}
		return g[path]
	}
	for _, l := range lines {
		name, imports, _ := strings.Cut(l, ":")
		p := add(strings.TrimSpace(name))
		for _, imp := range strings.Fields(imports) {
			add(imp)
			p.Imports = append(p.Imports, imp)
		}
	}
	return g
}

// cleanGraph is a miniature of the real module that keeps every rule.
var cleanGraph = []string{
	"fmt: os errors",
	"os: syscall",
	"net/http: net context",
	"expvar: net/http fmt",
	"github.com/google/uuid: crypto/rand fmt os",
	"go.opentelemetry.io/otel/trace: context",
	"github.com/gorilla/websocket: net/http",
	"github.com/prometheus/client_golang/prometheus: net/http",
	mod + "/internal/domain: fmt sync time errors github.com/google/uuid",
	mod + "/internal/service: context sync/atomic time github.com/google/uuid " + mod + "/internal/domain",
	mod + "/internal/broker/memory: context " + mod + "/internal/domain " + mod + "/internal/service",
	mod + "/internal/broker/brokertest: testing sync " + mod + "/internal/domain " + mod + "/internal/service",
	mod + "/internal/transport/wire: encoding/json net/http " + mod + "/internal/domain",
	mod + "/internal/transport/ws: net/http github.com/gorilla/websocket " + mod + "/internal/service " +
		mod + "/internal/transport/wire " + mod + "/telemetry",
	mod + "/internal/transport/httpapi: net/http go.opentelemetry.io/otel/trace " + mod + "/internal/service " +
		mod + "/internal/transport/wire " + mod + "/telemetry",
	mod + "/telemetry: os go.opentelemetry.io/otel/trace github.com/prometheus/client_golang/prometheus " +
		mod + "/internal/service " + mod + "/internal/domain",
	mod + "/internal/config: flag os " + mod + "/internal/domain",
	mod + "/internal/app: net/http github.com/prometheus/client_golang/prometheus/promhttp " + mod + "/internal/config " +
		mod + "/internal/broker/memory " + mod + "/internal/transport/ws " + mod + "/internal/transport/httpapi " + mod + "/telemetry",
	"github.com/prometheus/client_golang/prometheus/promhttp: net/http github.com/prometheus/client_golang/prometheus",
	mod + "/cmd/pubsubd: os " + mod + "/internal/config " + mod + "/internal/app",
	mod + "/cmd/pubsubctl: os net/http github.com/gorilla/websocket github.com/google/uuid " + mod + "/internal/transport/wire",
}

func TestCheckerCatchesViolations(t *testing.T) {
	const (
		domain  = mod + "/internal/domain"
		service = mod + "/internal/service"
		memory  = mod + "/internal/broker/memory"
		wire    = mod + "/internal/transport/wire"
		ws      = mod + "/internal/transport/ws"
		httpapi = mod + "/internal/transport/httpapi"
		tel     = mod + "/telemetry"
		app     = mod + "/internal/app"
	)
	tests := []struct {
		name  string
		extra []string // lines added to cleanGraph
		want  []string // the chains the checker must report, exactly
	}{
		{"clean graph passes", nil, nil},
		{"domain imports os", []string{domain + ": os"}, []string{domain + " -> os"}},
		{"domain logs", []string{domain + ": log/slog"}, []string{domain + " -> log/slog"}},
		{"domain does network", []string{domain + ": net/netip"}, []string{domain + " -> net/netip"}},
		{"domain imports the service", []string{domain + ": " + service}, []string{domain + " -> " + service,
			mod + "/cmd/pubsubctl -> " + wire + " -> " + domain + " -> " + service}},
		// The broken inner layer is reported, and so is every governed layer it drags along.
		{"domain reaches gorilla through a library", []string{domain + ": example.com/lib", "example.com/lib: github.com/gorilla/websocket"},
			[]string{domain + " -> example.com/lib", domain + " -> example.com/lib -> github.com/gorilla/websocket",
				service + " -> " + domain + " -> example.com/lib -> github.com/gorilla/websocket"}},
		{"service imports net/http", []string{service + ": net/http"},
			[]string{service + " -> net/http"}},
		{"service reaches net/http through the standard library", []string{service + ": expvar"},
			[]string{service + " -> expvar -> net/http"}},
		{"service imports telemetry", []string{service + ": " + tel}, []string{service + " -> " + tel,
			memory + " -> " + service + " -> " + tel, mod + "/internal/broker/brokertest -> " + service + " -> " + tel}},
		{"service imports otel", []string{service + ": go.opentelemetry.io/otel/trace"}, []string{service + " -> go.opentelemetry.io/otel/trace"}},
		{"service imports a broker adapter", []string{service + ": " + memory}, []string{service + " -> " + memory,
			ws + " -> " + service + " -> " + memory, httpapi + " -> " + service + " -> " + memory, tel + " -> " + service + " -> " + memory}},
		{"broker imports a transport", []string{memory + ": " + wire}, []string{memory + " -> " + wire}},
		{"broker reaches telemetry", []string{mod + "/internal/broker/redis: " + service + " example.com/x", "example.com/x: " + tel},
			[]string{mod + "/internal/broker/redis -> example.com/x -> " + tel}},
		{"contract suite imports an engine", []string{mod + "/internal/broker/brokertest: " + memory},
			[]string{mod + "/internal/broker/brokertest -> " + memory}},
		{"transport imports a broker adapter", []string{ws + ": " + memory}, []string{ws + " -> " + memory}},
		{"ws imports httpapi", []string{ws + ": " + httpapi}, []string{ws + " -> " + httpapi}},
		{"httpapi reaches ws through a shared package", []string{httpapi + ": " + mod + "/internal/transport/shared",
			mod + "/internal/transport/shared: " + ws},
			[]string{httpapi + " -> " + mod + "/internal/transport/shared -> " + ws}},
		{"telemetry imports wire", []string{tel + ": " + wire}, []string{tel + " -> " + wire}},
		{"telemetry imports a broker", []string{tel + ": " + memory}, []string{tel + " -> " + memory,
			ws + " -> " + tel + " -> " + memory, httpapi + " -> " + tel + " -> " + memory}},
		{"telemetry subpackage imports cmd", []string{tel + "/otlp: " + mod + "/cmd/pubsubd"},
			[]string{tel + "/otlp -> " + mod + "/cmd/pubsubd", tel + "/otlp -> " + mod + "/cmd/pubsubd -> " + app}},
		{"a transport imports app", []string{httpapi + ": " + app}, []string{httpapi + " -> " + app,
			httpapi + " -> " + app + " -> " + memory, httpapi + " -> " + app + " -> " + ws}},
		{"config imports app", []string{mod + "/internal/config: " + app}, []string{mod + "/internal/config -> " + app}},
		{"app imports gorilla", []string{app + ": github.com/gorilla/websocket"}, []string{app + " -> github.com/gorilla/websocket"}},
		{"app imports a command", []string{app + ": " + mod + "/cmd/pubsubctl"}, []string{app + " -> " + mod + "/cmd/pubsubctl"}},
		{"pubsubd wires a layer itself", []string{mod + "/cmd/pubsubd: " + ws}, []string{mod + "/cmd/pubsubd -> " + ws}},
		{"pubsubctl links the server", []string{mod + "/cmd/pubsubctl: " + app}, []string{mod + "/cmd/pubsubctl -> " + app}},
		{"pubsubctl reaches the service through a library", []string{mod + "/cmd/pubsubctl: example.com/lib", "example.com/lib: " + service},
			[]string{mod + "/cmd/pubsubctl -> example.com/lib", mod + "/cmd/pubsubctl -> example.com/lib -> " + service}},
		{"pubsubd imports a library", []string{mod + "/cmd/pubsubd: github.com/prometheus/client_golang/prometheus/promhttp"},
			[]string{mod + "/cmd/pubsubd -> github.com/prometheus/client_golang/prometheus/promhttp"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vs := check(synthetic(append(slices.Clone(cleanGraph), tt.extra...)...), rules)
			var got []string
			for _, v := range vs {
				got = append(got, strings.Join(v.chain, " -> "))
			}
			slices.Sort(got)
			want := slices.Clone(tt.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("chains reported:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			for _, v := range vs {
				if !strings.Contains(v.String(), v.rule+": ") || !strings.Contains(v.String(), "(must not depend on ") && !strings.Contains(v.String(), "(may import only ") {
					t.Fatalf("violation %q does not say which rule and why", v)
				}
			}
		})
	}
}
