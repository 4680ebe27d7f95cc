package wsframe

import (
	"bytes"
	"errors"
	"testing"
)

func TestAppendAndParseRoundTrip(t *testing.T) {
	mask := [4]byte{1, 2, 3, 4}
	for _, n := range []int{0, 1, 125, 126, 65535, 65536, 70000} {
		payload := bytes.Repeat([]byte{'x'}, n)
		for _, m := range []*[4]byte{nil, &mask} {
			f := AppendFrame([]byte("prefix"), OpBinary, m, payload)[len("prefix"):]
			h, ok, err := ParseHeader(f)
			if err != nil || !ok {
				t.Fatalf("len %d masked %v: %v, %v", n, m != nil, ok, err)
			}
			if !h.Fin || h.Op != OpBinary || h.Masked != (m != nil) || h.Len != uint64(n) || h.Size+n != len(f) {
				t.Fatalf("len %d masked %v: header %+v, frame of %d bytes", n, m != nil, h, len(f))
			}
			p := f[h.Size:]
			if m != nil {
				if h.Mask != mask || bytes.Equal(p, payload) && n > 0 {
					t.Fatalf("len %d: mask %v, payload not masked", n, h.Mask)
				}
				Unmask(p, h.Mask)
			}
			if !bytes.Equal(p, payload) {
				t.Fatalf("len %d masked %v: payload differs", n, m != nil)
			}
			// Every proper prefix of the header is "need more", never an error.
			for i := 0; i < h.Size; i++ {
				if _, ok, err := ParseHeader(f[:i]); ok || err != nil {
					t.Fatalf("len %d: %d header bytes parsed as %v, %v", n, i, ok, err)
				}
			}
		}
	}
}

func TestParseHeaderRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"reserved bits", []byte{0xC1, 0}},
		{"unknown data opcode", []byte{0x83, 0}},
		{"unknown control opcode", []byte{0x8B, 0}},
		{"fragmented control", []byte{0x09, 0}},
		{"control over 125 bytes", []byte{0x89, 126, 0, 126}},
		{"64-bit length with the top bit", []byte{0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0}},
	} {
		var pe ProtocolError
		if _, _, err := ParseHeader(tc.in); !errors.As(err, &pe) {
			t.Errorf("%s: %v, want a protocol error", tc.name, err)
		}
	}
}

func TestReaderJoinsAndChecks(t *testing.T) {
	r := Reader{Limit: 10}
	frame := func(fin bool, op byte, n int) Header { return Header{Fin: fin, Op: op, Len: uint64(n)} }
	steps := []struct {
		h    Header
		p    string
		err  error
		done bool
		want string
	}{
		{h: frame(true, OpContinuation, 1), p: "x", err: ProtocolError("")},
		{h: frame(false, OpText, 4), p: "abcd"},
		{h: frame(true, OpPing, 1), p: "p", done: true, want: "p"}, // control frames come through
		{h: frame(false, OpText, 1), p: "x", err: ProtocolError("")},
		{h: frame(false, OpContinuation, 3), p: "efg"},
		{h: frame(true, OpContinuation, 4), p: "hijk", err: ErrTooBig}, // 4+3+4 > 10
		{h: frame(true, OpContinuation, 3), p: "hij", done: true, want: "abcdefghij"},
		{h: frame(true, OpText, 11), p: "", err: ErrTooBig},
		{h: frame(true, OpText, 2), p: "ok", done: true, want: "ok"},
	}
	for i, st := range steps {
		err := r.Check(st.h)
		var pe ProtocolError
		switch {
		case st.err == nil && err != nil,
			errors.As(st.err, &pe) && !errors.As(err, &pe),
			errors.Is(st.err, ErrTooBig) && !errors.Is(err, ErrTooBig):
			t.Fatalf("step %d: Check = %v, want %v", i, err, st.err)
		}
		if err != nil {
			continue
		}
		_, msg, done := r.Add(st.h, []byte(st.p))
		if done != st.done || string(msg) != st.want {
			t.Fatalf("step %d: Add = %q, %v; want %q, %v", i, msg, done, st.want, st.done)
		}
	}
	if r.Pending() {
		t.Error("a message is still pending")
	}
}

func TestReaderWithoutLimitIsStillBounded(t *testing.T) {
	var r Reader
	if err := r.Check(Header{Fin: true, Op: OpText, Len: 1 << 31}); !errors.Is(err, ErrTooBig) {
		t.Fatalf("a 2 GiB frame with no limit set: %v, want ErrTooBig", err)
	}
	if err := r.Check(Header{Fin: true, Op: OpText, Len: 1 << 20}); err != nil {
		t.Fatalf("a 1 MiB frame with no limit set: %v", err)
	}
}
