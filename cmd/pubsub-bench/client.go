package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// clockBase anchors the send timestamps embedded in payloads. Publisher and
// subscribers run in this process, so end-to-end latency is a difference of
// two readings of the same monotonic clock.
var clockBase = time.Now()

// nanotime is the monotonic time since clockBase, in nanoseconds.
func nanotime() int64 { return int64(time.Since(clockBase)) }

// maxPublishersTotal bounds publishers per run: message ids carry a 14-bit
// publisher number beside the sequence (see appendMessageID).
const maxPublishersTotal = 1 << 14

// bufConn is a net.Conn whose writes are buffered once enable is called.
// gorilla/websocket hands every frame to the net.Conn as soon as it is
// complete, i.e. one write syscall per publish; batching the frames of a
// pipelined window into one write halves the publisher's CPU. Buffering
// starts only after the handshake, which must not sit in the buffer. Write
// and Flush may be called concurrently (gorilla writes pongs and close
// frames from the reading goroutine).
type bufConn struct {
	net.Conn
	mu  sync.Mutex
	buf *bufio.Writer // nil until enable
}

func (c *bufConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.buf == nil {
		return c.Conn.Write(p)
	}
	return c.buf.Write(p)
}

func (c *bufConn) enable(size int) {
	c.mu.Lock()
	c.buf = bufio.NewWriterSize(c.Conn, size)
	c.mu.Unlock()
}

// Flush writes out whatever is buffered.
func (c *bufConn) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.buf == nil {
		return nil
	}
	return c.buf.Flush()
}

// dialOptions shape one connection.
type dialOptions struct {
	readBuf  int    // gorilla read buffer: large for busy subscribers, small for idle ones
	writeBuf int    // gorilla write buffer: must hold a whole publish frame to avoid fragmentation
	rcvBuf   int    // if > 0, SO_RCVBUF: small for stalled subscribers so TCP backs up quickly
	buffered bool   // wrap in a bufConn (publishers)
	localIP  net.IP // if set, the source address to dial from
	header   http.Header
}

// dial opens a WebSocket to wsURL. With opts.buffered the returned
// *bufConn is the connection's underlying net.Conn.
func dial(ctx context.Context, wsURL string, opts dialOptions) (*websocket.Conn, *bufConn, error) {
	nd := &net.Dialer{Timeout: 10 * time.Second}
	if opts.localIP != nil {
		nd.LocalAddr = &net.TCPAddr{IP: opts.localIP}
	}
	if opts.rcvBuf > 0 {
		size := opts.rcvBuf
		nd.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, size)
			})
			return errors.Join(err, serr)
		}
	}
	var bc *bufConn
	d := websocket.Dialer{
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   opts.readBuf,
		WriteBufferSize:  opts.writeBuf,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := nd.DialContext(ctx, network, addr)
			if err != nil || !opts.buffered {
				return c, err
			}
			bc = &bufConn{Conn: c}
			return bc, nil
		},
	}
	conn, resp, err := d.DialContext(ctx, wsURL, opts.header)
	if err != nil {
		if resp != nil {
			err = fmt.Errorf("%w (HTTP %d)", err, resp.StatusCode)
		}
		return nil, nil, err
	}
	if bc != nil {
		bc.enable(64 << 10)
		// The default handlers queue their pong / close reply in the
		// buffer; flush it, or an idle publisher would never answer.
		conn.SetPingHandler(func(data string) error {
			err := conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(5*time.Second))
			if errors.Is(err, websocket.ErrCloseSent) {
				err = nil
			}
			return errors.Join(err, bc.Flush())
		})
		conn.SetCloseHandler(func(code int, _ string) error {
			msg := websocket.FormatCloseMessage(code, "")
			_ = conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
			return bc.Flush()
		})
	}
	return conn, bc, nil
}

// sourceIP spreads connection n over 127.0.0.1-127.0.0.250 when the
// target is IPv4 loopback. One source address has ~28,000 ephemeral ports,
// and the kernel's search for a free one grows slow as they fill (TIME_WAIT
// sockets of earlier runs included); tens of thousands of connections open
// several times faster from many addresses. nil means the default.
func sourceIP(target string, n int) net.IP {
	u, err := url.Parse(target)
	if err != nil {
		return nil
	}
	ip := net.ParseIP(u.Hostname()).To4()
	if ip == nil || !ip.IsLoopback() {
		return nil
	}
	return net.IPv4(127, 0, 0, byte(1+n%250))
}

// readMessage reads the next data message into buf (reused, grown as
// needed) instead of ReadMessage's fresh allocation per message.
func readMessage(conn *websocket.Conn, buf []byte) ([]byte, error) {
	_, r, err := conn.NextReader()
	if err != nil {
		return buf[:0], err
	}
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// subscribeFrame builds a subscribe request.
func subscribeFrame(topic, clientID, requestID string) []byte {
	b, _ := json.Marshal(map[string]any{
		"type": "subscribe", "topic": topic, "client_id": clientID, "request_id": requestID,
	})
	return b
}

// awaitReply reads frames until the reply to requestID arrives (within
// timeout), returning nil for an ack and an error naming the code for an
// error frame. Frames read meanwhile are handed to other, if non-nil.
func awaitReply(conn *websocket.Conn, requestID string, timeout time.Duration, other func(*frame)) error {
	if err := conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	var buf []byte
	var f frame
	for {
		var err error
		if buf, err = readMessage(conn, buf); err != nil {
			return err
		}
		if !scanFrame(buf, &f) {
			return fmt.Errorf("unparseable frame %.100q", buf)
		}
		if string(f.requestID) != requestID {
			if other != nil {
				other(&f)
			}
			continue
		}
		switch string(f.typ) {
		case "ack":
			return conn.SetReadDeadline(time.Time{})
		case "error":
			return &replyError{code: string(f.errCode), msg: string(f.errMsg)}
		default:
			return fmt.Errorf("unexpected reply %.100q", buf)
		}
	}
}

// replyError is an error frame received in reply to a request.
type replyError struct{ code, msg string }

func (e *replyError) Error() string { return e.code + ": " + e.msg }

// errorKey names an error for the "errors by kind" tally: the wire code
// for error frames, a short class for transport failures.
func errorKey(err error) string {
	var re *replyError
	var ce *websocket.CloseError
	var ne net.Error
	switch {
	case errors.As(err, &re):
		return re.code
	case errors.As(err, &ce):
		return "close_" + strconv.Itoa(ce.Code)
	case errors.Is(err, websocket.ErrBadHandshake):
		return "handshake"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "conn_refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "conn_reset"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too_many_open_files"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no_local_port"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	}
	return "other"
}

// restClient talks to the service's REST API.
type restClient struct {
	base   string
	header http.Header // sent with every request (the API key)
	http   *http.Client
}

func newRESTClient(base string, header http.Header) *restClient {
	return &restClient{base: base, header: header, http: &http.Client{Timeout: 10 * time.Second}}
}

func (c *restClient) do(ctx context.Context, method, path string, body any, want int, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: HTTP %d (want %d): %.200s", method, path, resp.StatusCode, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return nil
}

func (c *restClient) createTopic(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodPost, "/topics", map[string]string{"name": name}, http.StatusCreated, nil)
}

func (c *restClient) deleteTopic(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/topics/"+url.PathEscape(name), nil, http.StatusOK, nil)
}

// topicPage is the body of GET /topics: the contract's list, and the
// paging extension's cursor when more follow.
type topicPage struct {
	Topics []topicEntry `json:"topics"`
	Next   string       `json:"next"`
}

// topicEntry is one topic of GET /topics; the bench needs its name only.
type topicEntry struct {
	Name string `json:"name"`
}

// listTopics returns the names this server lists that start with prefix.
// It asks for the page after prefix (names are sorted), so a server
// holding many other topics is not read whole; one that ignores the
// paging parameters answers with every topic, which is filtered here.
func (c *restClient) listTopics(ctx context.Context, prefix string) ([]string, error) {
	var names []string
	after := prefix
	for {
		var p topicPage
		q := url.Values{"after": {after}, "limit": {"1000"}}
		if err := c.do(ctx, http.MethodGet, "/topics?"+q.Encode(), nil, http.StatusOK, &p); err != nil {
			return nil, err
		}
		// The contract sorts by name, so a name past the prefix ends the
		// search; a page out of order proves nothing and the cursor is followed.
		past := false
		sorted := slices.IsSortedFunc(p.Topics, func(a, b topicEntry) int { return strings.Compare(a.Name, b.Name) })
		for _, t := range p.Topics {
			if strings.HasPrefix(t.Name, prefix) {
				names = append(names, t.Name)
			} else if t.Name > prefix && sorted {
				past = true
			}
		}
		// A cursor that does not move on would loop for ever.
		if past || p.Next == "" || p.Next <= after || len(p.Topics) == 0 {
			return names, nil
		}
		after = p.Next
	}
}

// health is the body of GET /health.
type health struct {
	UptimeSec   float64 `json:"uptime_sec"`
	Topics      int     `json:"topics"`
	Subscribers int     `json:"subscribers"`
}

func (c *restClient) health(ctx context.Context) (health, error) {
	var h health
	err := c.do(ctx, http.MethodGet, "/health", nil, http.StatusOK, &h)
	return h, err
}

// runID returns 8 random hex characters naming this run's topics and
// client ids, so runs never collide on a shared server.
func runID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x", b)
}
