package wsframe

import (
	"bytes"
	"errors"
	"testing"
)

func TestStreamBothSides(t *testing.T) {
	mask := [4]byte{9, 8, 7, 6}
	big := bytes.Repeat([]byte("abc"), 30000) // larger than the buffer: grown once for the frame
	for _, side := range []struct {
		name   string
		masked bool
		mask   *[4]byte
	}{{"server reading a client", true, &mask}, {"client reading a server", false, nil}} {
		var in []byte
		in = AppendFrame(in, OpText, side.mask, []byte("hello"))
		in = AppendFrame(in, OpBinary, side.mask, big)
		s := Stream{Masked: side.masked, MinBuf: 64, MaxBuf: 256}
		var got [][]byte
		for off := 0; ; {
			op, p, ok, err := s.Next()
			if err != nil {
				t.Fatalf("%s: %v", side.name, err)
			}
			if ok {
				got = append(got, bytes.Clone(p))
				if op != OpText && op != OpBinary {
					t.Fatalf("%s: op %d", side.name, op)
				}
				continue
			}
			if off == len(in) {
				break
			}
			n := copy(s.Spare(), in[off:])
			s.Filled(n)
			off += n
		}
		if len(got) != 2 || string(got[0]) != "hello" || !bytes.Equal(got[1], big) {
			t.Fatalf("%s: got %d messages", side.name, len(got))
		}
		if !s.Idle() {
			t.Fatalf("%s: not idle after everything was parsed", side.name)
		}
		s.Release()
		if s.Cap() != 0 {
			t.Fatalf("%s: %d bytes held after Release", side.name, s.Cap())
		}
		// The other side's framing is refused.
		wrong := Stream{Masked: !side.masked}
		wrong.Write(in)
		var pe ProtocolError
		if _, _, _, err := wrong.Next(); !errors.As(err, &pe) {
			t.Fatalf("%s: the other side's frames gave %v, want a protocol error", side.name, err)
		}
	}
}
