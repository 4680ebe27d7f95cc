//go:build unix

package ws

import (
	"net"
	"syscall"

	"github.com/pubsubd/pubsub/internal/transport/wsframe"
)

// rawSocket returns the connection's RawConn and descriptor, for the flushers' non-blocking writes,
// restarted readers' non-blocking reads and the parker; (nil, -1) when it has none.
func rawSocket(nc net.Conn) (syscall.RawConn, int32) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil, -1
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, -1
	}
	fd := int32(-1)
	_ = rc.Control(func(d uintptr) { fd = int32(d) })
	return rc, fd
}

// tryWrite makes one non-blocking write attempt; n < len(b) with a nil error means the socket's
// buffer is full.
func tryWrite(rc syscall.RawConn, b []byte) (n int, err error) {
	werr := rc.Write(func(fd uintptr) bool {
		n, err = syscall.Write(int(fd), b)
		return true // one attempt: never wait for the socket here
	})
	if werr != nil {
		return 0, werr
	}
	if err == syscall.EAGAIN || err == syscall.EINTR {
		return 0, nil
	}
	return max(n, 0), err
}

// tryRead makes one non-blocking read attempt: (0, nil) means nothing to read now.
func tryRead(rc syscall.RawConn, b []byte) (n int, err error) {
	rerr := rc.Read(func(fd uintptr) bool {
		n, err = wsframe.ReadOnce(int(fd), b)
		return true // one attempt: never wait for the socket here
	})
	if rerr != nil {
		return 0, rerr
	}
	return n, err
}
