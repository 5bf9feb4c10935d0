// Package testsvc starts the real directory servers the ldap plugin's
// tests run against: a throwaway OpenLDAP slapd and a Samba Active
// Directory domain controller, through the scripts in scripts/ldap (which
// install missing Debian packages when run as root).
//
// A service that cannot run on this machine (not root, packages not
// installable, a fixed port taken) yields an error wrapping ErrMissing;
// Require turns it into a skip, or into a failure when CI=true, so that CI
// never passes by skipping.
package testsvc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ErrMissing means the service cannot run on this machine.
var ErrMissing = errors.New("test service not available on this machine")

// Script exit statuses with a meaning (see scripts/ldap/*.sh).
const (
	exitCannotInstall = 3
	exitPortTaken     = 4
)

// Require skips t when err says a service is missing, except under CI
// (CI=true), where it fails t: CI must run every test. Any other error
// fails t.
func Require(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if errors.Is(err, ErrMissing) && os.Getenv("CI") != "true" {
		t.Skipf("skipping: %v", err)
	}
	t.Fatal(err)
}

// ScriptsDir finds scripts/ldap by walking up from the working directory
// to the module root (go test runs in the package directory).
func ScriptsDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "scripts", "ldap"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testsvc: no go.mod above the working directory")
		}
		dir = parent
	}
}

// process is a service script running in the foreground: it printed its
// "ready" line and stops its daemon on SIGTERM.
type process struct {
	name   string
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{}
	err    error // valid once done is closed
	daemon int   // the daemon's PID, from the ready line

	stopOnce sync.Once
	stopErr  error
}

// lockedBuffer collects a script's stderr while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.TrimSpace(l.b.String())
}

// startScript runs script with args and env and waits for its line
// starting with "ready ", which it returns as key=value fields.
func startScript(ctx context.Context, name, script string, env []string, args ...string) (*process, map[string]string, error) {
	dir, err := ScriptsDir()
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command("bash", append([]string{filepath.Join(dir, script)}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = sysProcAttr()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	p := &process{name: name, cmd: cmd, stderr: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	ready := make(chan map[string]string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			if !sent && strings.HasPrefix(line, "ready ") {
				ready <- fields(line)
				sent = true
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	select {
	case f := <-ready:
		fmt.Sscan(f["pid"], &p.daemon)
		return p, f, nil
	case <-p.done:
		code := -1
		var ee *exec.ExitError
		if errors.As(p.err, &ee) {
			code = ee.ExitCode()
		}
		msg := p.stderr.String()
		if code == exitCannotInstall || code == exitPortTaken {
			return nil, nil, fmt.Errorf("%w: %s: %s", ErrMissing, name, msg)
		}
		return nil, nil, fmt.Errorf("%s failed (%v): %s", name, p.err, msg)
	case <-ctx.Done():
		p.stop()
		return nil, nil, fmt.Errorf("%s not ready: %w; its output: %s", name, ctx.Err(), p.stderr.String())
	}
}

// fields parses "ready a=1 b=2 free text" into {a: 1, b: 2}.
func fields(line string) map[string]string {
	out := map[string]string{}
	for _, f := range strings.Fields(line) {
		if k, v, ok := strings.Cut(f, "="); ok {
			out[k] = v
		}
	}
	return out
}

// stop sends SIGTERM (the script stops its daemon and waits for it) and
// waits; a script that hangs is killed.
func (p *process) stop() error {
	p.stopOnce.Do(func() {
		select {
		case <-p.done:
			p.stopErr = fmt.Errorf("%s had exited: %v: %s", p.name, p.err, p.stderr.String())
			return
		default:
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
			if p.err != nil {
				p.stopErr = fmt.Errorf("%s: %v: %s", p.name, p.err, p.stderr.String())
			}
		case <-time.After(15 * time.Second):
			p.cmd.Process.Kill()
			if p.daemon > 0 {
				syscall.Kill(p.daemon, syscall.SIGKILL)
			}
			<-p.done
			p.stopErr = fmt.Errorf("%s did not stop within 15s of SIGTERM", p.name)
		}
	})
	return p.stopErr
}
