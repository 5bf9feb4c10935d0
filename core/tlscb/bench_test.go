package tlscb

import (
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"testing"
)

// BenchmarkHandshake is a full TLS 1.3 handshake over loopback TCP with the
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
				handshakeReading(b, bc.cfg, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
			}
		})
	}
}
