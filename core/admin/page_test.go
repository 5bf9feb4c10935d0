package admin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/admin/webui"
)

// The listener serves the page next to the API: the page's files without
// a token, the API only with it, and every answer with headers that keep
// it out of frames, caches and other types.
func TestListenerRoutes(t *testing.T) {
	f := &fakeKoi{users: map[string]string{}}
	h := Handler(Config{Token: token, Version: "test", Started: time.Now(), Log: hclog.NewNullLogger(),
		Users: f, Sessions: f, Rosters: f, Messages: f, Plugins: f})
	do := func(method, path, tok string) (*http.Response, string) {
		req := httptest.NewRequest(method, path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		b, _ := io.ReadAll(rec.Body)
		return rec.Result(), string(b)
	}
	for _, tc := range []struct {
		method, path, tok string
		status            int
		ctype, location   string
	}{
		{"GET", "/", "", http.StatusFound, "", "admin/"},
		{"GET", "/admin", "", http.StatusTemporaryRedirect, "text/html; charset=utf-8", "/admin/"},
		{"GET", "/admin/", "", 200, "text/html; charset=utf-8", ""},
		{"HEAD", "/admin/", "", 200, "text/html; charset=utf-8", ""},
		{"GET", "/admin/admin.js", "", 200, "text/javascript; charset=utf-8", ""},
		{"GET", "/admin/missing.js", "", 404, "text/plain; charset=utf-8", ""},
		{"POST", "/admin/", "", 404, "application/json", ""},
		{"GET", "/metrics", "", 404, "application/json", ""},
		{"GET", "/api/v1/stats", "", 401, "application/json", ""},
		{"GET", "/api/v1/stats", token, 200, "application/json", ""},
		{"GET", "/api/v1/nonsense", "", 401, "application/json", ""},
		// No counters configured: the call says so rather than zeros.
		{"GET", "/api/v1/counters", token, 503, "application/json", ""},
	} {
		resp, body := do(tc.method, tc.path, tc.tok)
		what := tc.method + " " + tc.path
		if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != tc.ctype || resp.Header.Get("Location") != tc.location {
			t.Errorf("%s: %d %q Location %q, want %d %q %q\n%s", what, resp.StatusCode, resp.Header.Get("Content-Type"),
				resp.Header.Get("Location"), tc.status, tc.ctype, tc.location, body)
		}
		if resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("X-Content-Type-Options") != "nosniff" ||
			resp.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: security headers %v", what, resp.Header)
		}
		csp := resp.Header.Get("Content-Security-Policy")
		switch {
		case strings.HasPrefix(tc.path, "/admin/") && resp.StatusCode == 200:
			if csp != webui.Policy || resp.Header.Get("Cache-Control") != "no-cache" {
				t.Errorf("%s: CSP %q, Cache-Control %q", what, csp, resp.Header.Get("Cache-Control"))
			}
		default:
			if !strings.Contains(csp, "default-src 'none'") || resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("%s: CSP %q, Cache-Control %q: want nothing allowed and no-store", what, csp, resp.Header.Get("Cache-Control"))
			}
		}
	}
}
