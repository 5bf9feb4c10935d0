package sm

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"sync"
	"time"

	"github.com/koi-im/koi/core/jid"
)

// ErrUnknown is returned by Claim for an id that names no resumable session
// of the caller: it never existed, it expired, or it belongs to someone
// else. The client sees <item-not-found/> in every case, so that an id
// cannot be probed for existence.
var ErrUnknown = errors.New("no resumable session with this id")

// ErrNotOwner is wrapped by Claim's error when the id exists but belongs to
// another account; callers log it, clients never see the difference.
var ErrNotOwner = errors.New("the session belongs to another account")

// Registry holds the resumable sessions of a server by resumption id:
// attached ones (a client may resume while the server still believes the
// old connection alive) and detached ones, each with its expiry timer. A
// timer is a runtime timer, not a goroutine: a detached session costs a map
// entry, a timer and what T holds.
type Registry[T any] struct {
	mu sync.Mutex
	m  map[string]*entry[T]
}

type entry[T any] struct {
	owner jid.JID // bare JID of the account
	v     T
	timer *time.Timer // non-nil while detached
	gen   uint64      // bumped at every detach and claim: a stale timer does nothing
}

// NewRegistry returns an empty registry.
func NewRegistry[T any]() *Registry[T] {
	return &Registry[T]{m: make(map[string]*entry[T])}
}

// NewID returns a fresh resumption id: 18 random bytes, URL-safe base64.
// It is unguessable; Claim checks the owner too.
func NewID() string {
	var b [18]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Add registers v under a new id for the account owner (its bare JID is
// kept) and returns the id.
func (r *Registry[T]) Add(owner jid.JID, v T) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		id := NewID()
		if _, taken := r.m[id]; !taken {
			r.m[id] = &entry[T]{owner: owner.Bare(), v: v}
			return id
		}
	}
}

// Detach starts id's expiry: unless it is claimed or removed within d,
// the entry is removed and expire(v) runs (on the timer's goroutine). A
// second Detach replaces the first timer. It reports whether id exists.
func (r *Registry[T]) Detach(id string, d time.Duration, expire func(T)) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.m[id]
	if e == nil {
		return false
	}
	if e.timer != nil {
		e.timer.Stop()
	}
	e.gen++
	gen := e.gen
	e.timer = time.AfterFunc(d, func() {
		r.mu.Lock()
		cur := r.m[id]
		if cur != e || e.gen != gen {
			r.mu.Unlock()
			return
		}
		delete(r.m, id)
		e.timer = nil
		r.mu.Unlock()
		expire(e.v)
	})
	return true
}

// Claim returns the session id for a resumption by owner and stops its
// expiry. The entry stays registered under the same id (the resumed stream
// can be resumed again with it). A session of another account is refused
// with ErrUnknown wrapping ErrNotOwner.
func (r *Registry[T]) Claim(id string, owner jid.JID) (T, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var zero T
	e := r.m[id]
	if e == nil {
		return zero, ErrUnknown
	}
	if e.owner != owner.Bare() {
		return zero, errors.Join(ErrUnknown, ErrNotOwner)
	}
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	e.gen++
	return e.v, nil
}

// Remove forgets id and stops its timer, if any.
func (r *Registry[T]) Remove(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.m[id]; e != nil {
		if e.timer != nil {
			e.timer.Stop()
		}
		e.gen++
		delete(r.m, id)
	}
}

// Detached returns the sessions waiting for a resumption, and removes them
// and their timers when take is set (at shutdown, to end them at once).
func (r *Registry[T]) Detached(take bool) []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []T
	for id, e := range r.m {
		if e.timer == nil {
			continue
		}
		out = append(out, e.v)
		if take {
			e.timer.Stop()
			e.gen++
			delete(r.m, id)
		}
	}
	return out
}

// Len returns the number of registered sessions and how many of them are
// detached.
func (r *Registry[T]) Len() (all, detached int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.m {
		if e.timer != nil {
			detached++
		}
	}
	return len(r.m), detached
}
