package tlscb

import (
	"bytes"
	"crypto/tls"
	"errors"
	"slices"
)

// Which certificate a handshake sent, for tls-server-end-point.
//
// A full handshake sends one, chosen by GetCertificate when the config has
// that callback: RecordServed wraps it so that each HandshakeConn learns
// the choice. A resumed session sends none: the binding is still the
// certificate the client checked in the handshake that issued the ticket
// (RFC 5929 §4.1), which a reload may have replaced since. So RecordServed
// also writes that certificate's hash into every session ticket the server
// issues and reads it back from the ticket a client resumes with.

// ticketTag starts koi's entry in a session ticket's Extra, which other
// layers may share (crypto/tls asks for entries recognisable in any order).
var ticketTag = []byte("koi/tls-server-end-point/1:")

// Served is the server certificate a handshake sent, as
// tls-server-end-point needs it; the zero value is unknown.
type Served struct {
	cert *tls.Certificate
	hash []byte // from a resumed session's ticket
}

// CertServed is a handshake that sent cert (nil: unknown).
func CertServed(cert *tls.Certificate) Served { return Served{cert: cert} }

// Known tells whether the certificate is known.
func (s Served) Known() bool { return s.cert != nil || s.hash != nil }

// EndPoint is the certificate's tls-server-end-point binding (EndPointHash).
func (s Served) EndPoint() ([]byte, error) {
	switch {
	case s.hash != nil:
		return slices.Clone(s.hash), nil
	case s.cert != nil:
		return EndPointHash(s.cert)
	}
	return nil, errors.New("tls-server-end-point: the server certificate of this connection is not known")
}

// ServedCertificate returns the certificate a server with cfg sends to
// every client, when cfg alone decides it: exactly one certificate and no
// GetCertificate or GetConfigForClient callback. Otherwise nil: the choice
// depends on the ClientHello, which the connection state does not keep.
func ServedCertificate(cfg *tls.Config) *tls.Certificate {
	if cfg == nil || cfg.GetCertificate != nil || cfg.GetConfigForClient != nil || len(cfg.Certificates) != 1 {
		return nil
	}
	return &cfg.Certificates[0]
}

// RecordServed returns the config to hand to tls.Server, with a
// HandshakeConn as the connection, for every connection of a listener:
// with it, HandshakeConn.Served knows which certificate each handshake
// sent, resumed sessions included. When ServedCertificate already knows,
// or cfg has a GetConfigForClient callback (whose config we cannot see
// into) or no GetCertificate, cfg is returned unchanged. Otherwise it is
// one clone, made here for all connections, whose GetConfigForClient gives
// each HandshakeConn a config of its own: GetCertificate records what
// cfg's returns, and the session tickets carry the hash of the certificate
// sent (see ticketTag). The tickets are sealed with the shared clone's
// keys, so a ticket from one connection resumes on any other; the clone
// starts its own automatic ticket key unless cfg's keys were set with
// SetSessionTicketKeys.
func RecordServed(cfg *tls.Config) *tls.Config {
	if cfg == nil || ServedCertificate(cfg) != nil || cfg.GetConfigForClient != nil || cfg.GetCertificate == nil {
		return cfg
	}
	shared := cfg.Clone()
	shared.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		h, ok := hello.Conn.(*HandshakeConn)
		if !ok {
			return nil, nil
		}
		return h.config(cfg, shared), nil
	}
	return shared
}

// config is the handshake's own config: cfg recording into h, its tickets
// sealed and opened with shared's keys.
func (h *HandshakeConn) config(cfg, shared *tls.Config) *tls.Config {
	c := cfg.Clone()
	get := cfg.GetCertificate
	c.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		cert, err := get(hello)
		switch {
		case err != nil:
			h.setServed(nil)
		case cert != nil:
			h.setServed(cert)
		}
		return cert, err
	}
	if len(cfg.Certificates) == 1 {
		h.mu.Lock()
		h.fallback = &c.Certificates[0]
		h.mu.Unlock()
	}
	c.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
		if ep, err := h.Served(nil, cs).EndPoint(); err == nil {
			ss.Extra = append(ss.Extra, append(slices.Clip(ticketTag), ep...))
		}
		return shared.EncryptTicket(cs, ss)
	}
	c.UnwrapSession = func(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
		ss, err := shared.DecryptTicket(identity, cs)
		if err != nil || ss == nil {
			return ss, err
		}
		// Go tries the client's tickets in turn and resumes the first it
		// can: the last one opened is the one resumed, if any.
		var ep []byte
		for _, e := range ss.Extra {
			if hash, ok := bytes.CutPrefix(e, ticketTag); ok && len(hash) > 0 {
				ep = slices.Clone(hash)
			}
		}
		h.mu.Lock()
		h.resumed = ep
		h.mu.Unlock()
		return ss, nil
	}
	return c
}

func (h *HandshakeConn) setServed(c *tls.Certificate) {
	h.mu.Lock()
	h.served, h.servedSet = c, true
	h.mu.Unlock()
}

// Served returns the certificate the completed handshake over h sent, with
// cfg the config given to tls.Server (made by RecordServed) and cs the
// connection's state. A resumed session sent none: it is the one its
// ticket names, if the ticket was issued through RecordServed.
func (h *HandshakeConn) Served(cfg *tls.Config, cs tls.ConnectionState) Served {
	if c := ServedCertificate(cfg); c != nil {
		return Served{cert: c}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case cs.DidResume:
		return Served{hash: h.resumed}
	case h.servedSet:
		return Served{cert: h.served}
	case h.fallback != nil:
		return Served{cert: h.fallback}
	case cfg != nil && cfg.GetConfigForClient == nil && len(cfg.Certificates) == 1:
		// GetCertificate was not asked (no server name) or returned nil:
		// Go sent the one certificate.
		return Served{cert: &cfg.Certificates[0]}
	}
	return Served{}
}
