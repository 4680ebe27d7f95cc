package ws_test

import (
	"runtime"
	"testing"
	"time"
)

// The fairness tests: the overflow policy is for subscribers that do not read. When publishers
// outpace the server's own delivery, the publishers are slowed (for a bounded time), and a
// subscriber whose socket is writable loses nothing (PROTOCOL.md, Delivery semantics).

const (
	burstSubs   = 10  // subscribers reading continuously
	burstPubs   = 100 // publisher connections
	burstEach   = 20  // messages each publisher sends without waiting for an ack
	burstRounds = 20
	// burstStallMax bounds one publish's stall in these tests (see runBurstRounds).
	burstStallMax = 2 * time.Second
)

// TestBurstingPublishersLoseNothingForReadingSubscribers: with the default queue (100) and policy
// (drop_oldest), 100 publishers bursting 20 pipelined publishes each at one topic do not make any
// of its 10 continuously reading subscribers lose a message: each gets all 2,000, each publisher's
// in order, none twice, and no SLOW_CONSUMER notice. Twenty rounds, on a topic each.
func TestBurstingPublishersLoseNothingForReadingSubscribers(t *testing.T) {
	runBurstRounds(t, burstRounds, burstSubs, burstPubs, burstEach)
}

// TestBurstingPublishersLoseNothingForReadingSubscribersUnderCPULoad is the same with a spinning
// process per CPU beside the server, so that its delivery falls behind more often and for longer.
func TestBurstingPublishersLoseNothingForReadingSubscribersUnderCPULoad(t *testing.T) {
	burnCPU(t, runtime.NumCPU(), 5*time.Minute)
	runBurstRounds(t, burstRounds, burstSubs, burstPubs, burstEach)
}
