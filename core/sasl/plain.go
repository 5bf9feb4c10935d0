package sasl

import (
	"bytes"
	"context"
	"errors"
	"unicode/utf8"

	"github.com/koi-im/koi/sdk"
)

// plain runs RFC 4616: message = [authzid] NUL authcid NUL passwd.
func (n *Negotiator) plain(ctx context.Context, in []byte) ([]byte, bool, *Failure) {
	parts := bytes.Split(in, []byte{0})
	if len(parts) != 3 {
		return nil, false, fail(CondMalformedRequest, "PLAIN wants authzid NUL authcid NUL password", nil)
	}
	if !utf8.Valid(in) {
		return nil, false, fail(CondMalformedRequest, "PLAIN message is not UTF-8", nil)
	}
	authzid, user, pass := string(parts[0]), string(parts[1]), string(parts[2])
	if user == "" {
		return nil, false, fail(CondMalformedRequest, "empty authcid", nil)
	}
	n.authzid = authzid
	n.username = user
	if pass == "" {
		// Never ask the backend: some (LDAP) treat an empty password as an
		// anonymous bind that "succeeds".
		return nil, false, badCredentials(errors.New("empty password"))
	}
	ok, err := n.store.CheckPassword(ctx, user, pass)
	switch {
	case err != nil && (errors.Is(err, sdk.ErrNotFound) || errors.Is(err, sdk.ErrInvalid)):
		return nil, false, badCredentials(err)
	case err != nil:
		return nil, false, backendFailure(err)
	case !ok:
		return nil, false, badCredentials(errors.New("wrong password or unknown user"))
	}
	return []byte{}, true, nil
}

func badCredentials(err error) *Failure {
	f := fail(CondNotAuthorized, "", err)
	f.kind = kindBadCredentials
	return f
}

// BadCredentials returns a not-authorized failure that counts as wrong
// credentials (Failure.BadCredentials), for mechanisms outside this package
// (FAST tokens) that the login throttle must count the same way.
func BadCredentials(err error) *Failure { return badCredentials(err) }
