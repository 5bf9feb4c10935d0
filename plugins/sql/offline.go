package sqlbackend

import (
	"context"
	"database/sql"
	"time"

	"github.com/koi-im/koi/sdk"
)

// popChunk bounds the ids in one DELETE ... IN (...), well under every
// database's limit on bound parameters.
const popChunk = 500

// padBatch pads ids with copies of its last id to the next of a few fixed
// lengths, so that four prepared statements serve every Pop instead of
// one per length. A repeated id in an IN list changes nothing.
func padBatch(ids []any) []any {
	for _, size := range [...]int{1, 10, 100, popChunk} {
		if len(ids) <= size {
			out := make([]any, size)
			copy(out, ids)
			for i := len(ids); i < size; i++ {
				out[i] = ids[len(ids)-1]
			}
			return out
		}
	}
	return ids
}

// Store appends a message to owner's queue. Stamps keep microsecond
// precision.
func (s *Store) Store(ctx context.Context, owner string, msg sdk.OfflineMessage) error {
	const op = "offline.Store"
	if err := checkAll(checkKey("owner", owner), checkText("stanza", msg.Stanza)); err != nil {
		return s.fail(op, err)
	}
	return s.write(ctx, op, func(tx *sql.Tx) error {
		id, err := s.insertID(ctx, tx, "INSERT INTO koi_offline_messages (owner, stanza, stamp) VALUES (?, ?, ?)",
			owner, msg.Stanza, msg.Stamp.UnixMicro())
		if err == nil {
			s.log.Debug("stored offline message", "owner", owner, "id", id)
		}
		return err
	})
}

// Count returns how many messages wait for owner.
func (s *Store) Count(ctx context.Context, owner string) (int, error) {
	const op = "offline.Count"
	if err := checkKey("owner", owner); err != nil {
		return 0, s.fail(op, err)
	}
	var n int
	err := s.scanOne(ctx, nil, "SELECT COUNT(*) FROM koi_offline_messages WHERE owner = ?", []any{owner}, &n)
	return n, s.fail(op, err)
}

// Pop returns owner's messages in arrival order and deletes them in the same
// transaction, which holds the write lock (or, on other databases, row
// locks) from its first read, so two Pops never return the same message.
// Only the rows read are deleted: a message stored meanwhile waits for the
// next Pop.
func (s *Store) Pop(ctx context.Context, owner string) ([]sdk.OfflineMessage, error) {
	const op = "offline.Pop"
	if err := checkKey("owner", owner); err != nil {
		return nil, s.fail(op, err)
	}
	var msgs []sdk.OfflineMessage
	err := s.write(ctx, op, func(tx *sql.Tx) error {
		msgs = nil
		rows, err := s.query(ctx, tx, "SELECT id, stanza, stamp FROM koi_offline_messages WHERE owner = ? ORDER BY id"+s.d.lockRows(), owner)
		if err != nil {
			return err
		}
		defer rows.Close()
		var ids []any
		for rows.Next() {
			var id, stamp int64
			var m sdk.OfflineMessage
			if err := rows.Scan(&id, &m.Stanza, &stamp); err != nil {
				return err
			}
			m.Stamp = time.UnixMicro(stamp).UTC()
			ids = append(ids, id)
			msgs = append(msgs, m)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		for len(ids) > 0 {
			n := min(len(ids), popChunk)
			batch := padBatch(ids[:n])
			if _, err := s.exec(ctx, tx, "DELETE FROM koi_offline_messages WHERE id IN ("+placeholders(len(batch))+")", batch...); err != nil {
				return err
			}
			ids = ids[n:]
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return msgs, nil
}

// DeleteAll removes every message of owner.
func (s *Store) DeleteAll(ctx context.Context, owner string) error {
	const op = "offline.DeleteAll"
	if err := checkKey("owner", owner); err != nil {
		return s.fail(op, err)
	}
	_, err := s.exec(ctx, nil, "DELETE FROM koi_offline_messages WHERE owner = ?", owner)
	return s.fail(op, err)
}
