package console

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pubsubd/pubsub/internal/auth"
	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/telemetry"
)

const testKey = "console-test-key-0123456789"

// seen is what the fake application handler was handed.
type seen struct {
	path, key, protocols string
}

func newConsole(t *testing.T, withAuth bool) (*httptest.Server, *telemetry.Telemetry, chan seen) {
	t.Helper()
	tel, err := telemetry.Setup(context.Background(), telemetry.Config{LogOutput: io.Discard, LogFormat: "json"})
	if err != nil {
		t.Fatal(err)
	}
	var authn *auth.Authenticator
	if withAuth {
		if authn, err = auth.Load(auth.Settings{APIKey: testKey}); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan seen, 16)
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{path: r.URL.Path, key: r.Header.Get(auth.HeaderAPIKey), protocols: strings.Join(r.Header.Values("Sec-WebSocket-Protocol"), "|")}
		w.WriteHeader(http.StatusTeapot)
	})
	replicas := func(context.Context) ([]domain.ReplicaStats, error) {
		return []domain.ReplicaStats{{ID: "a", Self: true, Topics: 1, Subscribers: 2},
			{ID: "b", Topics: 3, Subscribers: 4, Heartbeat: time.Now().Add(-90 * time.Second)}}, nil
	}
	mux := http.NewServeMux()
	mux.Handle(Prefix, Handler(Options{App: app, Auth: authn, Replicas: replicas, Engine: "redis", Telemetry: tel}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, tel, got
}

func do(t *testing.T, method, url string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// The page and its files are served to anyone (the page asks for the credential), with headers
// that keep scripts and connections to the console's own origin and forbid framing.
func TestPageIsServedWithAStrictPolicy(t *testing.T) {
	srv, _, _ := newConsole(t, true)
	for path, want := range map[string]string{"/console/": "<title>pubsub console</title>", "/console/console.js": "pubsub.key.",
		"/console/console.css": "--accent"} {
		resp, body := do(t, "GET", srv.URL+path, nil)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d, body without %q", path, resp.StatusCode, want)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
		}
	}
	if resp, _ := do(t, "GET", srv.URL+"/console/nothing.js", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("an unknown file: %d, want 404", resp.StatusCode)
	}
}

func TestConfigSaysWhetherToAskForACredential(t *testing.T) {
	for _, withAuth := range []bool{true, false} {
		srv, _, _ := newConsole(t, withAuth)
		resp, body := do(t, "GET", srv.URL+"/console/config.json", nil)
		var c configBody
		if err := json.Unmarshal([]byte(body), &c); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("config: %d %s (%v)", resp.StatusCode, body, err)
		}
		if c != (configBody{Auth: withAuth, Engine: "redis", API: "/console/app"}) {
			t.Errorf("auth %v: config %+v", withAuth, c)
		}
	}
}

// The console's JSON needs the application's credential when authentication is on; refusals are
// the application's 401, counted by reason.
func TestJSONNeedsACredential(t *testing.T) {
	srv, tel, _ := newConsole(t, true)
	for _, path := range []string{"/console/cluster.json", "/console/incidents.json"} {
		resp, body := do(t, "GET", srv.URL+path, nil)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `"UNAUTHORIZED"`) || resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("GET %s without a key: %d %s", path, resp.StatusCode, body)
		}
		if resp, _ := do(t, "GET", srv.URL+path, map[string]string{auth.HeaderAPIKey: "wrong-key-wrong-key"}); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s with a wrong key: %d", path, resp.StatusCode)
		}
	}
	resp, body := do(t, "GET", srv.URL+"/console/cluster.json", map[string]string{auth.HeaderAPIKey: testKey})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("cluster with the key: %d %s", resp.StatusCode, body)
	}
	var cl clusterBody
	if err := json.Unmarshal([]byte(body), &cl); err != nil {
		t.Fatal(err)
	}
	if cl.Engine != "redis" || len(cl.Replicas) != 2 {
		t.Fatalf("cluster.json %s: want redis with two replicas", body)
	}
	if a := cl.Replicas[0]; a.ID != "a" || !a.Self || a.Topics != 1 || a.Subscribers != 2 || a.Heartbeat != nil || a.HeartbeatAgeMS != nil {
		t.Errorf("the answering replica %s: want a, self, 1 topic, 2 subscribers, no heartbeat", body)
	}
	// b's heartbeat was 90 s before the request: its age is that, by the server's clock.
	if b := cl.Replicas[1]; b.ID != "b" || b.Self || b.Topics != 3 || b.Subscribers != 4 || b.Heartbeat == nil ||
		b.HeartbeatAgeMS == nil || *b.HeartbeatAgeMS < 90_000 || *b.HeartbeatAgeMS > 90_000+time.Minute.Milliseconds() {
		t.Errorf("the other replica %s: want b with its heartbeat, 90 s old", body)
	}

	tel.Metrics.Incidents.Add(telemetry.Incident{Kind: telemetry.IncidentSlowConsumer, Policy: "drop_oldest", Topic: "t", ClientID: "s", Dropped: 3})
	resp, body = do(t, "GET", srv.URL+"/console/incidents.json", map[string]string{auth.HeaderAPIKey: testKey})
	var in incidentsBody
	if err := json.Unmarshal([]byte(body), &in); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("incidents: %d %s (%v)", resp.StatusCode, body, err)
	}
	// Four refusals above, each counted as one limit-free auth failure: the ring holds only the
	// slow consumer.
	if len(in.Incidents) != 1 || in.Incidents[0].Kind != telemetry.IncidentSlowConsumer || in.Incidents[0].Dropped != 3 {
		t.Errorf("incidents %+v, want the one slow consumer", in.Incidents)
	}
}

// The application's mount strips its prefix, refuses pages of other origins, and turns a key
// offered as a subprotocol into the X-API-Key header, taking it off the offered protocols.
func TestAppMount(t *testing.T) {
	srv, _, got := newConsole(t, true)
	host := strings.TrimPrefix(srv.URL, "http://")

	resp, _ := do(t, "GET", srv.URL+"/console/app/stats", map[string]string{"Origin": "http://" + host, auth.HeaderAPIKey: testKey})
	if resp.StatusCode != http.StatusTeapot {
		t.Fatalf("same origin: %d, want the application's answer", resp.StatusCode)
	}
	if s := <-got; s.path != "/stats" || s.key != testKey {
		t.Errorf("the application saw %+v, want /stats with the key", s)
	}

	resp, body := do(t, "POST", srv.URL+"/console/app/topics", map[string]string{"Origin": "http://evil.example", auth.HeaderAPIKey: testKey})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "UNAUTHORIZED") {
		t.Errorf("another origin: %d %s, want 403", resp.StatusCode, body)
	}
	select {
	case s := <-got:
		t.Errorf("a request from another origin reached the application: %+v", s)
	default:
	}

	enc := base64.RawURLEncoding.EncodeToString([]byte(testKey))
	do(t, "GET", srv.URL+"/console/app/ws", map[string]string{"Sec-WebSocket-Protocol": "pubsub, " + KeyProtocolPrefix + enc})
	if s := <-got; s.path != "/ws" || s.key != testKey || s.protocols != "pubsub" {
		t.Errorf("a key offered as a subprotocol: the application saw %+v, want /ws, the key as X-API-Key, and only pubsub offered", s)
	}
	do(t, "GET", srv.URL+"/console/app/ws", map[string]string{"Sec-WebSocket-Protocol": "pubsub, pubsub.token.abc"})
	if s := <-got; s.key != "" || s.protocols != "pubsub, pubsub.token.abc" {
		t.Errorf("a token: the application saw %+v, want it untouched", s)
	}
	do(t, "GET", srv.URL+"/console/app/ws", map[string]string{"Sec-WebSocket-Protocol": KeyProtocolPrefix + "!!not base64!!"})
	if s := <-got; s.key != "" || s.protocols != "" {
		t.Errorf("a bad key encoding: the application saw %+v, want no key (the handshake then fails as missing)", s)
	}
}

func TestClusterErrorIsTheApplicationsError(t *testing.T) {
	tel, err := telemetry.Setup(context.Background(), telemetry.Config{LogOutput: io.Discard, LogFormat: "json"})
	if err != nil {
		t.Fatal(err)
	}
	h := Handler(Options{App: http.NotFoundHandler(), Engine: "redis", Telemetry: tel,
		Replicas: func(context.Context) ([]domain.ReplicaStats, error) {
			return nil, domain.Errorf(domain.KindUnavailable, "redis: down")
		}})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/console/cluster.json", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "UNAVAILABLE") {
		t.Fatalf("engine down: %d %s, want 503 UNAVAILABLE", rec.Code, rec.Body.String())
	}
}
