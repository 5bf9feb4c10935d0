package pluginhost

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// pluginPath is the testbackend plugin, built once by TestMain.
var pluginPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pluginhost-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pluginPath = filepath.Join(dir, "koi-testbackend")
	build := exec.Command("go", "build", "-o", pluginPath, "github.com/koi-im/koi/sdk/internal/testbackend/cmd")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the test plugin:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// logBuffer collects the host log for assertions.
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

func newLogger(t *testing.T) (hclog.Logger, *logBuffer) {
	t.Helper()
	buf := &logBuffer{}
	log := hclog.New(&hclog.LoggerOptions{Name: "koi", Level: hclog.Debug, Output: buf})
	t.Cleanup(func() {
		// KOI_TEST_SHOWLOG=1 shows the log of passing tests too.
		if t.Failed() || os.Getenv("KOI_TEST_SHOWLOG") != "" {
			t.Logf("host log:\n%s", buf.String())
		}
	})
	return log, buf
}

// startHost starts a host with specs and closes it when the test ends.
func startHost(t *testing.T, specs ...Spec) (*Host, *logBuffer) {
	t.Helper()
	log, buf := newLogger(t)
	h := New(log, specs)
	if err := h.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return h, buf
}

func spec(name string, cfg map[string]any) Spec {
	return Spec{Name: name, Command: pluginPath, Config: cfg}
}

func mustBackend(t *testing.T, h *Host, name string) *Backend {
	t.Helper()
	b, ok := h.Backend(name)
	if !ok {
		t.Fatalf("no backend %q", name)
	}
	return b
}

// processGone reports whether pid no longer runs (a zombie counts as gone).
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the parenthesised command name.
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && len(s) > i+2 {
		return s[i+2] == 'Z'
	}
	return false
}

// eventually polls cond until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
