package sasl

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/xdg-go/scram"
	"golang.org/x/text/secure/precis"

	"github.com/koi-im/koi/sdk"
)

// fakeKey keys the HMAC that derives fake salts for unknown users. It is
// fixed for the life of the process so that asking twice for the same
// unknown user shows the same salt, as a real user's would; a restart changes
// it, as a password change changes a real salt.
var fakeKey = sync.OnceValue(func() []byte {
	k := make([]byte, 32)
	rand.Read(k) // never fails since Go 1.24
	return k
})

// scramFirst handles client-first-message and answers server-first-message.
func (n *Negotiator) scramFirst(ctx context.Context, in []byte) ([]byte, bool, *Failure) {
	flag, cbType, f := checkClientFirst(in)
	if f != nil {
		return nil, false, f
	}
	srv, err := n.hashGen.NewServer(n.lookup)
	if err != nil {
		return nil, false, fail(CondTemporaryAuthFailure, "", err)
	}
	if n.nonceGen != nil {
		srv.WithNonceGenerator(n.nonceGen)
	}
	var conv *scram.ServerConversation
	switch flag {
	case "p":
		if !n.plus {
			return nil, false, fail(CondNotAuthorized, "channel binding requested with a mechanism without -PLUS", nil)
		}
		data, f := n.bindingData(cbType)
		if f != nil {
			return nil, false, f
		}
		n.cbType = cbType
		conv = srv.NewConversationWithChannelBinding(scram.ChannelBinding{
			Type: scram.ChannelBindingType(cbType),
			Data: data,
		})
	case "y":
		if n.plus {
			return nil, false, fail(CondNotAuthorized, n.mech+" requires channel binding", nil)
		}
		// RFC 5802 §6: the client can bind but believes we cannot. If we
		// offered -PLUS, someone removed it from the list on the way;
		// unless the client already tried -PLUS on this stream and we
		// could not give the type it asked for (see Options.CBTypeMismatch).
		if n.opts.plusOffered() && !(n.opts.CBTypeMismatch && n.opts.CBMode != CBRequire) {
			return nil, false, fail(CondNotAuthorized, "channel binding downgrade: this server offers "+
				SCRAMSHA256Plus+" and "+SCRAMSHA1Plus, nil)
		}
		conv = srv.NewConversation()
	default: // "n"
		if n.plus {
			return nil, false, fail(CondNotAuthorized, n.mech+" requires channel binding", nil)
		}
		conv = srv.NewConversation()
	}

	n.ctx = ctx
	out, err := conv.Step(string(in))
	n.ctx = nil
	if err != nil {
		if n.lookupErr != nil {
			return nil, false, backendFailure(n.lookupErr)
		}
		switch out {
		case scram.ErrServerDoesSupportChannelBinding, scram.ErrChannelBindingNotSupported:
			return nil, false, fail(CondNotAuthorized, "", err)
		case scram.ErrUnsupportedChannelBindingType:
			// Unreachable: bindingData checked the type first.
			f := fail(CondNotAuthorized, "unsupported channel binding type "+n.cbType, err)
			f.kind = kindCBType
			return nil, false, f
		}
		return nil, false, fail(CondMalformedRequest, "bad client-first-message", err)
	}
	n.conv = conv
	n.username = conv.Username()
	n.authzid = conv.AuthzID()
	n.state = stateSCRAMFinal
	return []byte(out), false, nil
}

// bindingData returns the channel binding data for cbType, or the failure
// naming the type and the types on offer.
func (n *Negotiator) bindingData(cbType string) ([]byte, *Failure) {
	data, err := n.opts.ChannelBinding(cbType)
	if err == nil && len(data) == 0 {
		err = fmt.Errorf("channel binding type %s gave no data", cbType)
	}
	if err != nil {
		f := fail(CondNotAuthorized, err.Error(), err)
		f.kind = kindCBType
		return nil, f
	}
	return data, nil
}

// scramFinal checks client-final-message and answers server-final-message.
func (n *Negotiator) scramFinal(_ context.Context, in []byte) ([]byte, bool, *Failure) {
	if f := checkClientFinal(in, n.hashGen().Size()); f != nil {
		return nil, false, f
	}
	out, err := n.conv.Step(string(in))
	if err != nil {
		if out == "" {
			return nil, false, fail(CondMalformedRequest, "bad client-final-message", err)
		}
		// A wrong proof, wrong channel binding data or a nonce that is not
		// ours: all the same to the client. The log learns more.
		if n.fake {
			err = n.cause
		}
		f := fail(CondNotAuthorized, "", err)
		// Only a proof that does not verify says the password (or the
		// user) is wrong: xdg-go checks the binding data and the nonce
		// before the proof, so their failures tell a guesser nothing.
		if out == scram.ErrInvalidProof {
			f.kind = kindBadCredentials
		}
		return nil, false, f
	}
	if n.fake {
		// Unreachable short of a SHA collision, but the fake keys must
		// never let anyone in.
		return nil, false, fail(CondNotAuthorized, "", n.cause)
	}
	return []byte(out), true, nil
}

// lookup is the xdg-go credential callback. It hides unknown users behind
// fake credentials so that they cost the same exchange as real ones and fail
// at the same step, with the same condition, as a wrong password.
func (n *Negotiator) lookup(user string) (scram.StoredCredentials, error) {
	size := n.hashGen().Size()
	c, err := n.store.SCRAMCredentials(n.ctx, user, n.hashName)
	switch {
	case err == nil:
		if c.Iterations < 1 || len(c.Salt) == 0 || len(c.StoredKey) != size || len(c.ServerKey) != size {
			n.lookupErr = fmt.Errorf("unusable %s credentials for %q", n.hashName, user)
			return scram.StoredCredentials{}, n.lookupErr
		}
		return scram.StoredCredentials{
			KeyFactors: scram.KeyFactors{Salt: string(c.Salt), Iters: c.Iterations},
			StoredKey:  c.StoredKey,
			ServerKey:  c.ServerKey,
		}, nil
	case errors.Is(err, sdk.ErrNotFound), errors.Is(err, sdk.ErrInvalid):
		// ErrInvalid: a name the backend cannot even normalise; it cannot
		// exist, so it is as unknown as any other.
		n.fake = true
		n.cause = fmt.Errorf("unknown user %q: %w", user, err)
		iters := n.opts.FakeIterations
		if iters < 1 {
			iters = sdk.DefaultSCRAMIterations
		}
		return fakeCredentials(fakeKey(), user, n.hashName, iters, size), nil
	default:
		n.lookupErr = err
		return scram.StoredCredentials{}, err
	}
}

// fakeCredentials makes credentials for an unknown user. The salt is an HMAC
// of the normalised name so that it is stable per user and hash, like a real
// salt; the keys are random, and the exchange is failed anyway.
func fakeCredentials(key []byte, user, hashName string, iters, size int) scram.StoredCredentials {
	// The Store normalises names with UsernameCaseMapped; do the same, or
	// "Alice" and "alice" would get different salts for an unknown user but
	// the same for a real one.
	if p, err := precis.UsernameCaseMapped.String(user); err == nil {
		user = p
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("koi fake SCRAM salt\x00" + hashName + "\x00" + user))
	salt := mac.Sum(nil)[:16]
	keys := make([]byte, 2*size)
	rand.Read(keys)
	return scram.StoredCredentials{
		KeyFactors: scram.KeyFactors{Salt: string(salt), Iters: iters},
		StoredKey:  keys[:size],
		ServerKey:  keys[size:],
	}
}

// checkClientFirst checks the grammar of RFC 5802 §7 that xdg-go's parser
// lets through (empty names and nonces, NULs, bad UTF-8, unknown channel
// binding names) and returns the gs2-cbind-flag ("n", "y" or "p") and, for
// "p", the channel binding type.
func checkClientFirst(in []byte) (flag, cbType string, f *Failure) {
	bad := func(why string) (string, string, *Failure) {
		return "", "", fail(CondMalformedRequest, "bad client-first-message: "+why, nil)
	}
	if !validUTF8NoNUL(in) {
		return bad("not UTF-8 or contains NUL")
	}
	fields := strings.Split(string(in), ",")
	if len(fields) < 4 {
		return bad("too few attributes")
	}
	switch gs2 := fields[0]; {
	case gs2 == "n" || gs2 == "y":
		flag = gs2
	case strings.HasPrefix(gs2, "p="):
		flag, cbType = "p", gs2[2:]
		if !validCBName(cbType) {
			return bad("channel binding name")
		}
	default:
		return bad("gs2-cbind-flag")
	}
	if a := fields[1]; a != "" && (!strings.HasPrefix(a, "a=") || len(a) == 2) {
		return bad("authzid")
	}
	if strings.HasPrefix(fields[2], "m=") {
		return bad("extensions not supported")
	}
	if u := fields[2]; !strings.HasPrefix(u, "n=") || len(u) == 2 {
		return bad("username")
	}
	if r := fields[3]; !strings.HasPrefix(r, "r=") || !validNonce(r[2:]) {
		return bad("nonce")
	}
	return flag, cbType, nil
}

// checkClientFinal checks what xdg-go does not: the message is text, and the
// proof is base64 of exactly one hash (xdg-go reports a short proof as an
// internal error).
func checkClientFinal(in []byte, size int) *Failure {
	bad := func(why string) *Failure {
		return fail(CondMalformedRequest, "bad client-final-message: "+why, nil)
	}
	if !validUTF8NoNUL(in) {
		return bad("not UTF-8 or contains NUL")
	}
	fields := strings.Split(string(in), ",")
	if len(fields) < 3 {
		return bad("too few attributes")
	}
	if !strings.HasPrefix(fields[0], "c=") {
		return bad("channel binding")
	}
	if r := fields[1]; !strings.HasPrefix(r, "r=") || !validNonce(r[2:]) {
		return bad("nonce")
	}
	p, ok := strings.CutPrefix(fields[len(fields)-1], "p=")
	if !ok {
		return bad("proof")
	}
	proof, err := base64.StdEncoding.DecodeString(p)
	if err != nil || len(proof) != size {
		return bad("proof")
	}
	return nil
}

// validNonce: printable ASCII except ",", at least one character.
func validNonce(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}

// validCBName: cb-name = 1*(ALPHA / DIGIT / "." / "-").
func validCBName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}
