package sqlbackend

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/koi-im/koi/sdk"
)

// The message archive (XEP-0313). One row per archived message, keyed by
// (owner, stanza_id); the core makes stanza ids that sort like time, so
// the primary key is the owner+time index and every page is a range scan
// of it, or of (owner, peer, stanza_id) for a conversation.

// archiveIDChars bounds stanza ids; the core's are 16 characters.
const archiveIDChars = 64

// archiveSchema is the migration adding the archive tables.
func archiveSchema(d dialect) ([]step, error) {
	key := func(name string) columnDef { return columnDef{name: name, typ: colKey, size: maxKeyChars} }
	text := func(name string) columnDef { return columnDef{name: name, typ: colText} }
	id := columnDef{name: "stanza_id", typ: colKey, size: archiveIDChars}
	tables := []tableDef{
		{
			// stamp is Unix microseconds, like koi_offline_messages'.
			// peer_res is never searched by itself, only within a
			// conversation, so it needs no index.
			name: "koi_archive",
			cols: []columnDef{
				key("owner"), id, key("peer"), text("peer_res"),
				{name: "stamp", typ: colBigInt}, {name: "outgoing", typ: colInt},
				text("stanza"), text("body"),
			},
			primaryKey: []string{"owner", "stanza_id"},
		},
		{
			name:       "koi_archive_prefs",
			cols:       []columnDef{key("owner"), {name: "mode", typ: colKey, size: 8}},
			primaryKey: []string{"owner"},
		},
		{
			// always is 1 for the always list, 0 for the never list.
			name:       "koi_archive_prefs_jids",
			cols:       []columnDef{key("owner"), key("jid"), {name: "always", typ: colInt}},
			primaryKey: []string{"owner", "jid"},
		},
	}
	var steps []step
	for _, t := range tables {
		s, err := createTableSQL(d, t, false)
		if err != nil {
			return nil, err
		}
		steps = append(steps, step{do: s, undo: "DROP TABLE IF EXISTS " + t.name})
	}
	// A conversation's pages: owner and peer, in stanza id order.
	const idx, table = "koi_archive_peer_idx", "koi_archive"
	create, err := createIndexSQL(d, idx, table, "owner", "peer", "stanza_id")
	if err != nil {
		return nil, err
	}
	return append(steps, step{do: create, undo: d.dropIndex(idx, table)}), nil
}

var archiveCols = []string{"owner", "stanza_id", "peer", "peer_res", "stamp", "outgoing", "stanza", "body"}

// insertIgnoreSQL is a multi-row INSERT into table that skips rows whose
// keys exist: the dialect's INSERT OR IGNORE where it has one (orIgnorer),
// else its upsert, whose conflict clause with no columns to update is
// exactly "skip" (ON CONFLICT DO NOTHING, or MySQL's no-op ON DUPLICATE
// KEY UPDATE), with rows rows of all cols in front of it.
func insertIgnoreSQL(d dialect, table string, keys, cols []string, rows int) (string, error) {
	row := "(" + placeholders(len(cols)) + ")"
	values := strings.TrimSuffix(strings.Repeat(row+", ", rows), ", ")
	if ig, ok := d.(orIgnorer); ok {
		return fmt.Sprintf("%s INTO %s (%s) VALUES %s", ig.insertOrIgnore(), table, strings.Join(cols, ", "), values), nil
	}
	up := d.upsert(table, keys, nil)
	marker := "VALUES (" + placeholders(len(keys)) + ")"
	i := strings.Index(up, marker)
	if i < 0 {
		return "", fmt.Errorf("%s upsert statement has an unexpected shape: %s", d.name(), up)
	}
	return fmt.Sprintf("INSERT INTO %s (%s) VALUES %s%s", table, strings.Join(cols, ", "), values, up[i+len(marker):]), nil
}

// orIgnorer is a dialect with an INSERT that skips a row on any constraint
// it breaks: SQLite's INSERT OR IGNORE. A statement that cannot fail
// part-way needs no statement journal, which SQLite writes for a
// multi-row INSERT ... ON CONFLICT DO NOTHING (since a NOT NULL or CHECK
// failure would abort it); that journal was a tenth of the archive's
// insert cost. The archive never binds NULL, so "any constraint" is only
// ever the key.
type orIgnorer interface {
	insertOrIgnore() string
}

// archiveChunks are the row counts of the INSERT statements a batch is cut
// into: a few fixed shapes, each prepared once.
var archiveChunks = []int{64, 16, 4, 1}

// checkArchived is sdk.CheckArchivedMessage and the lengths of the key
// columns.
func checkArchived(m sdk.ArchivedMessage) error {
	if err := sdk.CheckArchivedMessage(m); err != nil {
		return err
	}
	if err := checkAll(checkKey("owner", m.Owner), checkKey("peer", m.Peer)); err != nil {
		return err
	}
	if len(m.StanzaID) > archiveIDChars {
		return fmt.Errorf("%w: stanza id must be 1 to %d characters", sdk.ErrInvalid, archiveIDChars)
	}
	return nil
}

// AppendArchive stores the batch in one transaction; messages already
// stored are skipped by the insert itself.
func (s *Store) AppendArchive(ctx context.Context, msgs []sdk.ArchivedMessage) error {
	const op = "archive.Append"
	for _, m := range msgs {
		if err := checkArchived(m); err != nil {
			return s.fail(op, err)
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	if a, ok := s.d.(columnArrayArchiver); ok {
		return s.write(ctx, op, func(tx *sql.Tx) error {
			_, err := s.exec(ctx, tx, a.archiveInsertArrays(), archiveColumns(msgs)...)
			return err
		})
	}
	return s.write(ctx, op, func(tx *sql.Tx) error {
		rest := msgs
		for _, n := range archiveChunks {
			for len(rest) >= n {
				q, err := insertIgnoreSQL(s.d, "koi_archive", []string{"owner", "stanza_id"}, archiveCols, n)
				if err != nil {
					return err
				}
				args := make([]any, 0, n*len(archiveCols))
				for _, m := range rest[:n] {
					args = append(args, m.Owner, m.StanzaID, m.Peer, m.PeerResource, m.Stamp.UnixMicro(),
						boolInt(m.Outgoing), m.Stanza, m.Body)
				}
				if _, err := s.exec(ctx, tx, q, args...); err != nil {
					return err
				}
				rest = rest[n:]
			}
		}
		return nil
	})
}

// AppendWriters is the sdk.AppendConcurrency of the archive: the
// archive_writers setting. Concurrent AppendArchive calls are safe: each
// is its own transaction, and a message stored twice at once is skipped
// by one of them like any other duplicate.
func (s *Store) AppendWriters() int { return s.archiveWriters }

// columnArrayArchiver is a dialect that stores a whole batch with one
// statement whose parameters are column arrays (archiveColumns): one
// round trip and one statement to plan, where the chunked multi-row
// INSERTs cost one of each per 64 rows and eight parameters per row to
// encode.
type columnArrayArchiver interface {
	// archiveInsertArrays inserts the rows of archiveCols given as
	// arrays, skipping rows whose (owner, stanza_id) exists.
	archiveInsertArrays() string
}

// archiveColumns turns msgs into one array per column of archiveCols.
func archiveColumns(msgs []sdk.ArchivedMessage) []any {
	n := len(msgs)
	owner, id, peer, res := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	stamp, out := make([]int64, n), make([]int32, n)
	stanza, body := make([]string, n), make([]string, n)
	for i, m := range msgs {
		owner[i], id[i], peer[i], res[i] = m.Owner, m.StanzaID, m.Peer, m.PeerResource
		stamp[i], out[i] = m.Stamp.UnixMicro(), int32(boolInt(m.Outgoing))
		stanza[i], body[i] = m.Stanza, m.Body
	}
	return []any{owner, id, peer, res, stamp, out, stanza, body}
}

// checkQuery is sdk.CheckArchiveQuery and the length of the owner's key
// column.
func checkQuery(q sdk.ArchiveQuery) error {
	if err := sdk.CheckArchiveQuery(q); err != nil {
		return err
	}
	return checkKey("owner", q.Owner)
}

// archiveWhere builds the conditions of a query: the result set's, plus
// the page bounds after and before ("" for none).
func archiveWhere(q sdk.ArchiveQuery, after, before string) (string, []any) {
	var b strings.Builder
	args := []any{q.Owner}
	b.WriteString("owner = ?")
	add := func(cond string, v any) {
		b.WriteString(" AND ")
		b.WriteString(cond)
		args = append(args, v)
	}
	if q.With != "" {
		add("peer = ?", q.With)
		if q.WithResource != "" {
			add("peer_res = ?", q.WithResource)
		}
	}
	for _, lo := range []string{q.AfterID, after} {
		if lo != "" {
			add("stanza_id > ?", lo)
		}
	}
	for _, hi := range []string{q.BeforeID, before} {
		if hi != "" {
			add("stanza_id < ?", hi)
		}
	}
	if len(q.IDs) > 0 {
		b.WriteString(" AND stanza_id IN (" + placeholders(len(q.IDs)) + ")")
		for _, id := range q.IDs {
			args = append(args, id)
		}
	}
	if q.Text != "" {
		// A case-insensitive substring search; LOWER on both sides keeps
		// it so where LIKE itself is case-sensitive (PostgreSQL).
		add("LOWER(body) LIKE ? ESCAPE '!'", "%"+escapeLike(strings.ToLower(q.Text))+"%")
	}
	return b.String(), args
}

// archiveSelect is the query of a page: one more row than asked, to know
// whether the page is complete.
func archiveSelect(q sdk.ArchiveQuery) (string, []any) {
	where, args := archiveWhere(q, q.After, q.Before)
	order := "ASC"
	if q.Last {
		order = "DESC"
	}
	query := "SELECT stanza_id, peer, peer_res, stamp, outgoing, stanza, body FROM koi_archive WHERE " + where +
		" ORDER BY stanza_id " + order + " LIMIT ?"
	args = append(args, q.Max+1)
	if q.Skip > 0 && !q.Last {
		query += " OFFSET ?"
		args = append(args, q.Skip)
	}
	return query, args
}

func escapeLike(s string) string {
	return strings.NewReplacer("!", "!!", "%", "!%", "_", "!_").Replace(s)
}

// QueryArchive serves a page with one range scan of an index, plus two
// counts when asked. The statements' shapes vary with the query, so they
// are not prepared.
func (s *Store) QueryArchive(ctx context.Context, q sdk.ArchiveQuery) (sdk.ArchivePage, error) {
	const op = "archive.Query"
	if err := checkQuery(q); err != nil {
		return sdk.ArchivePage{}, s.fail(op, err)
	}
	var page sdk.ArchivePage
	err := s.read(ctx, op, func(tx *sql.Tx) error {
		page = sdk.ArchivePage{}
		query, args := archiveSelect(q)
		rows, err := tx.QueryContext(ctx, s.q(query), args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			m := sdk.ArchivedMessage{Owner: q.Owner}
			var stamp int64
			var out int
			if err := rows.Scan(&m.StanzaID, &m.Peer, &m.PeerResource, &stamp, &out, &m.Stanza, &m.Body); err != nil {
				return err
			}
			m.Stamp, m.Outgoing = time.UnixMicro(stamp).UTC(), out != 0
			page.Messages = append(page.Messages, m)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		page.Complete = len(page.Messages) <= q.Max
		page.Messages = page.Messages[:min(len(page.Messages), q.Max)]
		if q.Last {
			slices.Reverse(page.Messages)
		}
		if !q.Count {
			return nil
		}
		where, args := archiveWhere(q, "", "")
		if err := tx.QueryRowContext(ctx, s.q("SELECT COUNT(*) FROM koi_archive WHERE "+where), args...).Scan(&page.Count); err != nil {
			return err
		}
		if len(page.Messages) > 0 {
			where, args = archiveWhere(q, "", page.Messages[0].StanzaID)
			if err := tx.QueryRowContext(ctx, s.q("SELECT COUNT(*) FROM koi_archive WHERE "+where), args...).Scan(&page.Index); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return sdk.ArchivePage{}, err
	}
	if page.Messages == nil {
		page.Messages = []sdk.ArchivedMessage{}
	}
	return page, nil
}

// RetractArchived replaces the stanza of owner's message stanzaID with
// tombstone and empties its body (sdk.ArchiveRetractor).
func (s *Store) RetractArchived(ctx context.Context, owner, stanzaID, tombstone string) error {
	const op = "archive.Retract"
	if err := checkRetract(owner, stanzaID, tombstone); err != nil {
		return s.fail(op, err)
	}
	return s.write(ctx, op, func(tx *sql.Tx) error {
		res, err := s.exec(ctx, tx, "UPDATE koi_archive SET stanza = ?, body = '' WHERE owner = ? AND stanza_id = ?", tombstone, owner, stanzaID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			// MySQL counts only changed rows: a tombstone written again
			// changes none, yet the message is there.
			var one int
			err := tx.QueryRowContext(ctx, s.q("SELECT 1 FROM koi_archive WHERE owner = ? AND stanza_id = ?"), owner, stanzaID).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("%w: no message %s in %s's archive", sdk.ErrNotFound, stanzaID, owner)
			}
			return err
		}
		return nil
	})
}

// checkRetract checks a retraction's arguments.
func checkRetract(owner, stanzaID, tombstone string) error {
	if err := sdk.CheckRetraction(owner, stanzaID, tombstone); err != nil {
		return err
	}
	if len(stanzaID) > archiveIDChars {
		return fmt.Errorf("%w: stanza id must be 1 to %d characters", sdk.ErrInvalid, archiveIDChars)
	}
	return checkKey("owner", owner)
}

// DeleteArchive removes the owner's messages and preferences.
func (s *Store) DeleteArchive(ctx context.Context, owner string) error {
	const op = "archive.Delete"
	if err := checkKey("owner", owner); err != nil {
		return s.fail(op, err)
	}
	return s.write(ctx, op, func(tx *sql.Tx) error {
		for _, table := range [...]string{"koi_archive", "koi_archive_prefs_jids", "koi_archive_prefs"} {
			if _, err := s.exec(ctx, tx, "DELETE FROM "+table+" WHERE owner = ?", owner); err != nil {
				return err
			}
		}
		return nil
	})
}

// GetArchivePrefs returns the owner's preferences, the zero value if none
// were set. The lists come sorted.
func (s *Store) GetArchivePrefs(ctx context.Context, owner string) (sdk.ArchivePrefs, error) {
	const op = "archive.GetPrefs"
	if err := checkKey("owner", owner); err != nil {
		return sdk.ArchivePrefs{}, s.fail(op, err)
	}
	var p sdk.ArchivePrefs
	err := s.read(ctx, op, func(tx *sql.Tx) error {
		p = sdk.ArchivePrefs{}
		err := s.scanOne(ctx, tx, "SELECT mode FROM koi_archive_prefs WHERE owner = ?", []any{owner}, &p.Default)
		if err == sql.ErrNoRows {
			return nil
		}
		if err != nil {
			return err
		}
		rows, err := s.query(ctx, tx, "SELECT jid, always FROM koi_archive_prefs_jids WHERE owner = ? ORDER BY jid", owner)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var j string
			var always int
			if err := rows.Scan(&j, &always); err != nil {
				return err
			}
			if always != 0 {
				p.Always = append(p.Always, j)
			} else {
				p.Never = append(p.Never, j)
			}
		}
		return rows.Err()
	})
	return p, err
}

// SetArchivePrefs replaces the owner's preferences.
func (s *Store) SetArchivePrefs(ctx context.Context, owner string, p sdk.ArchivePrefs) error {
	const op = "archive.SetPrefs"
	if err := checkPrefs(owner, p); err != nil {
		return s.fail(op, err)
	}
	return s.write(ctx, op, func(tx *sql.Tx) error {
		if _, err := s.exec(ctx, tx, s.d.upsert("koi_archive_prefs", []string{"owner"}, []string{"mode"}), owner, p.Default); err != nil {
			return err
		}
		if _, err := s.exec(ctx, tx, "DELETE FROM koi_archive_prefs_jids WHERE owner = ?", owner); err != nil {
			return err
		}
		for _, l := range []struct {
			jids   []string
			always int
		}{{p.Always, 1}, {p.Never, 0}} {
			for _, j := range l.jids {
				if _, err := s.exec(ctx, tx, "INSERT INTO koi_archive_prefs_jids (owner, jid, always) VALUES (?, ?, ?)", owner, j, l.always); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func checkPrefs(owner string, p sdk.ArchivePrefs) error {
	switch p.Default {
	case sdk.ArchiveAlways, sdk.ArchiveNever, sdk.ArchiveRoster, "":
	default:
		return fmt.Errorf("%w: unknown archive default %q", sdk.ErrInvalid, p.Default)
	}
	errs := []error{checkKey("owner", owner)}
	seen := map[string]bool{}
	for _, j := range append(slices.Clip(p.Always), p.Never...) {
		errs = append(errs, checkKey("jid", j))
		if seen[j] {
			errs = append(errs, fmt.Errorf("%w: %s is listed twice", sdk.ErrInvalid, j))
		}
		seen[j] = true
	}
	return checkAll(errs...)
}
