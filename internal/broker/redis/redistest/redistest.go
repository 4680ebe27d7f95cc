// Package redistest runs a throwaway redis-server (Debian's package) for tests: one per test
// package, on a free port, with AOF on and eviction off as production runs it. It can restart the
// server on its AOF, kill it with SIGKILL, pause it with SIGSTOP and resume it, and kill the
// pub/sub clients: the failures the Redis engine must survive, for its own tests and for the
// end-to-end and chaos tests that reuse it.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// startWait bounds how long a server may take to accept connections: generous for a loaded CI
// machine.
const startWait = 20 * time.Second

// Server is one redis-server process and its data directory. Its methods are safe for concurrent
// use; the port stays the same across restarts, so clients reconnect to the same address.
type Server struct {
	dir  string
	port int

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Start runs redis-server on a free loopback port with its data in dir (AOF, appendfsync
// everysec, noeviction, no RDB snapshots). Call Stop when done.
func Start(dir string) (*Server, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, errors.New("redis-server is not installed (apt-get install redis-server)")
	}
	// redis-server has no --port 0: pick a free port, and try again if another process took it
	// between the pick and the bind.
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s := &Server{dir: dir, port: port}
		if lastErr = s.start(); lastErr == nil {
			return s, nil
		}
	}
	return nil, lastErr
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) start() error {
	logPath := filepath.Join(s.dir, "redis.log")
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "yes", "--appendfsync", "everysec", "--dir", s.dir,
		"--maxmemory-policy", "noeviction", "--logfile", logPath, "--daemonize", "no")
	return s.startCmd(cmd, logPath)
}

// startCmd starts cmd and waits until the server answers PING on s.port.
func (s *Server) startCmd(cmd *exec.Cmd, logPath string) error {
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting redis-server: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(startWait)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("redis-server exited (%v): %s", err, lastLines(string(log), 5))
		default:
		}
		if s.ping() == nil {
			s.mu.Lock()
			s.cmd = cmd
			s.mu.Unlock()
			return nil // the goroutine above reaps the process whenever it ends
		}
		time.Sleep(20 * time.Millisecond) // polling a process we do not control: no event to wait for
	}
	_ = cmd.Process.Kill()
	<-exited
	return fmt.Errorf("redis-server on port %d did not answer within %s", s.port, startWait)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// URL is the server's redis:// URL.
func (s *Server) URL() string { return "redis://" + s.Addr() }

// Do sends one command over a fresh connection and returns the reply as text (integers and
// simple strings as they are, bulk strings unquoted, arrays one element per line). It is for test
// set-up and chaos (CLIENT KILL, DEBUG SLEEP), not for the engine under test.
func (s *Server) Do(args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", s.Addr(), 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	return readReply(bufio.NewReader(c))
}

func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", errors.New(line[1:])
	case '$':
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			return "", nil
		}
		buf := make([]byte, n+2)
		if _, err := ioReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, _ := strconv.Atoi(line[1:])
		out := make([]string, 0, max(n, 0))
		for range n {
			v, err := readReply(r)
			if err != nil {
				return "", err
			}
			out = append(out, v)
		}
		return strings.Join(out, "\n"), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}

func ioReadFull(r *bufio.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (s *Server) ping() error {
	v, err := s.Do("PING")
	if err == nil && v != "PONG" {
		err = fmt.Errorf("PING answered %q", v)
	}
	return err
}

func (s *Server) signal(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return errors.New("redis-server is not running")
	}
	return s.cmd.Process.Signal(sig)
}

// Kill ends the server with SIGKILL, as a crash would: what AOF had not written is lost.
func (s *Server) Kill() error {
	if err := s.signal(syscall.SIGKILL); err != nil {
		return err
	}
	s.mu.Lock()
	s.cmd = nil
	s.mu.Unlock()
	return nil
}

// Restart starts the server again on the same port and data directory, so it reloads its AOF.
// The server must have been killed or stopped first.
func (s *Server) Restart() error {
	var err error
	for range 50 { // the old process may still hold the port for a moment after SIGKILL
		if err = s.start(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// Pause stops the process (SIGSTOP): connections stay open and nothing answers, as in a long
// GC pause or a hung host.
func (s *Server) Pause() error { return s.signal(syscall.SIGSTOP) }

// Resume continues a paused process (SIGCONT).
func (s *Server) Resume() error { return s.signal(syscall.SIGCONT) }

// KillPubSubClients closes every pub/sub connection (CLIENT KILL TYPE pubsub) and returns how
// many there were.
func (s *Server) KillPubSubClients() (int, error) {
	v, err := s.Do("CLIENT", "KILL", "TYPE", "pubsub")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(v)
}

// FlushAll empties every database.
func (s *Server) FlushAll() error {
	_, err := s.Do("FLUSHALL")
	return err
}

// Stop kills the server if it runs. The data directory is the caller's to remove.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Signal(syscall.SIGCONT) // a paused server does not die of SIGTERM
		_ = cmd.Process.Kill()
	}
}

// StartTemp starts a server in a new temporary directory; done stops it and removes the
// directory. It is what a TestMain calls: one server for the whole test package.
func StartTemp() (srv *Server, done func(), err error) {
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		return nil, nil, err
	}
	srv, err = Start(dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, nil, err
	}
	return srv, func() { srv.Stop(); _ = os.RemoveAll(dir) }, nil
}

// Sentinel is a redis-server running as a Sentinel that monitors one master.
type Sentinel struct{ *Server }

// StartSentinel runs a Sentinel on a free port, with its configuration in dir, monitoring the
// master at masterAddr under the name master. Stop it when done.
func StartSentinel(dir, master, masterAddr string) (*Sentinel, error) {
	host, port, err := net.SplitHostPort(masterAddr)
	if err != nil {
		return nil, err
	}
	var lastErr error
	for range 5 {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		conf := filepath.Join(dir, "sentinel.conf")
		// Sentinel rewrites its configuration file: it must be its own and writable.
		body := fmt.Sprintf("port %d\nbind 127.0.0.1\nsentinel monitor %s %s %s 1\nsentinel down-after-milliseconds %s 1000\n",
			p, master, host, port, master)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			return nil, err
		}
		s := &Server{dir: dir, port: p}
		cmd := exec.Command("redis-server", conf, "--sentinel", "--logfile", filepath.Join(dir, "sentinel.log"))
		if lastErr = s.startCmd(cmd, filepath.Join(dir, "sentinel.log")); lastErr == nil {
			return &Sentinel{s}, nil
		}
	}
	return nil, lastErr
}
