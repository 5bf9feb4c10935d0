// Package fast issues and checks FAST login tokens (XEP-0484) and runs the
// HT-SHA-256-* SASL mechanisms (draft-schmaus-kitten-sasl-ht) they are used
// with inside SASL2 (XEP-0388).
//
// A token is a secret the client keeps and the server can check. The HT
// mechanisms prove it with HMAC-SHA-256(token, "Initiator" || cb-data), so
// the server needs the token itself as the HMAC key at every login: a
// one-way hash of it, which is what a password store keeps, cannot check
// such a proof. koi therefore never stores a token but derives it: token =
// base64url(HMAC-SHA-256(key, owner, agent, salt)), where the key is a
// server secret kept in a file beside the TLS key (not in the backend) and
// salt is random per token. The backend keeps the salt and SHA-256(token);
// a copy of its data lets nobody log in without the key file.
package fast

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/koi-im/koi/core/keyfile"
	"github.com/koi-im/koi/sdk"
)

// NS is the FAST namespace.
const NS = "urn:xmpp:fast:0"

// The HT mechanisms, by channel binding.
const (
	HTNone = "HT-SHA-256-NONE" // no channel binding
	HTUniq = "HT-SHA-256-UNIQ" // tls-unique
	HTExpr = "HT-SHA-256-EXPR" // tls-exporter
	HTEndp = "HT-SHA-256-ENDP" // tls-server-end-point
)

// KeySize is the size of the server key tokens are derived from.
const KeySize = 32

// keepPerAgent is how many tokens an agent keeps: the one it uses and,
// after a rotation, the new one it has not used yet. Issuing a third
// drops the oldest.
const keepPerAgent = 2

// ChannelBindingType returns the channel binding type an HT mechanism
// binds with ("" for HT-SHA-256-NONE) and whether mech is an HT mechanism.
func ChannelBindingType(mech string) (string, bool) {
	switch mech {
	case HTNone:
		return "", true
	case HTUniq:
		return "tls-unique", true
	case HTExpr:
		return "tls-exporter", true
	case HTEndp:
		return "tls-server-end-point", true
	}
	return "", false
}

// Mechanisms returns the HT mechanisms a connection offering the channel
// binding types cbTypes can run, strongest first.
func Mechanisms(cbTypes []string) []string {
	var out []string
	for _, m := range []string{HTExpr, HTEndp, HTUniq} {
		t, _ := ChannelBindingType(m)
		for _, have := range cbTypes {
			if have == t {
				out = append(out, m)
				break
			}
		}
	}
	return append(out, HTNone)
}

// Store is the token storage a Manager needs.
type Store interface {
	sdk.Tokens
	sdk.TokensWriter
}

// ErrBadToken means no live token of the agent matches the proof: wrong,
// expired, revoked, or never issued.
var ErrBadToken = errors.New("fast: no matching token")

// Manager issues, checks, rotates and revokes one host's tokens.
type Manager struct {
	store    Store
	key      []byte
	lifetime time.Duration
	now      func() time.Time
}

// NewManager returns a Manager deriving tokens from key (KeySize bytes)
// and issuing them for lifetime.
func NewManager(store Store, key []byte, lifetime time.Duration) (*Manager, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("fast: the key is %d bytes, want %d", len(key), KeySize)
	}
	if lifetime <= 0 {
		return nil, fmt.Errorf("fast: token lifetime %v is not positive", lifetime)
	}
	return &Manager{store: store, key: bytes.Clone(key), lifetime: lifetime, now: time.Now}, nil
}

// Lifetime is how long an issued token works.
func (m *Manager) Lifetime() time.Duration { return m.lifetime }

// derive computes a token from its owner, agent and salt. Length prefixes
// keep ("a", "bc") and ("ab", "c") apart.
func (m *Manager) derive(owner, agent string, salt []byte) string {
	mac := hmac.New(sha256.New, m.key)
	for _, p := range [][]byte{[]byte("koi FAST token v1"), []byte(owner), []byte(agent), salt} {
		fmt.Fprintf(mac, "%d:", len(p))
		mac.Write(p)
	}
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func hashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// Issue mints a token for owner's agent and mechanism, stores it and
// returns it with its expiry. The agent's previous token keeps working
// until the new one is used (Verify), so a client that loses the answer
// is not locked out; older ones are dropped.
func (m *Manager) Issue(ctx context.Context, owner, agent, mech string) (string, time.Time, error) {
	if _, ok := ChannelBindingType(mech); !ok {
		return "", time.Time{}, fmt.Errorf("fast: %q is not an HT mechanism", mech)
	}
	salt := make([]byte, 16)
	rand.Read(salt)
	token := m.derive(owner, agent, salt)
	// Whole seconds: XEP-0082 timestamps, and every backend keeps them.
	expires := m.now().Add(m.lifetime).Truncate(time.Second).UTC()
	// A later expiry is what makes a token the newer one (Verify drops
	// older ones): two issues in one second must still be ordered.
	prev, err := m.store.GetTokens(ctx, owner, agent)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("fast: listing tokens: %w", err)
	}
	for _, o := range prev {
		if !o.Expires.Before(expires) {
			expires = o.Expires.Add(time.Second)
		}
	}
	t := sdk.Token{Owner: owner, Agent: agent, Hash: hashToken(token), Salt: salt, Mechanism: mech, Expires: expires}
	if err := m.store.PutToken(ctx, t); err != nil {
		return "", time.Time{}, fmt.Errorf("fast: storing a token: %w", err)
	}
	toks, err := m.store.GetTokens(ctx, owner, agent)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("fast: listing tokens: %w", err)
	}
	kept := 0
	for _, o := range toks {
		// The new token first: equal expiries (two issues in one second)
		// must not drop it.
		if bytes.Equal(o.Hash, t.Hash) {
			continue
		}
		if kept++; kept >= keepPerAgent {
			if err := m.store.DeleteToken(ctx, owner, agent, o.Hash); err != nil {
				return "", time.Time{}, fmt.Errorf("fast: dropping an old token: %w", err)
			}
		}
	}
	return token, expires, nil
}

// Verified is a token that proved itself.
type Verified struct {
	Token sdk.Token
	// Secret is the token, for the server's answer.
	Secret string
}

// RotateDue reports whether the token is past half its lifetime, when a
// login with it gets a fresh one unasked.
func (v Verified) RotateDue(now time.Time, lifetime time.Duration) bool {
	return v.Token.Expires.Sub(now) < lifetime/2
}

// Verify finds the agent's live token whose proof for mech and cbData is
// proof. Expired tokens it meets are deleted. Using a token drops the
// agent's older ones: that completes a rotation. It returns ErrBadToken
// when nothing matches, and wraps the backend's error otherwise.
func (m *Manager) Verify(ctx context.Context, owner, agent, mech string, cbData, proof []byte) (Verified, error) {
	toks, err := m.store.GetTokens(ctx, owner, agent)
	if err != nil {
		return Verified{}, fmt.Errorf("fast: listing tokens: %w", err)
	}
	now := m.now()
	var found *Verified
	for _, t := range toks {
		if !now.Before(t.Expires) {
			if err := m.store.DeleteToken(ctx, owner, agent, t.Hash); err != nil {
				return Verified{}, fmt.Errorf("fast: deleting an expired token: %w", err)
			}
			continue
		}
		secret := m.derive(owner, agent, t.Salt)
		// A token made under another key (the key file was replaced)
		// derives to something else: it no longer exists.
		if subtle.ConstantTimeCompare(hashToken(secret), t.Hash) != 1 || t.Mechanism != mech {
			continue
		}
		if hmac.Equal(Proof(secret, "Initiator", cbData), proof) && found == nil {
			found = &Verified{Token: t, Secret: secret}
		}
	}
	if found == nil {
		return Verified{}, ErrBadToken
	}
	for _, t := range toks {
		if t.Expires.Before(found.Token.Expires) && now.Before(t.Expires) {
			if err := m.store.DeleteToken(ctx, owner, agent, t.Hash); err != nil {
				return Verified{}, fmt.Errorf("fast: dropping a rotated token: %w", err)
			}
		}
	}
	return *found, nil
}

// Invalidate deletes one token (the client asked, XEP-0484 invalidate).
func (m *Manager) Invalidate(ctx context.Context, t sdk.Token) error {
	if err := m.store.DeleteToken(ctx, t.Owner, t.Agent, t.Hash); err != nil {
		return fmt.Errorf("fast: invalidating a token: %w", err)
	}
	return nil
}

// RevokeAll deletes every token of owner.
func (m *Manager) RevokeAll(ctx context.Context, owner string) error {
	if err := m.store.DeleteTokens(ctx, owner); err != nil {
		return fmt.Errorf("fast: revoking tokens: %w", err)
	}
	return nil
}

// Proof is HMAC-SHA-256(token, label || cbData): label "Initiator" for the
// client's message, "Responder" for the server's answer.
func Proof(token, label string, cbData []byte) []byte {
	mac := hmac.New(sha256.New, []byte(token))
	mac.Write([]byte(label))
	mac.Write(cbData)
	return mac.Sum(nil)
}

// LoadOrCreateKey reads the token key from path, making a new random one
// (mode 0600) when the file does not exist.
func LoadOrCreateKey(path string) ([]byte, error) {
	return keyfile.LoadOrCreate(path, KeySize, "FAST token key", "every token is then void")
}
