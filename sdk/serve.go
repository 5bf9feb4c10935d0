package sdk

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// LogLevelEnv names the environment variable through which the host tells a
// plugin the level it logs at ("trace" … "error"); the plugin's logger
// drops what the host would drop anyway. Default "info".
const LogLevelEnv = "KOI_PLUGIN_LOG_LEVEL"

// parentPollInterval is how often a plugin checks that the process that
// started it is still there.
const parentPollInterval = 500 * time.Millisecond

// closeTimeout bounds Backend.Close at shutdown: a plugin that cannot
// close its backend in time exits anyway.
const closeTimeout = 5 * time.Second

// Serve runs a backend plugin; call it from the plugin's main. It never
// returns: the process exits when the host stops the plugin, on SIGTERM or
// SIGINT, or when the host process goes away (even if it was SIGKILLed),
// closing the backend first.
//
// The plugin logs to the host through the Logger its Factory gets (hclog
// JSON on stderr, the format go-plugin's host reads). Nothing may be written to stdout before Serve: go-plugin
// uses the first line of stdout for its handshake.
//
// With DebugEnv set or DebugFlag as first argument, the plugin runs on its
// own for a debugger and koi attaches to it (see DebugEnv).
//
// Run as `COMMAND validate [-json]` the plugin instead checks the config
// block on standard input with the Validator given by WithValidator, and
// exits (see ValidateCommand).
func Serve(f Factory, opts ...ServeOption) {
	var o serveOptions
	for _, opt := range opts {
		opt(&o)
	}
	if len(os.Args) > 1 && os.Args[1] == ValidateCommand {
		os.Exit(runValidate(o.validate, os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
	}
	debug := debugRequested(os.Args, os.Getenv)
	log := newPluginLogger(!debug)
	if f == nil {
		log.Error("cannot serve", "error", errNoFactory)
		os.Exit(1)
	}
	srv := newServer(f, log)
	p := &servedPlugin{srv: srv}
	if debug {
		os.Exit(serveDebug(log, srv, p, os.Stdout))
	}
	ppid := os.Getppid()

	// Once the host is gone, writing a log line to its end of our stderr
	// would raise SIGPIPE and kill us before the backend is closed.
	signal.Ignore(syscall.SIGPIPE)
	// Subscribe before serving so that no signal is lost.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)

	served := make(chan struct{})
	go func() {
		defer close(served)
		plugin.Serve(&plugin.ServeConfig{
			HandshakeConfig: Handshake,
			Plugins:         map[string]plugin.Plugin{PluginName: p},
			GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
				return grpc.NewServer(serverOptions(log, opts)...)
			},
			Logger: log,
		})
	}()

	tick := time.NewTicker(parentPollInterval)
	defer tick.Stop()
	for {
		select {
		case <-served:
			// The host closed the connection (go-plugin's Kill).
			os.Exit(shutdown(log, srv, 0))
		case sig := <-sigs:
			log.Info("shutting down", "signal", sig.String())
			os.Exit(shutdown(log, srv, 0))
		case <-tick.C:
			// Orphans are re-parented (to init or a subreaper), so a changed
			// parent pid means the host is gone, however it died.
			if now := os.Getppid(); now != ppid {
				log.Warn("host process is gone, exiting", "host_pid", ppid)
				os.Exit(shutdown(log, srv, 1))
			}
		}
	}
}

// ServeOption adds to what Serve does.
type ServeOption func(*serveOptions)

type serveOptions struct {
	validate Validator
}

// WithValidator gives the plugin a validate command (see ValidateCommand).
// Without one, `COMMAND validate` exits with ValidateUnsupported.
func WithValidator(v Validator) ServeOption {
	return func(o *serveOptions) { o.validate = v }
}

// shutdown closes the backend, waiting at most closeTimeout, and returns
// the exit code to use.
func shutdown(log Logger, srv *server, code int) int {
	done := make(chan error, 1)
	go func() { done <- srv.close() }()
	select {
	case err := <-done:
		if err != nil {
			log.Error("closing backend", "error", err)
			return 1
		}
	case <-time.After(closeTimeout):
		log.Error("closing backend timed out", "timeout", closeTimeout.String())
		return 1
	}
	return code
}

// servedPlugin is the GRPCPlugin Serve registers: it serves the one server
// Serve owns, so that Serve can close its backend at shutdown.
type servedPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	srv *server
}

func (p *servedPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	registerServer(s, p.srv)
	return nil
}

func (p *servedPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return NewClient(conn), nil
}

// newPluginLogger logs to stderr: hclog JSON, which go-plugin reads on the
// host side and folds into the host's log under the plugin's name, or text
// for a person reading a plugin in debug mode.
func newPluginLogger(json bool) hclog.Logger {
	level := hclog.LevelFromString(os.Getenv(LogLevelEnv))
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	return hclog.New(&hclog.LoggerOptions{
		Level:      level,
		Output:     os.Stderr,
		JSONFormat: json,
	})
}
