package telemetry

import (
	"strings"
	"sync"
	"testing"
	"time"
)

func TestIncidentsKeepTheNewestAndFoldRepeats(t *testing.T) {
	r := NewIncidents(3)
	clock := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	r.now = func() time.Time { clock = clock.Add(time.Second); return clock }

	r.Add(Incident{Kind: IncidentLimit, Limit: LimitPublishRate})
	r.Add(Incident{Kind: IncidentLimit, Limit: LimitPublishRate}) // folded into the first
	r.Add(Incident{Kind: IncidentSlowConsumer, Policy: "drop_oldest", Topic: "a", ClientID: "s1", Dropped: 5})
	r.Add(Incident{Kind: IncidentSlowConsumer, Policy: "drop_oldest", Topic: "a", ClientID: "s1", Dropped: 7})
	r.Add(Incident{Kind: IncidentSlowConsumer, Policy: "drop_oldest", Topic: "a", ClientID: "s2", Dropped: 1})

	got := r.Recent()
	if len(got) != 3 {
		t.Fatalf("%d incidents, want 3: %+v", len(got), got)
	}
	if got[0].ClientID != "s2" || got[0].ID != 3 || got[0].Count != 1 {
		t.Errorf("newest %+v, want s2's, id 3, once", got[0])
	}
	if got[1].ClientID != "s1" || got[1].Count != 2 || got[1].Dropped != 12 || got[1].ID != 2 {
		t.Errorf("second %+v, want s1's two episodes folded: count 2, 12 dropped, id 2", got[1])
	}
	if !got[1].Time.Equal(time.Date(2026, 12, 6, 10, 0, 4, 0, time.UTC)) {
		t.Errorf("a fold keeps the latest time: got %v", got[1].Time)
	}
	if got[2].Limit != LimitPublishRate || got[2].Count != 2 || got[2].ID != 1 {
		t.Errorf("oldest %+v, want the publish_rate refusal twice, id 1", got[2])
	}

	// A fourth distinct incident pushes the oldest out: the ring never grows.
	r.Add(Incident{Kind: IncidentLimit, Limit: LimitConnections})
	got = r.Recent()
	if len(got) != 3 || got[0].Limit != LimitConnections || got[2].ClientID != "s1" {
		t.Fatalf("after a fourth: %+v, want connections, s2, s1", got)
	}
}

func TestIncidentsClipClientText(t *testing.T) {
	r := NewIncidents(1)
	long := strings.Repeat("x", 10_000)
	r.Add(Incident{Kind: IncidentSlowConsumer, Topic: long, ClientID: long})
	got := r.Recent()[0]
	if len(got.Topic) != incidentFieldMax || len(got.ClientID) != incidentFieldMax {
		t.Fatalf("kept %d and %d bytes, want each clipped to %d", len(got.Topic), len(got.ClientID), incidentFieldMax)
	}
}

// LimitRejected, where every limit refusal is already counted, records it; a nil ring (a Metrics
// built by hand) costs nothing.
func TestLimitRejectedRecordsAnIncident(t *testing.T) {
	m := NewMetrics(BuildInfo{}, Labels{})
	m.LimitRejected(LimitReplies)
	if got := m.Incidents.Recent(); len(got) != 1 || got[0].Kind != IncidentLimit || got[0].Limit != LimitReplies {
		t.Fatalf("incidents %+v, want one replies refusal", got)
	}
	// Who was refused, when the call site knows: a refusal of another address is another incident.
	m.LimitRejectedFor(LimitPublishRate, "orders", "10.0.0.1:5000")
	m.LimitRejectedFor(LimitPublishRate, "orders", "10.0.0.1:5000")
	m.LimitRejectedFor(LimitPublishRate, "orders", "10.0.0.2:5000")
	got := m.Incidents.Recent()
	if len(got) != 3 || got[0].Remote != "10.0.0.2:5000" || got[1].Remote != "10.0.0.1:5000" || got[1].Count != 2 || got[1].Topic != "orders" {
		t.Fatalf("incidents %+v, want 10.0.0.2 once, then 10.0.0.1 twice, on orders", got)
	}
	var none *Incidents
	none.Add(Incident{Kind: IncidentLimit})
	if none.Recent() != nil {
		t.Fatal("a nil ring holds something")
	}
}

func TestIncidentsAreSafeForConcurrentUse(t *testing.T) {
	r := NewIncidents(8)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 500 {
				r.Add(Incident{Kind: IncidentLimit, Limit: string(rune('a' + (g+i)%3))})
				_ = r.Recent()
			}
		})
	}
	wg.Wait()
	got := r.Recent()
	if len(got) != 8 {
		t.Fatalf("%d incidents held, want the ring's 8", len(got))
	}
	for i := 1; i < len(got); i++ {
		if got[i].ID >= got[i-1].ID {
			t.Fatalf("not newest first: ids %d then %d", got[i-1].ID, got[i].ID)
		}
	}
}
