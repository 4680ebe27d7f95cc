// Package service holds the use cases of the pub/sub service and the ports it needs: the Broker that
// stores topics and fans events out, the Observer that hears about the steps inside an operation,
// and the Clock. Transports call the API; telemetry wraps it. Nothing here does I/O of its own.
package service

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/pubsubd/pubsub/internal/domain"
)

// Broker is the engine that holds topics and fans events out to subscriber queues. The in-memory
// engine is the default; any other must pass the same contract tests (internal/broker/brokertest).
// Every call that may touch the network takes a context and returns an error; an engine that
// cannot reach its store fails with domain.KindUnavailable, naming itself, and acknowledges
// nothing it did not store.
type Broker interface {
	CreateTopic(ctx context.Context, name domain.TopicName) error
	DeleteTopic(ctx context.Context, name domain.TopicName) error
	Publish(ctx context.Context, name domain.TopicName, msg domain.Message) (*domain.Event, domain.PublishStats, error)
	// Subscribe registers spec.ClientID and queues its replay: last_n, or the resume rule of
	// domain.Topic.Subscribe when spec.Resume is set. The result carries the topic's epoch and seq.
	Subscribe(ctx context.Context, name domain.TopicName, spec domain.SubscribeSpec) (domain.SubscribeResult, error)
	// Unsubscribe ends clientID's subscription for by: only an owner of the subscription's
	// principal may (see domain.Holder); nil is the anonymous principal.
	Unsubscribe(ctx context.Context, name domain.TopicName, clientID string, by domain.Waker) error
	// Detach drops a subscription whose connection is going away, unless it was taken over already.
	// It is local to this process and never fails.
	Detach(sub *domain.Subscription)
	// Topics returns every topic's stats, sorted by name: cluster-wide on a shared engine.
	Topics(ctx context.Context) ([]domain.TopicStats, error)
	// Counts returns the numbers of topics and subscriptions, cluster-wide on a shared engine
	// (for /health).
	Counts(ctx context.Context) (topics, subscriptions int, err error)
	// Replicas returns the processes that share the topics, this one first: one on the memory
	// engine, every replica with a fresh heartbeat on a shared engine (for the web console).
	Replicas(ctx context.Context) ([]domain.ReplicaStats, error)
	// LocalCounts returns this process's topics and subscriptions with no I/O, cheaply enough to
	// be read at every scrape (for the gauges).
	LocalCounts() (topics, subscriptions int)
	// Ready returns nil when the engine takes work (for /readyz); the memory engine always does.
	Ready(ctx context.Context) error
}

// Observer hears about the steps inside an operation, so that telemetry can turn them into child
// spans and histograms without the service or the domain knowing about either. Implementations must
// be safe for concurrent use and cheap: they run on the publish path.
type Observer interface {
	// Published reports a message accepted by its topic, with the timings of history append and
	// fan-out. ctx is the publish operation's context.
	Published(ctx context.Context, ev *domain.Event, st domain.PublishStats)
	// Replayed reports history queued for a subscriber's last_n or resume.
	Replayed(ctx context.Context, topic domain.TopicName, n int, start, end time.Time)
}

// Clock tells the time; tests replace it.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// SystemClock is the wall clock.
var SystemClock Clock = systemClock{}

// NopObserver ignores every report.
type NopObserver struct{}

// Published does nothing.
func (NopObserver) Published(context.Context, *domain.Event, domain.PublishStats) {}

// Replayed does nothing.
func (NopObserver) Replayed(context.Context, domain.TopicName, int, time.Time, time.Time) {}

// SubscribeRequest asks for clientID to receive topic's events on owner, after up to LastN of its
// history or, with Resume, after the events of Epoch it has up to SinceSeq (Resume wins over LastN).
type SubscribeRequest struct {
	Topic    domain.TopicName
	ClientID string
	LastN    int
	Owner    domain.Waker
	Resume   bool
	SinceSeq uint64
	Epoch    string
}

// UnsubscribeRequest ends clientID's subscription to Topic, for Owner (the connection asking; its
// principal must be the subscription's, see domain.Holder). A nil Owner is the anonymous principal.
type UnsubscribeRequest struct {
	Topic    domain.TopicName
	ClientID string
	Owner    domain.Waker
}

// PublishRequest is one message for Topic.
type PublishRequest struct {
	Topic   domain.TopicName
	Message domain.Message
}

// PublishItem is one publish of a batch (API.PublishBatch): its context and request going in,
// its outcome coming out.
type PublishItem struct {
	Ctx   context.Context
	Req   PublishRequest
	Event *domain.Event
	Err   error
}

// BatchPublisher is an optional interface of a Broker whose every call costs a round trip to its
// store: it publishes several messages to one topic in one round trip, in order (their seqs follow
// the slice's order). An engine without it is called once per message, which is what an
// in-process engine wants anyway.
type BatchPublisher interface {
	// PublishBatch publishes every entry's Msg to name and sets its Event and Stats, or its Err:
	// an entry that fails is not stored (an engine that cannot tell, because its store went away
	// before answering, fails it with KindUnavailable: nothing is acknowledged that is not known
	// stored). ctx bounds the whole call.
	PublishBatch(ctx context.Context, name domain.TopicName, entries []BatchEntry)
}

// BatchEntry is one message of a BatchPublisher call and its outcome.
type BatchEntry struct {
	Msg   domain.Message
	Event *domain.Event
	Stats domain.PublishStats
	Err   error
}

// Health is the service's summary for /health.
type Health struct {
	Uptime        time.Duration
	Topics        int
	Subscriptions int
}

// API is what transports call. *Service implements it; telemetry decorates it.
type API interface {
	CreateTopic(ctx context.Context, name domain.TopicName) error
	DeleteTopic(ctx context.Context, name domain.TopicName) error
	ListTopics(ctx context.Context) ([]domain.TopicStats, error)
	Stats(ctx context.Context) ([]domain.TopicStats, error)
	Health(ctx context.Context) (Health, error)
	Subscribe(ctx context.Context, req SubscribeRequest) (domain.SubscribeResult, error)
	Unsubscribe(ctx context.Context, req UnsubscribeRequest) error
	Publish(ctx context.Context, req PublishRequest) (*domain.Event, error)
	// PublishBatch publishes items in order, each as Publish would, and sets every item's Event or
	// Err: one item's refusal does not stop the others. Each item keeps its own context (its
	// frame's trace). The slice is the caller's, in and out: an implementation may replace an
	// item's Ctx and Req (a decorator puts its span there) while the call runs.
	PublishBatch(items []PublishItem)
	// BatchesPublishes reports whether PublishBatch saves anything over Publish: true when the
	// engine serves a batch in one round trip (a BatchPublisher). When false, a transport should
	// publish one at a time, so that whatever it looks at between two publishes (the stall gate)
	// still sees every one.
	BatchesPublishes() bool
	// Detach releases the subscriptions of a connection that is closing and returns how many queued
	// events they held that will never be delivered. It is not an operation a client asked for, so
	// it is neither traced nor counted as one.
	Detach(subs []*domain.Subscription) (lost uint64)
}

// Service implements API over a Broker.
type Service struct {
	broker   Broker
	observer Observer
	clock    Clock
	started  time.Time
	draining atomic.Bool
}

// Options are the Service's collaborators; zero fields get no-op or system defaults.
type Options struct {
	Observer Observer
	Clock    Clock
}

// New returns a Service over broker.
func New(broker Broker, opts Options) *Service {
	if opts.Observer == nil {
		opts.Observer = NopObserver{}
	}
	if opts.Clock == nil {
		opts.Clock = SystemClock
	}
	return &Service{broker: broker, observer: opts.Observer, clock: opts.Clock, started: opts.Clock.Now()}
}

// errDraining is returned for new work once shutdown has begun.
var errDraining = domain.Errorf(domain.KindUnavailable, "server is shutting down")

// BeginDrain refuses every new operation from now on; operations under way complete. It is the
// first step of graceful shutdown.
func (s *Service) BeginDrain() { s.draining.Store(true) }

// readyTimeout bounds how long Ready waits for the engine: a probe must answer before its own
// deadline (Kubernetes' default is 1 s) even when the engine hangs.
const readyTimeout = 800 * time.Millisecond

// Ready returns nil while the service takes new work: it is not draining and its engine is
// ready. It waits for the engine at most readyTimeout.
func (s *Service) Ready(ctx context.Context) error {
	if s.draining.Load() {
		return errDraining
	}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	return s.broker.Ready(ctx)
}

func (s *Service) admit() error {
	if s.draining.Load() {
		return errDraining
	}
	return nil
}

// CreateTopic creates an empty topic.
func (s *Service) CreateTopic(ctx context.Context, name domain.TopicName) error {
	if err := s.admit(); err != nil {
		return err
	}
	return s.broker.CreateTopic(ctx, name)
}

// DeleteTopic deletes a topic; its subscribers are told and unsubscribed.
func (s *Service) DeleteTopic(ctx context.Context, name domain.TopicName) error {
	if err := s.admit(); err != nil {
		return err
	}
	return s.broker.DeleteTopic(ctx, name)
}

// ListTopics returns every topic with its subscriber count, sorted by name.
func (s *Service) ListTopics(ctx context.Context) ([]domain.TopicStats, error) {
	return s.broker.Topics(ctx)
}

// Stats returns every topic's counters, sorted by name.
func (s *Service) Stats(ctx context.Context) ([]domain.TopicStats, error) {
	return s.broker.Topics(ctx)
}

// Health returns uptime and totals.
func (s *Service) Health(ctx context.Context) (Health, error) {
	topics, subs, err := s.broker.Counts(ctx)
	if err != nil {
		return Health{}, err
	}
	return Health{Uptime: s.clock.Now().Sub(s.started), Topics: topics, Subscriptions: subs}, nil
}

// Replicas returns the processes that serve the topics, this one first. It is not part of API:
// no client operation needs it; the admin listener's web console reads it.
func (s *Service) Replicas(ctx context.Context) ([]domain.ReplicaStats, error) {
	return s.broker.Replicas(ctx)
}

// Subscribe registers a subscription and queues its replay.
func (s *Service) Subscribe(ctx context.Context, req SubscribeRequest) (domain.SubscribeResult, error) {
	if err := s.admit(); err != nil {
		return domain.SubscribeResult{}, err
	}
	if req.ClientID == "" {
		return domain.SubscribeResult{}, domain.Errorf(domain.KindInvalid, "client_id is required")
	}
	if req.LastN < 0 {
		return domain.SubscribeResult{}, domain.Errorf(domain.KindInvalid, "last_n must be a non-negative integer")
	}
	if req.Resume && req.Epoch == "" {
		return domain.SubscribeResult{}, domain.Errorf(domain.KindInvalid, "epoch is required with since_seq")
	}
	start := s.clock.Now()
	res, err := s.broker.Subscribe(ctx, req.Topic, domain.SubscribeSpec{
		ClientID: req.ClientID, Owner: req.Owner, LastN: req.LastN,
		Resume: req.Resume, SinceSeq: req.SinceSeq, Epoch: req.Epoch,
	})
	if err != nil {
		return res, err
	}
	if req.LastN > 0 || req.Resume {
		s.observer.Replayed(ctx, req.Topic, res.Replayed, start, s.clock.Now())
	}
	return res, nil
}

// Unsubscribe ends a subscription; unsubscribing twice is not an error.
func (s *Service) Unsubscribe(ctx context.Context, req UnsubscribeRequest) error {
	if err := s.admit(); err != nil {
		return err
	}
	if req.ClientID == "" {
		return domain.Errorf(domain.KindInvalid, "client_id is required")
	}
	return s.broker.Unsubscribe(ctx, req.Topic, req.ClientID, req.Owner)
}

// Publish accepts a message: when it returns nil the message is in the topic's history and in every
// current subscriber's queue.
func (s *Service) Publish(ctx context.Context, req PublishRequest) (*domain.Event, error) {
	if err := s.checkPublish(req); err != nil {
		return nil, err
	}
	ev, st, err := s.broker.Publish(ctx, req.Topic, req.Message)
	if err != nil {
		return nil, err
	}
	s.observer.Published(ctx, ev, st)
	return ev, nil
}

// BatchesPublishes reports whether the engine serves a batch in one round trip.
func (s *Service) BatchesPublishes() bool {
	_, ok := s.broker.(BatchPublisher)
	return ok
}

// PublishBatch publishes items in order. An engine that is a BatchPublisher gets each run of
// items to one topic in one call, under the first item's context (the store's round trip is one
// operation; every item's own context still reaches the Observer); any other engine gets one
// Publish per item, exactly as if the items had come one by one.
func (s *Service) PublishBatch(items []PublishItem) {
	bp, ok := s.broker.(BatchPublisher)
	if !ok || len(items) == 1 {
		for i := range items {
			items[i].Event, items[i].Err = s.Publish(items[i].Ctx, items[i].Req)
		}
		return
	}
	for len(items) > 0 {
		n := 1
		for n < len(items) && items[n].Req.Topic == items[0].Req.Topic {
			n++
		}
		s.publishRun(bp, items[:n])
		items = items[n:]
	}
}

// publishRun publishes items, all to one topic, with one call to the engine. Items the service
// refuses itself (draining, a bad id) are left out of the call and answered.
func (s *Service) publishRun(bp BatchPublisher, items []PublishItem) {
	entries := make([]BatchEntry, 0, len(items))
	at := make([]int, 0, len(items)) // entries[k] is items[at[k]]
	for i := range items {
		if err := s.checkPublish(items[i].Req); err != nil {
			items[i].Err = err
			continue
		}
		entries = append(entries, BatchEntry{Msg: items[i].Req.Message})
		at = append(at, i)
	}
	if len(entries) == 0 {
		return
	}
	bp.PublishBatch(items[at[0]].Ctx, items[0].Req.Topic, entries)
	for k, e := range entries {
		it := &items[at[k]]
		if e.Err != nil {
			it.Err = e.Err
			continue
		}
		it.Event = e.Event
		s.observer.Published(it.Ctx, e.Event, e.Stats)
	}
}

// checkPublish refuses what no engine may be asked to publish.
func (s *Service) checkPublish(req PublishRequest) error {
	if err := s.admit(); err != nil {
		return err
	}
	if req.Message.ID == uuid.Nil {
		return domain.Errorf(domain.KindInvalid, "message.id must be a valid UUID")
	}
	return nil
}

// Detach releases a closing connection's subscriptions.
func (s *Service) Detach(subs []*domain.Subscription) (lost uint64) {
	for _, sub := range subs {
		s.broker.Detach(sub)
		lost += sub.Abandon()
	}
	return lost
}
