//go:build unix

package wsframe

import (
	"io"
	"syscall"
	"testing"
)

func TestReadOnce(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fds[0])
	if err := syscall.SetNonblock(fds[0], true); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	if n, err := ReadOnce(fds[0], buf); n != 0 || err != nil {
		t.Fatalf("nothing to read: %d, %v; want 0, nil", n, err)
	}
	if _, err := syscall.Write(fds[1], []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if n, err := ReadOnce(fds[0], buf); n != 2 || err != nil || string(buf[:n]) != "hi" {
		t.Fatalf("data: %d, %v", n, err)
	}
	syscall.Close(fds[1])
	if n, err := ReadOnce(fds[0], buf); n != 0 || err != io.EOF {
		t.Fatalf("peer closed: %d, %v; want 0, EOF", n, err)
	}
}
