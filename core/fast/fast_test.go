package fast

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/koi-im/koi/core/sasl"
	"github.com/koi-im/koi/sdk"
)

// memStore is a plain token store; the SDK conformance kit checks the
// real ones against the same contract.
type memStore struct {
	mu   sync.Mutex
	toks []sdk.Token
	fail error
}

func (s *memStore) GetTokens(_ context.Context, owner, agent string) ([]sdk.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, s.fail
	}
	var out []sdk.Token
	for _, t := range s.toks {
		if t.Owner == owner && t.Agent == agent {
			out = append(out, t)
		}
	}
	slices.SortStableFunc(out, func(a, b sdk.Token) int { return b.Expires.Compare(a.Expires) })
	return out, nil
}

func (s *memStore) PutToken(_ context.Context, t sdk.Token) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.toks = append(s.toks, t)
	return nil
}

func (s *memStore) DeleteToken(_ context.Context, owner, agent string, hash []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.toks = slices.DeleteFunc(s.toks, func(t sdk.Token) bool {
		return t.Owner == owner && t.Agent == agent && bytes.Equal(t.Hash, hash)
	})
	return nil
}

func (s *memStore) DeleteTokens(_ context.Context, owner string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.toks = slices.DeleteFunc(s.toks, func(t sdk.Token) bool { return t.Owner == owner })
	return nil
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestManager(t *testing.T) (*Manager, *memStore, *clock) {
	t.Helper()
	st := &memStore{}
	m, err := NewManager(st, bytes.Repeat([]byte{7}, KeySize), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)}
	m.now = c.now
	return m, st, c
}

// login runs an HT-SHA-256-NONE exchange for alice with token.
func login(m *Manager, agent, token string) (*Exchange, []byte, error) {
	e, err := m.NewExchange(HTNone, "example.com", agent, nil)
	if err != nil {
		return nil, nil, err
	}
	msg := append([]byte("alice\x00"), Proof(token, "Initiator", nil)...)
	out, done, err := e.Step(context.Background(), msg)
	if err == nil && !done {
		err = errors.New("not done")
	}
	return e, out, err
}

func wantBad(t *testing.T, what string, err error) {
	t.Helper()
	var f *sasl.Failure
	if !errors.As(err, &f) || !f.BadCredentials() {
		t.Errorf("%s: %v, want a wrong-credentials failure", what, err)
	}
}

func TestIssueAndLogin(t *testing.T) {
	m, st, c := newTestManager(t)
	ctx := context.Background()
	tok, exp, err := m.Issue(ctx, "alice@example.com", "phone", HTNone)
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(c.t.Add(24 * time.Hour)) {
		t.Errorf("expiry %v", exp)
	}
	// Never the token itself in the store.
	for _, s := range st.toks {
		if bytes.Contains(s.Salt, []byte(tok)) || bytes.Equal(s.Hash, []byte(tok)) {
			t.Fatal("the store holds the token")
		}
	}
	e, out, err := login(m, "phone", tok)
	if err != nil {
		t.Fatal(err)
	}
	if e.Username() != "alice" || !bytes.Equal(out, Proof(tok, "Responder", nil)) {
		t.Errorf("username %q, answer %x", e.Username(), out)
	}

	_, _, err = login(m, "phone", tok+"x")
	wantBad(t, "wrong token", err)
	_, _, err = login(m, "laptop", tok)
	wantBad(t, "another agent's token", err)
	// A token issued for -NONE does not log in with another mechanism.
	e2, _ := m.NewExchange(HTEndp, "example.com", "phone", func(string) ([]byte, error) { return []byte("cb"), nil })
	_, _, err = e2.Step(ctx, append([]byte("alice\x00"), Proof(tok, "Initiator", []byte("cb"))...))
	wantBad(t, "other mechanism", err)

	// Another key derives other tokens: the stored ones are void.
	m2, _ := NewManager(st, bytes.Repeat([]byte{8}, KeySize), time.Hour)
	m2.now = c.now
	_, _, err = login(m2, "phone", tok)
	wantBad(t, "after a key change", err)
}

func TestExpiredTokenRefusedAndDeleted(t *testing.T) {
	m, st, c := newTestManager(t)
	tok, _, err := m.Issue(context.Background(), "alice@example.com", "phone", HTNone)
	if err != nil {
		t.Fatal(err)
	}
	c.t = c.t.Add(24 * time.Hour)
	_, _, err = login(m, "phone", tok)
	wantBad(t, "expired", err)
	if len(st.toks) != 0 {
		t.Errorf("expired token kept: %d", len(st.toks))
	}
}

func TestRotation(t *testing.T) {
	m, st, c := newTestManager(t)
	ctx := context.Background()
	old, _, _ := m.Issue(ctx, "alice@example.com", "phone", HTNone)
	// In the same second: the new token must still count as the newer.
	fresh, _, _ := m.Issue(ctx, "alice@example.com", "phone", HTNone)
	// Until the new token is used, the old one still works.
	if _, _, err := login(m, "phone", old); err != nil {
		t.Fatalf("old token before the new one was used: %v", err)
	}
	if _, _, err := login(m, "phone", fresh); err != nil {
		t.Fatal(err)
	}
	_, _, err := login(m, "phone", old)
	wantBad(t, "old token after the new one was used", err)
	if len(st.toks) != 1 {
		t.Errorf("%d tokens kept, want 1", len(st.toks))
	}
	// A third issue drops the oldest of three.
	c.t = c.t.Add(time.Minute)
	m.Issue(ctx, "alice@example.com", "phone", HTNone)
	c.t = c.t.Add(time.Minute)
	m.Issue(ctx, "alice@example.com", "phone", HTNone)
	if len(st.toks) != keepPerAgent {
		t.Errorf("%d tokens kept, want %d", len(st.toks), keepPerAgent)
	}
	_, _, err = login(m, "phone", fresh)
	wantBad(t, "token pushed out by two newer ones", err)
}

func TestRevokeAndInvalidate(t *testing.T) {
	m, _, _ := newTestManager(t)
	ctx := context.Background()
	a, _, _ := m.Issue(ctx, "alice@example.com", "phone", HTNone)
	b, _, _ := m.Issue(ctx, "alice@example.com", "laptop", HTNone)
	e, _, err := login(m, "phone", a)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Invalidate(ctx, e.Verified().Token); err != nil {
		t.Fatal(err)
	}
	_, _, err = login(m, "phone", a)
	wantBad(t, "invalidated", err)
	if _, _, err := login(m, "laptop", b); err != nil {
		t.Fatalf("another agent's token after invalidate: %v", err)
	}
	if err := m.RevokeAll(ctx, "alice@example.com"); err != nil {
		t.Fatal(err)
	}
	_, _, err = login(m, "laptop", b)
	wantBad(t, "revoked", err)
}

func TestMalformedAndBackendFailure(t *testing.T) {
	m, st, _ := newTestManager(t)
	ctx := context.Background()
	for name, msg := range map[string][]byte{
		"no NUL":       []byte("alice"),
		"empty user":   append([]byte{0}, make([]byte, 32)...),
		"short proof":  []byte("alice\x00abc"),
		"invalid utf8": append([]byte("\xff\x00"), make([]byte, 32)...),
	} {
		e, _ := m.NewExchange(HTNone, "example.com", "phone", nil)
		_, _, err := e.Step(ctx, msg)
		var f *sasl.Failure
		if !errors.As(err, &f) || f.Condition != sasl.CondMalformedRequest || f.BadCredentials() {
			t.Errorf("%s: %v, want malformed-request not counted", name, err)
		}
	}
	if _, err := m.NewExchange(HTNone, "example.com", "", nil); err == nil {
		t.Error("no agent accepted")
	}
	if _, err := m.NewExchange(HTExpr, "example.com", "phone", nil); err == nil {
		t.Error("a -EXPR exchange without channel binding accepted")
	}
	st.fail = sdk.ErrUnavailable
	_, _, err := login(m, "phone", "x")
	var f *sasl.Failure
	if !errors.As(err, &f) || f.Condition != sasl.CondTemporaryAuthFailure || f.BadCredentials() {
		t.Errorf("backend down: %v, want temporary-auth-failure not counted", err)
	}
}

func TestChannelBoundToken(t *testing.T) {
	m, _, _ := newTestManager(t)
	ctx := context.Background()
	tok, _, _ := m.Issue(ctx, "alice@example.com", "phone", HTExpr)
	cb := func(typ string) ([]byte, error) {
		if typ != "tls-exporter" {
			return nil, errors.New("no " + typ)
		}
		return []byte("this connection"), nil
	}
	e, _ := m.NewExchange(HTExpr, "example.com", "phone", cb)
	if _, _, err := e.Step(ctx, append([]byte("alice\x00"), Proof(tok, "Initiator", []byte("another connection"))...)); err == nil {
		t.Error("a proof bound to another connection accepted")
	}
	e, _ = m.NewExchange(HTExpr, "example.com", "phone", cb)
	out, done, err := e.Step(ctx, append([]byte("alice\x00"), Proof(tok, "Initiator", []byte("this connection"))...))
	if err != nil || !done || !bytes.Equal(out, Proof(tok, "Responder", []byte("this connection"))) {
		t.Errorf("bound login: %v %v", done, err)
	}
}

func TestMechanisms(t *testing.T) {
	got := Mechanisms([]string{"tls-server-end-point", "tls-exporter"})
	if want := []string{HTExpr, HTEndp, HTNone}; !slices.Equal(got, want) {
		t.Errorf("Mechanisms = %v, want %v", got, want)
	}
	if got := Mechanisms(nil); !slices.Equal(got, []string{HTNone}) {
		t.Errorf("Mechanisms(nil) = %v", got)
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "fast.key")
	k1, err := LoadOrCreateKey(path)
	if err != nil || len(k1) != KeySize {
		t.Fatal(k1, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	k2, err := LoadOrCreateKey(path)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Errorf("second load: %v", err)
	}
	os.WriteFile(path, []byte("short"), 0o600)
	if _, err := LoadOrCreateKey(path); err == nil {
		t.Error("a short key accepted")
	}
}
