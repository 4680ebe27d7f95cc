//go:build linux

package main

import (
	"errors"
	"syscall"
)

// pollSupported says whether fast subscribers can be read by pollers.
const pollSupported = true

// poller reads a set of fast subscribers from one epoll instance, in one
// goroutine: a wake-up reports every ready socket at once, and each is
// read with a single read(2), so the bench's cost per event is that read's
// share instead of a goroutine switch and an extra read that finds nothing.
type poller struct {
	epfd int
	subs map[int32]*subscriber // by descriptor; owned by run once it starts
}

func newPoller() (*poller, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	return &poller{epfd: fd, subs: map[int32]*subscriber{}}, nil
}

// add registers s, whose connection is detached, before run starts.
func (p *poller) add(s *subscriber) error {
	fd := s.raw.fd
	if fd < 0 {
		return errors.New("connection not detached from the Go runtime")
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(fd)}
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return err
	}
	p.subs[int32(fd)] = s
	return nil
}

// pollWaitMS bounds one epoll_wait so that run sees stop promptly.
const pollWaitMS = 20

// run serves the subscribers until stop is closed, calling ended for each
// whose connection ends first (and closing it). It closes the epoll
// instance when it returns; the connections still open are the caller's
// to close, after run has returned.
func (p *poller) run(stop <-chan struct{}, rp readParams, ended func(*subscriber)) {
	defer syscall.Close(p.epfd)
	finish := func(fd int32, s *subscriber, err error) {
		_ = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
		delete(p.subs, fd)
		s.res.tally.connEnd(err, rp.closing.Load())
		s.raw.close()
		ended(s)
	}
	// Whatever arrived with the subscribe ack is already buffered.
	for fd, s := range p.subs {
		if err := s.consume(nanotime()); err != nil {
			finish(fd, s, err)
		}
	}
	events := make([]syscall.EpollEvent, 256)
	for {
		select {
		case <-stop:
			return
		default:
		}
		n, err := syscall.EpollWait(p.epfd, events, pollWaitMS)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			for fd, s := range p.subs {
				finish(fd, s, err)
			}
			return
		}
		for _, ev := range events[:n] {
			s := p.subs[ev.Fd]
			if s == nil {
				continue // finished earlier in this batch
			}
			if err := s.pump(); err != nil {
				finish(ev.Fd, s, err)
			}
		}
	}
}
