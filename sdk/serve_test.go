package sdk_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/koi-im/koi/sdk"
)

// pluginPath is the testbackend plugin, built once by TestMain.
var pluginPath string

// Environment of the fake host (this test binary re-executed).
const (
	fakeHostEnv   = "KOI_SDK_TEST_FAKE_HOST"
	fakeConfigEnv = "KOI_SDK_TEST_FAKE_CONFIG"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(fakeHostEnv); path != "" {
		os.Exit(fakeHost(path, os.Getenv(fakeConfigEnv)))
	}
	dir, err := os.MkdirTemp("", "sdk-test")
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

// startPlugin launches the plugin the way a host does, without the host's
// parent-death signal, and configures it.
func startPlugin(path string, cfg []byte) (*plugin.Client, *sdk.Client, error) {
	pc := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		Plugins:          sdk.PluginMap(nil),
		Cmd:              exec.Command(path),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           hclog.NewNullLogger(),
	})
	proto, err := pc.Client()
	if err != nil {
		pc.Kill()
		return nil, nil, err
	}
	raw, err := proto.Dispense(sdk.PluginName)
	if err != nil {
		pc.Kill()
		return nil, nil, err
	}
	c := raw.(*sdk.Client)
	if _, err := c.Configure(context.Background(), cfg); err != nil {
		pc.Kill()
		return nil, nil, err
	}
	return pc, c, nil
}

// fakeHost starts the plugin, prints its pid and waits to be killed.
func fakeHost(path, cfg string) int {
	pc, _, err := startPlugin(path, []byte(cfg))
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake host:", err)
		return 1
	}
	fmt.Printf("pid %d\n", pc.ReattachConfig().Pid)
	select {}
}

func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && len(s) > i+2 && s[i+2] == 'Z' // a zombie is gone too
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func markerConfig(t *testing.T) (marker string, cfg []byte) {
	t.Helper()
	marker = filepath.Join(t.TempDir(), "closed")
	cfg, err := json.Marshal(map[string]any{"close_marker": marker})
	if err != nil {
		t.Fatal(err)
	}
	return marker, cfg
}

func TestPluginExitsWhenHostDies(t *testing.T) {
	marker, cfg := markerConfig(t)
	host := exec.Command(os.Args[0], "-test.run=^$")
	host.Env = append(os.Environ(), fakeHostEnv+"="+pluginPath, fakeConfigEnv+"="+string(cfg))
	host.Stderr = os.Stderr
	out, err := host.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	defer host.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the plugin pid from the fake host: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "pid ")))
	if err != nil || pid <= 0 {
		t.Fatalf("fake host said %q", line)
	}
	if processGone(pid) {
		t.Fatal("plugin not running")
	}
	// Should the plugin outlive the test, do not leave it behind.
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })

	// SIGKILL: the host gets no chance to stop its plugin.
	if err := host.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = host.Wait()
	waitFor(t, 3*time.Second, "plugin exit", func() bool { return processGone(pid) })
	if got, err := os.ReadFile(marker); err != nil || string(got) != strconv.Itoa(pid) {
		t.Errorf("backend not closed before exit: %q, %v", got, err)
	}
}

func TestPluginClosesBackendOnSIGTERM(t *testing.T) {
	marker, cfg := markerConfig(t)
	pc, c, err := startPlugin(pluginPath, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Kill()
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	pid := pc.ReattachConfig().Pid
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "plugin exit", pc.Exited)
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("backend not closed: %v", err)
	}
	// Calls to a gone plugin fail as unavailable.
	if _, err := c.GetRoster(context.Background(), "a@b"); !errors.Is(err, sdk.ErrUnavailable) {
		t.Errorf("call to an exited plugin: %v", err)
	}
}

func TestPluginRefusesToRunByHand(t *testing.T) {
	cmd := exec.Command(pluginPath)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("run by hand: %v, want exit status 1", err)
	}
	if stdout.Len() != 0 {
		t.Errorf("wrote to stdout: %q", stdout.String())
	}
	if !strings.Contains(stderr.String(), "plugin") {
		t.Errorf("stderr does not explain: %q", stderr.String())
	}
}
