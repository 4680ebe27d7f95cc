// Package brokertest is the contract every service.Broker engine must keep, written as one test
// suite. An engine's own tests call Run with a constructor; the in-memory engine is the reference
// that the suite was written against, and any other engine (Redis, ...) must pass it unchanged.
//
// The contract, as the suite checks it:
//
//   - Topics are created once (again is domain.KindExists) and deleted once (again, or any operation
//     on a missing topic, is domain.KindNotFound). Deleting a topic ends its subscriptions with
//     domain.TopicDeleted, wakes their owners and counts their queued events as lost; a topic created
//     again under the same name starts empty: seq from 1, no history, counters at zero.
//   - Publish gives each topic's messages seq 1, 2, 3, ...; the event carries the message unchanged,
//     the topic's Encoder output as Frame and the Now clock's time; and when Publish returns the event
//     is in the history and in the queue of every subscription of this broker, with PublishStats that
//     say so (Subscribers, Enqueued, DroppedOldest, Overflowed, MaxDepth, ordered timings).
//   - Subscribe returns a held subscription: nothing drains from it until Release. last_n queues up
//     to HistorySize of the newest events, oldest first, before any live event. The same owner
//     subscribing the same client id again re-arms its subscription (Renewed, same *Subscription, no
//     event twice); another owner takes it over (Replaced ends the old one, which still hands out
//     what it had queued, and its owner is woken). Unsubscribe is idempotent.
//   - Detach removes a subscription only while it is still the one registered for its client id: a
//     newer subscription (taken over, or on a topic deleted and created again) is never removed.
//   - Topics lists every topic sorted by name with its message and subscriber counts; Counts agrees.
//   - Topics are isolated, and under concurrent publishers and subscribers (run with -race) every
//     subscriber with room receives every event exactly once, in seq order.
//   - A full queue applies the topic's Policy: DropOldest keeps the newest events and reports how
//     many were dropped through Drain; Disconnect ends the stream with Overflow and the lost count.
//   - Bounds (issue #11): history keeps at most HistoryBytes of events (the newest, and last_n
//     replays what is still held); a queue over QueueBytes applies Policy as a full one does; the
//     Events budget is charged once per event however many holders share it, a publish that does
//     not fit first lets its topic's history give back and is then refused with
//     domain.LimitEventMemory taking no seq, and every byte comes back when the events leave;
//     MaxTopics and MaxSubscriptions refuse one more with domain.LimitTopics and
//     domain.LimitSubscriptions (a takeover is not one more). Refusals are domain.KindRateLimited.
//   - Resume (issue #12): every subscribe reports the topic's epoch (the hex of at least 64 random
//     bits, new at every create) and its latest seq. With Resume, when the epoch is the topic's,
//     SinceSeq is not ahead of seq and every event after SinceSeq is still in the history and within
//     RecoveryMax (0: HistorySize), exactly those events are queued and Recovered is true (none to
//     queue when SinceSeq == seq); otherwise Recovered is false and nothing is queued. Resume wins
//     over LastN, and a re-arm by the same owner follows the same rule.
//
// The suite never sleeps to synchronise: it waits on a Waker's channel with a deadline.
package brokertest
