package httpbackend

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/koi-im/koi/sdk"
)

func TestAuthAnswers(t *testing.T) {
	for _, c := range []struct {
		name   string
		status int
		body   string
		style  string
		want   bool
		err    error
	}{
		{"true", 200, "true", styleProsody, true, nil},
		{"true with newline", 200, "true\n", styleProsody, true, nil},
		{"false", 200, "false", styleProsody, false, nil},
		{"401 is false", 401, "", styleProsody, false, nil},
		{"404 is false", 404, "", styleProsody, false, nil},
		{"403 is false", 403, "", styleEjabberd, false, nil},
		{"prosody: 400 is an error", 400, "bad", styleProsody, false, sdk.ErrInvalid},
		{"ejabberd: any 4xx is false", 400, "bad", styleEjabberd, false, nil},
		{"500 is unavailable", 500, "", styleProsody, false, sdk.ErrUnavailable},
		{"503 is unavailable, ejabberd too", 503, "", styleEjabberd, false, sdk.ErrUnavailable},
		{"501 is unsupported", 501, "", styleProsody, false, errors.ErrUnsupported},
		{"a body that is neither", 200, "yes", styleProsody, false, sdk.ErrUnavailable},
		{"204 is no answer", 204, "", styleProsody, false, sdk.ErrUnavailable},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := newTestBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(c.status)
				io.WriteString(w, c.body)
			}), map[string]any{"auth_style": c.style, "retries": 0})
			ok, err := b.CheckPassword(t.Context(), "example.com", "juliet", "secret")
			if ok != c.want || !errors.Is(err, c.err) || (c.err == nil && err != nil) {
				t.Errorf("CheckPassword = %v, %v; want %v, %v", ok, err, c.want, c.err)
			}
		})
	}
}

// TestAuthRequests checks the shape of each request: reads are GETs with
// the parameters in the query, writes are POSTed forms.
func TestAuthRequests(t *testing.T) {
	type seen struct {
		method, path, ctype string
		params              url.Values
	}
	var got seen
	b := newTestBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		params := r.URL.Query()
		if r.Method == http.MethodPost {
			params = r.PostForm
		}
		got = seen{r.Method, r.URL.Path, r.Header.Get("Content-Type"), params}
		switch r.URL.Path {
		case "/api/check_password", "/api/user_exists":
			io.WriteString(w, "true")
		case "/api/register":
			w.WriteHeader(http.StatusCreated)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}), map[string]any{})
	b.set.BaseURL.Path = "/api" // a base URL with a path keeps it
	form := "application/x-www-form-urlencoded"
	for _, c := range []struct {
		do   func() error
		want seen
	}{
		{func() error { _, err := b.CheckPassword(t.Context(), "h.example", "zoë", "p&ss w"); return err },
			seen{"GET", "/api/check_password", "", url.Values{"user": {"zoë"}, "server": {"h.example"}, "pass": {"p&ss w"}}}},
		{func() error { _, err := b.UserExists(t.Context(), "h.example", "zoë"); return err },
			seen{"GET", "/api/user_exists", "", url.Values{"user": {"zoë"}, "server": {"h.example"}}}},
		{func() error { return b.CreateUser(t.Context(), "h.example", "zoë", "pw") },
			seen{"POST", "/api/register", form, url.Values{"user": {"zoë"}, "server": {"h.example"}, "pass": {"pw"}}}},
		{func() error { return b.SetPassword(t.Context(), "h.example", "zoë", "pw2") },
			seen{"POST", "/api/set_password", form, url.Values{"user": {"zoë"}, "server": {"h.example"}, "pass": {"pw2"}}}},
		{func() error { return b.DeleteUser(t.Context(), "h.example", "zoë") },
			seen{"POST", "/api/remove_user", form, url.Values{"user": {"zoë"}, "server": {"h.example"}}}},
	} {
		if err := c.do(); err != nil {
			t.Errorf("%s %s: %v", c.want.method, c.want.path, err)
			continue
		}
		if got.method != c.want.method || got.path != c.want.path || got.ctype != c.want.ctype || got.params.Encode() != c.want.params.Encode() {
			t.Errorf("request %+v, want %+v", got, c.want)
		}
	}
}

func TestAuthWriteAnswers(t *testing.T) {
	for _, c := range []struct {
		status int
		err    error
	}{
		{200, nil}, {201, nil}, {204, nil},
		{409, sdk.ErrExists}, {404, sdk.ErrNotFound}, {403, sdk.ErrReadOnly},
		{400, sdk.ErrInvalid}, {501, sdk.ErrReadOnly}, {500, sdk.ErrUnavailable},
	} {
		b := newTestBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(c.status)
		}), map[string]any{})
		err := b.CreateUser(t.Context(), "h.example", "romeo", "pw")
		if !errors.Is(err, c.err) || (c.err == nil && err != nil) {
			t.Errorf("status %d: CreateUser error %v, want %v", c.status, err, c.err)
		}
	}
}
