package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pubsubd/pubsub/internal/transport/wsframe"
)

// rawConn is the client side of a WebSocket that the bench reads without a
// goroutine of its own: fast subscribers are served by a few epoll loops
// (see poller), so that the bench's reading, which runs on the same cores
// as the server, costs one read(2) per wake-up instead of a goroutine park,
// a wake-up and two reads per event. gorilla/websocket hides its read
// buffer, so the handshake and framing here are the bench's own; they
// cover what a client must (RFC 6455: masking, fragmentation, ping, close)
// and nothing more.
type rawConn struct {
	nc net.Conn // until detach
	fd int      // after detach: the socket, owned by this rawConn

	in   wsframe.Stream // what the server sent: unmasked frames up to maxRawFrame
	mask [4]byte
}

// rawBufSize is a fast subscriber's receive buffer: one read takes every
// event the server wrote since the last one, up to this much.
const rawBufSize = 32 << 10

// maxRawFrame bounds one frame from the server, far above the service's
// 1 MiB request limit, so a corrupt length cannot make the bench allocate
// without bound.
const maxRawFrame = 64 << 20

// newServerStream returns the stream a client reads the server's frames from.
func newServerStream() wsframe.Stream {
	return wsframe.Stream{Reader: wsframe.Reader{Limit: maxRawFrame}, MinBuf: rawBufSize, MaxBuf: rawBufSize}
}

// dialRaw opens a WebSocket to wsURL (ws:// only) with the bench's own
// handshake. Bytes the server sent after its 101 response are kept for the
// first next.
func dialRaw(ctx context.Context, wsURL string, localIP net.IP, header http.Header) (*rawConn, error) {
	u, err := url.Parse(wsURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "ws" {
		return nil, fmt.Errorf("raw WebSocket client: scheme %q is not ws", u.Scheme)
	}
	nd := &net.Dialer{Timeout: 10 * time.Second}
	if localIP != nil {
		nd.LocalAddr = &net.TCPAddr{IP: localIP}
	}
	nc, err := nd.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	c, err := handshake(nc, u, header)
	if err != nil {
		_ = nc.Close()
		return nil, err
	}
	return c, nil
}

// websocketGUID is RFC 6455's constant for Sec-WebSocket-Accept.
const websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + websocketGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

func handshake(nc net.Conn, u *url.URL, header http.Header) (*rawConn, error) {
	if err := nc.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return nil, err
	}
	var k [16]byte
	_, _ = rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
		"\r\nSec-WebSocket-Version: 13\r\n"
	for k, vs := range header {
		for _, v := range vs {
			req += k + ": " + v + "\r\n"
		}
	}
	req += "\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(nc, 4096)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return nil, fmt.Errorf("%w (HTTP %d)", websocket.ErrBadHandshake, resp.StatusCode)
	}
	if !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") ||
		!strings.Contains(strings.ToLower(resp.Header.Get("Connection")), "upgrade") ||
		resp.Header.Get("Sec-WebSocket-Accept") != acceptKey(key) {
		return nil, fmt.Errorf("%w: missing or wrong Upgrade, Connection or Sec-WebSocket-Accept", websocket.ErrBadHandshake)
	}
	if err := nc.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	c := &rawConn{nc: nc, fd: -1, in: newServerStream()}
	leftover, _ := br.Peek(br.Buffered())
	c.in.Write(leftover)
	_, _ = rand.Read(c.mask[:])
	return c, nil
}

// detach takes the socket out of Go's runtime: a duplicate descriptor is
// kept and the net.Conn closed, which removes the original from Go's own
// epoll set. Left there, every event the server wrote woke the runtime's
// poller as well as the bench's, for nothing (a sixth of the bench's CPU).
func (c *rawConn) detach() error {
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return errors.New("connection has no descriptor")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	fd, derr := -1, error(nil)
	if err := rc.Control(func(d uintptr) { fd, derr = syscall.Dup(int(d)) }); err != nil {
		return err
	}
	if derr != nil {
		return derr
	}
	syscall.CloseOnExec(fd)
	_ = c.nc.Close()
	c.nc, c.fd = nil, fd
	return nil
}

// close closes the connection, before or after detach.
func (c *rawConn) close() {
	if c.nc != nil {
		_ = c.nc.Close()
	}
	if c.fd >= 0 {
		_ = syscall.Close(c.fd)
		c.fd = -1
	}
}

// write sends one masked frame. Clients write little (a subscribe, pongs,
// a close), so the mask key is drawn once per connection, not per frame.
func (c *rawConn) write(op byte, payload []byte) error {
	b := wsframe.AppendFrame(nil, op, &c.mask, payload)
	if c.nc != nil {
		if err := c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second)); err != nil {
			return err
		}
		_, err := c.nc.Write(b)
		return err
	}
	// Detached, the socket is non-blocking. These frames are tiny and the
	// server reads all the time: a send buffer too full for them means the
	// server stopped reading, and the connection is given up.
	for len(b) > 0 {
		n, err := syscall.Write(c.fd, b)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("websocket: write: %w", err)
		}
		b = b[n:]
	}
	return nil
}

// fill reads once into the stream. Detached, the read is a single
// non-blocking attempt (the poller calls it when the socket is ready);
// before, it blocks until the read deadline.
func (c *rawConn) fill() (int, error) {
	dst := c.in.Spare()
	var n int
	var err error
	if c.nc == nil {
		if n, err = wsframe.ReadOnce(c.fd, dst); n == 0 {
			return 0, err
		}
	} else {
		n, err = c.nc.Read(dst)
		if n == 0 && err != nil {
			return 0, err
		}
	}
	c.in.Filled(n)
	return n, nil
}

// next returns the next whole message or control frame buffered, ok
// false when more bytes are needed; the payload is valid until the next fill.
func (c *rawConn) next() (op byte, payload []byte, ok bool, err error) {
	return c.in.Next()
}

// control answers a ping and turns a close frame into the error that ends
// the connection (after echoing the close, as RFC 6455 asks). It reports
// whether op was a control frame.
func (c *rawConn) control(op byte, p []byte) (bool, error) {
	switch op {
	case wsframe.OpPing:
		return true, c.write(wsframe.OpPong, p)
	case wsframe.OpPong:
		return true, nil
	case wsframe.OpClose:
		code := websocket.CloseNoStatusReceived
		if len(p) >= 2 {
			code = int(binary.BigEndian.Uint16(p))
		}
		_ = c.write(wsframe.OpClose, p[:min(len(p), 2)])
		// gorilla's error type, so that both clients' ends are tallied alike.
		return true, &websocket.CloseError{Code: code}
	}
	return false, nil
}
