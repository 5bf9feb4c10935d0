// Package keyfile keeps a server secret in a file of its own: read when it
// is there, made from the system's random source when it is not.
package keyfile

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// LoadOrCreate reads the size-byte key at path, making a new random one
// (mode 0600, directories 0700) when the file does not exist. what names
// the key in errors ("FAST token key"); void says what a new key voids,
// for the error about a key of the wrong size.
func LoadOrCreate(path string, size int, what, void string) ([]byte, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if len(b) != size {
			return nil, fmt.Errorf("%s %s: %d bytes, want %d (delete it to make a new one; %s)", what, path, len(b), size, void)
		}
		return b, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	key := make([]byte, size)
	rand.Read(key)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	// Write aside and link: a crash never leaves a short key.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".key-*")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(key); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	// Link, not rename: two processes starting at once keep one key.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return LoadOrCreate(path, size, what, void)
		}
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return key, nil
}
