// Package auth puts a host's authentication backends in order, as
// ejabberd's auth_method list does: the first backend that knows a user
// decides for that user.
package auth

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/sdk"
)

// Backend is an authentication backend as the chain needs it.
type Backend interface {
	sdk.Auth
	sdk.AuthAdmin
	Name() string
	Capabilities() sdk.Capabilities
}

// Chain is the ordered list of a host's authentication backends.
type Chain struct {
	host     string
	backends []Backend
}

// NewChain returns the chain for host.
func NewChain(host string, backends []Backend) *Chain {
	return &Chain{host: host, backends: backends}
}

// Host is the domain the chain authenticates for.
func (c *Chain) Host() string { return c.host }

// SCRAM reports whether every backend keeps SCRAM credentials: only then
// can SCRAM be offered, since the mechanism is chosen before the user is known.
func (c *Chain) SCRAM() bool {
	if len(c.backends) == 0 {
		return false
	}
	for _, b := range c.backends {
		if !b.Capabilities().Auth.SCRAM {
			return false
		}
	}
	return true
}

// Writable reports whether some backend can create accounts.
func (c *Chain) Writable() bool { return c.firstWritable() != nil }

func (c *Chain) firstWritable() Backend {
	for _, b := range c.backends {
		if b.Capabilities().Auth.Access.Writable() {
			return b
		}
	}
	return nil
}

// owner finds the backend that knows user; nil, nil when none does.
func (c *Chain) owner(ctx context.Context, user string) (Backend, error) {
	for _, b := range c.backends {
		ok, err := b.UserExists(ctx, c.host, user)
		if err != nil {
			return nil, fmt.Errorf("auth backend %s: %w", b.Name(), err)
		}
		if ok {
			return b, nil
		}
	}
	return nil, nil
}

// UserExists reports whether any backend knows the (normalised) user.
func (c *Chain) UserExists(ctx context.Context, user string) (bool, error) {
	b, err := c.owner(ctx, user)
	return b != nil, err
}

// CheckPassword implements sasl.Store; user is a raw SASL authcid.
func (c *Chain) CheckPassword(ctx context.Context, user, password string) (bool, error) {
	u, err := jid.NormalizeLocal(user)
	if err != nil {
		return false, nil
	}
	if len(c.backends) == 1 {
		return c.backends[0].CheckPassword(ctx, c.host, u, password)
	}
	b, err := c.owner(ctx, u)
	if err != nil || b == nil {
		return false, err
	}
	return b.CheckPassword(ctx, c.host, u, password)
}

// SCRAMCredentials implements sasl.Store.
func (c *Chain) SCRAMCredentials(ctx context.Context, user, hash string) (sdk.SCRAMCredentials, error) {
	u, err := jid.NormalizeLocal(user)
	if err != nil {
		return sdk.SCRAMCredentials{}, sdk.ErrNotFound
	}
	for _, b := range c.backends {
		cr, err := b.SCRAMCredentials(ctx, c.host, u, hash)
		if errors.Is(err, sdk.ErrNotFound) {
			continue
		}
		return cr, err
	}
	return sdk.SCRAMCredentials{}, sdk.ErrNotFound
}

// Create makes a new account in the first writable backend.
func (c *Chain) Create(ctx context.Context, user, password string) error {
	w := c.firstWritable()
	if w == nil {
		return sdk.ErrReadOnly
	}
	if b, err := c.owner(ctx, user); err != nil {
		return err
	} else if b != nil {
		return sdk.ErrExists
	}
	return w.CreateUser(ctx, c.host, user, password)
}

// SetPassword changes the password where the account lives.
func (c *Chain) SetPassword(ctx context.Context, user, password string) error {
	b, err := c.owner(ctx, user)
	if err != nil {
		return err
	}
	if b == nil {
		return sdk.ErrNotFound
	}
	if !b.Capabilities().Auth.Access.Writable() {
		return fmt.Errorf("%w: %s", sdk.ErrReadOnly, b.Name())
	}
	return b.SetPassword(ctx, c.host, user, password)
}

// Delete removes the account where it lives.
func (c *Chain) Delete(ctx context.Context, user string) error {
	b, err := c.owner(ctx, user)
	if err != nil {
		return err
	}
	if b == nil {
		return sdk.ErrNotFound
	}
	if !b.Capabilities().Auth.Access.Writable() {
		return fmt.Errorf("%w: %s", sdk.ErrReadOnly, b.Name())
	}
	return b.DeleteUser(ctx, c.host, user)
}

// CanChangePassword reports whether user's password lives in a writable
// backend.
func (c *Chain) CanChangePassword(ctx context.Context, user string) (bool, error) {
	b, err := c.owner(ctx, user)
	if err != nil || b == nil {
		return false, err
	}
	return b.Capabilities().Auth.Access.Writable(), nil
}

// Listing is what one backend of a chain lists.
type Listing struct {
	Backend string
	// Writable: the backend owns its accounts (they can be added and
	// changed through koi); otherwise they live elsewhere, in a directory.
	Writable bool
	// Listed is false for a backend that cannot enumerate its accounts.
	Listed bool
	// Users are the local parts, sorted, without those an earlier backend
	// listed: the earlier backend decides for them.
	Users []string
}

// ListEach lists each backend's accounts, in chain order.
func (c *Chain) ListEach(ctx context.Context) ([]Listing, error) {
	seen := map[string]bool{}
	out := make([]Listing, 0, len(c.backends))
	for _, b := range c.backends {
		caps := b.Capabilities().Auth
		l := Listing{Backend: b.Name(), Writable: caps.Access.Writable(), Listed: caps.CanList()}
		if l.Listed {
			us, err := b.ListUsers(ctx, c.host)
			if err != nil {
				return nil, fmt.Errorf("auth backend %s: %w", b.Name(), err)
			}
			for _, u := range us {
				if !seen[u] {
					seen[u] = true
					l.Users = append(l.Users, u)
				}
			}
			sort.Strings(l.Users)
		}
		out = append(out, l)
	}
	return out, nil
}

// List returns the accounts of every backend that can list them, sorted.
func (c *Chain) List(ctx context.Context) ([]string, error) {
	ls, err := c.ListEach(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range ls {
		out = append(out, l.Users...)
	}
	sort.Strings(out)
	return out, nil
}
