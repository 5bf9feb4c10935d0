package muc

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// Persistent rooms reach the store in two phases, so that no store call
// runs under a room's lock (where it would hold up everyone talking in the
// room): a handler checks a change under the lock and queues a storeOp;
// Deliver writes it without the lock, then applies the change under the
// lock if the store took it, or answers with an error and changes nothing.
// The stanzas that may queue one (mayStore) hold the room's storeMu
// throughout, so two changes to a room's stored state never interleave.

// storeOp is a change to a persistent room that the store must take
// before it is applied.
type storeOp struct {
	write func(ctx context.Context) error // no room lock held; must not touch the room
	apply func()                          // under the lock, after write succeeded
	fail  func(err error)                 // under the lock, after write failed
}

// queueStore hands op to Deliver. Rooms without a store apply at once.
func (r *room) queueStore(op storeOp) {
	if r.svc.store == nil {
		op.apply()
		return
	}
	r.op = &op
	r.storing = true
}

// mayStore reports whether el, to a room, may change what the store keeps
// of it: owner and admin requests, subjects, and invitations (which can
// make members).
func mayStore(el *xmlstream.Element, to jid.JID) bool {
	if to.Resource() != "" {
		return false
	}
	typ := el.Attr("type")
	switch el.Local {
	case "iq":
		return typ == "set"
	case "message":
		return typ == "" || typ == "normal" || (typ == "groupchat" && el.Child(xmlstream.NSClient, "subject") != nil)
	}
	return false
}

// runStore writes the change a handler queued and applies or refuses it.
// The room's lock is not held; held says whether the caller holds its
// storeMu (a change queued by a stanza mayStore did not expect is written
// all the same, and logged: it is a bug).
func (r *room) runStore(ctx context.Context, held bool) {
	r.mu.Lock()
	op := r.op
	r.op = nil
	r.mu.Unlock()
	if op == nil {
		return
	}
	if !held {
		r.svc.log.Error("a room change reached the store without its lock", "room", r.jid.String())
	}
	err := op.write(ctx)
	r.mu.Lock()
	r.storing = false
	if err == nil {
		op.apply()
	} else {
		r.svc.log.Warn("a room change could not be stored; nothing was changed", "room", r.jid.String(), "error", err)
		op.fail(err)
	}
	r.emptied()
	r.mu.Unlock()
}

// storeAccess is what the write phase may use: the store and the room's
// address, copied under the lock.
type storeAccess struct {
	st      Store
	room    string
	timeout time.Duration
}

func (r *room) access() storeAccess {
	return storeAccess{st: r.svc.store, room: r.jid.String(), timeout: r.svc.cfg.StoreTimeout}
}

func (a storeAccess) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), a.timeout)
}

// put writes the room's record.
func (a storeAccess) put(ctx context.Context, rec sdk.MUCRoom) error {
	cctx, cancel := a.ctx(ctx)
	defer cancel()
	return a.st.PutMUCRoom(cctx, rec)
}

// create writes a room that is not stored yet with its affiliations; a
// room that could not be written whole is deleted again, so the store
// never holds half of it.
func (a storeAccess) create(ctx context.Context, rec sdk.MUCRoom, affs []sdk.MUCAffiliation) error {
	if err := a.put(ctx, rec); err != nil {
		return err
	}
	if err := a.setAll(ctx, affs, nil); err != nil {
		return errors.Join(err, a.delete(ctx))
	}
	return nil
}

// delete removes the room and its affiliations.
func (a storeAccess) delete(ctx context.Context) error {
	cctx, cancel := a.ctx(ctx)
	defer cancel()
	return a.st.DeleteMUCRoom(cctx, a.room)
}

// setAll writes affiliations in order; when one fails, those written are
// put back as old has them (nil: nothing to put back).
func (a storeAccess) setAll(ctx context.Context, affs []sdk.MUCAffiliation, old map[string]sdk.MUCAffiliation) error {
	for i, x := range affs {
		cctx, cancel := a.ctx(ctx)
		err := a.st.SetMUCAffiliation(cctx, x)
		cancel()
		if err == nil {
			continue
		}
		if old != nil {
			for k := i - 1; k >= 0; k-- {
				prev, ok := old[affs[k].JID]
				if !ok {
					prev = sdk.MUCAffiliation{Room: a.room, JID: affs[k].JID, Affiliation: "none"}
				}
				cctx, cancel := a.ctx(ctx)
				_ = a.st.SetMUCAffiliation(cctx, prev)
				cancel()
			}
		}
		return err
	}
	return nil
}

// record is the room as the backend keeps it, with cfg and subject.
func (r *room) record(cfg RoomConfig, subject, by string) sdk.MUCRoom {
	m := cfg.toMap(r.salt)
	if len(r.avatar) > 0 {
		m[fAvatarHash] = r.avatar
	}
	return sdk.MUCRoom{
		Room: r.jid.String(), Config: m,
		Subject: subject, SubjectBy: by, Created: r.created.Truncate(time.Millisecond),
	}
}

// affRecords renders affiliations for the store, sorted by JID.
func (r *room) affRecords(affs map[jid.JID]affEntry) []sdk.MUCAffiliation {
	out := make([]sdk.MUCAffiliation, 0, len(affs))
	for j, e := range affs {
		out = append(out, r.affRecord(j, e))
	}
	sort.Slice(out, func(i, k int) bool { return out[i].JID < out[k].JID })
	return out
}

func (r *room) affRecord(j jid.JID, e affEntry) sdk.MUCAffiliation {
	return sdk.MUCAffiliation{Room: r.jid.String(), JID: j.String(), Affiliation: e.aff.String(), Nick: e.nick, Reason: e.reason}
}

// oldRecords indexes the current affiliations, to put back after a
// failed change.
func (r *room) oldRecords() map[string]sdk.MUCAffiliation {
	out := make(map[string]sdk.MUCAffiliation, len(r.affs))
	for j, e := range r.affs {
		out[j.String()] = r.affRecord(j, e)
	}
	return out
}
