package blocking

import (
	"context"
	"slices"
	"time"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/router"
)

// In a cluster every node caches the lists it routes with: its own users'
// and those of users it has remote sessions of. A node that changes a list
// announces it (OnChange), and the others Refresh theirs before the
// client that made the change gets its result, so the change is enforced
// on every node at once. The node that made the change also fixes up
// presence for every resource, local or remote; the other nodes only push
// the change to their sessions that asked for the list.

// OnChange installs f, called after each change this node stores, before
// the change's result is sent. Install it before serving.
func (b *Module) OnChange(f func(ctx context.Context, owner jid.JID)) { b.changed = f }

// Refresh takes owner's list as another node changed it. A list nobody
// here asked for is only dropped (the next use reads the backend); one
// that sessions here asked for is read again now, and they are pushed
// what was blocked and unblocked (§3.3, §3.4).
func (b *Module) Refresh(owner jid.JID) {
	b.mu.Lock()
	l := b.lists[owner]
	b.mu.Unlock()
	if l == nil {
		return
	}
	l.mu.Lock()
	var wanting []*router.Session
	for s := range l.wants {
		if b.router.Session(s.JID()) == s {
			wanting = append(wanting, s)
		}
	}
	f := b.backend(owner)
	if !l.loaded || len(wanting) == 0 || f == nil {
		l.loaded, l.items = false, nil
		l.mu.Unlock()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	strs, err := f.Backend.GetBlocklist(ctx, owner.String())
	if err != nil {
		l.loaded, l.items = false, nil
		l.mu.Unlock()
		b.log.Warn("blocklist changed on another node but cannot be read; its pushes are lost", "user", owner.String(), "error", err)
		return
	}
	before := l.items
	l.items = parseAll(b.log, owner, strs)
	var added, removed []jid.JID
	for _, j := range l.items {
		if !slices.Contains(before, j) {
			added = append(added, j)
		}
	}
	for _, j := range before {
		if !slices.Contains(l.items, j) {
			removed = append(removed, j)
		}
	}
	l.mu.Unlock()
	if len(added) > 0 {
		pushChange(wanting, "block", added)
	}
	if len(removed) > 0 {
		pushChange(wanting, "unblock", removed)
	}
}
