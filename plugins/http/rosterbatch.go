package httpbackend

import (
	"context"
	"fmt"
	"net/http"

	"github.com/koi-im/koi/sdk"
)

// POST {base}/roster_changes: both sides of a subscription in one call,
// for a service that can store them all or none (config key roster_batch).
// Every change is an absolute state, so the call is idempotent and retried
// like a read after a temporary failure.

type wireChange struct {
	Owner         string      `json:"owner"`
	Contact       string      `json:"contact"`
	Item          *wireItem   `json:"item,omitempty"`
	DeleteItem    bool        `json:"delete_item"`
	Pending       *wireStanza `json:"pending,omitempty"`
	DeletePending bool        `json:"delete_pending"`
}

type wireChanges struct {
	Changes []wireChange `json:"changes"`
}

type wireVersions struct {
	Versions map[string]string `json:"versions"`
}

// ApplyRosterChanges implements sdk.RosterBatchWriter.
func (b *Backend) ApplyRosterChanges(ctx context.Context, changes []sdk.RosterChange) (map[string]string, error) {
	if !b.set.RosterBatch {
		return nil, fmt.Errorf("%w: roster_batch is off", sdk.ErrReadOnly)
	}
	if err := sdk.CheckRosterChanges(changes); err != nil {
		return nil, err
	}
	body := wireChanges{Changes: make([]wireChange, len(changes))}
	for i, c := range changes {
		if err := checkRosterKeys(c.Owner, c.Contact); err != nil {
			return nil, err
		}
		w := wireChange{Owner: c.Owner, Contact: c.Contact, DeleteItem: c.DeleteItem, DeletePending: c.DeletePending}
		if it := c.Item; it != nil {
			if err := checkStrings("a roster item", append([]string{it.Name}, it.Groups...)...); err != nil {
				return nil, err
			}
			groups := it.Groups
			if groups == nil {
				groups = []string{}
			}
			w.Item = &wireItem{JID: it.JID, Name: it.Name, Subscription: it.Subscription, Ask: it.Ask, Approved: it.Approved, Groups: groups}
		}
		if c.Pending != nil {
			if err := checkStrings("a stanza", c.Pending.Stanza); err != nil {
				return nil, err
			}
			w.Pending = &wireStanza{Stanza: c.Pending.Stanza}
		}
		body.Changes[i] = w
	}
	var out wireVersions
	cl := call{method: http.MethodPost, path: "roster_changes", json: body, out: &out, idempotent: true}
	if _, err := b.c.jsonCall(ctx, cl); err != nil {
		return nil, err
	}
	for _, c := range changes {
		if c.ChangesItem() {
			if err := checkVersion(cl, out.Versions[c.Owner]); err != nil {
				return nil, err
			}
		}
	}
	return out.Versions, nil
}
