package httpbackend

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/koi-im/koi/sdk"
)

// TestSign checks the signature against vectors made with openssl:
// printf 'GET\n/check_password?…\n1700000000\n' | openssl dgst -sha256 -hmac secret
func TestSign(t *testing.T) {
	for _, c := range []struct {
		method, target, body, want string
	}{
		{"GET", "/check_password?pass=p&server=h&user=u", "", "0e2847c007a224e8304834c7fc602b66e49da9e4fcca255b9388626a40bf770e"},
		{"POST", "/x/register", "pass=p&server=h&user=u", "87937341afa3685acbb46f272cd6b689663d388cd3e7fc8102b36f64f8fba79b"},
	} {
		if got := Sign([]byte("secret"), c.method, c.target, "1700000000", []byte(c.body)); got != c.want {
			t.Errorf("Sign(%s %s) = %s, want %s", c.method, c.target, got, c.want)
		}
	}
}

// TestSignedRequest checks the headers a request carries with token and
// hmac_secret: what is signed is the request target as sent.
func TestSignedRequest(t *testing.T) {
	var got *http.Request
	var body []byte
	b := newTestBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, body = r, must(io.ReadAll(r.Body))
		w.WriteHeader(http.StatusCreated)
	}), map[string]any{"token": "tok", "hmac_secret": "secret"})
	b.c.now = func() time.Time { return time.Unix(1700000000, 0) }
	if err := b.CreateUser(t.Context(), "h", "u", "p"); err != nil {
		t.Fatal(err)
	}
	if a := got.Header.Get("Authorization"); a != "Bearer tok" {
		t.Errorf("Authorization %q", a)
	}
	if ts := got.Header.Get(headerTimestamp); ts != "1700000000" {
		t.Errorf("%s %q", headerTimestamp, ts)
	}
	want := Sign([]byte("secret"), "POST", got.URL.RequestURI(), "1700000000", body)
	if sig := got.Header.Get(headerSignature); sig != want || got.URL.RequestURI() != "/register" {
		t.Errorf("%s %q for %s, want %q", headerSignature, sig, got.URL.RequestURI(), want)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestNoPasswordInErrors: a failed auth call must not log the URL, whose
// query holds the password.
func TestNoPasswordInErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nobody listens there now
	b, err := New(t.Context(), sdk.Config{Raw: []byte(`{"base_url": "http://` + addr + `", "features": ["auth"], "retries": 0}`)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_, err = b.(*Backend).CheckPassword(t.Context(), "h", "u", "hunter2")
	if !errors.Is(err, sdk.ErrUnavailable) || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("CheckPassword against a closed port: %v, want sdk.ErrUnavailable without the password", err)
	}
}

// TestNoRedirects: a 3xx is not followed (it would carry the credentials
// elsewhere).
func TestNoRedirects(t *testing.T) {
	followed := false
	mux := http.NewServeMux()
	mux.HandleFunc("/roster/{owner}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	})
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) {
		followed = true
		io.WriteString(w, `{"version": "1", "items": [], "pending": []}`)
	})
	b := newTestBackend(t, mux, nil)
	if _, err := b.GetRoster(t.Context(), "a@b"); err == nil || followed {
		t.Errorf("GetRoster answered with a redirect: %v (followed: %v)", err, followed)
	}
}

// TestOversizedAnswer: an answer over max_response_bytes is a temporary
// failure for its caller, but the service did answer and would answer
// the same again: it is not retried, and it does not count against the
// service's health (with breaker_failures = 1, the next call still goes).
func TestOversizedAnswer(t *testing.T) {
	var hits int
	big := `{"version": "1", "items": [], "pending": [], "pad": "` + strings.Repeat("x", 4096) + `"}`
	b := newTestBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		if r.URL.Path == "/roster/big@example.com" {
			io.WriteString(w, big)
			return
		}
		io.WriteString(w, `{"version": "1", "items": [], "pending": []}`)
	}), map[string]any{"max_response_bytes": 1024, "retries": 2, "retry_backoff": "1ms", "breaker_failures": 1})
	for range 3 {
		_, err := b.GetRoster(t.Context(), "big@example.com")
		if !errors.Is(err, sdk.ErrUnavailable) || !strings.Contains(err.Error(), "max_response_bytes") {
			t.Fatalf("GetRoster with a large answer: %v, want sdk.ErrUnavailable naming max_response_bytes", err)
		}
	}
	if hits != 3 {
		t.Errorf("%d requests for 3 calls, want 3 (no retry)", hits)
	}
	if _, err := b.GetRoster(t.Context(), "small@example.com"); err != nil {
		t.Errorf("a call after large answers: %v (the breaker opened?)", err)
	}
}
