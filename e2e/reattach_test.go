package e2e

import (
	"bufio"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/koi-im/koi/e2e/internal/koiproc"
)

// TestPluginReattach runs the sql plugin as a plugin author would under a
// debugger (debug mode, started by hand), points koi's plugin block at the
// line it prints, and checks that koi uses it, leaves it running when koi
// stops, and that the next koi attaches to it again.
func TestPluginReattach(t *testing.T) {
	t.Parallel()
	plugin := exec.Command(pluginBin(), "-debug")
	plugin.Env = koiproc.ChildEnv()
	plugin.Stderr = &syncBuffer{}
	out, err := plugin.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := plugin.Start(); err != nil {
		t.Fatalf("starting the plugin in debug mode: %v", err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		_ = plugin.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("plugin log:\n%s", plugin.Stderr.(*syncBuffer).String())
		}
	})
	lines := make(chan string, 1)
	go func() {
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil {
			line = "error: " + err.Error()
		}
		lines <- strings.TrimSpace(line)
		exited <- plugin.Wait()
	}()
	var line string
	select {
	case line = <-lines:
	case <-time.After(startTimeout):
		t.Fatalf("the plugin printed no reattach line in %v", startTimeout)
	}
	if !strings.HasPrefix(line, "reattach = { pid = ") {
		t.Fatalf("plugin printed %q, want a reattach line", line)
	}

	opt := defaultOptions()
	opt.PluginCommand = "/nonexistent/koi-backend-sql" // must not be started
	opt.PluginReattach = line
	dir := t.TempDir()
	path, c2s, c2sTLS := writeConfig(t, dir, opt)
	const pw = "pw-reattach"
	for round := 1; round <= 2; round++ {
		srv := launch(t, dir, path, c2s, c2sTLS, opt, nil)
		if round == 1 {
			srv.addUser(t, "alice@localhost", pw)
		}
		alice := login(t, dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}, "alice@localhost/r", pw)
		if r := alice.iq("<iq type='get'><query xmlns='jabber:iq:roster'/></iq>"); r.attr("type") != "result" {
			t.Errorf("round %d: roster get through the attached plugin: %s", round, r)
		}
		alice.close()
		srv.stop(t)
		if !strings.Contains(srv.log.String(), "attached to plugin in debug mode") {
			t.Errorf("round %d: koi did not log that it attached", round)
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("round %d: the plugin exited when koi stopped: %v", round, err)
		case <-time.After(300 * time.Millisecond):
		}
		if processGone(plugin.Process.Pid) {
			t.Fatalf("round %d: the plugin is gone after koi stopped", round)
		}
	}

	// The author stops the plugin; it closes its backend and exits 0.
	if err := plugin.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Errorf("plugin exit after SIGTERM: %v", err)
		}
	case <-time.After(stopTimeout):
		t.Errorf("plugin still running %v after SIGTERM", stopTimeout)
	}
}
