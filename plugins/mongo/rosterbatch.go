package mongobackend

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/koi-im/koi/sdk"
)

// Both sides of a subscription change in one ApplyRosterChanges call. The
// servers this backend runs on (FerretDB 1.x, a MongoDB without a replica
// set) have no multi-document transactions, so a batch is journaled:
//
//  1. the documents it will touch are read, and their states before are
//     stored in one journal document (roster_journal), written at once;
//  2. the changes are written, each document marked with the journal's id;
//  3. the versions are bumped and the journal document deleted.
//
// Readers in this process never see a batch half done: it holds the locks
// of every roster it touches. A batch that fails after step 1 is set back at
// once from its journal; if even that fails (the database went away), or
// the process died, the journal stays, and recoverJournal sets it back
// later: at the next start and every journalEvery, once the entry is older
// than journalGrace, which no live batch takes. A document is set back only
// while it still carries the batch's mark (or, for a removal, is still
// absent), so a later change of the same item is never undone.

// journalGrace is how old an entry must be before recovery takes it for
// the leftover of a batch that will not finish.
const (
	journalGrace = time.Minute
	journalEvery = 30 * time.Second
)

type journalDoc struct {
	ID   string         `bson:"_id"`
	At   time.Time      `bson:"at"`
	Undo []journalEntry `bson:"undo"`
}

// journalEntry is one change's before state. Only the parts the change
// touches are set back.
type journalEntry struct {
	Owner   string `bson:"owner"`
	Contact string `bson:"contact"`
	// SetsItem/DeletesItem say what the batch does to the item; Item is the
	// item before (nil: there was none).
	SetsItem    bool        `bson:"sets_item,omitempty"`
	DeletesItem bool        `bson:"deletes_item,omitempty"`
	Item        *rosterItem `bson:"item,omitempty"`
	SetsPending bool        `bson:"sets_pending,omitempty"`
	DropsPend   bool        `bson:"drops_pending,omitempty"`
	Pending     *pendingDoc `bson:"pending,omitempty"`
}

// ApplyRosterChanges implements sdk.RosterBatchWriter.
func (s *Store) ApplyRosterChanges(ctx context.Context, changes []sdk.RosterChange) (map[string]string, error) {
	const op = "roster.ApplyRosterChanges"
	if err := checkChanges(changes); err != nil {
		return nil, s.fail(op, err)
	}
	var owners []string
	for _, c := range changes {
		if !slices.Contains(owners, c.Owner) {
			owners = append(owners, c.Owner)
		}
	}
	defer s.rosterLocks.lockAll(owners)()
	j, err := s.beginBatch(ctx, changes)
	if err != nil {
		return nil, s.fail(op, err)
	}
	versions, err := s.finishBatch(ctx, j.ID, changes)
	if err != nil {
		if uerr := s.undoBatch(ctx, j); uerr != nil {
			s.log.Warn("roster batch not set back yet; recovery will", "journal", j.ID, "error", uerr)
		}
		return nil, s.fail(op, err)
	}
	return versions, nil
}

func checkChanges(changes []sdk.RosterChange) error {
	if err := sdk.CheckRosterChanges(changes); err != nil {
		return err
	}
	for _, c := range changes {
		errs := []error{checkKey("owner", c.Owner), checkKey("contact", c.Contact)}
		if c.Item != nil {
			errs = append(errs, checkItem(c.Owner, *c.Item))
		}
		if c.Pending != nil {
			errs = append(errs, checkText("stanza", c.Pending.Stanza))
		}
		if err := checkAll(errs...); err != nil {
			return err
		}
	}
	return nil
}

// beginBatch reads the before states and writes the journal entry.
func (s *Store) beginBatch(ctx context.Context, changes []sdk.RosterChange) (journalDoc, error) {
	var idb [12]byte
	rand.Read(idb[:])
	j := journalDoc{ID: hex.EncodeToString(idb[:]), At: time.Now().UTC()}
	for _, c := range changes {
		e := journalEntry{Owner: c.Owner, Contact: c.Contact,
			SetsItem: c.Item != nil, DeletesItem: c.DeleteItem, SetsPending: c.Pending != nil, DropsPend: c.DeletePending}
		if c.ChangesItem() {
			var it rosterItem
			switch err := s.rosterItems.FindOne(ctx, ownerJID(c.Owner, c.Contact)).Decode(&it); {
			case err == nil:
				it.Txn = ""
				e.Item = &it
			case !errors.Is(err, mongo.ErrNoDocuments):
				return j, err
			}
		}
		if c.Pending != nil || c.DeletePending {
			var p pendingDoc
			switch err := s.rosterPending.FindOne(ctx, ownerJID(c.Owner, c.Contact)).Decode(&p); {
			case err == nil:
				p.Txn = ""
				e.Pending = &p
			case !errors.Is(err, mongo.ErrNoDocuments):
				return j, err
			}
		}
		j.Undo = append(j.Undo, e)
	}
	_, err := s.rosterJournal.InsertOne(ctx, j)
	return j, err
}

// finishBatch writes the changes marked with the journal id, bumps the
// versions and closes the entry.
func (s *Store) finishBatch(ctx context.Context, id string, changes []sdk.RosterChange) (map[string]string, error) {
	var owners []string
	for _, c := range changes {
		if err := s.writeChange(ctx, id, c); err != nil {
			return nil, err
		}
		if c.ChangesItem() && !slices.Contains(owners, c.Owner) {
			owners = append(owners, c.Owner)
		}
	}
	versions := make(map[string]string, len(owners))
	for _, o := range owners {
		v, err := s.bumpVersion(ctx, o)
		if err != nil {
			return nil, err
		}
		versions[o] = v
	}
	_, err := s.rosterJournal.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
	return versions, err
}

// writeChange writes one change's parts, each an absolute state.
func (s *Store) writeChange(ctx context.Context, id string, c sdk.RosterChange) error {
	key := docKey(c.Owner, c.Contact)
	switch {
	case c.Item != nil:
		it := c.Item
		doc := rosterItem{ID: key, Owner: c.Owner, JID: it.JID, Name: it.Name, Subscription: it.Subscription, Ask: it.Ask,
			Approved: it.Approved, Groups: slices.Clone(it.Groups), Txn: id}
		if err := put(ctx, s.rosterItems, key, doc); err != nil {
			return err
		}
	case c.DeleteItem:
		if _, err := s.rosterItems.DeleteOne(ctx, ownerJID(c.Owner, c.Contact)); err != nil {
			return err
		}
	}
	switch {
	case c.Pending != nil:
		doc := pendingDoc{ID: key, Owner: c.Owner, JID: c.Contact, Stanza: c.Pending.Stanza, Txn: id}
		return put(ctx, s.rosterPending, key, doc)
	case c.DeletePending:
		_, err := s.rosterPending.DeleteOne(ctx, ownerJID(c.Owner, c.Contact))
		return err
	}
	return nil
}

// undoBatch sets back what journal entry j's batch may have written and
// deletes the entry. The caller holds the locks of j's rosters.
func (s *Store) undoBatch(ctx context.Context, j journalDoc) error {
	var changed []string
	for _, e := range slices.Backward(j.Undo) {
		if e.SetsItem || e.DeletesItem {
			done, err := setBack(ctx, s.rosterItems, j.ID, docKey(e.Owner, e.Contact), e.DeletesItem, e.Item)
			if err != nil {
				return err
			}
			if done && !slices.Contains(changed, e.Owner) {
				changed = append(changed, e.Owner)
			}
		}
		if e.SetsPending || e.DropsPend {
			if _, err := setBack(ctx, s.rosterPending, j.ID, docKey(e.Owner, e.Contact), e.DropsPend, e.Pending); err != nil {
				return err
			}
		}
	}
	// Items set back are a change clients must see (XEP-0237).
	for _, o := range changed {
		if _, err := s.bumpVersion(ctx, o); err != nil {
			return err
		}
	}
	_, err := s.rosterJournal.DeleteOne(ctx, bson.D{{Key: "_id", Value: j.ID}})
	return err
}

// setBack restores the document key of c to before (nil: absent) if the
// batch id is still what it shows: its mark, or, when the batch removed it,
// its absence. It reports whether it changed anything.
func setBack[T any](ctx context.Context, c *mongo.Collection, id, key string, removed bool, before *T) (bool, error) {
	marked := bson.D{{Key: "_id", Value: key}, {Key: "txn", Value: id}}
	if before == nil {
		res, err := c.DeleteOne(ctx, marked)
		return err == nil && res.DeletedCount > 0, err
	}
	res, err := c.ReplaceOne(ctx, marked, before)
	if err != nil || res.MatchedCount > 0 {
		return err == nil, err
	}
	if !removed {
		return false, nil // never written, or changed since
	}
	_, err = c.InsertOne(ctx, before)
	if mongo.IsDuplicateKeyError(err) {
		return false, nil // written again since the batch removed it
	}
	return err == nil, err
}

// recoverJournal sets back every batch whose entry is older than grace:
// its process died or lost the database before finishing or undoing it.
func (s *Store) recoverJournal(ctx context.Context, grace time.Duration) error {
	filter := bson.D{{Key: "at", Value: bson.D{{Key: "$lt", Value: time.Now().UTC().Add(-grace)}}}}
	var left []journalDoc
	if err := findAll(ctx, s.rosterJournal, filter, nil, &left); err != nil {
		return s.fail("roster.recoverJournal", err)
	}
	for _, j := range left {
		var owners []string
		for _, e := range j.Undo {
			owners = append(owners, e.Owner)
		}
		unlock := s.rosterLocks.lockAll(owners)
		err := s.undoBatch(ctx, j)
		unlock()
		if err != nil {
			return s.fail("roster.recoverJournal", err)
		}
		s.log.Warn("roster batch that did not finish was set back", "journal", j.ID, "started", j.At)
	}
	return nil
}

// recoverLoop runs recoverJournal every journalEvery until ctx ends.
func (s *Store) recoverLoop(ctx context.Context) {
	t := time.NewTicker(journalEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.recoverJournal(ctx, journalGrace); err != nil && ctx.Err() == nil {
			s.log.Warn("roster journal recovery failed; will retry", "error", err)
		}
	}
}
