package httpbackend

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"unicode/utf8"

	"github.com/koi-im/koi/sdk"
)

// The roster part of koi's JSON contract (openapi.yaml). Owners and
// contacts are bare JIDs, one path segment each.

type wireItem struct {
	JID          string   `json:"jid"`
	Name         string   `json:"name"`
	Subscription string   `json:"subscription"`
	Ask          bool     `json:"ask"`
	Approved     bool     `json:"approved"`
	Groups       []string `json:"groups"`
}

type wirePending struct {
	JID    string `json:"jid"`
	Stanza string `json:"stanza"`
}

type wireRoster struct {
	Version string        `json:"version"`
	Items   []wireItem    `json:"items"`
	Pending []wirePending `json:"pending"`
}

type wireVersion struct {
	Version string `json:"version"`
}

type wireStanza struct {
	Stanza string `json:"stanza"`
}

func rosterPath(owner string, rest ...string) string {
	p := "roster/" + url.PathEscape(owner)
	for _, r := range rest {
		p += "/" + url.PathEscape(r)
	}
	return p
}

// checkStrings refuses text JSON cannot carry as is: encoding/json would
// silently replace invalid UTF-8.
func checkStrings(what string, ss ...string) error {
	for _, s := range ss {
		if !utf8.ValidString(s) {
			return fmt.Errorf("%w: %s is not valid UTF-8", sdk.ErrInvalid, what)
		}
	}
	return nil
}

func checkRosterKeys(owner string, contacts ...string) error {
	if err := checkOwner(owner); err != nil {
		return err
	}
	for _, c := range contacts {
		if c == "" {
			return fmt.Errorf("%w: empty contact", sdk.ErrInvalid)
		}
	}
	return checkStrings("a JID", append(contacts, owner)...)
}

// checkVersion refuses an answer without a version: koi hands it to
// clients (XEP-0237), so an empty one is a broken service.
func checkVersion(cl call, v string) error {
	if v == "" {
		return fmt.Errorf("%w: %s %s: the answer has no version", sdk.ErrUnavailable, cl.method, cl.path)
	}
	return nil
}

func (b *Backend) GetRoster(ctx context.Context, owner string) (sdk.RosterState, error) {
	if err := checkRosterKeys(owner); err != nil {
		return sdk.RosterState{}, err
	}
	var w wireRoster
	cl := call{method: http.MethodGet, path: rosterPath(owner), out: &w, idempotent: true}
	if _, err := b.c.jsonCall(ctx, cl); err != nil {
		return sdk.RosterState{}, err
	}
	if err := checkVersion(cl, w.Version); err != nil {
		return sdk.RosterState{}, err
	}
	st := sdk.RosterState{Version: w.Version}
	for _, it := range w.Items {
		st.Items = append(st.Items, sdk.RosterItem{
			JID: it.JID, Name: it.Name, Subscription: it.Subscription,
			Ask: it.Ask, Approved: it.Approved, Groups: it.Groups,
		})
	}
	for _, p := range w.Pending {
		st.Pending = append(st.Pending, sdk.PendingSubscription{JID: p.JID, Stanza: p.Stanza})
	}
	return st, nil
}

func (b *Backend) SetItem(ctx context.Context, owner string, item sdk.RosterItem) (string, error) {
	if err := checkRosterKeys(owner, item.JID); err != nil {
		return "", err
	}
	if err := checkStrings("a roster item", append([]string{item.Name, item.Subscription}, item.Groups...)...); err != nil {
		return "", err
	}
	switch item.Subscription {
	case sdk.SubNone, sdk.SubTo, sdk.SubFrom, sdk.SubBoth:
	default:
		return "", fmt.Errorf("%w: unknown subscription %q", sdk.ErrInvalid, item.Subscription)
	}
	groups := item.Groups
	if groups == nil {
		groups = []string{}
	}
	var v wireVersion
	cl := call{method: http.MethodPut, path: rosterPath(owner, "items", item.JID), out: &v, json: wireItem{
		JID: item.JID, Name: item.Name, Subscription: item.Subscription,
		Ask: item.Ask, Approved: item.Approved, Groups: groups,
	}}
	if _, err := b.c.jsonCall(ctx, cl); err != nil {
		return "", err
	}
	return v.Version, checkVersion(cl, v.Version)
}

func (b *Backend) DeleteItem(ctx context.Context, owner, contact string) (string, error) {
	if err := checkRosterKeys(owner, contact); err != nil {
		return "", err
	}
	var v wireVersion
	cl := call{method: http.MethodDelete, path: rosterPath(owner, "items", contact), out: &v}
	if _, err := b.c.jsonCall(ctx, cl); err != nil {
		return "", err
	}
	return v.Version, checkVersion(cl, v.Version)
}

func (b *Backend) SetPending(ctx context.Context, owner string, p sdk.PendingSubscription) error {
	if err := checkRosterKeys(owner, p.JID); err != nil {
		return err
	}
	if err := checkStrings("a stanza", p.Stanza); err != nil {
		return err
	}
	_, err := b.c.jsonCall(ctx, call{method: http.MethodPut, path: rosterPath(owner, "pending", p.JID), json: wireStanza{Stanza: p.Stanza}})
	return err
}

func (b *Backend) DeletePending(ctx context.Context, owner, contact string) error {
	if err := checkRosterKeys(owner, contact); err != nil {
		return err
	}
	return ignoreNotFound(b.c.jsonCall(ctx, call{method: http.MethodDelete, path: rosterPath(owner, "pending", contact)}))
}

func (b *Backend) DeleteRoster(ctx context.Context, owner string) error {
	if err := checkRosterKeys(owner); err != nil {
		return err
	}
	return ignoreNotFound(b.c.jsonCall(ctx, call{method: http.MethodDelete, path: rosterPath(owner)}))
}

// ignoreNotFound is for deletions where absent is not an error, whether
// the service answers 204 or 404.
func ignoreNotFound(_ response, err error) error {
	if errors.Is(err, sdk.ErrNotFound) {
		return nil
	}
	return err
}
