// Package tlscb computes the channel bindings (RFC 5056) of the server side
// of a TLS connection: tls-exporter (RFC 9266), tls-server-end-point and
// tls-unique (RFC 5929). SCRAM-*-PLUS mixes them into the proof so that a
// man in the middle who terminates TLS cannot relay a login.
package tlscb

import (
	"crypto"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
)

// Channel binding type names, as the gs2 header and XEP-0440 write them.
const (
	Exporter       = "tls-exporter"
	ServerEndPoint = "tls-server-end-point"
	Unique         = "tls-unique"
)

// exporterLabel and exporterLen are fixed by RFC 9266 §2.
const (
	exporterLabel = "EXPORTER-Channel-Binding"
	exporterLen   = 32
)

// Bindings are the channel bindings one TLS connection can give. The zero
// value (and nil) gives none.
type Bindings struct {
	version string            // "1.2" or "1.3"
	types   []string          // in preference order
	data    map[string][]byte // by type
	why     map[string]string // why a known type is missing, for the client
}

// New computes the bindings of a completed server-side handshake. served is
// the certificate the server sent (see RecordServed and HandshakeConn.Served);
// its zero value means it is not known, and tls-server-end-point is then not
// offered.
//
// The preference order is tls-exporter, tls-server-end-point, tls-unique:
// tls-exporter binds to the whole TLS session and is the only type defined
// for TLS 1.3 by the TLS working group; tls-server-end-point binds only to
// the certificate (a MITM holding the same key is not caught), but works on
// every version; tls-unique is last because it is undefined on TLS 1.3 and
// is broken on TLS 1.2 without extended master secret (the triple handshake
// attack), where Go leaves it empty after a resumption.
func New(cs tls.ConnectionState, served Served) *Bindings {
	b := &Bindings{data: map[string][]byte{}, why: map[string]string{}}
	switch cs.Version {
	case tls.VersionTLS13:
		b.version = "1.3"
	case tls.VersionTLS12:
		b.version = "1.2"
	default:
		// koi never negotiates older versions; offer nothing rather than
		// reason about SSL-era bindings.
		return b
	}
	// Go refuses to export keying material on TLS 1.2 without extended
	// master secret (RFC 9266 §3 forbids tls-exporter there), so the error
	// is how we learn whether EMS was negotiated. GODEBUG=tlsunsafeekm=1
	// lifts that refusal and would hide it: do not set it on koi.
	if ekm, err := cs.ExportKeyingMaterial(exporterLabel, nil, exporterLen); err == nil {
		b.add(Exporter, ekm)
	} else {
		b.why[Exporter] = "on TLS 1.2 without extended master secret"
	}
	if !served.Known() {
		b.why[ServerEndPoint] = "because the server certificate of this connection is not known"
	} else if h, err := served.EndPoint(); err != nil {
		b.why[ServerEndPoint] = "for this server certificate"
	} else {
		b.add(ServerEndPoint, h)
	}
	switch {
	case cs.Version == tls.VersionTLS13:
		b.why[Unique] = "on TLS 1.3"
	case len(cs.TLSUnique) == 0:
		// A TLS 1.2 resumption without extended master secret.
		b.why[Unique] = "on a resumed TLS 1.2 session without extended master secret"
	default:
		b.add(Unique, slices.Clone(cs.TLSUnique))
	}
	return b
}

func (b *Bindings) add(t string, data []byte) {
	b.types = append(b.types, t)
	b.data[t] = data
}

// Types returns the types the connection offers, in preference order.
func (b *Bindings) Types() []string {
	if b == nil {
		return nil
	}
	return slices.Clone(b.types)
}

// Data returns the binding data for cbType. The error of a type the
// connection cannot give names the type, why, and the types it can; it
// holds no secret and is meant to be shown to the client.
func (b *Bindings) Data(cbType string) ([]byte, error) {
	if b != nil {
		if d, ok := b.data[cbType]; ok {
			return d, nil
		}
	}
	return nil, b.unavailable(cbType)
}

func (b *Bindings) unavailable(cbType string) error {
	var why string
	switch {
	case b == nil || b.version == "":
		why = "is not available without TLS 1.2 or 1.3"
	case b.why[cbType] != "":
		why = "is not available " + b.why[cbType]
	default:
		why = "is not supported"
	}
	offers := "no channel binding"
	if b != nil && len(b.types) > 0 {
		offers = strings.Join(b.types, ", ")
	}
	return fmt.Errorf("channel binding type %s %s; this connection offers %s", cbType, why, offers)
}

// EndPointHash is the tls-server-end-point binding of cert (RFC 5929 §4.1):
// its leaf, in DER, hashed with the hash of its signature algorithm, where
// MD5 and SHA-1 become SHA-256. Ed25519 and other signatures without a
// separate hash have no defined binding (RFC 5929 predates them and no RFC
// has filled the gap), so they give an error and the type is not offered.
func EndPointHash(cert *tls.Certificate) ([]byte, error) {
	leaf := cert.Leaf
	if leaf == nil {
		if len(cert.Certificate) == 0 {
			return nil, fmt.Errorf("tls-server-end-point: empty certificate")
		}
		var err error
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("tls-server-end-point: %w", err)
		}
	}
	var h crypto.Hash
	switch leaf.SignatureAlgorithm {
	case x509.MD5WithRSA, x509.SHA1WithRSA, x509.ECDSAWithSHA1, x509.DSAWithSHA1,
		x509.SHA256WithRSA, x509.SHA256WithRSAPSS, x509.ECDSAWithSHA256, x509.DSAWithSHA256:
		h = crypto.SHA256
	case x509.SHA384WithRSA, x509.SHA384WithRSAPSS, x509.ECDSAWithSHA384:
		h = crypto.SHA384
	case x509.SHA512WithRSA, x509.SHA512WithRSAPSS, x509.ECDSAWithSHA512:
		h = crypto.SHA512
	default:
		return nil, fmt.Errorf("tls-server-end-point: no hash defined for signature algorithm %v", leaf.SignatureAlgorithm)
	}
	return digest(h, leaf.Raw), nil
}

func digest(h crypto.Hash, b []byte) []byte {
	switch h {
	case crypto.SHA384:
		s := sha512.Sum384(b)
		return s[:]
	case crypto.SHA512:
		s := sha512.Sum512(b)
		return s[:]
	}
	s := sha256.Sum256(b)
	return s[:]
}
