package ws

import (
	"bytes"
	"context"
	"log/slog"
	"time"
	"unicode/utf8"

	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/service"
	"github.com/pubsubd/pubsub/internal/transport/wire"
	"github.com/pubsubd/pubsub/internal/transport/wsframe"
	"github.com/pubsubd/pubsub/telemetry"
)

// Dispatch runs on the reader goroutine: a frame becomes a service call, and its answer a reply in
// the outbox; a publish joins the connection's publish batch (publishbatch.go), served with the
// publishes read with it. Nothing here writes to the socket.

// serveFrame handles one message or control frame; p is only valid during the call.
func (c *conn) serveFrame(op byte, p []byte) error {
	switch op {
	case wsframe.OpText:
		// One pass over the whole message, the fragments joined: text must be UTF-8 (RFC 6455
		// 8.1), and a payload that is not would be stored and relayed verbatim.
		if !utf8.Valid(p) {
			c.s.tel.Metrics.FrameIn(wire.TypeInvalid, len(p))
			return errBadUTF8
		}
		// handle keeps nothing of the frame's bytes: the decoder copies what it retains.
		c.handle(p)
	case wsframe.OpBinary:
		c.s.tel.Metrics.FrameIn(wire.TypeInvalid, len(p))
		c.replyError(context.Background(), nil, "", domain.Errorf(domain.KindInvalid, "binary frames are not supported: send JSON text frames"))
	case wsframe.OpPing:
		// Answered by the writer, which owns the socket's write side.
		c.enqueue(reply{typ: "", data: bytes.Clone(p)})
	case wsframe.OpClose:
		code, err := parseClose(p)
		if err != nil {
			return err
		}
		c.setClose(code, "")
		c.rd.peerClosed.Store(true)
		return errPeerClosed
	}
	return nil // pongs only prove the peer alive, which reading them did
}

// handle serves one text frame. Every frame gets its own root context (or the client's trace).
func (c *conn) handle(data []byte) {
	req, err := wire.DecodeRequestLimited(data, c.s.cfg.Fields)
	typ := req.Type
	if err != nil {
		typ = wire.TypeInvalid
		if wire.IsLengthError(err) {
			c.s.tel.Metrics.LimitRejectedFor(telemetry.LimitFieldLength, "", c.remote)
		}
	}
	c.s.tel.Metrics.FrameIn(typ, len(data))
	ctx := c.s.tel.FrameContext(context.Background(), req.TraceParent, req.TraceState)
	if err != nil {
		c.replyError(ctx, req.RequestID, "", err)
		return
	}
	if req.Type != wire.TypePublish {
		// Served after the publishes read before it: a subscribe's last_n sees them, and its
		// reply follows theirs.
		c.flushPublishes()
	}
	switch req.Type {
	case wire.TypeSubscribe, wire.TypeUnsubscribe, wire.TypePublish:
		if !c.authorize(ctx, req) {
			return
		}
	}
	switch req.Type {
	case wire.TypePing:
		c.s.tel.Ping(ctx)
		c.enqueue(reply{typ: wire.TypePong, data: wire.AppendPong(nil, req.RequestID, time.Now())})
	case wire.TypeSubscribe:
		c.subscribe(ctx, req)
	case wire.TypeUnsubscribe:
		if err := c.s.api.Unsubscribe(ctx, service.UnsubscribeRequest{Topic: req.Topic, ClientID: req.ClientID, Owner: c}); err != nil {
			if c.refusedTakeover(ctx, req, err) {
				return
			}
			c.replyError(ctx, req.RequestID, string(req.Topic), err)
			return
		}
		c.ack(req)
	case wire.TypePublish:
		if !c.mayPublish(ctx, req) {
			return
		}
		c.queuePublish(ctx, req)
	}
}

func (c *conn) subscribe(ctx context.Context, req wire.Request) {
	if !c.maySubscribe(ctx, req) {
		return
	}
	res, err := c.s.api.Subscribe(ctx, service.SubscribeRequest{Topic: req.Topic, ClientID: req.ClientID, LastN: req.LastN, Owner: c,
		Resume: req.Resume, SinceSeq: req.SinceSeq, Epoch: req.Epoch})
	if err != nil {
		if c.refusedTakeover(ctx, req, err) {
			return
		}
		c.replyError(ctx, req.RequestID, string(req.Topic), err)
		return
	}
	if !res.Renewed {
		c.out.addSub(res.Sub)
	}
	if res.Replaced != nil {
		c.logf(ctx, slog.LevelInfo, "subscription taken over from another connection", "topic", string(req.Topic), "client_id", req.ClientID)
	}
	// The subscription's replay and events are held until this ack is in a batch.
	ack := wire.SubscribeAck{Epoch: res.Epoch, Seq: res.Seq, Resumed: res.Resumed, Recovered: res.Recovered}
	c.enqueue(reply{typ: wire.TypeAck, data: wire.AppendSubscribeAck(nil, req.RequestID, string(req.Topic), ack, time.Now()), release: res.Sub})
}

func (c *conn) ack(req wire.Request) {
	c.enqueue(reply{typ: wire.TypeAck, data: wire.AppendAck(nil, req.RequestID, string(req.Topic), time.Now())})
}

func (c *conn) replyError(ctx context.Context, requestID *string, topic string, err error) {
	code, msg := wire.WSError(err)
	c.s.tel.Metrics.Error(code)
	if code == wire.CodeInternal && domain.KindOf(err) == domain.KindInternal {
		c.logf(ctx, slog.LevelError, "ws request failed", "code", code, "error", err.Error(), "topic", topic)
	} else if domain.LimitOf(err) == "" { // a limit's refusal was logged where it was counted
		// A client's error: the metric counts every one, the log keeps a sample at a bounded rate,
		// so that a client sending bad frames in a loop cannot fill the disk.
		c.s.tel.Refusals.Warn(ctx, "ws request refused", "conn_id", c.id, "remote", c.remote, "code", code,
			"error", err.Error(), "topic", topic)
	}
	c.enqueue(reply{typ: wire.TypeError, data: wire.AppendError(nil, requestID, "", code, msg, time.Now())})
}
