package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/koi-im/koi/sdk"
)

// Reattach is where a plugin started by hand in the SDK's debug mode (see
// sdk.DebugEnv) listens, as the line it prints. The host attaches to that
// process instead of starting one: it configures it, health-checks it and,
// when it stops answering (a breakpoint, or it exited), attaches again
// with backoff until it answers; it never kills it, at shutdown neither.
type Reattach struct {
	Pid             int
	Network         string // "unix" or "tcp"
	Address         string
	ProtocolVersion int
}

func (r *Reattach) check() error {
	switch {
	case r.Pid <= 0:
		return fmt.Errorf("pid %d is not a process id", r.Pid)
	case r.Network != "unix" && r.Network != "tcp":
		return fmt.Errorf("network %q: want \"unix\" or \"tcp\"", r.Network)
	case r.Address == "":
		return errors.New("no address")
	case r.ProtocolVersion != int(sdk.Handshake.ProtocolVersion):
		return fmt.Errorf("the plugin speaks protocol version %d, this koi speaks %d: rebuild the plugin against a matching sdk",
			r.ProtocolVersion, sdk.Handshake.ProtocolVersion)
	}
	return nil
}

func (r *Reattach) addr() (net.Addr, error) {
	if r.Network == "unix" {
		return &net.UnixAddr{Net: "unix", Name: r.Address}, nil
	}
	return net.ResolveTCPAddr("tcp", r.Address)
}

// attach connects to the running plugin of b.spec.Reattach and configures
// it.
func (b *Backend) attach(ctx context.Context) (*instance, error) {
	r := b.spec.Reattach
	addr, err := r.addr()
	if err != nil {
		return nil, fmt.Errorf("reattach address %q: %w", r.Address, err)
	}
	where := fmt.Sprintf("%s:%s (pid %d)", r.Network, r.Address, r.Pid)
	proc := &attachedProcess{pid: r.Pid, addr: addr, gone: make(chan struct{})}
	pc := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig: sdk.Handshake,
		Plugins:         sdk.PluginMap(nil),
		// Test: the process is the author's, not ours: go-plugin's Kill
		// leaves it alone.
		Reattach: &plugin.ReattachConfig{
			Protocol: plugin.ProtocolGRPC, ProtocolVersion: r.ProtocolVersion,
			Addr: addr, Pid: r.Pid, Test: true,
			ReattachFunc: proc.attach,
		},
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		GRPCDialOptions:  sdk.DialOptions(),
		Logger:           b.log,
		StartTimeout:     startTimeout,
	})
	proto, err := pc.Client()
	if err != nil {
		return nil, fmt.Errorf("attach to %s: %w", where, err)
	}
	grpcProto, ok := proto.(*plugin.GRPCClient)
	if !ok {
		return nil, fmt.Errorf("attach to %s: plugin speaks %T, not gRPC", where, proto)
	}
	// Closing the connection, not go-plugin's Close: that would ask the
	// plugin to shut down.
	conn := closers{grpcProto.Conn, proc}
	fail := func(err error) (*instance, error) {
		_ = conn.Close()
		return nil, err
	}
	client, caps, err := b.configure(ctx, proto)
	if err != nil {
		return fail(fmt.Errorf("the plugin at %s: %w", where, err))
	}
	return &instance{
		pc:       pc,
		client:   client,
		health:   grpc_health_v1.NewHealthClient(grpcProto.Conn),
		pid:      r.Pid,
		caps:     caps,
		started:  time.Now(),
		attached: conn,
	}, nil
}

// errPluginGone says that the process to attach to is not there.
var errPluginGone = errors.New("if it exited, start it again in debug mode and put its new reattach line in the plugin block")

// attachedProcess is go-plugin's view of a process koi did not start. Its
// Wait ends when the process is gone or koi lets go of it; go-plugin's own
// version polls until the process exits, for every attempt to attach.
type attachedProcess struct {
	pid  int
	addr net.Addr
	gone chan struct{}
	once sync.Once
}

// attach is the plugin.ReattachFunc: it checks that the process exists
// and listens.
func (p *attachedProcess) attach() (runner.AttachedRunner, error) {
	if !pidAlive(p.pid) {
		return nil, fmt.Errorf("no process %d: %w", p.pid, errPluginGone)
	}
	conn, err := net.DialTimeout(p.addr.Network(), p.addr.String(), startTimeout)
	if err != nil {
		return nil, fmt.Errorf("nothing listens at %s: %w", p.addr, errPluginGone)
	}
	_ = conn.Close()
	return p, nil
}

func (p *attachedProcess) Wait(ctx context.Context) error {
	tick := time.NewTicker(exitPollInterval)
	defer tick.Stop()
	for {
		select {
		case <-p.gone:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if !pidAlive(p.pid) {
				return nil
			}
		}
	}
}

// Kill is never called (go-plugin's reattach in test mode keeps no
// runner); it does not kill either.
func (p *attachedProcess) Kill(context.Context) error { return p.Close() }

// Close lets go of the process: Wait returns.
func (p *attachedProcess) Close() error {
	p.once.Do(func() { close(p.gone) })
	return nil
}

func (p *attachedProcess) ID() string { return strconv.Itoa(p.pid) }

func (p *attachedProcess) PluginToHost(network, addr string) (string, string, error) {
	return network, addr, nil
}

func (p *attachedProcess) HostToPlugin(network, addr string) (string, string, error) {
	return network, addr, nil
}

// pidAlive reports whether a process with pid exists (a zombie counts as
// gone).
func pidAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || len(s) <= i+2 || s[i+2] != 'Z'
}

// closers closes each in turn.
type closers []io.Closer

func (c closers) Close() error {
	var errs []error
	for _, x := range c {
		errs = append(errs, x.Close())
	}
	return errors.Join(errs...)
}
