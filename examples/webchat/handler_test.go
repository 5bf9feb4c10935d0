package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// fakeDist is a dist directory with the files the handler looks for.
func fakeDist(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{
		"converse.min.js":          "window.converse = {};",
		"curve25519_compiled.wasm": "\x00asm",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func get(t *testing.T, h http.Handler, path string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Result()
}

func TestPage(t *testing.T) {
	// A domain that would break out of the script element if pasted as
	// text: it must arrive in the settings as it is.
	domain := `x</script><script>alert(1)</script>`
	h, err := NewHandler(Config{WebSocketURL: "ws://127.0.0.1:5280/xmpp-websocket", Domain: domain, Dist: fakeDist(t)})
	if err != nil {
		t.Fatal(err)
	}
	resp := get(t, h, "/")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if strings.Count(string(body), "</script>") != 3 {
		t.Errorf("the settings closed a script element:\n%s", body)
	}
	m := regexp.MustCompile(`(?s)<script id="koi-settings" type="application/json">(.*?)</script>`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("no settings in the page:\n%s", body)
	}
	var got map[string]any
	if err := json.Unmarshal(m[1], &got); err != nil {
		t.Fatalf("settings %s: %v", m[1], err)
	}
	if got["websocket_url"] != "ws://127.0.0.1:5280/xmpp-websocket" || got["default_domain"] != domain || got["assets_path"] != "/" {
		t.Errorf("settings %v", got)
	}

	// Converse's files beside the page, with their types.
	resp = get(t, h, "/curve25519_compiled.wasm")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/wasm" {
		t.Errorf("GET the wasm: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp := get(t, h, "/missing.js"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET a missing file: %d", resp.StatusCode)
	}
	if resp := get(t, h, "/../handler.go"); resp.StatusCode == http.StatusOK {
		t.Errorf("GET outside dist: %d", resp.StatusCode)
	}
}

func TestBadConfig(t *testing.T) {
	dist := fakeDist(t)
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{WebSocketURL: "http://127.0.0.1:5280/xmpp-websocket", Domain: "localhost", Dist: dist}, "-websocket"},
		{Config{WebSocketURL: "ws:///xmpp-websocket", Domain: "localhost", Dist: dist}, "-websocket"},
		{Config{WebSocketURL: "ws://127.0.0.1:5280/", Domain: "", Dist: dist}, "-domain"},
		{Config{WebSocketURL: "ws://127.0.0.1:5280/", Domain: "localhost", Dist: t.TempDir()}, "-dist"},
	} {
		if _, err := NewHandler(tc.cfg); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error about %s", tc.cfg, err, tc.want)
		}
	}
	if err := run([]string{"-listen", "127.0.0.1:0", "-dist", t.TempDir()}); err == nil || !strings.Contains(err.Error(), "npm ci") {
		t.Errorf("run without Converse: %v, want the hint to run npm ci", err)
	}
}
