package ws

import (
	"context"
	"time"

	"github.com/pubsubd/pubsub/internal/service"
	"github.com/pubsubd/pubsub/internal/transport/wire"
)

// Bounds of a connection's publish batch: a batch is flushed once it holds this many publishes or
// this many payload bytes. Past a few dozen, a bigger batch saves no measurable time per publish,
// and the bytes bound what a connection holds decoded beyond its read buffer.
const (
	publishBatchMax      = 64
	publishBatchMaxBytes = 256 << 10
)

// publishBatch is a group commit of the publish frames the reader has already read: instead of a
// round trip to the engine per frame, the frames that came in together go to the service in one
// call (service.API.PublishBatch), which a networked engine serves with one round trip.
//
// Only an engine that gains from it gets batches (service.API.BatchesPublishes, the Redis
// engine); for any other, every publish is flushed as it is read, exactly as it was served before.
//
// It belongs to the reader goroutine. The reader flushes it before it reads from the socket or
// parks (so a publish never waits for a frame that has not come), before it serves any other
// frame or enqueues any other reply (so replies keep the order of the frames), when a publish to
// another topic comes, when it reaches its bounds, and when reading ends (a publish that was read
// is published and answered, never dropped).
type publishBatch struct {
	items []service.PublishItem
	ids   []*string // the items' request ids, for their replies
	bytes int
}

// pending reports whether publishes wait in the batch.
func (b *publishBatch) pending() bool { return len(b.items) > 0 }

// release lets go of the batch's slices, which grow to publishBatchMax entries for a pipelining
// client: a parked or finished reader holds none. The batch is empty whenever the reader parks or
// ends, since it is flushed before every read and when reading ends.
func (b *publishBatch) release() { b.items, b.ids, b.bytes = nil, nil, 0 }

// queuePublish adds an authorised, admitted publish to the batch, flushing first if it is for
// another topic than the batch's, and after if the batch is full.
func (c *conn) queuePublish(ctx context.Context, req wire.Request) {
	b := &c.rd.batch
	if b.pending() && b.items[0].Req.Topic != req.Topic {
		c.flushPublishes()
	}
	b.items = append(b.items, service.PublishItem{Ctx: ctx, Req: service.PublishRequest{Topic: req.Topic, Message: req.Message}})
	b.ids = append(b.ids, req.RequestID)
	b.bytes += len(req.Message.Payload)
	if len(b.items) >= publishBatchMax || b.bytes >= publishBatchMaxBytes || !c.s.batches {
		// An engine that is served one publish at a time gains nothing from a batch, and each of
		// its publishes must look at the stall gate: a batch admitted at once would add up to 64
		// events to queues the gate had found half full, and overflow them.
		c.flushPublishes()
	}
}

// flushPublishes publishes the batch, after a stall while the server's delivery is behind for
// subscribers that read (see stallGate), for at most the configured bound, and answers each
// publish in order. The reader reads nothing meanwhile, which is what slows the client. The look at
// the gate comes before the publishes, not after, and is one step with them (publishLocks): else
// every publishing connection would still add its events once the gate had closed, and a hundred
// publishers would overflow a queue of a hundred. The gate is looked at once per batch: the batch is
// one step, as one publish was.
func (c *conn) flushPublishes() {
	b := &c.rd.batch
	if !b.pending() {
		return
	}
	items, ids := b.items, b.ids
	// Emptied before the replies are enqueued: enqueue flushes a pending batch first.
	b.items, b.ids, b.bytes = b.items[:0], b.ids[:0], 0
	defer func() {
		clear(items) // the messages and contexts are not kept until the next batch
		clear(ids)
	}()
	topic := items[0].Req.Topic
	mu := c.s.pubLocks.of(string(topic))
	d := c.s.stall.admit(mu, c.s.cfg.PublishStallMax)
	func() {
		defer mu.Unlock() // deferred: a panic in the service must not leave the topic's publishers locked out
		if len(items) == 1 {
			// A lone publish is served as one: a batch of one would only cost the decorator's bookkeeping.
			items[0].Event, items[0].Err = c.s.api.Publish(items[0].Ctx, items[0].Req)
			return
		}
		c.s.api.PublishBatch(items)
	}()
	if d > 0 {
		c.s.tel.Metrics.PublisherStalled(d)
	}
	for i := range items {
		if items[i].Err != nil {
			c.replyError(items[i].Ctx, ids[i], string(topic), items[i].Err)
			continue
		}
		c.enqueue(reply{typ: wire.TypeAck, data: wire.AppendAck(nil, ids[i], string(topic), time.Now())})
	}
}
