package ws

// MessagesStarted returns how many connections have a message half read: what the server's clock
// holds against MessageTimeout. Tests wait on it to know the server has read a partial frame.
func (s *Server) MessagesStarted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.conns {
		if c.rd.msgStart.Load() != 0 {
			n++
		}
	}
	return n
}
