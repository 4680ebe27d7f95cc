//go:build linux

// The cluster tests (issue #12, "How it is shown": end-to-end and chaos) run three real pubsubd
// processes (PUBSUB_BROKER=redis) on one real redis-server, all on free loopback ports, and talk
// to them as clients do: WebSocket subscribers and publishers on every replica, REST for topics
// and stats. They need redis-server on PATH (Debian's redis-server package; .ci/test installs it)
// and skip with a message without it. The pubsubd binary is built once for all of them.
//
// This file holds the harness: the Redis and the replicas (processes that the kernel kills with
// the test binary, see startProcess), and REST helpers. peer_test.go holds the WebSocket clients
// and the invariant checker; cluster_e2e_test.go and chaos_test.go the tests.
package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pubsubd/pubsub/internal/broker/redis/redistest"
)

// Settings every replica of these tests runs with.
const (
	// clusterHistory is each topic's history: larger than any run publishes to a topic, so a
	// resume always recovers and the final history names every stored message (the checker
	// learns from it the seq of an acked message that no subscriber received).
	clusterHistory = 5000
	// clusterRedisTimeout bounds one Redis call: short, so that an outage shows within a second
	// or two, long enough for a race-built replica on a loaded 2-core machine.
	clusterRedisTimeout = time.Second
	// heartbeatTTL is how long a replica's subscriber counts outlive its last heartbeat: three of
	// the engine's 5 s heartbeats (internal/broker/redis, Options.Heartbeat).
	heartbeatTTL = 15 * time.Second
)

// replicaEnv is the configuration of every replica. The queues are large (by count and bytes)
// so that a subscriber that reads keeps up even when a repair hands it a few thousand events
// at once: any loss the tests see is then the backplane's, and must be announced.
func replicaEnv(port, redisURL string) []string {
	return []string{
		"PUBSUB_HOST=127.0.0.1",
		"PUBSUB_PORT=" + port,
		"PUBSUB_ADMIN_ADDR=off",
		"PUBSUB_BROKER=redis",
		"PUBSUB_REDIS_URL=" + redisURL,
		"PUBSUB_REDIS_TIMEOUT=" + clusterRedisTimeout.String(),
		fmt.Sprintf("PUBSUB_HISTORY_SIZE=%d", clusterHistory),
		"PUBSUB_HISTORY_MAX_BYTES=16MiB",
		"PUBSUB_MAX_QUEUE_SIZE=20000",
		"PUBSUB_MAX_QUEUE_BYTES=16MiB",
		"PUBSUB_LOG_FORMAT=json",
		"PUBSUB_DRAIN_TIMEOUT=5s",
	}
}

// TestRedisCluster builds pubsubd once and runs the end-to-end test and every chaos test, each on
// its own redis-server and three replicas.
func TestRedisCluster(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("Redis cluster tests skipped: redis-server is not on PATH (apt-get install redis-server)")
	}
	bin := buildPubsubd(t, t.TempDir())
	t.Run("EndToEnd", func(t *testing.T) { testEndToEnd(t, bin) })
	t.Run("Chaos", func(t *testing.T) {
		t.Run("RedisKilledAndRestarted", func(t *testing.T) { testChaosRedisKilled(t, bin) })
		t.Run("PubSubClientsKilled", func(t *testing.T) { testChaosClientKill(t, bin) })
		t.Run("RedisPaused", func(t *testing.T) { testChaosRedisPaused(t, bin) })
		t.Run("ReplicaKilledAndRestarted", func(t *testing.T) { testChaosReplicaKilled(t, bin) })
		t.Run("TopicRecreatedWhileReplicaCutOff", func(t *testing.T) { testChaosTopicRecreatedWhileCutOff(t, bin) })
		t.Run("RedisLosesAcknowledgedWrites", func(t *testing.T) { testChaosRedisLosesWrites(t, bin, 30, false) })
		t.Run("RedisLosesAcknowledgedWritesReplicasLookLate", func(t *testing.T) { testChaosRedisLosesWrites(t, bin, 2, true) })
	})
}

// cluster is one redis-server and the replicas on it.
type cluster struct {
	t     *testing.T
	bin   string
	redis *redistest.Server
	ropts redistest.Options
	reps  []*replica
	http  *http.Client
}

// replica is one pubsubd process; it keeps its address across a restart, and gets a new replica
// id at each start, as a restarted pod does.
type replica struct {
	name string
	addr string // the WebSocket/REST listener, host:port
	env  []string

	mu     sync.Mutex
	proc   *process
	id     string // PUBSUB_REPLICA_ID of the current process
	starts int
}

// startCluster starts a redis-server with ropts and n replicas on it, and returns once every
// replica is ready.
func startCluster(ctx context.Context, t *testing.T, bin string, n int, ropts redistest.Options) *cluster {
	t.Helper()
	srv, err := redistest.StartWith(t.TempDir(), ropts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop) // registered first: runs after the replicas' cleanups have drained them
	c := &cluster{t: t, bin: bin, redis: srv, ropts: ropts, http: &http.Client{Timeout: 10 * time.Second}}
	for i := range n {
		addr := freeAddr(t)
		r := &replica{name: fmt.Sprintf("replica-%d", i), addr: addr, env: replicaEnv(portOf(t, addr), srv.URL())}
		c.reps = append(c.reps, r)
		c.start(r)
	}
	for _, r := range c.reps {
		c.waitReady(ctx, r, true)
	}
	return c
}

// start starts r's process (again, after a kill: same address, new replica id).
func (c *cluster) start(r *replica) {
	r.mu.Lock()
	r.starts++
	id := fmt.Sprintf("%s-%d", r.name, r.starts)
	r.mu.Unlock()
	p := startProcess(c.t, r.name, c.bin, nil, append(slices.Clone(r.env), "PUBSUB_REPLICA_ID="+id))
	r.mu.Lock()
	r.proc, r.id = p, id
	r.mu.Unlock()
}

// add starts one more replica on the cluster's Redis, outside c.reps (the workload's), and
// waits until it is ready.
func (c *cluster) add(ctx context.Context, name string) *replica {
	c.t.Helper()
	addr := freeAddr(c.t)
	r := &replica{name: name, addr: addr, env: replicaEnv(portOf(c.t, addr), c.redis.URL())}
	c.start(r)
	c.waitReady(ctx, r, true)
	return r
}

// replicaID returns the replica id of r's current process: its Redis connections are named
// pubsubd-<id>.
func (r *replica) replicaID() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.id
}

func (r *replica) process() *process {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.proc
}

// kill ends r with SIGKILL, as a crash would, and waits for the process to be gone.
func (r *replica) kill(t *testing.T) {
	t.Helper()
	p := r.process()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill %s: %v", r.name, err)
	}
	<-p.done
}

func (r *replica) url(path string) string { return "http://" + r.addr + path }
func (r *replica) wsURL() string          { return "ws://" + r.addr + "/ws" }

// watched returns the replicas' processes that must not exit while a wait runs.
func (c *cluster) watched() []*process {
	ps := make([]*process, 0, len(c.reps))
	for _, r := range c.reps {
		ps = append(ps, r.process())
	}
	return ps
}

// waitReady waits until r's /readyz answers 200 (ready) or 503 (not ready), and checks that
// /livez answers 200 at every look once the replica listens: liveness never depends on Redis.
func (c *cluster) waitReady(ctx context.Context, r *replica, ready bool) {
	c.t.Helper()
	want := http.StatusOK
	if !ready {
		want = http.StatusServiceUnavailable
	}
	eventually(ctx, c.t, fmt.Sprintf("%s /readyz %d", r.name, want), []*process{r.process()}, func() (bool, string) {
		got := httpStatus(c.http, r.url("/readyz"))
		if got == 0 {
			return false, "not listening yet"
		}
		if live := httpStatus(c.http, r.url("/livez")); live != http.StatusOK {
			c.t.Errorf("%s /livez answered %d, want 200 whatever Redis does", r.name, live)
		}
		return got == want, fmt.Sprintf("/readyz %d", got)
	})
}

// rest sends one REST request and returns the status and body.
func (c *cluster) rest(ctx context.Context, method, url string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// createTopics creates each topic through a different replica (round robin) and checks that every
// replica then lists all of them.
func (c *cluster) createTopics(ctx context.Context, topics []string) {
	c.t.Helper()
	for i, name := range topics {
		r := c.reps[i%len(c.reps)]
		status, body, err := c.rest(ctx, http.MethodPost, r.url("/topics"), map[string]string{"name": name})
		if err != nil || status != http.StatusCreated {
			c.t.Fatalf("POST /topics %q on %s: %d %s %v; want 201", name, r.name, status, body, err)
		}
	}
	for _, r := range c.reps {
		var list topicList
		if err := getJSON(c.http, r.url("/topics"), &list); err != nil {
			c.t.Fatal(err)
		}
		for _, name := range topics {
			if _, ok := list.subscribers()[name]; !ok {
				c.t.Fatalf("GET /topics on %s: %q missing from %+v (created on another replica)", r.name, name, list)
			}
		}
	}
}

// topicList is GET /topics.
type topicList struct {
	Topics []struct {
		Name        string `json:"name"`
		Subscribers int    `json:"subscribers"`
	} `json:"topics"`
}

func (l topicList) subscribers() map[string]int {
	m := make(map[string]int, len(l.Topics))
	for _, t := range l.Topics {
		m[t.Name] = t.Subscribers
	}
	return m
}

// statsBody is GET /stats.
type statsBody struct {
	Topics map[string]struct {
		Messages    uint64 `json:"messages"`
		Subscribers int    `json:"subscribers"`
	} `json:"topics"`
}

// healthBody is GET /health.
type healthBody struct {
	Topics      int `json:"topics"`
	Subscribers int `json:"subscribers"`
}

// waitSubscribers waits until /stats on r counts want subscribers for every topic (the sum over
// the replicas with a fresh heartbeat).
func (c *cluster) waitSubscribers(ctx context.Context, r *replica, topics []string, want int) {
	c.t.Helper()
	eventually(ctx, c.t, fmt.Sprintf("/stats on %s counting %d subscribers per topic", r.name, want), []*process{r.process()}, func() (bool, string) {
		var s statsBody
		if err := getJSON(c.http, r.url("/stats"), &s); err != nil {
			return false, err.Error()
		}
		for _, name := range topics {
			if got := s.Topics[name].Subscribers; got != want {
				return false, fmt.Sprintf("%s: %d subscribers", name, got)
			}
		}
		return true, ""
	})
}
