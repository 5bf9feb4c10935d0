package sasl

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/xdg-go/scram"
	"golang.org/x/text/secure/precis"

	"github.com/koi-im/koi/sdk"
)

var conditions = []string{
	CondAborted, CondAccountDisabled, CondCredentialsExpired, CondEncryptionRequired,
	CondIncorrectEncoding, CondInvalidAuthzid, CondInvalidMechanism, CondMalformedRequest,
	CondMechanismTooWeak, CondNotAuthorized, CondTemporaryAuthFailure,
}

// fixedCB stands for a TLS 1.3 connection's tls-exporter data.
var fixedCB = bytes.Repeat([]byte{0x5a}, 32)

var plusOpts = Options{
	SCRAM: true, TLS: true, CBTypes: []string{CBTLSExporter},
	ChannelBinding: func(cbType string) ([]byte, error) {
		if cbType != CBTLSExporter {
			return nil, errTestCB
		}
		return fixedCB, nil
	},
}

var errTestCB = errors.New("channel binding type not supported by this connection")

const (
	clientNonce = "fyko+d2lbbFgONRv9qkxdawL"
	serverNonce = "3rfcNHYJY1ZVvWVs7j"
)

// replay returns a client-first and client-final message that a Negotiator
// with the fixed server nonce accepts: with them a benchmark measures the
// server alone and the fuzzer starts from a successful exchange.
func replay(t testing.TB, store Store, mech string, o Options, user, pass string) (c1, c2 []byte) {
	t.Helper()
	c, err := hashGen(mech).NewClient(user, pass, "")
	if err != nil {
		t.Fatal(err)
	}
	c.WithNonceGenerator(func() string { return clientNonce }).WithMinIterations(1)
	cc := c.NewConversation()
	if mech == SCRAMSHA256Plus || mech == SCRAMSHA1Plus {
		cc = c.NewConversationWithChannelBinding(scram.ChannelBinding{Type: CBTLSExporter, Data: fixedCB})
	}
	n, err := New(mech, store, o)
	if err != nil {
		t.Fatal(err)
	}
	n.nonceGen = func() string { return serverNonce }
	first, _ := cc.Step("")
	s1, _, err := n.Step(context.Background(), []byte(first))
	if err != nil {
		t.Fatal(err)
	}
	final, err := cc.Step(string(s1))
	if err != nil {
		t.Fatal(err)
	}
	if _, done, err := n.Step(context.Background(), []byte(final)); err != nil || !done {
		t.Fatalf("replayed exchange: %v, %v", done, err)
	}
	return []byte(first), []byte(final)
}

var (
	fuzzOnce  sync.Once
	fuzzStore *memStore
)

// cheapStore keeps the fuzzer fast: PLAIN runs PBKDF2 on every input.
func cheapStore(t testing.TB) *memStore {
	fuzzOnce.Do(func() { fuzzStore = newMemStore(t, 16, map[string]string{"juliet": "r0m30myr0m30"}) })
	return fuzzStore
}

func FuzzStep(f *testing.F) {
	s := cheapStore(f)
	mechs := Mechanisms(plusOpts)
	for i, mech := range mechs {
		if mech == Plain {
			f.Add(uint8(i), []byte("\x00juliet\x00r0m30myr0m30"), []byte(nil))
			f.Add(uint8(i), []byte(nil), []byte("juliet@example.com\x00juliet\x00x"))
			f.Add(uint8(i), []byte("\x00\x00"), []byte(nil))
			continue
		}
		c1, c2 := replay(f, s, mech, plusOpts, "juliet", "r0m30myr0m30")
		f.Add(uint8(i), c1, c2)
		u1, u2 := replay(f, s, mech, plusOpts, "juliet", "r0m30myr0m30")
		f.Add(uint8(i), bytes.Replace(u1, []byte("juliet"), []byte("nobody"), 1), u2)
		f.Add(uint8(i), []byte("y,a=x=2C,n=j=3Duliet,r=a,ext=1"), []byte("c=eSw=,r=a,x=y,p=AAAA"))
		f.Add(uint8(i), []byte("p=tls-unique,,n=juliet,r=abc"), []byte("c=,r=,p="))
	}
	f.Fuzz(func(t *testing.T, mech uint8, first, second []byte) {
		name := mechs[int(mech)%len(mechs)]
		n, err := New(name, s, plusOpts)
		if err != nil {
			t.Fatal(err)
		}
		n.nonceGen = func() string { return serverNonce }
		done := false
		failed := false
		for _, in := range [][]byte{first, second, first} {
			ch, ok, err := n.Step(context.Background(), in)
			if err != nil {
				f := asFailure(t, err)
				if !slices.Contains(conditions, f.Condition) {
					t.Fatalf("condition %q", f.Condition)
				}
				if ch != nil || ok {
					t.Fatalf("Step = %q, %v with error %v", ch, ok, err)
				}
				if !done && !failed && n.Username() != "" {
					t.Fatalf("Username %q after failure", n.Username())
				}
				failed = true
				continue
			}
			if done || failed {
				t.Fatalf("Step succeeded after the exchange ended (done %v)", done)
			}
			if ok {
				done = true
				u, err := precis.UsernameCaseMapped.String(n.Username())
				if err != nil || u != "juliet" {
					t.Fatalf("authenticated as %q", n.Username())
				}
			}
		}
	})
}

func BenchmarkSCRAMSHA1Login(b *testing.B) {
	s := newMemStore(b, sdk.DefaultSCRAMIterations, map[string]string{"juliet": "r0m30myr0m30"})
	ctx := context.Background()
	// Both sides as a login costs them; the client's PBKDF2 dominates.
	b.Run("client+server", func(b *testing.B) {
		for b.Loop() {
			n, _ := New(SCRAMSHA1, s, tlsOpts)
			c, _ := scram.SHA1.NewClient("juliet", "r0m30myr0m30", "")
			if err := exchange(b, n, c.NewConversation()); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The server's share: a replayed exchange with a precomputed proof.
	b.Run("server", func(b *testing.B) {
		c1, c2 := replay(b, s, SCRAMSHA1, tlsOpts, "juliet", "r0m30myr0m30")
		for b.Loop() {
			n, _ := New(SCRAMSHA1, s, tlsOpts)
			n.nonceGen = func() string { return serverNonce }
			if _, _, err := n.Step(ctx, c1); err != nil {
				b.Fatal(err)
			}
			if _, done, err := n.Step(ctx, c2); err != nil || !done {
				b.Fatal(done, err)
			}
		}
	})
	// An unknown user costs the server the same exchange.
	b.Run("server/unknown-user", func(b *testing.B) {
		c1, c2 := replay(b, s, SCRAMSHA1, tlsOpts, "juliet", "r0m30myr0m30")
		c1 = bytes.Replace(c1, []byte("juliet"), []byte("nobody"), 1)
		for b.Loop() {
			n, _ := New(SCRAMSHA1, s, tlsOpts)
			n.nonceGen = func() string { return serverNonce }
			if _, _, err := n.Step(ctx, c1); err != nil {
				b.Fatal(err)
			}
			if _, _, err := n.Step(ctx, c2); err == nil {
				b.Fatal("unknown user logged in")
			}
		}
	})
}

func BenchmarkSCRAMSHA256PlusServer(b *testing.B) {
	s := newMemStore(b, sdk.DefaultSCRAMIterations, map[string]string{"juliet": "r0m30myr0m30"})
	ctx := context.Background()
	c1, c2 := replay(b, s, SCRAMSHA256Plus, plusOpts, "juliet", "r0m30myr0m30")
	for b.Loop() {
		n, _ := New(SCRAMSHA256Plus, s, plusOpts)
		n.nonceGen = func() string { return serverNonce }
		if _, _, err := n.Step(ctx, c1); err != nil {
			b.Fatal(err)
		}
		if _, done, err := n.Step(ctx, c2); err != nil || !done {
			b.Fatal(done, err)
		}
	}
}
