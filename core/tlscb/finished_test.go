package tlscb

import (
	"bufio"
	"bytes"
	"crypto/elliptic"
	"crypto/tls"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pythonSSLClient is a TLS client on OpenSSL (Python's ssl module, which
// slixmpp uses) that prints what it binds to as "tls-unique".
const pythonSSLClient = `
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))))
print(s.version(), s.get_channel_binding("tls-unique").hex(), flush=True)
s.recv(1)
`

func python(t *testing.T) string {
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("python3 is missing")
	}
	t.Skip("python3 (Debian package python3) is missing: cannot check koi's TLS 1.3 tls-unique against an OpenSSL client; CI=true fails instead")
	return ""
}

// TestClientFinishedMatchesOpenSSL: on TLS 1.3, what koi reads off the wire
// as the client Finished is what an OpenSSL client sends as tls-unique, for
// each TLS 1.3 cipher suite.
func TestClientFinishedMatchesOpenSSL(t *testing.T) {
	py := python(t)
	cert := selfSigned(t, ecKey(t, elliptic.P256()), 0)
	for _, suite := range []string{"", "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"} {
		t.Run("suite "+suite, func(t *testing.T) {
			env := os.Environ()
			if suite != "" {
				conf := filepath.Join(t.TempDir(), "openssl.cnf")
				os.WriteFile(conf, []byte("openssl_conf = c\n[c]\nssl_conf = s\n[s]\nsystem_default = d\n[d]\nCiphersuites = "+suite+"\n"), 0o644)
				env = append(env, "OPENSSL_CONF="+conf)
			}
			keys := NewKeyLog()
			cfg := &tls.Config{Certificates: []tls.Certificate{cert}, KeyLogWriter: keys}
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			cmd := exec.Command(py, "-c", pythonSSLClient, strings.TrimPrefix(l.Addr().String(), "127.0.0.1:"))
			cmd.Env = env
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			line := make(chan string, 1)
			go func() {
				l, _ := bufio.NewReader(stdout).ReadString('\n')
				line <- l
			}()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			nc, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			hc := NewHandshakeConn(nc)
			tc := tls.Server(hc, cfg)
			tc.SetDeadline(time.Now().Add(10 * time.Second))
			if err := tc.Handshake(); err != nil {
				t.Fatalf("handshake: %v\n%s", err, stderr.String())
			}
			cs := tc.ConnectionState()
			fin := hc.ClientFinished(cs, keys)
			var said string
			select {
			case said = <-line:
			case <-time.After(10 * time.Second):
			}
			tc.Write([]byte("x"))
			tc.Close()
			cmd.Wait()
			f := strings.Fields(said)
			if len(f) != 2 || f[0] != "TLSv1.3" {
				t.Fatalf("client said %q\n%s", said, stderr.String())
			}
			if suite != "" && tls.CipherSuiteName(cs.CipherSuite) != suite {
				t.Fatalf("negotiated %s, want %s", tls.CipherSuiteName(cs.CipherSuite), suite)
			}
			if got := hex.EncodeToString(fin); got != f[1] {
				t.Errorf("%s: client Finished read off the wire %q, OpenSSL's tls-unique %q", tls.CipherSuiteName(cs.CipherSuite), got, f[1])
			}
			if len(keys.secrets) != 0 {
				t.Errorf("%d secrets left in the key log", len(keys.secrets))
			}
			b := New(cs, CertServed(&cert)).WithClientFinished(fin)
			if d, err := b.Data(Unique); err != nil || !bytes.Equal(d, fin) {
				t.Errorf("Data(tls-unique) = %x, %v", d, err)
			}
			for _, ty := range b.Types() {
				if ty == Unique {
					t.Error("tls-unique advertised on TLS 1.3")
				}
			}
		})
	}
}

// TestClientFinishedNotOnTLS12: TLS 1.2 keeps its own tls-unique, and no
// secret is left behind.
func TestClientFinishedNotOnTLS12(t *testing.T) {
	cert := selfSigned(t, ecKey(t, elliptic.P256()), 0)
	keys := NewKeyLog()
	a, b := net.Pipe()
	hc := NewHandshakeConn(a)
	srv := tls.Server(hc, &tls.Config{Certificates: []tls.Certificate{cert}, KeyLogWriter: keys, MaxVersion: tls.VersionTLS12})
	cli := tls.Client(b, &tls.Config{InsecureSkipVerify: true})
	done := make(chan error, 1)
	go func() { done <- cli.Handshake() }()
	if err := srv.Handshake(); err != nil {
		t.Fatal(err)
	}
	<-done
	if fin := hc.ClientFinished(srv.ConnectionState(), keys); fin != nil {
		t.Errorf("ClientFinished on TLS 1.2 = %x, want nil", fin)
	}
	if len(keys.secrets) != 0 {
		t.Errorf("%d secrets left in the key log", len(keys.secrets))
	}
}

func TestKeyLogIgnoresOtherLines(t *testing.T) {
	k := NewKeyLog()
	for _, l := range []string{
		"SERVER_HANDSHAKE_TRAFFIC_SECRET " + strings.Repeat("ab", 32) + " " + strings.Repeat("cd", 32) + "\n",
		"CLIENT_HANDSHAKE_TRAFFIC_SECRET zz " + strings.Repeat("cd", 32) + "\n",
		"CLIENT_HANDSHAKE_TRAFFIC_SECRET " + strings.Repeat("ab", 31) + " " + strings.Repeat("cd", 32) + "\n",
		"garbage",
	} {
		if n, err := k.Write([]byte(l)); n != len(l) || err != nil {
			t.Errorf("Write(%q) = %d, %v", l, n, err)
		}
	}
	if len(k.secrets) != 0 {
		t.Errorf("kept %d secrets from lines it should ignore", len(k.secrets))
	}
}
