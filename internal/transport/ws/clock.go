package ws

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/pubsubd/pubsub/internal/transport/wire"
	"github.com/pubsubd/pubsub/telemetry"
)

// statsPeriod is how often the clock asks connections that went quiet with counts in their stats
// window to publish them: every delivery is in the shared metrics within about this long.
const statsPeriod = 250 * time.Millisecond

// runClock runs the server's one clock for pings, heartbeats, stats windows and idle readers and
// writers until Shutdown: timers per connection would cost 10,000 idle connections 30,000 timers. A
// panic in it is logged and counted, and the clock goes on.
func (s *Server) runClock() {
	defer close(s.tickDone)
	for !s.tick() {
	}
}

// tick marks connections and wakes them, until Shutdown (true) or a panic (false).
func (s *Server) tick() (stopped bool) {
	defer s.recovered(telemetry.PanicClock)
	idle := time.NewTicker(s.cfg.IdleAfter)
	defer idle.Stop()
	stats := time.NewTicker(statsPeriod)
	defer stats.Stop()
	var pingC, beatC <-chan time.Time
	if d := s.cfg.PingInterval; d > 0 {
		t := time.NewTicker(d)
		defer t.Stop()
		pingC = t.C
	}
	if d := s.cfg.Heartbeat; d > 0 {
		t := time.NewTicker(d)
		defer t.Stop()
		beatC = t.C
	}
	for {
		select {
		case <-s.tickStop:
			return true
		case <-pingC:
			s.each(func(c *conn) bool { c.out.pingDue.Store(true); return true })
		case <-beatC:
			s.each(func(c *conn) bool { c.out.beatDue.Store(true); return true })
		case <-stats.C:
			s.each(func(c *conn) bool {
				if !c.w.stats.waiting.Load() {
					return false
				}
				c.out.statsDue.Store(true)
				return true
			})
		case <-idle.C:
			s.lookIdle()
		}
	}
}

// recovered, deferred by a long-lived goroutine, logs and counts a panic and lets the goroutine's
// loop go on; the process keeps serving.
func (s *Server) recovered(component string) {
	if v := recover(); v != nil {
		s.log.LogAttrs(context.Background(), slog.LevelError, "panic in a server goroutine; it goes on",
			slog.String("where", component), slog.String("panic", fmt.Sprint(v)), slog.String("stack", string(debug.Stack())))
		s.tel.Metrics.Error(wire.CodeInternal)
		s.tel.Metrics.Panicked(component)
	}
}

// flushLoop is one flusher: it serves ready connections until the server has shut down. A panic
// while serving a connection closes that connection (serveInline); one outside it is survived.
func (s *Server) flushLoop() {
	for !s.flushSome() {
	}
}

func (s *Server) flushSome() (stopped bool) {
	defer s.recovered(telemetry.PanicFlusher)
	for {
		select {
		case c := <-s.ready:
			c.serveInline()
		case <-s.flushStop:
			return true
		}
	}
}

// lookIdle asks every writer goroutine that wrote nothing since the last look to exit, and every
// reader that read nothing since the last look to park; it restarts parked readers whose peer has
// been silent past the ping timeout, so that they find it dead, and closes connections whose
// message has taken longer than MessageTimeout to arrive.
func (s *Server) lookIdle() {
	now := time.Now()
	dead := now.Add(-(s.cfg.PingInterval + s.cfg.PingTimeout)).UnixNano()
	late := now.Add(-s.cfg.MessageTimeout).UnixNano()
	s.mu.Lock()
	var idle, park, wake, slow []*conn
	for c := range s.conns {
		if start := c.rd.msgStart.Load(); start != 0 && start < late && !c.rd.stop.Load() {
			slow = append(slow, c)
		}
		if busy := c.out.busy.Swap(false); c.out.writing.Load() && !busy {
			idle = append(idle, c)
		}
		if s.parker == nil {
			continue
		}
		switch c.rd.state.Load() {
		case readRunning:
			if !c.rd.busy.Swap(false) && !c.rd.parkReq.Load() {
				park = append(park, c)
			}
		case readParked:
			if s.cfg.PingInterval > 0 && c.rd.lastRead.Load() < dead {
				wake = append(wake, c)
			}
		}
	}
	s.mu.Unlock()
	for _, c := range slow {
		c.messageTimedOut()
	}
	for _, c := range park {
		c.rd.parkReq.Store(true)
		_ = c.nc.SetReadDeadline(now) // the reader's read returns, and it parks
	}
	for _, c := range wake {
		if s.parker.take(c, readRunning) {
			go c.readLoop() // its deadline has passed: it fails at once
		}
	}
	for _, c := range idle {
		c.out.retire.Store(true)
		c.Wake()
	}
}

// each marks connections and wakes those that mark says need it. mark runs under the server's lock:
// it may only set flags.
func (s *Server) each(mark func(*conn) bool) {
	s.mu.Lock()
	var conns []*conn
	for c := range s.conns {
		if mark(c) {
			conns = append(conns, c)
		}
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Wake()
	}
}
