package ws

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pubsubd/pubsub/internal/transport/wire"
	"github.com/pubsubd/pubsub/internal/transport/wsframe"
	"github.com/pubsubd/pubsub/telemetry"
)

// The ways a connection ends, each run by the owner of its write side:
//   - disconnectSlow: the disconnect policy tripped: what is built goes out, then SLOW_CONSUMER, 1008;
//   - shutdown: graceful stop: flush, server_shutdown, 1001, wait briefly for the client's close;
//   - teardown: always last: our close frame if one is owed, linger, close the socket, release the
//     subscriptions, account for the connection.

var errSlowConsumer = errors.New("slow consumer disconnected")

// setClose records why the connection ends unless a reason was recorded already.
func (c *conn) setClose(code int, msg string) {
	c.endMu.Lock()
	if c.closeCode == 0 {
		c.closeCode, c.closeMsg = code, msg
	}
	c.endMu.Unlock()
}

// closeReason returns the recorded close code (1006 when none) and reason.
func (c *conn) closeReason() (int, string) {
	c.endMu.Lock()
	defer c.endMu.Unlock()
	if c.closeCode == 0 {
		return websocket.CloseAbnormalClosure, c.closeMsg
	}
	return c.closeCode, c.closeMsg
}

// writeClose writes our close frame, by deadline.
func (c *conn) writeClose(code int, reason string, deadline time.Time) {
	frame := wsframe.AppendFrame(nil, wsframe.OpClose, nil, websocket.FormatCloseMessage(code, reason))
	_ = c.w.sock.writeBy(frame, deadline)
	c.w.closeSent = true
}

// disconnectSlow applies the disconnect policy to the subscription the batch stopped at: what the
// batch holds goes out, then SLOW_CONSUMER and close 1008.
func (c *conn) disconnectSlow() error {
	b := &c.w.b
	sub, lost := b.overflow, b.lost
	now := time.Now()
	m := c.s.tel.Metrics
	m.Dropped(telemetry.DropOverflowDisconnect, lost)
	m.SlowDisc.Inc()
	m.Error(wire.CodeSlowConsumer)
	b.text(wire.TypeError, wire.AppendError(nil, nil, string(sub.Topic), wire.CodeSlowConsumer,
		"subscriber queue overflowed ("+strconv.FormatUint(lost, 10)+" messages undelivered); disconnecting", now))
	c.logf(context.Background(), slog.LevelWarn, "slow consumer disconnected", "topic", string(sub.Topic), "client_id", sub.ClientID,
		"dropped", lost, "policy", "disconnect")
	m.Incidents.Add(telemetry.Incident{Kind: telemetry.IncidentSlowConsumer, Policy: "disconnect",
		Topic: string(sub.Topic), ClientID: sub.ClientID, Dropped: lost})
	c.setClose(websocket.ClosePolicyViolation, "slow consumer")
	_ = c.w.sock.write(b.buf, now)
	c.w.stats.add(c.s.tel, &b.st, time.Now())
	b.release()
	c.writeClose(websocket.ClosePolicyViolation, "slow consumer", c.s.writeDeadline(time.Now()))
	return errSlowConsumer
}

// shutdown is the connection's part of a graceful stop: flush what is queued, say server_shutdown,
// close with 1001, and give the client a moment to answer the close before the socket goes.
func (c *conn) shutdown() {
	c.setClose(websocket.CloseGoingAway, "server shutting down")
	if err := c.flush(); err != nil {
		return
	}
	data := appendFrame(nil, wire.AppendInfo(nil, "", wire.InfoServerShutdown, time.Now()))
	if err := c.w.sock.write(data, time.Now()); err != nil {
		return
	}
	c.s.tel.Metrics.FramesOut(wire.TypeInfo, 1, len(data))
	c.writeClose(websocket.CloseGoingAway, "server shutting down", c.s.writeDeadline(time.Now()))
	wait := time.NewTimer(time.Second)
	defer wait.Stop()
	select {
	case <-c.rd.done:
	case <-wait.C:
	}
}

// lingerTime bounds how long a closing connection waits for the client to read our close frame.
const lingerTime = time.Second

// linger lets our close frame reach the client. Closing a socket that still has unread input makes
// the kernel send a reset, and a reset can destroy the close frame before the client reads it (an
// oversized frame is the usual case: most of it is still unread). So: stop writing, and consume
// input until the client closes, for at most lingerTime.
func (c *conn) linger() {
	_ = c.w.sock.sock.CloseWrite()
	t := time.NewTimer(lingerTime)
	defer t.Stop()
	select {
	case <-c.rd.done:
	case <-t.C:
		return
	}
	// The reader has stopped (read limit, panic): read and drop what is left ourselves. The server's
	// clock may still move the read deadline to ask a reader it saw running to park: a timeout
	// before our own deadline is that, and draining goes on.
	deadline := time.Now().Add(lingerTime)
	left := int64(64 << 20)
	for left > 0 && time.Now().Before(deadline) {
		_ = c.nc.SetReadDeadline(deadline)
		n, err := io.CopyN(io.Discard, c.nc, left)
		left -= n
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			return // EOF: the client closed; or the socket failed
		}
	}
}

// teardown runs once, by the owner of the write side, after writing has stopped: the socket closes,
// the reader ends, the subscriptions are released and the connection is accounted for.
func (c *conn) teardown() {
	defer func() {
		if v := recover(); v != nil {
			// Half torn down: the socket may be open still. Close it and let the server forget us.
			c.reportPanic(v, telemetry.PanicWriter)
			_ = c.nc.Close()
			c.forget()
		}
	}()
	code, reason := c.closeReason()
	if (reason != "" || c.rd.peerClosed.Load()) && !c.w.closeSent {
		// We decided to close (a protocol error, a panic, a client that does not read its
		// replies): say so. Or the client did: echo its code, as RFC 6455 asks.
		c.writeClose(code, reason, time.Now().Add(time.Second))
	}
	if c.w.closeSent {
		c.linger()
	}
	c.endReading()
	_ = c.nc.Close()
	<-c.rd.done
	if c.out.behind.CompareAndSwap(true, false) {
		c.s.stall.leave()
	}
	subs := c.out.close()
	for sub := range c.w.episodes {
		c.endEpisode(sub, time.Now())
	}
	c.w.stats.publish(c.s.tel, time.Now())
	c.w.b.release()
	lost := c.s.api.Detach(subs)
	c.s.tel.Metrics.Dropped(telemetry.DropConnectionClosed, lost)
	c.s.tel.Metrics.ConnClosed(code)
	clientIDs := make([]string, 0, len(subs))
	for _, s := range subs {
		clientIDs = append(clientIDs, s.ClientID)
	}
	c.logf(context.Background(), slog.LevelInfo, "ws connection closed", "close_code", code, "reason", reason,
		"duration", time.Since(c.opened).Round(time.Millisecond).String(),
		"subscriptions", len(subs), "client_ids", clientIDs, "undelivered", lost)
	c.forget()
}
