package c2s

// Authentication on a stream: SASL exchanges (RFC 6120 §6), the login
// throttle around them, and in-band registration before login (XEP-0077).

import (
	"context"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/sasl"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/throttle"
	"github.com/koi-im/koi/core/tlscb"
	"github.com/koi-im/koi/core/xmlstream"
)

func (c *conn) preAuthIQ(iq *xmlstream.Element) error {
	q := iq.FirstChild()
	if q == nil || q.Space != nsRegister || (c.tlsPending() && c.mode != TLSDisabled) {
		return &xmlstream.Error{Condition: "not-authorized", Text: "authenticate first"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg := c.srv.cfg.Registrations
	if d := retryAfter(reg, c.remoteIP); iq.Attr("type") == "set" && d > 0 {
		c.log().Info("registration refused", "reason", "throttled", "retry_after", retryText(d))
		return c.writeRaw(stanza.ErrorReply(iq, stanza.ErrPolicyViolation.WithText("too many registrations from your address; try again in "+retryText(d))).AppendXML(nil, xmlstream.NSClient))
	}
	reply := c.host.PreAuthIQ(ctx, iq, c.remoteIP)
	if reg != nil && iq.Attr("type") == "set" && reply.Attr("type") == "result" {
		reg.Fail(c.remoteIP) // counts registrations, not failures
	}
	return c.writeRaw(reply.AppendXML(nil, xmlstream.NSClient))
}

func (c *conn) saslFailure(f *sasl.Failure) error {
	el := xmlstream.NewElement(nsSASL, "failure").AppendChild(xmlstream.NewElement(nsSASL, f.Condition))
	if f.Text != "" {
		el.AppendChild(xmlstream.NewElement(nsSASL, "text").AppendText(f.Text))
	}
	return c.writeRaw(el.AppendXML(nil, xmlstream.NSClient))
}

// authenticate runs one SASL exchange. It returns false after a failure
// that leaves the stream usable for another attempt.
func (c *conn) authenticate(auth *xmlstream.Element) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.admitLogin(); err != nil {
		return false, err
	}
	if d, ok := c.srv.cfg.Guard.CheckAddress(c.remoteIP); !ok {
		c.log().Info("login refused", "reason", "throttled: too many wrong credentials from this address", "retry_after", retryText(d))
		c.srv.cfg.Observer.Login(LoginRefused)
		return false, c.saslFailure(&sasl.Failure{Condition: "temporary-auth-failure", Text: "too many failed logins from your address; try again in " + retryText(d)})
	}
	n, err := sasl.New(auth.Attr("mechanism"), c.host.SASLStore(), c.saslOptions())
	if err != nil {
		var f *sasl.Failure
		if !errors.As(err, &f) {
			f = &sasl.Failure{Condition: "invalid-mechanism"}
		}
		return false, c.saslFailure(f)
	}
	in, ok := decodeSASL(auth.Text())
	if !ok {
		return false, c.saslFailure(&sasl.Failure{Condition: "incorrect-encoding"})
	}
	if strings.TrimSpace(auth.Text()) == "" {
		// No initial response: ask for it with an empty challenge.
		if err := c.writeRaw([]byte("<challenge xmlns='" + nsSASL + "'/>")); err != nil {
			return false, err
		}
		resp, err := c.readSASL()
		if err != nil || resp == nil {
			return false, err
		}
		if in, ok = decodeSASL(resp.Text()); !ok {
			return false, c.saslFailure(&sasl.Failure{Condition: "incorrect-encoding"})
		}
	}
	for {
		out, done, err := c.saslStep(ctx, n, in)
		if errors.Is(err, errBusy) {
			return false, c.saslFailure(&sasl.Failure{Condition: "temporary-auth-failure", Text: c.busyText()})
		}
		if err != nil {
			var f *sasl.Failure
			if !errors.As(err, &f) {
				f = &sasl.Failure{Condition: "temporary-auth-failure"}
			}
			c.saslFailed(f)
			c.authFailed(ctx, n, f)
			return false, c.saslFailure(f)
		}
		if done {
			c.slowdown(ctx, n.Username())
			return c.authSucceeded(n, out)
		}
		if err := c.writeRaw([]byte("<challenge xmlns='" + nsSASL + "'>" + base64.StdEncoding.EncodeToString(out) + "</challenge>")); err != nil {
			return false, err
		}
		resp, err := c.readSASL()
		if err != nil || resp == nil {
			return false, err
		}
		if in, ok = decodeSASL(resp.Text()); !ok {
			return false, c.saslFailure(&sasl.Failure{Condition: "incorrect-encoding"})
		}
	}
}

// authFailed counts wrong credentials against the login throttle and logs
// every refused login with its reason (never the password). Everything
// that is not wrong credentials (a binding type we cannot do, an abort, a
// malformed message, a backend outage) costs the client nothing.
func (c *conn) authFailed(ctx context.Context, n exchange, f *sasl.Failure) {
	user := n.Authcid()
	account := c.account(user)
	if f.BadCredentials() {
		c.slowdown(ctx, user)
		c.srv.cfg.Guard.Failed(c.remoteIP, account)
		c.log().Info("login refused", "reason", "wrong credentials", "user", user, "host", c.host.Name(), "mechanism", n.Mechanism())
		return
	}
	reason := f.Condition
	if f.Condition == sasl.CondTemporaryAuthFailure {
		reason = "backend unavailable"
	} else if f.Text != "" {
		reason += ": " + f.Text
	}
	kv := []any{"reason", reason, "user", user, "host", c.host.Name(), "mechanism", n.Mechanism()}
	if f.Err != nil {
		kv = append(kv, "error", f.Err)
	}
	c.log().Info("login refused", kv...)
}

// account returns the bare JID of a SASL authcid on this stream's host, ""
// when it cannot be one.
func (c *conn) account(authcid string) string {
	u, err := jid.NormalizeLocal(authcid)
	if authcid == "" || err != nil {
		return ""
	}
	return u + "@" + c.host.Name()
}

// slowdown waits before answering a login to an account that is failing
// from many addresses at once. Success waits as long as failure, so that a
// guesser cannot cut the wait short by timing the answer.
func (c *conn) slowdown(ctx context.Context, authcid string) {
	d := c.srv.cfg.Guard.Slowdown(c.account(authcid))
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func retryAfter(l *throttle.Limiter, key string) time.Duration {
	if l == nil {
		return 0
	}
	return l.RetryAfter(key)
}

// retryText says when to retry, rounded up to whole seconds.
func retryText(d time.Duration) string {
	return strconv.Itoa(int((d+time.Second-1)/time.Second)) + " s"
}

func (c *conn) authSucceeded(n *sasl.Negotiator, additional []byte) (bool, error) {
	user, f := c.admit(n)
	if f != nil {
		return false, c.saslFailure(f)
	}
	el := "<success xmlns='" + nsSASL + "'/>"
	if len(additional) > 0 {
		el = "<success xmlns='" + nsSASL + "'>" + base64.StdEncoding.EncodeToString(additional) + "</success>"
	}
	if err := c.writeRaw([]byte(el)); err != nil {
		return false, err
	}
	c.loggedIn(n, user)
	return true, nil
}

// admit applies what a successful exchange must still pass: the per
// account throttle and the authorization identity. It returns the
// normalised local part of the user.
func (c *conn) admit(n exchange) (string, *sasl.Failure) {
	user, err := jid.NormalizeLocal(n.Username())
	if err != nil {
		return "", &sasl.Failure{Condition: "not-authorized"}
	}
	account := user + "@" + c.host.Name()
	if d, ok := c.srv.cfg.Guard.CheckAccount(c.remoteIP, account); !ok {
		// The password was right, but this address guessed wrong too often:
		// keep refusing until the window passes so guessing cannot succeed.
		c.log().Info("login refused", "reason", "throttled: too many wrong credentials for this account from this address", "user", user, "host", c.host.Name(), "retry_after", retryText(d))
		c.srv.cfg.Observer.Login(LoginRefused)
		return "", &sasl.Failure{Condition: "temporary-auth-failure", Text: "too many failed logins for this account from your address; try again in " + retryText(d)}
	}
	c.srv.cfg.Guard.Succeeded(c.remoteIP, account)
	if az := n.Authzid(); az != "" {
		j, err := jid.Parse(az)
		if err != nil || j != jid.MustParse(user+"@"+c.host.Name()) {
			return "", &sasl.Failure{Condition: "invalid-authzid"}
		}
	}
	return user, nil
}

// loggedIn records the login once the success is on its way.
func (c *conn) loggedIn(n exchange, user string) {
	c.user = user
	c.finished, c.served = nil, tlscb.Served{} // binding is done: an idle session keeps none of it
	c.logAuthenticated(n)
}

// readSASL reads the client's next SASL element: a response, or an abort
// (answered here; nil is returned).
func (c *conn) readSASL() (*xmlstream.Element, error) {
	el, err := c.r.Next()
	if err != nil {
		return nil, err
	}
	switch {
	case el.Space == nsSASL && el.Local == "response":
		return el, nil
	case el.Space == nsSASL && el.Local == "abort":
		return nil, c.saslFailure(&sasl.Failure{Condition: "aborted"})
	}
	return nil, &xmlstream.Error{Condition: "policy-violation", Text: "expected a SASL response"}
}

func decodeSASL(s string) ([]byte, bool) {
	s = strings.TrimSpace(s)
	if s == "" || s == "=" {
		return nil, true
	}
	b, err := base64.StdEncoding.DecodeString(s)
	return b, err == nil
}
