package sqlbackend

import (
	"context"
	"database/sql"
	"slices"

	"github.com/koi-im/koi/sdk"
)

// ApplyRosterChanges implements sdk.RosterBatchWriter: every change in one
// transaction, so that both sides of a subscription are stored or neither.
func (s *Store) ApplyRosterChanges(ctx context.Context, changes []sdk.RosterChange) (map[string]string, error) {
	const op = "roster.ApplyRosterChanges"
	if err := sdk.CheckRosterChanges(changes); err != nil {
		return nil, s.fail(op, err)
	}
	for _, c := range changes {
		var err error
		switch {
		case c.Item != nil:
			err = checkItem(c.Owner, *c.Item)
		case c.Pending != nil:
			err = checkAll(checkKey("owner", c.Owner), checkKey("contact", c.Contact), checkText("stanza", c.Pending.Stanza))
		default:
			err = checkAll(checkKey("owner", c.Owner), checkKey("contact", c.Contact))
		}
		if err != nil {
			return nil, s.fail(op, err)
		}
	}
	// The version rows first, as in SetItem, and in one order for every
	// writer: alice's batch and bob's, each touching both rosters, would
	// otherwise each hold the row the other waits for.
	var owners []string
	for _, c := range changes {
		if c.ChangesItem() && !slices.Contains(owners, c.Owner) {
			owners = append(owners, c.Owner)
		}
	}
	slices.Sort(owners)
	var versions map[string]string
	err := s.write(ctx, op, func(tx *sql.Tx) error {
		versions = make(map[string]string, len(owners))
		for _, o := range owners {
			v, err := s.bumpVersion(ctx, tx, o)
			if err != nil {
				return err
			}
			versions[o] = v
		}
		for _, c := range changes {
			if err := s.applyChange(ctx, tx, c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return versions, nil
}

// applyChange writes one change inside tx.
func (s *Store) applyChange(ctx context.Context, tx *sql.Tx, c sdk.RosterChange) error {
	switch {
	case c.Item != nil:
		if err := s.putItem(ctx, tx, c.Owner, *c.Item); err != nil {
			return err
		}
	case c.DeleteItem:
		if _, err := s.removeItem(ctx, tx, c.Owner, c.Contact); err != nil {
			return err
		}
	}
	switch {
	case c.Pending != nil:
		_, err := s.exec(ctx, tx, s.d.upsert("koi_roster_pending", []string{"owner", "contact"}, []string{"stanza"}),
			c.Owner, c.Contact, c.Pending.Stanza)
		return err
	case c.DeletePending:
		_, err := s.exec(ctx, tx, "DELETE FROM koi_roster_pending WHERE owner = ? AND contact = ?", c.Owner, c.Contact)
		return err
	}
	return nil
}
