package archive

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/koi-im/koi/core/dataform"
	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// The query side of Message Archive Management (XEP-0313) with Result Set
// Management (XEP-0059), shared by the archives of accounts
// (core/modules) and of rooms (core/muc): both read the same query form
// and answer with the same result messages and <fin/>.

// Namespaces of archive queries.
const (
	NSMAM2      = "urn:xmpp:mam:2"
	nsRSM       = "http://jabber.org/protocol/rsm"
	nsForward   = "urn:xmpp:forward:0"
	nsDataForms = dataform.NS
	nsFulltext  = "urn:xmpp:fulltext:0"
)

// Limits of a query.
const (
	// DefaultPage is the page size when the client gives none; MaxPage
	// the largest page served (a larger max is cut down, as XEP-0059
	// allows).
	DefaultPage = 50
	MaxPage     = 250
	// MaxQueryIDs bounds the ids field of a query.
	MaxQueryIDs = 250
)

// Query is a parsed archive query: Q lacks only the Owner.
type Query struct {
	Q       sdk.ArchiveQuery
	QueryID string
	Flip    bool // <flip-page/>: deliver the page in reverse order
}

// QueryForm is the query form of namespace ns (XEP-0313 §4.1.1 and §7.1).
func QueryForm(ns string, fullText bool) *xmlstream.Element {
	fields := []dataform.Field{
		{Var: "with", Type: "jid-single"}, {Var: "start", Type: "text-single"}, {Var: "end", Type: "text-single"},
		{Var: "before-id", Type: "text-single"}, {Var: "after-id", Type: "text-single"}, {Var: "ids", Type: "text-multi"},
	}
	if fullText {
		fields = append(fields, dataform.Field{Var: "{" + nsFulltext + "}fulltext", Type: "text-single"})
	}
	return xmlstream.NewElement(ns, "query").AppendChild(dataform.Build("form", ns, "", "", fields))
}

// ParseQuery reads the form and the RSM set (XEP-0059) of a query in
// namespace ns; fullText says whether the archive has full-text search.
func ParseQuery(q *xmlstream.Element, ns string, fullText bool) (Query, *stanza.Error) {
	req := Query{QueryID: q.Attr("queryid"), Flip: q.Child(ns, "flip-page") != nil}
	bad := func(text string) (Query, *stanza.Error) {
		return Query{}, stanza.ErrBadRequest.WithText(text)
	}
	var afterIDs, beforeIDs []string
	if x := q.Child(nsDataForms, "x"); x != nil {
		if t := x.Attr("type"); t != "submit" && t != "" {
			return bad("the query form must be submitted (type='submit')")
		}
		for _, f := range x.Elements() {
			if f.Space != nsDataForms || f.Local != "field" {
				continue
			}
			var values []string
			for _, v := range f.Elements() {
				if v.Space == nsDataForms && v.Local == "value" {
					values = append(values, v.Text())
				}
			}
			one := ""
			if len(values) > 0 {
				one = values[0]
			}
			switch v := f.Attr("var"); v {
			case "FORM_TYPE":
				if one != ns && one != NSMAM2 {
					return bad("FORM_TYPE must be " + ns)
				}
			case "with":
				if one == "" {
					continue
				}
				j, err := jid.Parse(one)
				if err != nil {
					return Query{}, stanza.ErrJIDMalformed.WithText("invalid JID in the with field")
				}
				req.Q.With, req.Q.WithResource = j.Bare().String(), j.Resource()
			case "start", "end":
				if one == "" {
					continue
				}
				t, err := time.Parse(time.RFC3339Nano, one)
				if err != nil {
					return bad("the " + v + " field is not an XEP-0082 date and time")
				}
				if v == "start" {
					afterIDs = append(afterIDs, AfterTime(t))
				} else {
					beforeIDs = append(beforeIDs, BeforeTime(t))
				}
			case "after-id":
				if one != "" {
					afterIDs = append(afterIDs, one)
				}
			case "before-id":
				if one != "" {
					beforeIDs = append(beforeIDs, one)
				}
			case "ids":
				if len(values) > MaxQueryIDs {
					return bad("too many ids (at most " + strconv.Itoa(MaxQueryIDs) + ")")
				}
				for _, id := range values {
					if id != "" {
						req.Q.IDs = append(req.Q.IDs, id)
					}
				}
				if len(req.Q.IDs) == 0 {
					// An ids field without ids selects nothing, not everything.
					req.Q.IDs = []string{""}
				}
			case "{" + nsFulltext + "}fulltext", "withtext":
				if !fullText {
					return Query{}, stanza.ErrFeatureNotImpl.WithText("this archive has no full-text search")
				}
				req.Q.Text = one
			default:
				return bad("unknown field " + strconv.Quote(v))
			}
		}
	}
	for _, id := range afterIDs {
		req.Q.AfterID = max(req.Q.AfterID, id)
	}
	for i, id := range beforeIDs {
		if i == 0 || id < req.Q.BeforeID {
			req.Q.BeforeID = id
		}
	}

	req.Q.Max = DefaultPage
	if set := q.Child(nsRSM, "set"); set != nil {
		if mx := set.Child(nsRSM, "max"); mx != nil {
			n, err := strconv.Atoi(mx.Text())
			if err != nil || n < 0 {
				return bad("max must be a number of items")
			}
			req.Q.Max = min(n, MaxPage)
			if n == 0 {
				req.Q.Count = true // the XEP-0059 way of asking only for the count
			}
		}
		if a := set.Child(nsRSM, "after"); a != nil {
			if a.Text() == "" {
				return bad("after needs an id")
			}
			req.Q.After = a.Text()
		}
		if b := set.Child(nsRSM, "before"); b != nil {
			req.Q.Before = b.Text() // empty: the last page
			req.Q.Last = true
		}
		if ix := set.Child(nsRSM, "index"); ix != nil {
			n, err := strconv.Atoi(ix.Text())
			if err != nil || n < 0 {
				return bad("index must be a non-negative number")
			}
			if req.Q.After != "" || req.Q.Last {
				return bad("index cannot be combined with after or before")
			}
			req.Q.Skip = n
			req.Q.Count = true
		}
	}
	if req.Q.Last && req.Q.After != "" {
		req.Q.Last = req.Q.Before != "" // after + before: a page between the two, from the start
	}
	return req, nil
}

// Source is an archive that answers queries: a backend, with the writer
// that feeds it.
type Source interface {
	// Sync waits until owner's pending messages are stored.
	Sync(ctx context.Context, owner string) error
	QueryArchive(ctx context.Context, q sdk.ArchiveQuery) (sdk.ArchivePage, error)
}

// ErrPending means an owner's pending writes were not stored in time for a
// query.
var ErrPending = errors.New("archive: pending writes not stored in time")

// NoSuchIDError is an RSM after or before that names no message of the
// archive (XEP-0059 §2.6: item-not-found).
type NoSuchIDError struct{ ID string }

func (e *NoSuchIDError) Error() string { return "no message " + e.ID + " in the archive" }

// Read answers q (q.Q.Owner set) from src. The owner's messages still in
// the writer's queue are written first, waiting at most syncTimeout, so
// that a query right after a message sees it. Errors: ErrPending, a
// *NoSuchIDError, or the backend's.
func Read(ctx context.Context, src Source, q Query, syncTimeout time.Duration) (sdk.ArchivePage, error) {
	owner := q.Q.Owner
	sctx, cancel := context.WithTimeout(ctx, syncTimeout)
	err := src.Sync(sctx, owner)
	cancel()
	if err != nil {
		return sdk.ArchivePage{}, fmt.Errorf("%w: %w", ErrPending, err)
	}
	for _, id := range []string{q.Q.After, q.Q.Before} {
		if id == "" {
			continue
		}
		p, err := src.QueryArchive(ctx, sdk.ArchiveQuery{Owner: owner, IDs: []string{id}, Max: 1})
		if err != nil {
			return sdk.ArchivePage{}, err
		}
		if len(p.Messages) == 0 {
			return sdk.ArchivePage{}, &NoSuchIDError{ID: id}
		}
	}
	return src.QueryArchive(ctx, q.Q)
}

// Fin is the <fin/> that ends the answer to q with page.
func Fin(ns string, q sdk.ArchiveQuery, page sdk.ArchivePage) *xmlstream.Element {
	fin := xmlstream.NewElement(ns, "fin")
	if page.Complete {
		fin.SetAttr("complete", "true")
	}
	set := xmlstream.NewElement(nsRSM, "set")
	if msgs := page.Messages; len(msgs) > 0 {
		first := xmlstream.NewElement(nsRSM, "first").AppendText(msgs[0].StanzaID)
		if q.Count {
			first.SetAttr("index", strconv.Itoa(page.Index))
		}
		set.AppendChild(first)
		set.AppendChild(xmlstream.NewElement(nsRSM, "last").AppendText(msgs[len(msgs)-1].StanzaID))
	}
	if q.Count {
		set.AppendChild(xmlstream.NewElement(nsRSM, "count").AppendText(strconv.Itoa(page.Count)))
	}
	return fin.AppendChild(set)
}

// Result wraps orig, the stanza of the archived message am, for delivery
// from the archive at from to to (XEP-0313 §4.2).
func Result(ns, queryID string, from, to string, am sdk.ArchivedMessage, orig *xmlstream.Element, id string) *xmlstream.Element {
	res := xmlstream.NewElement(ns, "result").SetAttr("id", am.StanzaID)
	if queryID != "" {
		res.SetAttr("queryid", queryID)
	}
	fwd := xmlstream.NewElement(nsForward, "forwarded").
		AppendChild(xmlstream.NewElement(stanza.NSDelay, "delay").SetAttr("stamp", am.Stamp.UTC().Format("2006-01-02T15:04:05.000Z"))).
		AppendChild(orig)
	return xmlstream.NewElement(xmlstream.NSClient, "message").
		SetAttr("from", from).SetAttr("to", to).SetAttr("id", id).
		AppendChild(res.AppendChild(fwd))
}
