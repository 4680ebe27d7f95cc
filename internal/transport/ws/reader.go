package ws

import (
	"context"
	"errors"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/transport/wsframe"
	"github.com/pubsubd/pubsub/telemetry"
)

// Reader states. A reader that has been idle for a clock period stops and parks its socket (see
// parker); input restarts it. Teardown finishes a parked reader itself.
const (
	readRunning int32 = iota
	readParked
	readDone
)

// reader reads and serves a connection's client frames. One reader goroutine runs at a time: a
// reader idle for a clock period parks its socket in the server's parker and ends, and the parker
// starts a new one when input arrives (conn.resume).
//
// fr, quick, quickReads, publishes and batch belong to the running reader goroutine. state moves
// between running, parked and done under the parker's lock. busy, lastRead and msgStart are set by the reader and
// read (busy reset) by the server's clock; parkReq is set by the clock and taken by the reader;
// stop is set by whoever ends the connection (the clock, for a message past MessageTimeout);
// peerClosed is set by the reader and read by teardown. done is closed once, when reading is over.
// fr and batch are dropped (fr's budget given back) by the reader goroutine when reading ends, and
// released by it before it parks: a parked or finished reader holds no buffer.
type reader struct {
	fr         wsframe.Stream
	quick      bool // restarted by the parker: read without waiting, and park again if that was all
	quickReads int  // reads that brought data since the restart
	rc         syscall.RawConn
	fd         int32 // the socket's descriptor, for the parker; -1 if none

	state      atomic.Int32
	busy       atomic.Bool  // a frame was served since the clock last looked
	parkReq    atomic.Bool  // the clock asks the idle reader to park
	stop       atomic.Bool  // the reader must end, not park; no message timeout is counted after it
	lastRead   atomic.Int64 // unix nanoseconds of the last frame read
	msgStart   atomic.Int64 // unix nanoseconds when the message being read began to arrive; 0: none
	peerClosed atomic.Bool  // the client sent a close frame: teardown echoes it
	publishes  tokenBucket  // the publish rate limit; dispatch's, on the reader goroutine
	batch      publishBatch // publishes read and not yet served; the reader goroutine's
	done       chan struct{}
}

// init readies a new connection's reader; its buffers beyond a small share come from budget.
func (r *reader) init(rc syscall.RawConn, fd int32, maxFrame int64, budget *domain.Budget) {
	r.fr, r.rc, r.fd, r.done = newFrameReader(maxFrame, budget), rc, fd, make(chan struct{})
	r.lastRead.Store(time.Now().UnixNano())
	r.busy.Store(true) // a new connection is not idle: the clock's first look must not park it
}

// armReadDeadline sets the read deadline from the last frame read: a peer silent for longer than a
// ping interval and its timeout is dead.
func (c *conn) armReadDeadline() {
	if c.s.cfg.PingInterval <= 0 {
		_ = c.nc.SetReadDeadline(time.Time{})
		return
	}
	_ = c.nc.SetReadDeadline(time.Unix(0, c.rd.lastRead.Load()).Add(c.s.cfg.PingInterval + c.s.cfg.PingTimeout))
}

// frameRead notes that the peer is alive and the reader busy, and moves the read deadline.
func (c *conn) frameRead() {
	now := time.Now()
	c.rd.lastRead.Store(now.UnixNano())
	c.rd.busy.Store(true)
	if c.s.cfg.PingInterval > 0 {
		_ = c.nc.SetReadDeadline(now.Add(c.s.cfg.PingInterval + c.s.cfg.PingTimeout))
	}
}

// stopReading ends the reader, which ends the writer: a running reader's read fails at once, a
// parked one is finished here.
func (c *conn) stopReading() {
	c.endReading()
	_ = c.nc.SetReadDeadline(time.Now())
}

// endReading keeps the reader from parking from now on and finishes it if it is parked: the socket
// may then be closed, since no parked reader watches it. A running reader ends on its own.
func (c *conn) endReading() {
	c.rd.stop.Store(true) // read by park under the parker's lock, so no park can follow
	if c.s.parker != nil && c.s.parker.take(c, readDone) {
		c.readerFinished()
	}
}

// readerFinished is the end of reading: the writer is told to tear the connection down.
func (c *conn) readerFinished() {
	close(c.rd.done)
	c.out.readerExited.Store(true)
	c.Wake()
}

// readLoop runs the reader until the connection's input ends, or until it parks.
func (c *conn) readLoop() {
	if c.serveReads() {
		c.rd.fr.Drop() // the buffers go back to the server's budget
		c.rd.batch.release()
		c.rd.state.Store(readDone)
		c.readerFinished()
	}
}

// resume is a reader restarted by the parker.
func (c *conn) resume() {
	c.rd.quick, c.rd.quickReads = c.rd.rc != nil, 0
	c.readLoop()
}

// errPeerClosed ends reading after the client's close frame.
var errPeerClosed = errors.New("peer sent a close frame")

// serveReads reads and serves frames. It returns true when reading is over, false when the reader
// has parked the connection.
func (c *conn) serveReads() (finished bool) {
	defer func() {
		if c.panicked(recover(), telemetry.PanicReader) {
			finished = true
		}
	}()
	c.armReadDeadline()
	fr := &c.rd.fr
	for {
		if c.rd.stop.Load() {
			c.flushPublishes() // read, so published and answered: never dropped
			// A deadline set to end the reader may have been moved by frameRead.
			c.readFailed(os.ErrDeadlineExceeded)
			return true
		}
		op, p, ok, err := fr.Next()
		if err == nil && ok {
			c.frameRead()
			err = c.serveFrame(op, p)
			if !fr.Pending() && c.rd.msgStart.Load() != 0 {
				c.rd.msgStart.Store(0) // the message is whole: its clock stops
			}
		}
		if err != nil {
			c.flushPublishes() // the publishes read before the frame that ends reading are served
			c.readFailed(err)
			return true
		}
		if ok {
			continue
		}
		// Every complete frame buffered has been served: the publishes among them go to the
		// service together, before the reader waits for more.
		c.flushPublishes()
		if !fr.Idle() && c.rd.msgStart.Load() == 0 {
			// A message has begun to arrive: the server's clock gives it MessageTimeout to finish,
			// pings in between or not (see Server.lookIdle).
			c.rd.msgStart.Store(time.Now().UnixNano())
		}
		if c.rd.quick {
			parked, again, qerr := c.readQuick()
			if parked {
				return false
			}
			if again || qerr == nil {
				continue
			}
			err = qerr
		} else {
			n, rerr := c.nc.Read(fr.Spare())
			fr.Filled(n)
			if n > 0 || rerr == nil {
				continue
			}
			err = rerr
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && c.rd.parkReq.Swap(false) && !c.rd.stop.Load() {
			// The server's clock found this reader idle: park unless a frame is half read.
			if c.tryPark() {
				return false
			}
			c.armReadDeadline()
			continue
		}
		c.readFailed(err)
		return true
	}
}

// readQuick is one read of a reader restarted by the parker, which does not wait for input: woken
// for one burst (a pong, a request now and then), it parks again at once instead of holding a
// goroutine until the clock's next look. again: data came, read on; parked: the reader has parked;
// neither with a nil error: the connection is busy, so read like any running reader from now on.
func (c *conn) readQuick() (parked, again bool, err error) {
	fr := &c.rd.fr
	n, err := tryRead(c.rd.rc, fr.Spare())
	fr.Filled(n)
	if n > 0 {
		c.rd.quickReads++
		return false, true, nil
	}
	if err != nil {
		return false, false, err
	}
	if c.rd.quickReads <= 1 && c.tryPark() {
		return true, false, nil
	}
	c.rd.quick = false
	return false, false, nil
}

// tryPark parks the idle reader's socket unless a frame is half read; it reports whether it did.
func (c *conn) tryPark() bool {
	if !c.rd.fr.Idle() || c.s.parker == nil {
		return false
	}
	c.rd.fr.Release()
	c.rd.batch.release()
	return c.s.parker.park(c) == nil
}

func (c *conn) readFailed(err error) {
	err = closeErrorOf(err)
	var ce *closeError
	switch {
	case errors.Is(err, errPeerClosed):
	case errors.As(err, &ce):
		// Teardown sends our close frame with this code and reason.
		c.setClose(ce.code, ce.reason)
		c.refused(ce)
	default:
		c.setClose(websocket.CloseAbnormalClosure, "")
	}
}

// refused counts a connection closed for a client's fault against its limit, if it has one, and
// logs it at the refusal log's bounded rate.
func (c *conn) refused(ce *closeError) {
	if ce.limit != "" {
		c.s.tel.Metrics.LimitRejectedFor(ce.limit, "", c.remote)
	}
	c.s.tel.Refusals.Warn(context.Background(), "ws connection refused", "conn_id", c.id, "remote", c.remote,
		"close_code", ce.code, "reason", ce.reason, "limit", ce.limit)
}

// messageTimedOut closes a connection whose message has not arrived whole within MessageTimeout:
// a client that starts a message and keeps it open (with pings, say) must not hold its buffers
// for ever. Called by the server's clock.
func (c *conn) messageTimedOut() {
	if c.rd.stop.Swap(true) {
		return // ending already (a look before this one timed it out): counted once
	}
	ce := &closeError{code: websocket.ClosePolicyViolation, reason: "message not complete within PUBSUB_MESSAGE_TIMEOUT",
		limit: telemetry.LimitMessageTimeout}
	c.setClose(ce.code, ce.reason)
	c.refused(ce)
	c.stopReading()
}
