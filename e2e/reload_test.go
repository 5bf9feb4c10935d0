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
	"math/big"
	"os"
	"path/filepath"
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
		!strings.Contains(after, `need_restart=["limits"]`) {
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
