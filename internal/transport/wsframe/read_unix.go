//go:build unix

package wsframe

import (
	"io"
	"syscall"
)

// ReadOnce makes one read(2) on a non-blocking socket, for the readers that feed a Stream without
// parking a goroutine on the descriptor: (0, nil) means nothing to read now, io.EOF that the peer
// has closed.
func ReadOnce(fd int, b []byte) (int, error) {
	n, err := syscall.Read(fd, b)
	switch {
	case err == syscall.EAGAIN || err == syscall.EINTR:
		return 0, nil
	case err != nil:
		return 0, err
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}
