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
		{"wrong nonce", func(c2, nonce string) string { return strings.Replace(c2, nonce, nonce[:len(nonce)-1]+"x", 1) }, CondNotAuthorized},
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
// returns both connection states after the handshake.
func tlsPair(t *testing.T, version uint16) (client, server tls.ConnectionState) {
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
	return cc.ConnectionState(), sc.ConnectionState()
}

// connBinding is what the c2s layer would pass as Options.ChannelBinding.
func connBinding(cs tls.ConnectionState) func(string) ([]byte, error) {
	return func(cbType string) ([]byte, error) {
		switch cbType {
		case CBTLSExporter:
			if cs.Version < tls.VersionTLS13 {
				return nil, errors.New("tls-exporter needs TLS 1.3 (or extended master secret)")
			}
			return cs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
		case CBTLSUnique:
			if cs.Version >= tls.VersionTLS13 {
				return nil, errors.New("tls-unique is undefined for TLS 1.3")
			}
			return cs.TLSUnique, nil
		}
		return nil, fmt.Errorf("channel binding %q not supported", cbType)
	}
}

func TestSCRAMPlus(t *testing.T) {
	s := testStore(t)
	cs13, ss13 := tlsPair(t, tls.VersionTLS13)
	cs12, ss12 := tlsPair(t, tls.VersionTLS12)
	exporter13, err := scram.NewTLSExporterBinding(&cs13)
	if err != nil {
		t.Fatal(err)
	}
	unique12 := scram.NewTLSUniqueBinding(cs12.TLSUnique)
	opts := func(ss tls.ConnectionState, types ...string) Options {
		return Options{SCRAM: true, TLS: true, ChannelBinding: connBinding(ss), CBTypes: types}
	}
	other := scram.ChannelBinding{Type: scram.ChannelBindingTLSExporter, Data: make([]byte, 32)}

	tests := []struct {
		name   string
		mech   string
		o      Options
		client func(*scram.Client) *scram.ClientConversation
		want   string // "" for success
	}{
		{"exporter TLS 1.3", SCRAMSHA256Plus, opts(ss13, CBTLSExporter),
			func(c *scram.Client) *scram.ClientConversation {
				return c.NewConversationWithChannelBinding(exporter13)
			}, ""},
		{"exporter SHA-1", SCRAMSHA1Plus, opts(ss13),
			func(c *scram.Client) *scram.ClientConversation {
				return c.NewConversationWithChannelBinding(exporter13)
			}, ""},
		{"unique TLS 1.2", SCRAMSHA256Plus, opts(ss12, CBTLSUnique),
			func(c *scram.Client) *scram.ClientConversation { return c.NewConversationWithChannelBinding(unique12) }, ""},
		{"plain SCRAM still works", SCRAMSHA256, opts(ss13, CBTLSExporter),
			func(c *scram.Client) *scram.ClientConversation { return c.NewConversation() }, ""},
		{"other connection's binding", SCRAMSHA256Plus, opts(ss13),
			func(c *scram.Client) *scram.ClientConversation { return c.NewConversationWithChannelBinding(other) }, CondNotAuthorized},
		{"unique on TLS 1.3", SCRAMSHA256Plus, opts(ss13),
			func(c *scram.Client) *scram.ClientConversation {
				return c.NewConversationWithChannelBinding(scram.NewTLSUniqueBinding([]byte("x")))
			}, CondNotAuthorized},
		{"type not in CBTypes", SCRAMSHA256Plus, opts(ss12, CBTLSExporter),
			func(c *scram.Client) *scram.ClientConversation { return c.NewConversationWithChannelBinding(unique12) }, CondNotAuthorized},
		{"downgrade: y while PLUS offered", SCRAMSHA256, opts(ss13),
			func(c *scram.Client) *scram.ClientConversation { return c.NewConversationAdvertisingChannelBinding() }, CondNotAuthorized},
		{"y without PLUS offered", SCRAMSHA256, tlsOpts,
			func(c *scram.Client) *scram.ClientConversation { return c.NewConversationAdvertisingChannelBinding() }, ""},
		{"PLUS without binding", SCRAMSHA256Plus, opts(ss13),
			func(c *scram.Client) *scram.ClientConversation { return c.NewConversation() }, CondNotAuthorized},
		{"binding with plain SCRAM", SCRAMSHA256, opts(ss13),
			func(c *scram.Client) *scram.ClientConversation {
				return c.NewConversationWithChannelBinding(exporter13)
			}, CondNotAuthorized},
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
			wantFailure(t, err, tt.want)
		})
	}
}
