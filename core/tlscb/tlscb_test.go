package tlscb

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/xdg-go/scram"
)

// selfSigned makes a certificate for "localhost" with key, signed with alg
// (x509.UnknownSignatureAlgorithm: the default for the key).
func selfSigned(t testing.TB, key crypto.Signer, alg x509.SignatureAlgorithm) tls.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:       big.NewInt(1),
		Subject:            pkix.Name{CommonName: "localhost"},
		DNSNames:           []string{"localhost"},
		NotBefore:          time.Now().Add(-time.Hour),
		NotAfter:           time.Now().Add(time.Hour),
		SignatureAlgorithm: alg,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func ecKey(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// handshake runs a real TLS handshake over net.Pipe and returns the
// server's bindings (with the served certificate as RecordServed saw it)
// and the client's connection state.
func handshake(t *testing.T, srv *tls.Config, version uint16) (*Bindings, tls.ConnectionState) {
	t.Helper()
	return handshakeAs(t, RecordServed(srv), version, "localhost")
}

// handshakeAs is handshake with cfg, made by RecordServed, for a client
// that asks for server name.
func handshakeAs(t *testing.T, cfg *tls.Config, version uint16, name string) (*Bindings, tls.ConnectionState) {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	hc := NewHandshakeConn(a)
	sc := tls.Server(hc, cfg)
	cc := tls.Client(b, &tls.Config{
		InsecureSkipVerify: true, ServerName: name,
		MinVersion: version, MaxVersion: version,
	})
	errc := make(chan error, 1)
	go func() { errc <- cc.Handshake() }()
	if err := sc.Handshake(); err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	return New(sc.ConnectionState(), hc.Served(cfg, sc.ConnectionState())), cc.ConnectionState()
}

func TestBindings(t *testing.T) {
	p256 := selfSigned(t, ecKey(t, elliptic.P256()), x509.UnknownSignatureAlgorithm)
	p384 := selfSigned(t, ecKey(t, elliptic.P384()), x509.ECDSAWithSHA384)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	ed := selfSigned(t, edKey, x509.UnknownSignatureAlgorithm)

	tests := []struct {
		name      string
		cert      tls.Certificate
		version   uint16
		types     []string
		hashLen   int    // of tls-server-end-point
		uniqueErr string // the text for tls-unique, when unavailable
	}{
		{"TLS 1.3 P-256", p256, tls.VersionTLS13, []string{Exporter, ServerEndPoint}, 32,
			"channel binding type tls-unique is not available on TLS 1.3; this connection offers tls-exporter, tls-server-end-point"},
		{"TLS 1.2 P-256", p256, tls.VersionTLS12, []string{Exporter, ServerEndPoint, Unique}, 32, ""},
		{"TLS 1.3 P-384/SHA-384", p384, tls.VersionTLS13, []string{Exporter, ServerEndPoint}, 48,
			"channel binding type tls-unique is not available on TLS 1.3; this connection offers tls-exporter, tls-server-end-point"},
		{"TLS 1.3 Ed25519", ed, tls.VersionTLS13, []string{Exporter}, 0,
			"channel binding type tls-unique is not available on TLS 1.3; this connection offers tls-exporter"},
		{"TLS 1.2 Ed25519", ed, tls.VersionTLS12, []string{Exporter, Unique}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, client := handshake(t, &tls.Config{Certificates: []tls.Certificate{tt.cert}}, tt.version)
			if got := b.Types(); !slices.Equal(got, tt.types) {
				t.Fatalf("Types() = %v, want %v", got, tt.types)
			}
			// Each type must give what the client computes on its side.
			want := map[string][]byte{}
			if ekm, err := client.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32); err == nil {
				want[Exporter] = ekm
			}
			if tt.version == tls.VersionTLS12 {
				want[Unique] = client.TLSUnique
			}
			// xdg-go computes tls-server-end-point from the client's view:
			// an independent implementation to check ours against.
			if cb, err := scram.NewTLSServerEndpointBinding(&client); err == nil {
				want[ServerEndPoint] = cb.Data
			}
			for _, typ := range tt.types {
				got, err := b.Data(typ)
				if err != nil {
					t.Fatalf("Data(%s): %v", typ, err)
				}
				if len(want[typ]) == 0 || !bytes.Equal(got, want[typ]) {
					t.Errorf("Data(%s) = %x, the client has %x", typ, got, want[typ])
				}
			}
			if tt.hashLen > 0 {
				if d, _ := b.Data(ServerEndPoint); len(d) != tt.hashLen {
					t.Errorf("tls-server-end-point is %d bytes, want %d", len(d), tt.hashLen)
				}
			} else if _, err := b.Data(ServerEndPoint); err == nil {
				t.Error("tls-server-end-point offered for an Ed25519 certificate")
			}
			if tt.uniqueErr != "" {
				_, err := b.Data(Unique)
				if err == nil || err.Error() != tt.uniqueErr {
					t.Errorf("Data(tls-unique) error = %v, want %q", err, tt.uniqueErr)
				}
			}
			_, err := b.Data("tls-foo")
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte("channel binding type tls-foo is not supported; this connection offers tls-exporter")) {
				t.Errorf("Data(tls-foo) error = %v", err)
			}
		})
	}
}

func TestServedCertificateUnknown(t *testing.T) {
	c1 := selfSigned(t, ecKey(t, elliptic.P256()), x509.UnknownSignatureAlgorithm)
	c2 := selfSigned(t, ecKey(t, elliptic.P256()), x509.UnknownSignatureAlgorithm)
	// With two certificates Go chooses from the ClientHello: we cannot
	// know which one went out, so the type is not offered.
	b, _ := handshake(t, &tls.Config{Certificates: []tls.Certificate{c1, c2}}, tls.VersionTLS13)
	if got := b.Types(); !slices.Equal(got, []string{Exporter}) {
		t.Errorf("Types() = %v, want only tls-exporter", got)
	}
	_, err := b.Data(ServerEndPoint)
	want := "channel binding type tls-server-end-point is not available because the server certificate of this connection is not known; this connection offers tls-exporter"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
}

func TestRecordServedGetCertificate(t *testing.T) {
	c1 := selfSigned(t, ecKey(t, elliptic.P256()), x509.UnknownSignatureAlgorithm)
	c2 := selfSigned(t, ecKey(t, elliptic.P384()), x509.ECDSAWithSHA384)
	cfg := &tls.Config{
		Certificates: []tls.Certificate{c1},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return &c2, nil
		},
	}
	b, client := handshake(t, cfg, tls.VersionTLS13)
	cb, err := scram.NewTLSServerEndpointBinding(&client)
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.Data(ServerEndPoint)
	if err != nil || !bytes.Equal(got, cb.Data) {
		t.Errorf("Data = %x, %v; the client has %x (the GetCertificate one)", got, err, cb.Data)
	}
	if cfg.GetCertificate == nil || cfg.Certificates == nil {
		t.Error("the base config was changed")
	}
}

// TestRecordServedPerConnection: one config serves every connection, and
// each handshake's certificate is recorded on its own connection: the one
// GetCertificate chose for its server name, or the one certificate when
// GetCertificate declines.
func TestRecordServedPerConnection(t *testing.T) {
	a := selfSigned(t, ecKey(t, elliptic.P256()), x509.UnknownSignatureAlgorithm)
	b := selfSigned(t, ecKey(t, elliptic.P384()), x509.ECDSAWithSHA384)
	base := selfSigned(t, ecKey(t, elliptic.P256()), x509.UnknownSignatureAlgorithm)
	cfg := RecordServed(&tls.Config{
		Certificates: []tls.Certificate{base},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			switch hello.ServerName {
			case "a.example":
				return &a, nil
			case "b.example":
				return &b, nil
			}
			return nil, nil
		},
	})
	for _, name := range []string{"a.example", "b.example", "other.example", "a.example"} {
		got, client := handshakeAs(t, cfg, tls.VersionTLS13, name)
		cb, err := scram.NewTLSServerEndpointBinding(&client)
		if err != nil {
			t.Fatal(err)
		}
		if data, err := got.Data(ServerEndPoint); err != nil || !bytes.Equal(data, cb.Data) {
			t.Errorf("%s: tls-server-end-point %x, %v; the client has %x", name, data, err, cb.Data)
		}
	}
	plain := &tls.Config{Certificates: []tls.Certificate{base}}
	if RecordServed(plain) != plain {
		t.Error("a config without GetCertificate was cloned")
	}
}

func TestNoTLS(t *testing.T) {
	var b *Bindings
	if b.Types() != nil {
		t.Error("nil Bindings has types")
	}
	_, err := b.Data(Exporter)
	want := "channel binding type tls-exporter is not available without TLS 1.2 or 1.3; this connection offers no channel binding"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
	if got := New(tls.ConnectionState{}, Served{}).Types(); len(got) != 0 {
		t.Errorf("a connection state without a handshake offers %v", got)
	}
}

// TestResumedSessionKeepsItsCertificate: a resumed session sends no
// certificate, and a reload may have replaced the one its first handshake
// sent. The ticket carries that certificate's hash, so the resumed
// session binds to the certificate its client checked (the client's own
// tls-server-end-point, computed from the session it cached), and a new
// client gets the new certificate. On TLS 1.2 as on 1.3.
func TestResumedSessionKeepsItsCertificate(t *testing.T) {
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			first := selfSigned(t, ecKey(t, elliptic.P256()), x509.UnknownSignatureAlgorithm)
			reloaded := selfSigned(t, ecKey(t, elliptic.P384()), x509.ECDSAWithSHA384)
			var mu sync.Mutex
			current := &first
			cfg := RecordServed(&tls.Config{
				Certificates: []tls.Certificate{first},
				GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
					mu.Lock()
					defer mu.Unlock()
					return current, nil
				},
			})
			connect := func(cache tls.ClientSessionCache) (server, client []byte, resumed bool) {
				hc, cs, ccs := handshakeReading(t, cfg, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost",
					ClientSessionCache: cache, MaxVersion: version})
				got, err := New(cs, hc.Served(cfg, cs)).Data(ServerEndPoint)
				if err != nil {
					t.Fatalf("resumed %v: %v", cs.DidResume, err)
				}
				cb, err := scram.NewTLSServerEndpointBinding(&ccs)
				if err != nil {
					t.Fatal(err)
				}
				return got, cb.Data, cs.DidResume
			}
			cache := tls.NewLRUClientSessionCache(4)
			firstEP, _ := EndPointHash(&first)
			if got, client, resumed := connect(cache); resumed || !bytes.Equal(got, firstEP) || !bytes.Equal(client, got) {
				t.Fatalf("first handshake: resumed %v, binding %x, client's %x, want %x", resumed, got, client, firstEP)
			}
			mu.Lock()
			current = &reloaded
			mu.Unlock()
			if got, client, resumed := connect(cache); !resumed || !bytes.Equal(got, firstEP) || !bytes.Equal(client, got) {
				t.Fatalf("resumed after the reload: resumed %v, binding %x, client's %x, want the first certificate's %x", resumed, got, client, firstEP)
			}
			reloadedEP, _ := EndPointHash(&reloaded)
			if got, client, resumed := connect(nil); resumed || !bytes.Equal(got, reloadedEP) || !bytes.Equal(client, got) {
				t.Fatalf("new client after the reload: resumed %v, binding %x, client's %x, want %x", resumed, got, client, reloadedEP)
			}
		})
	}
}

// TestATicketWithoutTheCertificate: a session resumed from a ticket that
// does not name the certificate (sealed with the same keys by a config
// that did not go through RecordServed) does not offer
// tls-server-end-point.
func TestATicketWithoutTheCertificate(t *testing.T) {
	cert := selfSigned(t, ecKey(t, elliptic.P256()), x509.UnknownSignatureAlgorithm)
	base := &tls.Config{
		Certificates:   []tls.Certificate{cert},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil },
	}
	var key [32]byte
	base.SetSessionTicketKeys([][32]byte{key})
	recorded := RecordServed(base)
	cache := tls.NewLRUClientSessionCache(4)
	connect := func(cfg *tls.Config) (Served, tls.ConnectionState) {
		hc, cs, _ := handshakeReading(t, cfg, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost", ClientSessionCache: cache})
		return hc.Served(cfg, cs), cs
	}
	connect(base) // the ticket, from a plain config
	if served, cs := connect(recorded); !cs.DidResume || served.Known() {
		t.Fatalf("resumed %v, certificate known %v; want resumed with it unknown", cs.DidResume, served.Known())
	}
}

// tcpPair is a connected pair of loopback TCP connections: unlike
// net.Pipe's, their writes are buffered, so a side that writes while the
// other does (an alert in the middle of a flight) does not deadlock.
func tcpPair(t testing.TB) (server, client net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if server, err = l.Accept(); err != nil {
		t.Fatal(err)
	}
	return server, client
}

// handshakeReading runs a handshake between a server with cfg and a client
// with ccfg over loopback TCP, then has the client read a byte from the
// server, which makes it take the session tickets sent after the
// handshake, and returns the server's HandshakeConn and both states.
func handshakeReading(t testing.TB, cfg, ccfg *tls.Config) (hc *HandshakeConn, server, client tls.ConnectionState) {
	t.Helper()
	a, b := tcpPair(t)
	defer a.Close()
	defer b.Close()
	hc = NewHandshakeConn(a)
	sc := tls.Server(hc, cfg)
	cc := tls.Client(b, ccfg)
	errc := make(chan error, 1)
	go func() {
		err := cc.Handshake()
		if err == nil {
			_, err = cc.Read(make([]byte, 1))
		}
		errc <- err
	}()
	if err := sc.Handshake(); err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	if _, err := sc.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("client: %v", err)
	}
	return hc, sc.ConnectionState(), cc.ConnectionState()
}
