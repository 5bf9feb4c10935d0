package extauth

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/internal/testsvc"
)

// The tests drive the example program of examples/extauth, an ejabberd
// extauth script in Python 3 (standard library only) that keeps its
// accounts in a JSON file.

const testHost = "example.com"

// script returns the Python interpreter and the example program's path,
// skipping the test (failing it under CI) without python3. The
// interpreter is the real binary, not a version manager's shim (pyenv's
// takes a second to start, which the timeout tests would feel).
func script(t testing.TB) (python, path string) {
	t.Helper()
	python, err := findPython()
	if err != nil {
		testsvc.Require(t, fmt.Errorf("%w: python3 runs the example extauth program: %v", testsvc.ErrMissing, err))
	}
	path, err = filepath.Abs("../../examples/extauth/extauth.py")
	if err != nil {
		t.Fatal(err)
	}
	return python, path
}

var findPython = sync.OnceValues(func() (string, error) {
	out, err := exec.Command("python3", "-c", "import sys; print(sys.executable)").Output()
	return strings.TrimSpace(string(out)), err
})

// usersFile writes a fresh accounts file of the example program.
func usersFile(t testing.TB, users map[string]string) string {
	t.Helper()
	if users == nil {
		users = map[string]string{}
	}
	b, err := json.Marshal(users)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "users.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// logBuffer collects a backend's log, safely for its goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// waitLog waits for the log to contain s (logging from the program's
// stderr is asynchronous).
func (l *logBuffer) waitLog(t *testing.T, s string) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if strings.Contains(l.String(), s) {
			return
		}
	}
	t.Fatalf("the log never said %q; it has:\n%s", s, l.String())
}

// open starts a backend on the example program with test hooks, closed at
// cleanup; tweak adjusts the settings.
func open(t *testing.T, users map[string]string, tweak func(*Settings)) (*Backend, *logBuffer) {
	t.Helper()
	python, path := script(t)
	// A generous call timeout: Python starting on a loaded machine (CI
	// beside other jobs) takes seconds. Tests of the timeout set their own.
	s := Settings{Program: python, Args: []string{path, usersFile(t, users), "--test-hooks"}, Timeout: 20 * time.Second}
	if tweak != nil {
		tweak(&s)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	b, err := Open(s, hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b, logs
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
