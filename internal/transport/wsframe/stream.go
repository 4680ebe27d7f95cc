package wsframe

// Stream parses the frames of one direction of a connection from the bytes read off its socket:
// read into Spare, record with Filled, take messages with Next. It holds a buffer only between
// Spare and the moment everything read has been parsed: Release drops it, so an idle connection's
// stream holds none.
type Stream struct {
	Reader      // fragments and the size limit
	Masked bool // frames must be masked (a server reading its client) or must not be (a client)
	// A stream reads into MinBuf bytes at first, doubling (by MaxBuf at most, when set) while reads
	// fill it (a peer sending many frames at once), so a quiet connection reads into little.
	MinBuf, MaxBuf int

	buf []byte // buf[r:] is not parsed yet
	r   int
}

// Spare returns room to read into at the end of the buffer, first moving unparsed bytes to its
// start and growing it if it is full.
func (s *Stream) Spare() []byte {
	if s.buf == nil {
		s.buf = make([]byte, 0, max(s.MinBuf, 16))
	}
	if s.r > 0 {
		n := copy(s.buf, s.buf[s.r:])
		s.buf, s.r = s.buf[:n], 0
	}
	if len(s.buf) == cap(s.buf) {
		grow := max(cap(s.buf), s.MinBuf) // doubling...
		if s.MaxBuf > 0 {
			grow = min(grow, s.MaxBuf) // ...by at most MaxBuf
		}
		s.buf = append(s.buf, make([]byte, max(grow, 16))...)[:len(s.buf)]
	}
	return s.buf[len(s.buf):cap(s.buf)]
}

// Filled records n bytes read into Spare's slice.
func (s *Stream) Filled(n int) { s.buf = s.buf[:len(s.buf)+n] }

// Write adds bytes received some other way (after a handshake, say) as if read.
func (s *Stream) Write(p []byte) {
	for len(p) > 0 {
		n := copy(s.Spare(), p)
		s.Filled(n)
		p = p[n:]
	}
}

// Idle reports whether nothing is buffered or half assembled: the reader may stop without losing
// input.
func (s *Stream) Idle() bool { return len(s.buf) == s.r && !s.Pending() }

// Cap is the size of the buffer the stream holds.
func (s *Stream) Cap() int { return cap(s.buf) }

// Release drops the buffer; only valid when Idle.
func (s *Stream) Release() { s.buf, s.r = nil, 0 }

// Next returns the next whole message (text or binary, fragments joined) or control frame; ok is
// false when more input is needed. A frame whose length is known but has not all arrived grows the
// buffer once, if it must, so that the following reads can complete it. The payload is unmasked in
// place and valid until the next Spare.
func (s *Stream) Next() (op byte, payload []byte, ok bool, err error) {
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
			if total > cap(s.buf) {
				grown := make([]byte, len(b), total)
				copy(grown, b)
				s.buf, s.r = grown, 0
			}
			return 0, nil, false, nil
		}
		s.r += total
		p := b[h.Size:total]
		if h.Masked {
			Unmask(p, h.Mask)
		}
		if op, msg, done := s.Add(h, p); done {
			return op, msg, true, nil
		}
	}
}
