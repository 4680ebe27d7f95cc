package telemetry

import (
	"sync"
	"time"
)

// Incident kinds.
const (
	IncidentSlowConsumer = "slow_consumer" // a subscriber lost messages to its queue's overflow policy
	IncidentLimit        = "limit"         // a limit refused a request or closed a connection
)

// Incident is one recent slow-consumer episode or limit refusal, for the web console. Repeats of
// the newest incident (same kind, limit, topic, client, address and policy) are folded into it: Count says
// how many, Time is the latest, Dropped the sum. Strings are clipped to incidentFieldMax bytes, so
// a ring's memory is bounded whatever the limits on names allow.
type Incident struct {
	ID       uint64    `json:"id"` // increases by one per new incident; a fold keeps it
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind"`
	Limit    string    `json:"limit,omitempty"`  // one of the Limit* constants
	Policy   string    `json:"policy,omitempty"` // drop_oldest or disconnect
	Topic    string    `json:"topic,omitempty"`
	ClientID string    `json:"client_id,omitempty"`
	Remote   string    `json:"remote,omitempty"`  // the client's address, when known
	Dropped  uint64    `json:"dropped,omitempty"` // messages the subscriber lost
	Count    int       `json:"count"`
}

// incidentFieldMax bounds each string an Incident keeps.
const incidentFieldMax = 256

// DefaultIncidents is how many incidents Setup's ring keeps.
const DefaultIncidents = 100

// Incidents is a bounded ring of the most recent incidents. It is fed where slow consumers and
// limit refusals are already counted (Metrics.LimitRejected, the WebSocket writer's slow-consumer
// log), so it costs one short critical section per refusal and nothing on the delivery path. Safe
// for concurrent use: mu guards every field.
type Incidents struct {
	mu   sync.Mutex
	ring []Incident // ring[(start+i)%cap] is the i-th oldest
	head int        // where the next new incident goes
	n    int        // how many are held, at most len(ring)
	next uint64     // the next ID
	now  func() time.Time
}

// NewIncidents returns a ring that keeps the last size incidents (at least one).
func NewIncidents(size int) *Incidents {
	return &Incidents{ring: make([]Incident, max(size, 1)), next: 1, now: time.Now}
}

// Add records in, or folds it into the newest incident when it repeats it. Time and ID are
// filled in here; Count counts in as one.
func (r *Incidents) Add(in Incident) {
	if r == nil {
		return
	}
	in.Limit, in.Policy = clipString(in.Limit), clipString(in.Policy)
	in.Topic, in.ClientID, in.Remote = clipString(in.Topic), clipString(in.ClientID), clipString(in.Remote)
	now := r.now().UTC()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n > 0 {
		last := &r.ring[(r.head+len(r.ring)-1)%len(r.ring)]
		if last.Kind == in.Kind && last.Limit == in.Limit && last.Topic == in.Topic &&
			last.ClientID == in.ClientID && last.Policy == in.Policy && last.Remote == in.Remote {
			last.Count++
			last.Dropped += in.Dropped
			last.Time = now
			return
		}
	}
	in.ID, in.Time, in.Count = r.next, now, 1
	r.next++
	r.ring[r.head] = in
	r.head = (r.head + 1) % len(r.ring)
	r.n = min(r.n+1, len(r.ring))
}

// Recent returns the incidents held, newest first.
func (r *Incidents) Recent() []Incident {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Incident, 0, r.n)
	for i := 1; i <= r.n; i++ {
		out = append(out, r.ring[(r.head+len(r.ring)-i)%len(r.ring)])
	}
	return out
}

// clipString shortens s to incidentFieldMax bytes (a client's text: a topic name or client id).
func clipString(s string) string {
	if len(s) > incidentFieldMax {
		return s[:incidentFieldMax]
	}
	return s
}
