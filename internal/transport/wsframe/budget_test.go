package wsframe

import (
	"bytes"
	"errors"
	"runtime"
	"testing"

	"github.com/pubsubd/pubsub/internal/domain"
)

// serverStream is a stream as the service reads clients: 512 bytes at first, 16 KiB free.
func serverStream(b *domain.Budget) *Stream {
	s := &Stream{Reader: Reader{Limit: 4 << 20}, Masked: true, MinBuf: 512, MaxBuf: 64 << 10, Free: 16 << 10}
	if b != nil {
		s.Budget = b
	}
	return s
}

// feed writes in through Spare and Filled as a socket would, calling Next after every read, and
// returns the messages and the first error.
func feed(s *Stream, in []byte, step int) (msgs [][]byte, err error) {
	for off := 0; ; {
		for {
			op, p, ok, err := s.Next()
			if err != nil {
				return msgs, err
			}
			if !ok {
				break
			}
			if op == OpText || op == OpBinary {
				msgs = append(msgs, bytes.Clone(p))
			}
		}
		if off == len(in) {
			return msgs, nil
		}
		sp := s.Spare()
		if len(sp) == 0 {
			_, _, _, err := s.Next()
			return msgs, err
		}
		n := copy(sp[:min(len(sp), step)], in[off:])
		s.Filled(n)
		off += n
	}
}

// A header declaring 1 MiB followed by a few bytes costs the stream its first buffer, not 1 MiB.
func TestDeclaredLengthAllocatesNothingUpFront(t *testing.T) {
	mask := [4]byte{1, 2, 3, 4}
	frame := AppendFrame(nil, OpText, &mask, make([]byte, 1<<20))
	head := frame[:15] // 14 bytes of header (64-bit length and mask) and one byte of payload
	budget := domain.NewBudget(1 << 20)
	s := serverStream(budget)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if _, err := feed(s, head, len(head)); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 8<<10 {
		t.Fatalf("15 bytes of a frame declaring 1 MiB allocated %d bytes; want at most 8 KiB", grew)
	}
	if s.Cap() > 512 || budget.Used() != 0 {
		t.Fatalf("buffer %d bytes, %d taken from the budget; want 512 and 0", s.Cap(), budget.Used())
	}
	if s.Idle() {
		t.Fatal("a half-read frame must keep the stream busy")
	}
}

// The buffer grows by doubling as the payload arrives: never more than twice what has come in.
func TestBufferGrowsAsBytesArrive(t *testing.T) {
	mask := [4]byte{1, 2, 3, 4}
	payload := bytes.Repeat([]byte("z"), 1<<20)
	frame := AppendFrame(nil, OpBinary, &mask, payload)
	s := serverStream(nil)
	received := 0
	for off := 0; off < len(frame); {
		if _, _, ok, err := s.Next(); err != nil || ok {
			t.Fatalf("at %d: ok %v, %v", off, ok, err)
		}
		sp := s.Spare()
		if limit := max(2*received, 512); s.Cap() > limit {
			t.Fatalf("buffer of %d bytes after %d received; want at most %d", s.Cap(), received, limit)
		}
		n := copy(sp[:min(len(sp), 4096)], frame[off:])
		s.Filled(n)
		off += n
		received += n
	}
	_, p, ok, err := s.Next()
	if err != nil || !ok || !bytes.Equal(p, payload) {
		t.Fatalf("the whole frame: ok %v, %v", ok, err)
	}
	if s.Cap() > len(frame) {
		t.Fatalf("buffer of %d bytes for a frame of %d", s.Cap(), len(frame))
	}
}

// Beyond Free, buffers are taken from the budget and given back when the message is done; a
// budget that is spent refuses the buffer with ErrNoBuffer.
func TestBufferBudget(t *testing.T) {
	mask := [4]byte{1, 2, 3, 4}
	big := AppendFrame(nil, OpBinary, &mask, bytes.Repeat([]byte("b"), 200<<10))
	small := AppendFrame(nil, OpText, &mask, []byte("ok"))

	t.Run("taken and given back", func(t *testing.T) {
		budget := domain.NewBudget(1 << 20)
		s := serverStream(budget)
		msgs, err := feed(s, append(bytes.Clone(big), small...), 8192)
		if err != nil || len(msgs) != 2 {
			t.Fatalf("%d messages, %v", len(msgs), err)
		}
		s.Spare() // the caller is done with the large message
		if budget.Used() != 0 || s.Held() != 0 || s.Cap() > 16<<10 {
			t.Fatalf("after the large message: budget %d, held %d, buffer %d; want 0, 0, <= 16 KiB", budget.Used(), s.Held(), s.Cap())
		}
	})
	t.Run("spent", func(t *testing.T) {
		budget := domain.NewBudget(64 << 10)
		s := serverStream(budget)
		_, err := feed(s, big, 8192)
		if !errors.Is(err, ErrNoBuffer) {
			t.Fatalf("a 200 KiB frame against a 64 KiB budget: %v, want ErrNoBuffer", err)
		}
		if budget.Used() > 64<<10 {
			t.Fatalf("budget overdrawn: %d", budget.Used())
		}
		s.Drop()
		if budget.Used() != 0 {
			t.Fatalf("Drop left %d bytes taken", budget.Used())
		}
	})
	t.Run("fragments", func(t *testing.T) {
		budget := domain.NewBudget(64 << 10)
		s := serverStream(budget)
		var in []byte
		chunk := bytes.Repeat([]byte("f"), 4000)
		in = appendFragment(in, OpText, false, mask, chunk)
		for range 40 { // 160 KB in fragments of 4 KB, each small enough for the read buffer
			in = appendFragment(in, OpContinuation, false, mask, chunk)
			in = AppendFrame(in, OpPing, &mask, []byte("alive"))
		}
		_, err := feed(s, in, 8192)
		if !errors.Is(err, ErrNoBuffer) {
			t.Fatalf("fragments beyond the budget: %v, want ErrNoBuffer", err)
		}
		s.Drop()
		if budget.Used() != 0 {
			t.Fatalf("Drop left %d bytes taken", budget.Used())
		}
	})
}

// appendFragment appends one masked frame with fin as given.
func appendFragment(b []byte, op byte, fin bool, mask [4]byte, p []byte) []byte {
	start := len(b)
	b = AppendFrame(b, op, &mask, p)
	if !fin {
		b[start] &^= 0x80
	}
	return b
}

// FuzzStreamBudget feeds arbitrary bytes, in arbitrary read sizes, to a stream with a small budget
// (sizes scaled down from the service's, so that inputs stay small): it never panics, never holds
// more than Free plus what the budget granted, never overdraws the budget, and gives everything
// back when dropped.
func FuzzStreamBudget(f *testing.F) {
	mask := [4]byte{1, 2, 3, 4}
	f.Add(AppendFrame(nil, OpText, &mask, bytes.Repeat([]byte("a"), 3000)), uint16(70))
	f.Add(appendFragment(appendFragment(nil, OpText, false, mask, make([]byte, 900)), OpContinuation, true, mask, make([]byte, 1500)), uint16(400))
	f.Add(append(AppendFrame(nil, OpPing, &mask, []byte("p")), 0x81, 0xff, 0, 0, 0, 0, 0, 1, 0, 0), uint16(3))
	f.Fuzz(func(t *testing.T, in []byte, step uint16) {
		budget := domain.NewBudget(2048)
		s := &Stream{Reader: Reader{Limit: 4096}, Masked: true, MinBuf: 32, MaxBuf: 256, Free: 512, Budget: budget}
		_, _ = feed(s, in, int(step%8192)+1)
		if used := budget.Used(); used > 2048 || used != s.Held() || int64(s.Cap()) > int64(s.Free)+used {
			t.Fatalf("budget %d, held %d, buffers %d", used, s.Held(), s.Cap())
		}
		s.Drop()
		if budget.Used() != 0 {
			t.Fatalf("Drop left %d bytes taken", budget.Used())
		}
	})
}

// A read that fills the buffer says more is waiting: small frames pipelined by a client are read
// many at a time once the buffer has doubled, up to Free and never beyond, with nothing taken
// from the budget; a buffer that reads never fill stays as it is.
func TestFullReadsGrowTheBufferUpToFree(t *testing.T) {
	mask := [4]byte{1, 2, 3, 4}
	var in []byte
	for range 2000 {
		in = AppendFrame(in, OpText, &mask, bytes.Repeat([]byte("p"), 90)) // 96 bytes a frame
	}
	budget := domain.NewBudget(1 << 20)
	s := serverStream(budget)
	// A socket with everything waiting: every read fills what Spare offers.
	msgs, err := feed(s, in, len(in))
	if err != nil || len(msgs) != 2000 {
		t.Fatalf("%d messages, %v", len(msgs), err)
	}
	if s.Cap() != 16<<10 || budget.Used() != 0 {
		t.Fatalf("buffer %d bytes, %d taken from the budget; want 16 KiB (Free) and 0", s.Cap(), budget.Used())
	}

	// Reads of 100 bytes never fill the 512 bytes offered: no growth.
	s = serverStream(budget)
	if msgs, err = feed(s, in[:96*50], 100); err != nil || len(msgs) != 50 {
		t.Fatalf("%d messages, %v", len(msgs), err)
	}
	if s.Cap() != 512 {
		t.Fatalf("buffer %d bytes after reads that never filled it; want 512", s.Cap())
	}
	// Released (a parked reader), the stream starts again from MinBuf.
	s.Release()
	s.Spare()
	if s.Cap() != 512 {
		t.Fatalf("buffer %d bytes after Release; want 512", s.Cap())
	}
}
