package sdktest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/sdk"
)

// Options tunes a run. The zero value runs every check in process only.
type Options struct {
	// Config is the JSON configuration given to the factory, and sent
	// with Configure in the plugin run. Used when NewConfig is nil.
	Config []byte
	// NewConfig, if set, returns the configuration for one fresh backend;
	// the kit calls it once per subtest, so each starts from an empty
	// store (a new SQLite file in t.TempDir(), a new PostgreSQL schema).
	// Without it every subtest shares Config's store; the kit's user and
	// owner names are unique per subtest either way.
	NewConfig func(t *testing.T) []byte
	// Host is the virtual host the checks use; default "sdktest.example".
	Host string

	// PluginCommand is the built plugin binary for the plugin run (see
	// BuildPlugin); "" skips that run, saying so in the test log.
	PluginCommand string
	PluginArgs    []string

	// LargeRoster is the size of the large roster check; 0 means 10000
	// and a negative value skips the check.
	LargeRoster int
	// Concurrency is how many goroutines the concurrency checks run;
	// 0 means 8.
	Concurrency int

	// ExistingUser and ExistingPassword name an account that exists on
	// Host, for backends whose auth is read-only: the kit cannot create
	// one there. Without them the read-only auth checks that need an
	// account are skipped.
	ExistingUser     string
	ExistingPassword string

	// Remote says that the backends RunBackend is given are the host's
	// view of a plugin (as StartPlugin returns): every feature method
	// exists, and the plugin must refuse writes to a feature it declares
	// read-only or does not serve (sdk.ErrReadOnly or
	// errors.ErrUnsupported) and reads of a feature it does not serve
	// (errors.ErrUnsupported). In process the SDK's plugin side does that
	// refusing before a call reaches the backend, so the kit does not make
	// those calls. Run sets Remote for its plugin run.
	Remote bool
}

// Defaults of Options.
const (
	DefaultHost        = "sdktest.example"
	DefaultLargeRoster = 10000
	DefaultConcurrency = 8
)

// subtestTimeout bounds the calls of one subtest, so that a hung backend
// fails its subtest with a message instead of the whole test binary.
const subtestTimeout = 3 * time.Minute

func (o Options) withDefaults() Options {
	if o.Host == "" {
		o.Host = DefaultHost
	}
	if o.LargeRoster == 0 {
		o.LargeRoster = DefaultLargeRoster
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	return o
}

// config returns the configuration for one fresh backend.
func (o Options) config(t *testing.T) []byte {
	if o.NewConfig != nil {
		return o.NewConfig(t)
	}
	return o.Config
}

// Run checks the backend f builds against the contract of package sdk:
// every check of every feature f's backend declares, first in process
// (subtests "inprocess/...") and then, if o.PluginCommand is set, through
// a real plugin process started as koi starts it (subtests "plugin/...").
// Each subtest gets a fresh backend.
func Run(t *testing.T, f sdk.Factory, o Options) {
	t.Helper()
	if f == nil {
		t.Fatal("sdktest.Run: nil Factory")
	}
	t.Run("inprocess", func(t *testing.T) {
		in := o
		in.Remote = false
		RunBackend(t, func(t *testing.T) sdk.Backend {
			t.Helper()
			b, err := f(t.Context(), sdk.Config{Raw: o.config(t)}, testLogger(t, "backend"))
			if err != nil {
				t.Fatalf("factory: %v", err)
			}
			if b == nil {
				t.Fatal("factory returned no backend and no error")
			}
			return b
		}, in)
	})
	if o.PluginCommand == "" {
		t.Log("sdktest: Options.PluginCommand is empty; the plugin run is skipped")
		return
	}
	t.Run("plugin", func(t *testing.T) {
		remote := o
		remote.Remote = true
		RunBackend(t, func(t *testing.T) sdk.Backend {
			t.Helper()
			return StartPlugin(t, o.PluginCommand, o.PluginArgs, o.config(t))
		}, remote)
	})
}

// RunBackend runs the same checks as Run against the backends newBackend
// returns; it is called once per subtest and must return a backend with an
// empty store, or one where the kit's unique names are unused. The kit
// closes each backend when its subtest ends. Set o.Remote when the
// backends are a plugin seen from the host (StartPlugin).
func RunBackend(t *testing.T, newBackend func(t *testing.T) sdk.Backend, o Options) {
	t.Helper()
	s := &suite{o: o.withDefaults(), newBackend: newBackend, token: randomToken(t)}

	var (
		caps  sdk.Capabilities
		known bool
	)
	if !t.Run("capabilities", func(t *testing.T) {
		defer recoverPanic(t)
		e := s.env(t)
		caps, known = e.caps, true
		t.Logf("declared capabilities: %s", describeCaps(caps))
		checkCapabilities(e)
	}) {
		t.Error("capabilities check failed; the feature checks are skipped")
		return
	}
	if !known {
		// go test -run filtered the check out; the capabilities are
		// still needed to pick the other checks.
		b := s.newBackend(t)
		caps = b.Capabilities()
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	for _, c := range checks() {
		if !c.applies(caps, s.o) {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			defer recoverPanic(t)
			c.run(s.env(t))
		})
	}
}

// recoverPanic, deferred, turns a panic of the backend (or of the factory)
// into the failure of the subtest it happened in, with its stack. Without
// it one panicking method would abort the whole test binary, and with it
// every other check and the plugin run. It must be deferred directly, so
// that recover sees the panic.
func recoverPanic(t testing.TB) {
	if r := recover(); r != nil {
		t.Errorf("panic: %v (recovered by the kit; the backend must return an error instead)\n%s", r, debug.Stack())
	}
}

// recoverPanic is recoverPanic for the goroutines a check starts: a panic
// there is not the subtest's to recover, and would end the binary.
func (e *env) recoverPanic() {
	if r := recover(); r != nil {
		e.t.Errorf("panic: %v (recovered by the kit; the backend must return an error instead)\n%s", r, debug.Stack())
	}
}

// suite is one run of the checks against one kind of backend.
type suite struct {
	o          Options
	newBackend func(t *testing.T) sdk.Backend
	token      string
	seq        atomic.Int64
}

// env is what one subtest works with: a fresh backend and names nobody
// else uses.
type env struct {
	t    *testing.T
	ctx  context.Context
	b    sdk.Backend
	caps sdk.Capabilities
	o    Options
	id   string
}

func (s *suite) env(t *testing.T) *env {
	t.Helper()
	b := s.newBackend(t)
	if b == nil {
		t.Fatal("newBackend returned nil")
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), subtestTimeout)
	t.Cleanup(cancel)
	return &env{
		t:    t,
		ctx:  ctx,
		b:    b,
		caps: b.Capabilities(),
		o:    s.o,
		id:   fmt.Sprintf("%s%d", s.token, s.seq.Add(1)),
	}
}

// user returns a user name (a local part) unique to this subtest.
func (e *env) user(base string) string { return base + "-" + e.id }

// owner returns a bare JID on Host unique to this subtest.
func (e *env) owner(base string) string { return e.user(base) + "@" + e.o.Host }

// contact returns a contact's bare JID unique to this subtest.
func (e *env) contact(base string) string { return e.user(base) + "@contacts.example" }

// randomToken makes names unique across runs sharing one store.
func randomToken(t *testing.T) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("random token: %v", err)
	}
	return "k" + hex.EncodeToString(b[:])
}

// testLogger logs through t, and drops lines once the test is over (a
// plugin's log reader may still be draining then).
func testLogger(t testing.TB, name string) hclog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.stop)
	return hclog.New(&hclog.LoggerOptions{
		Name:   name,
		Level:  hclog.Info,
		Output: w,
	})
}

type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(trimNewline(p)))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
}

func trimNewline(p []byte) []byte {
	for len(p) > 0 && (p[len(p)-1] == '\n' || p[len(p)-1] == '\r') {
		p = p[:len(p)-1]
	}
	return p
}
