package redis_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/pubsubd/pubsub/internal/domain"
)

// The scripts against the real server, through the engine: the error codes, seq per topic, the
// history trimmed to exactly its bounds, reads of the newest and of a range with a limit, and the
// deleted notice on the topic's own channel, after its events.
func TestScripts(t *testing.T) {
	p := newPrefix()
	e := newEngine(t, testConfig(3, 100), options(p, "s"))
	ctx := t.Context()
	if err := e.CreateTopic(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	if err := e.CreateTopic(ctx, "t"); domain.KindOf(err) != domain.KindExists {
		t.Fatalf("create twice: %v, want KindExists", err)
	}
	if _, _, err := e.Publish(ctx, "missing", msg(1)); domain.KindOf(err) != domain.KindNotFound {
		t.Fatalf("publish to a missing topic: %v, want KindNotFound", err)
	}
	for want := uint64(1); want <= 7; want++ {
		ev, _, err := e.Publish(ctx, "t", msg(want))
		if err != nil || ev.Seq != want {
			t.Fatalf("publish %d: seq %v, %v", want, ev, err)
		}
	}
	if n, err := srv.Do("XLEN", p+"{t}:h"); err != nil || n != "3" {
		t.Fatalf("history length %q, %v; want exactly 3", n, err)
	}
	if ids, err := srv.Do("XRANGE", p+"{t}:h", "-", "+"); err != nil || !strings.HasPrefix(ids, "5-0") {
		t.Fatalf("history %q, %v; want 5-0 first", ids, err)
	}

	// Resume reads a range after since_seq: 5..7 are there, 3..4 are not.
	for _, tt := range []struct {
		since     uint64
		recovered bool
		replayed  int
	}{{4, true, 3}, {6, true, 1}, {2, false, 0}} {
		res, err := e.Subscribe(ctx, "t", domain.SubscribeSpec{ClientID: "r", Owner: nopWaker{}, Resume: true, SinceSeq: tt.since, Epoch: epochOf(t, p)})
		if err != nil || res.Recovered != tt.recovered || res.Replayed != tt.replayed {
			t.Fatalf("since %d: %+v, %v", tt.since, res, err)
		}
	}

	// The deleted notice travels on the topic's channel, naming the epoch and the last seq.
	client, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr()}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	got := make(chan string, 1)
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- client.Receive(sctx, client.B().Subscribe().Channel(p+"{t}:c").Build(), func(m rueidis.PubSubMessage) {
			select {
			case got <- m.Message:
			default:
			}
		})
	}()
	go func() { // Receive has no subscribed hook: wait until Redis counts this subscriber too
		defer close(ready)
		want := "1"
		if e.Following("t") {
			want = "2"
		}
		for sctx.Err() == nil {
			if n, _ := srv.Do("PUBSUB", "NUMSUB", p+"{t}:c"); strings.HasSuffix(n, "\n"+want) {
				return
			}
			waitTick()
		}
	}()
	<-ready
	epoch := epochOf(t, p)
	if err := e.DeleteTopic(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m != "d"+epoch+":7:" {
			t.Fatalf("deleted notice %q, want d%s:7:", m, epoch)
		}
	case <-sctx.Done():
		t.Fatal("no deleted notice on the topic's channel")
	}
	cancel()
	<-done
	if n, _ := srv.Do("EXISTS", p+"{t}:m", p+"{t}:h"); n != "0" {
		t.Fatalf("keys left after delete: %s", n)
	}
}

func epochOf(t *testing.T, prefix string) string {
	t.Helper()
	v, err := srv.Do("HGET", prefix+"{t}:m", "e")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

type nopWaker struct{}

func (nopWaker) Wake() {}
