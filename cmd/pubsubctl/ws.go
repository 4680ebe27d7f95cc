package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pubsubd/pubsub/internal/transport/wire"
)

// maxServerFrame bounds one frame pubsubctl accepts from the server: an event is at most the
// server's PUBSUB_MAX_FRAME_BYTES (1 MiB by default) plus its envelope, so 16 MiB leaves room for
// servers configured far above the default without letting a broken peer grow memory unbounded.
const maxServerFrame = 16 << 20

// wsURL is the /ws endpoint of the server c names (already resolved to http or https).
func wsURL(c *common) string {
	return "ws" + strings.TrimPrefix(c.server, "http") + "/ws"
}

// dialWS opens the WebSocket of the server with the common flags' credentials. A refused
// handshake is a *serverError (401 is exit status 4); no answer is exit status 3.
func dialWS(ctx context.Context, c *common) (*websocket.Conn, error) {
	d := websocket.Dialer{HandshakeTimeout: c.timeout, Proxy: http.ProxyFromEnvironment}
	h := http.Header{}
	if c.apiKey != "" {
		h.Set("X-API-Key", c.apiKey)
	}
	u := wsURL(c)
	conn, resp, err := d.DialContext(ctx, u, h)
	if err != nil {
		if resp != nil {
			defer resp.Body.Close()
			data, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			var eb wire.ErrorBody
			if json.Unmarshal(data, &eb) == nil && eb.Error.Code != "" {
				return nil, &serverError{status: resp.StatusCode, code: eb.Error.Code, msg: eb.Error.Message}
			}
			return nil, &serverError{status: resp.StatusCode, code: resp.Status, msg: "the WebSocket handshake of " + u + " was refused"}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, unavailable("cannot connect to %s: %v", u, err)
	}
	conn.SetReadLimit(maxServerFrame)
	return conn, nil
}

// closeWS says goodbye with a normal close frame, then closes the socket. Safe to call while
// another goroutine reads (gorilla allows a control write beside one reader).
func closeWS(conn *websocket.Conn) {
	_ = conn.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	_ = conn.Close()
}

// readFrame reads and decodes one server frame.
func readFrame(conn *websocket.Conn) (wire.ServerFrame, error) {
	var f wire.ServerFrame
	typ, data, err := conn.ReadMessage()
	if err != nil {
		return f, err
	}
	if typ != websocket.TextMessage {
		return f, errors.New("the server sent a binary frame")
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return f, errors.New("the server sent a frame that is not JSON: " + snippet(data))
	}
	return f, nil
}

// frameError is the *serverError of an error frame.
func frameError(f wire.ServerFrame) *serverError {
	if f.Error == nil {
		return &serverError{code: wire.CodeInternal, msg: "an error frame without an error"}
	}
	return &serverError{code: f.Error.Code, msg: f.Error.Message}
}
