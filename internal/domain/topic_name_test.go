package domain

import (
	"errors"
	"strings"
	"testing"
)

func TestParseTopicName(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		valid bool
	}{
		{"simple", "orders", true},
		{"every allowed class", "Orders.v1_eu-west:2", true},
		{"single character", "a", true},
		{"only punctuation", ".-_:", true},
		{"digits only", "0123456789", true},
		{"dot dot is not a path here", "..", true},
		{"255 characters", strings.Repeat("a", 255), true},
		{"empty", "", false},
		{"256 characters", strings.Repeat("a", 256), false},
		{"space inside", "my topic", false},
		{"leading space", " orders", false},
		{"trailing newline", "orders\n", false},
		{"tab", "a\tb", false},
		{"slash", "a/b", false},
		{"backslash", `a\b`, false},
		{"NUL", "a\x00b", false},
		{"DEL", "a\x7fb", false},
		{"percent escape", "a%2Fb", false},
		{"question mark", "a?b", false},
		{"hash", "a#b", false},
		{"star", "orders.*", false},
		{"unicode letter", "caf\u00e9", false},
		{"fullwidth digit", "\uff11", false},
		{"emoji", "\U0001F600", false},
		{"invalid UTF-8", "a\xffb", false},
		// 128 two-byte runes are 256 bytes: rejected for the characters, whatever the length rule says.
		{"unicode within 255 runes", strings.Repeat("\u00e9", 128), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTopicName(tt.in)
			if !tt.valid {
				if err == nil {
					t.Fatalf("ParseTopicName(%q) = %q, want an error", tt.in, got)
				}
				if KindOf(err) != KindInvalid || !errors.Is(err, ErrInvalid) {
					t.Fatalf("ParseTopicName(%q) error %v has kind %d, want KindInvalid", tt.in, err, KindOf(err))
				}
				if got != "" {
					t.Fatalf("ParseTopicName(%q) returned %q with its error, want the zero name", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTopicName(%q): %v", tt.in, err)
			}
			if got.String() != tt.in {
				t.Fatalf("ParseTopicName(%q) = %q", tt.in, got)
			}
		})
	}
}

// The error message is shown to clients, so it must say what is wrong without echoing a huge name.
func TestParseTopicNameMessages(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "topic is required"},
		{"too long", strings.Repeat("x", 300), "300 characters long; the limit is 255"},
		{"bad character", "a b", `topic name "a b" has a character outside A-Z a-z 0-9 . _ - :`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseTopicName(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseTopicName(%q) error = %v, want it to contain %q", tt.in, err, tt.want)
			}
			if len(err.Error()) > 200 {
				t.Fatalf("message is %d bytes long; it should not echo the whole name", len(err.Error()))
			}
		})
	}
}
