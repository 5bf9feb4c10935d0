// Command koi-backend-htpasswd is a koi auth backend written only against
// koi's SDK: it checks passwords against an htpasswd file of bcrypt hashes
// (htpasswd -B), read-only, for every host that names it. The file is read
// again when it changes, so users added with htpasswd can log in at once.
package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/koi-im/koi/sdk"
)

type options struct {
	File string `json:"file"` // the htpasswd file; relative to the working directory, which koi sets to config.hcl's
}

type backend struct {
	file string
	log  sdk.Logger

	mu      sync.Mutex
	modTime time.Time
	size    int64
	hashes  map[string][]byte // user -> bcrypt hash
}

func newBackend(_ context.Context, cfg sdk.Config, log sdk.Logger) (sdk.Backend, error) {
	var o options
	if err := cfg.Decode(&o); err != nil {
		return nil, err
	}
	if o.File == "" {
		return nil, fmt.Errorf("%w: config: file is required", sdk.ErrInvalid)
	}
	b := &backend{file: o.File, log: log}
	if _, err := b.users(); err != nil { // a bad file stops koi at start
		return nil, fmt.Errorf("%w: %w", sdk.ErrInvalid, err)
	}
	log.Info("htpasswd backend ready", "file", o.File, "users", len(b.hashes))
	return b, nil
}

// users returns the file's hashes, reading the file again if it changed.
// A file that became unreadable or malformed keeps the last good version.
func (b *backend) users() (map[string][]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	fi, err := os.Stat(b.file)
	if err == nil && fi.ModTime().Equal(b.modTime) && fi.Size() == b.size {
		return b.hashes, nil
	}
	var hashes map[string][]byte
	if err == nil {
		hashes, err = parse(b.file)
	}
	if err != nil {
		if b.hashes == nil {
			return nil, err
		}
		b.log.Error("htpasswd file not reloaded; keeping the last good one", "error", err)
		return b.hashes, nil
	}
	b.modTime, b.size, b.hashes = fi.ModTime(), fi.Size(), hashes
	return hashes, nil
}

// parse reads user:hash lines; blank lines and # comments are skipped.
func parse(file string) (map[string][]byte, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	hashes := map[string][]byte{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if _, err := bcrypt.Cost([]byte(hash)); !ok || user == "" || err != nil {
			return nil, fmt.Errorf("%s:%d: want user:bcrypt-hash (htpasswd -B), got %q", file, n, user)
		}
		hashes[user] = []byte(hash)
	}
	return hashes, sc.Err()
}

func (b *backend) hash(host, user string) ([]byte, error) {
	if host == "" || user == "" {
		return nil, fmt.Errorf("%w: empty host or user", sdk.ErrInvalid)
	}
	users, err := b.users()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", sdk.ErrUnavailable, err)
	}
	return users[user], nil
}

func (b *backend) Capabilities() sdk.Capabilities {
	// No SCRAM keys in an htpasswd file: koi offers PLAIN, over TLS.
	return sdk.Capabilities{Auth: sdk.AuthCapabilities{Access: sdk.AccessRead}}
}

func (b *backend) Close() error { return nil }

func (b *backend) UserExists(_ context.Context, host, user string) (bool, error) {
	h, err := b.hash(host, user)
	return h != nil, err
}

func (b *backend) CheckPassword(_ context.Context, host, user, password string) (bool, error) {
	h, err := b.hash(host, user)
	if err != nil || h == nil {
		return false, err
	}
	return bcrypt.CompareHashAndPassword(h, []byte(password)) == nil, nil
}

// Never called: Capabilities does not declare SCRAM.
func (b *backend) SCRAMCredentials(context.Context, string, string, string) (sdk.SCRAMCredentials, error) {
	return sdk.SCRAMCredentials{}, sdk.ErrNotFound
}

func main() { sdk.Serve(newBackend) }
