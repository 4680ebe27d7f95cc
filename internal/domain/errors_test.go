package domain

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestKindOf(t *testing.T) {
	notFound := Errorf(KindNotFound, "topic %q does not exist", "x")
	tests := []struct {
		name string
		err  error
		want Kind
	}{
		{"nil", nil, KindInternal},
		{"plain error", errors.New("boom"), KindInternal},
		{"context error", context.Canceled, KindInternal},
		{"classified", notFound, KindNotFound},
		{"sentinel", ErrUnavailable, KindUnavailable},
		{"wrapped once", fmt.Errorf("publish: %w", notFound), KindNotFound},
		{"wrapped twice", fmt.Errorf("a: %w", fmt.Errorf("b: %w", Errorf(KindTooLarge, "big"))), KindTooLarge},
		{"joined after a plain error", errors.Join(errors.New("first"), notFound), KindNotFound},
		{"two %w verbs", fmt.Errorf("%w; %w", context.DeadlineExceeded, ErrExists), KindExists},
		{"wrapped with %v loses the kind", fmt.Errorf("x: %v", notFound), KindInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := KindOf(tt.err); got != tt.want {
				t.Fatalf("KindOf(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

func TestErrorsIs(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		target error
		want   bool
	}{
		{"same kind, any message", Errorf(KindNotFound, "topic %q does not exist", "a"), ErrNotFound, true},
		{"wrapped", fmt.Errorf("op: %w", Errorf(KindInvalid, "bad")), ErrInvalid, true},
		{"sentinel itself", ErrSlowConsumer, ErrSlowConsumer, true},
		{"other kind", Errorf(KindNotFound, "x"), ErrExists, false},
		{"two messages never match", Errorf(KindInvalid, "a"), Errorf(KindInvalid, "a"), false},
		{"plain error", errors.New("x"), ErrInvalid, false},
		{"sentinel against a plain error", ErrTooLarge, errors.New("x"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errors.Is(tt.err, tt.target); got != tt.want {
				t.Fatalf("errors.Is(%v, %v) = %v, want %v", tt.err, tt.target, got, tt.want)
			}
		})
	}
}

func TestErrorfMessage(t *testing.T) {
	err := Errorf(KindExists, "topic %q already exists", "orders")
	if err.Error() != `topic "orders" already exists` {
		t.Fatalf("Error() = %q", err.Error())
	}
	var de *Error
	if !errors.As(fmt.Errorf("w: %w", err), &de) || de.Kind != KindExists {
		t.Fatalf("errors.As did not find the *Error: %+v", de)
	}
}
