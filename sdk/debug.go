package sdk

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// DebugEnv names the environment variable that puts Serve in debug mode
// when it is "1" or "true"; DebugFlag, as the plugin's first argument,
// does the same. In debug mode the plugin is not started by koi: it runs
// on its own (typically under a debugger such as dlv), listens, and prints
// on stdout one line for the koi plugin block, which makes koi attach to
// this process instead of starting its command:
//
//	reattach = { pid = 4242, network = "unix", address = "/tmp/plugin123", protocol_version = 1 }
//
// A koi that stops (or loses the plugin) leaves the process running; the
// next koi attached to it configures it again, and the plugin then replaces
// its backend. The plugin logs as text on its own stderr, not to koi, and
// exits on SIGINT or SIGTERM.
const (
	DebugEnv  = "KOI_PLUGIN_DEBUG"
	DebugFlag = "-debug"
)

// debugRequested reports whether args (os.Args) or the environment ask
// for debug mode.
func debugRequested(args []string, getenv func(string) string) bool {
	if len(args) > 1 && (args[1] == DebugFlag || args[1] == "-"+DebugFlag) {
		return true
	}
	v, err := strconv.ParseBool(getenv(DebugEnv))
	return err == nil && v
}

// ReattachLine formats where a plugin in debug mode listens as the line a
// koi plugin block takes (see DebugEnv).
func ReattachLine(rc *plugin.ReattachConfig) string {
	return fmt.Sprintf("reattach = { pid = %d, network = %s, address = %s, protocol_version = %d }",
		rc.Pid, strconv.Quote(rc.Addr.Network()), strconv.Quote(rc.Addr.String()), rc.ProtocolVersion)
}

// serveDebug serves srv in go-plugin's test mode: no handshake on stdout,
// no parent to watch, and a host that disconnects does not stop it.
func serveDebug(log hclog.Logger, srv *server, p *servedPlugin, out io.Writer) int {
	srv.reconfigurable = true
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reattach := make(chan *plugin.ReattachConfig, 1)
	closed := make(chan struct{})
	go plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         map[string]plugin.Plugin{PluginName: p},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(serverOptions(log, opts)...)
		},
		Logger: log,
		Test:   &plugin.ServeTestConfig{Context: ctx, ReattachConfigCh: reattach, CloseCh: closed},
	})

	select {
	case rc := <-reattach:
		log.Info("debug mode: waiting for koi; put this line in the plugin block",
			"pid", rc.Pid, "address", rc.Addr.String())
		fmt.Fprintln(out, ReattachLine(rc))
	case <-closed:
		log.Error("debug mode: the plugin server could not start")
		return 1
	}
	select {
	case <-closed:
		// A host asked go-plugin to shut the server down.
		return shutdown(log, srv, 0)
	case sig := <-sigs:
		log.Info("shutting down", "signal", sig.String())
		cancel()
		<-closed
		return shutdown(log, srv, 0)
	}
}
