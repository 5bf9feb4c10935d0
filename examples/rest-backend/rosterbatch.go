package main

import (
	"database/sql"
	"fmt"
	"net/http"
	"slices"
)

// POST /roster_changes: several rosters' changes in one transaction, all
// or none, so that both sides of a subscription are stored together.

type rosterChange struct {
	Owner         string      `json:"owner"`
	Contact       string      `json:"contact"`
	Item          *rosterItem `json:"item"`
	DeleteItem    bool        `json:"delete_item"`
	Pending       *stanzaBody `json:"pending"`
	DeletePending bool        `json:"delete_pending"`
}

func (s *server) applyRosterChanges(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Changes []rosterChange `json:"changes"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	type key struct{ owner, contact string }
	seen := map[key]bool{}
	var owners []string
	for _, c := range req.Changes {
		k := key{c.Owner, c.Contact}
		switch {
		case c.Owner == "" || c.Contact == "" || seen[k]:
			writeError(w, http.StatusBadRequest, "each change needs an owner and a contact, once")
			return
		case c.Item != nil && (c.DeleteItem || c.Item.JID != c.Contact || !subscriptions[c.Item.Subscription]):
			writeError(w, http.StatusBadRequest, fmt.Sprintf("bad item for %s in %s's roster", c.Contact, c.Owner))
			return
		case c.Pending != nil && c.DeletePending:
			writeError(w, http.StatusBadRequest, "a pending request both set and deleted")
			return
		}
		seen[k] = true
		if (c.Item != nil || c.DeleteItem) && !slices.Contains(owners, c.Owner) {
			owners = append(owners, c.Owner)
		}
	}
	ctx := r.Context()
	versions := map[string]string{}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for _, c := range req.Changes {
			var err error
			switch {
			case c.Item != nil:
				err = putItem(ctx, tx, c.Owner, c.Contact, *c.Item)
			case c.DeleteItem:
				_, err = tx.ExecContext(ctx, "DELETE FROM roster_items WHERE owner = ? AND jid = ?", c.Owner, c.Contact)
			}
			if err != nil {
				return err
			}
			switch {
			case c.Pending != nil:
				_, err = tx.ExecContext(ctx, `INSERT INTO roster_pending (owner, jid, stanza) VALUES (?, ?, ?)
					ON CONFLICT (owner, jid) DO UPDATE SET stanza = excluded.stanza`, c.Owner, c.Contact, c.Pending.Stanza)
			case c.DeletePending:
				_, err = tx.ExecContext(ctx, "DELETE FROM roster_pending WHERE owner = ? AND jid = ?", c.Owner, c.Contact)
			}
			if err != nil {
				return err
			}
		}
		for _, o := range owners {
			v, err := bump(ctx, tx, o)
			if err != nil {
				return err
			}
			versions[o] = v
		}
		return nil
	})
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"versions": versions})
}
