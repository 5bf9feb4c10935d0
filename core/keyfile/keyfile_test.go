package keyfile

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadOrCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "k.key")
	a, err := LoadOrCreate(path, 32, "test key", "x")
	if err != nil || len(a) != 32 {
		t.Fatalf("create: %v %d", err, len(a))
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode: %v %v", fi.Mode(), err)
	}
	b, err := LoadOrCreate(path, 32, "test key", "x")
	if err != nil || !bytes.Equal(a, b) {
		t.Fatalf("reload gave another key: %v", err)
	}
	if _, err := LoadOrCreate(path, 16, "test key", "every token is then void"); err == nil ||
		!strings.Contains(err.Error(), "test key") || !strings.Contains(err.Error(), "every token is then void") {
		t.Fatalf("wrong size: %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".key-*"))
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}
