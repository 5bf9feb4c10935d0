package c2s

import (
	"crypto/tls"
	"errors"
	"time"

	"github.com/koi-im/koi/core/sasl"
	"github.com/koi-im/koi/core/tlscb"
)

// startTLS runs the server side of the TLS handshake and remembers which
// certificate it sent, for tls-server-end-point.
func (c *conn) startTLS() error {
	if c.srv.cfg.TLS == nil {
		return errors.New("no TLS configuration")
	}
	hc := tlscb.NewHandshakeConn(c.nc)
	tc := tls.Server(hc, c.srv.cfg.TLS)
	tc.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := tc.Handshake(); err != nil {
		hc.Forget(c.srv.keyLog)
		return err
	}
	tc.SetDeadline(time.Time{})
	c.rdl = 0 // the handshake moved them
	c.wmu.Lock()
	c.out.wdl = 0
	c.nc = tc
	c.wmu.Unlock()
	c.encrypted = true
	c.served = hc.Served(c.srv.cfg.TLS, tc.ConnectionState())
	c.finished = hc.ClientFinished(tc.ConnectionState(), c.srv.keyLog)
	return nil
}

// saslOptions describes what SASL may offer on this connection now. The
// bindings are computed on each call rather than kept: a login asks two or
// three times, and an idle session should not hold them.
func (c *conn) saslOptions() sasl.Options {
	o := sasl.Options{
		SCRAM: c.host.SCRAM(), TLS: c.encrypted,
		CBMode: c.host.ChannelBinding(), CBTypeMismatch: c.cbMismatch,
	}
	if tc, ok := c.nc.(*tls.Conn); ok && o.CBMode != sasl.CBOff {
		b := tlscb.New(tc.ConnectionState(), c.served).WithClientFinished(c.finished)
		if o.CBTypes = b.Types(); len(o.CBTypes) > 0 {
			o.ChannelBinding = b.Data
		}
	}
	return o
}

// saslFailed notes a failed exchange: a -PLUS attempt that failed only for
// want of its binding type lets the client go without binding on this
// stream (sasl.Options.CBTypeMismatch).
func (c *conn) saslFailed(f *sasl.Failure) {
	c.srv.cfg.Observer.Login(LoginFailure)
	if f.ChannelBindingTypeMismatch() {
		c.cbMismatch = true
	}
}

// logAuthenticated writes the one line per login that says how the client
// got in; tooling parses its message and keys, so keep them.
func (c *conn) logAuthenticated(n exchange) {
	c.srv.cfg.Observer.Login(LoginSuccess)
	cb := n.ChannelBinding()
	if cb == "" {
		cb = "none"
	}
	version := "none"
	if tc, ok := c.nc.(*tls.Conn); ok {
		switch tc.ConnectionState().Version {
		case tls.VersionTLS13:
			version = "1.3"
		case tls.VersionTLS12:
			version = "1.2"
		}
	}
	c.log().Info("authenticated", "mechanism", n.Mechanism(), "channel_binding", cb, "tls", version)
}
