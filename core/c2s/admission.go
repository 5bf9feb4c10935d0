package c2s

// Admission of new connections: the per-address connection and login
// rates, and the handshake pool that keeps TLS handshakes and SASL
// verification of new connections from starving established sessions
// (see package admission).

import (
	"context"
	"errors"

	"github.com/koi-im/koi/core/admission"
	"github.com/koi-im/koi/core/sasl"
	"github.com/koi-im/koi/core/xmlstream"
)

// admitConnection applies the per-address connection rate at accept,
// before any TLS: a refused connection costs a few bytes, not a handshake.
// It reports false when the connection was refused and closed.
func (c *conn) admitConnection() bool {
	d := c.srv.cfg.ConnectionRate.Take(c.remoteIP)
	if d == 0 {
		return true
	}
	text := "too many connections from your address; retry in " + retryText(d)
	c.log().Debug("connection refused", "reason", "connection rate", "retry_after", retryText(d))
	if c.mode == TLSDirect {
		// Nothing readable can be sent before TLS, and a handshake is
		// exactly the cost this limit avoids: close.
		c.closed.Store(true)
	} else {
		c.Close("policy-violation", text)
	}
	c.finish()
	return false
}

// admitLogin applies the per-address login rate to a SASL attempt. Over
// the limit the stream ends with policy-violation: a client that logs in
// this often is a storm or a script, and each further exchange would cost
// what the limit saves.
func (c *conn) admitLogin() error {
	d := c.srv.cfg.LoginRate.Take(c.remoteIP)
	if d == 0 {
		return nil
	}
	c.log().Info("login refused", "reason", "login rate", "retry_after", retryText(d))
	c.srv.cfg.Observer.Login(LoginRefused)
	return &xmlstream.Error{Condition: "policy-violation", Text: "too many logins from your address; retry in " + retryText(d)}
}

// directTLS runs the handshake of a direct TLS connection in its place
// in the handshake pool and reports whether the stream may begin.
func (c *conn) directTLS() bool {
	release, err := c.handshakeSlot()
	if err != nil {
		// No XML before TLS: the client just sees the close.
		c.closed.Store(true)
		return false
	}
	err = c.startTLS()
	release()
	if err != nil {
		c.log().Debug("direct TLS handshake failed", "error", err)
		return false
	}
	return true
}

// handshakeSlot waits for a place in the handshake pool. A refusal comes
// back as a stream error (resource-constraint) saying when to retry.
func (c *conn) handshakeSlot() (func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	release, err := c.srv.cfg.Handshakes.Acquire(ctx)
	if err != nil {
		c.log().Debug("handshake refused", "error", err)
		return nil, &xmlstream.Error{Condition: "resource-constraint", Text: c.busyText()}
	}
	return release, nil
}

func (c *conn) busyText() string {
	return "server busy with new connections; retry in " + retryText(c.srv.cfg.Handshakes.RetryAfter())
}

// saslStep runs one step of a SASL mechanism inside the handshake pool:
// verifying a SCRAM proof or a PLAIN password is the CPU-heavy part of a
// login. errBusy says the pool turned the step away.
func (c *conn) saslStep(ctx context.Context, n *sasl.Negotiator, in []byte) (out []byte, done bool, err error) {
	release, err := c.srv.cfg.Handshakes.Acquire(ctx)
	if err != nil {
		if errors.Is(err, admission.ErrBusy) {
			c.log().Debug("SASL step refused", "error", err)
			return nil, false, errBusy
		}
		return nil, false, err
	}
	defer release()
	return n.Step(ctx, in)
}

// errBusy is what saslStep returns when the handshake pool is full.
var errBusy = errors.New("handshake pool full")
