package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
)

// Rosters: one version counter per owner, bumped by every change of the
// items in the same transaction, so versions are distinct and increasing.

type rosterItem struct {
	JID          string   `json:"jid"`
	Name         string   `json:"name"`
	Subscription string   `json:"subscription"`
	Ask          bool     `json:"ask"`
	Approved     bool     `json:"approved"`
	Groups       []string `json:"groups"`
}

type pendingSubscription struct {
	JID    string `json:"jid"`
	Stanza string `json:"stanza"`
}

type rosterState struct {
	Version string                `json:"version"`
	Items   []rosterItem          `json:"items"`
	Pending []pendingSubscription `json:"pending"`
}

type versionAnswer struct {
	Version string `json:"version"`
}

type stanzaBody struct {
	Stanza string `json:"stanza"`
}

func (s *server) getRoster(w http.ResponseWriter, r *http.Request) {
	owner := r.PathValue("owner")
	ctx := r.Context()
	st := rosterState{Version: "0", Items: []rosterItem{}, Pending: []pendingSubscription{}}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var v int64
		switch err := tx.QueryRowContext(ctx, "SELECT version FROM roster_versions WHERE owner = ?", owner).Scan(&v); {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		default:
			st.Version = strconv.FormatInt(v, 10)
		}
		rows, err := tx.QueryContext(ctx, "SELECT jid, name, subscription, ask, approved, groups_json FROM roster_items WHERE owner = ? ORDER BY jid", owner)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var it rosterItem
			var groups string
			if err := rows.Scan(&it.JID, &it.Name, &it.Subscription, &it.Ask, &it.Approved, &groups); err != nil {
				return err
			}
			if err := json.Unmarshal([]byte(groups), &it.Groups); err != nil {
				return err
			}
			st.Items = append(st.Items, it)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		prow, err := tx.QueryContext(ctx, "SELECT jid, stanza FROM roster_pending WHERE owner = ? ORDER BY jid", owner)
		if err != nil {
			return err
		}
		defer prow.Close()
		for prow.Next() {
			var p pendingSubscription
			if err := prow.Scan(&p.JID, &p.Stanza); err != nil {
				return err
			}
			st.Pending = append(st.Pending, p)
		}
		return prow.Err()
	})
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// inTx runs f in a transaction.
func (s *server) inTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	tx, err := s.st.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := f(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// bump increments owner's roster version and returns it.
func bump(ctx context.Context, tx *sql.Tx, owner string) (string, error) {
	var v int64
	err := tx.QueryRowContext(ctx, `INSERT INTO roster_versions (owner, version) VALUES (?, 1)
		ON CONFLICT (owner) DO UPDATE SET version = version + 1 RETURNING version`, owner).Scan(&v)
	return strconv.FormatInt(v, 10), err
}

var subscriptions = map[string]bool{"none": true, "to": true, "from": true, "both": true}

func (s *server) setItem(w http.ResponseWriter, r *http.Request) {
	owner, contact := r.PathValue("owner"), r.PathValue("contact")
	var it rosterItem
	if !readJSON(w, r, &it) {
		return
	}
	switch {
	case it.JID != "" && it.JID != contact:
		writeError(w, http.StatusBadRequest, "jid differs from the path")
		return
	case !subscriptions[it.Subscription]:
		writeError(w, http.StatusBadRequest, "unknown subscription")
		return
	}
	ctx := r.Context()
	var version string
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := putItem(ctx, tx, owner, contact, it); err != nil {
			return err
		}
		var err error
		version, err = bump(ctx, tx, owner)
		return err
	})
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, versionAnswer{version})
}

// putItem creates or replaces owner's item for contact.
func putItem(ctx context.Context, tx *sql.Tx, owner, contact string, it rosterItem) error {
	if it.Groups == nil {
		it.Groups = []string{}
	}
	groups, _ := json.Marshal(it.Groups)
	_, err := tx.ExecContext(ctx, `INSERT INTO roster_items (owner, jid, name, subscription, ask, approved, groups_json) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (owner, jid) DO UPDATE SET name = excluded.name, subscription = excluded.subscription,
		ask = excluded.ask, approved = excluded.approved, groups_json = excluded.groups_json`,
		owner, contact, it.Name, it.Subscription, it.Ask, it.Approved, string(groups))
	return err
}

var errNoItem = errors.New("no such item")

func (s *server) deleteItem(w http.ResponseWriter, r *http.Request) {
	owner, contact := r.PathValue("owner"), r.PathValue("contact")
	ctx := r.Context()
	var version string
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM roster_items WHERE owner = ? AND jid = ?", owner, contact)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return errNoItem
		}
		version, err = bump(ctx, tx, owner)
		return err
	})
	switch {
	case errors.Is(err, errNoItem):
		writeError(w, http.StatusNotFound, err.Error())
	case err != nil:
		s.internal(w, r, err)
	default:
		writeJSON(w, http.StatusOK, versionAnswer{version})
	}
}

func (s *server) setPending(w http.ResponseWriter, r *http.Request) {
	var p stanzaBody
	if !readJSON(w, r, &p) {
		return
	}
	_, err := s.st.db.ExecContext(r.Context(), `INSERT INTO roster_pending (owner, jid, stanza) VALUES (?, ?, ?)
		ON CONFLICT (owner, jid) DO UPDATE SET stanza = excluded.stanza`, r.PathValue("owner"), r.PathValue("contact"), p.Stanza)
	s.noContent(w, r, err)
}

func (s *server) deletePending(w http.ResponseWriter, r *http.Request) {
	_, err := s.st.db.ExecContext(r.Context(), "DELETE FROM roster_pending WHERE owner = ? AND jid = ?", r.PathValue("owner"), r.PathValue("contact"))
	s.noContent(w, r, err)
}

// deleteRoster removes items and pending requests; the version counter
// stays, and moves on, so a client never sees an old version again.
func (s *server) deleteRoster(w http.ResponseWriter, r *http.Request) {
	owner := r.PathValue("owner")
	ctx := r.Context()
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM roster_items WHERE owner = ?", owner)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM roster_pending WHERE owner = ?", owner); err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n > 0 {
			_, err = bump(ctx, tx, owner)
		}
		return err
	})
	s.noContent(w, r, err)
}

func (s *server) noContent(w http.ResponseWriter, r *http.Request, err error) {
	if err != nil {
		s.internal(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
