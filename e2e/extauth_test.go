package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"

	"github.com/koi-im/koi/internal/testsvc"
)

// The extauth plugin end to end: koi runs the example ejabberd extauth
// program (examples/extauth/extauth.py, Python 3) as the auth backend of a
// host, writable, two copies sharing one accounts file, with rosters and
// offline messages in SQLite; a real XMPP client logs in with PLAIN.

const extauthDomain = "example.net"

func extauthPluginBin() string { return filepath.Join(binDir, "plugins", "koi-backend-extauth") }

// startExtauth starts koi with the extauth plugin on an accounts file
// holding users ("user@host" -> password), and returns it with the file.
func startExtauth(t *testing.T, users map[string]string) (*server, string) {
	t.Helper()
	out, err := exec.Command("python3", "-c", "import sys; print(sys.executable)").Output()
	if err != nil {
		testsvc.Require(t, fmt.Errorf("%w: python3 runs the example extauth program: %v", testsvc.ErrMissing, err))
	}
	python := strings.TrimSpace(string(out))
	script, err := filepath.Abs(filepath.Join("..", "examples", "extauth", "extauth.py"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	accounts := filepath.Join(dir, "users.json")
	b, err := json.Marshal(users)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(accounts, b, 0o600); err != nil {
		t.Fatal(err)
	}
	c2s, c2sTLS := freeAddr(t), freeAddr(t)
	config := fmt.Sprintf(`# koi e2e test config: ejabberd extauth
log { level = "debug"  format = "text" }
listen "c2s"     { address = %q }
listen "c2s_tls" { address = %q }
tls { cert_file = "%s/tls/cert.pem"  key_file = "%s/tls/key.pem" }

plugin "extauth" {
  command = %q
  config  = { program = %q  args = [%q, %q]  instances = 2  timeout = "3s"  writable = true }
}

plugin "store" {
  command = %q
  config  = { driver = "sqlite"  dsn = "%s/koi.db" }
}

host %q {
  auth    = "extauth"
  roster  = "store"
  offline = "store"
  registration = true
}

limits { auth_failures_per_ip = 0  auth_failures_per_account = 0 }
server { shutdown_timeout = "5s"  data_dir = "%s/data" }
`, c2s, c2sTLS, dir, dir, extauthPluginBin(), python, script, accounts, pluginBin(), dir, extauthDomain, dir)
	path := filepath.Join(dir, "koi.hcl")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return launch(t, dir, path, c2s, c2sTLS, options{}, nil), accounts
}

// extauthAccounts reads the program's accounts file.
func extauthAccounts(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestExtauth(t *testing.T) {
	t.Parallel()
	const alicePW = "p\u00e4ss:w\u00f6rd"
	srv, accounts := startExtauth(t, map[string]string{"alice@" + extauthDomain: alicePW})
	const d = "@" + extauthDomain
	tlsCfg := srv.tlsConfig(t, extauthDomain)
	plain := func(t *testing.T, full, password string) *client {
		t.Helper()
		return login(t, dialOpts{addr: srv.c2s, tls: tlsCfg, mechs: []sasl.Mechanism{sasl.Plain}}, full, password)
	}
	saslResult := func(t *testing.T, user, password string) string {
		t.Helper()
		r := dialRaw(t, srv.c2s, nil)
		r.open(extauthDomain)
		r.startTLS(extauthDomain, tlsCfg)
		if el := r.auth(sasl.Plain, user, password); !el.is(nsSASL, "success") {
			return saslCondition(el)
		}
		return "success"
	}

	t.Run("only PLAIN is offered, after TLS", func(t *testing.T) {
		r := dialRaw(t, srv.c2s, nil)
		if f := r.open(extauthDomain); f.child(nsSASL, "mechanisms") != nil {
			t.Errorf("SASL offered before TLS: %s", f)
		}
		f := r.startTLS(extauthDomain, tlsCfg)
		var mechs []string
		for _, m := range f.child(nsSASL, "mechanisms").children(nsSASL, "mechanism") {
			mechs = append(mechs, strings.TrimSpace(m.Text))
		}
		if !slices.Equal(mechs, []string{"PLAIN"}) {
			t.Errorf("mechanisms after STARTTLS = %q, want only PLAIN", mechs)
		}
	})

	t.Run("logins", func(t *testing.T) {
		a := plain(t, "alice"+d+"/pc", alicePW)
		if r := a.iq("<iq type='get' to='" + extauthDomain + "'><ping xmlns='urn:xmpp:ping'/></iq>"); r.attr("type") != "result" {
			t.Errorf("ping: %s", r)
		}
		for _, c := range []struct{ user, password string }{
			{"alice", "p\u00e4ss"}, {"alice", alicePW + "x"}, {"nobody", alicePW}, {"alice", ""},
		} {
			if got := saslResult(t, c.user, c.password); got != "not-authorized" {
				t.Errorf("PLAIN %q/%q: %s, want not-authorized", c.user, c.password, got)
			}
		}
	})

	t.Run("koictl writes through the program", func(t *testing.T) {
		if out, err := srv.koictl("user", "add", "bob"+d, "bob:pw"); err != nil {
			t.Fatalf("koictl user add: %v\n%s", err, out)
		}
		if got := extauthAccounts(t, accounts)["bob"+d]; got != "bob:pw" {
			t.Errorf("bob's password in the program's file: %q", got)
		}
		plain(t, "bob"+d+"/pc", "bob:pw")
		if out, err := srv.koictl("user", "add", "bob"+d, "other"); err == nil || !strings.Contains(out, "already exists") {
			t.Errorf("koictl user add of an existing user: %v\n%s", err, out)
		}
		if out, err := srv.koictl("user", "passwd", "bob"+d, "new bob"); err != nil {
			t.Fatalf("koictl user passwd: %v\n%s", err, out)
		}
		if got := saslResult(t, "bob", "bob:pw"); got != "not-authorized" {
			t.Errorf("bob's old password: %s", got)
		}
		plain(t, "bob"+d+"/pc2", "new bob")
		if out, err := srv.koictl("user", "list", extauthDomain); err == nil || !strings.Contains(out, "cannot list users") {
			t.Errorf("koictl user list: %v\n%s, want the protocol's limit explained", err, out)
		}
	})

	t.Run("in-band registration and password change", func(t *testing.T) {
		raw := dialRaw(t, srv.c2s, nil)
		raw.open(extauthDomain)
		raw.startTLS(extauthDomain, tlsCfg)
		raw.send("<iq type='set' id='reg'><query xmlns='jabber:iq:register'><username>carol</username><password>carol:pw</password></query></iq>")
		if res := raw.mustNext(); res.attr("type") != "result" {
			t.Fatalf("registration: %s", res)
		}
		c := plain(t, "carol"+d+"/pc", "carol:pw")
		r := c.iq("<iq type='set'><query xmlns='jabber:iq:register'><username>carol</username><password>c\u00e4rol 2</password></query></iq>")
		if r.attr("type") != "result" {
			t.Fatalf("password change: %s", r)
		}
		if got := extauthAccounts(t, accounts)["carol"+d]; got != "c\u00e4rol 2" {
			t.Errorf("carol's password in the program's file: %q", got)
		}
		plain(t, "carol"+d+"/pc2", "c\u00e4rol 2")
	})

	t.Run("messages: known users get them later, unknown bounce", func(t *testing.T) {
		a := plain(t, "alice"+d+"/msg", alicePW)
		a.send("<presence/>")
		a.send("<message to='bob" + d + "' type='chat' id='m1'><body>for later</body></message>")
		a.send("<message to='nobody" + d + "' type='chat' id='m2'><body>lost</body></message>")
		e := a.expect("bounce of m2", func(e *element) bool { return e.is("", "message") && e.attr("id") == "m2" })
		if _, cond := e.stanzaError(); cond != "service-unavailable" {
			t.Errorf("message to an unknown user: %s", e)
		}
		a.expectNone("bounce of m1", 300*time.Millisecond, func(e *element) bool { return e.attr("id") == "m1" })
		b := plain(t, "bob"+d+"/phone", "new bob") // the account koictl made above
		b.send("<presence/>")
		if m := b.expect("the offline message", isMessageFrom("alice"+d+"/msg")); m.path("body").Text != "for later" {
			t.Errorf("offline message: %s", m)
		}
	})
}
