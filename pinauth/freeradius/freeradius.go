// Package freeradius runs a real FreeRADIUS (Debian's freeradius package,
// /usr/sbin/freeradius) as the PIN service provider's DN-AAA for tests and
// the demo: in the foreground, as a child process, on loopback, on a port
// of the caller's choosing, with the configuration kept in
// deploy/freeradius (radiusd.conf, users, dictionary).
//
// FreeRADIUS refuses a configuration directory that others can write, so
// Start copies the directory to a private temporary one first. Ports and
// the shared secret reach radiusd.conf through the environment
// (PINE_AAA_DIR, PINE_AAA_AUTH_PORT, PINE_AAA_SECRET). It runs with -X
// (debug, foreground, single-threaded: its log is the test's evidence) and
// keeps the identity it was started with (no user/group in radiusd.conf).
package freeradius

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binary is the FreeRADIUS daemon.
var Binary = "/usr/sbin/freeradius"

// Options of Start.
type Options struct {
	// ConfigDir is the configuration to copy (default: the repository's
	// deploy/freeradius).
	ConfigDir string
	Secret    string
	// AuthPort on 127.0.0.1; 0 picks a free one.
	AuthPort int
	// Log receives FreeRADIUS's output (default: discarded, but the last
	// lines are kept for errors, see Server.Log).
	Log io.Writer
}

// Server is a running FreeRADIUS.
type Server struct {
	Addr   string // "127.0.0.1:port" of authentication
	Secret string
	Dir    string
	cmd    *exec.Cmd
	done   chan struct{}
	err    error

	mu  sync.Mutex
	log []string
}

// DefaultConfigDir is deploy/freeradius of the repository this package was
// built from.
func DefaultConfigDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "deploy", "freeradius")
}

// FreePort returns a UDP port of 127.0.0.1 free right now.
func FreePort() (int, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

func copyDir(src, dst string) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// Start runs FreeRADIUS and waits until it is ready to process requests.
func Start(ctx context.Context, o Options) (*Server, error) {
	if _, err := os.Stat(Binary); err != nil {
		return nil, fmt.Errorf("freeradius: %w (apt-get install freeradius)", err)
	}
	if o.ConfigDir == "" {
		o.ConfigDir = DefaultConfigDir()
	}
	if o.Secret == "" {
		return nil, errors.New("freeradius: empty shared secret")
	}
	dir, err := os.MkdirTemp("", "pine-aaa-")
	if err != nil {
		return nil, err
	}
	if err := copyDir(o.ConfigDir, dir); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("freeradius: copy configuration: %w", err)
	}
	var lastErr error
	for try := 0; try < 3; try++ { // a picked port may be taken meanwhile
		port := o.AuthPort
		if port == 0 {
			if port, err = FreePort(); err != nil {
				os.RemoveAll(dir)
				return nil, err
			}
		}
		s, err := start(ctx, dir, port, o)
		if err == nil {
			return s, nil
		}
		lastErr = err
		if o.AuthPort != 0 {
			break
		}
	}
	os.RemoveAll(dir)
	return nil, lastErr
}

func start(ctx context.Context, dir string, port int, o Options) (*Server, error) {
	s := &Server{Addr: fmt.Sprintf("127.0.0.1:%d", port), Secret: o.Secret, Dir: dir, done: make(chan struct{})}
	cmd := exec.Command(Binary, "-f", "-X", "-d", dir)
	cmd.Env = append(os.Environ(),
		"PINE_AAA_DIR="+dir,
		fmt.Sprintf("PINE_AAA_AUTH_PORT=%d", port),
		"PINE_AAA_SECRET="+o.Secret)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("freeradius: %w", err)
	}
	s.cmd = cmd
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.log = append(s.log, line)
			if len(s.log) > 2000 {
				s.log = s.log[len(s.log)-1000:]
			}
			s.mu.Unlock()
			if o.Log != nil {
				fmt.Fprintln(o.Log, line)
			}
			if strings.Contains(line, "Ready to process requests") {
				once.Do(func() { close(ready) })
			}
		}
		io.Copy(io.Discard, pr)
	}()
	go func() {
		s.err = cmd.Wait()
		pw.Close()
		close(s.done)
	}()
	select {
	case <-ready:
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("freeradius exited at start (%v):\n%s", s.err, s.Tail(25))
	case <-time.After(15 * time.Second):
		s.Stop()
		return nil, fmt.Errorf("freeradius not ready after 15s:\n%s", s.Tail(25))
	case <-ctx.Done():
		s.Stop()
		return nil, ctx.Err()
	}
}

// Tail returns the last n lines FreeRADIUS printed.
func (s *Server) Tail(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.log
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// Log returns everything kept of FreeRADIUS's output.
func (s *Server) Log() string { return s.Tail(1 << 30) }

// Stop kills FreeRADIUS (SIGTERM, then SIGKILL after 3s) and removes its
// directory.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		select {
		case <-s.done:
		default:
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.done:
			case <-time.After(3 * time.Second):
				_ = s.cmd.Process.Kill()
				<-s.done
			}
		}
	}
	os.RemoveAll(s.Dir)
}

// StartT starts FreeRADIUS for a test and stops it at cleanup. Without the
// binary the test is skipped — or fails when CI=true.
func StartT(t testing.TB, o Options) *Server {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("freeradius: %s missing and CI=true forbids skipping (apt-get install freeradius)", Binary)
		}
		t.Skipf("freeradius: %s missing (apt-get install freeradius)", Binary)
	}
	s, err := Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("FreeRADIUS output (tail):\n%s", s.Tail(80))
		}
	})
	return s
}
