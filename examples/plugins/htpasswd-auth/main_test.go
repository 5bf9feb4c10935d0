package main

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/koi-im/koi/sdk"
	"github.com/koi-im/koi/sdk/sdktest"
)

// line is an htpasswd line for user, with the $2y$ prefix htpasswd -B
// writes (the same algorithm as Go's $2a$).
func line(t *testing.T, user, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return user + ":" + strings.Replace(string(h), "$2a$", "$2y$", 1) + "\n"
}

func writeFile(t *testing.T, path string, lines ...string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}
}

func config(t *testing.T, path string) []byte {
	t.Helper()
	cfg, err := json.Marshal(options{File: path})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestConformance runs the SDK's kit in process and through the built
// plugin, with an account the test wrote.
func TestConformance(t *testing.T) {
	path := filepath.Join(t.TempDir(), "htpasswd")
	writeFile(t, path, "# koi users\n", line(t, "alice", "p\u00e4ss:w\u00f6rd"), "\n")
	sdktest.Run(t, newBackend, sdktest.Options{
		Config:           config(t, path),
		PluginCommand:    sdktest.BuildPlugin(t, "."),
		ExistingUser:     "alice",
		ExistingPassword: "p\u00e4ss:w\u00f6rd",
	})
}

func TestReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "htpasswd")
	writeFile(t, path, line(t, "alice", "secret"))
	sb, err := newBackend(t.Context(), sdk.Config{Raw: config(t, path)}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	b := sb.(*backend)
	check := func(user, password string, want bool) {
		t.Helper()
		if ok, err := b.CheckPassword(t.Context(), "example.com", user, password); err != nil || ok != want {
			t.Errorf("CheckPassword(%q, %q) = %v, %v; want %v", user, password, ok, err, want)
		}
	}
	check("alice", "secret", true)
	check("bob", "secret", false)

	writeFile(t, path, line(t, "alice", "secret"), line(t, "bob", "hunter2"))
	later := time.Now().Add(time.Second)
	if err := os.Chtimes(path, later, later); err != nil { // a coarse clock must not hide the change
		t.Fatal(err)
	}
	check("bob", "hunter2", true)

	// A broken file keeps the last good one.
	writeFile(t, path, "bob:$apr1$not-bcrypt\n")
	check("bob", "hunter2", true)
}

func TestBadFile(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"md5":     "alice:$apr1$abc$def\n",
		"no-hash": "alice\n",
		"plain":   "alice:secret\n",
	} {
		path := filepath.Join(dir, name)
		writeFile(t, path, content)
		if _, err := newBackend(t.Context(), sdk.Config{Raw: config(t, path)}, slog.New(slog.DiscardHandler)); err == nil {
			t.Errorf("newBackend accepted a %s line", name)
		}
	}
	if _, err := newBackend(t.Context(), sdk.Config{Raw: config(t, filepath.Join(dir, "absent"))}, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("newBackend accepted a missing file")
	}
}
