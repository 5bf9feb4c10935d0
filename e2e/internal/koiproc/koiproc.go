// Package koiproc builds and runs the real koi binaries for tests outside
// the core: it builds koi, koictl and the SQL plugin into a directory,
// starts koi on a config file, waits until its listeners accept
// connections, runs koictl against the same config, and stops koi with
// SIGTERM, checking that it exits with status 0. It holds the process side
// of the e2e harness so that more than one test package can use it.
package koiproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Timeouts. Generous: the machine may be busy with other tests running in
// parallel.
const (
	StartTimeout = 30 * time.Second // koi up and listening
	StopTimeout  = 8 * time.Second  // koi gone after SIGTERM
)

// Bins is a directory laid out as the Makefile lays out bin/: koi, koictl
// and plugins/koi-backend-sql.
type Bins string

func (b Bins) Koi() string       { return filepath.Join(string(b), "koi") }
func (b Bins) Koictl() string    { return filepath.Join(string(b), "koictl") }
func (b Bins) SQLPlugin() string { return filepath.Join(string(b), "plugins", "koi-backend-sql") }

// Build builds the server, the admin tool and the SQL plugin of the module
// at root into dir. With race, the binaries themselves are race-checked,
// not only the test process.
func Build(ctx context.Context, root, dir string, race bool) (Bins, error) {
	builds := [][]string{
		{"build", "-o", filepath.Join(dir, "koi"), "./core/cmd/koi"},
		{"build", "-o", filepath.Join(dir, "koictl"), "./core/cmd/koictl"},
		{"build", "-o", filepath.Join(dir, "plugins", "koi-backend-sql"), "./plugins/sql/cmd/koi-backend-sql"},
	}
	for _, args := range builds {
		if race {
			args = append([]string{args[0], "-race"}, args[1:]...)
		}
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
		}
	}
	return Bins(dir), nil
}

// FreeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago and that FreeAddr has not returned before in this test binary.
func FreeAddr() (string, error) {
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", fmt.Errorf("finding a free port: %w", err)
		}
		addr := l.Addr().String()
		l.Close()
		// The kernel may offer a port it just offered (closed, so free
		// again) to the next caller: hand each out once per test binary,
		// or two listeners of one config, or of parallel tests, collide.
		if _, taken := handedOut.LoadOrStore(addr, true); !taken {
			return addr, nil
		}
	}
	return "", errors.New("finding a free port: every port offered was handed out already")
}

// handedOut holds the addresses FreeAddr returned. It is process-wide
// because the ports it guards are.
var handedOut sync.Map

// ErrPortTaken is in Start's error when koi could not bind a listener
// because something took the port after FreeAddr found it free (an
// outgoing connection's ephemeral port, say): the caller may retry on
// other ports.
var ErrPortTaken = errors.New("a listener's port was taken")

// ChildEnv is the environment for koi and koictl: ours without KOI_
// variables, which would change the config under test.
func ChildEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KOI_") {
			env = append(env, kv)
		}
	}
	return env
}

// Buffer is a bytes.Buffer safe for a writer and concurrent readers; it
// holds koi's log.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Server is one koi process.
type Server struct {
	Bins   Bins
	Config string  // path of the config file
	Log    *Buffer // koi's stderr and stdout

	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error // valid once exited is closed
	stopped bool
}

// Start starts koi on the config at path, with env added to its
// environment, in the directory of the config file as a user runs it next
// to its config (koi runs its plugins there too, whatever its own working
// directory, so a relative SQLite dsn is relative to the config file), and
// waits until every address in listen accepts
// connections. On error koi is not left running and the error carries its
// log.
func Start(bins Bins, path string, env []string, listen ...string) (*Server, error) {
	s := &Server{Bins: bins, Config: path, Log: &Buffer{}, exited: make(chan struct{})}
	s.cmd = exec.Command(bins.Koi(), "-config", path)
	s.cmd.Dir = filepath.Dir(path)
	s.cmd.Env = append(ChildEnv(), env...)
	s.cmd.Stderr = s.Log
	s.cmd.Stdout = s.Log
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting koi: %w", err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	for _, addr := range listen {
		if err := s.waitListening(addr); err != nil {
			s.Kill()
			log := s.Log.String()
			if strings.Contains(log, "bind: address already in use") {
				err = fmt.Errorf("%w: %w", ErrPortTaken, err)
			}
			return nil, fmt.Errorf("%w\nkoi log:\n%s", err, log)
		}
	}
	return s, nil
}

// Launch is Start for a test: at cleanup, it stops koi (which must exit
// with status 0) and prints koi's log if the test failed or E2E_KOI_LOG is
// set. Start's error is returned for the test to judge (ErrPortTaken is
// worth another try).
func Launch(tb testing.TB, bins Bins, path string, env []string, listen ...string) (*Server, error) {
	tb.Helper()
	s, err := Start(bins, path, env, listen...)
	if err != nil {
		return nil, err
	}
	tb.Cleanup(func() {
		if !s.stopped {
			if err := s.Stop(); err != nil {
				tb.Error(err)
			}
		}
		s.Kill()
		if tb.Failed() || os.Getenv("E2E_KOI_LOG") != "" {
			tb.Logf("koi log:\n%s", s.Log.String())
		}
	})
	return s, nil
}

// Exited is closed when the koi process has ended.
func (s *Server) Exited() <-chan struct{} { return s.exited }

// PID is the process id of koi.
func (s *Server) PID() int { return s.cmd.Process.Pid }

func (s *Server) waitListening(addr string) error {
	deadline := time.Now().Add(StartTimeout)
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("koi exited before listening on %s: %v", addr, s.waitErr)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("koi does not listen on %s after %v: %w", addr, StartTimeout, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// Stop sends SIGTERM and checks that koi exits with status 0 in time; if
// it does not, it is killed.
func (s *Server) Stop() error {
	s.stopped = true
	select {
	case <-s.exited:
		return fmt.Errorf("koi had already exited: %v", s.waitErr)
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("SIGTERM: %w", err)
	}
	select {
	case <-s.exited:
		if s.waitErr != nil {
			return fmt.Errorf("koi exited after SIGTERM with %v, want status 0", s.waitErr)
		}
		return nil
	case <-time.After(StopTimeout):
		s.Kill()
		return fmt.Errorf("koi still running %v after SIGTERM", StopTimeout)
	}
}

// Kill ends koi at once if it still runs and waits for it.
func (s *Server) Kill() {
	select {
	case <-s.exited:
	default:
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// Koictl runs koictl against this server's config, in the same directory
// as koi, and returns its combined output.
func (s *Server) Koictl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, s.Bins.Koictl(), append([]string{"-config", s.Config}, args...)...)
	cmd.Dir = filepath.Dir(s.Config)
	cmd.Env = ChildEnv()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// AddUser creates an account with koictl.
func (s *Server) AddUser(ctx context.Context, jid, password string) error {
	out, err := s.Koictl(ctx, "user", "add", jid, password)
	if err != nil {
		return fmt.Errorf("koictl user add %s: %w\n%s", jid, err, out)
	}
	return nil
}

// CheckConfig runs koi check-config on path. It returns "" when koi
// accepts the config and otherwise koi's report of the problems (one per
// line, each naming the key); err is only for failing to run koi at all.
func CheckConfig(ctx context.Context, bins Bins, path string) (problems string, err error) {
	cmd := exec.CommandContext(ctx, bins.Koi(), "check-config", "-config", path)
	cmd.Env = ChildEnv()
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), nil
	}
	if err != nil {
		return "", fmt.Errorf("running koi check-config: %w", err)
	}
	return "", nil
}
