//go:build !linux

package ws

import "errors"

// parker needs epoll; elsewhere readers never park and newParker says so, once, at start-up.
type parker struct{}

func newParker() (*parker, error) { return nil, errors.New("idle readers are parked only on Linux") }

func (p *parker) park(*conn) error       { return errors.New("no parker") }
func (p *parker) take(*conn, int32) bool { return false }
func (p *parker) start()                 {}
func (p *parker) close()                 {}
func (p *parker) count() int             { return 0 }
