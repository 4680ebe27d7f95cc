package ws_test

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/pubsubd/pubsub/internal/config"
	"github.com/pubsubd/pubsub/internal/transport/wsframe"
	"github.com/pubsubd/pubsub/telemetry"
)

// Tests of the read side's limits (issue #11): memory follows the bytes that arrive, a byte budget
// for large messages, a deadline on unfinished messages, UTF-8, field lengths, bounded logs.

var zeroMask = [4]byte{} // leaves a payload as it is: what is sent is what the server reads

// rawFrame is a masked client frame; fin false leaves the message open for continuations.
func rawFrame(op byte, fin bool, payload []byte) []byte {
	f := wsframe.AppendFrame(nil, op, &zeroMask, payload)
	if !fin {
		f[0] &^= 0x80
	}
	return f
}

// frameHeader is the 14-byte header of a masked frame declaring n bytes of payload.
func frameHeader(op byte, n uint64) []byte {
	h := []byte{0x80 | op, 0x80 | 127}
	h = binary.BigEndian.AppendUint64(h, n)
	return append(h, zeroMask[:]...)
}

// closeOf reads until conn closes and returns the close error (nil if it was something else).
func closeOf(t *testing.T, conn *websocket.Conn) *websocket.CloseError {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(waitFor))
	for {
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue
		}
		ce, _ := err.(*websocket.CloseError)
		if ce == nil {
			t.Fatalf("want a close frame, got %v", err)
		}
		return ce
	}
}

// stillServing checks that a new connection is served: a ping is answered.
func stillServing(t *testing.T, s *testServer) {
	t.Helper()
	c := s.dial(t)
	c.send(map[string]any{"type": "ping", "request_id": "alive"})
	if f := c.expect("pong"); f.RequestID == nil || *f.RequestID != "alive" {
		t.Fatalf("pong %s", f.raw)
	}
}

func heapAfterGC() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// Issue #11: "A 15-byte frame header declaring 1 MiB allocates 1 MiB at once". 64 connections
// each send such a header and one byte of payload; the server's heap grows by KiB per connection,
// not by the 64 MiB declared.
func TestDeclaredLengthDoesNotAllocate(t *testing.T) {
	const conns = 64
	s := newServer(t, serverOpts{limits: config.Limits{MessageTimeout: time.Minute}})
	var ncs []net.Conn
	for range conns {
		_, nc := rawClient(t, s)
		ncs = append(ncs, nc)
	}
	waitUntil(t, "every connection is open", func() bool { return s.WS.Connections() == conns })
	before := heapAfterGC()
	partial := append(frameHeader(wsframe.OpText, 1<<20), '{') // 15 bytes
	for _, nc := range ncs {
		if _, err := nc.Write(partial); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "the server has read every partial frame", func() bool { return s.WS.MessagesStarted() == conns })
	after := heapAfterGC()
	grew := int64(after) - int64(before)
	t.Logf("%d connections x 15 bytes declaring 1 MiB: heap grew by %d bytes (%d per connection)", conns, grew, grew/conns)
	if grew > conns*16<<10 {
		t.Fatalf("heap grew by %d bytes for %d partial frames; want at most 16 KiB each (not the 1 MiB declared)", grew, conns)
	}
	stillServing(t, s)
}

// The read buffers beyond a connection's 16 KiB come from PUBSUB_MAX_BUFFER_BYTES: spent, the
// connection is closed with 1013 and counted; the bytes come back, and the next large message
// fits.
func TestBufferBudgetSpentCloses1013(t *testing.T) {
	s := newServer(t, serverOpts{ws: wsConfig(func(c *wsCfg) { c.MaxFrameBytes = 4 << 20 }),
		limits: config.Limits{BufferMaxBytes: 1 << 20}})
	s.createTopic(t, "t")
	conn, nc := rawClient(t, s)
	go func() {
		// 3 MiB declared and sent, more than the budget holds; the server closes before the end.
		_, _ = nc.Write(frameHeader(wsframe.OpText, 3<<20))
		_, _ = nc.Write(make([]byte, 3<<20))
	}()
	ce := closeOf(t, conn)
	if ce.Code != websocket.CloseTryAgainLater || !strings.Contains(ce.Text, "PUBSUB_MAX_BUFFER_BYTES") {
		t.Fatalf("close %d %q; want 1013 naming PUBSUB_MAX_BUFFER_BYTES", ce.Code, ce.Text)
	}
	expectMetric(t, s, 1, "pubsub_limit_rejections_total", "limit", telemetry.LimitBufferMemory)
	expectMetric(t, s, 1, "pubsub_ws_connections_closed_total", "code", "1013")
	// The budget was given back: a 900 KB publish goes through on a new connection.
	c := s.dial(t)
	c.publish("t", strings.Repeat("p", 900_000), "big")
	if f := c.expect("ack"); *f.RequestID != "big" {
		t.Fatalf("ack %s", f.raw)
	}
	expectMetric(t, s, 1, "pubsub_limit_rejections_total", "limit", telemetry.LimitBufferMemory)
}

// Issue #11: "an unfinished fragmented message kept alive with pings holds 3 MiB per connection
// with no time limit". It now has PUBSUB_MESSAGE_TIMEOUT to finish, then 1008.
func TestUnfinishedMessageTimesOut(t *testing.T) {
	const timeout = 300 * time.Millisecond
	s := newServer(t, serverOpts{limits: config.Limits{MessageTimeout: timeout}})
	conn, nc := rawClient(t, s)
	start := time.Now()
	if _, err := nc.Write(rawFrame(wsframe.OpText, false, []byte(`{"type":`))); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		// Keep the connection alive as the attacker did: pings, and a fragment now and then.
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := nc.Write(rawFrame(wsframe.OpPing, true, []byte("alive"))); err != nil {
					return
				}
				if _, err := nc.Write(rawFrame(wsframe.OpContinuation, false, []byte(" "))); err != nil {
					return
				}
			}
		}
	}()
	ce := closeOf(t, conn)
	if ce.Code != websocket.ClosePolicyViolation || !strings.Contains(ce.Text, "PUBSUB_MESSAGE_TIMEOUT") {
		t.Fatalf("close %d %q; want 1008 naming PUBSUB_MESSAGE_TIMEOUT", ce.Code, ce.Text)
	}
	if took := time.Since(start); took < timeout {
		t.Fatalf("closed after %v, before the %v timeout", took, timeout)
	}
	expectMetric(t, s, 1, "pubsub_limit_rejections_total", "limit", telemetry.LimitMessageTimeout)
	expectMetric(t, s, 1, "pubsub_ws_connections_closed_total", "code", "1008")

	// A client busy for longer than the timeout with whole messages, fragmented ones among them,
	// is not cut.
	c := s.dial(t)
	for i := 0; time.Since(start) < 3*timeout || i < 10; i++ {
		c.send(map[string]any{"type": "ping", "request_id": fmt.Sprint(i)})
		c.expect("pong")
	}
	if _, nc2 := rawClient(t, s); nc2 != nil {
		for range 5 {
			_, _ = nc2.Write(rawFrame(wsframe.OpText, false, []byte(`{"type":`)))
			_, _ = nc2.Write(rawFrame(wsframe.OpContinuation, true, []byte(`"ping"}`)))
		}
	}
	expectMetric(t, s, 1, "pubsub_limit_rejections_total", "limit", telemetry.LimitMessageTimeout)
	stillServing(t, s)
}

// Frames over PUBSUB_MAX_FRAME_BYTES close with 1009 and are counted.
func TestFrameOverLimitCounted(t *testing.T) {
	s := newServer(t, serverOpts{ws: wsConfig(func(c *wsCfg) { c.MaxFrameBytes = 4096 })})
	conn, nc := rawClient(t, s)
	if _, err := nc.Write(frameHeader(wsframe.OpText, 4097)); err != nil {
		t.Fatal(err)
	}
	if ce := closeOf(t, conn); ce.Code != websocket.CloseMessageTooBig || !strings.Contains(ce.Text, "PUBSUB_MAX_FRAME_BYTES") {
		t.Fatalf("close %d %q; want 1009 naming PUBSUB_MAX_FRAME_BYTES", ce.Code, ce.Text)
	}
	expectMetric(t, s, 1, "pubsub_limit_rejections_total", "limit", telemetry.LimitFrameSize)
	expectMetric(t, s, 1, "pubsub_ws_connections_closed_total", "code", "1009")
	stillServing(t, s)
}

// Issue #11: "Invalid UTF-8 inside a text frame's payload is accepted, stored and relayed". It is
// refused with 1007 before it is decoded: nothing is stored. A character split across two
// fragments is valid: the check is on the whole message.
func TestInvalidUTF8Closes1007(t *testing.T) {
	s := newServer(t, serverOpts{})
	s.createTopic(t, "t")
	publish := func(payload string) []byte {
		return []byte(`{"type":"publish","topic":"t","request_id":"p","message":{"id":"` + uuid.NewString() + `","payload":"` + payload + `"}}`)
	}
	conn, nc := rawClient(t, s)
	if _, err := nc.Write(rawFrame(wsframe.OpText, true, publish("bad \xff byte"))); err != nil {
		t.Fatal(err)
	}
	if ce := closeOf(t, conn); ce.Code != websocket.CloseInvalidFramePayloadData {
		t.Fatalf("close %d %q; want 1007", ce.Code, ce.Text)
	}
	expectMetric(t, s, 1, "pubsub_ws_connections_closed_total", "code", "1007")
	expectMetric(t, s, 1, "pubsub_ws_frames_received_total", "type", "invalid")

	// "é" (C3 A9) split between two fragments is one valid message.
	conn2, nc2 := rawClient(t, s)
	whole := publish("caf\xc3\xa9")
	cut := strings.Index(string(whole), "\xa9")
	_, _ = nc2.Write(rawFrame(wsframe.OpText, false, whole[:cut]))
	_, _ = nc2.Write(rawFrame(wsframe.OpContinuation, true, whole[cut:]))
	_ = conn2.SetReadDeadline(time.Now().Add(waitFor))
	if _, data, err := conn2.ReadMessage(); err != nil || !strings.Contains(string(data), `"ack"`) {
		t.Fatalf("fragmented valid UTF-8: %s, %v; want an ack", data, err)
	}
	// Only the valid message was stored.
	sub := s.dial(t)
	sub.subscribe("t", "s", 10)
	frames := sub.barrier()
	if len(frames) != 1 || !strings.Contains(string(frames[0].Message.Payload), "café") {
		t.Fatalf("history replay: %d frames (%v); want the one valid message", len(frames), frames)
	}
}

// Lengths are checked while decoding: a BAD_REQUEST naming the field and its limit, counted; a
// too-long request_id is not echoed.
func TestFieldLengthsRefused(t *testing.T) {
	s := newServer(t, serverOpts{limits: config.Limits{MaxIDBytes: 32, MaxHeaderBytes: 64}})
	s.createTopic(t, "t")
	c := s.dial(t)
	msg := func(headers string) map[string]any {
		return map[string]any{"type": "publish", "topic": "t", "request_id": "h",
			"message": map[string]any{"id": uuid.NewString(), "payload": 1, "headers": json.RawMessage(headers)}}
	}
	seventeen := make([]string, 17)
	for i := range seventeen {
		seventeen[i] = fmt.Sprintf(`"k%d":"v"`, i)
	}
	for i, tc := range []struct {
		frame any
		want  string
		echo  bool
	}{
		{map[string]any{"type": "ping", "request_id": strings.Repeat("r", 33)}, "request_id is longer than 32 bytes", false},
		{map[string]any{"type": "subscribe", "topic": "t", "request_id": "c", "client_id": strings.Repeat("c", 33)}, "client_id is longer than 32 bytes", true},
		{msg(`{"k":"` + strings.Repeat("v", 65) + `"}`), `message.headers["k"] is longer than 64 bytes`, true},
		{msg(`{"` + strings.Repeat("k", 65) + `":"v"}`), "message.headers keys must be 1 to 64 bytes", true},
		{msg(`{` + strings.Join(seventeen, ",") + `}`), "message.headers has more than 16 entries", true},
	} {
		c.send(tc.frame)
		f := c.expect("error")
		if f.Error.Code != "BAD_REQUEST" || f.Error.Message != tc.want || (f.RequestID != nil) != tc.echo {
			t.Fatalf("case %d: %s; want BAD_REQUEST %q, request_id echoed %v", i, f.raw, tc.want, tc.echo)
		}
		expectMetric(t, s, float64(i+1), "pubsub_limit_rejections_total", "limit", telemetry.LimitFieldLength)
	}
	// A frame of 65,000 header keys, as much as the 1 MiB frame limit holds: refused at the 17th
	// key, and the connection goes on.
	var b strings.Builder
	for i := range 65_000 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"%07d":""`, i)
	}
	c.send(msg("{" + b.String() + "}"))
	if f := c.expect("error"); f.Error.Message != "message.headers has more than 16 entries" {
		t.Fatalf("65,000 headers: %s", f.raw)
	}
	expectMetric(t, s, 6, "pubsub_limit_rejections_total", "limit", telemetry.LimitFieldLength)
	c.send(map[string]any{"type": "ping", "request_id": "after"})
	c.expect("pong")
}

// Issue #11: "Every client error is one log line (200k tiny bad frames: 43.6 MB of logs)". 10,000
// bad frames are all answered and counted, and logged at the refusal log's bounded rate.
func TestBadFramesLogAtABoundedRate(t *testing.T) {
	const bad = 10_000
	s := newServer(t, serverOpts{})
	c := s.dial(t)
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		for range bad {
			if err := c.conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"nope"}`)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range bad {
		if f := c.expect("error"); f.Error.Code != "BAD_REQUEST" {
			t.Fatalf("reply %s", f.raw)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	expectMetric(t, s, bad, "pubsub_errors_total", "code", "BAD_REQUEST")
	logs := s.logs.String()
	refused := strings.Count(logs, `"msg":"ws request refused"`)
	// The refusal log passes a burst of 20, then 10 a second.
	if limit := 20 + int(10*elapsed.Seconds()) + 2; refused == 0 || refused > limit {
		t.Fatalf("%d bad frames in %v wrote %d log lines; want 1 to %d", bad, elapsed, refused, limit)
	}
	if lines := strings.Count(logs, "\n"); lines > 200 {
		t.Fatalf("%d log lines in all for %d bad frames", lines, bad)
	}
	t.Logf("%d bad frames in %v: %d refusal log lines, %d bytes of logs", bad, elapsed, refused, len(logs))
}
