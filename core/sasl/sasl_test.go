package sasl

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xdg-go/scram"
	"golang.org/x/text/secure/precis"

	"github.com/koi-im/koi/core/tlscb"
	"github.com/koi-im/koi/sdk"
)

// memStore is an in-memory account store keeping SCRAM keys only, the way a
// real backend does: PLAIN is checked against the SCRAM-SHA-256 keys.
type memStore struct {
	mu    sync.Mutex
	users map[string]map[string]sdk.SCRAMCredentials // user -> hash -> creds
	err   error                                      // if set, every call fails with it
	calls int
}

func newMemStore(t testing.TB, iterations int, accounts map[string]string) *memStore {
	t.Helper()
	s := &memStore{users: map[string]map[string]sdk.SCRAMCredentials{}}
	for user, pass := range accounts {
		s.users[user] = map[string]sdk.SCRAMCredentials{}
		for _, h := range []string{sdk.HashSHA1, sdk.HashSHA256} {
			c, err := sdk.NewSCRAMCredentials(pass, h, iterations)
			if err != nil {
				t.Fatal(err)
			}
			s.users[user][h] = c
		}
	}
	return s
}

func (s *memStore) find(ctx context.Context, user, hash string) (sdk.SCRAMCredentials, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if err := ctx.Err(); err != nil {
		return sdk.SCRAMCredentials{}, err
	}
	if s.err != nil {
		return sdk.SCRAMCredentials{}, s.err
	}
	norm, err := precis.UsernameCaseMapped.String(user)
	if err != nil {
		return sdk.SCRAMCredentials{}, fmt.Errorf("%w: user name: %v", sdk.ErrInvalid, err)
	}
	c, ok := s.users[norm][hash]
	if !ok {
		return sdk.SCRAMCredentials{}, fmt.Errorf("user %q: %w", norm, sdk.ErrNotFound)
	}
	return c, nil
}

func (s *memStore) CheckPassword(ctx context.Context, user, password string) (bool, error) {
	c, err := s.find(ctx, user, sdk.HashSHA256)
	if errors.Is(err, sdk.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return sdk.CheckSCRAMPassword(password, sdk.HashSHA256, c), nil
}

func (s *memStore) SCRAMCredentials(ctx context.Context, user, hash string) (sdk.SCRAMCredentials, error) {
	return s.find(ctx, user, hash)
}

var (
	storeOnce  sync.Once
	sharedData *memStore
)

// testStore shares one store between tests: deriving keys costs PBKDF2.
func testStore(t testing.TB) *memStore {
	storeOnce.Do(func() {
		sharedData = newMemStore(t, sdk.DefaultSCRAMIterations, map[string]string{"juliet": "r0m30myr0m30", "romeo": "pencil"})
	})
	return sharedData
}

func asFailure(t testing.TB, err error) *Failure {
	t.Helper()
	var f *Failure
	if !errors.As(err, &f) {
		t.Fatalf("error %v (%T) is not a *Failure", err, err)
	}
	return f
}

func wantFailure(t testing.TB, err error, cond string) *Failure {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s", cond)
	}
	f := asFailure(t, err)
	if f.Condition != cond {
		t.Fatalf("condition %q (%v), want %q", f.Condition, err, cond)
	}
	return f
}

var tlsOpts = Options{SCRAM: true, TLS: true}

func hashGen(mech string) scram.HashGeneratorFcn {
	if strings.HasPrefix(mech, "SCRAM-SHA-256") {
		return scram.SHA256
	}
	return scram.SHA1
}

// exchange runs a whole SCRAM exchange between an xdg-go client
// conversation and a Negotiator. It returns the server's error, if any, and
// checks that the client accepts the server's final message on success.
func exchange(t testing.TB, n *Negotiator, cc *scram.ClientConversation) error {
	t.Helper()
	ctx := context.Background()
	c1, err := cc.Step("")
	if err != nil {
		t.Fatal(err)
	}
	s1, done, err := n.Step(ctx, []byte(c1))
	if err != nil {
		return err
	}
	if done {
		t.Fatal("done after client-first")
	}
	c2, err := cc.Step(string(s1))
	if err != nil {
		t.Fatalf("client rejects server-first %q: %v", s1, err)
	}
	s2, done, err := n.Step(ctx, []byte(c2))
	if err != nil {
		return err
	}
	if !done {
		t.Fatal("not done after client-final")
	}
	if _, err := cc.Step(string(s2)); err != nil || !cc.Valid() {
		t.Fatalf("client rejects server-final %q: %v", s2, err)
	}
	return nil
}

func TestMechanisms(t *testing.T) {
	cb := func(string) ([]byte, error) { return []byte("x"), nil }
	tests := []struct {
		name string
		o    Options
		want []string
	}{
		{"nothing", Options{}, nil},
		{"plain needs TLS", Options{SCRAM: false, TLS: false}, nil},
		{"scram plaintext", Options{SCRAM: true}, []string{SCRAMSHA256, SCRAMSHA1}},
		{"scram TLS", Options{SCRAM: true, TLS: true}, []string{SCRAMSHA256, SCRAMSHA1, Plain}},
		{"password-only backend", Options{TLS: true, ChannelBinding: cb}, []string{Plain}},
		{"plus", Options{SCRAM: true, TLS: true, ChannelBinding: cb},
			[]string{SCRAMSHA256Plus, SCRAMSHA1Plus, SCRAMSHA256, SCRAMSHA1, Plain}},
		{"no plus without TLS", Options{SCRAM: true, ChannelBinding: cb}, []string{SCRAMSHA256, SCRAMSHA1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Mechanisms(tt.o); !slices.Equal(got, tt.want) {
				t.Errorf("Mechanisms = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	s := testStore(t)
	tests := []struct {
		mech string
		o    Options
		want string
	}{
		{"PLAIN", Options{SCRAM: true}, CondEncryptionRequired},
		{"SCRAM-SHA-256-PLUS", tlsOpts, CondInvalidMechanism},
		{"SCRAM-SHA-256", Options{TLS: true}, CondInvalidMechanism},
		{"SCRAM-SHA-512", tlsOpts, CondInvalidMechanism},
		{"scram-sha-256", tlsOpts, CondInvalidMechanism},
		{"", tlsOpts, CondInvalidMechanism},
		{"DIGEST-MD5", tlsOpts, CondInvalidMechanism},
	}
	for _, tt := range tests {
		t.Run(tt.mech, func(t *testing.T) {
			n, err := New(tt.mech, s, tt.o)
			if n != nil {
				t.Error("got a Negotiator")
			}
			wantFailure(t, err, tt.want)
		})
	}
	_, err := New(SCRAMSHA256, nil, tlsOpts)
	wantFailure(t, err, CondTemporaryAuthFailure)
}

func TestSCRAM(t *testing.T) {
	s := testStore(t)
	for _, mech := range []string{SCRAMSHA256, SCRAMSHA1} {
		for _, authz := range []string{"", "juliet@example.com", "odd,=name"} {
			t.Run(mech+"/"+authz, func(t *testing.T) {
				n, err := New(mech, s, tlsOpts)
				if err != nil {
					t.Fatal(err)
				}
				c, err := hashGen(mech).NewClient("Juliet", "r0m30myr0m30", authz)
				if err != nil {
					t.Fatal(err)
				}
				if err := exchange(t, n, c.NewConversation()); err != nil {
					t.Fatal(err)
				}
				if n.Username() != "Juliet" || n.Authzid() != authz {
					t.Errorf("Username, Authzid = %q, %q; want Juliet, %q", n.Username(), n.Authzid(), authz)
				}
				_, _, err = n.Step(context.Background(), []byte("n,,n=juliet,r=abc"))
				wantFailure(t, err, CondMalformedRequest)
			})
		}
	}
}

// TestSCRAMNoInitialResponse: a client that sends <auth/> without data gets
// an empty challenge and sends client-first in its response.
func TestSCRAMNoInitialResponse(t *testing.T) {
	n, err := New(SCRAMSHA1, testStore(t), tlsOpts)
	if err != nil {
		t.Fatal(err)
	}
	ch, done, err := n.Step(context.Background(), nil)
	if err != nil || done || ch == nil || len(ch) != 0 {
		t.Fatalf("Step(nil) = %q, %v, %v; want empty challenge", ch, done, err)
	}
	c, _ := scram.SHA1.NewClient("romeo", "pencil", "")
	if err := exchange(t, n, c.NewConversation()); err != nil {
		t.Fatal(err)
	}

	// Only one empty message is "no initial response".
	n, _ = New(SCRAMSHA1, testStore(t), tlsOpts)
	n.Step(context.Background(), nil)
	_, _, err = n.Step(context.Background(), []byte{})
	wantFailure(t, err, CondMalformedRequest)
}

// TestUnknownUserLooksLikeWrongPassword: both get a server-first message
// with a salt and the usual iteration count, and fail at the last step with
// the same condition and text.
func TestUnknownUserLooksLikeWrongPassword(t *testing.T) {
	s := testStore(t)
	for _, mech := range []string{SCRAMSHA256, SCRAMSHA1} {
		t.Run(mech, func(t *testing.T) {
			run := func(user, pass string) (*Failure, string) {
				n, _ := New(mech, s, tlsOpts)
				c, _ := hashGen(mech).NewClient(user, pass, "")
				cc := c.NewConversation()
				c1, _ := cc.Step("")
				s1, _, err := n.Step(context.Background(), []byte(c1))
				if err != nil {
					t.Fatalf("%s: client-first: %v", user, err)
				}
				c2, err := cc.Step(string(s1))
				if err != nil {
					t.Fatalf("%s: client rejects %q: %v", user, s1, err)
				}
				_, _, err = n.Step(context.Background(), []byte(c2))
				if n.Username() != "" {
					t.Errorf("Username() = %q after failure", n.Username())
				}
				return wantFailure(t, err, CondNotAuthorized), string(s1)
			}
			wrong, s1Real := run("juliet", "wrong")
			unknown, s1Fake := run("nobody", "wrong")
			if wrong.Condition != unknown.Condition || wrong.Text != unknown.Text {
				t.Errorf("wrong password %+v, unknown user %+v: the client can tell", wrong, unknown)
			}
			if errors.Is(wrong.Err, sdk.ErrNotFound) || !errors.Is(unknown.Err, sdk.ErrNotFound) {
				t.Errorf("log causes: wrong %v, unknown %v", wrong.Err, unknown.Err)
			}
			shape := func(s1 string) string {
				f := strings.Split(s1, ",")
				salt, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(f[1], "s="))
				return fmt.Sprintf("%d fields, %d-byte salt, %s", len(f), len(salt), f[2])
			}
			if shape(s1Real) != shape(s1Fake) {
				t.Errorf("server-first differs: real %s, fake %s", shape(s1Real), shape(s1Fake))
			}
		})
	}
}

func saltOf(t *testing.T, mech, user string, o Options) string {
	t.Helper()
	n, err := New(mech, testStore(t), o)
	if err != nil {
		t.Fatal(err)
	}
	s1, _, err := n.Step(context.Background(), []byte("n,,n="+user+",r=abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Split(string(s1), ",")
	return f[1] + "," + f[2]
}

func TestFakeSalt(t *testing.T) {
	a := saltOf(t, SCRAMSHA256, "nobody", tlsOpts)
	if b := saltOf(t, SCRAMSHA256, "nobody", tlsOpts); a != b {
		t.Errorf("fake salt not stable: %s then %s", a, b)
	}
	if b := saltOf(t, SCRAMSHA256, "NoBody", tlsOpts); a != b {
		t.Errorf("fake salt depends on case (a real one does not): %s, %s", a, b)
	}
	if b := saltOf(t, SCRAMSHA1, "nobody", tlsOpts); a == b {
		t.Errorf("same fake salt for both hashes (real ones differ): %s", a)
	}
	if b := saltOf(t, SCRAMSHA256, "somebody", tlsOpts); a == b {
		t.Errorf("same fake salt for two users: %s", a)
	}
	if !strings.HasSuffix(a, fmt.Sprintf(",i=%d", sdk.DefaultSCRAMIterations)) {
		t.Errorf("fake iterations %s", a)
	}
	o := tlsOpts
	o.FakeIterations = 10000
	if b := saltOf(t, SCRAMSHA256, "nobody", o); !strings.HasSuffix(b, ",i=10000") {
		t.Errorf("FakeIterations ignored: %s", b)
	}
	// A name the backend rejects outright is just another unknown user.
	if b := saltOf(t, SCRAMSHA256, "\u2163", tlsOpts); !strings.HasPrefix(b, "s=") {
		t.Errorf("invalid name: %s", b)
	}
}

func TestSCRAMBackendUnavailable(t *testing.T) {
	for _, backendErr := range []error{
		fmt.Errorf("db down: %w", sdk.ErrUnavailable),
		context.DeadlineExceeded,
		errors.New("surprise"),
	} {
		t.Run(backendErr.Error(), func(t *testing.T) {
			s := &memStore{err: backendErr}
			for _, mech := range []string{SCRAMSHA256, Plain} {
				n, _ := New(mech, s, tlsOpts)
				in := "n,,n=juliet,r=abcdef"
				if mech == Plain {
					in = "\x00juliet\x00r0m30myr0m30"
				}
				_, _, err := n.Step(context.Background(), []byte(in))
				f := wantFailure(t, err, CondTemporaryAuthFailure)
				if !errors.Is(f, backendErr) {
					t.Errorf("%s: cause %v lost", mech, f.Err)
				}
			}
		})
	}
	t.Run("unusable credentials", func(t *testing.T) {
		s := newMemStore(t, 1, nil)
		s.users["juliet"] = map[string]sdk.SCRAMCredentials{sdk.HashSHA256: {Salt: []byte("s"), Iterations: 1}}
		n, _ := New(SCRAMSHA256, s, tlsOpts)
		_, _, err := n.Step(context.Background(), []byte("n,,n=juliet,r=abcdef"))
		wantFailure(t, err, CondTemporaryAuthFailure)
	})
	t.Run("context done", func(t *testing.T) {
		s := testStore(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		n, _ := New(SCRAMSHA256, s, tlsOpts)
		_, _, err := n.Step(ctx, []byte("n,,n=juliet,r=abcdef"))
		wantFailure(t, err, CondTemporaryAuthFailure)
	})
}

func TestPlain(t *testing.T) {
	s := testStore(t)
	tests := []struct {
		name, in    string
		want        string // condition, "" for success
		user, authz string
	}{
		{"ok", "\x00juliet\x00r0m30myr0m30", "", "juliet", ""},
		{"ok with authzid", "juliet@example.com\x00Juliet\x00r0m30myr0m30", "", "Juliet", "juliet@example.com"},
		{"wrong password", "\x00juliet\x00r0m30", CondNotAuthorized, "", ""},
		{"unknown user", "\x00nobody\x00r0m30myr0m30", CondNotAuthorized, "", ""},
		{"invalid user name", "\x00\u2163\x00r0m30myr0m30", CondNotAuthorized, "", ""},
		{"empty password", "\x00juliet\x00", CondNotAuthorized, "", ""},
		{"empty authcid", "\x00\x00r0m30myr0m30", CondMalformedRequest, "", ""},
		{"no NUL", "julietr0m30myr0m30", CondMalformedRequest, "", ""},
		{"one NUL", "juliet\x00r0m30myr0m30", CondMalformedRequest, "", ""},
		{"three NULs", "\x00juliet\x00r0m30\x00myr0m30", CondMalformedRequest, "", ""},
		{"trailing NUL", "\x00juliet\x00r0m30myr0m30\x00", CondMalformedRequest, "", ""},
		{"bad UTF-8", "\x00juliet\x00\xff\xfe", CondMalformedRequest, "", ""},
		{"too long", "\x00juliet\x00" + strings.Repeat("x", maxMessage), CondMalformedRequest, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := New(Plain, s, tlsOpts)
			if err != nil {
				t.Fatal(err)
			}
			ch, done, err := n.Step(context.Background(), []byte(tt.in))
			if tt.want != "" {
				wantFailure(t, err, tt.want)
				if n.Username() != "" {
					t.Errorf("Username() = %q after failure", n.Username())
				}
				return
			}
			if err != nil || !done || len(ch) != 0 {
				t.Fatalf("Step = %q, %v, %v", ch, done, err)
			}
			if n.Username() != tt.user || n.Authzid() != tt.authz {
				t.Errorf("Username, Authzid = %q, %q", n.Username(), n.Authzid())
			}
		})
	}

	// Unknown user and wrong password: indistinguishable to the client.
	fail := func(in string) *Failure {
		n, _ := New(Plain, s, tlsOpts)
		_, _, err := n.Step(context.Background(), []byte(in))
		return asFailure(t, err)
	}
	a, b := fail("\x00juliet\x00nope"), fail("\x00nobody\x00nope")
	if a.Condition != b.Condition || a.Text != b.Text {
		t.Errorf("wrong password %+v, unknown user %+v", a, b)
	}

	// No initial response: empty challenge, then the message.
	n, _ := New(Plain, s, tlsOpts)
	if ch, done, err := n.Step(context.Background(), nil); err != nil || done || len(ch) != 0 {
		t.Fatalf("Step(nil) = %q, %v, %v", ch, done, err)
	}
	if _, done, err := n.Step(context.Background(), []byte("\x00romeo\x00pencil")); err != nil || !done {
		t.Fatalf("Step = %v, %v", done, err)
	}
}

func TestSCRAMMalformedClientFirst(t *testing.T) {
	s := testStore(t)
	tests := []struct {
		name, in string
		want     string
	}{
		{"garbage", "hello", CondMalformedRequest},
		{"too few fields", "n,,n=juliet", CondMalformedRequest},
		{"bad flag", "x,,n=juliet,r=abc", CondMalformedRequest},
		{"empty flag", ",,n=juliet,r=abc", CondMalformedRequest},
		{"empty cb name", "p=,,n=juliet,r=abc", CondMalformedRequest},
		{"bad authzid attr", "n,b=x,n=juliet,r=abc", CondMalformedRequest},
		{"empty authzid", "n,a=,n=juliet,r=abc", CondMalformedRequest},
		{"bad authzid escape", "n,a=x=2D,n=juliet,r=abc", CondMalformedRequest},
		{"extension", "n,,m=ext,n=juliet,r=abc", CondMalformedRequest},
		{"no username", "n,,r=abc,n=juliet", CondMalformedRequest},
		{"empty username", "n,,n=,r=abc", CondMalformedRequest},
		{"bad username escape", "n,,n=jul=iet,r=abc", CondMalformedRequest},
		{"no nonce", "n,,n=juliet,x=abc", CondMalformedRequest},
		{"empty nonce", "n,,n=juliet,r=", CondMalformedRequest},
		{"nonce with space", "n,,n=juliet,r=a b", CondMalformedRequest},
		{"NUL", "n,,n=jul\x00iet,r=abc", CondMalformedRequest},
		{"bad UTF-8", "n,,n=\xff,r=abc", CondMalformedRequest},
		{"too long", "n,,n=juliet,r=" + strings.Repeat("a", maxMessage), CondMalformedRequest},
		// Channel binding policy, without -PLUS offered.
		{"p on plain SCRAM", "p=tls-exporter,,n=juliet,r=abc", CondNotAuthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, _ := New(SCRAMSHA256, s, tlsOpts)
			ch, _, err := n.Step(context.Background(), []byte(tt.in))
			if ch != nil {
				t.Errorf("challenge %q with an error", ch)
			}
			wantFailure(t, err, tt.want)
			// The exchange is over.
			_, _, err = n.Step(context.Background(), []byte("n,,n=juliet,r=abc"))
			wantFailure(t, err, CondMalformedRequest)
		})
	}
}

func TestSCRAMMalformedClientFinal(t *testing.T) {
	s := testStore(t)
	// A real client's final message, then variations on it.
	start := func(t *testing.T) (*Negotiator, string, string) {
		n, _ := New(SCRAMSHA256, s, tlsOpts)
		c, _ := scram.SHA256.NewClient("juliet", "r0m30myr0m30", "")
		cc := c.NewConversation()
		c1, _ := cc.Step("")
		s1, _, err := n.Step(context.Background(), []byte(c1))
		if err != nil {
			t.Fatal(err)
		}
		c2, err := cc.Step(string(s1))
		if err != nil {
			t.Fatal(err)
		}
		nonce := strings.TrimPrefix(strings.Split(string(s1), ",")[0], "r=")
		return n, c2, nonce
	}
	okCB := base64.StdEncoding.EncodeToString([]byte("n,,"))
	proof := base64.StdEncoding.EncodeToString(make([]byte, 32))
	tests := []struct {
		name string
		mk   func(c2, nonce string) string
		want string
	}{
		{"garbage", func(string, string) string { return "garbage" }, CondMalformedRequest},
		{"too few fields", func(_, nonce string) string { return "c=" + okCB + ",r=" + nonce }, CondMalformedRequest},
		{"no proof", func(_, nonce string) string { return "c=" + okCB + ",r=" + nonce + ",x=1" }, CondMalformedRequest},
		{"proof not base64", func(_, nonce string) string { return "c=" + okCB + ",r=" + nonce + ",p=!!" }, CondMalformedRequest},
		{"short proof", func(_, nonce string) string { return "c=" + okCB + ",r=" + nonce + ",p=AAAA" }, CondMalformedRequest},
		{"cbind not base64", func(_, nonce string) string { return "c=!!,r=" + nonce + ",p=" + proof }, CondMalformedRequest},
		{"no cbind", func(_, nonce string) string { return "x=" + okCB + ",r=" + nonce + ",p=" + proof }, CondMalformedRequest},
		{"empty nonce", func(string, string) string { return "c=" + okCB + ",r=,p=" + proof }, CondMalformedRequest},
		{"NUL", func(c2, _ string) string { return strings.Replace(c2, "c=", "c=\x00", 1) }, CondMalformedRequest},
		{"wrong proof", func(_, nonce string) string { return "c=" + okCB + ",r=" + nonce + ",p=" + proof }, CondNotAuthorized},
		{"wrong nonce", func(c2, nonce string) string {
			// Change the last character to another one (it may be an "x").
			last := "x"
			if strings.HasSuffix(nonce, "x") {
				last = "y"
			}
			return strings.Replace(c2, nonce, nonce[:len(nonce)-1]+last, 1)
		}, CondNotAuthorized},
		{"client nonce only", func(c2, nonce string) string { return strings.Replace(c2, nonce, nonce[:10], 1) }, CondNotAuthorized},
		{"cbind claims y", func(c2, _ string) string {
			return strings.Replace(c2, okCB, base64.StdEncoding.EncodeToString([]byte("y,,")), 1)
		}, CondNotAuthorized},
		{"empty", func(string, string) string { return "" }, CondMalformedRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, c2, nonce := start(t)
			ch, done, err := n.Step(context.Background(), []byte(tt.mk(c2, nonce)))
			if ch != nil || done {
				t.Errorf("Step = %q, %v with an error", ch, done)
			}
			wantFailure(t, err, tt.want)
			if n.Username() != "" {
				t.Errorf("Username() = %q after failure", n.Username())
			}
		})
	}
	t.Run("real final message is accepted", func(t *testing.T) {
		n, c2, _ := start(t)
		if _, done, err := n.Step(context.Background(), []byte(c2)); err != nil || !done {
			t.Fatalf("Step = %v, %v", done, err)
		}
	})
}

// tlsPair connects a TLS client and server over an in-memory pipe and
// returns the client's connection state and the server's bindings.
func tlsPair(t *testing.T, version uint16) (tls.ConnectionState, *tlscb.Bindings) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		DNSNames:     []string{"example.com"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	pool := x509.NewCertPool()
	leaf, _ := x509.ParseCertificate(der)
	pool.AddCert(leaf)

	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	sc := tls.Server(a, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: version, MaxVersion: version})
	cc := tls.Client(b, &tls.Config{RootCAs: pool, ServerName: "example.com", MinVersion: version, MaxVersion: version})
	errc := make(chan error, 1)
	go func() { errc <- sc.Handshake() }()
	if err := cc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return cc.ConnectionState(), tlscb.New(sc.ConnectionState(), tlscb.CertServed(&cert))
}

// clientCB is a channel binding as the client computes it.
func clientCB(t *testing.T, cs tls.ConnectionState, typ string) scram.ChannelBinding {
	t.Helper()
	var cb scram.ChannelBinding
	var err error
	switch typ {
	case CBTLSExporter:
		cb, err = scram.NewTLSExporterBinding(&cs)
	case CBTLSServerEndPoint:
		cb, err = scram.NewTLSServerEndpointBinding(&cs)
	case CBTLSUnique:
		// A TLS 1.3 client like Python's ssl sends some bytes anyway.
		cb = scram.ChannelBinding{Type: scram.ChannelBindingTLSUnique, Data: []byte("finished")}
		if len(cs.TLSUnique) > 0 {
			cb.Data = cs.TLSUnique
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return cb
}

func TestSCRAMPlus(t *testing.T) {
	s := testStore(t)
	conns := map[string]struct {
		client tls.ConnectionState
		b      *tlscb.Bindings
	}{}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		cs, b := tlsPair(t, v)
		conns[tls.VersionName(v)] = struct {
			client tls.ConnectionState
			b      *tlscb.Bindings
		}{cs, b}
	}
	withCB := func(cb scram.ChannelBinding) func(*scram.Client) *scram.ClientConversation {
		return func(c *scram.Client) *scram.ClientConversation { return c.NewConversationWithChannelBinding(cb) }
	}
	plain := func(c *scram.Client) *scram.ClientConversation { return c.NewConversation() }
	yFlag := func(c *scram.Client) *scram.ClientConversation { return c.NewConversationAdvertisingChannelBinding() }

	// Every type on every version, with both -PLUS mechanisms.
	for _, version := range []string{"TLS 1.2", "TLS 1.3"} {
		conn := conns[version]
		for _, typ := range []string{CBTLSExporter, CBTLSServerEndPoint, CBTLSUnique} {
			for _, mech := range []string{SCRAMSHA256Plus, SCRAMSHA1Plus} {
				t.Run(version+"/"+typ+"/"+mech, func(t *testing.T) {
					o := Options{SCRAM: true, TLS: true, ChannelBinding: conn.b.Data, CBTypes: conn.b.Types()}
					n, err := New(mech, s, o)
					if err != nil {
						t.Fatal(err)
					}
					c, _ := hashGen(mech).NewClient("juliet", "r0m30myr0m30", "")
					err = exchange(t, n, withCB(clientCB(t, conn.client, typ))(c))
					if version == "TLS 1.3" && typ == CBTLSUnique {
						f := wantFailure(t, err, CondNotAuthorized)
						want := "channel binding type tls-unique is not available on TLS 1.3; this connection offers tls-exporter, tls-server-end-point"
						if f.Text != want {
							t.Errorf("text %q, want %q", f.Text, want)
						}
						if !f.ChannelBindingTypeMismatch() || f.BadCredentials() {
							t.Errorf("mismatch %v, bad credentials %v", f.ChannelBindingTypeMismatch(), f.BadCredentials())
						}
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					if n.Username() != "juliet" || n.ChannelBinding() != typ {
						t.Errorf("Username() = %q, ChannelBinding() = %q", n.Username(), n.ChannelBinding())
					}
				})
			}
		}
	}

	ss13, cs13 := conns["TLS 1.3"].b, conns["TLS 1.3"].client
	exporter13 := clientCB(t, cs13, CBTLSExporter)
	opts := func(mode string, mismatch bool) Options {
		return Options{SCRAM: true, TLS: true, ChannelBinding: ss13.Data, CBTypes: ss13.Types(), CBMode: mode, CBTypeMismatch: mismatch}
	}
	other := scram.ChannelBinding{Type: scram.ChannelBindingTLSExporter, Data: make([]byte, 32)}
	tests := []struct {
		name   string
		mech   string
		o      Options
		client func(*scram.Client) *scram.ClientConversation
		want   string // "" for success
		text   string // the failure text, when it matters
	}{
		{"n with plain SCRAM", SCRAMSHA256, opts("", false), plain, "", ""},
		{"n with PLUS", SCRAMSHA256Plus, opts("", false), plain, CondNotAuthorized, "SCRAM-SHA-256-PLUS requires channel binding"},
		{"y with PLUS", SCRAMSHA1Plus, opts("", true), yFlag, CondNotAuthorized, "SCRAM-SHA-1-PLUS requires channel binding"},
		{"y without mismatch: downgrade", SCRAMSHA256, opts(CBPrefer, false), yFlag, CondNotAuthorized,
			"channel binding downgrade: this server offers SCRAM-SHA-256-PLUS and SCRAM-SHA-1-PLUS"},
		{"y after mismatch, prefer", SCRAMSHA256, opts(CBPrefer, true), yFlag, "", ""},
		{"y after mismatch, default mode", SCRAMSHA1, opts("", true), yFlag, "", ""},
		{"y without PLUS offered", SCRAMSHA256, tlsOpts, yFlag, "", ""},
		{"y in off mode", SCRAMSHA256, opts(CBOff, false), yFlag, "", ""},
		{"p with plain SCRAM", SCRAMSHA256, opts("", false), withCB(exporter13), CondNotAuthorized, ""},
		{"other connection's binding", SCRAMSHA256Plus, opts("", false), withCB(other), CondNotAuthorized, ""},
		{"unknown type", SCRAMSHA256Plus, opts("", false),
			withCB(scram.ChannelBinding{Type: "tls-foo", Data: []byte("x")}), CondNotAuthorized,
			"channel binding type tls-foo is not supported; this connection offers tls-exporter, tls-server-end-point"},
		// Advertising is not accepting: a type the connection can give is
		// taken even when XEP-0440 does not list it (tls-unique on TLS 1.3).
		{"type not advertised but available", SCRAMSHA256Plus,
			Options{SCRAM: true, TLS: true, ChannelBinding: ss13.Data, CBTypes: []string{CBTLSServerEndPoint}},
			withCB(exporter13), "", ""},
		{"require, with binding", SCRAMSHA256Plus, opts(CBRequire, false), withCB(exporter13), "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := New(tt.mech, s, tt.o)
			if err != nil {
				t.Fatal(err)
			}
			c, _ := hashGen(tt.mech).NewClient("juliet", "r0m30myr0m30", "")
			err = exchange(t, n, tt.client(c))
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if n.Username() != "juliet" {
					t.Errorf("Username() = %q", n.Username())
				}
				return
			}
			f := wantFailure(t, err, tt.want)
			if tt.text != "" && f.Text != tt.text {
				t.Errorf("text %q, want %q", f.Text, tt.text)
			}
			if f.BadCredentials() {
				t.Error("counted as bad credentials")
			}
		})
	}
}

func TestChannelBindingModes(t *testing.T) {
	cb := func(string) ([]byte, error) { return []byte("x"), nil }
	tests := []struct {
		name string
		o    Options
		want []string
	}{
		{"prefer", Options{SCRAM: true, TLS: true, ChannelBinding: cb, CBMode: CBPrefer},
			[]string{SCRAMSHA256Plus, SCRAMSHA1Plus, SCRAMSHA256, SCRAMSHA1, Plain}},
		{"require", Options{SCRAM: true, TLS: true, ChannelBinding: cb, CBMode: CBRequire},
			[]string{SCRAMSHA256Plus, SCRAMSHA1Plus}},
		{"require without TLS", Options{SCRAM: true, ChannelBinding: cb, CBMode: CBRequire}, nil},
		{"require, no binding on this connection", Options{SCRAM: true, TLS: true, CBMode: CBRequire}, nil},
		{"require, password-only backend", Options{TLS: true, ChannelBinding: cb, CBMode: CBRequire}, nil},
		{"off", Options{SCRAM: true, TLS: true, ChannelBinding: cb, CBMode: CBOff},
			[]string{SCRAMSHA256, SCRAMSHA1, Plain}},
	}
	s := testStore(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Mechanisms(tt.o)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Mechanisms = %v, want %v", got, tt.want)
			}
			for _, m := range []string{SCRAMSHA256Plus, SCRAMSHA1Plus, SCRAMSHA256, SCRAMSHA1, Plain} {
				if _, err := New(m, s, tt.o); (err == nil) != slices.Contains(got, m) {
					t.Errorf("New(%s) = %v, but offered = %v", m, err, slices.Contains(got, m))
				}
			}
		})
	}
}

func TestBadCredentials(t *testing.T) {
	s := testStore(t)
	scramWith := func(mech, user, pass string, o Options) error {
		n, err := New(mech, s, o)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := hashGen(mech).NewClient(user, pass, "")
		return exchange(t, n, c.NewConversation())
	}
	plainWith := func(in string) error {
		n, _ := New(Plain, s, tlsOpts)
		_, _, err := n.Step(context.Background(), []byte(in))
		return err
	}
	tests := []struct {
		name string
		err  error
		bad  bool
	}{
		{"SCRAM wrong password", scramWith(SCRAMSHA256, "juliet", "nope", tlsOpts), true},
		{"SCRAM-SHA-1 wrong password", scramWith(SCRAMSHA1, "juliet", "nope", tlsOpts), true},
		{"SCRAM unknown user", scramWith(SCRAMSHA256, "nobody", "nope", tlsOpts), true},
		{"PLAIN wrong password", plainWith("\x00juliet\x00nope"), true},
		{"PLAIN unknown user", plainWith("\x00nobody\x00nope"), true},
		{"PLAIN empty password", plainWith("\x00juliet\x00"), true},
		{"PLAIN malformed", plainWith("juliet"), false},
		{"SCRAM malformed", func() error {
			n, _ := New(SCRAMSHA256, s, tlsOpts)
			_, _, err := n.Step(context.Background(), []byte("x,,n=juliet,r=abc"))
			return err
		}(), false},
		{"invalid mechanism", func() error { _, err := New("DIGEST-MD5", s, tlsOpts); return err }(), false},
		{"backend down", func() error {
			down := newMemStore(t, 4096, nil)
			down.err = sdk.ErrUnavailable
			n, _ := New(Plain, down, tlsOpts)
			_, _, err := n.Step(context.Background(), []byte("\x00juliet\x00pw"))
			return err
		}(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := asFailure(t, tt.err)
			if f.BadCredentials() != tt.bad {
				t.Errorf("BadCredentials() = %v, want %v (%v)", f.BadCredentials(), tt.bad, f)
			}
		})
	}
	var nilF *Failure
	if nilF.BadCredentials() || (&Failure{Condition: CondNotAuthorized}).BadCredentials() {
		t.Error("a Failure made elsewhere counts as bad credentials")
	}
}
