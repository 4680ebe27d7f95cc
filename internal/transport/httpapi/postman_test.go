package httpapi_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pubsubd/pubsub/internal/transport/httpapi"
	"github.com/pubsubd/pubsub/internal/transport/wire"
)

// collectionFile is the Postman collection that CI runs with newman against a live server
// (loadtest/postman, built by its build.js).
var collectionFile = filepath.Join("..", "..", "..", "loadtest", "postman", "pubsub.postman_collection.json")

// postmanItem is the part of a Postman v2.1 item (a folder or a request) these tests read.
type postmanItem struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Item        []postmanItem   `json:"item"`
	Request     *postmanRequest `json:"request"`
}

type postmanRequest struct {
	Method string          `json:"method"`
	URL    json.RawMessage `json:"url"` // an object with raw, or a string
}

// raw returns the request's URL as written, variables and all.
func (r *postmanRequest) raw(t *testing.T) string {
	var s string
	if json.Unmarshal(r.URL, &s) == nil {
		return s
	}
	var u struct {
		Raw string `json:"raw"`
	}
	if err := json.Unmarshal(r.URL, &u); err != nil {
		t.Fatalf("url %s: %v", r.URL, err)
	}
	return u.Raw
}

func loadCollection(t *testing.T) postmanItem {
	t.Helper()
	b, err := os.ReadFile(collectionFile)
	if err != nil {
		t.Fatal(err)
	}
	var c postmanItem
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("%s: %v", collectionFile, err)
	}
	return c
}

// walk calls f for every request of items, folders included, depth first.
func walk(items []postmanItem, f func(postmanItem)) {
	for _, it := range items {
		if it.Request != nil {
			f(it)
		}
		walk(it.Item, f)
	}
}

// unrouted are the collection's requests that no route serves on purpose: they test the answers
// to a path and a method the API does not have.
var unrouted = map[string]bool{"GET /nope": true, "PUT /topics": true}

// TestPostmanCollectionCoversEveryRoute: every route the router registers is called by at least
// one request of the Postman collection, and every request calls a route (but the unrouted ones
// above), so a route added without a request in the collection, or a request left behind by a
// removed route, fails here before CI runs newman.
func TestPostmanCollectionCoversEveryRoute(t *testing.T) {
	c := loadCollection(t)
	routes := httpapi.Routes()
	// A path template's {name} matches one segment, as gorilla/mux matches it.
	match := make([]*regexp.Regexp, len(routes))
	for i, r := range routes {
		match[i] = regexp.MustCompile("^" + regexp.MustCompile(`\\\{[a-z]+\\\}`).ReplaceAllString(regexp.QuoteMeta(r.Path), `[^/]+`) + "$")
	}
	covered := make([]bool, len(routes))
	var followed int
	walk(c.Item, func(it postmanItem) {
		raw := it.Request.raw(t)
		p, ok := strings.CutPrefix(raw, "{{baseUrl}}")
		if !ok {
			t.Errorf("%q: its URL %s does not start with {{baseUrl}}", it.Name, raw)
			return
		}
		if regexp.MustCompile(`^\{\{[A-Za-z]+\}\}$`).MatchString(p) {
			followed++ // a URL a Link header gave: which route it is shows only at run time
			return
		}
		p, _, _ = strings.Cut(p, "?")
		hit := false
		for i, r := range routes {
			if r.Method == it.Request.Method && match[i].MatchString(p) {
				covered[i], hit = true, true
			}
		}
		if !hit && !unrouted[it.Request.Method+" "+p] {
			t.Errorf("%q calls %s %s, which the router does not serve", it.Name, it.Request.Method, p)
		}
	})
	for i, r := range routes {
		if !covered[i] {
			t.Errorf("the router serves %s %s and the Postman collection never calls it: add a request to loadtest/postman/build.js", r.Method, r.Path)
		}
	}
	if followed == 0 {
		t.Error("no request follows a Link header")
	}
}

// TestPostmanCollectionDocumentsEveryFrame: the "WebSocket /ws" folder shows every client and
// server frame type and info notice the wire package defines by example, and names every error
// code.
func TestPostmanCollectionDocumentsEveryFrame(t *testing.T) {
	c := loadCollection(t)
	i := slices.IndexFunc(c.Item, func(it postmanItem) bool { return it.Name == "WebSocket /ws" })
	if i < 0 {
		t.Fatal(`the collection has no "WebSocket /ws" folder`)
	}
	var text strings.Builder
	var docs func(postmanItem)
	docs = func(it postmanItem) {
		text.WriteString(it.Description + "\n")
		for _, sub := range it.Item {
			docs(sub)
		}
	}
	docs(c.Item[i])
	doc := text.String()
	var want []string
	for _, typ := range slices.Concat(wire.ClientTypes, wire.ServerTypes) {
		if typ != wire.TypeInvalid { // the metric label of a frame that has no valid type
			want = append(want, `"type":"`+typ+`"`)
		}
	}
	for _, code := range wire.Codes {
		want = append(want, "`"+code+"`") // a row of its table (some never come over WebSocket)
	}
	for _, msg := range []string{wire.InfoPing, wire.InfoTopicDeleted, wire.InfoSubscriptionReplaced,
		wire.InfoUnsubscribed, wire.InfoServerShutdown, wire.InfoGap, wire.InfoDiscontinuity} {
		want = append(want, `"msg":"`+msg+`"`)
	}
	for _, w := range want {
		if !strings.Contains(doc, w) {
			t.Errorf("the WebSocket folder has no example with %s", w)
		}
	}
}
