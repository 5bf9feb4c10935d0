package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/config"
)

// tlsConfig is the server's TLS configuration: cert, and the versions of
// the tls block. Tests set max_version = "1.2" to see a client on TLS 1.2,
// where the channel bindings differ (see core/tlscb).
func tlsConfig(certs *certStore, c config.TLS) *tls.Config {
	t := &tls.Config{GetCertificate: certs.get, MinVersion: tls.VersionTLS12}
	if c.MinVersion == "1.3" {
		t.MinVersion = tls.VersionTLS13
	}
	// "" (a Config not made by package config) keeps Go's maximum.
	if c.MaxVersion == "1.2" {
		t.MaxVersion = tls.VersionTLS12
	}
	return t
}

// loadOrCreateCert loads the configured certificate. When neither file
// exists it makes a self-signed one for names, so that a first `make run`
// gives a working TLS server.
func loadOrCreateCert(log hclog.Logger, certFile, keyFile string, names []string) (tls.Certificate, error) {
	if selfSignedDue(certFile, keyFile) {
		if err := writeSelfSigned(certFile, keyFile, names); err != nil {
			return tls.Certificate{}, fmt.Errorf("tls: create self-signed certificate: %w", err)
		}
		log.Warn("created a self-signed TLS certificate; clients will ask to trust it", "cert_file", certFile, "names", names)
	}
	cert, p := loadCert(certFile, keyFile)
	if p != nil {
		return tls.Certificate{}, config.Errors{*p}
	}
	return cert, nil
}

// selfSignedDue reports whether neither file exists, so that koi makes a
// self-signed certificate at start.
func selfSignedDue(certFile, keyFile string) bool {
	_, errC := os.Stat(certFile)
	_, errK := os.Stat(keyFile)
	return errors.Is(errC, fs.ErrNotExist) && errors.Is(errK, fs.ErrNotExist)
}

// loadCert loads the certificate and its key, naming the key of the config
// at fault.
func loadCert(certFile, keyFile string) (tls.Certificate, *config.Problem) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, &config.Problem{Key: "tls.cert_file", Msg: err.Error()}
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, &config.Problem{Key: "tls.key_file", Msg: err.Error()}
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, &config.Problem{Key: "tls.cert_file/tls.key_file",
			Msg: fmt.Sprintf("%s, %s: %v", certFile, keyFile, err)}
	}
	return cert, nil
}

func writeSelfSigned(certFile, keyFile string, names []string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: names[0], Organization: []string{"koi self-signed"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(5, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	for _, f := range []string{certFile, keyFile} {
		if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
			return err
		}
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}
