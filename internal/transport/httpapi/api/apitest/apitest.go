// Package apitest holds tests to the API descriptions of package api: it checks a real exchange
// with the service (the request sent, the response it got) against openapi.json with
// kin-openapi's openapi3filter, and counts which documented responses the tests have seen, so a
// test can say which ones it never provoked. It is test support: only _test files import it.
package apitest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/pubsubd/pubsub/internal/transport/httpapi/api"
)

// OpenAPI is openapi.json, loaded and validated, with the responses checked so far. Safe for
// concurrent use: mu guards seen.
type OpenAPI struct {
	Doc    *openapi3.T
	router routers.Router

	mu   sync.Mutex
	seen map[string]bool // "METHOD /path/template STATUS"
}

// Load parses openapi.json, fails t unless kin-openapi finds it valid, and returns it.
func Load(t testing.TB) *OpenAPI {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(api.OpenAPI)
	if err != nil {
		t.Fatalf("openapi.json does not load: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI document: %v", err)
	}
	// The document's one server is "/", the service that serves it: the router matches paths on
	// whatever host the test server has.
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatalf("routing openapi.json: %v", err)
	}
	return &OpenAPI{Doc: doc, router: router, seen: make(map[string]bool)}
}

// Exchange is one request to the service and the response it gave.
type Exchange struct {
	Request     *http.Request // as sent (its body already read: see RequestBody)
	RequestBody []byte
	Status      int
	Header      http.Header
	Body        []byte
}

// Want says what a check expects of the request; the response must always match the document.
type Want struct {
	// BadRequest: the request breaks the document on purpose (a bad limit, an invalid name), and
	// the check fails unless openapi3filter refuses it too: the document and the service agree
	// on what is invalid.
	BadRequest bool
	// Credentials: the request carries a credential and the document's security must accept it.
	// Without it (authentication off) the request's security is not checked.
	Credentials bool
}

// Check validates e against the document: the request (unless w.BadRequest, when it must be
// refused) and the response, which must be a documented status of the operation, with the
// documented headers and a body of the documented schema. It records the response as seen.
func (o *OpenAPI) Check(t testing.TB, e Exchange, w Want) {
	t.Helper()
	req := e.Request.Clone(context.Background())
	req.Body = io.NopCloser(bytes.NewReader(e.RequestBody))
	// The router matches the document's server ("/") against the request's URL: it is given
	// the path and query only.
	req.URL.Scheme, req.URL.Host, req.Host = "", "", ""
	route, params, err := o.router.FindRoute(req)
	if err != nil {
		t.Errorf("%s %s: not in openapi.json: %v", e.Request.Method, e.Request.URL.Path, err)
		return
	}
	authn := openapi3filter.NoopAuthenticationFunc
	if w.Credentials {
		authn = presentCredential
	}
	in := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{MultiError: true, AuthenticationFunc: authn},
	}
	reqErr := openapi3filter.ValidateRequest(context.Background(), in)
	switch {
	case w.BadRequest && reqErr == nil:
		t.Errorf("%s %s: the service refused it with %d, but openapi.json allows the request", req.Method, req.URL, e.Status)
	case !w.BadRequest && reqErr != nil:
		t.Errorf("%s %s: the request breaks openapi.json: %v", req.Method, req.URL, reqErr)
	}
	// The response is checked against the operation whatever the request was.
	in.Options = &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}
	err = openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 e.Status,
		Header:                 e.Header,
		Body:                   io.NopCloser(bytes.NewReader(e.Body)),
		Options:                in.Options,
	})
	if err != nil {
		t.Errorf("%s %s: response %d breaks openapi.json: %v\nbody: %s", req.Method, req.URL, e.Status, err, clip(e.Body))
		return
	}
	o.mu.Lock()
	o.seen[key(route.Method, route.Path, strconv.Itoa(e.Status))] = true
	o.mu.Unlock()
}

// Unseen returns every documented response ("METHOD /path STATUS") of the operations whose paths
// pass only, that no Check has seen, less those in except (with the reason each is not
// provoked, for the reader).
func (o *OpenAPI) Unseen(only func(path string) bool, except map[string]string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for path, item := range o.Doc.Paths.Map() {
		if !only(path) {
			continue
		}
		for method, op := range item.Operations() {
			for status := range op.Responses.Map() {
				k := key(method, path, status)
				if _, ok := except[k]; !ok && !o.seen[k] {
					out = append(out, k)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// Operations returns "METHOD /path" of every operation in the document, sorted.
func (o *OpenAPI) Operations() []string {
	var out []string
	for path, item := range o.Doc.Paths.Map() {
		for method := range item.Operations() {
			out = append(out, method+" "+path)
		}
	}
	slices.Sort(out)
	return out
}

func key(method, path, status string) string {
	return strings.ToUpper(method) + " " + path + " " + status
}

// presentCredential accepts a request that carries the credential a security scheme names. The
// service itself decides whether the credential is good; the document says only where it goes.
func presentCredential(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	s := in.SecurityScheme
	h := in.RequestValidationInput.Request.Header
	switch {
	case s.Type == "apiKey" && s.In == "header":
		v := h.Get(s.Name)
		if s.Name == "Sec-WebSocket-Protocol" && !strings.Contains(v, "pubsub.token.") {
			return fmt.Errorf("no token among the subprotocols %q", v)
		}
		if v == "" {
			return fmt.Errorf("no %s header", s.Name)
		}
		return nil
	case s.Type == "http" && strings.EqualFold(s.Scheme, "bearer"):
		if scheme, _, ok := strings.Cut(h.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
			return nil
		}
		return fmt.Errorf("no Authorization: Bearer header")
	}
	return fmt.Errorf("security scheme %q of type %q is not known to apitest", in.SecuritySchemeName, s.Type)
}

func clip(b []byte) string {
	if len(b) > 512 {
		return string(b[:512]) + "…"
	}
	return string(b)
}
