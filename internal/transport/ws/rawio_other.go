//go:build !unix

package ws

import (
	"errors"
	"net"
	"syscall"
)

// rawSocket returns no RawConn off Unix: every write goes through the connection's writer
// goroutine and readers never park, so tryWrite and tryRead are never reached.
func rawSocket(net.Conn) (syscall.RawConn, int32) { return nil, -1 }

var errNoRawIO = errors.New("non-blocking socket I/O needs Unix")

func tryWrite(syscall.RawConn, []byte) (int, error) { return 0, errNoRawIO }

func tryRead(syscall.RawConn, []byte) (int, error) { return 0, errNoRawIO }
