package tlscb

import (
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
)

// BenchmarkHandshake is a full TLS 1.3 handshake over net.Pipe with the
// served certificate recorded (RecordServed: a config per handshake and the
// certificate's hash in the session ticket) against the plain config.
func BenchmarkHandshake(b *testing.B) {
	cert := selfSigned(b, ecKey(b, elliptic.P256()), x509.UnknownSignatureAlgorithm)
	plain := &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }}
	for _, bc := range []struct {
		name string
		cfg  *tls.Config
	}{{"plain", plain}, {"recorded", RecordServed(plain)}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				a, c := net.Pipe()
				sc := tls.Server(NewHandshakeConn(a), bc.cfg)
				cc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
				done := make(chan error, 1)
				go func() {
					err := cc.Handshake()
					if err == nil {
						_, err = cc.Read(make([]byte, 1))
					}
					done <- err
				}()
				if err := sc.Handshake(); err != nil {
					b.Fatal(err)
				}
				if _, err := sc.Write([]byte("x")); err != nil {
					b.Fatal(err)
				}
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				a.Close()
				c.Close()
			}
		})
	}
}
