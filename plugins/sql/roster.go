package sqlbackend

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"

	"github.com/koi-im/koi/sdk"
)

// GetRoster returns the owner's roster as one consistent snapshot; an
// unknown owner has an empty roster at version "0".
func (s *Store) GetRoster(ctx context.Context, owner string) (sdk.RosterState, error) {
	const op = "roster.GetRoster"
	if err := checkKey("owner", owner); err != nil {
		return sdk.RosterState{}, s.fail(op, err)
	}
	var st sdk.RosterState
	err := s.read(ctx, op, func(tx *sql.Tx) error {
		st = sdk.RosterState{Version: "0"}
		var v int64
		switch err := s.scanOne(ctx, tx, "SELECT version FROM koi_roster_versions WHERE owner = ?", []any{owner}, &v); err {
		case nil:
			st.Version = strconv.FormatInt(v, 10)
		case sql.ErrNoRows:
		default:
			return err
		}
		if err := s.loadItems(ctx, tx, owner, &st); err != nil {
			return err
		}
		return s.loadPending(ctx, tx, owner, &st)
	})
	if err != nil {
		return sdk.RosterState{}, err
	}
	return st, nil
}

func (s *Store) loadItems(ctx context.Context, tx *sql.Tx, owner string, st *sdk.RosterState) error {
	rows, err := s.query(ctx, tx,
		"SELECT contact, name, subscription, ask, approved FROM koi_roster_items WHERE owner = ? ORDER BY contact", owner)
	if err != nil {
		return err
	}
	defer rows.Close()
	index := map[string]int{}
	for rows.Next() {
		var it sdk.RosterItem
		var ask, approved int
		if err := rows.Scan(&it.JID, &it.Name, &it.Subscription, &ask, &approved); err != nil {
			return err
		}
		it.Ask, it.Approved = ask != 0, approved != 0
		index[it.JID] = len(st.Items)
		st.Items = append(st.Items, it)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	rows.Close()
	if len(st.Items) == 0 {
		return nil
	}
	grows, err := s.query(ctx, tx, "SELECT contact, grp FROM koi_roster_groups WHERE owner = ? ORDER BY contact, pos", owner)
	if err != nil {
		return err
	}
	defer grows.Close()
	for grows.Next() {
		var contact, grp string
		if err := grows.Scan(&contact, &grp); err != nil {
			return err
		}
		if i, ok := index[contact]; ok {
			st.Items[i].Groups = append(st.Items[i].Groups, grp)
		}
	}
	return grows.Err()
}

func (s *Store) loadPending(ctx context.Context, tx *sql.Tx, owner string, st *sdk.RosterState) error {
	rows, err := s.query(ctx, tx, "SELECT contact, stanza FROM koi_roster_pending WHERE owner = ? ORDER BY contact", owner)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var p sdk.PendingSubscription
		if err := rows.Scan(&p.JID, &p.Stanza); err != nil {
			return err
		}
		st.Pending = append(st.Pending, p)
	}
	return rows.Err()
}

// SetItem creates or replaces the item for item.JID and returns the
// roster's new version.
func (s *Store) SetItem(ctx context.Context, owner string, item sdk.RosterItem) (string, error) {
	const op = "roster.SetItem"
	if err := checkItem(owner, item); err != nil {
		return "", s.fail(op, err)
	}
	var version string
	err := s.write(ctx, op, func(tx *sql.Tx) error {
		// The version row first: it serialises the owner's writers before
		// they touch items and groups, where they could deadlock.
		var err error
		if version, err = s.bumpVersion(ctx, tx, owner); err != nil {
			return err
		}
		return s.putItem(ctx, tx, owner, item)
	})
	return version, err
}

// putItem writes item and its groups inside tx, whose caller bumped the
// owner's version first.
func (s *Store) putItem(ctx context.Context, tx *sql.Tx, owner string, item sdk.RosterItem) error {
	if _, err := s.exec(ctx, tx, s.d.upsert("koi_roster_items",
		[]string{"owner", "contact"}, []string{"name", "subscription", "ask", "approved"}),
		owner, item.JID, item.Name, item.Subscription, boolInt(item.Ask), boolInt(item.Approved)); err != nil {
		return err
	}
	if _, err := s.exec(ctx, tx, "DELETE FROM koi_roster_groups WHERE owner = ? AND contact = ?", owner, item.JID); err != nil {
		return err
	}
	for i, g := range item.Groups {
		if _, err := s.exec(ctx, tx, "INSERT INTO koi_roster_groups (owner, contact, pos, grp) VALUES (?, ?, ?, ?)",
			owner, item.JID, i, g); err != nil {
			return err
		}
	}
	return nil
}

// DeleteItem removes the item for contact and returns the roster's new
// version, or sdk.ErrNotFound.
func (s *Store) DeleteItem(ctx context.Context, owner, contact string) (string, error) {
	const op = "roster.DeleteItem"
	if err := checkAll(checkKey("owner", owner), checkKey("contact", contact)); err != nil {
		return "", s.fail(op, err)
	}
	var version string
	err := s.write(ctx, op, func(tx *sql.Tx) error {
		// Version first, as in SetItem; an absent item rolls it back.
		var err error
		if version, err = s.bumpVersion(ctx, tx, owner); err != nil {
			return err
		}
		found, err := s.removeItem(ctx, tx, owner, contact)
		if err == nil && !found {
			err = sdk.ErrNotFound
		}
		return err
	})
	return version, err
}

// removeItem deletes the item for contact and its groups inside tx and
// reports whether there was one.
func (s *Store) removeItem(ctx context.Context, tx *sql.Tx, owner, contact string) (bool, error) {
	if _, err := s.exec(ctx, tx, "DELETE FROM koi_roster_groups WHERE owner = ? AND contact = ?", owner, contact); err != nil {
		return false, err
	}
	res, err := s.exec(ctx, tx, "DELETE FROM koi_roster_items WHERE owner = ? AND contact = ?", owner, contact)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// SetPending records or replaces a pending inbound subscription. It does
// not change the roster version: pending requests are not roster items.
func (s *Store) SetPending(ctx context.Context, owner string, p sdk.PendingSubscription) error {
	const op = "roster.SetPending"
	if err := checkAll(checkKey("owner", owner), checkKey("contact", p.JID), checkText("stanza", p.Stanza)); err != nil {
		return s.fail(op, err)
	}
	_, err := s.exec(ctx, nil, s.d.upsert("koi_roster_pending", []string{"owner", "contact"}, []string{"stanza"}),
		owner, p.JID, p.Stanza)
	return s.fail(op, err)
}

// DeletePending forgets a pending inbound subscription; absent is fine.
func (s *Store) DeletePending(ctx context.Context, owner, contact string) error {
	const op = "roster.DeletePending"
	if err := checkAll(checkKey("owner", owner), checkKey("contact", contact)); err != nil {
		return s.fail(op, err)
	}
	_, err := s.exec(ctx, nil, "DELETE FROM koi_roster_pending WHERE owner = ? AND contact = ?", owner, contact)
	return s.fail(op, err)
}

// DeleteRoster removes the owner's items, groups, pending requests and
// version; absent is fine.
func (s *Store) DeleteRoster(ctx context.Context, owner string) error {
	const op = "roster.DeleteRoster"
	if err := checkKey("owner", owner); err != nil {
		return s.fail(op, err)
	}
	return s.write(ctx, op, func(tx *sql.Tx) error {
		// The version row first, as writers lock it; groups before items,
		// which they reference.
		for _, table := range [...]string{"koi_roster_versions", "koi_roster_groups", "koi_roster_items", "koi_roster_pending"} {
			if _, err := s.exec(ctx, tx, "DELETE FROM "+table+" WHERE owner = ?", owner); err != nil {
				return err
			}
		}
		return nil
	})
}

// bumpVersion adds one to the owner's roster version inside tx and returns
// the new value.
func (s *Store) bumpVersion(ctx context.Context, tx *sql.Tx, owner string) (string, error) {
	if _, err := s.exec(ctx, tx, s.d.bumpCounter("koi_roster_versions", "owner", "version"), owner); err != nil {
		return "", err
	}
	var v int64
	if err := s.scanOne(ctx, tx, "SELECT version FROM koi_roster_versions WHERE owner = ?", []any{owner}, &v); err != nil {
		return "", err
	}
	return strconv.FormatInt(v, 10), nil
}

func checkItem(owner string, it sdk.RosterItem) error {
	if err := checkAll(checkKey("owner", owner), checkKey("contact", it.JID), checkText("name", it.Name)); err != nil {
		return err
	}
	switch it.Subscription {
	case sdk.SubNone, sdk.SubTo, sdk.SubFrom, sdk.SubBoth:
	default:
		return fmt.Errorf("%w: subscription %q, want none, to, from or both", sdk.ErrInvalid, it.Subscription)
	}
	for _, g := range it.Groups {
		if err := checkText("group", g); err != nil {
			return err
		}
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
