package main

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// frameBuilder renders publish frames into one reused buffer:
//
//	{"type":"publish","topic":T,"message":{"id":UUID,"payload":
//	  {"k":topic,"p":pub,"s":seq,"t":sent,"x":"padding"}},"request_id":"seq.sent"}
//
// The request_id carries the send time, so the ack alone yields the
// publish->ack latency and no state is shared with the ack reader.
type frameBuilder struct {
	buf    []byte
	prefix []byte // up to the message id
	head   []byte // payload up to the sequence number
	idBase [16]byte
	gid    int // publisher number across the run, encoded in message ids
	size   int // target payload size in bytes
	pad    []byte
}

func newFrameBuilder(topic string, topicIdx, pubIdx, gid, size int, idBase [16]byte) *frameBuilder {
	b := &frameBuilder{gid: gid, size: size, idBase: idBase}
	b.prefix = []byte(`{"type":"publish","topic":` + strconv.Quote(topic) + `,"message":{"id":"`)
	b.head = []byte(`{"k":` + strconv.Itoa(topicIdx) + `,"p":` + strconv.Itoa(pubIdx) + `,"s":`)
	b.pad = bytes.Repeat([]byte{'x'}, size)
	b.buf = make([]byte, 0, len(b.prefix)+size+160)
	return b
}

// build renders the frame for sequence seq sent at time sent (nanotime).
// The result is valid until the next call.
func (b *frameBuilder) build(seq, sent int64) []byte {
	buf := append(b.buf[:0], b.prefix...)
	buf = appendMessageID(buf, b.idBase, b.gid, seq)
	buf = append(buf, `","payload":`...)
	start := len(buf)
	buf = append(buf, b.head...)
	buf = strconv.AppendInt(buf, seq, 10)
	buf = append(buf, `,"t":`...)
	buf = strconv.AppendInt(buf, sent, 10)
	buf = append(buf, `,"x":"`...)
	if n := b.size - (len(buf) - start) - 2; n > 0 {
		buf = append(buf, b.pad[:n]...)
	}
	buf = append(buf, `"}},"request_id":"`...)
	buf = strconv.AppendInt(buf, seq, 10)
	buf = append(buf, '.')
	buf = strconv.AppendInt(buf, sent, 10)
	buf = append(buf, `"}`...)
	b.buf = buf
	return buf
}

// appendMessageID appends a version-4-shaped UUID: 64 random bits per run,
// then the RFC 4122 variant, a 14-bit publisher number and a 48-bit
// sequence. Unique per message without a crypto/rand read per publish.
func appendMessageID(dst []byte, base [16]byte, gid int, seq int64) []byte {
	u := base
	u[6] = 0x40 | u[6]&0x0f
	u[8] = 0x80 | byte(gid>>8)&0x3f
	u[9] = byte(gid)
	for i := 0; i < 6; i++ {
		u[15-i] = byte(seq >> (8 * i))
	}
	const hexdig = "0123456789abcdef"
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hexdig[c>>4], hexdig[c&0x0f])
	}
	return dst
}

// parseRequestID splits a "seq.sent" request id.
func parseRequestID(b []byte) (seq, sent int64, ok bool) {
	dot := bytes.IndexByte(b, '.')
	if dot < 0 {
		return 0, 0, false
	}
	seq, ok1 := parseUint(b[:dot])
	sent, ok2 := parseUint(b[dot+1:])
	return seq, sent, ok1 && ok2 && seq >= 1
}

// publisher owns one connection that publishes to one topic. Its writing
// goroutine (publish) and reading goroutine (readReplies) share only the
// window semaphore and the acked counter the drain phase polls.
type publisher struct {
	topic  *topicRun
	index  int // within the topic
	server int // index in config.servers of the server it publishes through
	conn   *websocket.Conn
	bc     *bufConn
	fb     *frameBuilder
	// win holds one token per in-flight publish; the writer blocks when
	// it is full and the reader frees a token per reply.
	win      chan struct{}
	ackedCnt atomic.Int64 // acks so far, for the drain phase

	// Owned by publish until it returns.
	sent     int64
	writeErr error
	startAt  int64
	stopAt   int64

	// Owned by readReplies until it returns.
	res pubResult
}

// pubResult is what a publisher's reader saw.
type pubResult struct {
	acked       bitset // sequences the server acknowledged (accepted)
	answered    bitset // sequences that got any reply
	ackedN      int64
	errReplies  int64 // error frames answering a publish
	dupReplies  int64 // a second reply to one publish
	unmatched   int64 // replies whose request_id is not ours
	echoes      int64 // events on the publisher's own connection (it is not subscribed)
	ackLatency  histogram
	lastReplyAt int64
	tally       tally
}

// publishParams bound one publisher's run.
type publishParams struct {
	rate  float64 // msgs/s for this publisher, 0 = window-bound
	count int64   // max messages, 0 = unbounded
	drain time.Duration
}

// publish sends until stop is closed, count is reached or a write fails,
// then waits (up to p.drain) for the replies still in flight.
func (p *publisher) publish(stop <-chan struct{}, pp publishParams) {
	start := time.Now()
	p.startAt = nanotime()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var seq int64
loop:
	for pp.count == 0 || seq < pp.count {
		select {
		case <-stop:
			break loop
		default:
		}
		if pp.rate > 0 {
			// Message k is due (k-1)/rate after start; catch up in a burst
			// when late rather than drift.
			if due := int64(time.Since(start).Seconds()*pp.rate) + 1; seq >= due {
				p.flush()
				timer.Reset(time.Until(start.Add(time.Duration(float64(seq) / pp.rate * 1e9))))
				select {
				case <-timer.C:
					continue
				case <-stop:
					break loop
				}
			}
		}
		select {
		case p.win <- struct{}{}:
		default:
			// The window is full: the server is busy with what we sent,
			// so now is the time to hand it the buffered batch.
			p.flush()
			select {
			case p.win <- struct{}{}:
			case <-stop:
				break loop
			}
		}
		seq++
		if err := p.conn.WriteMessage(websocket.TextMessage, p.fb.build(seq, nanotime())); err != nil {
			p.writeErr = err
			break
		}
	}
	p.sent = seq
	p.stopAt = nanotime()
	p.flush()
	// Taking every token back means every publish has been answered.
	deadline := time.NewTimer(pp.drain)
	defer deadline.Stop()
	for range cap(p.win) {
		select {
		case p.win <- struct{}{}:
		case <-deadline.C:
			return
		}
	}
}

func (p *publisher) flush() {
	if p.bc != nil && p.writeErr == nil {
		if err := p.bc.Flush(); err != nil {
			p.writeErr = err
		}
	}
}

// readReplies reads acks and errors until the connection ends.
func (p *publisher) readReplies(closing *atomic.Bool) {
	r := &p.res
	var buf []byte
	var f frame
	for {
		var err error
		buf, err = readMessage(p.conn, buf)
		if err != nil {
			r.tally.connEnd(err, closing.Load())
			return
		}
		now := nanotime()
		if !scanFrame(buf, &f) {
			r.tally.add("unparseable_frame")
			continue
		}
		switch string(f.typ) {
		case "ack", "error":
			seq, sent, ok := parseRequestID(f.requestID)
			isAck := string(f.typ) == "ack"
			if !isAck {
				r.tally.add(string(f.errCode))
			}
			if !ok {
				r.unmatched++
				continue
			}
			if r.answered.set(seq) {
				r.dupReplies++
				continue
			}
			select {
			case <-p.win:
			default:
				r.unmatched++ // a reply to something never sent
				continue
			}
			r.lastReplyAt = now
			if !isAck {
				r.errReplies++
				continue
			}
			if string(f.status) != "ok" {
				r.tally.add("ack_status_not_ok")
			}
			r.acked.set(seq)
			r.ackedN++
			p.ackedCnt.Store(r.ackedN)
			r.ackLatency.record(now - sent)
		case "event":
			r.echoes++
		case "info":
			r.tally.info(f.msg)
		default:
			r.tally.add("unexpected_frame")
		}
	}
}

// open dials the publisher's connection.
func (p *publisher) open(ctx context.Context, wsURL string, header http.Header, size int) error {
	conn, bc, err := dial(ctx, wsURL, dialOptions{readBuf: 16 << 10, writeBuf: size + 512, buffered: true, header: header})
	if err != nil {
		return err
	}
	p.conn, p.bc = conn, bc
	return nil
}
