// Command koi-backend-example keeps accounts in memory.
package main

import (
	"context"
	"fmt"
	"sync"

	"github.com/koi-im/koi/sdk"
)

// options is the plugin's block in config.hcl.
type options struct {
	Host     string `json:"host"`
	Admin    string `json:"admin"`
	Password string `json:"password"`
}

type backend struct {
	mu    sync.Mutex
	users map[string]string // host + "/" + user -> password
}

func (b *backend) Capabilities() sdk.Capabilities {
	// Auth read-only: koi checks passwords but never creates users here.
	return sdk.Capabilities{Auth: sdk.AuthCapabilities{Access: sdk.AccessRead}}
}

func (b *backend) Close() error { return nil }

// lookup is shared by the Auth methods. An empty host or user is a
// malformed request (sdk.ErrInvalid), not an unknown user.
func (b *backend) lookup(host, user string) (string, bool, error) {
	if host == "" || user == "" {
		return "", false, fmt.Errorf("%w: empty host or user", sdk.ErrInvalid)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	pw, ok := b.users[host+"/"+user]
	return pw, ok, nil
}

func (b *backend) UserExists(_ context.Context, host, user string) (bool, error) {
	_, ok, err := b.lookup(host, user)
	return ok, err
}

// CheckPassword answers false, nil for an unknown user: that is an
// answer, not an error.
func (b *backend) CheckPassword(_ context.Context, host, user, password string) (bool, error) {
	pw, ok, err := b.lookup(host, user)
	return ok && pw == password, err
}

// Never called: Capabilities does not declare SCRAM.
func (b *backend) SCRAMCredentials(context.Context, string, string, string) (sdk.SCRAMCredentials, error) {
	return sdk.SCRAMCredentials{}, sdk.ErrNotFound
}

func newBackend(_ context.Context, cfg sdk.Config, log sdk.Logger) (sdk.Backend, error) {
	opts := options{Host: "localhost"}
	if err := cfg.Decode(&opts); err != nil {
		return nil, err // names the unknown key, wraps sdk.ErrInvalid
	}
	if opts.Admin == "" {
		return nil, fmt.Errorf("%w: config: admin is required", sdk.ErrInvalid)
	}
	log.Info("example backend ready", "host", opts.Host, "admin", opts.Admin)
	return &backend{users: map[string]string{opts.Host + "/" + opts.Admin: opts.Password}}, nil
}

func main() { sdk.Serve(newBackend) }
