package httpapi

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/transport/wire"
	"github.com/pubsubd/pubsub/telemetry"
)

// Pagination of GET /topics and GET /stats (an extension of the contract): ?limit=N&after=NAME.
// Topics are in name order; a page holds at most limit of them (default and most: ListPageMax),
// starting after the name after. When more follow, the body's "next" and a Link header (rel=next)
// give the cursor. A client that sends neither parameter to a service with no more than
// ListPageMax topics gets the contract's body byte for byte; above that, the first page and next:
// no response grows with the number of topics.

// page is one request's window on the name-sorted topics.
type page struct {
	after string // the first entry is the first name above it; "" from the start
	limit int
}

// parsePage reads limit and after. A limit above the most is lowered to it, not refused: asking
// for everything is what an old client does.
func (h *handlers) parsePage(r *http.Request) (page, error) {
	q := r.URL.Query()
	pg := page{limit: h.pageMax}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return page{}, domain.Errorf(domain.KindInvalid, "limit must be a positive integer (at most %d)", h.pageMax)
		}
		pg.limit = min(n, h.pageMax)
	}
	if v := q.Get("after"); v != "" {
		name, err := domain.ParseTopicName(v)
		if err != nil {
			return page{}, domain.Errorf(domain.KindInvalid, "after must be a topic name: %v", err)
		}
		pg.after = string(name)
	}
	return pg, nil
}

// of returns the page's part of ts (sorted by name, as the service returns them) and the cursor of
// the next page, "" when this one is the last.
func (pg page) of(ts []domain.TopicStats) ([]domain.TopicStats, string) {
	i := 0
	if pg.after != "" {
		i, _ = slices.BinarySearchFunc(ts, pg.after, func(t domain.TopicStats, name string) int {
			return strings.Compare(string(t.Name), name)
		})
		if i < len(ts) && string(ts[i].Name) == pg.after {
			i++
		}
	}
	ts = ts[i:]
	if len(ts) <= pg.limit {
		return ts, ""
	}
	ts = ts[:pg.limit]
	return ts, string(ts[len(ts)-1].Name)
}

// link sets the Link header to the next page, if there is one (RFC 8288).
func (pg page) link(w http.ResponseWriter, r *http.Request, next string) {
	if next == "" {
		return
	}
	q := url.Values{"after": {next}, "limit": {strconv.Itoa(pg.limit)}}
	w.Header().Set("Link", "<"+r.URL.Path+"?"+q.Encode()+`>; rel="next"`)
}

// bodyTooLarge refuses a request body above MaxBodyBytes: 413 PAYLOAD_TOO_LARGE, counted as a
// limit rejection and logged at a bounded rate.
func (h *handlers) bodyTooLarge(w http.ResponseWriter, r *http.Request) {
	status, code, msg := wire.HTTPError(domain.Errorf(domain.KindTooLarge, "request body is larger than %d bytes", h.maxBody))
	h.tel.Metrics.LimitRejectedFor(telemetry.LimitBodySize, "", r.RemoteAddr)
	h.tel.Metrics.Error(code)
	h.tel.Refusals.Warn(r.Context(), "http request refused: body too large", "method", r.Method, "path", r.URL.Path,
		"limit", h.maxBody, "remote", r.RemoteAddr)
	wire.WriteError(w, status, code, msg)
}
