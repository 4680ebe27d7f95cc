//go:build linux

package ws

import (
	"errors"
	"sync"
	"syscall"
)

// parker holds the sockets of idle connections whose readers have stopped, in one epoll set, and
// restarts a connection's reader when its socket has input (or has been closed by the peer). A
// reader goroutine blocked in a read holds a stack of 4-8 KiB whatever the connection does; parked,
// an idle connection holds no goroutine and no read buffer.
//
// Every change to a connection's parked state happens under mu, so a socket is never in the epoll
// set without its connection being parked, and the descriptor is removed before anyone closes it
// (closing first could let a new connection reuse the number while we still watch it).
type parker struct {
	epfd  int
	mu    sync.Mutex
	conns map[int32]*conn
	stop  chan struct{}
	done  chan struct{}
	// started is set by start; close reads it. The Server orders the two (Start and Shutdown).
	started bool
}

func newParker() (*parker, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	return &parker{epfd: fd, conns: map[int32]*conn{}, stop: make(chan struct{}), done: make(chan struct{})}, nil
}

// start starts the loop that restarts readers; call it once. Until then nothing is watched.
func (p *parker) start() {
	p.started = true
	go p.run()
}

// park moves a running reader's connection into the set. It fails when the reader must end instead
// (see conn.endReading), and the reader then carries on until its read fails.
func (p *parker) park(c *conn) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c.stopRead.Load() || !c.readState.CompareAndSwap(readRunning, readParked) {
		return errors.New("reader is ending")
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: c.fd}
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(c.fd), &ev); err != nil {
		c.readState.Store(readRunning)
		return err
	}
	p.conns[c.fd] = c
	return nil
}

// take removes a parked connection from the set and moves it to state to (readRunning: the caller
// starts its reader; readDone: the reader is finished for good). It reports false when the
// connection was not parked.
func (p *parker) take(c *conn, to int32) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !c.readState.CompareAndSwap(readParked, to) {
		return false
	}
	_ = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, int(c.fd), nil)
	delete(p.conns, c.fd)
	return true
}

// count returns how many connections are parked.
func (p *parker) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// pollWait bounds one epoll_wait so that close is seen promptly.
const pollWaitMS = 100

func (p *parker) run() {
	defer close(p.done)
	events := make([]syscall.EpollEvent, 128)
	for {
		select {
		case <-p.stop:
			return
		default:
		}
		n, err := syscall.EpollWait(p.epfd, events, pollWaitMS)
		if err != nil {
			// EINTR: a signal; anything else cannot happen with a valid epoll descriptor and buffer.
			continue
		}
		for _, ev := range events[:n] {
			p.mu.Lock()
			c := p.conns[ev.Fd]
			p.mu.Unlock()
			if c != nil && p.take(c, readRunning) {
				go c.resume()
			}
		}
	}
}

// close stops the loop (if it was started); the server calls it once no connection is left.
func (p *parker) close() {
	close(p.stop)
	if p.started {
		<-p.done
	}
	_ = syscall.Close(p.epfd)
}
