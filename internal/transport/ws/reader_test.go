package ws_test

import (
	"context"
	"encoding/binary"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// waitUntil polls cond until it holds, failing the test at the deadline.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(2 * time.Millisecond) // polling a condition with a deadline, not synchronising
	}
}

func TestIdleReaderParksAndResumes(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("readers park only on Linux")
	}
	s := newServer(t, serverOpts{})
	s.createTopic(t, "t")
	sub, pub := s.dial(t), s.dial(t)
	sub.subscribe("t", "s", 0)
	waitUntil(t, "both idle readers are parked", func() bool { return s.WS.ParkedReaders() == 2 })
	if v := metric(t, s, "pubsub_ws_readers_parked"); v != 2 {
		t.Fatalf("pubsub_ws_readers_parked %v, want 2", v)
	}
	for i := range 3 {
		// Input restarts a parked reader: the publish is served, and the event delivered.
		pub.publish("t", i, "p")
		if f := pub.expect("ack"); *f.RequestID != "p" {
			t.Fatalf("ack %s", f.raw)
		}
		if f := sub.expect("event"); string(f.Message.Payload) != string(rune('0'+i)) {
			t.Fatalf("event %s", f.raw)
		}
		waitUntil(t, "the readers park again", func() bool { return s.WS.ParkedReaders() == 2 })
	}
	// A client closing while parked is noticed and echoed.
	_ = sub.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4001, "bye"), time.Now().Add(waitFor))
	if code, _ := sub.expectClose(); code != 4001 {
		t.Fatalf("close echo %d, want 4001", code)
	}
	waitUntil(t, "the closed connection is gone", func() bool { return s.WS.Connections() == 1 })
}

func TestFragmentsAndControlFrames(t *testing.T) {
	s := newServer(t, serverOpts{})
	s.createTopic(t, "t")
	u := "ws" + strings.TrimPrefix(s.URL, "http") + "/ws"
	// A write buffer this small makes gorilla send the publish in many fragments.
	conn, _, err := (&websocket.Dialer{WriteBufferSize: 64}).Dial(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, conn: conn}
	t.Cleanup(func() { _ = conn.Close() })
	pong := make(chan string, 1)
	conn.SetPongHandler(func(s string) error { pong <- s; return nil })
	if err := conn.WriteControl(websocket.PingMessage, []byte("hello"), time.Now().Add(waitFor)); err != nil {
		t.Fatal(err)
	}
	c.subscribe("t", "c", 0)
	c.publish("t", strings.Repeat("y", 3000), "frag")
	// The event and the ack leave in one write; the event, drained first, comes first.
	if f := c.expect("event"); len(f.Message.Payload) != 3002 {
		t.Fatalf("event payload of %d bytes, want the 3002 published", len(f.Message.Payload))
	}
	c.expect("ack")
	select {
	case p := <-pong:
		if p != "hello" {
			t.Fatalf("pong %q", p)
		}
	default:
		t.Fatal("no pong for the client's ping")
	}
}

// rawClient writes frames byte by byte on a real WebSocket connection, to send what gorilla's
// client never would.
func rawClient(t *testing.T, s *testServer) (*websocket.Conn, net.Conn) {
	t.Helper()
	var nc net.Conn
	d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		nc = c
		return c, err
	}}
	conn, _, err := d.Dial("ws"+strings.TrimPrefix(s.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn, nc
}

// clientFrame builds a masked frame (an all-zero mask, which leaves the payload as it is).
func clientFrame(b0 byte, masked bool, payload []byte) []byte {
	f := []byte{b0, byte(len(payload))}
	if masked {
		f[1] |= 0x80
		f = append(f, 0, 0, 0, 0)
	}
	return append(f, payload...)
}

func TestProtocolErrorsClose1002(t *testing.T) {
	closeWith := func(code int) []byte {
		b := binary.BigEndian.AppendUint16(nil, uint16(code))
		return b
	}
	tests := []struct {
		name  string
		frame []byte
	}{
		{"unmasked frame", clientFrame(0x81, false, []byte(`{"type":"ping"}`))},
		{"reserved bit", clientFrame(0xC1, true, []byte(`{}`))},
		{"unknown opcode", clientFrame(0x83, true, nil)},
		{"fragmented ping", clientFrame(0x09, true, []byte("x"))},
		{"continuation first", clientFrame(0x80, true, []byte("x"))},
		{"one-byte close", clientFrame(0x88, true, []byte{3})},
		{"reserved close code", clientFrame(0x88, true, closeWith(1005))},
	}
	s := newServer(t, serverOpts{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, nc := rawClient(t, s)
			if _, err := nc.Write(tt.frame); err != nil {
				t.Fatal(err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(waitFor))
			_, _, err := conn.ReadMessage()
			ce, ok := err.(*websocket.CloseError)
			if !ok || ce.Code != websocket.CloseProtocolError || ce.Text == "" {
				t.Fatalf("got %v, want a 1002 close with a reason", err)
			}
		})
	}
	waitUntil(t, "every connection is closed", func() bool { return s.WS.Connections() == 0 })
	if logs := s.logs.String(); !strings.Contains(logs, `"reason":"client frames must be masked"`) {
		t.Errorf("the close log line does not say why:\n%s", logs)
	}
}
