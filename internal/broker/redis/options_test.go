package redis

import (
	"strings"
	"testing"
	"time"
)

// The configuration reaches the client as the operator wrote it: URL credentials and database,
// Sentinel's master and addresses (with the URL's credentials), fail-fast settings always.
func TestClientOption(t *testing.T) {
	o := Options{URL: "redis://u:p@h:6380/3", Timeout: time.Second, Replica: "r1"}
	opt, err := clientOption(o)
	if err != nil {
		t.Fatal(err)
	}
	if opt.InitAddress[0] != "h:6380" || opt.Username != "u" || opt.Password != "p" || opt.SelectDB != 3 ||
		!opt.DisableRetry || opt.Dialer.Timeout != time.Second || opt.ClientName != "pubsubd-r1" {
		t.Fatalf("option %+v", opt)
	}
	o = Options{URL: "redis://:secret@ignored:1/2", SentinelMaster: "mymaster", SentinelAddrs: []string{"s1:26379", "s2:26379"}, Timeout: time.Second}
	opt, err = clientOption(o)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(opt.InitAddress, ",") != "s1:26379,s2:26379" || opt.Sentinel.MasterSet != "mymaster" ||
		opt.Sentinel.Password != "secret" || opt.Password != "secret" || opt.SelectDB != 2 {
		t.Fatalf("sentinel option %+v", opt)
	}
	if _, err := clientOption(Options{}); err == nil {
		t.Fatal("no address: want an error")
	}
}

func TestKeysTopicOf(t *testing.T) {
	k := keys{prefix: "ps:"}
	if n, ok := k.topicOf(k.channel("a:b.c")); !ok || n != "a:b.c" {
		t.Fatalf("topicOf(channel) = %q, %v", n, ok)
	}
	for _, ch := range []string{"ps:node:x", "ps:{x}:m", "other:{x}:c", "ps:{}:c"[:5]} {
		if _, ok := k.topicOf(ch); ok {
			t.Fatalf("topicOf(%q) is a topic", ch)
		}
	}
}
