package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writeCert writes a fresh self-signed certificate for localhost and
// returns its DER.
func writeCert(t *testing.T, certFile, keyFile string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return der
}

// servedCert returns the certificate a new TLS connection to addr gets.
func servedCert(t *testing.T, addr string) []byte {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Raw
}

// TestReload: SIGHUP (and the admin API) re-read the config file while
// sessions are up: the log level and a renewed certificate take effect,
// other changes are reported as needing a restart, a broken file changes
// nothing; the session that was up before stays up throughout.
func TestReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opt := defaultOptions()
	path, c2s, c2sTLS := writeConfig(t, dir, opt)
	adminAddr := addAdmin(t, path)
	srv := launch(t, dir, path, c2s, c2sTLS, opt, nil)
	srv.waitListening(t, adminAddr)
	srv.addUser(t, "jo@localhost", "pw-jo")
	tlsCfg := srv.tlsConfig(t, "localhost")
	jo := login(t, dialOpts{addr: srv.c2s, tls: tlsCfg}, "jo@localhost/pc", "pw-jo")
	alive := func(when string) {
		t.Helper()
		if r := jo.iq("<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"); r.attr("type") != "result" {
			t.Fatalf("the session %s: %s", when, r)
		}
	}
	old := servedCert(t, srv.c2sTLS)

	// A renewed certificate, a quieter log and a changed limit.
	newDER := writeCert(t, filepath.Join(dir, "tls", "cert.pem"), filepath.Join(dir, "tls", "key.pem"))
	src, _ := os.ReadFile(path)
	edited := strings.Replace(string(src), `level = "debug"`, `level = "warn"`, 1)
	edited = strings.Replace(edited, "max_stanza_size", "max_depth = 50\n  max_stanza_size", 1)
	if edited == string(src) {
		t.Fatal("the config template changed: nothing to edit")
	}
	os.WriteFile(path, []byte(edited), 0o600)
	mark := len(srv.log.String())
	srv.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, srv, "configuration reloaded")
	after := srv.log.String()[mark:]
	if !strings.Contains(after, "log.level debug → warn") || !strings.Contains(after, "tls certificate") ||
		!strings.Contains(after, "limits.max_depth 64 → 50") || strings.Contains(after, "need_restart=[\"") {
		t.Errorf("reload log:\n%s", after)
	}
	if got := servedCert(t, srv.c2sTLS); !bytes.Equal(got, newDER) || bytes.Equal(got, old) {
		t.Error("new TLS connections do not get the renewed certificate")
	}
	alive("after SIGHUP")
	// At warn, a login's INFO line is no longer written.
	mark = len(srv.log.String())
	login(t, dialOpts{addr: srv.c2s, tls: &tls.Config{InsecureSkipVerify: true}}, "jo@localhost/phone", "pw-jo").close()
	if strings.Contains(srv.log.String()[mark:], "authenticated") {
		t.Error("INFO lines still logged after the level became warn")
	}

	// A broken file: nothing changes, the reason is logged (at ERROR,
	// which warn shows) and the API says 422.
	os.WriteFile(path, []byte(strings.Replace(edited, `level = "warn"`, `level = "debug"  colour = "red"`, 1)), 0o600)
	mark = len(srv.log.String())
	srv.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, srv, "reload refused, nothing changed")
	if !strings.Contains(srv.log.String()[mark:], "colour") {
		t.Errorf("the refusal does not name the bad key:\n%s", srv.log.String()[mark:])
	}
	api := adminAPI{t: t, base: "http://" + adminAddr}
	api.want(422, "POST", "/api/v1/config/reload", "")
	alive("after a refused reload")

	// Through the API, fixed again: back to debug.
	os.WriteFile(path, src, 0o600)
	out := api.want(200, "POST", "/api/v1/config/reload", "")
	if a := out["applied"].([]any); len(a) == 0 || !strings.Contains(a[0].(string), "warn → debug") {
		t.Errorf("API reload: %v", out)
	}
	alive("after the API reload")
}

// TestReloadBackendsPluginsLimits: with a session up throughout, a reload
// through the admin API switches a host's roster to another plugin (the
// next roster read comes from its SQLite file), restarts a plugin whose
// DSN changed as a new process, enforces a lowered login rate at once,
// and refuses a plugin config the plugin rejects without changing
// anything: the old process still serves.
func TestReloadBackendsPluginsLimits(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opt := defaultOptions()
	path, c2s, c2sTLS := writeConfig(t, dir, opt)
	adminAddr := freeAddr(t)
	base, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// write renders the test's variable part: the roster's plugin, the
	// other plugin's DSN and extra config, the login rate.
	write := func(roster, dsn, extra string, logins int) {
		t.Helper()
		src := strings.Replace(string(base), "  roster  = \"store\"", "  roster  = \""+roster+"\"", 1)
		src = strings.Replace(src, "logins_per_ip = 1000", fmt.Sprintf("logins_per_ip = %d", logins), 1)
		src += "\nadmin { address = \"" + adminAddr + "\"  token = \"" + adminToken + "\" }\n"
		src += fmt.Sprintf("plugin \"other\" {\n  command = %q\n  config = { driver = \"sqlite\"  dsn = %q %s }\n}\n", pluginBin(), filepath.Join(dir, dsn), extra)
		if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("store", "b.db", "", 1000)
	srv := launch(t, dir, path, c2s, c2sTLS, opt, nil)
	srv.waitListening(t, adminAddr)
	srv.addUser(t, "jo@localhost", "pw-jo")
	api := adminAPI{t: t, base: "http://" + adminAddr}
	jo := login(t, dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}, "jo@localhost/pc", "pw-jo")
	alive := func(when string) {
		t.Helper()
		if r := jo.iq("<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"); r.attr("type") != "result" {
			t.Fatalf("the session %s: %s", when, r)
		}
	}
	rosterNames := func() []string {
		t.Helper()
		r := jo.iq("<iq type='get'><query xmlns='jabber:iq:roster'/></iq>")
		if r.attr("type") != "result" {
			t.Fatalf("roster get: %s", r)
		}
		var names []string
		for _, it := range r.path("query").children("jabber:iq:roster", "item") {
			names = append(names, it.attr("name"))
		}
		slices.Sort(names)
		return names
	}
	addItem := func(contact, name string) {
		t.Helper()
		if r := jo.iq("<iq type='set'><query xmlns='jabber:iq:roster'><item jid='" + contact + "' name='" + name + "'/></query></iq>"); r.attr("type") != "result" {
			t.Fatalf("roster set: %s", r)
		}
	}
	reload := func(want ...string) {
		t.Helper()
		out := api.want(200, "POST", "/api/v1/config/reload", "")
		applied := fmt.Sprint(out["applied"])
		for _, w := range want {
			if !strings.Contains(applied, w) {
				t.Errorf("applied %s, want %q in it (need_restart %v)", applied, w, out["need_restart"])
			}
		}
		if nr, _ := out["need_restart"].([]any); len(nr) != 0 {
			t.Errorf("need_restart %v", nr)
		}
	}
	pid := func(name string) int {
		t.Helper()
		out := api.want(200, "GET", "/api/v1/plugins", "")
		for _, p := range out["plugins"].([]any) {
			if m := p.(map[string]any); m["name"] == name {
				n, _ := m["pid"].(float64)
				return int(n)
			}
		}
		t.Fatalf("no plugin %q in %v", name, out)
		return 0
	}

	addItem("ann@localhost", "in A")
	if got := rosterNames(); !slices.Equal(got, []string{"in A"}) {
		t.Fatalf("roster in A: %v", got)
	}

	// The roster goes to plugin "other" (b.db): the next read is from B.
	write("other", "b.db", "", 1000)
	reload(`host "localhost".roster store → other`)
	if got := rosterNames(); len(got) != 0 {
		t.Fatalf("roster after switching to B (empty): %v", got)
	}
	addItem("bea@localhost", "in B")
	if got := rosterNames(); !slices.Equal(got, []string{"in B"}) {
		t.Fatalf("roster in B: %v", got)
	}
	alive("after switching the roster")
	// And back: A still holds its own.
	write("store", "b.db", "", 1000)
	reload(`host "localhost".roster other → store`)
	if got := rosterNames(); !slices.Equal(got, []string{"in A"}) {
		t.Fatalf("roster back in A: %v", got)
	}

	// The other plugin's DSN changes: a new process on c.db.
	write("other", "b.db", "", 1000)
	reload(`host "localhost".roster store → other`)
	oldPID := pid("other")
	write("other", "c.db", "", 1000)
	reload(`plugin "other" restarted with its new settings`)
	newPID := pid("other")
	if newPID == 0 || newPID == oldPID {
		t.Fatalf("plugin other: pid %d before, %d after a DSN change", oldPID, newPID)
	}
	if got := rosterNames(); len(got) != 0 {
		t.Fatalf("roster from the restarted plugin on c.db (empty): %v", got)
	}
	addItem("cid@localhost", "in C")
	deadline := time.Now().Add(waitTimeout)
	for !processGone(oldPID) {
		if time.Now().After(deadline) {
			t.Fatalf("the replaced plugin process %d still runs", oldPID)
		}
		time.Sleep(50 * time.Millisecond)
	}
	alive("after the plugin restart")

	// A config the plugin rejects: refused, nothing changed, the running
	// process serves on.
	write("other", "d.db", "bogus_key = 1", 1000)
	if out := api.want(422, "POST", "/api/v1/config/reload", ""); !strings.Contains(fmt.Sprint(out["error"]), "bogus_key") {
		t.Errorf("refusal: %v", out)
	}
	if p := pid("other"); p != newPID {
		t.Fatalf("a refused reload changed plugin other: pid %d, was %d", p, newPID)
	}
	if got := rosterNames(); !slices.Equal(got, []string{"in C"}) {
		t.Fatalf("roster after a refused reload: %v", got)
	}

	// A lowered login rate holds for the next logins from one address.
	write("other", "c.db", "", 2)
	reload("limits.logins_per_ip 1000 → 2")
	cfg := srv.tlsConfig(t, "localhost")
	const from = "127.0.0.91"
	dialRawFrom(t, from, srv.c2s, nil).login("localhost", cfg, "jo", "pw-jo", "r1")
	dialRawFrom(t, from, srv.c2s, nil).login("localhost", cfg, "jo", "pw-jo", "r2")
	r := dialRawFrom(t, from, srv.c2s, nil)
	r.open("localhost")
	r.startTLS("localhost", cfg)
	r.send("<auth xmlns='" + nsSASL + "' mechanism='PLAIN'>" + b64([]byte("\x00jo\x00pw-jo")) + "</auth>")
	r.expectRetryError("policy-violation")
	alive("after the login rate change")
}
