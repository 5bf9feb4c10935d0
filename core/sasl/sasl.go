// Package sasl is the server side of SASL for client-to-server XMPP streams
// (RFC 6120 §6). It offers SCRAM-SHA-256 and SCRAM-SHA-1 (RFC 5802, RFC
// 7677), their -PLUS variants with channel binding (RFC 5056, RFC 9266), and
// PLAIN (RFC 4616), all checked against an account backend that keeps SCRAM
// keys or can verify a password, never against a password held here.
//
// The package speaks raw SASL bytes: the caller decodes and encodes base64,
// writes <challenge/>, <success/> and <failure/>, and handles <abort/>.
package sasl

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/xdg-go/scram"

	"github.com/koi-im/koi/sdk"
)

// Mechanism names.
const (
	SCRAMSHA256Plus = "SCRAM-SHA-256-PLUS"
	SCRAMSHA1Plus   = "SCRAM-SHA-1-PLUS"
	SCRAMSHA256     = "SCRAM-SHA-256"
	SCRAMSHA1       = "SCRAM-SHA-1"
	Plain           = "PLAIN"
)

// Channel binding types a connection may support.
const (
	CBTLSExporter       = "tls-exporter"         // RFC 9266: TLS 1.3, or 1.2 with extended master secret
	CBTLSServerEndPoint = "tls-server-end-point" // RFC 5929: a hash of the server's certificate
	CBTLSUnique         = "tls-unique"           // RFC 5929: TLS 1.2 and older only
)

// Channel binding modes (host channel_binding).
const (
	// CBPrefer offers the -PLUS mechanisms next to the others; see
	// Options.CBTypeMismatch for when a client may go without.
	CBPrefer = "prefer"
	// CBRequire offers only the -PLUS mechanisms: a client that cannot bind,
	// or any client without TLS, cannot log in.
	CBRequire = "require"
	// CBOff never offers -PLUS nor uses channel binding.
	CBOff = "off"
)

// maxMessage bounds one client message. Real SCRAM and PLAIN messages are a
// few hundred bytes; the limit keeps a hostile client from making the
// backend hash megabytes of "password".
const maxMessage = 8 << 10

// Store is what the mechanisms need from the account backend. user is the
// raw SASL authcid (after SCRAM's =2C/=3D decoding); the Store normalises it
// with the PRECIS UsernameCaseMapped profile, which the fake salts for
// unknown users assume.
type Store interface {
	// CheckPassword verifies a plain-text password; false, nil for a wrong
	// password or an unknown user.
	CheckPassword(ctx context.Context, user, password string) (ok bool, err error)
	// SCRAMCredentials returns the stored keys for hash (sdk.HashSHA1 or
	// sdk.HashSHA256), or an error wrapping sdk.ErrNotFound for an unknown
	// user.
	SCRAMCredentials(ctx context.Context, user, hash string) (sdk.SCRAMCredentials, error)
}

// Options describe what the backend and the connection allow.
type Options struct {
	// SCRAM: the backend keeps SCRAM credentials (else only PLAIN is offered).
	SCRAM bool
	// TLS: the stream is encrypted. PLAIN and the -PLUS mechanisms are only
	// offered over TLS.
	TLS bool
	// ChannelBinding returns the channel binding data of the connection for
	// cbType, or an error if the connection cannot give it (tls-unique on
	// TLS 1.3, for example). The error's message is sent to the client as
	// the failure text, so it should name the type and the types on offer
	// and must hold nothing secret. nil means the -PLUS mechanisms are not
	// offered.
	ChannelBinding func(cbType string) ([]byte, error)
	// CBTypes lists the channel binding types the connection advertises
	// with XEP-0440. Any type ChannelBinding can produce is accepted, even
	// one not advertised (tls-unique on TLS 1.3, see package tlscb).
	CBTypes []string
	// CBMode is CBPrefer (also for ""), CBRequire or CBOff.
	CBMode string
	// CBTypeMismatch: an earlier -PLUS attempt on this stream failed only
	// because the connection could not give the binding type the client
	// asked for. In CBPrefer mode a client may then use the gs2 flag "y"
	// (I could bind, but think you cannot) with a mechanism without -PLUS:
	// both sides have just shown that they share no type, so there is no
	// downgrade to detect. The README ("Channel binding") weighs the cost.
	CBTypeMismatch bool
	// FakeIterations is the PBKDF2 iteration count shown to unknown users in
	// the fake SCRAM exchange. Set it to what the backend uses, so that an
	// unknown user looks like a real one; 0 means sdk.DefaultSCRAMIterations.
	FakeIterations int
}

func (o Options) plusOffered() bool {
	return o.SCRAM && o.TLS && o.ChannelBinding != nil && o.CBMode != CBOff
}

// Mechanisms returns the mechanisms to offer, in preference order:
// SCRAM-SHA-256-PLUS, SCRAM-SHA-1-PLUS (with channel binding over TLS),
// SCRAM-SHA-256, SCRAM-SHA-1 (if the backend keeps SCRAM keys), PLAIN (over
// TLS only). In CBRequire mode only the -PLUS ones, which may leave none.
func Mechanisms(o Options) []string {
	var m []string
	if o.plusOffered() {
		m = append(m, SCRAMSHA256Plus, SCRAMSHA1Plus)
	}
	if o.CBMode == CBRequire {
		return m
	}
	if o.SCRAM {
		m = append(m, SCRAMSHA256, SCRAMSHA1)
	}
	if o.TLS {
		m = append(m, Plain)
	}
	return m
}

// Failure conditions of RFC 6120 §6.5.
const (
	CondAborted              = "aborted"
	CondAccountDisabled      = "account-disabled"
	CondCredentialsExpired   = "credentials-expired"
	CondEncryptionRequired   = "encryption-required"
	CondIncorrectEncoding    = "incorrect-encoding"
	CondInvalidAuthzid       = "invalid-authzid"
	CondInvalidMechanism     = "invalid-mechanism"
	CondMalformedRequest     = "malformed-request"
	CondMechanismTooWeak     = "mechanism-too-weak"
	CondNotAuthorized        = "not-authorized"
	CondTemporaryAuthFailure = "temporary-auth-failure"
)

// Failure is a failed negotiation. Condition and Text may be sent to the
// client in <failure/>; Err is the internal cause, for logs only: it tells an
// unknown user from a wrong password, which the client must not learn.
type Failure struct {
	Condition string // an RFC 6120 §6.5 condition name, one of the Cond constants
	Text      string // optional human-readable text, safe to send
	Err       error  // optional cause, never sent

	kind failureKind // set where the failure is made; the zero value is "other"
}

type failureKind int

const (
	kindOther          failureKind = iota
	kindBadCredentials             // a wrong SCRAM proof or PLAIN password, or an unknown user
	kindCBType                     // the connection cannot give the binding type asked for
)

// BadCredentials reports whether the client proved nothing because its
// credentials are wrong: a SCRAM proof that does not verify, a PLAIN
// password the backend rejects, an unknown user (which SCRAM cannot tell
// from a wrong password anyway). These are what a password guesser causes,
// and what a login throttle should count. Everything else is false: an
// unsupported channel binding type, a downgrade, wrong channel binding data,
// malformed messages, an abort, an invalid mechanism, a backend failure.
func (f *Failure) BadCredentials() bool { return f != nil && f.kind == kindBadCredentials }

// ChannelBindingTypeMismatch reports whether a -PLUS exchange failed only
// because the connection cannot give the binding type the client asked for.
// The caller remembers it for Options.CBTypeMismatch.
func (f *Failure) ChannelBindingTypeMismatch() bool { return f != nil && f.kind == kindCBType }

func (f *Failure) Error() string {
	s := "sasl: " + f.Condition
	if f.Text != "" {
		s += ": " + f.Text
	}
	if f.Err != nil {
		s += ": " + f.Err.Error()
	}
	return s
}

// Unwrap gives the cause, so that errors.Is(err, sdk.ErrUnavailable) works.
func (f *Failure) Unwrap() error { return f.Err }

func fail(cond, text string, err error) *Failure {
	return &Failure{Condition: cond, Text: text, Err: err}
}

type state int

const (
	stateStart      state = iota // nothing received yet
	stateInitial                 // sent an empty challenge, waiting for the first message
	stateSCRAMFinal              // sent server-first, waiting for client-final
	stateDone                    // succeeded
	stateFailed                  // failed; every further Step fails
)

// Negotiator runs one SASL exchange for one mechanism. It is not safe for
// concurrent use; a stream negotiates one exchange at a time anyway.
type Negotiator struct {
	mech  string
	store Store
	opts  Options

	hashName string // sdk.HashSHA1 or sdk.HashSHA256; "" for PLAIN
	hashGen  scram.HashGeneratorFcn
	plus     bool

	nonceGen func() string // nil: xdg-go's random nonces; tests set it to replay an exchange

	state     state
	conv      *scram.ServerConversation
	ctx       context.Context // valid only during Step: xdg-go's lookup has no context
	fake      bool            // the user is unknown: the exchange must fail at the end
	cause     error           // why the lookup chose the fake path, for the log
	lookupErr error           // a backend failure seen by the credential lookup
	username  string
	authzid   string
	cbType    string // the channel binding type of a -PLUS exchange
}

// New starts an exchange for mechanism. It fails with invalid-mechanism when
// mechanism is not one Mechanisms(o) offers, except PLAIN without TLS, which
// fails with encryption-required.
func New(mechanism string, store Store, o Options) (*Negotiator, error) {
	if store == nil {
		return nil, fail(CondTemporaryAuthFailure, "", errors.New("sasl: nil Store"))
	}
	if !slices.Contains(Mechanisms(o), mechanism) {
		if mechanism == Plain && !o.TLS && o.CBMode != CBRequire {
			return nil, fail(CondEncryptionRequired, "PLAIN requires TLS", nil)
		}
		return nil, fail(CondInvalidMechanism, "", fmt.Errorf("mechanism %q not offered", mechanism))
	}
	n := &Negotiator{mech: mechanism, store: store, opts: o}
	switch mechanism {
	case SCRAMSHA256Plus, SCRAMSHA256:
		n.hashName, n.hashGen = sdk.HashSHA256, scram.SHA256
	case SCRAMSHA1Plus, SCRAMSHA1:
		n.hashName, n.hashGen = sdk.HashSHA1, scram.SHA1
	}
	n.plus = mechanism == SCRAMSHA256Plus || mechanism == SCRAMSHA1Plus
	return n, nil
}

// Mechanism returns the mechanism this exchange runs.
func (n *Negotiator) Mechanism() string { return n.mech }

// Username returns the authenticated authcid, raw as the client sent it
// (the Store normalised it to check it), once Step reported success; ""
// before.
func (n *Negotiator) Username() string {
	if n.state != stateDone {
		return ""
	}
	return n.username
}

// Authcid returns the authentication identity the client claimed so far,
// raw, whether or not the exchange succeeded ("" before the client named
// one). It is for counting failures per account, never for authorisation.
func (n *Negotiator) Authcid() string { return n.username }

// ChannelBinding returns the channel binding type the exchange uses, ""
// for none.
func (n *Negotiator) ChannelBinding() string { return n.cbType }

// Authzid returns the authorization identity the client asked for, "" if
// none. The caller must check that it is empty or the user's own bare JID and
// otherwise fail with invalid-authzid.
func (n *Negotiator) Authzid() string { return n.authzid }

// Step takes one client message (already base64-decoded; an empty first
// message means "no initial response" and is answered with an empty
// challenge) and returns the next challenge. On success done is true and
// challenge holds the additional data for <success/> (SCRAM's server-final
// "v=…"; empty for PLAIN). Every error is a *Failure, after which the
// exchange is over.
func (n *Negotiator) Step(ctx context.Context, in []byte) (challenge []byte, done bool, err error) {
	switch n.state {
	case stateDone, stateFailed:
		return nil, false, fail(CondMalformedRequest, "exchange already finished", nil)
	}
	challenge, done, f := n.step(ctx, in)
	if f != nil {
		n.state = stateFailed
		return nil, false, f
	}
	if done {
		n.state = stateDone
	}
	return challenge, done, nil
}

func (n *Negotiator) step(ctx context.Context, in []byte) ([]byte, bool, *Failure) {
	if len(in) == 0 {
		if n.state == stateStart {
			n.state = stateInitial
			return []byte{}, false, nil
		}
		return nil, false, fail(CondMalformedRequest, "empty response", nil)
	}
	if len(in) > maxMessage {
		return nil, false, fail(CondMalformedRequest, "response too long", nil)
	}
	if err := ctx.Err(); err != nil {
		return nil, false, fail(CondTemporaryAuthFailure, "", err)
	}
	if n.mech == Plain {
		return n.plain(ctx, in)
	}
	if n.state == stateSCRAMFinal {
		return n.scramFinal(ctx, in)
	}
	return n.scramFirst(ctx, in)
}

// backendFailure maps a backend error that is not "no such user" to a
// failure; the caller logs Err.
func backendFailure(err error) *Failure {
	return fail(CondTemporaryAuthFailure, "", fmt.Errorf("backend: %w", err))
}

func validUTF8NoNUL(b []byte) bool {
	return utf8.Valid(b) && !slices.Contains(b, 0)
}
