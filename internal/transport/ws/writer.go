package ws

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/transport/wire"
	"github.com/pubsubd/pubsub/telemetry"
)

// writeSide is what the owner of a connection's write side owns (see outbox): the batch being built
// and written, the socket writer, the stats window and slow-consumer episodes, and whether our close
// frame is out. A flusher that stops short of something that would wait leaves it here for the
// connection's writer goroutine: the unwritten end of a batch (sock.pending, with b and started), or
// an overflow under the disconnect policy (b.overflow).
type writeSide struct {
	b         batch
	started   time.Time // when b's write began, for its delivery spans
	sock      sockWriter
	stats     statsWindow
	episodes  episodes
	snapshot  []*domain.Subscription // the subscriptions b is built from; reused
	closeSent bool
}

// Why a connection is served by a flusher or by a goroutine of its own. A fan-out to 1,000
// subscribers wakes 1,000 connections: starting or waking a goroutine for each, to make one small
// write, cost about as much as the write. So a woken connection nobody is writing for goes to the
// server's ready queue, and a small pool of flushers (one per CPU) writes for it without waiting.
// Only when a write must wait, or the work is more than a write, does the connection get its own
// writer goroutine, which the server's clock retires once it has been idle for a clock period: an
// idle connection holds no goroutine.

// stepResult is what one batch did.
type stepResult uint8

const (
	stepDone     stepResult = iota // everything ready is written
	stepMore                       // a full batch went out and more is waiting
	stepBlocked                    // the socket is full: the batch's end waits in sock.unsent
	stepOverflow                   // a subscription overflowed under the disconnect policy
)

// inlinePasses bounds a flusher's turn on one connection, so that a few busy connections cannot keep
// the flushers from the others: a busy one goes to the back of the ready queue.
const inlinePasses = 4

// ensureWriter gives the connection to a flusher unless someone is writing for it already.
func (c *conn) ensureWriter() {
	if !c.out.writing.Load() && c.out.writing.CompareAndSwap(false, true) {
		if c.inline {
			select {
			case c.s.ready <- c:
				return
			default: // the queue is full: this connection gets its own writer
			}
		}
		go c.writeLoop()
	}
}

// requeue puts a connection the caller owns at the back of the ready queue, or gives it a writer
// goroutine when the queue is full.
func (c *conn) requeue() {
	select {
	case c.s.ready <- c:
	default:
		c.handOff()
	}
}

// handOff gives the connection, still owned, to a new writer goroutine.
func (c *conn) handOff() {
	c.out.signal()
	go c.writeLoop()
}

// serveInline is a flusher's turn on the connection, which it owns: it writes whatever is ready
// without waiting, then lets go, requeues the connection, or hands it to a writer goroutine.
func (c *conn) serveInline() {
	defer func() {
		if c.panicked(recover(), telemetry.PanicFlusher) {
			go c.teardown()
		}
	}()
	select {
	case <-c.out.wake: // taken, so that a wake from now on is seen below
	default:
	}
	if c.out.readerExited.Load() || c.out.stopping.Load() {
		c.handOff()
		return
	}
	c.out.retire.Store(false) // meant for a writer goroutine; there is none
	c.publishStatsIfDue()
	r, err := c.flusherTurn()
	switch {
	case err != nil:
		c.setClose(websocket.CloseAbnormalClosure, "")
		go c.teardown()
		return
	case r == stepBlocked || r == stepOverflow:
		c.handOff()
		return
	case r == stepMore:
		c.requeue()
		return
	}
	c.out.writing.Store(false)
	// A wake that came while we owned the connection started nobody: look once more.
	if len(c.out.wake) > 0 && c.out.writing.CompareAndSwap(false, true) {
		c.requeue()
	}
}

// flusherTurn writes at most inlinePasses batches without waiting for the socket.
func (c *conn) flusherTurn() (stepResult, error) {
	c.takeHeartbeat()
	for range inlinePasses {
		r, err := c.step()
		if err != nil || r != stepMore {
			return r, err
		}
	}
	return stepMore, nil
}

// writeLoop is the connection's own writer goroutine.
func (c *conn) writeLoop() {
	if c.serveWrites() {
		c.teardown()
	}
}

// serveWrites writes until the connection is finished (true), or until the server's clock has seen
// it idle for a whole period (false): then the goroutine ends, and the next Wake finds a flusher.
func (c *conn) serveWrites() (finished bool) {
	defer func() {
		if c.panicked(recover(), telemetry.PanicWriter) {
			finished = true
		}
	}()
	for {
		<-c.out.wake
		// A batch a flusher left half-written goes out before anything else may be written.
		if err := c.finishBatch(); err != nil {
			return true
		}
		if c.out.readerExited.Load() {
			return true
		}
		if c.out.stopping.Load() {
			c.shutdown()
			return true
		}
		retire := c.out.retire.Swap(false)
		c.publishStatsIfDue()
		if err := c.flush(); err != nil {
			if !errors.Is(err, errSlowConsumer) {
				c.setClose(websocket.CloseAbnormalClosure, "")
			}
			return true
		}
		if retire && !c.out.busy.Load() {
			c.w.stats.publish(c.s.tel, time.Now())
			c.out.writing.Store(false)
			// Work that arrived after the wake found a writer marked running and started none:
			// look once more before leaving, and keep going if it is needed.
			if len(c.out.wake) == 0 && !c.out.readerExited.Load() && !c.out.stopping.Load() {
				return false
			}
			if !c.out.writing.CompareAndSwap(false, true) {
				return false // a new writer has taken over
			}
		}
	}
}

// flush writes everything that is ready, waiting for the socket when it is full. It first finishes
// what a flusher handed over.
func (c *conn) flush() error {
	if c.w.b.overflow != nil {
		return c.disconnectSlow()
	}
	if err := c.finishBatch(); err != nil {
		return err
	}
	c.takeHeartbeat()
	for {
		r, err := c.step()
		switch {
		case err != nil:
			return err
		case r == stepBlocked:
			if err := c.finishBatch(); err != nil {
				return err
			}
		case r == stepOverflow:
			return c.disconnectSlow()
		case r == stepDone:
			return nil
		}
	}
}

// step builds one batch and writes it without waiting for the socket.
func (c *conn) step() (stepResult, error) {
	w := &c.w
	now := time.Now()
	seen := c.out.backlogs.Load() // before the drain: see caughtUp
	replies := c.out.take(&w.snapshot)
	w.b.build(w.snapshot, replies, c.out.pingDue.Swap(false), now, c.s.sampled)
	if w.b.refused {
		c.bufferRefused()
	}
	c.settle(now)
	if w.b.overflow != nil {
		return stepOverflow, nil
	}
	if len(w.b.buf) == 0 {
		c.caughtUp(seen)
		return stepDone, nil
	}
	c.out.busy.Store(true)
	w.started = now
	// The time is read again: building a large batch takes a while, and a deadline armed from
	// the time before it may have passed already.
	done, err := w.sock.try(w.b.buf, w.b.tail, time.Now())
	if err != nil {
		c.lostBatch()
		return stepDone, err
	}
	if !done {
		return stepBlocked, nil
	}
	if c.out.stuck.Load() {
		c.out.stuck.Store(false) // a whole batch fitted: the client reads again
	}
	more := w.b.more
	c.written(time.Now())
	if more {
		return stepMore, nil
	}
	c.caughtUp(seen)
	return stepDone, nil
}

// finishBatch writes, waiting for room, the end of a batch that did not fit the socket, and
// accounts for the batch; it does nothing when no batch is waiting.
func (c *conn) finishBatch() error {
	if !c.w.sock.pending() {
		return nil
	}
	if err := c.w.sock.finish(time.Now(), c.socketStuck); err != nil {
		c.lostBatch()
		return err
	}
	c.written(time.Now())
	return nil
}

// bufferRefused counts a batch that the shared buffer budget kept at the connection's own
// allowance: it goes out in smaller pieces, and the client is not failed for it.
func (c *conn) bufferRefused() {
	c.s.tel.Metrics.LimitRejectedFor(telemetry.LimitBufferMemory, "", c.remote)
	c.s.tel.Refusals.Warn(context.Background(), "write batch kept small: the connection buffer budget is spent",
		"conn_id", c.id, "remote", c.remote, "limit", telemetry.LimitBufferMemory, "budget_bytes", c.s.cfg.Buffers.Limit())
}

// settle does what a built batch reports besides its bytes: drops start or extend slow-consumer
// episodes, ended subscriptions are forgotten.
func (c *conn) settle(now time.Time) {
	b := &c.w.b
	for _, d := range b.drops {
		c.w.episodes.note(d.sub, d.n, now)
		c.s.tel.Metrics.Error(wire.CodeSlowConsumer)
	}
	if b.deletedLost > 0 {
		c.s.tel.Metrics.Dropped(telemetry.DropTopicDeleted, b.deletedLost)
	}
	if len(b.ended) > 0 {
		c.out.forget(b.ended)
		for _, sub := range b.ended {
			c.endEpisode(sub, now)
		}
	}
}

// written accounts for a batch that is on the wire: counts, delivery spans, the episodes of
// subscribers that have caught up. The batch is reset for the next one.
func (c *conn) written(end time.Time) {
	w := &c.w
	w.stats.add(c.s.tel, &w.b.st, end)
	for _, t := range w.b.spans {
		c.s.tel.TraceDeliveries(t.events, t.clientID, w.started, end)
	}
	if len(w.episodes) > 0 {
		for _, sub := range w.episodes.caughtUp() {
			c.endEpisode(sub, end)
		}
	}
	w.b.reset()
}

// lostBatch accounts for a batch whose write failed: whatever it held never reached the client.
func (c *conn) lostBatch() {
	c.s.tel.Metrics.Dropped(telemetry.DropConnectionClosed, uint64(c.w.b.st.delivered))
	c.w.sock.drop()
	c.w.b.reset()
}

// caughtUp is the end of a turn with nothing left to write: the batch buffer goes back to the pool,
// and the connection no longer holds publishers back, unless a queue crossed its high-water mark
// since the drain (seen is the count of crossings before it): clearing that crossing's mark would
// let publishers overflow the queue with no crossing left to stop them. The wake that came with
// it brings another turn, which drains and clears it.
func (c *conn) caughtUp(seen uint32) {
	c.w.b.release()
	if c.out.behind.Load() && c.out.backlogs.Load() == seen && c.out.behind.CompareAndSwap(true, false) {
		c.s.stall.leave()
		if c.out.backlogs.Load() != seen { // a crossing came between the look and the swap
			c.holdPublishers()
		}
	}
}

// socketStuck notes that the client's socket has taken nothing for a whole stall bound: the client
// is not reading as fast as we write, so from now on its queue's overflow policy is what protects
// the server, and publishers are not held back for it.
func (c *conn) socketStuck() {
	c.out.stuck.Store(true)
	if c.out.behind.CompareAndSwap(true, false) {
		c.s.stall.leave()
	}
}

// publishStatsIfDue publishes the stats window when the server's clock asked for it.
func (c *conn) publishStatsIfDue() {
	if c.out.statsDue.Load() && c.out.statsDue.Swap(false) {
		c.w.stats.publish(c.s.tel, time.Now())
	}
}

// takeHeartbeat queues an info heartbeat if the server's clock asked for one. Heartbeats and pings
// are written like anything else, so that idle connections need no goroutine of their own for them.
func (c *conn) takeHeartbeat() {
	if c.out.beatDue.Load() && c.out.beatDue.Swap(false) {
		// Never waits: the writer is who makes room. Skipped when replies are waiting already:
		// those show the client that the server is alive just as well.
		c.out.add(reply{typ: wire.TypeInfo, data: wire.AppendInfo(nil, "", wire.InfoPing, time.Now())}, c.s.cfg.MaxPendingReplies, 0)
	}
}

// endEpisode logs sub's slow-consumer episode, if it had one, once, with what it cost the client.
func (c *conn) endEpisode(sub *domain.Subscription, now time.Time) {
	e := c.w.episodes.take(sub)
	if e == nil {
		return
	}
	c.logf(context.Background(), slog.LevelWarn, "slow consumer dropped messages", "topic", string(sub.Topic), "client_id", sub.ClientID,
		"dropped", e.lost, "policy", "drop_oldest", "duration", now.Sub(e.since).String())
	c.s.tel.Metrics.Incidents.Add(telemetry.Incident{Kind: telemetry.IncidentSlowConsumer, Policy: "drop_oldest",
		Topic: string(sub.Topic), ClientID: sub.ClientID, Dropped: e.lost})
}
