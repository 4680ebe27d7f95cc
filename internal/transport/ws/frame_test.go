package ws

import (
	"bytes"
	"errors"
	"testing"

	"github.com/pubsubd/pubsub/internal/transport/wsframe"
)

// masked builds a client frame with a non-trivial mask; fin false leaves it a fragment.
func masked(b0 byte, payload []byte) []byte {
	f := wsframe.AppendFrame(nil, b0&0x0f, &[4]byte{0x12, 0x34, 0x56, 0x78}, payload)
	f[0] = b0
	return f
}

type parsed struct {
	op byte
	p  string
}

// feed gives r the input in pieces of step bytes, as reads would, and collects what next returns.
func feed(t *testing.T, r *wsframe.Stream, in []byte, step int) ([]parsed, error) {
	t.Helper()
	var out []parsed
	for off := 0; ; {
		op, p, ok, err := r.Next()
		if err != nil {
			return out, err
		}
		if ok {
			out = append(out, parsed{op, string(p)})
			continue
		}
		if off == len(in) {
			return out, nil
		}
		n := copy(r.Spare(), in[off:min(off+step, len(in))])
		r.Filled(n)
		off += n
	}
}

func TestFrameReaderJoinsFragmentsAndUnmasks(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789"), 7000) // 70,000 bytes: a 64-bit length
	var in []byte
	in = append(in, masked(0x81, []byte(`{"type":"ping"}`))...)
	in = append(in, masked(0x01, []byte("frag"))...)
	in = append(in, masked(0x89, []byte("p"))...) // a ping between fragments
	in = append(in, masked(0x00, []byte("men"))...)
	in = append(in, masked(0x80, []byte("ted"))...)
	in = append(in, masked(0x82, bytes.Repeat([]byte{1}, 300))...) // a 16-bit length
	in = append(in, masked(0x81, big)...)
	in = append(in, masked(0x88, []byte{0x03, 0xe8})...)
	want := []parsed{{wsframe.OpText, `{"type":"ping"}`}, {wsframe.OpPing, "p"}, {wsframe.OpText, "fragmented"},
		{wsframe.OpBinary, string(bytes.Repeat([]byte{1}, 300))}, {wsframe.OpText, string(big)}, {wsframe.OpClose, "\x03\xe8"}}
	for _, step := range []int{1, 5, 100, 4096, len(in)} {
		r := ptr(newFrameReader(1<<20, nil))
		got, err := feed(t, r, in, step)
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		if len(got) != len(want) {
			t.Fatalf("step %d: %d messages, want %d", step, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("step %d: message %d: op %d, %d bytes; want op %d, %d bytes", step, i, got[i].op, len(got[i].p), want[i].op, len(want[i].p))
			}
		}
		if !r.Idle() {
			t.Errorf("step %d: input left over", step)
		}
	}
}

func TestFrameReaderLimit(t *testing.T) {
	// The limit is on messages: fragments count together.
	in := append(masked(0x01, bytes.Repeat([]byte("a"), 600)), masked(0x80, bytes.Repeat([]byte("b"), 600))...)
	if _, err := feed(t, ptr(newFrameReader(1000, nil)), in, len(in)); !errors.Is(err, wsframe.ErrTooBig) {
		t.Fatalf("two fragments over the limit: %v, want ErrTooBig", err)
	}
	// Known from the header alone: nothing of a huge frame is buffered.
	r := ptr(newFrameReader(1000, nil))
	if _, err := feed(t, r, masked(0x81, bytes.Repeat([]byte("a"), 5000))[:20], 20); !errors.Is(err, wsframe.ErrTooBig) {
		t.Fatalf("huge frame: %v, want ErrTooBig", err)
	}
	if r.Cap() > 512 {
		t.Errorf("buffer grew to %d for a frame over the limit", r.Cap())
	}
	if got, err := feed(t, ptr(newFrameReader(1000, nil)), masked(0x81, bytes.Repeat([]byte("a"), 1000)), 7); err != nil || len(got) != 1 {
		t.Fatalf("a message at the limit: %v, %d messages", err, len(got))
	}
}

func TestParseClose(t *testing.T) {
	for _, tc := range []struct {
		payload []byte
		code    int
		ok      bool
	}{
		{nil, 1005, true},
		{[]byte{0x03, 0xe8}, 1000, true},
		{[]byte{0x0f, 0xa0, 'o', 'k'}, 4000, true},
		{[]byte{0x03}, 0, false},
		{[]byte{0x03, 0xed}, 0, false},             // 1005 may not be sent
		{[]byte{0x03, 0xe8, 0xff, 0xfe}, 0, false}, // reason not UTF-8
		{[]byte{0x00, 0x10}, 0, false},
	} {
		code, err := parseClose(tc.payload)
		if (err == nil) != tc.ok || (tc.ok && code != tc.code) {
			t.Errorf("parseClose(%v) = %d, %v", tc.payload, code, err)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// FuzzFrameReader holds the reader to its promises on any input: no panic, no message over the
// limit, and nothing buffered beyond one frame within it.
func FuzzFrameReader(f *testing.F) {
	f.Add(masked(0x81, []byte(`{"type":"ping"}`)), 3)
	f.Add(append(masked(0x01, []byte("a")), masked(0x80, []byte("b"))...), 1)
	f.Add([]byte{0x81, 0xff, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 10)
	f.Fuzz(func(t *testing.T, in []byte, step int) {
		if step < 1 || step > len(in)+1 {
			step = len(in) + 1
		}
		r := ptr(newFrameReader(4096, nil))
		got, _ := feed(t, r, in, step)
		for _, m := range got {
			if len(m.p) > 4096 {
				t.Fatalf("message of %d bytes over the 4096 limit", len(m.p))
			}
		}
		if r.Cap() > 4096+14+64<<10 {
			t.Fatalf("buffer of %d bytes", r.Cap())
		}
	})
}
