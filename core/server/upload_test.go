package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/config"
	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/core/router"
)

// An upload service with plain http URLs is accepted with a warning.
func TestUploadWarnings(t *testing.T) {
	cfg, err := config.Parse([]byte(`
listen "c2s" { address = "127.0.0.1:5222" }
plugin "store" { command = "x" }
host "a.example" { auth = "store"  upload { listen = "127.0.0.1:5281" } }
host "b.example" { auth = "store"  upload { listen = "127.0.0.1:5282"  tls = false } }
host "c.example" { auth = "store"  upload { listen = "127.0.0.1:5283"  tls = false  url_base = "https://files.c.example" } }
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	w := uploadWarnings(cfg)
	if len(w) != 1 || w[0].Key != `host "b.example".upload.url_base` || !strings.Contains(w[0].Msg, "http://upload.b.example:5282 is plain http") {
		t.Fatalf("warnings: %v", w)
	}
	if got := uploadDomains(cfg); strings.Join(got, " ") != "upload.a.example upload.b.example upload.c.example" {
		t.Fatalf("domains for the certificate: %v", got)
	}
}

// startUploads serves each upload block and names the key of what fails.
func TestStartUploads(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	free, _ := net.Listen("tcp", "127.0.0.1:0")
	freeAddr := free.Addr().String()
	free.Close()
	dir := t.TempDir()
	parse := func(listen string) *config.Config {
		cfg, err := config.Parse([]byte(fmt.Sprintf(`
listen "c2s" { address = "127.0.0.1:5222" }
plugin "store" { command = "x" }
server { data_dir = %q }
host "a.example" { auth = "store"  upload { listen = %q  tls = false } }
`, dir, listen)), nil)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	mods := modules.New(hclog.NewNullLogger(), router.New(), nil, "test")

	if _, err := startUploads(parse(taken.Addr().String()), mods, &tls.Config{}, hclog.NewNullLogger()); err == nil ||
		!strings.Contains(err.Error(), `host "a.example".upload.listen`) {
		t.Fatalf("taken port: %v", err)
	}
	stop, err := startUploads(parse(freeAddr), mods, &tls.Config{}, hclog.NewNullLogger())
	if err != nil {
		t.Fatalf("start after a failed one (the domain must be free again): %v", err)
	}
	resp, err := http.Get("http://" + freeAddr + "/" + strings.Repeat("a", 26) + "/x.txt")
	if err != nil || resp.StatusCode != 404 {
		t.Fatalf("GET: %v %v", resp, err)
	}
	resp.Body.Close()
	if _, err := os.Stat(filepath.Join(dir, "upload.key")); err != nil {
		t.Fatalf("no signing key made: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "upload", "upload.a.example")); err != nil {
		t.Fatalf("no store directory: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stop(ctx)
	if _, err := http.Get("http://" + freeAddr + "/"); err == nil {
		t.Fatal("the listener is still open after stop")
	}
}

// An upload listener with a certificate of its own serves it, not the tls
// block's; a missing one is a problem naming the upload block's key.
func TestUploadOwnCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "up.pem"), filepath.Join(dir, "up.key")
	if err := writeSelfSigned(certFile, keyFile, []string{"files.a.example"}); err != nil {
		t.Fatal(err)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	src := func(cert string) string {
		return fmt.Sprintf(`
listen "c2s" { address = "127.0.0.1:5222" }
plugin "store" { command = "x" }
server { data_dir = %q }
host "a.example" { auth = "store"  upload { listen = %q  domain = "files.a.example"  cert_file = %q  key_file = %q } }
`, dir, addr, cert, keyFile)
	}
	bad, err := config.Parse([]byte(src(filepath.Join(dir, "missing.pem"))), nil)
	if err != nil {
		t.Fatal(err)
	}
	if p := uploadCertProblems(bad); len(p) != 1 || p[0].Key != `host "a.example".upload.cert_file` {
		t.Fatalf("problems: %v", p)
	}
	cfg, err := config.Parse([]byte(src(certFile)), nil)
	if err != nil {
		t.Fatal(err)
	}
	// The server's own certificate would not do for files.a.example.
	serverCert := &certStore{}
	stop, err := startUploads(cfg, modules.New(hclog.NewNullLogger(), router.New(), nil, "test"),
		tlsConfig(serverCert, cfg.TLS), hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer stop(context.Background())
	pemBytes, _ := os.ReadFile(certFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "files.a.example"})
	if err != nil {
		t.Fatalf("TLS with the upload listener's own certificate: %v", err)
	}
	c.Close()
}

// A reload leaves each upload service as it started and names a changed
// upload block for a restart; the rest of the host still applies.
func TestReloadKeepsUploads(t *testing.T) {
	cur := parse(t, reloadBase+`host "three.example" { auth = "a"  upload { listen = "127.0.0.1:5281" } }`)
	next := parse(t, reloadBase+`host "three.example" { auth = "a"  registration = true  upload { listen = "127.0.0.1:5281"  quota = 0 } }
host "four.example" { auth = "a"  upload { listen = "127.0.0.1:5282" } }`)
	tg, restart := reloadTarget(cur, next)
	// A new host's chat service (on by default) also starts only with koi.
	want := []string{`host "four.example"'s chat service (starts with koi)`, `host "three.example".upload`, `host "four.example".upload`}
	if strings.Join(restart, "|") != strings.Join(want, "|") {
		t.Errorf("need restart %q, want %q", restart, want)
	}
	for _, h := range tg.Hosts {
		switch h.Name {
		case "three.example":
			if h.Upload == nil || h.Upload.Quota != config.DefaultUploadQuota || !h.Registration {
				t.Errorf("three.example: upload %+v registration %v", h.Upload, h.Registration)
			}
		case "four.example":
			if h.Upload != nil {
				t.Errorf("a new host's upload service is in the target: %+v", h.Upload)
			}
		}
	}
	for _, c := range hostChanges(cur.Hosts, tg.Hosts) {
		if strings.Contains(c, "upload") {
			t.Errorf("an upload change is reported as applied: %s", c)
		}
	}
}
