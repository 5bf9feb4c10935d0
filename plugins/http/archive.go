package httpbackend

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/koi-im/koi/sdk"
)

// The archive part of koi's JSON contract (openapi.yaml). Appends are
// idempotent by (owner, stanza id), so they are retried like reads; a
// query is a POST (its id list may be long) but a read, retried too.

// AppendWriters is the sdk.AppendConcurrency of the archive: the
// archive_writers setting, 1 unless the service is said to take several
// POSTs at once (each is idempotent by owner and id, so two that overlap
// after a resend store each message once).
func (b *Backend) AppendWriters() int { return b.set.ArchiveWriters }

// stampLayout writes stamps in UTC to the millisecond, as koi makes them.
const stampLayout = "2006-01-02T15:04:05.000Z07:00"

type wireMessage struct {
	Owner        string `json:"owner"`
	StanzaID     string `json:"stanza_id"`
	Peer         string `json:"peer"`
	PeerResource string `json:"peer_resource"`
	Stamp        string `json:"stamp"`
	Outgoing     bool   `json:"outgoing"`
	Stanza       string `json:"stanza"`
	Body         string `json:"body"`
}

type wireAppend struct {
	Messages []wireMessage `json:"messages"`
}

type wireQuery struct {
	With         string   `json:"with,omitempty"`
	WithResource string   `json:"with_resource,omitempty"`
	AfterID      string   `json:"after_id,omitempty"`
	BeforeID     string   `json:"before_id,omitempty"`
	IDs          []string `json:"ids,omitempty"`
	Text         string   `json:"text,omitempty"`
	After        string   `json:"after,omitempty"`
	Before       string   `json:"before,omitempty"`
	Last         bool     `json:"last"`
	Skip         int      `json:"skip"`
	Max          int      `json:"max"`
	Count        bool     `json:"count"`
}

type wirePage struct {
	Messages []wireMessage `json:"messages"`
	Complete bool          `json:"complete"`
	Count    int           `json:"count"`
	Index    int           `json:"index"`
}

type wirePrefs struct {
	Default string   `json:"default"`
	Always  []string `json:"always"`
	Never   []string `json:"never"`
}

func archivePath(owner string, rest ...string) string {
	p := "archive/" + url.PathEscape(owner)
	for _, r := range rest {
		p += "/" + r
	}
	return p
}

func (b *Backend) AppendArchive(ctx context.Context, msgs []sdk.ArchivedMessage) error {
	batch := wireAppend{Messages: make([]wireMessage, len(msgs))}
	for i, m := range msgs {
		// Check the whole batch first: a bad message must not leave
		// half of it stored.
		if err := sdk.CheckArchivedMessage(m); err != nil {
			return err
		}
		batch.Messages[i] = wireMessage{
			Owner: m.Owner, StanzaID: m.StanzaID, Peer: m.Peer, PeerResource: m.PeerResource,
			Stamp: m.Stamp.UTC().Format(stampLayout), Outgoing: m.Outgoing, Stanza: m.Stanza, Body: m.Body,
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	_, err := b.c.jsonCall(ctx, call{method: http.MethodPost, path: "archive/messages", json: batch, idempotent: true,
		parse: appendAnswer(len(msgs))})
	return err
}

// appendAnswer checks the answer to an append. koi forgets a batch once
// the service has taken it, so a 200 whose body is not the contract's
// {"stored": n} (a proxy's error page, a truncated answer) must not pass
// for success: it is a temporary failure, and the batch is sent again.
// An empty body (a 204) is success.
func appendAnswer(sent int) func(body []byte) error {
	return func(body []byte) error {
		if len(bytes.TrimSpace(body)) == 0 {
			return nil
		}
		var a struct {
			Stored *int `json:"stored"`
		}
		if err := json.Unmarshal(body, &a); err != nil {
			return fmt.Errorf("want {\"stored\": n}: %w", err)
		}
		if a.Stored != nil && (*a.Stored < 0 || *a.Stored > sent) {
			return fmt.Errorf("stored %d of a batch of %d", *a.Stored, sent)
		}
		return nil
	}
}

func (b *Backend) QueryArchive(ctx context.Context, q sdk.ArchiveQuery) (sdk.ArchivePage, error) {
	if err := sdk.CheckArchiveQuery(q); err != nil {
		return sdk.ArchivePage{}, err
	}
	var w wirePage
	cl := call{method: http.MethodPost, path: archivePath(q.Owner, "query"), out: &w, idempotent: true, json: wireQuery{
		With: q.With, WithResource: q.WithResource, AfterID: q.AfterID, BeforeID: q.BeforeID, IDs: q.IDs,
		Text: q.Text, After: q.After, Before: q.Before, Last: q.Last, Skip: q.Skip, Max: q.Max, Count: q.Count,
	}}
	if _, err := b.c.jsonCall(ctx, cl); err != nil {
		return sdk.ArchivePage{}, err
	}
	if len(w.Messages) > q.Max {
		return sdk.ArchivePage{}, fmt.Errorf("%w: %s %s: %d messages for max %d", sdk.ErrUnavailable, cl.method, cl.path, len(w.Messages), q.Max)
	}
	page := sdk.ArchivePage{Messages: make([]sdk.ArchivedMessage, len(w.Messages)), Complete: w.Complete, Count: w.Count, Index: w.Index}
	for i, m := range w.Messages {
		stamp, err := time.Parse(time.RFC3339Nano, m.Stamp)
		if err != nil {
			return sdk.ArchivePage{}, fmt.Errorf("%w: %s %s: message %s: stamp: %w", sdk.ErrUnavailable, cl.method, cl.path, m.StanzaID, err)
		}
		page.Messages[i] = sdk.ArchivedMessage{
			Owner: q.Owner, StanzaID: m.StanzaID, Peer: m.Peer, PeerResource: m.PeerResource,
			Stamp: stamp.UTC(), Outgoing: m.Outgoing, Stanza: m.Stanza, Body: m.Body,
		}
	}
	// The contract promises ascending ids whatever the direction; a
	// service that forgets would scramble koi's pages.
	if !slices.IsSortedFunc(page.Messages, func(a, b sdk.ArchivedMessage) int { return compareIDs(a.StanzaID, b.StanzaID) }) {
		return sdk.ArchivePage{}, fmt.Errorf("%w: %s %s: messages are not in ascending stanza id order", sdk.ErrUnavailable, cl.method, cl.path)
	}
	return page, nil
}

func compareIDs(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// RetractArchived replaces owner's message stanzaID with tombstone
// (sdk.ArchiveRetractor), for a service that declared archive_retract.
func (b *Backend) RetractArchived(ctx context.Context, owner, stanzaID, tombstone string) error {
	if err := sdk.CheckRetraction(owner, stanzaID, tombstone); err != nil {
		return err
	}
	if err := checkOwner(owner); err != nil {
		return err
	}
	_, err := b.c.jsonCall(ctx, call{method: http.MethodPut, path: archivePath(owner, "messages", url.PathEscape(stanzaID)), idempotent: true,
		json: wireTombstone{Tombstone: tombstone}})
	return err
}

// wireTombstone is the body of a retraction.
type wireTombstone struct {
	Tombstone string `json:"tombstone"`
}

func (b *Backend) DeleteArchive(ctx context.Context, owner string) error {
	if err := checkOwner(owner); err != nil {
		return err
	}
	return ignoreNotFound(b.c.jsonCall(ctx, call{method: http.MethodDelete, path: archivePath(owner)}))
}

func (b *Backend) GetArchivePrefs(ctx context.Context, owner string) (sdk.ArchivePrefs, error) {
	if err := checkOwner(owner); err != nil {
		return sdk.ArchivePrefs{}, err
	}
	var w wirePrefs
	if _, err := b.c.jsonCall(ctx, call{method: http.MethodGet, path: archivePath(owner, "prefs"), out: &w, idempotent: true}); err != nil {
		return sdk.ArchivePrefs{}, err
	}
	return sdk.ArchivePrefs{Default: w.Default, Always: w.Always, Never: w.Never}, nil
}

func (b *Backend) SetArchivePrefs(ctx context.Context, owner string, p sdk.ArchivePrefs) error {
	if err := checkOwner(owner); err != nil {
		return err
	}
	switch p.Default {
	case sdk.ArchiveAlways, sdk.ArchiveNever, sdk.ArchiveRoster, "":
	default:
		return fmt.Errorf("%w: unknown archive default %q", sdk.ErrInvalid, p.Default)
	}
	seen := map[string]bool{}
	for _, j := range append(slices.Clip(p.Always), p.Never...) {
		if j == "" || seen[j] {
			return fmt.Errorf("%w: %q is empty or listed twice", sdk.ErrInvalid, j)
		}
		seen[j] = true
	}
	if err := checkStrings("a JID", append(slices.Clip(p.Always), p.Never...)...); err != nil {
		return err
	}
	w := wirePrefs{Default: p.Default, Always: nonNil(p.Always), Never: nonNil(p.Never)}
	_, err := b.c.jsonCall(ctx, call{method: http.MethodPut, path: archivePath(owner, "prefs"), json: w})
	return err
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
