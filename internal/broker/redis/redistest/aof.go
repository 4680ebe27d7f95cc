package redistest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// aofDir is where redis-server keeps its append-only files under its data directory (Redis 7's
// appenddirname default).
const aofDir = "appendonlydir"

// CopyAOF copies the server's append-only files into dst (a directory), with the server paused
// so that the copy holds whole commands. Restoring it later with RestoreAOF and restarting gives a
// Redis that lost every write made after the copy: what a failover to a lagging replica, or a
// crash under appendfsync everysec, does to acknowledged writes.
func (s *Server) CopyAOF(dst string) (err error) {
	if err := s.Pause(); err != nil {
		return err
	}
	defer func() {
		if rerr := s.Resume(); err == nil {
			err = rerr
		}
	}()
	return copyDir(filepath.Join(s.dir, aofDir), filepath.Join(dst, aofDir))
}

// RestoreAOF replaces the server's append-only files with those CopyAOF put in src. The server
// must not be running (Kill it first); Restart then loads the copy.
func (s *Server) RestoreAOF(src string) error {
	s.mu.Lock()
	running := s.cmd != nil
	s.mu.Unlock()
	if running {
		return errors.New("redistest: RestoreAOF on a running server")
	}
	live := filepath.Join(s.dir, aofDir)
	if err := os.RemoveAll(live); err != nil {
		return err
	}
	return copyDir(filepath.Join(src, aofDir), live)
}

// copyDir copies the regular files of directory from into a new directory to.
func copyDir(from, to string) error {
	entries, err := os.ReadDir(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(to, 0o755); err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if err := copyFile(filepath.Join(from, e.Name()), filepath.Join(to, e.Name())); err != nil {
			return fmt.Errorf("redistest: copying the AOF: %w", err)
		}
	}
	return nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
