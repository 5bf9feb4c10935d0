package sdk_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/koi-im/koi/sdk"
)

// attach connects to a plugin in debug mode the way koi's reattach does
// and configures it; close drops the connection without stopping the
// plugin.
func attach(t *testing.T, rc *plugin.ReattachConfig, cfg []byte) (c *sdk.Client, close func()) {
	t.Helper()
	pc := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		Plugins:          sdk.PluginMap(nil),
		Reattach:         rc,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           hclog.NewNullLogger(),
	})
	proto, err := pc.Client()
	if err != nil {
		t.Fatalf("attaching: %v", err)
	}
	raw, err := proto.Dispense(sdk.PluginName)
	if err != nil {
		t.Fatalf("dispense: %v", err)
	}
	c = raw.(*sdk.Client)
	if _, err := c.Configure(context.Background(), cfg); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return c, func() { _ = proto.(*plugin.GRPCClient).Conn.Close() }
}

func TestDebugModeServesForReattach(t *testing.T) {
	for _, how := range []string{"flag", "env"} {
		t.Run(how, func(t *testing.T) {
			marker, cfg := markerConfig(t)
			cmd := exec.Command(pluginPath)
			if how == "flag" {
				cmd.Args = append(cmd.Args, sdk.DebugFlag)
			} else {
				cmd.Env = append(os.Environ(), sdk.DebugEnv+"=1")
			}
			cmd.Stderr = os.Stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

			line, err := bufio.NewReader(out).ReadString('\n')
			if err != nil {
				t.Fatalf("reading the reattach line: %v", err)
			}
			var pid, version int
			var network, address string
			if _, err := fmt.Sscanf(strings.TrimSpace(line), "reattach = { pid = %d, network = %q, address = %q, protocol_version = %d }",
				&pid, &network, &address, &version); err != nil {
				t.Fatalf("reattach line %q: %v", line, err)
			}
			if pid != cmd.Process.Pid || version != int(sdk.Handshake.ProtocolVersion) || network != "unix" {
				t.Fatalf("reattach line %q: want pid %d, protocol_version %d, a unix socket", line, cmd.Process.Pid, sdk.Handshake.ProtocolVersion)
			}
			rc := &plugin.ReattachConfig{
				Protocol: plugin.ProtocolGRPC, ProtocolVersion: version, Pid: pid, Test: true,
				Addr: &net.UnixAddr{Net: network, Name: address},
			}

			// A first host attaches, calls, and goes away: the plugin stays.
			c, closeConn := attach(t, rc, cfg)
			if err := c.Ping(context.Background()); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			closeConn()
			time.Sleep(200 * time.Millisecond)
			if processGone(pid) {
				t.Fatal("the plugin exited when its host disconnected")
			}

			// The next host configures it again; the old backend is closed.
			c, closeConn = attach(t, rc, cfg)
			defer closeConn()
			if err := c.Ping(context.Background()); err != nil {
				t.Fatalf("Ping after re-attaching: %v", err)
			}
			if _, err := os.Stat(marker); err != nil {
				t.Errorf("previous backend not closed at reconfigure: %v", err)
			}

			if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Wait(); err != nil {
				t.Errorf("exit after SIGTERM: %v", err)
			}
		})
	}
}

// The README's reattach steps show the line Serve prints.
func TestReadmeShowsTheReattachLine(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	line := sdk.ReattachLine(&plugin.ReattachConfig{
		Pid: 4242, ProtocolVersion: int(sdk.Handshake.ProtocolVersion),
		Addr: &net.UnixAddr{Net: "unix", Name: "/tmp/plugin123"},
	})
	if !strings.Contains(string(readme), "```hcl\n     "+line+"\n     ```\n") {
		t.Errorf("README.md's Debugging section does not show the line debug mode prints:\n%s", line)
	}
}
