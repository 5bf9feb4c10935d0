package pluginhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/koi-im/koi/sdk"
)

// Backend is the handle of one plugin. It stays valid across restarts of
// the plugin process and implements the sdk feature interfaces by calling
// whichever process is current.
type Backend struct {
	spec     Spec
	log      hclog.Logger
	errs     *errLog // logs the errors of calls, rate-limited per method
	config   []byte  // spec.Config as JSON
	checksum []byte  // decoded spec.SHA256, nil when unset
	// kick asks the supervisor to check the plugin now, after a call saw
	// ErrUnavailable.
	kick chan struct{}
	// restart asks the supervisor to replace the process (an operator's
	// request through the admin API).
	restart chan struct{}
	obs     Observer // nil: none (see Host.SetObserver)
	// supervisor stops the supervisor and waits for it; set when it
	// starts (Host.superviseLocked).
	supervisor func()

	mu        sync.Mutex
	inst      *instance // nil while the plugin is down
	caps      sdk.Capabilities
	capsKnown bool
	healthy   bool
	closing   bool
	inflight  int
	drained   chan struct{} // closed when closing and inflight reaches 0
}

// instance is one running plugin process.
type instance struct {
	pc      *plugin.Client
	client  *sdk.Client
	health  grpc_health_v1.HealthClient
	proc    *os.Process
	pid     int
	caps    sdk.Capabilities
	started time.Time
	// attached is the connection to a plugin koi did not start (Spec.Reattach),
	// nil for one it did; such a plugin is never killed, only disconnected.
	attached io.Closer
}

// Name returns the plugin's name.
func (b *Backend) Name() string { return b.spec.Name }

// Capabilities returns what the plugin declared at its first successful
// Configure (the zero value before that). The core decides what to offer
// from it once; a restarted plugin that declares less refuses the rest
// itself.
func (b *Backend) Capabilities() sdk.Capabilities {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.caps
}

// Healthy reports whether the plugin is running and its last health check
// passed.
func (b *Backend) Healthy() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.inst != nil && b.healthy
}

// start launches a new plugin process and configures it.
func (b *Backend) start(ctx context.Context) (*instance, error) {
	launch := b.launch
	if b.spec.Reattach != nil {
		launch = b.attach
	}
	inst, err := launch(ctx)
	if err != nil {
		return nil, fmt.Errorf("plugin %q: %w", b.spec.Name, err)
	}
	return inst, nil
}

func (b *Backend) launch(ctx context.Context) (*instance, error) {
	path, err := b.commandPath()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, b.spec.Args...)
	cmd.Dir = b.spec.Dir
	// Env order matters: the last value of a key wins, and the spec's
	// values must beat the host's.
	cmd.Env = append(os.Environ(), b.spec.Env...)
	cmd.Env = append(cmd.Env, sdk.LogLevelEnv+"="+levelName(b.log))
	cmd.SysProcAttr = sysProcAttr()

	var secure *plugin.SecureConfig
	if b.checksum != nil {
		// A fresh hash per start: go-plugin feeds the file into Hash
		// without resetting it.
		secure = &plugin.SecureConfig{Checksum: b.checksum, Hash: sha256.New()}
	}
	pc := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		Plugins:          sdk.PluginMap(nil),
		Cmd:              cmd,
		SecureConfig:     secure,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		GRPCDialOptions:  sdk.DialOptions(),
		Logger:           b.log,
		StartTimeout:     startTimeout,
		SkipHostEnv:      true, // cmd.Env already holds it, in the right order
		// What the plugin prints after the handshake is not lost either.
		SyncStdout: b.log.Named("stdout").StandardWriter(&hclog.StandardLoggerOptions{ForceLevel: hclog.Info}),
		SyncStderr: b.log.Named("stderr").StandardWriter(&hclog.StandardLoggerOptions{ForceLevel: hclog.Info}),
	})
	fail := func(err error) (*instance, error) {
		pc.Kill()
		return nil, err
	}

	proto, err := pc.Client()
	switch {
	case errors.Is(err, plugin.ErrChecksumsDoNotMatch):
		return fail(b.checksumError(path, fileSHA256(path)))
	case err != nil:
		return fail(fmt.Errorf("start %s: %w", path, err))
	}
	grpcProto, ok := proto.(*plugin.GRPCClient)
	if !ok {
		return fail(fmt.Errorf("plugin speaks %T, not gRPC", proto))
	}
	client, caps, err := b.configure(ctx, proto)
	if err != nil {
		return fail(err)
	}
	return &instance{
		pc:      pc,
		client:  client,
		health:  grpc_health_v1.NewHealthClient(grpcProto.Conn),
		proc:    cmd.Process, // set by go-plugin's cmd.Start
		pid:     cmd.Process.Pid,
		caps:    caps,
		started: time.Now(),
	}, nil
}

// configure gets the backend client from a connected plugin and sends it
// its configuration.
func (b *Backend) configure(ctx context.Context, proto plugin.ClientProtocol) (*sdk.Client, sdk.Capabilities, error) {
	raw, err := proto.Dispense(sdk.PluginName)
	if err != nil {
		return nil, sdk.Capabilities{}, fmt.Errorf("dispense: %w", err)
	}
	client, ok := raw.(*sdk.Client)
	if !ok {
		return nil, sdk.Capabilities{}, fmt.Errorf("dispense: unexpected client type %T", raw)
	}
	cctx, cancel := context.WithTimeout(ctx, configureTimeout)
	defer cancel()
	caps, err := client.Configure(cctx, b.config)
	if err != nil {
		return nil, sdk.Capabilities{}, fmt.Errorf("configure: %w", err)
	}
	return client, caps, nil
}

// kill stops the process: politely, then (after go-plugin's 2s) by force.
// An attached process is only disconnected from.
func (i *instance) kill() {
	if i.attached != nil {
		_ = i.attached.Close()
		return
	}
	i.pc.Kill()
}

// forceKill sends SIGKILL without waiting; kill still has to clean up.
// os.Process knows when the process has been reaped, so this never hits a
// recycled pid.
func (i *instance) forceKill() {
	if i.proc != nil {
		_ = i.proc.Kill()
	}
}

// alive checks that the process answers at all, independent of the
// backend's health: go-plugin registers a gRPC health service in every
// plugin.
func (i *instance) alive(ctx context.Context, timeout time.Duration) error {
	if i.pc.Exited() {
		return errors.New("process exited")
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := i.health.Check(ctx, &grpc_health_v1.HealthCheckRequest{Service: plugin.GRPCServiceName})
	if err != nil {
		if i.pc.Exited() {
			return errors.New("process exited")
		}
		return fmt.Errorf("not responding: %w", err)
	}
	if resp.GetStatus() != grpc_health_v1.HealthCheckResponse_SERVING {
		return fmt.Errorf("not serving: %v", resp.GetStatus())
	}
	return nil
}

func levelName(log hclog.Logger) string {
	if l := log.GetLevel(); l != hclog.NoLevel {
		return l.String()
	}
	return hclog.Info.String()
}

// commandPath finds the plugin binary: a path, or a name looked up in PATH.
// The file must exist and be executable. The result is absolute: exec
// would resolve a relative one against Spec.Dir, not where it was found.
func (b *Backend) commandPath() (string, error) {
	path, err := exec.LookPath(b.spec.Command)
	if err != nil {
		return "", fmt.Errorf("command %q: %w", b.spec.Command, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("command %q: %w", b.spec.Command, err)
	}
	return abs, nil
}

// checksumError refuses the binary at path, whose sha256 is got.
func (b *Backend) checksumError(path, got string) error {
	return fmt.Errorf("checksum mismatch: %s has sha256 %s, config wants %s; refusing to start it",
		path, got, b.spec.SHA256)
}

// fileSHA256 describes the file's current sha256 for an error message.
func fileSHA256(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "unknown (" + err.Error() + ")"
	}
	return hex.EncodeToString(h.Sum(nil))
}

// up installs a freshly started instance.
func (b *Backend) up(inst *instance, first bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.inst = inst
	b.healthy = true
	if !b.capsKnown {
		b.caps, b.capsKnown = inst.caps, true
	} else if inst.caps != b.caps {
		b.log.Warn("plugin declares different capabilities than at its first start; keeping the first",
			"first", describeCaps(b.caps), "now", describeCaps(inst.caps))
	}
	switch {
	case inst.attached != nil && first:
		b.log.Info("attached to plugin in debug mode", "pid", inst.pid, "capabilities", describeCaps(inst.caps))
	case inst.attached != nil:
		b.log.Info("attached to plugin again", "pid", inst.pid)
	case first:
		b.log.Info("plugin started", "pid", inst.pid, "capabilities", describeCaps(inst.caps))
	default:
		b.log.Info("plugin restarted", "pid", inst.pid)
		if b.obs != nil {
			b.obs.PluginRestarted(b.spec.Name)
		}
	}
}

// down removes the current instance and returns it (nil if none).
func (b *Backend) down() *instance {
	b.mu.Lock()
	defer b.mu.Unlock()
	inst := b.inst
	b.inst = nil
	b.healthy = false
	return inst
}

func describeCaps(c sdk.Capabilities) string {
	auth := c.Auth.Access.String()
	if c.Auth.SCRAM {
		auth += "+scram"
	}
	archive := c.Archive.Access.String()
	if c.Archive.FullText {
		archive += "+fulltext"
	}
	return fmt.Sprintf("auth=%s roster=%v offline=%v vcard=%v private=%v archive=%s blocklist=%v tokens=%v muc=%v pubsub=%v", auth, c.Roster, c.Offline, c.VCard, c.Private, archive, c.Blocklist, c.Tokens, c.MUC, c.PubSub)
}

// setHealthy records a backend health check and logs changes.
func (b *Backend) setHealthy(inst *instance, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inst != inst {
		return
	}
	switch {
	case err != nil && b.healthy:
		b.log.Warn("plugin unhealthy", "error", err)
	case err == nil && !b.healthy:
		b.log.Info("plugin healthy again")
	}
	b.healthy = err == nil
}

// supervise watches the current instance and replaces it when it dies,
// until ctx is done.
func (b *Backend) supervise(ctx context.Context, healthEvery time.Duration) {
	backoff := backoffMin
	for {
		b.mu.Lock()
		inst := b.inst
		b.mu.Unlock()

		reason := b.watch(ctx, inst, healthEvery)
		if ctx.Err() != nil {
			return
		}
		if reason == reasonRestart {
			b.log.Info("restarting plugin", "pid", inst.pid, "reason", reason)
		} else {
			b.log.Error("plugin down", "pid", inst.pid, "reason", reason)
		}
		b.down()
		inst.forceKill()
		inst.kill()
		if time.Since(inst.started) >= stableAfter {
			backoff = backoffMin
		}

		for attempt := 1; ; attempt++ {
			if inst.attached != nil {
				b.log.Info("attaching to plugin again", "in", backoff.String(), "attempt", attempt)
			} else {
				b.log.Info("restarting plugin", "in", backoff.String(), "attempt", attempt)
			}
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(backoff*2, backoffMax)
			next, err := b.start(ctx)
			if err == nil {
				b.up(next, false)
				break
			}
			if ctx.Err() != nil {
				return
			}
			b.log.Error("plugin restart failed", "error", err, "attempt", attempt)
		}
	}
}

// reasonRestart is why watch returns after Restart.
const reasonRestart = "restart requested by an operator"

// Restart makes the supervisor replace the plugin's process: calls in
// flight fail with sdk.ErrUnavailable, and new calls too until the new
// process is up (after the shortest restart back-off). It returns at once.
func (b *Backend) Restart() {
	select {
	case b.restart <- struct{}{}:
	default: // one is pending already
	}
}

// PID is the plugin process's id, 0 while it is down.
func (b *Backend) PID() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inst == nil {
		return 0
	}
	return b.inst.pid
}

// watch returns why inst should be replaced, or "" when ctx is done.
func (b *Backend) watch(ctx context.Context, inst *instance, healthEvery time.Duration) string {
	exitTick := time.NewTicker(exitPollInterval)
	defer exitTick.Stop()
	healthTick := time.NewTicker(healthEvery)
	defer healthTick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ""
		case <-exitTick.C:
			if inst.pc.Exited() {
				return "process exited"
			}
		case <-b.restart:
			return reasonRestart
		case <-b.kick:
			if err := inst.alive(ctx, b.spec.CallTimeout); err != nil && ctx.Err() == nil {
				return err.Error()
			}
		case <-healthTick.C:
			if err := inst.alive(ctx, b.spec.CallTimeout); err != nil {
				if ctx.Err() != nil {
					return ""
				}
				return err.Error()
			}
			pctx, cancel := context.WithTimeout(ctx, b.spec.CallTimeout)
			err := inst.client.Ping(pctx)
			cancel()
			if ctx.Err() != nil {
				return ""
			}
			b.setHealthy(inst, err)
		}
	}
}

// beginClose makes every new call fail.
func (b *Backend) beginClose() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closing = true
	b.drained = make(chan struct{})
	if b.inflight == 0 {
		close(b.drained)
	}
}

// drain waits until the calls in flight have finished or ctx is done.
func (b *Backend) drain(ctx context.Context) error {
	b.mu.Lock()
	drained := b.drained
	b.mu.Unlock()
	select {
	case <-drained:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// acquire returns the current client for one call, or ErrUnavailable at
// once when there is none. release must follow.
func (b *Backend) acquire() (*sdk.Client, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closing:
		return nil, fmt.Errorf("plugin %q is shutting down: %w", b.spec.Name, sdk.ErrUnavailable)
	case b.inst == nil && !b.capsKnown:
		return nil, fmt.Errorf("plugin %q is not started: %w", b.spec.Name, sdk.ErrUnavailable)
	case b.inst == nil:
		return nil, fmt.Errorf("plugin %q is down, restarting: %w", b.spec.Name, sdk.ErrUnavailable)
	}
	b.inflight++
	return b.inst.client, nil
}

func (b *Backend) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.inflight--
	if b.inflight == 0 && b.closing {
		close(b.drained)
	}
}

// poke asks the supervisor for a check without waiting for it.
func (b *Backend) poke() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// call runs one call of method, for host, on the current plugin with the
// call timeout, and logs the error it returns (see errLog). A call refused
// because the plugin is down or closing is not logged: the supervisor
// already says so, once.
func call[T any](ctx context.Context, b *Backend, method, host string, f func(context.Context, *sdk.Client) (T, error)) (T, error) {
	start := time.Now()
	c, err := b.acquire()
	if err != nil {
		b.observeCall(method, start, err)
		var zero T
		return zero, err
	}
	defer b.release()
	callCtx, cancel := context.WithTimeout(ctx, b.spec.CallTimeout)
	defer cancel()
	v, err := f(callCtx, c)
	if err != nil && errors.Is(err, sdk.ErrUnavailable) {
		b.poke()
		err = fmt.Errorf("plugin %q: %w", b.spec.Name, err)
	}
	// ctx, not callCtx: a call that hit the call timeout is logged, one
	// whose caller gave up is not.
	b.errs.report(ctx, method, host, err)
	b.observeCall(method, start, err)
	return v, err
}

// callErr is call for methods that return only an error.
func callErr(ctx context.Context, b *Backend, method, host string, f func(context.Context, *sdk.Client) error) error {
	_, err := call(ctx, b, method, host, func(ctx context.Context, c *sdk.Client) (struct{}, error) {
		return struct{}{}, f(ctx, c)
	})
	return err
}
