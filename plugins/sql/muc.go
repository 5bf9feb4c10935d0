package sqlbackend

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/koi-im/koi/sdk"
)

// mucSchema is migration 5: persistent MUC rooms (XEP-0045) and their
// affiliations. A room's config is one JSON object of string lists: the
// core owns the form and the backend never looks inside, and a field
// without values stays a field ({"var": []}). service is the room JID's
// domain, kept for ListMUCRooms; created is Unix microseconds.
func mucSchema(d dialect) ([]step, error) {
	key := func(name string) columnDef { return columnDef{name: name, typ: colKey, size: maxKeyChars} }
	text := func(name string) columnDef { return columnDef{name: name, typ: colText} }
	tables := []tableDef{
		{
			name: "koi_muc_rooms",
			cols: []columnDef{
				key("room"), key("service"), text("config"), text("subject"), text("subject_by"),
				{name: "created", typ: colBigInt},
			},
			primaryKey: []string{"room"},
		},
		{
			name: "koi_muc_affiliations",
			cols: []columnDef{
				key("room"), key("jid"), {name: "affiliation", typ: colKey, size: 16}, text("nick"), text("reason"),
			},
			primaryKey: []string{"room", "jid"},
			foreignKey: []foreignKey{{cols: []string{"room"}, refTable: "koi_muc_rooms", refCols: []string{"room"}}},
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
	// ListMUCRooms selects a service's rooms; the rest goes by primary key.
	const idx, table = "koi_muc_rooms_service_idx", "koi_muc_rooms"
	create, err := createIndexSQL(d, idx, table, "service", "room")
	if err != nil {
		return nil, err
	}
	// The undo steps run in reverse: the index, then the affiliations
	// (which reference the rooms), then the rooms.
	return append(steps, step{do: create, undo: d.dropIndex(idx, table)}), nil
}

// GetMUCRoom returns one stored room or sdk.ErrNotFound.
func (s *Store) GetMUCRoom(ctx context.Context, room string) (sdk.MUCRoom, error) {
	const op = "muc.GetMUCRoom"
	if err := checkMUCRoomJID(room); err != nil {
		return sdk.MUCRoom{}, s.fail(op, err)
	}
	r := sdk.MUCRoom{Room: room}
	var cfg string
	var created int64
	err := s.scanOne(ctx, nil, "SELECT config, subject, subject_by, created FROM koi_muc_rooms WHERE room = ?",
		[]any{room}, &cfg, &r.Subject, &r.SubjectBy, &created)
	if err != nil {
		return sdk.MUCRoom{}, s.fail(op, err)
	}
	if r.Config, err = decodeMUCConfig(room, cfg); err != nil {
		return sdk.MUCRoom{}, s.fail(op, err)
	}
	r.Created = time.UnixMicro(created).UTC()
	return r, nil
}

// ListMUCRooms returns the rooms of service in byte order of their JIDs.
func (s *Store) ListMUCRooms(ctx context.Context, service string) ([]sdk.MUCRoom, error) {
	const op = "muc.ListMUCRooms"
	if err := checkKey("service", service); err != nil {
		return nil, s.fail(op, err)
	}
	rows, err := s.query(ctx, nil, "SELECT room, config, subject, subject_by, created FROM koi_muc_rooms WHERE service = ?", service)
	if err != nil {
		return nil, s.fail(op, err)
	}
	defer rows.Close()
	out := []sdk.MUCRoom{}
	for rows.Next() {
		var r sdk.MUCRoom
		var cfg string
		var created int64
		if err := rows.Scan(&r.Room, &cfg, &r.Subject, &r.SubjectBy, &created); err != nil {
			return nil, s.fail(op, err)
		}
		if r.Config, err = decodeMUCConfig(r.Room, cfg); err != nil {
			return nil, s.fail(op, err)
		}
		r.Created = time.UnixMicro(created).UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(op, err)
	}
	// Sorted here: the contract is Go's byte order, whatever the collation.
	slices.SortFunc(out, func(a, b sdk.MUCRoom) int { return strings.Compare(a.Room, b.Room) })
	return out, nil
}

// GetMUCAffiliations returns the room's affiliations in byte order of JID;
// a room that is not stored has none.
func (s *Store) GetMUCAffiliations(ctx context.Context, room string) ([]sdk.MUCAffiliation, error) {
	const op = "muc.GetMUCAffiliations"
	if err := checkMUCRoomJID(room); err != nil {
		return nil, s.fail(op, err)
	}
	rows, err := s.query(ctx, nil, "SELECT jid, affiliation, nick, reason FROM koi_muc_affiliations WHERE room = ?", room)
	if err != nil {
		return nil, s.fail(op, err)
	}
	defer rows.Close()
	out := []sdk.MUCAffiliation{}
	for rows.Next() {
		a := sdk.MUCAffiliation{Room: room}
		if err := rows.Scan(&a.JID, &a.Affiliation, &a.Nick, &a.Reason); err != nil {
			return nil, s.fail(op, err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(op, err)
	}
	slices.SortFunc(out, func(a, b sdk.MUCAffiliation) int { return strings.Compare(a.JID, b.JID) })
	return out, nil
}

// PutMUCRoom creates the room or replaces its config and subject, keeping
// created: an insert that does nothing when the room exists, then an
// update, in one transaction.
func (s *Store) PutMUCRoom(ctx context.Context, r sdk.MUCRoom) error {
	const op = "muc.PutMUCRoom"
	if err := sdk.CheckMUCRoom(r); err != nil {
		return s.fail(op, err)
	}
	service, _ := sdk.MUCService(r.Room)
	errs := []error{checkKey("room", r.Room), checkKey("service", service), checkText("subject", r.Subject), checkText("subject_by", r.SubjectBy)}
	for k, vs := range r.Config {
		errs = append(errs, checkText("config var", k))
		for _, v := range vs {
			errs = append(errs, checkText("config value of "+k, v))
		}
	}
	if err := checkAll(errs...); err != nil {
		return s.fail(op, err)
	}
	cfg, err := encodeMUCConfig(r.Config)
	if err != nil {
		return s.fail(op, err)
	}
	insert := s.d.insertNew("koi_muc_rooms", []string{"room"}, []string{"service", "config", "subject", "subject_by", "created"})
	return s.write(ctx, op, func(tx *sql.Tx) error {
		if _, err := s.exec(ctx, tx, insert, r.Room, service, cfg, r.Subject, r.SubjectBy, r.Created.UnixMicro()); err != nil {
			return err
		}
		_, err := s.exec(ctx, tx, "UPDATE koi_muc_rooms SET config = ?, subject = ?, subject_by = ? WHERE room = ?",
			cfg, r.Subject, r.SubjectBy, r.Room)
		return err
	})
}

// DeleteMUCRoom removes the room and its affiliations; an absent room is
// fine. The room's row is locked first, as SetMUCAffiliation locks it,
// so that the two cannot deadlock.
func (s *Store) DeleteMUCRoom(ctx context.Context, room string) error {
	const op = "muc.DeleteMUCRoom"
	if err := checkMUCRoomJID(room); err != nil {
		return s.fail(op, err)
	}
	return s.write(ctx, op, func(tx *sql.Tx) error {
		var found string
		err := s.scanOne(ctx, tx, "SELECT room FROM koi_muc_rooms WHERE room = ?"+s.d.lockRows(), []any{room}, &found)
		if err == sql.ErrNoRows {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := s.exec(ctx, tx, "DELETE FROM koi_muc_affiliations WHERE room = ?", room); err != nil {
			return err
		}
		_, err = s.exec(ctx, tx, "DELETE FROM koi_muc_rooms WHERE room = ?", room)
		return err
	})
}

// SetMUCAffiliation stores a, or removes the entry for "none"; the room
// must be stored (its row stays locked until the change commits).
func (s *Store) SetMUCAffiliation(ctx context.Context, a sdk.MUCAffiliation) error {
	const op = "muc.SetMUCAffiliation"
	if err := sdk.CheckMUCAffiliation(a); err != nil {
		return s.fail(op, err)
	}
	if err := checkAll(checkKey("room", a.Room), checkKey("jid", a.JID), checkText("nick", a.Nick), checkText("reason", a.Reason)); err != nil {
		return s.fail(op, err)
	}
	upsert := s.d.upsert("koi_muc_affiliations", []string{"room", "jid"}, []string{"affiliation", "nick", "reason"})
	return s.write(ctx, op, func(tx *sql.Tx) error {
		var found string
		err := s.scanOne(ctx, tx, "SELECT room FROM koi_muc_rooms WHERE room = ?"+s.d.lockRows(), []any{a.Room}, &found)
		if err == sql.ErrNoRows {
			return fmt.Errorf("room %s: %w", a.Room, sdk.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if a.Affiliation == "none" {
			_, err := s.exec(ctx, tx, "DELETE FROM koi_muc_affiliations WHERE room = ? AND jid = ?", a.Room, a.JID)
			return err
		}
		_, err = s.exec(ctx, tx, upsert, a.Room, a.JID, a.Affiliation, a.Nick, a.Reason)
		return err
	})
}

// checkMUCRoomJID checks a room JID given to a read or a delete.
func checkMUCRoomJID(room string) error {
	if _, err := sdk.MUCService(room); err != nil {
		return err
	}
	return checkKey("room", room)
}

// encodeMUCConfig writes a config as JSON, a field without values as [],
// never null, so that it reads back as a field.
func encodeMUCConfig(cfg map[string][]string) (string, error) {
	out := make(map[string][]string, len(cfg))
	for k, v := range cfg {
		if v == nil {
			v = []string{}
		}
		out[k] = v
	}
	b, err := json.Marshal(out)
	if err != nil {
		return "", fmt.Errorf("encode room config: %w", err)
	}
	return string(b), nil
}

func decodeMUCConfig(room, s string) (map[string][]string, error) {
	cfg := map[string][]string{}
	if err := json.Unmarshal([]byte(s), &cfg); err != nil {
		return nil, fmt.Errorf("stored config of room %s: %w", room, err)
	}
	return cfg, nil
}
