package ws

import (
	"errors"
	"net"
	"os"
	"syscall"
	"time"
)

// socket is the write side of a connection's socket, as its writer uses it. netSocket is the real
// one; the tests' fake drives partial writes, full buffers, deadlines and failures.
type socket interface {
	// TryWrite makes one write attempt that never waits for room: n < len(b) with a nil error
	// means the socket's buffer is full. Where the socket cannot do that (see netSocket), it
	// writes like Write, and the connection is never given to a flusher.
	TryWrite(b []byte) (n int, err error)
	// Write writes all of b, waiting for room until the write deadline.
	Write(b []byte) (n int, err error)
	SetWriteDeadline(t time.Time) error
	// CloseWrite ends our side of the stream (a TCP half-close) after our close frame.
	CloseWrite() error
}

// netSocket is a connection's TCP socket. rc, when set, allows the non-blocking writes of the
// flushers (and restarted readers' non-blocking reads).
type netSocket struct {
	nc net.Conn
	rc syscall.RawConn
}

func (s netSocket) Write(b []byte) (int, error)        { return s.nc.Write(b) }
func (s netSocket) SetWriteDeadline(t time.Time) error { return s.nc.SetWriteDeadline(t) }

func (s netSocket) CloseWrite() error {
	if tc, ok := s.nc.(interface{ CloseWrite() error }); ok {
		return tc.CloseWrite()
	}
	return nil
}

func (s netSocket) TryWrite(b []byte) (int, error) {
	if s.rc == nil {
		return s.nc.Write(b)
	}
	return tryWrite(s.rc, b)
}

// sockWriter writes a connection's batches to its socket for whoever owns the connection's write
// side (see outbox), so it needs no lock. It moves the write deadline lazily, and keeps the unwritten
// end of a batch that a non-blocking write could not finish, for the blocking write that finishes it.
// A batch is its buffer and, optionally, a tail written after it (see batch.tail).
type sockWriter struct {
	sock     socket
	timeout  time.Duration
	limit    func(time.Time) time.Time // the deadline for a write starting now (the server's writeDeadline)
	patience time.Duration             // how long a write may wait for room before the client counts as stuck; 0: no such wait
	deadline time.Time                 // the write deadline currently set on the socket
	unsent   []byte                    // the end of the last batch, not yet written; aliases the batch's buffer or its tail
	tail     []byte                    // the batch's tail, written after unsent; nil when unsent is the tail (or there is none)
}

// arm sets the socket's write deadline, but only when it moved by more than half the write timeout
// (or must move closer, during shutdown): setting it costs a timer update per call.
func (w *sockWriter) arm(now time.Time) {
	d := w.limit(now)
	if d.Before(w.deadline) || d.Sub(w.deadline) > w.timeout/2 {
		_ = w.sock.SetWriteDeadline(d)
		w.deadline = d
	}
}

// try writes b, then tail (which may be nil), without waiting for room. It reports whether all of
// both were written; when not, the rest is kept for finish, and the caller must keep their memory
// until then.
func (w *sockWriter) try(b, tail []byte, now time.Time) (done bool, err error) {
	w.arm(now) // a write that never waits can still fail on a deadline that has passed
	n, err := w.sock.TryWrite(b)
	if err != nil {
		return false, err
	}
	if n < len(b) {
		w.unsent, w.tail = b[n:], tail
		if len(tail) == 0 {
			w.tail = nil
		}
		return false, nil
	}
	if len(tail) == 0 {
		return true, nil
	}
	n, err = w.sock.TryWrite(tail)
	if err != nil {
		return false, err
	}
	if n < len(tail) {
		w.unsent = tail[n:]
		return false, nil
	}
	return true, nil
}

// pending reports whether a batch is waiting for finish.
func (w *sockWriter) pending() bool { return w.unsent != nil }

// drop forgets what is waiting for finish: the write failed.
func (w *sockWriter) drop() { w.unsent, w.tail = nil, nil }

// finish writes, waiting for room, what try left. It waits at most patience first: a socket that
// has no room for that long belongs to a client that is not keeping up, which stuck is told (so that
// publishers stop waiting for it); then it waits until the write deadline.
func (w *sockWriter) finish(now time.Time, stuck func()) error {
	if w.unsent == nil {
		return nil
	}
	parts := [2][]byte{w.unsent, w.tail} // in order; the second may be nil
	w.drop()
	i := 0
	if w.patience > 0 {
		limit := w.limit(now)
		if d := now.Add(w.patience); d.Before(limit) {
			_ = w.sock.SetWriteDeadline(d)
			w.deadline = time.Time{} // the next arm sets the real one again
			for ; i < len(parts); i++ {
				if len(parts[i]) == 0 {
					continue
				}
				n, err := w.sock.Write(parts[i])
				if err == nil {
					continue
				}
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					return err
				}
				stuck()
				parts[i] = parts[i][n:]
				now = time.Now()
				break
			}
		}
	}
	for ; i < len(parts); i++ {
		if len(parts[i]) == 0 {
			continue
		}
		// Each part gets a whole write timeout: the one before it finishing is progress.
		if err := w.write(parts[i], now); err != nil {
			return err
		}
		now = time.Now()
	}
	return nil
}

// write writes b, waiting for room. The write timeout bounds a wait that moves nothing: a write
// whose deadline passes after some bytes went out gets a new deadline for the rest, so a client that
// reads slowly but steadily is never cut by it (the overflow policy of its subscriptions is what
// applies to it), while a peer that reads nothing is cut a write timeout after the last bytes it
// took. The drain deadline of a shutdown is never extended.
func (w *sockWriter) write(b []byte, now time.Time) error {
	// A whole write timeout from now, not arm's lazy deadline: this write waits.
	d := w.limit(now)
	_ = w.sock.SetWriteDeadline(d)
	w.deadline = d
	for {
		n, err := w.sock.Write(b)
		if n == 0 || n == len(b) || !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		b = b[n:]
		now = time.Now()
		d = w.limit(now)
		if !d.After(now) {
			return err // the drain deadline has passed
		}
		_ = w.sock.SetWriteDeadline(d)
		w.deadline = d
	}
}

// writeBy writes b with a deadline of its own (a close frame after a failure, say).
func (w *sockWriter) writeBy(b []byte, deadline time.Time) error {
	_ = w.sock.SetWriteDeadline(deadline)
	w.deadline = deadline
	_, err := w.sock.Write(b)
	return err
}
