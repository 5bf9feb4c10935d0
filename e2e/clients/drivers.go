package clients

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// allDrivers is the one list of clients in the matrix, in table order.
func allDrivers() []Driver {
	return []Driver{
		slixmpp{}, aioxmpp{}, nbxmpp{}, xmppJS{}, stanzaJS{},
		goSendXMPP{}, sendXMPP{}, profanity{},
	}
}

// errClientBug marks a run that failed for a defect of the client that a
// driver recognised with certainty from the client's own output (and that
// a koi fault cannot cause): the table shows it and the test logs it, but
// it does not fail the test. Drivers must match narrowly.
var errClientBug = errors.New("known client bug")

// systemPython is Debian's interpreter, the one the python3-* packages are
// installed for; a python3 earlier on PATH (pyenv) would not find them.
const systemPython = "/usr/bin/python3"

// versioner is implemented by drivers whose client is not the Debian
// package named by Name (npm packages).
type versioner interface {
	Version(ctx context.Context, env *Env) string
}

// clientVersion is the installed version of d's client: Version when the
// driver has it, otherwise the Debian package version of Name.
func clientVersion(ctx context.Context, env *Env, d Driver) string {
	if v, ok := d.(versioner); ok {
		return v.Version(ctx, env)
	}
	return dpkgVersion(ctx, d.Name())
}

// dpkgVersion asks dpkg for the installed version of pkg ("?" if none).
func dpkgVersion(ctx context.Context, pkg string) string {
	out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Version}", pkg).Output()
	if err != nil || len(out) == 0 {
		return "?"
	}
	return string(out)
}

// npmVersion reads the version of the npm package pkg installed in the
// directory npmInstall returned.
func npmVersion(dir, pkg string) string {
	b, err := os.ReadFile(filepath.Join(dir, "node_modules", pkg, "package.json"))
	if err != nil {
		return "?"
	}
	var p struct{ Version string }
	if json.Unmarshal(b, &p) != nil || p.Version == "" {
		return "?"
	}
	return p.Version
}

// scriptArgs is the one JSON argument of the scripts under testdata/.
func scriptArgs(t Target, x Exchange) string {
	b, _ := json.Marshal(map[string]any{
		"jid": x.Me.JID(), "password": x.Me.Password,
		"host": t.Host, "port": t.Port, "direct_tls": t.DirectTLS, "websocket_url": t.WebSocketURL,
		"ca_file": t.CAFile, "peer": x.Peer, "send": x.Send, "want": x.Want,
	})
	return string(b)
}

// testdata returns the absolute path of a script under testdata/; go test
// runs in the package directory.
func testdata(name string) (string, error) {
	return filepath.Abs(filepath.Join("testdata", name))
}

// maxOutput bounds the client output kept in an error.
const maxOutput = 120

// runClient runs cmd in the run's work directory with HOME there (clients
// that write state find a fresh home) and returns an error carrying the
// last lines of the client's output when it fails.
func runClient(t Target, cmd *exec.Cmd, env ...string) error {
	cmd.Dir = t.WorkDir
	cmd.Env = append(os.Environ(), "HOME="+t.WorkDir)
	cmd.Env = append(cmd.Env, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if errors.Is(cmd.Err, exec.ErrNotFound) {
		return fmt.Errorf("%w: %v", ErrMissing, err)
	}
	return fmt.Errorf("%s: %w\n--- client output (last %d lines) ---\n%s", filepath.Base(cmd.Path), err, maxOutput, tail(out.String(), maxOutput))
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[... %d lines]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// openSSLMaxTLS12 writes an OpenSSL config capping the protocol at TLS
// 1.2 into dir and returns the variable that makes OpenSSL 3 load it
// (Python's ssl and pyOpenSSL both take MaxProtocol from there).
func openSSLMaxTLS12(dir string) (string, error) {
	path := filepath.Join(dir, "openssl-max-tls12.cnf")
	conf := `# Written by the koi client matrix: this client may not use TLS 1.3.
openssl_conf = koi_matrix_init

[koi_matrix_init]
ssl_conf = koi_matrix_ssl

[koi_matrix_ssl]
system_default = koi_matrix_tls

[koi_matrix_tls]
MaxProtocol = TLSv1.2
`
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return "", err
	}
	return "OPENSSL_CONF=" + path, nil
}

// pythonImports checks that the system Python can import module, after
// installing pkg if needed.
func pythonImports(ctx context.Context, env *Env, pkg, module string) error {
	if err := aptInstall(ctx, env, pkg); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, systemPython, "-c", "import "+module).CombinedOutput(); err != nil {
		return fmt.Errorf("%w: %s cannot import %s: %v\n%s", ErrMissing, systemPython, module, err, out)
	}
	return nil
}
