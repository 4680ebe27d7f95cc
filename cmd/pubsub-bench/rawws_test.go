package main

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/pubsubd/pubsub/internal/transport/wsframe"
)

// serverFrame builds an unmasked frame as a server sends it; b0 is its first byte (FIN, reserved
// bits, opcode).
func serverFrame(b0 byte, payload []byte) []byte {
	f := wsframe.AppendFrame(nil, b0&0x0f, nil, payload)
	f[0] = b0
	return f
}

func TestRawNextParsesFrames(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 70000)
	var in []byte
	in = append(in, serverFrame(0x81, []byte("one"))...)
	in = append(in, serverFrame(0x01, []byte("fr"))...)   // text, not final
	in = append(in, serverFrame(0x89, []byte("p"))...)    // a ping between fragments
	in = append(in, serverFrame(0x00, []byte("ag"))...)   // continuation
	in = append(in, serverFrame(0x80, []byte("ment"))...) // final continuation
	in = append(in, serverFrame(0x81, big)...)
	type msg struct {
		op byte
		p  string
	}
	want := []msg{{wsframe.OpText, "one"}, {wsframe.OpPing, "p"}, {wsframe.OpText, "fragment"}, {wsframe.OpText, string(big)}}

	// Fed in pieces of every size, the same messages come out.
	for _, step := range []int{1, 7, 1000, len(in)} {
		c := &rawConn{fd: -1, in: newServerStream()}
		var got []msg
		for off := 0; ; {
			op, p, ok, err := c.next()
			if err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			if ok {
				got = append(got, msg{op, string(p)})
				continue
			}
			if off > 0 && c.in.Cap() < rawBufSize {
				// A frame straddling the buffer's end once made it shrink
				// to that frame's size: one event per read from then on.
				t.Fatalf("step %d: the buffer shrank to %d bytes", step, c.in.Cap())
			}
			if off == len(in) {
				break
			}
			end := min(off+step, len(in))
			c.in.Write(in[off:end])
			off = end
		}
		if len(got) != len(want) {
			t.Fatalf("step %d: %d messages, want %d", step, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("step %d: message %d is op %d len %d, want op %d len %d", step, i, got[i].op, len(got[i].p), want[i].op, len(want[i].p))
			}
		}
	}
}

func TestRawNextRejectsBadFrames(t *testing.T) {
	var protocol wsframe.ProtocolError
	tests := []struct {
		name string
		in   []byte
		want error // a ProtocolError matches any
	}{
		{"masked", []byte{0x81, 0x81, 1, 2, 3, 4, 'x'}, protocol},
		{"reserved bits", serverFrame(0xC1, []byte("x")), protocol},
		{"fragmented control", serverFrame(0x09, []byte("x")), protocol},
		{"long control", serverFrame(0x89, bytes.Repeat([]byte("x"), 126)), protocol},
		{"continuation first", serverFrame(0x80, []byte("x")), protocol},
		{"new message inside a fragmented one", append(serverFrame(0x01, []byte("a")), serverFrame(0x81, []byte("b"))...), protocol},
		{"huge length", []byte{0x81, 127, 0, 0, 0, 1, 0, 0, 0, 0}, wsframe.ErrTooBig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &rawConn{fd: -1, in: newServerStream()}
			c.in.Write(tt.in)
			for {
				_, _, ok, err := c.next()
				if err != nil {
					var pe wsframe.ProtocolError
					if !errors.Is(err, tt.want) && !(tt.want == protocol && errors.As(err, &pe)) {
						t.Fatalf("error %v, want %v", err, tt.want)
					}
					return
				}
				if !ok {
					t.Fatalf("no error, want %v", tt.want)
				}
			}
		})
	}
}

func TestRawHandshakeRejectsNonWebSocket(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Upgrade", "websocket")
		w.Header().Set("Connection", "Upgrade")
		w.Header().Set("Sec-WebSocket-Accept", "wrong")
		w.WriteHeader(http.StatusSwitchingProtocols)
	}))
	defer srv.Close()
	wsURL := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
	if _, err := dialRaw(t.Context(), wsURL, nil, nil); !errors.Is(err, websocket.ErrBadHandshake) {
		t.Errorf("wrong accept key: %v, want a bad handshake", err)
	}
	missing := httptest.NewServer(http.NotFoundHandler())
	defer missing.Close()
	_, err := dialRaw(t.Context(), "ws"+strings.TrimPrefix(missing.URL, "http")+"/ws", nil, nil)
	if !errors.Is(err, websocket.ErrBadHandshake) || !strings.Contains(err.Error(), "404") {
		t.Errorf("HTTP 404: %v, want a bad handshake naming the status", err)
	}
	if _, err := dialRaw(t.Context(), "wss://127.0.0.1:1/ws", nil, nil); err == nil || !strings.Contains(err.Error(), "not ws") {
		t.Errorf("wss: %v, want a clear refusal", err)
	}
}

func TestEveryClientSendsTheAPIKey(t *testing.T) {
	got := make(chan string, 3)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Method + " " + r.Header.Get("X-API-Key")
		http.Error(w, `{"error":{"code":"UNAUTHORIZED","message":"test"}}`, http.StatusUnauthorized)
	}))
	defer srv.Close()
	cfg, err := parseConfig([]string{"-url", srv.URL, "-api-key", "k-0123456789abcdef"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dialRaw(t.Context(), cfg.wsURL, nil, cfg.header); err == nil {
		t.Error("raw handshake refused with 401 reported no error")
	}
	if _, _, err := dial(t.Context(), cfg.wsURL, dialOptions{header: cfg.header}); err == nil {
		t.Error("gorilla handshake refused with 401 reported no error")
	}
	_ = newRESTClient(cfg.restURL, cfg.header).do(t.Context(), http.MethodGet, "/health", nil, http.StatusOK, nil)
	for range 3 {
		if k := <-got; !strings.HasSuffix(k, " k-0123456789abcdef") {
			t.Errorf("request %q carried no API key", k)
		}
	}
}
