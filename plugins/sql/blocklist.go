package sqlbackend

import (
	"context"
	"database/sql"
	"slices"
)

// blocklistSchema is migration 3: one row per blocked JID (XEP-0191).
func blocklistSchema(d dialect) ([]step, error) {
	key := func(name string) columnDef { return columnDef{name: name, typ: colKey, size: maxKeyChars} }
	t := tableDef{
		name:       "koi_blocklist",
		cols:       []columnDef{key("owner"), key("jid")},
		primaryKey: []string{"owner", "jid"},
	}
	create, err := createTableSQL(d, t, false)
	if err != nil {
		return nil, err
	}
	return []step{{do: create, undo: "DROP TABLE IF EXISTS " + t.name}}, nil
}

// GetBlocklist returns the owner's blocked JIDs in byte order.
func (s *Store) GetBlocklist(ctx context.Context, owner string) ([]string, error) {
	const op = "blocklist.GetBlocklist"
	if err := checkKey("owner", owner); err != nil {
		return nil, s.fail(op, err)
	}
	rows, err := s.query(ctx, nil, "SELECT jid FROM koi_blocklist WHERE owner = ?", owner)
	if err != nil {
		return nil, s.fail(op, err)
	}
	defer rows.Close()
	var list []string
	for rows.Next() {
		var j string
		if err := rows.Scan(&j); err != nil {
			return nil, s.fail(op, err)
		}
		list = append(list, j)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(op, err)
	}
	// Sorted here rather than by ORDER BY: the contract is Go's byte
	// order, which not every collation gives.
	slices.Sort(list)
	return list, nil
}

// Block adds jids to the owner's list, skipping those already there.
func (s *Store) Block(ctx context.Context, owner string, jids []string) error {
	const op = "blocklist.Block"
	if err := checkBlockJIDs(owner, jids); err != nil {
		return s.fail(op, err)
	}
	if len(jids) == 0 {
		return nil
	}
	// An upsert without columns to update skips present rows.
	insert := s.d.upsert("koi_blocklist", []string{"owner", "jid"}, nil)
	return s.write(ctx, op, func(tx *sql.Tx) error {
		for _, j := range jids {
			if _, err := s.exec(ctx, tx, insert, owner, j); err != nil {
				return err
			}
		}
		return nil
	})
}

// Unblock removes jids from the owner's list; absent ones are fine.
func (s *Store) Unblock(ctx context.Context, owner string, jids []string) error {
	const op = "blocklist.Unblock"
	if err := checkBlockJIDs(owner, jids); err != nil {
		return s.fail(op, err)
	}
	if len(jids) == 0 {
		return nil
	}
	return s.write(ctx, op, func(tx *sql.Tx) error {
		for _, j := range jids {
			if _, err := s.exec(ctx, tx, "DELETE FROM koi_blocklist WHERE owner = ? AND jid = ?", owner, j); err != nil {
				return err
			}
		}
		return nil
	})
}

// UnblockAll empties the owner's list.
func (s *Store) UnblockAll(ctx context.Context, owner string) error {
	const op = "blocklist.UnblockAll"
	if err := checkKey("owner", owner); err != nil {
		return s.fail(op, err)
	}
	_, err := s.exec(ctx, nil, "DELETE FROM koi_blocklist WHERE owner = ?", owner)
	return s.fail(op, err)
}

func checkBlockJIDs(owner string, jids []string) error {
	errs := []error{checkKey("owner", owner)}
	for _, j := range jids {
		errs = append(errs, checkKey("jid", j))
	}
	return checkAll(errs...)
}
