package app

import "net"

// WrapListener replaces the bound application listener with wrap(it), so that a test can make it
// fail while serving. Call it after Listen and before Serve.
func (a *App) WrapListener(wrap func(net.Listener) net.Listener) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ln = wrap(a.ln)
}
