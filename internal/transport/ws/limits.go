package ws

import (
	"context"
	"time"

	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/transport/wire"
	"github.com/pubsubd/pubsub/telemetry"
)

// tokenBucket limits a connection's publishes: burst at once, then rate a second. It is owned by
// the connection's reader (dispatch runs there, one frame at a time), so it needs no lock, and it
// reads no clock of its own: the reader has just noted the frame's arrival time (frameRead), and
// take is given that.
type tokenBucket struct {
	perNano float64 // tokens added per nanosecond; 0: no limit
	burst   float64
	tokens  float64
	last    int64 // unix nanoseconds of the last refill
}

func newTokenBucket(perSecond float64, burst int, now int64) tokenBucket {
	if perSecond <= 0 {
		return tokenBucket{}
	}
	b := float64(max(burst, 1))
	return tokenBucket{perNano: perSecond / 1e9, burst: b, tokens: b, last: now}
}

// take spends a token at now (unix nanoseconds) and reports whether there was one.
func (b *tokenBucket) take(now int64) bool {
	if b.perNano == 0 {
		return true
	}
	if now > b.last {
		b.tokens = min(b.burst, b.tokens+float64(now-b.last)*b.perNano)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// mayPublish spends one of the connection's publish tokens, or answers the request with
// RATE_LIMITED and reports false.
func (c *conn) mayPublish(ctx context.Context, req wire.Request) bool {
	if c.rd.publishes.take(c.rd.lastRead.Load()) {
		return true
	}
	c.refuseLimit(ctx, req, telemetry.LimitPublishRate, domain.Errorf(domain.KindRateLimited,
		"publish rate limit reached (%g a second, bursts of %d); slow down and retry", c.s.cfg.PublishRate, max(c.s.cfg.PublishBurst, 1)))
	return false
}

// maySubscribe reports whether the connection may hold one more subscription, or answers the
// request with RATE_LIMITED (the code of a limit the client can get back under) and reports false.
// Taking over or renewing a client id this connection holds already adds nothing, and every
// subscription that has ended (unsubscribed, topic deleted) has given its slot back.
func (c *conn) maySubscribe(ctx context.Context, req wire.Request) bool {
	limit := c.s.cfg.MaxSubscriptionsPerConn
	if limit <= 0 {
		return true
	}
	if n, holds := c.out.live(req.Topic, req.ClientID); holds || n < limit {
		return true
	}
	c.refuseLimit(ctx, req, telemetry.LimitConnSubscriptions, domain.Errorf(domain.KindRateLimited,
		"this connection holds %d subscriptions, the most allowed; unsubscribe from one first", limit))
	return false
}

// refuseLimit answers a request a limit refused: counted by limit and by code, logged at a bounded
// rate, and the error echoes the request_id.
func (c *conn) refuseLimit(ctx context.Context, req wire.Request, limit string, err error) {
	code, msg := wire.WSError(err)
	c.s.tel.Metrics.LimitRejectedFor(limit, string(req.Topic), c.remote)
	c.s.tel.Metrics.Error(code)
	c.logRefusal(ctx, "ws request refused by a limit", "limit", limit, "type", req.Type, "topic", string(req.Topic))
	c.enqueue(reply{typ: wire.TypeError, data: wire.AppendError(nil, req.RequestID, "", code, msg, time.Now())})
}

// live counts the connection's subscriptions that have not ended, and reports whether one of them
// is topic's for clientID.
func (o *outbox) live(topic domain.TopicName, clientID string) (n int, holds bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, s := range o.subs {
		if s.Ended() != domain.Live {
			continue
		}
		n++
		if s.Topic == topic && s.ClientID == clientID {
			holds = true
		}
	}
	return n, holds
}
