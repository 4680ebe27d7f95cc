package httpapi_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/pubsubd/pubsub/internal/transport/httpapi"
	"github.com/pubsubd/pubsub/internal/transport/wire"
)

// newLimitsFixture serves the router with the limits in o.
func newLimitsFixture(t *testing.T, o httpapi.Options) *fixture {
	t.Helper()
	return newFixtureWith(t, o, nil)
}

func errorCode(t *testing.T, raw []byte) string {
	t.Helper()
	var body wire.ErrorBody
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("not the contract's error body: %q", raw)
	}
	return body.Error.Code
}

// TestBodyLimit: a REST body above PUBSUB_MAX_BODY_BYTES is 413 PAYLOAD_TOO_LARGE, counted,
// whether its length is declared (refused unread) or not (cut while reading); the limit is the
// configured one, and a body within it is served.
func TestBodyLimit(t *testing.T) {
	f := newLimitsFixture(t, httpapi.Options{MaxBodyBytes: 1024})
	big := `{"name":"` + strings.Repeat("a", 2000) + `"}`
	status, _, raw := f.do(t, http.MethodPost, "/topics", big)
	if status != http.StatusRequestEntityTooLarge || errorCode(t, raw) != wire.CodePayloadTooLarge {
		t.Fatalf("declared big body: %d %s", status, raw)
	}
	// Chunked: no Content-Length, so the limit is met while reading.
	req, _ := http.NewRequest(http.MethodPost, f.url+"/topics", io.MultiReader(strings.NewReader(big)))
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || errorCode(t, raw) != wire.CodePayloadTooLarge {
		t.Fatalf("chunked big body: %d %s", resp.StatusCode, raw)
	}
	f.expectCounter(t, "pubsub_limit_rejections_total", map[string]string{"limit": "body_size"}, 2)
	if status, _, raw := f.do(t, http.MethodPost, "/topics", `{"name":"ok"}`); status != http.StatusCreated {
		t.Fatalf("small body: %d %s", status, raw)
	}
	if !strings.Contains(f.logs.String(), "body too large") {
		t.Error("refusal not logged")
	}
}

func createTopics(t *testing.T, f *fixture, n int) []string {
	t.Helper()
	names := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("t%04d", i)
		if status, _, raw := f.do(t, http.MethodPost, "/topics", `{"name":"`+names[i]+`"}`); status != http.StatusCreated {
			t.Fatalf("create: %d %s", status, raw)
		}
	}
	return names
}

// TestListsWithinPageAreTheContractShape: without parameters, a service with no more topics than a
// page answers GET /topics and GET /stats byte for byte as the contract shows, with no Link.
func TestListsWithinPageAreTheContractShape(t *testing.T) {
	f := newLimitsFixture(t, httpapi.Options{ListPageMax: 3})
	createTopics(t, f, 3)
	status, h, raw := f.do(t, http.MethodGet, "/topics", "")
	if want := `{"topics":[{"name":"t0000","subscribers":0},{"name":"t0001","subscribers":0},{"name":"t0002","subscribers":0}]}` + "\n"; status != http.StatusOK || string(raw) != want || h.Get("Link") != "" {
		t.Errorf("GET /topics: %d %q (Link %q), want %q", status, raw, h.Get("Link"), want)
	}
	status, h, raw = f.do(t, http.MethodGet, "/stats", "")
	if want := `{"topics":{"t0000":{"messages":0,"subscribers":0},"t0001":{"messages":0,"subscribers":0},"t0002":{"messages":0,"subscribers":0}}}` + "\n"; status != http.StatusOK || string(raw) != want || h.Get("Link") != "" {
		t.Errorf("GET /stats: %d %q (Link %q), want %q", status, raw, h.Get("Link"), want)
	}
}

// TestListsArePaged: past a page, GET /topics and GET /stats give at most ListPageMax entries and a
// next cursor (body and Link); following it visits every topic once, in order; limit is lowered to
// the most, and bad parameters are BAD_REQUEST.
func TestListsArePaged(t *testing.T) {
	f := newLimitsFixture(t, httpapi.Options{ListPageMax: 4})
	names := createTopics(t, f, 10)
	for _, path := range []string{"/topics", "/stats"} {
		t.Run(path, func(t *testing.T) {
			var seen []string
			url := path
			for pages := 0; ; pages++ {
				if pages > 10 {
					t.Fatal("paging does not end")
				}
				status, h, raw := f.do(t, http.MethodGet, url, "")
				if status != http.StatusOK {
					t.Fatalf("GET %s: %d %s", url, status, raw)
				}
				got, next := decodePage(t, path, raw)
				if len(got) > 4 {
					t.Fatalf("GET %s: %d entries, want at most 4", url, len(got))
				}
				seen = append(seen, got...)
				if next == "" {
					if h.Get("Link") != "" {
						t.Errorf("last page has Link %q", h.Get("Link"))
					}
					break
				}
				link := h.Get("Link")
				if want := "<" + path + "?after=" + next + "&limit=4>; rel=\"next\""; link != want {
					t.Fatalf("Link %q, want %q", link, want)
				}
				url = path + "?after=" + next
			}
			if strings.Join(seen, ",") != strings.Join(names, ",") {
				t.Errorf("pages visited %v, want %v", seen, names)
			}
		})
	}
	if _, _, raw := f.do(t, http.MethodGet, "/topics?limit=2&after=t0007", ""); !strings.HasPrefix(string(raw), `{"topics":[{"name":"t0008","subscribers":0},{"name":"t0009","subscribers":0}]}`) {
		t.Errorf("limit=2 after t0007: %s", raw)
	}
	if _, _, raw := f.do(t, http.MethodGet, "/topics?limit=100", ""); !strings.Contains(string(raw), `"next":"t0003"`) {
		t.Errorf("limit above the most was not lowered: %s", raw)
	}
	if _, _, raw := f.do(t, http.MethodGet, "/topics?after=t0003x", ""); !strings.Contains(string(raw), `"t0004"`) {
		t.Errorf("after a name that is not a topic: %s", raw)
	}
	for _, q := range []string{"limit=0", "limit=x", "limit=-1", "after=bad%20name"} {
		if status, _, raw := f.do(t, http.MethodGet, "/topics?"+q, ""); status != http.StatusBadRequest || errorCode(t, raw) != wire.CodeBadRequest {
			t.Errorf("?%s: %d %s, want 400", q, status, raw)
		}
	}
}

// decodePage returns the names of a page of /topics or /stats, in order, and its next cursor.
func decodePage(t *testing.T, path string, raw []byte) ([]string, string) {
	t.Helper()
	var names []string
	if path == "/topics" {
		var l wire.TopicList
		if err := json.Unmarshal(raw, &l); err != nil {
			t.Fatal(err)
		}
		for _, it := range l.Topics {
			names = append(names, it.Name)
		}
		return names, l.Next
	}
	var s wire.Stats
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	for name := range s.Topics {
		names = append(names, name)
	}
	slices.Sort(names)
	return names, s.Next
}
