// Package pluginhost starts koi's backend plugins and keeps them running.
//
// Each configured plugin is one process, started once and shared by every
// feature and virtual host that names it. The host checks its handshake and
// optional sha256, sends it its configuration, folds its log lines into the
// host log under its name, health-checks it and restarts it with backoff
// when it dies. A Backend handle stays valid across restarts; while its
// plugin is down every call fails at once with sdk.ErrUnavailable instead
// of waiting.
package pluginhost

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Spec describes one plugin block of the configuration.
type Spec struct {
	// Name is the plugin block's label; features refer to it.
	Name string
	// Command is the plugin binary: a path, or a name looked up in PATH.
	Command string
	Args    []string
	// SHA256 is the expected hex sha256 of Command; empty skips the check.
	// It is checked afresh before every start, restarts included.
	SHA256 string
	// Config is sent to the plugin as JSON when it starts.
	Config map[string]any
	// CallTimeout bounds every call to the plugin; default 5s.
	CallTimeout time.Duration
	// Env is added to the host's environment for the plugin ("KEY=value").
	Env []string
	// Dir is the plugin's working directory, where relative paths in its
	// Config resolve; "" is the host's. koi sets the config file's
	// directory. A relative Command is still relative to the host's
	// working directory (it is found before the plugin starts).
	Dir string
	// Reattach, when set, attaches to a plugin already running in the
	// SDK's debug mode instead of starting Command (see Reattach).
	Reattach *Reattach
}

// Timings. The host's own work is cheap; these bound what a plugin may take.
const (
	defaultCallTimeout = 5 * time.Second
	// startTimeout bounds the go-plugin handshake. A plugin does its real
	// setup at Configure, so the handshake itself is quick.
	startTimeout = 10 * time.Second
	// configureTimeout bounds Configure, which may open databases or run
	// migrations.
	configureTimeout = 30 * time.Second
	// healthInterval is how often a running plugin is health-checked.
	healthInterval = 3 * time.Second
	// exitPollInterval is how often the supervisor looks for an exited
	// process; go-plugin offers no channel for it.
	exitPollInterval = 100 * time.Millisecond
	backoffMin       = 100 * time.Millisecond
	backoffMax       = 10 * time.Second
	// stableAfter is how long a plugin must stay up for the restart
	// backoff to start again from backoffMin.
	stableAfter = 30 * time.Second
)

// Host owns the plugin processes.
type Host struct {
	log hclog.Logger
	// specErr is a problem found in the specs by New, reported by Start.
	specErr error

	// healthEvery is healthInterval; tests shorten it.
	healthEvery time.Duration

	mu sync.Mutex
	// backends and byName change when a Plan is committed.
	backends []*Backend
	byName   map[string]*Backend
	obs      Observer // see SetObserver
	started  bool
	closed   bool
	superCtx context.Context // the supervisors' and retirements' context
	stop     context.CancelFunc
	wg       sync.WaitGroup
}

// New prepares a host for specs; Start starts the plugins. log receives the
// host's messages about each plugin and the plugins' own log lines, each
// under a logger named after the plugin; nil discards them.
func New(log hclog.Logger, specs []Spec) *Host {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	h := &Host{log: log, byName: map[string]*Backend{}, healthEvery: healthInterval}
	var problems []error
	for _, s := range specs {
		b, err := newBackend(log, s)
		if err != nil {
			problems = append(problems, err)
		}
		if _, dup := h.byName[s.Name]; dup {
			problems = append(problems, fmt.Errorf("plugin %q: configured twice", s.Name))
			continue
		}
		h.byName[s.Name] = b
		h.backends = append(h.backends, b)
	}
	h.specErr = errors.Join(problems...)
	return h
}

func newBackend(log hclog.Logger, s Spec) (*Backend, error) {
	s.Args = append([]string(nil), s.Args...)
	s.Env = append([]string(nil), s.Env...)
	if s.CallTimeout <= 0 {
		s.CallTimeout = defaultCallTimeout
	}
	b := &Backend{spec: s, log: log.Named(s.Name), kick: make(chan struct{}, 1), restart: make(chan struct{}, 1)}
	b.errs = newErrLog(b.log)
	var problems []error
	if s.Name == "" {
		problems = append(problems, errors.New("plugin without a name"))
	}
	if s.Reattach != nil {
		if err := s.Reattach.check(); err != nil {
			problems = append(problems, fmt.Errorf("plugin %q: reattach: %w", s.Name, err))
		}
		if s.Command != "" || s.SHA256 != "" {
			b.log.Warn("reattach is set: attaching to the running plugin; command, args and sha256 are not used",
				"pid", s.Reattach.Pid, "address", s.Reattach.Address)
		}
		s.SHA256 = ""
		b.spec.SHA256 = ""
	} else if s.Command == "" {
		problems = append(problems, fmt.Errorf("plugin %q: no command", s.Name))
	}
	if s.SHA256 != "" {
		sum, err := hex.DecodeString(s.SHA256)
		if err != nil || len(sum) != 32 {
			problems = append(problems, fmt.Errorf("plugin %q: sha256 %q is not 64 hex digits", s.Name, s.SHA256))
		}
		b.checksum = sum
	}
	cfg := s.Config
	if cfg == nil {
		cfg = map[string]any{}
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		problems = append(problems, fmt.Errorf("plugin %q: config cannot be sent as JSON: %w", s.Name, err))
	}
	b.config = raw
	return b, errors.Join(problems...)
}

// Start starts every plugin and sends it its configuration. It fails if any
// plugin cannot start (bad command, checksum mismatch, failed handshake,
// Configure error), naming each; the plugins that did start are stopped
// again. ctx bounds the Configure calls.
func (h *Host) Start(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.closed:
		return errors.New("pluginhost: start after close")
	case h.started:
		return errors.New("pluginhost: already started")
	}
	if h.specErr != nil {
		return h.specErr
	}

	// Start in parallel: each start is mostly waiting for a process.
	insts := make([]*instance, len(h.backends))
	errs := make([]error, len(h.backends))
	var wg sync.WaitGroup
	for i, b := range h.backends {
		wg.Go(func() {
			insts[i], errs[i] = b.start(ctx)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, inst := range insts {
			if inst != nil {
				wg.Go(inst.kill)
			}
		}
		wg.Wait()
		return err
	}

	h.started = true
	h.superCtx, h.stop = context.WithCancel(context.Background())
	for i, b := range h.backends {
		b.up(insts[i], true)
		h.superviseLocked(b)
	}
	return nil
}

// superviseLocked starts b's supervisor, which a retirement can stop on
// its own. Called with mu held, after Start.
func (h *Host) superviseLocked(b *Backend) {
	ctx, cancel := context.WithCancel(h.superCtx)
	done := make(chan struct{})
	b.supervisor = func() { cancel(); <-done }
	h.wg.Go(func() {
		defer close(done)
		b.supervise(ctx, h.healthEvery)
	})
}

// Backends returns every plugin's handle, in the order of the specs.
func (h *Host) Backends() []*Backend {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*Backend(nil), h.backends...)
}

// Backend returns the handle of the named plugin.
func (h *Host) Backend(name string) (*Backend, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	b, ok := h.byName[name]
	return b, ok
}

// Close stops the plugins. New calls fail at once with sdk.ErrUnavailable;
// calls in flight may finish until ctx is done; then every plugin is asked
// to exit and killed if it does not. It returns ctx's error if calls were
// still running when ctx ended.
func (h *Host) Close(ctx context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	stop := h.stop
	backends := append([]*Backend(nil), h.backends...)
	h.mu.Unlock()

	// Refuse new calls first, then stop the supervisors (and the
	// retirements of replaced plugins) so that nothing is restarted
	// behind our back.
	for _, b := range backends {
		b.beginClose()
	}
	if stop != nil {
		stop()
	}
	h.wg.Wait()

	var drainErr error
	for _, b := range backends {
		if err := b.drain(ctx); err != nil && drainErr == nil {
			drainErr = fmt.Errorf("pluginhost: close: plugin %q still had calls in flight: %w", b.spec.Name, err)
		}
	}

	var wg sync.WaitGroup
	for _, b := range backends {
		if inst := b.down(); inst != nil {
			// Past the deadline there is no time for go-plugin's polite
			// shutdown (up to 2s): kill first, clean up after.
			if ctx.Err() != nil {
				inst.forceKill()
			}
			wg.Go(inst.kill)
		}
	}
	wg.Wait()
	return drainErr
}
