package wire

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/pubsubd/pubsub/internal/domain"
)

func TestErrorTable(t *testing.T) {
	tests := []struct {
		kind       domain.Kind
		status     int
		rest, ws   string
		publicText bool // whether the domain message reaches the client
	}{
		{domain.KindInvalid, http.StatusBadRequest, CodeBadRequest, CodeBadRequest, true},
		{domain.KindUnauthorized, http.StatusUnauthorized, CodeUnauthorized, CodeUnauthorized, true},
		{domain.KindNotFound, http.StatusNotFound, CodeTopicNotFound, CodeTopicNotFound, true},
		{domain.KindExists, http.StatusConflict, CodeTopicExists, CodeTopicExists, true},
		{domain.KindTooLarge, http.StatusRequestEntityTooLarge, CodePayloadTooLarge, CodeBadRequest, true},
		// PROTOCOL.md: shutting down is UNAVAILABLE over REST and INTERNAL over the WebSocket.
		{domain.KindUnavailable, http.StatusServiceUnavailable, CodeUnavailable, CodeInternal, true},
		{domain.KindSlowConsumer, http.StatusServiceUnavailable, CodeSlowConsumer, CodeSlowConsumer, true},
		{domain.KindRateLimited, http.StatusTooManyRequests, CodeRateLimited, CodeRateLimited, true},
		{domain.KindInternal, http.StatusInternalServerError, CodeInternal, CodeInternal, false},
	}
	covered := map[domain.Kind]bool{}
	for _, tt := range tests {
		covered[tt.kind] = true
		t.Run(tt.rest, func(t *testing.T) {
			const msg = `topic "orders": something`
			for _, err := range []error{
				domain.Errorf(tt.kind, msg),
				fmt.Errorf("service: %w", domain.Errorf(tt.kind, msg)),
				errors.Join(context.Canceled, domain.Errorf(tt.kind, msg)),
			} {
				wantMsg := "internal error"
				if tt.publicText {
					wantMsg = msg // the domain's words, not the wrapper's
				}
				status, code, text := HTTPError(err)
				if status != tt.status || code != tt.rest || text != wantMsg {
					t.Fatalf("HTTPError(%v) = %d %s %q, want %d %s %q", err, status, code, text, tt.status, tt.rest, wantMsg)
				}
				code, text = WSError(err)
				if code != tt.ws || text != wantMsg || CodeOf(err) != tt.ws {
					t.Fatalf("WSError(%v) = %s %q, want %s %q", err, code, text, tt.ws, wantMsg)
				}
				if !slices.Contains(Codes, tt.rest) || !slices.Contains(Codes, tt.ws) {
					t.Fatalf("Codes lacks %s or %s: metrics would not pre-create it", tt.rest, tt.ws)
				}
			}
		})
	}
	// A new Kind must get a row here and in the table.
	for k := domain.Kind(0); k <= domain.KindRateLimited; k++ {
		if !covered[k] {
			t.Errorf("kind %d has no expectation in this test", k)
		}
		if _, ok := errorTable[k]; !ok {
			t.Errorf("kind %d is missing from errorTable", k)
		}
	}
}

// Unclassified failures never leak their text to clients.
func TestUnclassifiedErrorsAreInternal(t *testing.T) {
	tests := []struct {
		name string
		err  error
	}{
		{"plain", errors.New("dial tcp 10.0.0.7:6379: connection refused")},
		{"wrapped plain", fmt.Errorf("publish: %w", errors.New("secret detail"))},
		{"context", context.DeadlineExceeded},
		{"classified internal", domain.Errorf(domain.KindInternal, "invariant broken at %p", &struct{}{})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, code, msg := HTTPError(tt.err)
			if status != http.StatusInternalServerError || code != CodeInternal || msg != "internal error" {
				t.Fatalf("HTTPError = %d %s %q", status, code, msg)
			}
			if code, msg := WSError(tt.err); code != CodeInternal || msg != "internal error" {
				t.Fatalf("WSError = %s %q", code, msg)
			}
		})
	}
}
