package main

import (
	"database/sql"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// The message archive: appends ignore messages already stored (the
// primary key is owner and stanza id), queries select the result set with
// the filters and one page of it with the RSM bounds, in stanza id order.

// maxPage is the largest page a query may ask for (sdk.MaxArchivePage).
const maxPage = 1000

type message struct {
	Owner        string `json:"owner"`
	StanzaID     string `json:"stanza_id"`
	Peer         string `json:"peer"`
	PeerResource string `json:"peer_resource"`
	Stamp        string `json:"stamp"`
	Outgoing     bool   `json:"outgoing"`
	Stanza       string `json:"stanza"`
	Body         string `json:"body"`
}

type appendRequest struct {
	Messages []message `json:"messages"`
}

type appendAnswer struct {
	// Stored counts the messages that were new.
	Stored int `json:"stored"`
}

type query struct {
	With         string   `json:"with"`
	WithResource string   `json:"with_resource"`
	AfterID      string   `json:"after_id"`
	BeforeID     string   `json:"before_id"`
	IDs          []string `json:"ids"`
	Text         string   `json:"text"`
	After        string   `json:"after"`
	Before       string   `json:"before"`
	Last         bool     `json:"last"`
	Skip         int      `json:"skip"`
	Max          int      `json:"max"`
	Count        bool     `json:"count"`
}

type page struct {
	Messages []message `json:"messages"`
	Complete bool      `json:"complete"`
	Count    int       `json:"count"`
	Index    int       `json:"index"`
}

type prefs struct {
	Default string   `json:"default"`
	Always  []string `json:"always"`
	Never   []string `json:"never"`
}

const stampLayout = "2006-01-02T15:04:05.000Z07:00"

func validMessage(m message) (time.Time, string) {
	if m.Owner == "" || m.StanzaID == "" || m.Peer == "" {
		return time.Time{}, "owner, stanza_id and peer are required"
	}
	for _, s := range []string{m.Owner, m.StanzaID, m.Peer, m.PeerResource, m.Stanza, m.Body} {
		if !utf8.ValidString(s) {
			return time.Time{}, "invalid UTF-8"
		}
	}
	t, err := time.Parse(time.RFC3339Nano, m.Stamp)
	if err != nil {
		return time.Time{}, "stamp: " + err.Error()
	}
	return t, ""
}

func (s *server) appendArchive(w http.ResponseWriter, r *http.Request) {
	var req appendRequest
	if !readJSON(w, r, &req) {
		return
	}
	stamps := make([]time.Time, len(req.Messages))
	for i, m := range req.Messages {
		t, bad := validMessage(m)
		if bad != "" {
			writeError(w, http.StatusBadRequest, bad)
			return
		}
		stamps[i] = t
	}
	ctx := r.Context()
	stored := 0
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// Prepared once per batch: parsing the statement for each row
		// cost as much as inserting it (koi sends thousands at a time).
		ins, err := tx.PrepareContext(ctx, `INSERT INTO archive (owner, sid, peer, peer_resource, stamp_ms, outgoing, stanza, body)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (owner, sid) DO NOTHING`)
		if err != nil {
			return err
		}
		defer ins.Close()
		for i, m := range req.Messages {
			res, err := ins.ExecContext(ctx, m.Owner, m.StanzaID, m.Peer, m.PeerResource, stamps[i].UnixMilli(), m.Outgoing, m.Stanza, m.Body)
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			stored += int(n)
		}
		return nil
	})
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, appendAnswer{Stored: stored})
}

// where builds the conditions of the result set, plus the page bounds
// after and before ("" for none).
func where(owner string, q query, after, before string) (string, []any) {
	var b strings.Builder
	args := []any{owner}
	b.WriteString("owner = ?")
	add := func(cond string, v any) {
		b.WriteString(" AND " + cond)
		args = append(args, v)
	}
	if q.With != "" {
		add("peer = ?", q.With)
		if q.WithResource != "" {
			add("peer_resource = ?", q.WithResource)
		}
	}
	for _, lo := range []string{q.AfterID, after} {
		if lo != "" {
			add("sid > ?", lo)
		}
	}
	for _, hi := range []string{q.BeforeID, before} {
		if hi != "" {
			add("sid < ?", hi)
		}
	}
	if len(q.IDs) > 0 {
		b.WriteString(" AND sid IN (" + strings.TrimSuffix(strings.Repeat("?,", len(q.IDs)), ",") + ")")
		for _, id := range q.IDs {
			args = append(args, id)
		}
	}
	if q.Text != "" {
		add("LOWER(body) LIKE ? ESCAPE '!'", "%"+strings.NewReplacer("!", "!!", "%", "!%", "_", "!_").Replace(strings.ToLower(q.Text))+"%")
	}
	return b.String(), args
}

func validQuery(q query) string {
	switch {
	case q.Max < 0 || q.Max > maxPage:
		return "max must be 0 to 1000"
	case q.Skip < 0:
		return "negative skip"
	case len(q.IDs) > maxPage:
		return "more than 1000 ids"
	}
	for _, s := range append([]string{q.With, q.WithResource, q.AfterID, q.BeforeID, q.Text, q.After, q.Before}, q.IDs...) {
		if !utf8.ValidString(s) {
			return "invalid UTF-8"
		}
	}
	return ""
}

func (s *server) queryArchive(w http.ResponseWriter, r *http.Request) {
	owner := r.PathValue("owner")
	var q query
	if !readJSON(w, r, &q) {
		return
	}
	if bad := validQuery(q); bad != "" {
		writeError(w, http.StatusBadRequest, bad)
		return
	}
	ctx := r.Context()
	p := page{Messages: []message{}}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// One row more than asked tells whether the page is complete.
		cond, args := where(owner, q, q.After, q.Before)
		order := "ASC"
		if q.Last {
			order = "DESC"
		}
		sqlq := "SELECT sid, peer, peer_resource, stamp_ms, outgoing, stanza, body FROM archive WHERE " + cond + " ORDER BY sid " + order + " LIMIT ?"
		args = append(args, q.Max+1)
		if q.Skip > 0 && !q.Last {
			sqlq += " OFFSET ?"
			args = append(args, q.Skip)
		}
		rows, err := tx.QueryContext(ctx, sqlq, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			m := message{Owner: owner}
			var ms int64
			if err := rows.Scan(&m.StanzaID, &m.Peer, &m.PeerResource, &ms, &m.Outgoing, &m.Stanza, &m.Body); err != nil {
				return err
			}
			m.Stamp = time.UnixMilli(ms).UTC().Format(stampLayout)
			p.Messages = append(p.Messages, m)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		p.Complete = len(p.Messages) <= q.Max
		p.Messages = p.Messages[:min(len(p.Messages), q.Max)]
		if q.Last {
			slices.Reverse(p.Messages)
		}
		if !q.Count {
			return nil
		}
		cond, args = where(owner, q, "", "")
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM archive WHERE "+cond, args...).Scan(&p.Count); err != nil {
			return err
		}
		if len(p.Messages) > 0 {
			cond, args = where(owner, q, "", p.Messages[0].StanzaID)
			return tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM archive WHERE "+cond, args...).Scan(&p.Index)
		}
		return nil
	})
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *server) deleteArchive(w http.ResponseWriter, r *http.Request) {
	owner := r.PathValue("owner")
	ctx := r.Context()
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM archive WHERE owner = ?", owner); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "DELETE FROM archive_prefs WHERE owner = ?", owner)
		return err
	})
	s.noContent(w, r, err)
}

// retractArchived replaces a message with the tombstone koi sends, and
// empties its body so that text searches no longer find its words.
func (s *server) retractArchived(w http.ResponseWriter, r *http.Request) {
	var t struct {
		Tombstone string `json:"tombstone"`
	}
	if !readJSON(w, r, &t) {
		return
	}
	if t.Tombstone == "" {
		writeError(w, http.StatusBadRequest, "tombstone is required")
		return
	}
	res, err := s.st.db.ExecContext(r.Context(), "UPDATE archive SET stanza = ?, body = '' WHERE owner = ? AND sid = ?",
		t.Tombstone, r.PathValue("owner"), r.PathValue("stanza_id"))
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if n, err := res.RowsAffected(); err != nil {
		s.internal(w, r, err)
		return
	} else if n == 0 {
		writeError(w, http.StatusNotFound, "no such message")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) getPrefs(w http.ResponseWriter, r *http.Request) {
	p := prefs{Always: []string{}, Never: []string{}}
	var always, never string
	err := s.st.db.QueryRowContext(r.Context(), "SELECT mode, always_json, never_json FROM archive_prefs WHERE owner = ?", r.PathValue("owner")).
		Scan(&p.Default, &always, &never)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		s.internal(w, r, err)
		return
	default:
		if err := errors.Join(json.Unmarshal([]byte(always), &p.Always), json.Unmarshal([]byte(never), &p.Never)); err != nil {
			s.internal(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *server) setPrefs(w http.ResponseWriter, r *http.Request) {
	var p prefs
	if !readJSON(w, r, &p) {
		return
	}
	switch p.Default {
	case "always", "never", "roster", "":
	default:
		writeError(w, http.StatusBadRequest, "unknown default")
		return
	}
	seen := map[string]bool{}
	for _, j := range append(slices.Clip(p.Always), p.Never...) {
		if j == "" || seen[j] {
			writeError(w, http.StatusBadRequest, "a JID is empty or listed twice")
			return
		}
		seen[j] = true
	}
	if p.Always == nil {
		p.Always = []string{}
	}
	if p.Never == nil {
		p.Never = []string{}
	}
	always, _ := json.Marshal(p.Always)
	never, _ := json.Marshal(p.Never)
	_, err := s.st.db.ExecContext(r.Context(), `INSERT INTO archive_prefs (owner, mode, always_json, never_json) VALUES (?, ?, ?, ?)
		ON CONFLICT (owner) DO UPDATE SET mode = excluded.mode, always_json = excluded.always_json, never_json = excluded.never_json`,
		r.PathValue("owner"), p.Default, string(always), string(never))
	s.noContent(w, r, err)
}
