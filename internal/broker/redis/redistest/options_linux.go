//go:build linux

package redistest

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Options are what StartWith changes in the way Start runs a server. The zero value runs it as
// Start does, except that it dies with the process that started it.
type Options struct {
	// FsyncAlways runs the server with appendfsync always: Redis writes and fsyncs the AOF
	// before it answers, so every write it acknowledged survives a kill -9 and a restart. With
	// everysec (Start's setting, and production's default) a write can be answered before it
	// reaches the file: Redis postpones the AOF write for up to 2 s while a background fsync is
	// slow, and a crash then loses what it had acknowledged. A test that asserts "no
	// acknowledged publish is lost across kill -9" needs always.
	FsyncAlways bool
}

// StartWith is Start with opts, on Linux, and the server gets SIGKILL when the process that
// started it dies (Pdeathsig): a test binary killed by go test's timeout, whose cleanups never
// run, leaves no redis-server behind. Restart such a server with RestartWith: Restart would start
// it again with Start's settings.
func StartWith(dir string, opts Options) (*Server, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, errors.New("redis-server is not installed (apt-get install redis-server)")
	}
	var lastErr error
	for range 5 { // the port picked may be taken before the server binds it: pick another
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s := &Server{dir: dir, port: port}
		if lastErr = s.startWith(opts); lastErr == nil {
			return s, nil
		}
	}
	return nil, lastErr
}

// RestartWith starts the server again with opts on the same port and data directory, so it
// reloads its AOF. The server must have been killed or stopped first.
func (s *Server) RestartWith(opts Options) error {
	var err error
	for range 50 { // the old process may still hold the port for a moment after SIGKILL
		if err = s.startWith(opts); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond) // waiting for the kernel to free the port: no event to wait for
	}
	return err
}

// startWith is start with opts' arguments and Pdeathsig.
func (s *Server) startWith(opts Options) error {
	logPath := filepath.Join(s.dir, "redis.log")
	fsync := "everysec"
	if opts.FsyncAlways {
		fsync = "always"
	}
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "yes", "--appendfsync", fsync, "--dir", s.dir,
		"--maxmemory-policy", "noeviction", "--logfile", logPath, "--daemonize", "no")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return s.startCmd(cmd, logPath)
}
