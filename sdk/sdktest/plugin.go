package sdktest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/koi-im/koi/sdk"
)

// The plugin run talks to the plugin the way koi does, through go-plugin
// with sdk.Handshake and sdk.PluginMap, but without koi's plugin host
// (core/pluginhost): the host adds supervision, health checks and restarts,
// which would only hide a crash from the kit, and importing it would make
// every plugin's tests depend on koi's core. What the kit checks, the wire
// protocol and its error mapping, is all in package sdk.

// startTimeout bounds the go-plugin handshake and Configure.
const startTimeout = 30 * time.Second

// Plugin is a running plugin as the host sees it: an *sdk.Client (every
// feature interface, errors mapped back to the sdk sentinels) with the
// capabilities the plugin declared at Configure.
type Plugin struct {
	*sdk.Client
	caps sdk.Capabilities
	pc   *plugin.Client
}

// Capabilities implements sdk.Backend: what the plugin declared.
func (p *Plugin) Capabilities() sdk.Capabilities { return p.caps }

// Close implements sdk.Backend: it stops the plugin process, which closes
// its backend.
func (p *Plugin) Close() error {
	p.pc.Kill()
	return nil
}

var _ sdk.Backend = (*Plugin)(nil)

// StartPlugin starts the plugin binary command with args, as koi does, and
// configures it with config (JSON). The test fails if it cannot start or
// Configure fails. The process is stopped when t ends; its log goes to
// t.Log.
func StartPlugin(t testing.TB, command string, args []string, config []byte) *Plugin {
	t.Helper()
	log := testLogger(t, "plugin")
	cmd := exec.Command(command, args...)
	cmd.Env = append(os.Environ(), sdk.LogLevelEnv+"=info")
	pc := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		Plugins:          sdk.PluginMap(nil),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           log,
		StartTimeout:     startTimeout,
		SyncStdout:       log.StandardWriter(&hclog.StandardLoggerOptions{ForceLevel: hclog.Info}),
		SyncStderr:       log.StandardWriter(&hclog.StandardLoggerOptions{ForceLevel: hclog.Info}),
	})
	t.Cleanup(pc.Kill)
	proto, err := pc.Client()
	if err != nil {
		t.Fatalf("start plugin %s: %v", command, err)
	}
	raw, err := proto.Dispense(sdk.PluginName)
	if err != nil {
		t.Fatalf("plugin %s: dispense: %v", command, err)
	}
	c, ok := raw.(*sdk.Client)
	if !ok {
		t.Fatalf("plugin %s: dispensed %T, not *sdk.Client", command, raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	caps, err := c.Configure(ctx, config)
	if err != nil {
		t.Fatalf("plugin %s: Configure: %v", command, err)
	}
	checkValidate(t, command, config, caps)
	return &Plugin{Client: c, caps: caps, pc: pc}
}

// checkValidate runs the plugin's validate command on the config Configure
// accepted: it must accept it too and report the same capabilities, or
// `koi check-config` would judge a config differently from koi's start.
// A plugin without the command is only logged.
func checkValidate(t testing.TB, command string, config []byte, caps sdk.Capabilities) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, command, sdk.ValidateCommand, "-json")
	cmd.Stdin = bytes.NewReader(config)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) && (ee.ExitCode() == sdk.ValidateUnsupported ||
		strings.Contains(stderr.String(), "This binary is a plugin")) {
		t.Logf("plugin %s has no validate command; koi check-config cannot check its config", command)
		return
	}
	var rep sdk.ValidationReport
	if jerr := json.Unmarshal(out, &rep); jerr != nil {
		t.Errorf("plugin %s validate: %v; no report (%v) in %q; stderr:\n%s", command, err, jerr, out, &stderr)
		return
	}
	switch {
	case !rep.OK:
		t.Errorf("plugin %s validate rejects the config Configure accepted: %v", command, rep.Problems)
	case rep.Capabilities != caps:
		t.Errorf("plugin %s validate reports capabilities %+v, Configure declared %+v", command, rep.Capabilities, caps)
	}
}

// BuildPlugin builds the plugin's main package pkg (an import path, or a
// directory relative to the test's package such as "./cmd/my-plugin")
// into a temporary directory of t and returns the binary's path, for
// Options.PluginCommand.
func BuildPlugin(t testing.TB, pkg string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "plugin")
	cmd := exec.Command("go", "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}
