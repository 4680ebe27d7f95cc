package wsframe

import "errors"

// Allowance grants the bytes a stream's buffers hold beyond its own small share (Stream.Free): it is
// asked before a buffer grows and given the bytes back when the buffer shrinks or is dropped.
// *domain.Budget is one; implementations must be safe for concurrent use, since many streams share
// one.
type Allowance interface {
	TryTake(n int64) bool
	Release(n int64)
}

// ErrNoBuffer is a buffer the stream's Allowance refused: the process is holding all the buffer
// memory it may, and the connection should be closed with 1013 (try again later).
var ErrNoBuffer = errors.New("buffer memory exhausted")

// Stream parses the frames of one direction of a connection from the bytes read off its socket:
// read into Spare, record with Filled, take messages with Next. It holds a buffer only between
// Spare and the moment everything read has been parsed: Release drops it, so an idle connection's
// stream holds none.
//
// Memory follows the bytes that have arrived, never the lengths a peer declares: a frame header
// announcing 1 MiB makes the buffer grow by doubling as the payload comes in, so a peer that sends
// 15 bytes costs MinBuf. Beyond Free bytes (the read buffer and a fragmented message being joined,
// together), every byte is taken from Budget before it is allocated and given back once the
// message is done with. A Stream is used by one goroutine at a time.
type Stream struct {
	Reader      // fragments and the size limit
	Masked bool // frames must be masked (a server reading its client) or must not be (a client)
	// A stream reads into MinBuf bytes at first. The buffer grows when an unfinished frame fills
	// it: by doubling up to that frame's size, and by at most MaxBuf a step (when set) while the
	// frame's size is not known yet. It also doubles, up to Free, when a read filled it to the end
	// (more was likely waiting): a client that pipelines small frames is then read many frames a
	// read, which lets the reader serve them together, instead of the two or three MinBuf holds.
	MinBuf, MaxBuf int
	// Free is how many bytes of buffers the stream may hold without asking Budget; nil Budget:
	// no limit beyond the message size limit.
	Free   int
	Budget Allowance

	buf  []byte // buf[r:] is not parsed yet
	r    int
	want int   // the whole size of the unfinished frame at buf[r:] once its header is parsed; else 0
	held int64 // bytes taken from Budget
	full bool  // the last Filled reached the buffer's end
	err  error // sticky: ErrNoBuffer
}

// Spare returns room to read into at the end of the buffer, first moving unparsed bytes to its
// start and growing it if it is full. It returns an empty slice once Budget has refused a buffer;
// Next then reports ErrNoBuffer.
func (s *Stream) Spare() []byte {
	if s.err != nil {
		return nil
	}
	if s.r > 0 {
		n := copy(s.buf, s.buf[s.r:])
		s.buf, s.r = s.buf[:n], 0
	}
	s.settle() // a fragmented message handed out by Next is done with
	base := max(s.MinBuf, 16)
	if s.buf == nil {
		if !s.resize(base) {
			return nil
		}
	}
	if keep := max(base, s.Free); s.held > 0 && s.want == 0 && cap(s.buf) > keep && len(s.buf) < keep {
		// A large message is done with: shrink back to what the stream holds for free, giving the
		// rest back to Budget, rather than keep it for the next message.
		if !s.resize(keep) {
			return nil
		}
	}
	if full := s.full; full && len(s.buf) < cap(s.buf) && cap(s.buf) < s.Free {
		// Compaction made room, but the read before filled the buffer: offer the next read more,
		// up to the free share (Budget pays only for a fragmented message held beside it).
		s.full = false
		if !s.resize(min(2*cap(s.buf), s.Free)) {
			return nil
		}
	}
	if len(s.buf) == cap(s.buf) {
		c := cap(s.buf)
		grow := max(c, base) // doubling...
		if s.want > c {
			grow = min(grow, s.want-c) // ...up to the frame being read
		} else if s.MaxBuf > 0 {
			grow = min(grow, s.MaxBuf) // ...by at most MaxBuf while its size is unknown
		}
		if !s.resize(c + grow) {
			return nil
		}
	}
	return s.buf[len(s.buf):cap(s.buf)]
}

// resize moves the buffer to one of n bytes (n >= len), taking what it needs from Budget first.
func (s *Stream) resize(n int) bool {
	if !s.reserve(n + cap(s.msg)) {
		s.err = ErrNoBuffer
		return false
	}
	grown := make([]byte, len(s.buf), n)
	copy(grown, s.buf)
	s.buf = grown
	s.settle()
	return true
}

// reserve takes from Budget what buffers of total bytes need beyond Free and what is held already.
func (s *Stream) reserve(total int) bool {
	need := int64(total - s.Free)
	if s.Budget == nil || need <= s.held {
		return true
	}
	if !s.Budget.TryTake(need - s.held) {
		return false
	}
	s.held = need
	return true
}

// settle gives Budget back what the buffers no longer need.
func (s *Stream) settle() {
	need := max(int64(cap(s.buf)+cap(s.msg)-s.Free), 0)
	if s.Budget != nil && s.held > need {
		s.Budget.Release(s.held - need)
		s.held = need
	}
}

// Filled records n bytes read into Spare's slice.
func (s *Stream) Filled(n int) {
	s.buf = s.buf[:len(s.buf)+n]
	s.full = n > 0 && len(s.buf) == cap(s.buf)
}

// Write adds bytes received some other way (after a handshake, say) as if read. Bytes that find no
// buffer (ErrNoBuffer) are dropped: Next reports the error.
func (s *Stream) Write(p []byte) {
	for len(p) > 0 {
		sp := s.Spare()
		if len(sp) == 0 {
			return
		}
		n := copy(sp, p)
		s.Filled(n)
		p = p[n:]
	}
}

// Idle reports whether nothing is buffered or half assembled: the reader may stop without losing
// input.
func (s *Stream) Idle() bool { return len(s.buf) == s.r && !s.Pending() }

// Cap is the size of the buffers the stream holds: the read buffer and a fragmented message's.
func (s *Stream) Cap() int { return cap(s.buf) + cap(s.msg) }

// Held is how many bytes the stream holds from Budget.
func (s *Stream) Held() int64 { return s.held }

// Release drops the buffer; only valid when Idle.
func (s *Stream) Release() {
	s.buf, s.r, s.want, s.full = nil, 0, 0, false
	s.settle()
}

// Drop drops everything, half-read frames and messages included, and gives Budget back all it
// holds: the connection is over.
func (s *Stream) Drop() {
	s.buf, s.r, s.want, s.full = nil, 0, 0, false
	s.msg, s.frag = nil, false
	s.settle()
}

// Next returns the next whole message (text or binary, fragments joined) or control frame; ok is
// false when more input is needed. No buffer is sized from a frame's declared length: the read
// buffer grows as its bytes arrive (see Spare), and a fragmented message as its fragments do. The
// payload is unmasked in place and valid until the next Spare.
func (s *Stream) Next() (op byte, payload []byte, ok bool, err error) {
	if s.err != nil {
		return 0, nil, false, s.err
	}
	for {
		b := s.buf[s.r:]
		h, ok, err := ParseHeader(b)
		switch {
		case err != nil:
			return 0, nil, false, err
		case !ok:
			return 0, nil, false, nil
		case s.Masked && !h.Masked:
			return 0, nil, false, ProtocolError("client frames must be masked")
		case !s.Masked && h.Masked:
			return 0, nil, false, ProtocolError("server frames must not be masked")
		}
		if err := s.Check(h); err != nil {
			return 0, nil, false, err
		}
		total := h.Size + int(h.Len) // Check bounded Len
		if len(b) < total {
			s.want = total
			return 0, nil, false, nil
		}
		s.want = 0
		s.r += total
		p := b[h.Size:total]
		if h.Masked {
			Unmask(p, h.Mask)
		}
		if !h.Control() && (s.frag || !h.Fin) {
			if err := s.growMsg(len(p)); err != nil {
				return 0, nil, false, err
			}
		}
		if op, msg, done := s.Add(h, p); done {
			return op, msg, true, nil
		}
	}
}

// growMsg makes room for n more bytes of a fragmented message, doubling, within the message limit
// and Budget.
func (s *Stream) growMsg(n int) error {
	need := len(s.msg) + n
	if need <= cap(s.msg) {
		return nil
	}
	c := min(max(2*cap(s.msg), 2*n, need), max(int(s.limit()), need))
	if !s.reserve(cap(s.buf) + c) {
		s.err = ErrNoBuffer
		return s.err
	}
	grown := make([]byte, len(s.msg), c)
	copy(grown, s.msg)
	s.msg = grown
	return nil
}
