package ws_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// ackResume is what a subscribe ack says beyond the frame helper's fields (extension, #12).
type ackResume struct {
	Epoch     *string `json:"epoch"`
	Seq       *uint64 `json:"seq"`
	Recovered *bool   `json:"recovered"`
}

func resumeFields(t *testing.T, f frame) ackResume {
	t.Helper()
	var a ackResume
	if err := json.Unmarshal(f.raw, &a); err != nil {
		t.Fatal(err)
	}
	if a.Epoch == nil || *a.Epoch == "" || a.Seq == nil {
		t.Fatalf("subscribe ack %s has no epoch or seq", f.raw)
	}
	return a
}

// publishAcked publishes n messages and waits for their acks.
func publishAcked(c *client, topic string, n int) {
	c.t.Helper()
	for i := range n {
		c.publish(topic, i, fmt.Sprint("p", i))
	}
	for range n {
		c.expect("ack")
	}
}

// eventSeqs returns the seqs of the event frames among fs.
func eventSeqs(fs []frame) []uint64 {
	out := []uint64{}
	for _, f := range fs {
		if f.Type == "event" {
			out = append(out, f.Seq)
		}
	}
	return out
}

func TestSubscribeAckCarriesEpochAndSeq(t *testing.T) {
	s := newServer(t, serverOpts{history: 5})
	s.createTopic(t, "orders")
	pub := s.dial(t)
	publishAcked(pub, "orders", 3)

	sub := s.dial(t)
	first := resumeFields(t, sub.subscribe("orders", "c1", 0))
	if *first.Seq != 3 || first.Recovered != nil {
		t.Fatalf("plain subscribe ack: seq %d, recovered %v; want seq 3 and no recovered", *first.Seq, first.Recovered)
	}
	// The fields old clients read come first, as they always did.
	ack := sub.subscribe("orders", "c2", 0)
	if !strings.HasPrefix(string(ack.raw), `{"type":"ack","request_id":"sub-c2","topic":"orders","status":"ok",`) {
		t.Fatalf("subscribe ack %s does not start as it did before the extension", ack.raw)
	}
	if second := resumeFields(t, ack); *second.Epoch != *first.Epoch {
		t.Fatalf("two subscribes to one topic got epochs %q and %q", *first.Epoch, *second.Epoch)
	}
	// A publish ack and an unsubscribe ack are unchanged.
	pub.publish("orders", 1, "p")
	if a := pub.expect("ack"); strings.Contains(string(a.raw), "epoch") {
		t.Fatalf("publish ack %s carries an epoch", a.raw)
	}
	if code, body := s.do(t, "DELETE", "/topics/orders", ""); code != 200 {
		t.Fatalf("delete: %d %v", code, body)
	}
	s.createTopic(t, "orders")
	sub.barrier()
	renewed := resumeFields(t, sub.subscribe("orders", "c3", 0))
	if *renewed.Epoch == *first.Epoch || *renewed.Seq != 0 {
		t.Fatalf("after delete and create: epoch %q seq %d, want a new epoch and seq 0", *renewed.Epoch, *renewed.Seq)
	}
}

func TestResumeOverWebSocket(t *testing.T) {
	s := newServer(t, serverOpts{history: 4})
	s.createTopic(t, "orders")
	pub := s.dial(t)
	publishAcked(pub, "orders", 3)
	epoch := *resumeFields(t, s.dial(t).subscribe("orders", "probe", 0)).Epoch
	publishAcked(pub, "orders", 2) // seqs 4, 5 while the client was away; the history holds 2..5

	tests := []struct {
		name      string
		frame     map[string]any
		recovered bool
		replay    []uint64
	}{
		{"recovered", map[string]any{"since_seq": 3, "epoch": epoch}, true, []uint64{4, 5}},
		{"since_seq wins over last_n", map[string]any{"since_seq": 4, "epoch": epoch, "last_n": 5}, true, []uint64{5}},
		{"up to date", map[string]any{"since_seq": 5, "epoch": epoch}, true, []uint64{}},
		{"since_seq 5.0 is an integer", map[string]any{"since_seq": 5.0, "epoch": epoch}, true, []uint64{}},
		{"another epoch", map[string]any{"since_seq": 3, "epoch": "00000000000000ff"}, false, []uint64{}},
		{"ahead of the topic", map[string]any{"since_seq": 99, "epoch": epoch}, false, []uint64{}},
		{"trimmed history, and last_n does not apply", map[string]any{"since_seq": 0, "epoch": epoch, "last_n": 5}, false, []uint64{}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := s.dial(t)
			rid := fmt.Sprint("r", i)
			f := map[string]any{"type": "subscribe", "topic": "orders", "client_id": "c", "request_id": rid}
			for k, v := range tt.frame {
				f[k] = v
			}
			c.send(f)
			ack := c.expect("ack")
			a := resumeFields(t, ack)
			if a.Recovered == nil || *a.Recovered != tt.recovered || *a.Seq != 5 || *a.Epoch != epoch {
				t.Fatalf("ack %s: want recovered %v, seq 5, epoch %q", ack.raw, tt.recovered, epoch)
			}
			if got := eventSeqs(c.barrier()); !slices.Equal(got, tt.replay) {
				t.Fatalf("replayed seqs %v, want %v", got, tt.replay)
			}
		})
	}

	t.Run("then live events", func(t *testing.T) {
		c := s.dial(t)
		c.send(map[string]any{"type": "subscribe", "topic": "orders", "client_id": "live", "since_seq": 4, "epoch": epoch})
		c.expect("ack")
		if got := eventSeqs(c.barrier()); !slices.Equal(got, []uint64{5}) {
			t.Fatalf("replayed seqs %v, want [5]", got)
		}
		publishAcked(pub, "orders", 1)
		if ev := c.expect("event"); ev.Seq != 6 {
			t.Fatalf("live event seq %d, want 6", ev.Seq)
		}
	})
}

func TestResumeBadInput(t *testing.T) {
	s := newServer(t, serverOpts{})
	s.createTopic(t, "orders")
	c := s.dial(t)
	long := strings.Repeat("e", 257)
	tests := []struct {
		name, fields, msg string
	}{
		{"negative", `"since_seq":-1,"epoch":"ab"`, "since_seq must be an integer"},
		{"fraction", `"since_seq":1.5,"epoch":"ab"`, "since_seq must be an integer"},
		{"string", `"since_seq":"3","epoch":"ab"`, "since_seq must be an integer"},
		{"bool", `"since_seq":true,"epoch":"ab"`, "since_seq must be an integer"},
		{"object", `"since_seq":{},"epoch":"ab"`, "since_seq must be an integer"},
		{"beyond uint64", `"since_seq":18446744073709551616,"epoch":"ab"`, "since_seq must be an integer"},
		{"huge exponent", `"since_seq":1e300,"epoch":"ab"`, "since_seq must be an integer"},
		{"no epoch", `"since_seq":3`, "epoch is required with since_seq"},
		{"empty epoch", `"since_seq":3,"epoch":""`, "epoch is required with since_seq"},
		{"epoch not a string", `"since_seq":3,"epoch":12`, "epoch must be a string"},
		{"epoch too long", `"since_seq":3,"epoch":"` + long + `"`, "epoch is longer than 256 bytes"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rid := fmt.Sprint("bad-", i)
			c.sendRaw(`{"type":"subscribe","topic":"orders","client_id":"c","request_id":"` + rid + `",` + tt.fields + `}`)
			f := c.expect("error")
			if f.RequestID == nil || *f.RequestID != rid || f.Error == nil || f.Error.Code != "BAD_REQUEST" ||
				!strings.Contains(f.Error.Message, tt.msg) {
				t.Fatalf("got %s, want BAD_REQUEST saying %q", f.raw, tt.msg)
			}
		})
	}
	// The connection stays usable, and none of the refusals subscribed anything.
	if fs := c.barrier(); len(fs) != 0 {
		t.Fatalf("frames after the refusals: %v", fs)
	}
	if _, body := s.do(t, "GET", "/topics", ""); !strings.Contains(fmt.Sprint(body), "subscribers:0") {
		t.Fatalf("GET /topics after refused subscribes: %v", body)
	}
	c.subscribe("orders", "c", 0)
}
