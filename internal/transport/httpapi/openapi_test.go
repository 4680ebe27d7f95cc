package httpapi_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pubsubd/pubsub/internal/auth"
	"github.com/pubsubd/pubsub/internal/broker/memory"
	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/service"
	"github.com/pubsubd/pubsub/internal/transport/httpapi"
	"github.com/pubsubd/pubsub/internal/transport/httpapi/api"
	"github.com/pubsubd/pubsub/internal/transport/httpapi/api/apitest"
	"github.com/pubsubd/pubsub/internal/transport/wire"
)

// send makes one request to f and returns the exchange, for apitest to check.
func send(t *testing.T, f *fixture, method, path, body string, header ...string) apitest.Exchange {
	t.Helper()
	req, err := http.NewRequest(method, f.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return apitest.Exchange{Request: req, RequestBody: []byte(body), Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

// failing makes the REST operations fail with err, as an engine that is down (UNAVAILABLE) or a
// bug (an unclassified error, INTERNAL) would.
type failing struct {
	service.API
	err error
}

func (f failing) CreateTopic(context.Context, domain.TopicName) error { return f.err }
func (f failing) DeleteTopic(context.Context, domain.TopicName) error { return f.err }
func (f failing) ListTopics(context.Context) ([]domain.TopicStats, error) {
	return nil, f.err
}
func (f failing) Stats(context.Context) ([]domain.TopicStats, error) { return nil, f.err }
func (f failing) Health(context.Context) (service.Health, error) {
	return service.Health{}, f.err
}

// capped is the real service over a memory engine that holds at most one topic, so a second
// create meets the topic cap (429 RATE_LIMITED).
func capped(service.API) service.API {
	return service.New(memory.New(domain.TopicConfig{HistorySize: 10, QueueSize: 10, MaxTopics: 1, Encoder: wire.EventEncoder}), service.Options{})
}

// TestOpenAPIRoutesAreTheRouters: every route the router registers is an operation of
// openapi.json, and every operation of openapi.json is a route: neither can gain one alone.
func TestOpenAPIRoutesAreTheRouters(t *testing.T) {
	doc := apitest.Load(t)
	var routes []string
	for _, r := range httpapi.Routes() {
		routes = append(routes, r.Method+" "+r.Path)
	}
	slices.Sort(routes)
	if ops := doc.Operations(); !slices.Equal(routes, ops) {
		t.Errorf("the router serves\n  %v\nopenapi.json describes\n  %v", routes, ops)
	}
}

// TestOpenAPIDescribesEveryResponse: the service's real responses, for every route and every
// status the tests can provoke over REST, match openapi.json (status, headers, body); requests the
// service refuses as invalid are invalid by the document too; and every documented response of a
// REST operation is seen here, but for the few listed with the reason they are not.
func TestOpenAPIDescribesEveryResponse(t *testing.T) {
	doc := apitest.Load(t)
	ok := apitest.Want{}
	bad := apitest.Want{BadRequest: true}
	check := func(t *testing.T, f *fixture, want apitest.Want, wantStatus int, method, path, body string, header ...string) []byte {
		t.Helper()
		e := send(t, f, method, path, body, header...)
		if e.Status != wantStatus {
			t.Fatalf("%s %s: %d %s, want %d", method, path, e.Status, e.Body, wantStatus)
		}
		doc.Check(t, e, want)
		return e.Body
	}

	t.Run("authentication off", func(t *testing.T) {
		f := newFixtureWith(t, httpapi.Options{MaxBodyBytes: 1024, ListPageMax: 2}, nil)
		check(t, f, ok, 201, "POST", "/topics", `{"name":"orders"}`)
		check(t, f, ok, 201, "POST", "/topics", `{"name":"orders.eu:1","extra":"ignored"}`)
		check(t, f, ok, 409, "POST", "/topics", `{"name":"orders"}`)
		check(t, f, bad, 400, "POST", "/topics", `{"name":"bad name"}`)
		check(t, f, bad, 400, "POST", "/topics", `{}`)
		check(t, f, bad, 400, "POST", "/topics", `{"name":`)
		check(t, f, bad, 400, "POST", "/topics", `{"name":42}`)
		// Valid by the document (unknown fields are ignored), but over MaxBodyBytes.
		check(t, f, ok, 413, "POST", "/topics", `{"name":"big","pad":"`+strings.Repeat("a", 2000)+`"}`)
		check(t, f, ok, 201, "POST", "/topics", `{"name":"z"}`)

		// Three topics over pages of two: the first page has next and Link, the last has neither.
		for _, path := range []string{"/topics", "/stats"} {
			first := check(t, f, ok, 200, "GET", path, "")
			if !strings.Contains(string(first), `"next":"orders.eu:1"`) {
				t.Errorf("GET %s: no next cursor on a first page: %s", path, first)
			}
			last := check(t, f, ok, 200, "GET", path+"?after=orders.eu:1&limit=2", "")
			if strings.Contains(string(last), `"next"`) {
				t.Errorf("GET %s: next on the last page: %s", path, last)
			}
			check(t, f, bad, 400, "GET", path+"?limit=0", "")
			check(t, f, bad, 400, "GET", path+"?limit=x", "")
			check(t, f, bad, 400, "GET", path+"?after=bad%20name", "")
		}
		check(t, f, ok, 200, "GET", "/health", "")
		check(t, f, ok, 200, "DELETE", "/topics/orders", "")
		check(t, f, ok, 404, "DELETE", "/topics/orders", "")
		check(t, f, bad, 400, "DELETE", "/topics/bad%20name", "")
		check(t, f, ok, 200, "GET", "/livez", "")
		check(t, f, ok, 200, "GET", "/readyz", "")
		f.ready.Store(false)
		check(t, f, ok, 503, "GET", "/readyz", "")

		for _, path := range []string{"/openapi.json", "/asyncapi.json"} {
			body := check(t, f, ok, 200, "GET", path, "")
			want := api.OpenAPI
			if path == "/asyncapi.json" {
				want = api.AsyncAPI
			}
			if string(body) != string(want) {
				t.Errorf("GET %s does not serve the embedded document", path)
			}
		}
	})

	t.Run("authentication on", func(t *testing.T) {
		f := newAuthFixture(t).fixture
		creds := apitest.Want{Credentials: true}
		// The document's security is not checked here: these requests are refused for the
		// credential they lack or carry.
		check(t, f, ok, 401, "POST", "/topics", `{"name":"orders"}`)
		check(t, f, ok, 401, "POST", "/topics", `{"name":"orders"}`, "X-API-Key", readerKey)
		check(t, f, ok, 401, "DELETE", "/topics/existing", "", "X-API-Key", "wrong-key-0123456789")
		check(t, f, ok, 401, "GET", "/topics", "", "Authorization", "Bearer not.a.token")
		check(t, f, ok, 401, "GET", "/stats", "")
		check(t, f, ok, 401, "GET", "/health", "")
		token, err := auth.Mint([]byte(tokenKey), "ops", auth.Grant{Manage: true}, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		check(t, f, creds, 201, "POST", "/topics", `{"name":"orders"}`, "X-API-Key", adminKey)
		check(t, f, creds, 200, "GET", "/topics", "", "Authorization", "Bearer "+token)
		check(t, f, creds, 200, "GET", "/stats", "", "X-API-Key", readerKey)
		check(t, f, creds, 200, "GET", "/health", "", "X-API-Key", readerKey)
		check(t, f, creds, 200, "DELETE", "/topics/orders", "", "Authorization", "Bearer "+token)
		// Open even with authentication on: the probes and the documents.
		for _, path := range []string{"/livez", "/readyz", "/openapi.json", "/asyncapi.json"} {
			check(t, f, ok, 200, "GET", path, "")
		}
	})

	t.Run("topic cap", func(t *testing.T) {
		f := newFixtureWith(t, httpapi.Options{}, capped)
		check(t, f, ok, 201, "POST", "/topics", `{"name":"one"}`)
		check(t, f, ok, 429, "POST", "/topics", `{"name":"two"}`)
	})

	for _, c := range []struct {
		name   string
		err    error
		status int
	}{
		{"engine unreachable", domain.Errorf(domain.KindUnavailable, "the topic store (test) is unreachable"), 503},
		{"unexpected failure", errors.New("boom"), 500},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixtureWith(t, httpapi.Options{}, func(a service.API) service.API { return failing{a, c.err} })
			check(t, f, ok, c.status, "POST", "/topics", `{"name":"orders"}`)
			check(t, f, ok, c.status, "DELETE", "/topics/orders", "")
			check(t, f, ok, c.status, "GET", "/topics", "")
			check(t, f, ok, c.status, "GET", "/stats", "")
			check(t, f, ok, c.status, "GET", "/health", "")
		})
	}

	// /ws is the WebSocket server's (a stand-in here): its answers are checked with the real one
	// in internal/app. The rest answer 500 only when a handler panics, which the recoverer turns
	// into the same body as an INTERNAL error above.
	rest := func(path string) bool { return path != "/ws" }
	unprovoked := map[string]string{
		"GET /livez 500":         "only a panic in the handler, which writes a constant",
		"GET /readyz 500":        "only a panic in the handler",
		"GET /openapi.json 500":  "only a panic in the handler, which writes embedded bytes",
		"GET /asyncapi.json 500": "only a panic in the handler, which writes embedded bytes",
	}
	if t.Failed() {
		return
	}
	if unseen := doc.Unseen(rest, unprovoked); len(unseen) > 0 {
		t.Errorf("documented responses no test provoked (provoke them, or say in unprovoked why not):\n  %s", strings.Join(unseen, "\n  "))
	}
}
