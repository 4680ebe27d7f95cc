//go:build !linux

package main

import "errors"

// pollSupported says whether fast subscribers can be read by pollers:
// only Linux has epoll, so elsewhere every subscriber reads in its own
// goroutine.
const pollSupported = false

type poller struct{}

func newPoller() (*poller, error) { return nil, errors.New("pollers need Linux") }

func (p *poller) add(*subscriber) error { return errors.New("pollers need Linux") }

func (p *poller) run(<-chan struct{}, readParams, func(*subscriber)) {}
