package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/koi-im/koi/e2e/internal/koiproc"
)

// TestShutdown stops koi with SIGTERM while clients are connected: each
// stream ends with <system-shutdown/> and koi exits with status 0.
func TestShutdown(t *testing.T) {
	t.Parallel()
	srv := startServer(t, defaultOptions())
	const pw = "pw-bye"
	srv.addUser(t, "quinn@localhost", pw)
	srv.addUser(t, "ruth@localhost", pw)
	tlsCfg := srv.tlsConfig(t, "localhost")

	quinn := login(t, dialOpts{addr: srv.c2s, tls: tlsCfg}, "quinn@localhost/q", pw)
	quinn.send("<presence/>")
	ruth := login(t, dialOpts{addr: srv.c2sTLS, directTLS: true, tls: tlsCfg}, "ruth@localhost/r", pw)
	raw := dialRaw(t, srv.c2s, nil)
	raw.login("localhost", tlsCfg, "ruth", pw, "raw")
	// A client still negotiating is told too.
	pending := dialRaw(t, srv.c2s, nil)
	pending.open("localhost")
	for _, c := range []*client{quinn, ruth} {
		c.iq("<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	}

	srv.stopped = true
	start := time.Now()
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{quinn, ruth} {
		if cond, err := c.waitStreamError(stopTimeout); cond != "system-shutdown" {
			t.Errorf("%s: stream ended with %q (%v), want <system-shutdown/>", c.jid, cond, err)
		}
	}
	raw.expectStreamError("system-shutdown")
	pending.expectStreamError("system-shutdown")
	select {
	case <-srv.exited:
		if srv.waitErr != nil {
			t.Errorf("koi exited with %v, want status 0", srv.waitErr)
		}
	case <-time.After(stopTimeout):
		t.Fatalf("koi still running %v after SIGTERM", stopTimeout)
	}
	t.Logf("koi stopped %v after SIGTERM", time.Since(start))
	if pids := srv.pluginPIDs(t); len(pids) != 0 {
		t.Errorf("plugin processes %v outlive koi", pids)
	}
}

// TestCheckConfig runs koi check-config on a good config and on one with a
// misspelt key.
func TestCheckConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good, _, _ := writeConfig(t, dir, defaultOptions())

	out, code := runKoi(t, "check-config", "-config", good)
	if code != 0 || !strings.Contains(out, "OK") {
		t.Errorf("check-config on a good config: exit %d, output:\n%s", code, out)
	}
	// The subcommand also takes the flag before it.
	if out, code := runKoi(t, "-config", good, "check-config"); code != 0 || !strings.Contains(out, "OK") {
		t.Errorf("check-config with -config first: exit %d, output:\n%s", code, out)
	}

	src, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, from, to, key string }{
		{"host key", "registration = false", "regstration = false", "regstration"},
		{"limits key", "max_stanza_size", "max_stanzasize", "max_stanzasize"},
		{"top-level block", "server {", "sever {", "sever"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !bytes.Contains(src, []byte(tc.from)) {
				t.Fatalf("config has no %q", tc.from)
			}
			bad := filepath.Join(dir, "bad-"+strings.ReplaceAll(tc.name, " ", "-")+".hcl")
			if err := os.WriteFile(bad, bytes.Replace(src, []byte(tc.from), []byte(tc.to), 1), 0o600); err != nil {
				t.Fatal(err)
			}
			out, code := runKoi(t, "check-config", "-config", bad)
			if code == 0 {
				t.Errorf("check-config accepted a config with %q; output:\n%s", tc.to, out)
			}
			if !strings.Contains(out, tc.key) {
				t.Errorf("check-config output does not name %q:\n%s", tc.key, out)
			}
			if strings.Contains(out, "OK") {
				t.Errorf("check-config says OK for a bad config:\n%s", out)
			}
		})
	}

	t.Run("missing file", func(t *testing.T) {
		out, code := runKoi(t, "check-config", "-config", filepath.Join(dir, "nope.hcl"))
		if code == 0 || !strings.Contains(out, "nope.hcl") {
			t.Errorf("check-config on a missing file: exit %d, output:\n%s", code, out)
		}
	})
}

// runKoi runs the koi binary and returns its combined output and exit code.
func runKoi(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(koiBin(), args...)
	cmd.Env = koiproc.ChildEnv()
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	t.Fatalf("running koi %v: %v", args, err)
	return "", 0
}

// TestKoictl manages accounts with koictl while koi runs and checks the
// effect over XMPP.
func TestKoictl(t *testing.T) {
	t.Parallel()
	srv := startServer(t, defaultOptions())
	local := dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}
	canLogin := func(full, password string) bool {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		c, err := connect(ctx, t, local, full, password)
		if err != nil {
			return false
		}
		c.close()
		return true
	}

	srv.addUser(t, "sam@localhost", "first")
	srv.addUser(t, "tina@localhost", "first")
	if out, err := srv.koictl("user", "add", "sam@localhost", "again"); err == nil || !strings.Contains(out, "exists") {
		t.Errorf("adding sam twice: %v\n%s", err, out)
	}
	out, err := srv.koictl("user", "list", "localhost")
	if err != nil || !strings.Contains(out, "sam@localhost") || !strings.Contains(out, "tina@localhost") {
		t.Errorf("user list: %v\n%s", err, out)
	}
	if !canLogin("sam@localhost/1", "first") {
		t.Fatalf("sam cannot log in after user add")
	}

	if out, err := srv.koictl("user", "passwd", "sam@localhost", "second"); err != nil {
		t.Fatalf("user passwd: %v\n%s", err, out)
	}
	if !canLogin("sam@localhost/2", "second") {
		t.Errorf("sam cannot log in with the new password")
	}
	if canLogin("sam@localhost/3", "first") {
		t.Errorf("sam's old password still works")
	}

	if out, err := srv.koictl("user", "del", "sam@localhost"); err != nil {
		t.Fatalf("user del: %v\n%s", err, out)
	}
	if canLogin("sam@localhost/4", "second") {
		t.Errorf("a deleted account can log in")
	}
	if out, err := srv.koictl("user", "del", "sam@localhost"); err == nil {
		t.Errorf("deleting sam twice succeeded:\n%s", out)
	}
	if out, err := srv.koictl("user", "list", "localhost"); err != nil || strings.Contains(out, "sam@") || !strings.Contains(out, "tina@localhost") {
		t.Errorf("user list after del: %v\n%s", err, out)
	}
	if out, err := srv.koictl("user", "add", "bad@@localhost", "x"); err == nil {
		t.Errorf("adding an invalid JID succeeded:\n%s", out)
	}
}
