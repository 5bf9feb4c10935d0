package mongobackend

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/koi-im/koi/sdk"
)

// archiveDoc is one archived message. Field names are short: there is one
// document per message, and each carries them.
type archiveDoc struct {
	Owner  string    `bson:"owner"`
	SID    string    `bson:"sid"`
	Peer   string    `bson:"peer"`
	Res    string    `bson:"res,omitempty"`
	TS     time.Time `bson:"ts"`
	Out    bool      `bson:"out"`
	Stanza string    `bson:"stanza"`
	Body   string    `bson:"body,omitempty"`
}

type prefsDoc struct {
	Owner   string   `bson:"_id"`
	Default string   `bson:"default"`
	Always  []string `bson:"always"`
	Never   []string `bson:"never"`
}

// duplicateKey is MongoDB's error code for a unique index violation.
const duplicateKey = 11000

// AppendWriters is the sdk.AppendConcurrency of the archive: the
// archive_writers setting. Concurrent inserts are safe: a message inserted
// twice at once fails one of them with a duplicate key, which
// AppendArchive counts as stored.
func (s *Store) AppendWriters() int { return s.set.ArchiveWriters }

// AppendArchive inserts the batch in one unordered InsertMany. Messages
// already stored hit the unique (owner, sid) index and are skipped, which
// makes a resent batch harmless without a transaction.
func (s *Store) AppendArchive(ctx context.Context, msgs []sdk.ArchivedMessage) error {
	const op = "archive.Append"
	if len(msgs) == 0 {
		return nil
	}
	docs := make([]any, 0, len(msgs))
	for _, m := range msgs {
		if err := sdk.CheckArchivedMessage(m); err != nil {
			return s.fail(op, err)
		}
		docs = append(docs, archiveDoc{
			Owner: m.Owner, SID: m.StanzaID, Peer: m.Peer, Res: m.PeerResource,
			TS: m.Stamp, Out: m.Outgoing, Stanza: m.Stanza, Body: m.Body,
		})
	}
	_, err := s.archive.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	var bwe mongo.BulkWriteException
	if errors.As(err, &bwe) && bwe.WriteConcernError == nil && len(bwe.WriteErrors) > 0 &&
		!slices.ContainsFunc(bwe.WriteErrors, func(e mongo.BulkWriteError) bool { return e.Code != duplicateKey }) {
		return nil // every failure is a message stored before
	}
	return s.fail(op, err)
}

// QueryArchive serves a page with one find (sorted by sid, which the
// owner_time or owner_peer_time index provides) and, when asked, two
// counts.
func (s *Store) QueryArchive(ctx context.Context, q sdk.ArchiveQuery) (sdk.ArchivePage, error) {
	const op = "archive.Query"
	if err := sdk.CheckArchiveQuery(q); err != nil {
		return sdk.ArchivePage{}, s.fail(op, err)
	}
	base := bson.D{{Key: "owner", Value: q.Owner}}
	if q.With != "" {
		base = append(base, bson.E{Key: "peer", Value: q.With})
		if q.WithResource != "" {
			base = append(base, bson.E{Key: "res", Value: q.WithResource})
		}
	}
	if q.Text != "" {
		if s.textIndex {
			base = append(base, bson.E{Key: "$text", Value: bson.D{{Key: "$search", Value: q.Text}}})
		} else {
			base = append(base, bson.E{Key: "body", Value: bson.D{
				{Key: "$regex", Value: regexp.QuoteMeta(q.Text)}, {Key: "$options", Value: "i"}}})
		}
	}
	sid := func(lo, hi string, ids []string) bson.D {
		c := bson.D{}
		if lo != "" {
			c = append(c, bson.E{Key: "$gt", Value: lo})
		}
		if hi != "" {
			c = append(c, bson.E{Key: "$lt", Value: hi})
		}
		if len(ids) > 0 {
			c = append(c, bson.E{Key: "$in", Value: ids})
		}
		if len(c) == 0 {
			return nil // {sid: {}} would ask for sid == {}
		}
		return bson.D{{Key: "sid", Value: c}}
	}
	with := func(extra bson.D) bson.D {
		return append(slices.Clip(base), extra...)
	}
	resultSet := with(sid(q.AfterID, q.BeforeID, q.IDs))
	page := with(sid(max(q.AfterID, q.After), minID(q.BeforeID, q.Before), q.IDs))

	order := 1
	if q.Last {
		order = -1
	}
	fo := options.Find().SetSort(bson.D{{Key: "sid", Value: order}}).SetLimit(int64(q.Max) + 1)
	if q.Skip > 0 && !q.Last {
		fo.SetSkip(int64(q.Skip))
	}
	cur, err := s.archive.Find(ctx, page, fo)
	if err != nil {
		return sdk.ArchivePage{}, s.fail(op, err)
	}
	var docs []archiveDoc
	if err := cur.All(ctx, &docs); err != nil {
		return sdk.ArchivePage{}, s.fail(op, err)
	}
	out := sdk.ArchivePage{Complete: len(docs) <= q.Max}
	docs = docs[:min(len(docs), q.Max)]
	if q.Last {
		slices.Reverse(docs)
	}
	for _, d := range docs {
		out.Messages = append(out.Messages, sdk.ArchivedMessage{
			Owner: d.Owner, StanzaID: d.SID, Peer: d.Peer, PeerResource: d.Res,
			Stamp: d.TS.UTC(), Outgoing: d.Out, Stanza: d.Stanza, Body: d.Body,
		})
	}
	if q.Count {
		n, err := s.archive.CountDocuments(ctx, resultSet)
		if err != nil {
			return sdk.ArchivePage{}, s.fail(op, err)
		}
		out.Count = int(n)
		if len(out.Messages) > 0 {
			before, err := s.archive.CountDocuments(ctx, with(sid(q.AfterID, minID(q.BeforeID, out.Messages[0].StanzaID), q.IDs)))
			if err != nil {
				return sdk.ArchivePage{}, s.fail(op, err)
			}
			out.Index = int(before)
		}
	}
	return out, nil
}

// minID is the tighter of two exclusive upper bounds; "" is no bound.
func minID(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return min(a, b)
}

// RetractArchived replaces the stanza of owner's message stanzaID with
// tombstone and drops its body, which the text index covers
// (sdk.ArchiveRetractor).
func (s *Store) RetractArchived(ctx context.Context, owner, stanzaID, tombstone string) error {
	const op = "archive.Retract"
	if err := sdk.CheckRetraction(owner, stanzaID, tombstone); err != nil {
		return s.fail(op, err)
	}
	if err := checkKey("owner", owner); err != nil {
		return s.fail(op, err)
	}
	res, err := s.archive.UpdateOne(ctx, bson.D{{Key: "owner", Value: owner}, {Key: "sid", Value: stanzaID}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "stanza", Value: tombstone}}}, {Key: "$unset", Value: bson.D{{Key: "body", Value: ""}}}})
	if err != nil {
		return s.fail(op, err)
	}
	if res.MatchedCount == 0 {
		return s.fail(op, fmt.Errorf("%w: no message %s in %s's archive", sdk.ErrNotFound, stanzaID, owner))
	}
	return nil
}

// DeleteArchive removes the owner's messages and preferences.
func (s *Store) DeleteArchive(ctx context.Context, owner string) error {
	const op = "archive.Delete"
	if err := checkKey("owner", owner); err != nil {
		return s.fail(op, err)
	}
	if _, err := s.archive.DeleteMany(ctx, bson.D{{Key: "owner", Value: owner}}); err != nil {
		return s.fail(op, err)
	}
	_, err := s.prefs.DeleteOne(ctx, bson.D{{Key: "_id", Value: owner}})
	return s.fail(op, err)
}

// GetArchivePrefs returns the owner's preferences, the zero value if none.
func (s *Store) GetArchivePrefs(ctx context.Context, owner string) (sdk.ArchivePrefs, error) {
	const op = "archive.GetPrefs"
	if err := checkKey("owner", owner); err != nil {
		return sdk.ArchivePrefs{}, s.fail(op, err)
	}
	var d prefsDoc
	err := s.prefs.FindOne(ctx, bson.D{{Key: "_id", Value: owner}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return sdk.ArchivePrefs{}, nil
	}
	if err != nil {
		return sdk.ArchivePrefs{}, s.fail(op, err)
	}
	return sdk.ArchivePrefs{Default: d.Default, Always: d.Always, Never: d.Never}, nil
}

// SetArchivePrefs replaces the owner's preferences.
func (s *Store) SetArchivePrefs(ctx context.Context, owner string, p sdk.ArchivePrefs) error {
	const op = "archive.SetPrefs"
	if err := checkPrefs(owner, p); err != nil {
		return s.fail(op, err)
	}
	d := prefsDoc{Owner: owner, Default: p.Default, Always: nonNil(p.Always), Never: nonNil(p.Never)}
	return s.fail(op, put(ctx, s.prefs, owner, d))
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

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
