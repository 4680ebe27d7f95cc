package domain

import (
	"slices"
	"testing"
)

// TestTopicResume is the resume rule at the topic: exactly the missing events and recovered, or
// nothing at all, whatever bounds the history (count, bytes, none) or the recovery.
func TestTopicResume(t *testing.T) {
	tests := []struct {
		name      string
		cfg       TopicConfig
		published int
		sinceSeq  uint64
		epoch     string
		recovered bool
		want      []uint64
	}{
		{"missing within the history", TopicConfig{HistorySize: 4}, 6, 3, "epoch-1", true, []uint64{4, 5, 6}},
		{"missing the whole history", TopicConfig{HistorySize: 4}, 6, 2, "epoch-1", true, []uint64{3, 4, 5, 6}},
		{"missing one more than the history", TopicConfig{HistorySize: 4}, 6, 1, "epoch-1", false, nil},
		{"up to date", TopicConfig{HistorySize: 4}, 6, 6, "epoch-1", true, nil},
		{"ahead", TopicConfig{HistorySize: 4}, 6, 7, "epoch-1", false, nil},
		{"another epoch", TopicConfig{HistorySize: 4}, 6, 5, "epoch-0", false, nil},
		{"an empty epoch", TopicConfig{HistorySize: 4}, 6, 5, "", false, nil},
		{"empty topic, since 0", TopicConfig{HistorySize: 4}, 0, 0, "epoch-1", true, nil},
		{"no history kept", TopicConfig{}, 3, 2, "epoch-1", false, nil},
		{"no history kept, up to date", TopicConfig{}, 3, 3, "epoch-1", true, nil},
		// Each event is about 260 bytes here: 600 bytes keep two.
		{"history trimmed by bytes", TopicConfig{HistorySize: 10, HistoryBytes: 600}, 5, 2, "epoch-1", false, nil},
		{"within the bytes", TopicConfig{HistorySize: 10, HistoryBytes: 600}, 5, 3, "epoch-1", true, []uint64{4, 5}},
		{"beyond RecoveryMax", TopicConfig{HistorySize: 10, RecoveryMax: 2}, 5, 2, "epoch-1", false, nil},
		{"within RecoveryMax", TopicConfig{HistorySize: 10, RecoveryMax: 2}, 5, 3, "epoch-1", true, []uint64{4, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.QueueSize = 10
			_, top := newTestTopic(t, tt.cfg)
			publishN(t, top, tt.published)
			res, err := top.Subscribe(SubscribeSpec{ClientID: "c", Owner: &countWaker{}, LastN: 10,
				Resume: true, SinceSeq: tt.sinceSeq, Epoch: tt.epoch})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Resumed || res.Recovered != tt.recovered || res.Seq != uint64(tt.published) || res.Epoch != "epoch-1" {
				t.Fatalf("result %+v, want resumed, recovered %v, seq %d, epoch-1", res, tt.recovered, tt.published)
			}
			var got []uint64
			for _, ev := range res.Sub.replay {
				got = append(got, ev.Seq)
			}
			if !slices.Equal(got, tt.want) || res.Replayed != len(tt.want) {
				t.Fatalf("replay %v (Replayed %d), want %v", got, res.Replayed, tt.want)
			}
		})
	}
}
