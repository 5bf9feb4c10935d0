package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"

	"github.com/koi-im/koi/internal/testsvc"
)

// The Node.js plugin end to end: koi runs examples/plugins/node-auth
// (JavaScript, over go-plugin's protocol) as the auth backend of a host,
// with rosters and offline messages in SQLite; a real XMPP client logs in
// with PLAIN, koictl lists the users, and stopping koi ends the node
// process.

const nodeDomain = "node.example"

// startNodePlugin starts koi with the node-auth plugin on a user file
// holding users (name -> password) and returns it with the plugin's path.
func startNodePlugin(t *testing.T, users map[string]string) (*server, string) {
	t.Helper()
	pkg, err := testsvc.NPMInstall(t.Context(), filepath.Join("examples", "plugins", "node-auth"))
	testsvc.Require(t, err)
	plugin := filepath.Join(pkg, "plugin.js")

	dir := t.TempDir()
	hashes := map[string]string{}
	for user, pw := range users {
		cmd := exec.Command(plugin, "hash", "-ln", "10") // cheap: a test, not a deployment
		cmd.Stdin = strings.NewReader(pw)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("plugin.js hash: %v", err)
		}
		hashes[user] = strings.TrimSpace(string(out))
	}
	b, err := json.Marshal(hashes)
	if err != nil {
		t.Fatal(err)
	}
	usersFile := filepath.Join(dir, "users.json")
	if err := os.WriteFile(usersFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	c2s, c2sTLS := freeAddr(t), freeAddr(t)
	config := fmt.Sprintf(`# koi e2e test config: a plugin in Node.js
log { level = "debug"  format = "text" }
listen "c2s"     { address = %q }
listen "c2s_tls" { address = %q }
tls { cert_file = "%s/tls/cert.pem"  key_file = "%s/tls/key.pem" }

plugin "node-auth" {
  command = %q
  config  = { file = %q }
}

plugin "store" {
  command = %q
  config  = { driver = "sqlite"  dsn = "%s/koi.db" }
}

host %q {
  auth    = "node-auth"
  roster  = "store"
  offline = "store"
  registration = true
}

limits { auth_failures_per_ip = 0  auth_failures_per_account = 0 }
server { shutdown_timeout = "5s"  data_dir = "%s/data" }
`, c2s, c2sTLS, dir, dir, plugin, usersFile, pluginBin(), dir, nodeDomain, dir)
	path := filepath.Join(dir, "koi.hcl")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return launch(t, dir, path, c2s, c2sTLS, options{}, nil), plugin
}

// nodePluginPIDs returns the PIDs of koi's children running plugin.js.
func (s *server) nodePluginPIDs(t *testing.T) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("reading /proc: %v", err)
	}
	var pids []int
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || fmt.Sprint(pid) != e.Name() {
			continue
		}
		ppid, state, err := procStat(pid)
		if err != nil || ppid != s.cmd.Process.Pid || state == "Z" {
			continue
		}
		if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil &&
			strings.Contains(string(cmdline), "node-auth/plugin.js") {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestNodePlugin(t *testing.T) {
	t.Parallel()
	const alicePW = "p\u00e4ss:w\u00f6rd"
	srv, _ := startNodePlugin(t, map[string]string{"alice": alicePW, "bob": "hunter2"})
	const d = "@" + nodeDomain
	tlsCfg := srv.tlsConfig(t, nodeDomain)
	saslResult := func(t *testing.T, user, password string) string {
		t.Helper()
		r := dialRaw(t, srv.c2s, nil)
		r.open(nodeDomain)
		r.startTLS(nodeDomain, tlsCfg)
		if el := r.auth(sasl.Plain, user, password); !el.is(nsSASL, "success") {
			return saslCondition(el)
		}
		return "success"
	}

	t.Run("logins", func(t *testing.T) {
		a := login(t, dialOpts{addr: srv.c2s, tls: tlsCfg, mechs: []sasl.Mechanism{sasl.Plain}}, "alice"+d+"/pc", alicePW)
		if r := a.iq("<iq type='get' to='" + nodeDomain + "'><ping xmlns='urn:xmpp:ping'/></iq>"); r.attr("type") != "result" {
			t.Errorf("ping: %s", r)
		}
		for _, c := range []struct{ user, password string }{
			{"alice", "p\u00e4ss"}, {"alice", alicePW + "x"}, {"nobody", alicePW}, {"bob", alicePW},
		} {
			if got := saslResult(t, c.user, c.password); got != "not-authorized" {
				t.Errorf("PLAIN %q/%q: %s, want not-authorized", c.user, c.password, got)
			}
		}
		if got := saslResult(t, "bob", "hunter2"); got != "success" {
			t.Errorf("PLAIN bob: %s", got)
		}
	})

	t.Run("koictl", func(t *testing.T) {
		out, err := srv.koictl("user", "list", nodeDomain)
		if err != nil || !strings.Contains(out, "alice") || !strings.Contains(out, "bob") {
			t.Errorf("koictl user list: %v\n%s", err, out)
		}
		if out, err := srv.koictl("user", "add", "carol"+d, "secret"); err == nil {
			t.Errorf("koictl user add on read-only auth succeeded:\n%s", out)
		}
	})

	t.Run("check-config runs the plugin's validate", func(t *testing.T) {
		out, code := runKoiEnv(t, nil, "check-config", "-config", srv.config)
		if code != 0 || !strings.Contains(out, ": OK") || strings.Contains(out, "warning") {
			t.Errorf("koi check-config: exit %d\n%s", code, out)
		}
		// The plugin loads the user file as the start would: a missing one
		// is a problem before koi runs.
		b, err := os.ReadFile(srv.config)
		if err != nil {
			t.Fatal(err)
		}
		bad := filepath.Join(t.TempDir(), "koi.hcl")
		missing := filepath.Join(srv.dir, "absent.json")
		cfg := strings.Replace(string(b), filepath.Join(srv.dir, "users.json"), missing, 1)
		if err := os.WriteFile(bad, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		out, code = runKoiEnv(t, nil, "check-config", "-config", bad)
		if code != 1 || !strings.Contains(out, missing) {
			t.Errorf("koi check-config with a missing user file: exit %d\n%s", code, out)
		}
	})

	t.Run("stopping koi ends the node process", func(t *testing.T) {
		pids := srv.nodePluginPIDs(t)
		if len(pids) != 1 {
			t.Fatalf("node plugin processes under koi: %v, want one", pids)
		}
		srv.stop(t)
		deadline := time.Now().Add(5 * time.Second)
		for !processGone(pids[0]) {
			if time.Now().After(deadline) {
				t.Fatalf("node plugin %d still runs after koi stopped", pids[0])
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}
