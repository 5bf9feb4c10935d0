package roster

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"time"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// A subscription between two users of this server changes both their
// rosters (RFC 6121 §3): alice's item for bob says "to", bob's for alice
// "from", a pending request goes. Written one after the other, a crash
// between the writes would leave a half-subscription that no client can
// repair. So the changes of one stanza are staged in a Tx, under
// both owners' locks, and written in one step: one ApplyRosterChanges call
// when both rosters live in a backend that declares RosterBatch, otherwise
// a retried pair of writes (see writePairs). Memory and roster pushes
// follow only once the backend has everything.

// WithPair runs fn on the rosters of a and b under both their locks. With
// a zero b (a contact on no host of ours) rb is nil; with b == a both are
// the same roster.
func (rs *Rosters) WithPair(ctx context.Context, a, b jid.JID, fn func(ra, rb *Roster) error) error {
	if b.IsZero() || b == a {
		return rs.With(ctx, a, func(r *Roster) error {
			if b.IsZero() {
				return fn(r, nil)
			}
			return fn(r, r)
		})
	}
	// Stripes are taken in index order, so that alice's request to bob and
	// bob's to alice at the same moment cannot wait for each other.
	ia, ib := rs.stripe(a), rs.stripe(b)
	first, second := min(ia, ib), max(ia, ib)
	rs.locks[first].Lock()
	defer rs.locks[first].Unlock()
	if second != first {
		rs.locks[second].Lock()
		defer rs.locks[second].Unlock()
	}
	ra, err := rs.load(ctx, a)
	if err != nil {
		return err
	}
	rb, err := rs.load(ctx, b)
	if err != nil {
		return err
	}
	return fn(ra, rb)
}

// Tx is the staged change of one or two rosters whose locks the
// caller holds. Reads through it (Item, Pending) see the staged state.
type Tx struct {
	rs    *Rosters
	steps []*txStep
}

// txStep is what the transaction does to one roster about one contact.
type txStep struct {
	r       *Roster
	contact jid.JID
	b       Backend
	c       sdk.RosterChange
	// The stored state before, to undo a pair written in half.
	prevItem    *sdk.RosterItem
	prevPending *sdk.PendingSubscription
}

// Begin starts a transaction on rosters whose locks the caller holds
// (With, WithPair).
func (rs *Rosters) Begin() *Tx { return &Tx{rs: rs} }

func (tx *Tx) find(r *Roster, c jid.JID) *txStep {
	for _, s := range tx.steps {
		if s.r == r && s.contact == c {
			return s
		}
	}
	return nil
}

// step returns the step for (r, c), creating it; nil with the error when
// the owner's roster cannot be written.
func (tx *Tx) step(r *Roster, c jid.JID) (*txStep, error) {
	if s := tx.find(r, c); s != nil {
		return s, nil
	}
	b, serr := tx.rs.backend(r.owner)
	if serr != nil {
		return nil, serr
	}
	s := &txStep{r: r, contact: c, b: b, c: sdk.RosterChange{Owner: r.owner.String(), Contact: c.String()}}
	if it, ok := r.stored(c); ok {
		s.prevItem = &it
	}
	if st, ok := r.pending[c]; ok {
		s.prevPending = &sdk.PendingSubscription{JID: c.String(), Stanza: st}
	}
	tx.steps = append(tx.steps, s)
	return s, nil
}

// stored is the owner's own item for c, as the backend has it: without a
// shared roster's part.
func (r *Roster) stored(c jid.JID) (sdk.RosterItem, bool) {
	if r.personal != nil {
		it, ok := r.personal[c]
		return it, ok
	}
	return r.Item(c)
}

// personal is the staged or stored own item for c.
func (tx *Tx) personal(r *Roster, c jid.JID) (sdk.RosterItem, bool) {
	if s := tx.find(r, c); s != nil && s.c.ChangesItem() {
		if s.c.Item == nil {
			return sdk.RosterItem{}, false
		}
		return *s.c.Item, true
	}
	return r.stored(c)
}

// Item is the item for c that clients would see once tx is written.
func (tx *Tx) Item(r *Roster, c jid.JID) (sdk.RosterItem, bool) {
	s := tx.find(r, c)
	if s == nil || !s.c.ChangesItem() {
		return r.Item(c)
	}
	p, hasP := tx.personal(r, c)
	if sh, ok := r.shared[c]; ok {
		return mergeItem(p, hasP, sh), true
	}
	return p, hasP
}

// Pending reports whether a request from c waits once tx is written.
func (tx *Tx) Pending(r *Roster, c jid.JID) bool {
	if s := tx.find(r, c); s != nil && (s.c.Pending != nil || s.c.DeletePending) {
		return s.c.Pending != nil
	}
	_, ok := r.pending[c]
	return ok
}

// SetItem stages it in r, a change of the item read with tx.Item.
//
// For a contact from the shared roster, whose subscription the directory
// fixes at both, only the user's name and groups are kept (in the personal
// roster, with its own subscription state unchanged); a change of nothing
// else is no change.
func (tx *Tx) SetItem(r *Roster, it sdk.RosterItem) error {
	c, err := jid.Parse(it.JID)
	if err != nil {
		return stanza.ErrJIDMalformed
	}
	if _, shared := r.shared[c]; shared {
		cur, _ := tx.Item(r, c)
		if it.Name == cur.Name && slices.Equal(it.Groups, cur.Groups) {
			return nil
		}
		p, ok := tx.personal(r, c)
		if !ok {
			p = sdk.RosterItem{JID: c.String(), Subscription: sdk.SubNone}
		}
		p.Name, p.Groups = it.Name, it.Groups
		it = p
	}
	s, err := tx.step(r, c)
	if err != nil {
		return err
	}
	s.c.Item, s.c.DeleteItem = &it, false
	return nil
}

// DeleteItem stages the removal of contact from r.
func (tx *Tx) DeleteItem(r *Roster, contact jid.JID) error {
	if _, shared := r.shared[contact]; shared {
		return stanza.ErrNotAllowed.WithText("this contact comes from the directory's shared roster and cannot be removed")
	}
	s, err := tx.step(r, contact)
	if err != nil {
		return err
	}
	s.c.Item, s.c.DeleteItem = nil, true
	return nil
}

// SetPending stages a pending inbound subscription from contact.
func (tx *Tx) SetPending(r *Roster, contact jid.JID, st string) error {
	s, err := tx.step(r, contact)
	if err != nil {
		return err
	}
	s.c.Pending, s.c.DeletePending = &sdk.PendingSubscription{JID: contact.String(), Stanza: st}, false
	return nil
}

// DeletePending stages forgetting the pending subscription from contact.
func (tx *Tx) DeletePending(r *Roster, contact jid.JID) error {
	if !tx.Pending(r, contact) {
		return nil
	}
	s, err := tx.step(r, contact)
	if err != nil {
		return err
	}
	s.c.Pending, s.c.DeletePending = nil, true
	return nil
}

// SetItem stores it in owner's roster and pushes it: a transaction of one
// item. Callers hold the lock.
func (rs *Rosters) SetItem(ctx context.Context, r *Roster, it sdk.RosterItem) error {
	tx := rs.Begin()
	if err := tx.SetItem(r, it); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// Commit writes the staged changes, then updates the rosters in memory and
// pushes every changed item to its owner's interested resources. On an
// error nothing changed in memory, and in the backend neither side did
// unless it was unreachable even for the undo (see writePairs).
func (tx *Tx) Commit(ctx context.Context) error {
	if len(tx.steps) == 0 {
		return nil
	}
	versions, err := tx.write(ctx)
	var owners []*Roster
	for _, s := range tx.steps {
		if !slices.Contains(owners, s.r) {
			owners = append(owners, s.r)
			tx.rs.written(s.r.owner)
		}
	}
	if err != nil {
		return err
	}
	for _, s := range tx.steps {
		s.apply()
	}
	for _, r := range owners {
		if v, ok := versions[r.owner.String()]; ok {
			if r.personal != nil {
				r.personalVersion = v
				r.version = r.combinedVersion()
			} else {
				r.version = v
			}
		}
	}
	for _, s := range tx.steps {
		switch {
		case s.c.Item != nil:
			tx.rs.push(s.r.owner, ItemElement(s.r.items[s.contact]), s.r.version)
		case s.c.DeleteItem:
			el := xmlstream.NewElement(NS, "item").SetAttr("jid", s.contact.String()).SetAttr("subscription", "remove")
			tx.rs.push(s.r.owner, el, s.r.version)
		}
	}
	return nil
}

// apply makes the written step the roster's state in memory.
func (s *txStep) apply() {
	r, c := s.r, s.contact
	switch {
	case s.c.Pending != nil:
		r.pending[c] = s.c.Pending.Stanza
	case s.c.DeletePending:
		delete(r.pending, c)
	}
	if !s.c.ChangesItem() {
		return
	}
	own := r.items
	if r.personal != nil {
		own = r.personal
	}
	if s.c.Item != nil {
		own[c] = *s.c.Item
	} else {
		delete(own, c)
	}
	r.remerge(c)
}

// write stores the steps in one call when one backend holds every roster
// and declared it can, in a retried pair otherwise.
func (tx *Tx) write(ctx context.Context) (map[string]string, error) {
	if bw := tx.batchWriter(); bw != nil {
		changes := make([]sdk.RosterChange, len(tx.steps))
		for i, s := range tx.steps {
			changes[i] = s.c
		}
		return bw.ApplyRosterChanges(ctx, changes)
	}
	return tx.writePairs(ctx)
}

// capable is what a backend that declares capabilities has (a plugin, the
// in-process stores of the tests).
type capable interface{ Capabilities() sdk.Capabilities }

func (tx *Tx) batchWriter() sdk.RosterBatchWriter {
	b := tx.steps[0].b
	for _, s := range tx.steps[1:] {
		// Comparing interfaces holding a type without == would panic.
		if !reflect.TypeOf(s.b).Comparable() || !reflect.TypeOf(b).Comparable() || s.b != b {
			return nil
		}
	}
	bw, ok := b.(sdk.RosterBatchWriter)
	c, declares := b.(capable)
	if !ok || !declares || !c.Capabilities().RosterBatch {
		return nil
	}
	return bw
}

// Retries of one write of a pair: the first waits pairBackoff, each next
// one twice as long (about 0.8 s in all).
const (
	pairAttempts = 6
	pairBackoff  = 25 * time.Millisecond
)

// writePairs writes the steps one call at a time, for rosters that no
// single backend call can change together. This is safe because every call
// sets an absolute state (this item, no item, this pending request, none):
// repeated after an error or a lost answer it leaves what one call leaves.
// So once a first write is in, a later one that fails for a passing reason
// (sdk.ErrUnavailable) is retried until it is done or the error is final;
// and when one stays unwritten, the calls made before it, and it, are set
// back to the state they had, the same way, so that the failure leaves
// neither side changed rather than one. The first write is made once, as a
// lone write always was: nothing needs repairing before it is in.
func (tx *Tx) writePairs(ctx context.Context) (map[string]string, error) {
	type op struct {
		b        Backend
		do, undo sdk.RosterChange
	}
	var ops []op
	for _, s := range tx.steps {
		base := sdk.RosterChange{Owner: s.c.Owner, Contact: s.c.Contact}
		if s.c.ChangesItem() {
			do, undo := base, base
			do.Item, do.DeleteItem = s.c.Item, s.c.DeleteItem
			undo.Item, undo.DeleteItem = s.prevItem, s.prevItem == nil
			ops = append(ops, op{s.b, do, undo})
		}
		if s.c.Pending != nil || s.c.DeletePending {
			do, undo := base, base
			do.Pending, do.DeletePending = s.c.Pending, s.c.DeletePending
			undo.Pending, undo.DeletePending = s.prevPending, s.prevPending == nil
			ops = append(ops, op{s.b, do, undo})
		}
	}
	versions := map[string]string{}
	for i, o := range ops {
		attempts := pairAttempts
		if i == 0 {
			attempts = 1
		}
		v, err := retryWrite(ctx, o.b, o.do, attempts)
		if err != nil {
			if len(ops) == 1 {
				return nil, err
			}
			// The failed write may be in, its answer lost: set it back too.
			for j := i; j >= 0; j-- {
				if _, uerr := retryWrite(ctx, ops[j].b, ops[j].undo, pairAttempts); uerr != nil {
					tx.rs.cfg.Log.Error("roster change half written: a retry or the user's next change repairs it",
						"owner", ops[j].undo.Owner, "contact", ops[j].undo.Contact, "error", err, "undo_error", uerr)
					tx.dropCached()
					break
				}
			}
			return nil, err
		}
		if v != "" {
			versions[o.do.Owner] = v
		}
	}
	return versions, nil
}

// dropCached forgets the cached rosters of the transaction, which may no
// longer match their backend. Callers hold their locks.
func (tx *Tx) dropCached() {
	tx.rs.mu.Lock()
	defer tx.rs.mu.Unlock()
	for _, s := range tx.steps {
		delete(tx.rs.cache, s.r.owner)
	}
}

// retryWrite makes one write, up to attempts times while it fails for a
// passing reason.
func retryWrite(ctx context.Context, b Backend, c sdk.RosterChange, attempts int) (string, error) {
	wait := pairBackoff
	for attempt := 1; ; attempt++ {
		v, err := writeOne(ctx, b, c)
		if err == nil || !errors.Is(err, sdk.ErrUnavailable) || attempt >= attempts {
			return v, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", err
		case <-t.C:
		}
		wait *= 2
	}
}

// writeOne makes the one write c holds and returns the roster's version
// when it changed an item.
func writeOne(ctx context.Context, b Backend, c sdk.RosterChange) (string, error) {
	switch {
	case c.Item != nil:
		return b.SetItem(ctx, c.Owner, *c.Item)
	case c.DeleteItem:
		v, err := b.DeleteItem(ctx, c.Owner, c.Contact)
		if errors.Is(err, sdk.ErrNotFound) {
			// Already gone, as after a delete whose answer was lost.
			st, err := b.GetRoster(ctx, c.Owner)
			return st.Version, err
		}
		return v, err
	case c.Pending != nil:
		return "", b.SetPending(ctx, c.Owner, *c.Pending)
	case c.DeletePending:
		return "", b.DeletePending(ctx, c.Owner, c.Contact)
	}
	return "", nil
}
