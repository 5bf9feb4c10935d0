package webui

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

func get(t *testing.T, h http.Handler, path string, hdr ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func TestFiles(t *testing.T) {
	h := Handler()
	for path, ctype := range map[string]string{
		"/":          "text/html; charset=utf-8",
		"/admin.js":  "text/javascript; charset=utf-8",
		"/admin.css": "text/css; charset=utf-8",
		"/icon.svg":  "image/svg+xml",
	} {
		resp := get(t, h, path)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ctype || len(body) == 0 {
			t.Errorf("%s: %d %q, %d bytes; want 200 %q", path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body), ctype)
			continue
		}
		if got := resp.Header.Get("Content-Security-Policy"); got != Policy {
			t.Errorf("%s: CSP %q", path, got)
		}
		etag := resp.Header.Get("ETag")
		if etag == "" || resp.Header.Get("Cache-Control") != "no-cache" {
			t.Errorf("%s: ETag %q, Cache-Control %q: want an ETag and revalidation", path, etag, resp.Header.Get("Cache-Control"))
			continue
		}
		if again := get(t, h, path, "If-None-Match", etag); again.StatusCode != http.StatusNotModified {
			t.Errorf("%s with its ETag: %d, want 304", path, again.StatusCode)
		}
		if other := get(t, h, path, "If-None-Match", `"stale"`); other.StatusCode != 200 {
			t.Errorf("%s with a stale ETag: %d, want 200", path, other.StatusCode)
		}
	}
	for _, path := range []string{"/index.html", "/nope.js", "/../webui.go", "/static/admin.js"} {
		if resp := get(t, h, path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, resp.StatusCode)
		}
	}
}

// The page must work under its own Content-Security-Policy: no inline
// script, event handler or style, and every file it refers to is one koi
// serves (no CDN).
func TestPageFitsPolicy(t *testing.T) {
	h := Handler()
	page, _ := io.ReadAll(get(t, h, "/").Body)
	doc, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	refs := 0
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			switch n.Data {
			case "script":
				if n.FirstChild != nil || attr(n, "src") == "" {
					t.Errorf("an inline <script>: the policy blocks it")
				}
			case "style":
				t.Errorf("an inline <style>: the policy blocks it")
			}
			for _, a := range n.Attr {
				switch {
				case strings.HasPrefix(a.Key, "on"):
					t.Errorf("<%s %s=…>: inline handlers are blocked by the policy", n.Data, a.Key)
				case a.Key == "style":
					t.Errorf("<%s style=…>: inline styles are blocked by the policy", n.Data)
				case a.Key == "src" || a.Key == "href":
					refs++
					if strings.Contains(a.Val, ":") || strings.HasPrefix(a.Val, "/") {
						t.Errorf("<%s %s=%q>: only the page's own files, by relative name", n.Data, a.Key, a.Val)
					} else if resp := get(t, h, "/"+a.Val); resp.StatusCode != 200 {
						t.Errorf("<%s %s=%q>: %d", n.Data, a.Key, a.Val, resp.StatusCode)
					}
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if refs < 3 {
		t.Errorf("the page refers to %d files; want its script, style sheet and icon", refs)
	}
	// Server text reaches the page through textContent only, and the
	// token only through the Authorization header.
	js, _ := io.ReadAll(get(t, h, "/admin.js").Body)
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "localStorage", "?token", "&token"} {
		if bytes.Contains(js, []byte(bad)) {
			t.Errorf("admin.js uses %s", bad)
		}
	}
	if !regexp.MustCompile(`Authorization: 'Bearer ' \+ sessionStorage\.getItem`).Match(js) {
		t.Error("admin.js does not send the token from sessionStorage as the Authorization header")
	}
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}
