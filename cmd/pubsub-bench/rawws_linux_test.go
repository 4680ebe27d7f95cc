//go:build linux

package main

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pubsubd/pubsub/internal/transport/wsframe"
)

// TestRawClientAgainstGorilla runs the bench's own client against a
// gorilla/websocket server: the handshake, masked frames the server
// accepts, a fragmented message, a ping answered with a pong, and a close
// echoed with its code.
func TestRawClientAgainstGorilla(t *testing.T) {
	pong := make(chan string, 1)
	closed := make(chan int, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{WriteBufferSize: 256}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		ws.SetPongHandler(func(s string) error { pong <- s; return nil })
		_, m, err := ws.ReadMessage()
		if err != nil || string(m) != "hello" {
			t.Errorf("server read %q, %v", m, err)
			return
		}
		// Larger than the write buffer: gorilla sends it in fragments.
		_ = ws.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte("y"), 1000))
		_ = ws.WriteControl(websocket.PingMessage, []byte("are you there"), time.Now().Add(time.Second))
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4000, "bye"), time.Now().Add(time.Second))
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					closed <- ce.Code
				}
				return
			}
		}
	}))
	defer srv.Close()

	c, err := dialRaw(t.Context(), "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if err := c.write(wsframe.OpText, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := c.detach(); err != nil {
		t.Fatal(err)
	}
	var data []byte
	var end error
	deadline := time.Now().Add(10 * time.Second)
	for end == nil && time.Now().Before(deadline) {
		op, p, ok, err := c.next()
		switch {
		case err != nil:
			t.Fatal(err)
		case !ok:
			n, err := c.fill()
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				// Detached, fill never waits: wait here for the socket instead.
				waitReadable(t, c.fd, deadline)
			}
		default:
			if isCtl, err := c.control(op, p); isCtl {
				end = err
			} else {
				data = append(data, p...)
			}
		}
	}
	if len(data) != 1000 {
		t.Errorf("got %d bytes of data, want the 1000 of the fragmented message", len(data))
	}
	var ce *websocket.CloseError
	if !errors.As(end, &ce) || ce.Code != 4000 {
		t.Fatalf("ended with %v, want close 4000", end)
	}
	select {
	case s := <-pong:
		if s != "are you there" {
			t.Errorf("pong %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Error("no pong reached the server")
	}
	select {
	case code := <-closed:
		if code != 4000 {
			t.Errorf("server saw close %d, want the echoed 4000", code)
		}
	case <-time.After(10 * time.Second):
		t.Error("the close was not echoed")
	}
}

// waitReadable waits until fd has input, or fails the test at deadline.
func waitReadable(t *testing.T, fd int, deadline time.Time) {
	t.Helper()
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(ep)
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(fd)}
	if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		t.Fatal(err)
	}
	for {
		ms := int(time.Until(deadline).Milliseconds())
		if ms <= 0 {
			t.Fatal("timed out waiting for the server")
		}
		n, err := syscall.EpollWait(ep, []syscall.EpollEvent{{}}, ms)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
	}
}
