package clients

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/koi-im/koi/e2e/internal/koiproc"
)

// wsPath is the RFC 7395 endpoint path of the websocket listener.
const wsPath = "/xmpp-websocket"

// serverOpts are the only ways a matrix server differs from config.hcl.
type serverOpts struct {
	WebSocket  bool // add a listen "websocket" block
	MaxTLS12   bool // tls { max_version = "1.2" }
	PeerPasswd string
}

// koiServer is one koi for the matrix, with the reference peer logged in.
type koiServer struct {
	srv    *koiproc.Server
	dir    string
	c2s    string // STARTTLS listener
	c2sTLS string // direct TLS listener
	ws     string // websocket listener, "" without one
	caFile string // koi's self-signed certificate
	peer   *peer
}

var (
	listenRE = regexp.MustCompile(`(?m)^(\s*listen\s+"([^"]+)"\s*\{\s*address\s*=\s*")([^"]*)(")`)
	pluginRE = regexp.MustCompile(`command\s*=\s*"bin/plugins/koi-backend-sql"`)
	tlsRE    = regexp.MustCompile(`(?m)^tls\s*\{`)
)

// writeConfig renders the config a new user gets, the repository's
// config.hcl, into dir: the same settings and relative paths (so the
// certificate and the SQLite database land under dir/data), with only the
// listener ports, the plugin path and the options in o changed. It returns
// the config path and the listener addresses by label.
func writeConfig(bins koiproc.Bins, root, dir string, o serverOpts) (string, map[string]string, error) {
	b, err := os.ReadFile(filepath.Join(root, "config.hcl"))
	if err != nil {
		return "", nil, err
	}
	cfg := string(b)
	addrs := map[string]string{}
	var ferr error
	cfg = listenRE.ReplaceAllStringFunc(cfg, func(m string) string {
		sub := listenRE.FindStringSubmatch(m)
		a, err := koiproc.FreeAddr()
		if err != nil {
			ferr = err
		}
		addrs[sub[2]] = a
		return sub[1] + a + sub[4]
	})
	if ferr != nil {
		return "", nil, ferr
	}
	if addrs["c2s"] == "" || addrs["c2s_tls"] == "" {
		return "", nil, fmt.Errorf("config.hcl: no c2s and c2s_tls listeners found to move to free ports")
	}
	if n := len(pluginRE.FindAllString(cfg, -1)); n != 1 {
		return "", nil, fmt.Errorf("config.hcl: %d plugin commands bin/plugins/koi-backend-sql, want 1", n)
	}
	cfg = pluginRE.ReplaceAllLiteralString(cfg, fmt.Sprintf("command = %q", bins.SQLPlugin()))
	if o.MaxTLS12 {
		if tlsRE.MatchString(cfg) {
			cfg = tlsRE.ReplaceAllLiteralString(cfg, `tls { max_version = "1.2" `)
		} else {
			cfg += "\ntls { max_version = \"1.2\" }\n"
		}
	}
	if o.WebSocket && addrs["websocket"] == "" {
		a, err := koiproc.FreeAddr()
		if err != nil {
			return "", nil, err
		}
		addrs["websocket"] = a
		cfg += fmt.Sprintf("\n# Added by the client matrix (RFC 7395, for browser libraries).\nlisten \"websocket\" { address = %q  path = %q  tls = false }\n", a, wsPath)
	}
	path := filepath.Join(dir, "koi.hcl")
	return path, addrs, os.WriteFile(path, []byte(cfg), 0o600)
}

// probeConfig asks koi which optional settings it accepts yet: it returns,
// for the websocket listener and for tls.max_version, "" when accepted or
// why not (koi's own words). Other problems mean config.hcl itself is
// broken and are an error.
func probeConfig(ctx context.Context, bins koiproc.Bins, root, dir string) (ws, max12 string, err error) {
	path, _, err := writeConfig(bins, root, dir, serverOpts{WebSocket: true, MaxTLS12: true})
	if err != nil {
		return "", "", err
	}
	problems, err := koiproc.CheckConfig(ctx, bins, path)
	if err != nil || problems == "" {
		return "", "", err
	}
	var other []string
	for _, l := range strings.Split(strings.TrimSpace(problems), "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "koi:"):
		case strings.Contains(l, `listen "websocket"`):
			ws = join(ws, l)
		case strings.Contains(l, "max_version"):
			max12 = join(max12, l)
		default:
			other = append(other, l)
		}
	}
	if len(other) > 0 {
		return "", "", fmt.Errorf("koi check-config on config.hcl with the matrix settings:\n%s", problems)
	}
	return ws, max12, nil
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// startKoi starts koi on the config a new user gets (plus o) and logs the
// reference peer in. Both are stopped at the end of t; koi must exit 0.
func startKoi(t *testing.T, bins koiproc.Bins, root string, o serverOpts) *koiServer {
	t.Helper()
	var k *koiServer
	// A port found free can be taken before koi binds it (by an outgoing
	// connection of a test running in parallel): that is the harness's
	// bad luck, not koi's, so koi gets other ports.
	for try := 1; ; try++ {
		dir := t.TempDir()
		path, addrs, err := writeConfig(bins, root, dir, o)
		if err != nil {
			t.Fatal(err)
		}
		var listen []string
		for _, a := range addrs {
			listen = append(listen, a)
		}
		k = &koiServer{dir: dir, c2s: addrs["c2s"], c2sTLS: addrs["c2s_tls"], ws: addrs["websocket"],
			caFile: filepath.Join(dir, "data", "tls", "cert.pem")}
		k.srv, err = koiproc.Launch(t, bins, path, nil, listen...)
		if err == nil {
			break
		}
		if !errors.Is(err, koiproc.ErrPortTaken) || try == 3 {
			t.Fatal(err)
		}
		t.Logf("starting koi again on other ports: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := k.srv.AddUser(ctx, peerJID, o.PeerPasswd); err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(k.caFile)
	if err != nil {
		t.Fatalf("koi's certificate: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", k.caFile)
	}
	k.peer, err = dialPeer(ctx, k.c2s, peerJID, o.PeerPasswd, &tls.Config{RootCAs: pool, ServerName: domain, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("%v\nkoi log:\n%s", err, k.srv.Log.String())
	}
	t.Cleanup(k.peer.close) // before koi stops: cleanups run last first
	return k
}
