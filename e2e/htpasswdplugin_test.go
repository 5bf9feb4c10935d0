package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"mellium.im/sasl"
)

// The third-party plugin end to end: examples/plugins/htpasswd-auth is a Go
// module of its own that requires only the SDK module. It is built from its
// own directory, as its author would, and koi runs it as the auth backend
// of a host: users log in with PLAIN, and a user added to the file later
// can log in without a restart.

const htpasswdDomain = "htpasswd.example"

// htpasswdLine is an htpasswd -B line, with the $2y$ prefix htpasswd writes.
func htpasswdLine(t *testing.T, user, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return user + ":" + strings.Replace(string(h), "$2a$", "$2y$", 1) + "\n"
}

func TestHtpasswdPlugin(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	plugin := filepath.Join(dir, "koi-backend-htpasswd")
	build := exec.Command("go", "build", "-o", plugin, ".")
	build.Dir = filepath.Join(root, "examples", "plugins", "htpasswd-auth")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build in %s (its own module): %v\n%s", build.Dir, err, out)
	}

	users := filepath.Join(dir, "htpasswd")
	const alicePW = "p\u00e4ss:w\u00f6rd"
	if err := os.WriteFile(users, []byte("# koi users\n"+htpasswdLine(t, "alice", alicePW)), 0o600); err != nil {
		t.Fatal(err)
	}
	c2s, c2sTLS := freeAddr(t), freeAddr(t)
	config := fmt.Sprintf(`# koi e2e test config: a third-party plugin
log { level = "debug"  format = "text" }
listen "c2s"     { address = %q }
listen "c2s_tls" { address = %q }
tls { cert_file = "%s/tls/cert.pem"  key_file = "%s/tls/key.pem" }

plugin "htpasswd" {
  command = %q
  config  = { file = "htpasswd" }   # relative to this file
}

plugin "store" {
  command = %q
  config  = { driver = "sqlite"  dsn = "%s/koi.db" }
}

host %q {
  auth    = "htpasswd"
  roster  = "store"
  offline = "store"
}

limits { auth_failures_per_ip = 0  auth_failures_per_account = 0 }
server { shutdown_timeout = "5s"  data_dir = "%s/data" }
`, c2s, c2sTLS, dir, dir, plugin, pluginBin(), dir, htpasswdDomain, dir)
	path := filepath.Join(dir, "koi.hcl")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := launch(t, dir, path, c2s, c2sTLS, options{}, nil)
	tlsCfg := srv.tlsConfig(t, htpasswdDomain)
	const d = "@" + htpasswdDomain
	plain := dialOpts{addr: srv.c2s, tls: tlsCfg, mechs: []sasl.Mechanism{sasl.Plain}}
	saslResult := func(t *testing.T, user, password string) string {
		t.Helper()
		r := dialRaw(t, srv.c2s, nil)
		r.open(htpasswdDomain)
		r.startTLS(htpasswdDomain, tlsCfg)
		if el := r.auth(sasl.Plain, user, password); !el.is(nsSASL, "success") {
			return saslCondition(el)
		}
		return "success"
	}

	t.Run("logins", func(t *testing.T) {
		a := login(t, plain, "alice"+d+"/pc", alicePW)
		if r := a.iq("<iq type='get' to='" + htpasswdDomain + "'><ping xmlns='urn:xmpp:ping'/></iq>"); r.attr("type") != "result" {
			t.Errorf("ping: %s", r)
		}
		for _, c := range []struct{ user, password string }{
			{"alice", "p\u00e4ss"}, {"alice", alicePW + "x"}, {"nobody", alicePW},
		} {
			if got := saslResult(t, c.user, c.password); got != "not-authorized" {
				t.Errorf("PLAIN %q/%q: %s, want not-authorized", c.user, c.password, got)
			}
		}
	})

	t.Run("a user added to the file logs in", func(t *testing.T) {
		if got := saslResult(t, "bob", "hunter2"); got != "not-authorized" {
			t.Fatalf("PLAIN bob before he is in the file: %s", got)
		}
		f, err := os.OpenFile(users, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(htpasswdLine(t, "bob", "hunter2")); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		// The plugin notices a change by size and mtime; a coarse clock
		// must not hide it.
		later := time.Now().Add(time.Second)
		if err := os.Chtimes(users, later, later); err != nil {
			t.Fatal(err)
		}
		login(t, plain, "bob"+d+"/pc", "hunter2")
	})

	t.Run("koictl cannot add users to a read-only backend", func(t *testing.T) {
		if out, err := srv.koictl("user", "add", "carol"+d, "secret"); err == nil {
			t.Errorf("koictl user add on read-only auth succeeded:\n%s", out)
		}
	})
}
