package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// bench is one run: its topics, connections and the phases that drive them.
type bench struct {
	cfg     config
	rest    *restClient   // the first server's: creates and deletes the topics
	rests   []*restClient // every server's, in -url order
	sampler *sampler
	id      string
	log     io.Writer // progress and warnings (stderr)

	topics []*topicRun
	pubs   []*publisher
	subs   []*subscriber

	closing  atomic.Bool    // the bench is closing connections itself
	resume   chan struct{}  // closed at drain start: stalled subscribers read again
	stopPoll chan struct{}  // closed by closeAll: the pollers return
	readers  sync.WaitGroup // subscribers' and publishers' own reading goroutines
	pollers  sync.WaitGroup // the epoll loops
	ended    []atomic.Bool  // per subscriber: its reader has returned

	setupErrs map[string]int64 // dial/subscribe failures by kind
	failedOn  []int            // per server: subscribers that failed to open there
	openOK    int
	openSec   float64
}

// phase is a snapshot of resources at a phase boundary.
type phase struct {
	server  serverSample
	serverE error
	selfCPU float64
}

func newBench(cfg config, log io.Writer) *bench {
	b := &bench{
		cfg:       cfg,
		sampler:   &sampler{pids: cfg.pids, metricsURLs: cfg.metricsURLs, http: &http.Client{Timeout: 5 * time.Second}},
		id:        runID(),
		log:       log,
		resume:    make(chan struct{}),
		stopPoll:  make(chan struct{}),
		setupErrs: map[string]int64{},
		failedOn:  make([]int, len(cfg.servers)),
	}
	for _, e := range cfg.servers {
		b.rests = append(b.rests, newRESTClient(e.rest, cfg.header))
	}
	b.rest = b.rests[0]
	return b
}

// snapshot samples the server and this process. It ignores cancellation
// of ctx so that an interrupted run still reports what it measured.
func (b *bench) snapshot(ctx context.Context) phase {
	s, err := b.sampler.sample(context.WithoutCancel(ctx))
	return phase{server: s, serverE: err, selfCPU: selfCPU()}
}

// run executes the configured scenario and returns its result.
func (b *bench) run(ctx context.Context) (*result, error) {
	cfg := b.cfg
	defer b.teardown()
	if err := b.setupTopics(ctx); err != nil {
		return nil, err
	}
	if err := b.awaitTopics(ctx); err != nil {
		return nil, err
	}
	base := b.snapshot(ctx) // before any subscriber: the conns scenario's RSS baseline
	// Publishers first: when the conns scenario exhausts file descriptors
	// or the server's capacity, the run still has its publishers and
	// reports how many subscribers made it.
	if err := b.openPublishers(ctx); err != nil {
		return nil, err
	}
	if err := b.openSubscribers(ctx); err != nil {
		return nil, err
	}
	var held *phase
	var healthSubs = -1
	if cfg.Scenario == "conns" {
		fmt.Fprintf(b.log, "holding %d connections for %s\n", b.openOK, cfg.Duration)
		select {
		case <-time.After(cfg.Duration):
		case <-ctx.Done():
		}
		p := b.snapshot(ctx)
		held = &p
		if h, err := b.rest.health(context.WithoutCancel(ctx)); err == nil {
			healthSubs = h.Subscribers
		} else {
			b.setupErrs["health_"+errorKey(err)]++
		}
	}
	before := b.snapshot(ctx)
	stats := b.publishPhase(ctx)
	drainTimedOut := b.drain()
	after := b.snapshot(ctx)
	b.closeAll()
	r := b.collect(base, before, after, held, stats, drainTimedOut)
	if r.Conns != nil {
		r.Conns.HealthSubscribers = healthSubs
	}
	return r, nil
}

func (b *bench) setupTopics(ctx context.Context) error {
	var idBase [16]byte
	_, _ = rand.Read(idBase[:])
	gid := 0
	for i := range b.cfg.Topics {
		t := &topicRun{index: i, name: fmt.Sprintf("bench.%s.%d", b.id, i)}
		t.nameB = []byte(t.name)
		t.prefix = eventPrefix(t.name)
		if err := b.rest.createTopic(ctx, t.name); err != nil {
			return fmt.Errorf("create topic: %w", err)
		}
		b.topics = append(b.topics, t)
		for j := range b.cfg.Pubs {
			p := &publisher{
				topic: t, index: j, server: gid % len(b.cfg.servers),
				win: make(chan struct{}, b.cfg.Window),
				fb:  newFrameBuilder(t.name, i, j, gid, b.cfg.Size, idBase),
			}
			gid++
			t.pubs = append(t.pubs, p)
			b.pubs = append(b.pubs, p)
		}
	}
	return nil
}

// topicPrefix starts the name of every topic of this run.
func (b *bench) topicPrefix() string { return "bench." + b.id + "." }

// awaitTopics waits, with several servers, until every server lists every
// topic of the run: the topics were created through the first one, and a
// replica that has not heard of one yet would refuse its subscribers
// (TOPIC_NOT_FOUND) or, worse, take them before the topic reached it.
func (b *bench) awaitTopics(ctx context.Context) error {
	if len(b.rests) < 2 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.TopicWait)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i, rc := range b.rests[1:] {
		var why error // the last answer's shortfall, kept for the error
		for {
			names, err := rc.listTopics(ctx, b.topicPrefix())
			switch {
			case err == nil && b.listsAll(names):
				why = nil
			case err == nil:
				why = fmt.Errorf("it lists %d of the %d topics created through %s", len(names), len(b.topics), b.cfg.servers[0].rest)
			case ctx.Err() == nil || why == nil:
				// A request cut by the deadline says less than the answer before it.
				why = err
			}
			if why == nil {
				break
			}
			select {
			case <-tick.C:
				continue
			case <-ctx.Done():
			}
			return fmt.Errorf("server %d (%s) did not list the run's topics within -topic-wait %s (do the servers share one backplane?): %w",
				i+2, b.cfg.servers[i+1].rest, b.cfg.TopicWait, why)
		}
	}
	return nil
}

// listsAll reports whether names holds every topic of the run.
func (b *bench) listsAll(names []string) bool {
	have := make(map[string]bool, len(names))
	for _, n := range names {
		have[n] = true
	}
	for _, t := range b.topics {
		if !have[t.name] {
			return false
		}
	}
	return true
}

// openSubscribers dials and subscribes every subscriber, -dial-concurrency
// at a time, and starts their readers. Failures abort the run except in
// the conns scenario, where they are the measurement.
func (b *bench) openSubscribers(ctx context.Context) error {
	cfg := b.cfg
	add := func(t *topicRun, kind subKind, n int) {
		for range n {
			n := len(b.subs)
			b.subs = append(b.subs, &subscriber{topic: t, kind: kind, n: n, server: n % len(cfg.servers),
				clientID: "bench-" + b.id + "-" + strconv.Itoa(n)})
		}
	}
	if cfg.Scenario == "conns" {
		for i := range cfg.Conns {
			add(b.topics[i%len(b.topics)], kindIdle, 1)
		}
	} else {
		for _, t := range b.topics {
			add(t, kindFast, cfg.Subs)
			add(t, kindSlow, cfg.SlowSubs)
			add(t, kindStalled, cfg.StalledSubs)
		}
	}
	b.ended = make([]atomic.Bool, len(b.subs))
	start := time.Now()
	var mu sync.Mutex
	var firstErr error
	ok := make([]bool, len(b.subs))
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(cfg.DialParallel, len(b.subs)) {
		wg.Go(func() {
			for i := range work {
				ws := cfg.servers[b.subs[i].server].ws
				raw := cfg.Pollers > 0 && pollSupported && strings.HasPrefix(ws, "ws:")
				err := b.subs[i].open(ctx, ws, cfg.header, raw)
				if err == nil {
					ok[i] = true
					continue
				}
				mu.Lock()
				b.failedOn[b.subs[i].server]++
				b.setupErrs["subscribe_"+errorKey(err)]++
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	lastReport := time.Now()
	for i := range b.subs {
		if ctx.Err() != nil {
			break
		}
		work <- i
		if len(b.subs) >= 2000 && time.Since(lastReport) > 2*time.Second {
			fmt.Fprintf(b.log, "opened %d/%d connections\n", i, len(b.subs))
			lastReport = time.Now()
		}
	}
	close(work)
	wg.Wait()
	b.openSec = time.Since(start).Seconds()
	rp := readParams{slowDelay: cfg.SlowDelay, resume: b.resume, closing: &b.closing}
	kept := b.subs[:0]
	for i, s := range b.subs {
		if !ok[i] {
			s.close()
			continue
		}
		kept = append(kept, s)
	}
	b.subs = kept
	b.openOK = len(kept)
	if err := b.startReaders(rp); err != nil {
		return err
	}
	if firstErr != nil && cfg.Scenario != "conns" {
		return fmt.Errorf("%d of %d subscribers failed (first: %w)", len(ok)-b.openOK, len(ok), firstErr)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return nil
}

// startReaders starts a goroutine per subscriber that has a gorilla
// connection, and -pollers epoll loops sharing the others.
func (b *bench) startReaders(rp readParams) error {
	var pollers []*poller
	for i, s := range b.subs {
		s.idx = i
		if s.raw == nil {
			b.readers.Go(func() {
				defer b.ended[i].Store(true)
				s.read(rp)
			})
			continue
		}
		if pollers == nil {
			for range b.cfg.Pollers {
				p, err := newPoller()
				if err != nil {
					return fmt.Errorf("poller: %w", err)
				}
				pollers = append(pollers, p)
			}
		}
		if err := pollers[i%len(pollers)].add(s); err != nil {
			return fmt.Errorf("poller: %w", err)
		}
	}
	ended := func(s *subscriber) { b.ended[s.idx].Store(true) }
	for _, p := range pollers {
		b.pollers.Go(func() { p.run(b.stopPoll, rp, ended) })
	}
	return nil
}

func (b *bench) openPublishers(ctx context.Context) error {
	for _, p := range b.pubs {
		if err := p.open(ctx, b.cfg.servers[p.server].ws, b.cfg.header, b.cfg.Size); err != nil {
			return fmt.Errorf("publisher connection: %w", err)
		}
		b.readers.Go(func() { p.readReplies(&b.closing) })
	}
	return nil
}

// phaseTimes bounds the publishing phase.
type phaseTimes struct {
	start, stop int64 // nanotime: first publish started, last publisher stopped
}

// publishPhase runs every publisher until -duration, -count or an
// interrupt, and waits for their in-flight replies (bounded by -drain).
func (b *bench) publishPhase(ctx context.Context) phaseTimes {
	cfg := b.cfg
	stop := make(chan struct{})
	var once sync.Once
	halt := func() { once.Do(func() { close(stop) }) }
	timer := time.AfterFunc(cfg.Duration, halt)
	defer timer.Stop()
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		select {
		case <-ctx.Done():
			halt()
		case <-finished:
		}
	}()
	pp := publishParams{count: cfg.Count, drain: cfg.Drain}
	if cfg.Rate > 0 {
		pp.rate = cfg.Rate / float64(len(b.pubs))
	}
	t := phaseTimes{start: nanotime()}
	var wg sync.WaitGroup
	for _, p := range b.pubs {
		wg.Go(func() { p.publish(stop, pp) })
	}
	wg.Wait()
	for _, p := range b.pubs {
		t.stop = max(t.stop, p.stopAt)
	}
	return t
}

// drain lets stalled subscribers read again and waits until every live
// subscriber has seen its topic's last accepted message, nothing has
// arrived for a quiet period (the rest was dropped), or -drain passes. It
// reports whether the deadline cut it short. An interrupt does not cut it:
// it is bounded anyway, and the interrupted run's report needs it.
func (b *bench) drain() (timedOut bool) {
	close(b.resume)
	accepted := make([]int64, len(b.topics))
	for _, p := range b.pubs {
		accepted[p.topic.index] += p.ackedCnt.Load()
	}
	quiet := min(max(time.Second, 3*b.cfg.SlowDelay), b.cfg.Drain)
	deadline := time.Now().Add(b.cfg.Drain)
	lastSum, lastChange := int64(-1), time.Now()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		done, sum := true, int64(0)
		for i, s := range b.subs {
			if b.ended[i].Load() {
				continue
			}
			pr := s.progress.Load()
			sum += pr
			if pr < accepted[s.topic.index] {
				done = false
			}
		}
		now := time.Now()
		switch {
		case done:
			return false
		case sum != lastSum:
			lastSum, lastChange = sum, now
		case now.Sub(lastChange) >= quiet:
			return false
		}
		if now.After(deadline) {
			return true
		}
		<-tick.C
	}
}

// closeAll closes every connection and waits for the readers to finish,
// after which their results may be read.
func (b *bench) closeAll() {
	b.closing.Store(true)
	// Pollers first: a detached descriptor must not be closed, and its
	// number reused, while a poller may still read it.
	close(b.stopPoll)
	b.pollers.Wait()
	for _, s := range b.subs {
		s.close()
	}
	for _, p := range b.pubs {
		if p.conn != nil {
			_ = p.conn.Close()
		}
	}
	b.readers.Wait()
}

// teardown closes anything still open (after an error) and deletes the
// run's topics with a fresh context, so an interrupted run cleans up too.
func (b *bench) teardown() {
	select {
	case <-b.resume:
	default:
		close(b.resume)
	}
	if !b.closing.Load() {
		b.closeAll()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	for _, t := range b.topics {
		errs = append(errs, b.rest.deleteTopic(ctx, t.name))
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintf(b.log, "warning: deleting topics: %v\n", err)
	}
}
