package nodeauth_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/metadata"

	"github.com/koi-im/koi/sdk"
)

// start launches plugin.js through go-plugin, as koi does, without
// configuring it (sdktest.StartPlugin fails the test when Configure does).
func start(t *testing.T, dir string, autoMTLS bool) *sdk.Client {
	t.Helper()
	pc := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		Plugins:          sdk.PluginMap(nil),
		Cmd:              exec.Command(filepath.Join(dir, "plugin.js")),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         autoMTLS,
		Logger:           hclog.New(&hclog.LoggerOptions{Output: testWriter{t}, Level: hclog.Info}),
		StartTimeout:     30 * time.Second,
	})
	t.Cleanup(pc.Kill)
	proto, err := pc.Client()
	if err != nil {
		t.Fatalf("start plugin.js: %v", err)
	}
	raw, err := proto.Dispense(sdk.PluginName)
	if err != nil {
		t.Fatalf("dispense: %v", err)
	}
	return raw.(*sdk.Client)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// TestConfigureRefusals: a bad config block fails Configure with
// sdk.ErrInvalid, naming the key, as the Go SDK's Config.Decode does.
func TestConfigureRefusals(t *testing.T) {
	dir := needNode(t)
	c := start(t, dir, false)
	if _, err := c.UserExists(ctx(t), "example.com", "alice"); !errors.Is(err, sdk.ErrUnavailable) {
		t.Errorf("UserExists before Configure: %v, want sdk.ErrUnavailable", err)
	}
	for _, tc := range []struct{ config, want string }{
		{`{}`, "file: is required"},
		{`{"file": "x", "fiel": "y"}`, "fiel: unknown key"},
		{`{"file": "/nonexistent/users.json"}`, "no such file"},
		{`[1]`, "must be an object"},
	} {
		_, err := c.Configure(ctx(t), []byte(tc.config))
		if !errors.Is(err, sdk.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Configure(%s): %v, want sdk.ErrInvalid saying %q", tc.config, err, tc.want)
		}
	}
	bad := filepath.Join(t.TempDir(), "users.json")
	writeJSON(t, bad, map[string]string{"alice": "secret"})
	_, err := c.Configure(ctx(t), config(t, bad))
	if !errors.Is(err, sdk.ErrInvalid) || !strings.Contains(err.Error(), `user "alice"`) {
		t.Errorf("Configure with a plain password in the file: %v, want sdk.ErrInvalid naming alice", err)
	}
}

// TestGivenUpCallRefused: a call that carries a koi-deadline already past
// (koi gave up on it while the plugin was stalled) is refused without
// being run, as sdk.Serve refuses it.
func TestGivenUpCallRefused(t *testing.T) {
	dir := needNode(t)
	c := start(t, dir, false)
	late := metadata.AppendToOutgoingContext(ctx(t), "koi-deadline", strconv.FormatInt(time.Now().Add(-time.Second).UnixNano(), 10))
	if _, err := c.UserExists(late, "example.com", "alice"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a call koi gave up on: %v, want it refused as past its deadline", err)
	}
	soon := metadata.AppendToOutgoingContext(ctx(t), "koi-deadline", strconv.FormatInt(time.Now().Add(time.Minute).UnixNano(), 10))
	if _, err := c.UserExists(soon, "example.com", "alice"); errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, sdk.ErrUnavailable) {
		t.Errorf("a call with time left, before Configure: %v, want it run (unavailable: not configured)", err)
	}
}

// TestReload: a changed user file is read again; a broken one is ignored.
func TestReload(t *testing.T) {
	dir := needNode(t)
	js := filepath.Join(dir, "plugin.js")
	path := filepath.Join(t.TempDir(), "users.json")
	users := map[string]string{"alice": hash(t, js, "secret")}
	writeJSON(t, path, users)
	c := start(t, dir, false)
	if _, err := c.Configure(ctx(t), config(t, path)); err != nil {
		t.Fatal(err)
	}
	check := func(user, password string, want bool) {
		t.Helper()
		if ok, err := c.CheckPassword(ctx(t), "example.com", user, password); err != nil || ok != want {
			t.Errorf("CheckPassword(%q, %q) = %v, %v; want %v", user, password, ok, err, want)
		}
	}
	check("alice", "secret", true)
	check("bob", "hunter2", false)

	users["bob"] = hash(t, js, "hunter2")
	writeJSON(t, path, users)
	check("bob", "hunter2", true)

	if err := os.WriteFile(path, []byte(`{"bob": "$apr1$not-scrypt"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	check("bob", "hunter2", true)
	check("alice", "secret", true)
}

// TestValidateProblems: `plugin.js validate -json` reports problems by key
// and exits 1, as sdk's validate command does.
func TestValidateProblems(t *testing.T) {
	dir := needNode(t)
	cmd := exec.Command(filepath.Join(dir, "plugin.js"), sdk.ValidateCommand, "-json")
	cmd.Stdin = strings.NewReader(`{"fiel": "x"}`)
	out, err := cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("validate of a bad config: %v, want exit status 1", err)
	}
	var rep sdk.ValidationReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("validate report %q: %v", out, err)
	}
	keys := map[string]bool{}
	for _, p := range rep.Problems {
		keys[p.Key] = true
	}
	if rep.OK || !keys["fiel"] || !keys["file"] {
		t.Errorf("validate report %+v, want problems with fiel and file", rep)
	}
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// A coarse file clock must not hide the change from the plugin.
	later := time.Now().Add(time.Duration(len(b)) * time.Millisecond)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
}

func config(t *testing.T, path string) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]string{"file": path})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAutoMTLS: with go-plugin's AutoMTLS on (koi leaves it off, other
// hosts may not), the plugin serves TLS with a certificate of its own and
// requires the host's.
func TestAutoMTLS(t *testing.T) {
	dir := needNode(t)
	js := filepath.Join(dir, "plugin.js")
	path := filepath.Join(t.TempDir(), "users.json")
	writeJSON(t, path, map[string]string{"alice": hash(t, js, "secret")})
	c := start(t, dir, true)
	caps, err := c.Configure(ctx(t), config(t, path))
	if err != nil {
		t.Fatalf("Configure over mTLS: %v", err)
	}
	if caps.Auth.Access != sdk.AccessRead {
		t.Errorf("capabilities %+v", caps)
	}
	if ok, err := c.CheckPassword(ctx(t), "example.com", "alice", "secret"); err != nil || !ok {
		t.Errorf("CheckPassword over mTLS = %v, %v", ok, err)
	}
}

// TestAutoMTLSRequiresHostCert: over AutoMTLS, a client without the
// host's certificate gets no gRPC connection; the handshake's certificate
// is base64 DER without padding, for "localhost".
func TestAutoMTLSRequiresHostCert(t *testing.T) {
	dir := needNode(t)
	hostCert, hostKey := selfSignedPEM(t)
	cmd := exec.Command(filepath.Join(dir, "plugin.js"))
	cmd.Env = append(os.Environ(),
		sdk.Handshake.MagicCookieKey+"="+sdk.Handshake.MagicCookieValue,
		"PLUGIN_CLIENT_CERT="+string(hostCert))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("handshake line: %v", err)
	}
	parts := strings.Split(strings.TrimSpace(line), "|")
	if len(parts) != 6 || parts[2] != "tcp" || parts[4] != "grpc" {
		t.Fatalf("handshake line %q", line)
	}
	der, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil {
		t.Fatalf("server certificate %q: %v", parts[5], err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("server certificate: %v", err)
	}
	if err := cert.VerifyHostname("localhost"); err != nil {
		t.Errorf("server certificate: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	// read dials and reads the server's first HTTP/2 frame: TLS 1.3
	// reports a refused client certificate only there.
	read := func(certs []tls.Certificate) error {
		conn, err := tls.Dial("tcp", parts[3], &tls.Config{
			RootCAs: roots, ServerName: "localhost", NextProtos: []string{"h2"}, Certificates: certs,
		})
		if err != nil {
			return err
		}
		defer conn.Close()
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		return err
	}
	if err := read(nil); err == nil {
		t.Error("a client without the host's certificate was served")
	}
	pair, err := tls.X509KeyPair(hostCert, hostKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := read([]tls.Certificate{pair}); err != nil {
		t.Errorf("the host's certificate is refused: %v", err)
	}
}

// selfSignedPEM makes a host certificate as go-plugin's AutoMTLS does.
func selfSignedPEM(t *testing.T) (cert, key []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

// TestHostGone: when the process that started the plugin dies, even by
// SIGKILL (no Shutdown, no signal to the plugin), the plugin notices its
// new parent and exits, as Go plugins do.
func TestHostGone(t *testing.T) {
	dir := needNode(t)
	// sh stands in for koi: it starts the plugin, says its pid, and waits.
	host := exec.Command("sh", "-c", `"$0" & echo "$!"; wait`, filepath.Join(dir, "plugin.js"))
	host.Env = append(os.Environ(), sdk.Handshake.MagicCookieKey+"="+sdk.Handshake.MagicCookieValue)
	stdout, err := host.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stdout)
	var pid int
	if line, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	} else if pid, err = strconv.Atoi(strings.TrimSpace(line)); err != nil {
		t.Fatalf("plugin pid %q: %v", line, err)
	}
	exited := false
	t.Cleanup(func() {
		// Only while it is ours: once gone, the pid may be another's.
		if !exited {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	// The handshake comes after the plugin noted its parent.
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "1|1|tcp|") {
		t.Fatalf("handshake: %q, %v", line, err)
	}
	if err := host.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = host.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for !gone(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("plugin %d still runs 10 s after its host was killed", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
	exited = true
}

// gone reports whether pid has exited: no such process, or a zombie that
// its new parent has not reaped yet.
func gone(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false // not Linux: the signal check is all there is
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 0 && f[0] == "Z"
}

// TestSelfSignedSerials: the AutoMTLS certificate parses whatever random
// serial it drew. A serial whose first byte came out zero was once
// encoded with a leading zero byte, which OpenSSL and Go refuse: about one
// plugin start in 256 failed.
func TestSelfSignedSerials(t *testing.T) {
	dir := needNode(t)
	// The first two bytes of the serial, forced; the rest stays random.
	for _, first := range [][2]byte{{0x00, 0x12}, {0x80, 0x00}, {0x00, 0x90}, {0xff, 0xff}, {0x7f, 0x00}} {
		script := `const crypto = require('node:crypto');
const rb = crypto.randomBytes;
crypto.randomBytes = (n) => { const b = rb(n); if (n === 16) { b[0] = ` + strconv.Itoa(int(first[0])) + `; b[1] = ` + strconv.Itoa(int(first[1])) + `; } return b; };
process.stdout.write(require('./lib/mtls').selfSigned().certPEM);`
		cmd := exec.Command("node", "-e", script)
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("serial %x…: node: %v", first, err)
		}
		blk, _ := pem.Decode(out)
		if blk == nil {
			t.Fatalf("serial %x…: no PEM in %q", first, out)
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatalf("serial %x…: %v", first, err)
		}
		if cert.SerialNumber.Sign() <= 0 {
			t.Fatalf("serial %x…: serial %v is not positive", first, cert.SerialNumber)
		}
	}
}
