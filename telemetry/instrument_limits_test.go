package telemetry_test

import (
	"context"
	"errors"
	"testing"

	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/service"
	"github.com/pubsubd/pubsub/telemetry"
	"github.com/pubsubd/pubsub/telemetry/telemetrytest"
)

// refusingAPI is a service whose operations fail with err.
type refusingAPI struct {
	service.API
	err error
}

func (a refusingAPI) CreateTopic(context.Context, domain.TopicName) error { return a.err }
func (a refusingAPI) Subscribe(context.Context, service.SubscribeRequest) (domain.SubscribeResult, error) {
	return domain.SubscribeResult{}, a.err
}
func (a refusingAPI) Publish(context.Context, service.PublishRequest) (*domain.Event, error) {
	return nil, a.err
}

// The decorator counts an error that names a limit, once per refusal, by that limit; an error
// that names none is not a limit rejection.
func TestInstrumentCountsLimitRefusals(t *testing.T) {
	tel := setup(t, telemetry.Config{})
	count := func(limit string) float64 {
		t.Helper()
		s, err := telemetrytest.Series(tel.Metrics.Registry, "pubsub_limit_rejections_total", map[string]string{"limit": limit})
		if err != nil || s == nil {
			t.Fatalf("series for %s: %v", limit, err)
		}
		return telemetrytest.Value(s)
	}
	codeOf := func(error) string { return "RATE_LIMITED" }
	ctx := context.Background()
	tests := []struct {
		limit string
		call  func(api service.API) error
	}{
		{domain.LimitTopics, func(api service.API) error { return api.CreateTopic(ctx, "t") }},
		{domain.LimitSubscriptions, func(api service.API) error {
			_, err := api.Subscribe(ctx, service.SubscribeRequest{Topic: "t", ClientID: "c"})
			return err
		}},
		{domain.LimitEventMemory, func(api service.API) error {
			_, err := api.Publish(ctx, service.PublishRequest{Topic: "t"})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.limit, func(t *testing.T) {
			refusal := domain.LimitErrorf(domain.KindRateLimited, tt.limit, "refused")
			api := tel.Instrument(refusingAPI{err: fmtWrap(refusal)}, codeOf)
			before := count(tt.limit)
			if err := tt.call(api); !errors.Is(err, refusal) {
				t.Fatalf("error = %v, want the refusal passed through", err)
			}
			if got := count(tt.limit); got != before+1 {
				t.Fatalf("limit_rejections{%s} = %v, want %v", tt.limit, got, before+1)
			}
			// A failure without a limit is not counted as one.
			plain := tel.Instrument(refusingAPI{err: domain.Errorf(domain.KindNotFound, "no")}, codeOf)
			_ = tt.call(plain)
			if got := count(tt.limit); got != before+1 {
				t.Fatalf("a failure without a limit moved limit_rejections{%s} to %v", tt.limit, got)
			}
		})
	}
}

// fmtWrap wraps err as a broker adapter might, so the test shows LimitOf looks through wrapping.
func fmtWrap(err error) error { return errors.Join(errors.New("broker"), err) }
