package fast

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/sasl"
)

// Exchange runs one HT-SHA-256-* login: a single client message, authcid
// NUL HMAC(token, "Initiator" || cb-data), answered with HMAC(token,
// "Responder" || cb-data) as the success's additional data. Its failures
// are *sasl.Failure, with wrong tokens counted as wrong credentials.
type Exchange struct {
	m       *Manager
	mech    string
	host    string
	agent   string
	binding func(cbType string) ([]byte, error)

	authcid  string
	username string
	verified Verified
	done     bool
}

// NewExchange starts an HT login for mech on host. agent is the client's
// user-agent id (a token belongs to one); binding gives the connection's
// channel binding data (nil without TLS).
func (m *Manager) NewExchange(mech, host, agent string, binding func(string) ([]byte, error)) (*Exchange, error) {
	cbType, ok := ChannelBindingType(mech)
	switch {
	case !ok:
		return nil, &sasl.Failure{Condition: sasl.CondInvalidMechanism}
	case agent == "":
		return nil, &sasl.Failure{Condition: sasl.CondMalformedRequest, Text: "FAST needs the <user-agent/> id the token was issued to"}
	case cbType != "" && binding == nil:
		return nil, &sasl.Failure{Condition: sasl.CondInvalidMechanism, Text: mech + " needs channel binding, which this connection cannot give"}
	}
	return &Exchange{m: m, mech: mech, host: host, agent: agent, binding: binding}, nil
}

// Mechanism returns the mechanism name.
func (e *Exchange) Mechanism() string { return e.mech }

// Authcid returns the user the client named, raw, succeeded or not.
func (e *Exchange) Authcid() string { return e.authcid }

// Username returns the authenticated user once Step succeeded.
func (e *Exchange) Username() string {
	if !e.done {
		return ""
	}
	return e.username
}

// Authzid is always empty: HT carries none.
func (e *Exchange) Authzid() string { return "" }

// ChannelBinding returns the binding type the mechanism uses, "" for none.
func (e *Exchange) ChannelBinding() string {
	t, _ := ChannelBindingType(e.mech)
	return t
}

// Verified returns the token that logged in, after success.
func (e *Exchange) Verified() Verified { return e.verified }

// Step takes the client's one message and returns the server's answer.
func (e *Exchange) Step(ctx context.Context, in []byte) ([]byte, bool, error) {
	if e.done || e.authcid != "" {
		return nil, false, &sasl.Failure{Condition: sasl.CondMalformedRequest, Text: "exchange already finished"}
	}
	i := bytes.IndexByte(in, 0)
	if i <= 0 || len(in)-i-1 != 32 || !utf8.Valid(in[:i]) {
		return nil, false, &sasl.Failure{Condition: sasl.CondMalformedRequest, Text: "HT wants authcid NUL a 32-byte HMAC-SHA-256"}
	}
	e.authcid = string(in[:i])
	proof := in[i+1:]
	user, err := jid.NormalizeLocal(e.authcid)
	if err != nil {
		return nil, false, sasl.BadCredentials(fmt.Errorf("authcid: %w", err))
	}
	var cb []byte
	if t := e.ChannelBinding(); t != "" {
		if cb, err = e.binding(t); err != nil {
			return nil, false, &sasl.Failure{Condition: sasl.CondNotAuthorized, Text: err.Error()}
		}
	}
	v, err := e.m.Verify(ctx, user+"@"+e.host, e.agent, e.mech, cb, proof)
	switch {
	case errors.Is(err, ErrBadToken):
		return nil, false, sasl.BadCredentials(err)
	case err != nil:
		return nil, false, &sasl.Failure{Condition: sasl.CondTemporaryAuthFailure, Err: err}
	}
	e.username, e.verified, e.done = user, v, true
	return Proof(v.Secret, "Responder", cb), true, nil
}
