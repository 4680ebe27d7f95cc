package domain

import (
	"errors"
	"testing"
)

// holder is a connection acting for a principal.
type holder struct {
	countWaker
	principal string
}

func (h *holder) Principal() string { return h.principal }

// TestClientIDOwnership: a client id belongs to the principal that subscribed it. Another
// connection of that principal may take it over or end it (its holder is then told why); a
// connection of another principal may do neither.
func TestClientIDOwnership(t *testing.T) {
	tests := []struct {
		name      string
		by        Waker // the second connection
		unsub     bool  // it unsubscribes instead of subscribing
		wantErr   bool
		wantEnded EndReason // the first connection's subscription afterwards
	}{
		{"same principal takes over", &holder{principal: "alice"}, false, false, Replaced},
		{"same principal unsubscribes", &holder{principal: "alice"}, true, false, UnsubscribedElsewhere},
		{"other principal may not take over", &holder{principal: "mallory"}, false, true, Live},
		{"other principal may not unsubscribe", &holder{principal: "mallory"}, true, true, Live},
		{"anonymous may not take over", &countWaker{}, false, true, Live},
		{"anonymous may not unsubscribe", nil, true, true, Live},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, top := newTestTopic(t, TopicConfig{HistorySize: 10, QueueSize: 10})
			first := &holder{principal: "alice"}
			s := subscribe(t, top, "c1", first, 0).Sub
			if s.Principal != "alice" {
				t.Fatalf("subscription principal %q, want alice", s.Principal)
			}
			s.Release()
			var err error
			if tt.unsub {
				_, err = top.Unsubscribe("c1", tt.by)
			} else {
				_, err = top.Subscribe(SubscribeSpec{ClientID: "c1", Owner: tt.by})
			}
			if tt.wantErr {
				if !errors.Is(err, ErrNotOwner) || KindOf(err) != KindUnauthorized {
					t.Fatalf("err = %v, want ErrNotOwner of kind unauthorized", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if got := s.Ended(); got != tt.wantEnded {
				t.Errorf("first subscription ended %v, want %v", got, tt.wantEnded)
			}
			if tt.wantEnded != Live {
				if first.n == 0 {
					t.Error("the first connection was not woken to tell its client")
				}
				if b := s.Drain(nil, 10); b.End != tt.wantEnded || b.Lost != 0 {
					t.Errorf("Drain = %+v, want End %v and nothing lost", b, tt.wantEnded)
				}
			}
		})
	}

	// The owner's own unsubscribe is the plain Unsubscribed: its client asked, it needs no notice.
	_, top := newTestTopic(t, TopicConfig{HistorySize: 10, QueueSize: 10})
	own := &holder{principal: "alice"}
	s := subscribe(t, top, "c1", own, 0).Sub
	if _, err := top.Unsubscribe("c1", own); err != nil || s.Ended() != Unsubscribed {
		t.Fatalf("own unsubscribe: %v, ended %v; want Unsubscribed", err, s.Ended())
	}
	// Anonymous owners (authentication off) are all one principal, as before ownership existed.
	a, b := &countWaker{}, &countWaker{}
	s = subscribe(t, top, "c2", a, 0).Sub
	if _, err := top.Unsubscribe("c2", b); err != nil || s.Ended() != UnsubscribedElsewhere {
		t.Fatalf("anonymous unsubscribe from another connection: %v, ended %v", err, s.Ended())
	}
}
