package httpapi_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/service"
)

// unreachable answers the reads a shared engine serves from its store as that store being down.
type unreachable struct{ service.API }

var errStoreDown = domain.Errorf(domain.KindUnavailable, "the topic store (test) is unreachable: connection refused")

func (unreachable) Health(context.Context) (service.Health, error) {
	return service.Health{}, errStoreDown
}
func (unreachable) Stats(context.Context) ([]domain.TopicStats, error)      { return nil, errStoreDown }
func (unreachable) ListTopics(context.Context) ([]domain.TopicStats, error) { return nil, errStoreDown }

// TestEngineUnreachable: the cluster-wide reads fail visibly with 503 UNAVAILABLE naming the
// engine, never with numbers that are not the cluster's; /livez is unaffected.
func TestEngineUnreachable(t *testing.T) {
	f := newFixture(t, func(a service.API) service.API { return unreachable{a} })
	for _, path := range []string{"/health", "/stats", "/topics"} {
		code, _, body := f.do(t, "GET", path, "")
		var got struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("GET %s: %s: %v", path, body, err)
		}
		if code != 503 || got.Error.Code != "UNAVAILABLE" || got.Error.Message != errStoreDown.Error() {
			t.Fatalf("GET %s: %d %s, want 503 UNAVAILABLE naming the store", path, code, body)
		}
	}
	if code, _, body := f.do(t, "GET", "/livez", ""); code != 200 {
		t.Fatalf("GET /livez: %d %s", code, body)
	}
}
