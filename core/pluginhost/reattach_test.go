package pluginhost

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/koi-im/koi/sdk"
)

// startDebugPlugin runs the test plugin in the SDK's debug mode, as an
// author would under a debugger, and returns where it listens.
func startDebugPlugin(t *testing.T) (*exec.Cmd, *Reattach) {
	t.Helper()
	cmd := exec.Command(pluginPath, sdk.DebugFlag)
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
	r := &Reattach{}
	if _, err := fmt.Sscanf(strings.TrimSpace(line), "reattach = { pid = %d, network = %q, address = %q, protocol_version = %d }",
		&r.Pid, &r.Network, &r.Address, &r.ProtocolVersion); err != nil {
		t.Fatalf("reattach line %q: %v", line, err)
	}
	return cmd, r
}

func TestReattachLeavesThePluginRunning(t *testing.T) {
	cmd, r := startDebugPlugin(t)
	ctx := context.Background()
	for round := range 2 {
		log, logs := newLogger(t)
		h := New(log, []Spec{{Name: "dbg", Reattach: r, Command: "not-started", SHA256: strings.Repeat("0", 64)}})
		if err := h.Start(ctx); err != nil {
			t.Fatalf("round %d: Start: %v", round, err)
		}
		b := mustBackend(t, h, "dbg")
		// Each host configures the plugin anew: an in-memory backend
		// starts empty.
		_, err := b.GetVCard(ctx, "a@b")
		isErr(t, "GetVCard", err, sdk.ErrNotFound)
		must(t, b.SetVCard(ctx, "a@b", "<vCard/>"))
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = h.Close(cctx)
		cancel()
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
		if processGone(cmd.Process.Pid) {
			t.Fatalf("round %d: the host stopped a plugin it did not start", round)
		}
		for _, msg := range []string{"attached to plugin in debug mode", "command, args and sha256 are not used"} {
			if !strings.Contains(logs.String(), msg) {
				t.Errorf("log lacks %q", msg)
			}
		}
	}
}

func TestReattachedPluginGone(t *testing.T) {
	cmd, r := startDebugPlugin(t)
	h, logs := startHost(t, Spec{Name: "dbg", Reattach: r})
	b := mustBackend(t, h, "dbg")
	ctx := context.Background()
	must(t, b.SetVCard(ctx, "a@b", "<vCard/>"))

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	// Calls fail at once while the host tries to attach again, and keeps
	// trying: it cannot start the author's process itself.
	eventually(t, 5*time.Second, "plugin seen down", func() bool {
		_, err := b.GetVCard(ctx, "a@b")
		return err != nil && strings.Contains(err.Error(), sdk.ErrUnavailable.Error())
	})
	eventually(t, 5*time.Second, "re-attach attempts", func() bool {
		s := logs.String()
		return strings.Contains(s, "attaching to plugin again") && strings.Contains(s, "no process")
	})
	if strings.Contains(logs.String(), "restarting plugin") {
		t.Error("the host tried to start a plugin it only attaches to")
	}
}

func TestReattachStartErrors(t *testing.T) {
	_, live := startDebugPlugin(t)
	tests := []struct {
		name string
		r    Reattach
		want string
	}{
		{"protocol version", Reattach{Pid: live.Pid, Network: "unix", Address: live.Address, ProtocolVersion: 99},
			"reattach: the plugin speaks protocol version 99, this koi speaks 1"},
		{"no such process", Reattach{Pid: 1 << 22, Network: "unix", Address: live.Address, ProtocolVersion: 1},
			"no process 4194304: if it exited, start it again in debug mode"},
		{"nothing listening", Reattach{Pid: live.Pid, Network: "unix", Address: live.Address + ".gone", ProtocolVersion: 1},
			"nothing listens at " + live.Address + ".gone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, _ := newLogger(t)
			h := New(log, []Spec{{Name: "dbg", Reattach: &tt.r}})
			err := h.Start(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Start: %v, want an error containing %q", err, tt.want)
			}
			_ = h.Close(context.Background())
		})
	}
	if err := syscall.Kill(live.Pid, 0); err != nil {
		t.Errorf("failed attaches harmed the plugin: %v", err)
	}
}
