package sdktest

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/koi-im/koi/sdk"
)

// The archive contract (sdk.Archive): idempotent batched appends, pages in
// stanza id order in both directions, the filters, counts, preferences and
// deletion. Stanza ids here are made like the core makes them: fixed
// width, so that string order is arrival order.

func archiveRead(c sdk.Capabilities, _ Options) bool  { return c.Archive.Access.Readable() }
func archiveWrite(c sdk.Capabilities, _ Options) bool { return c.Archive.Access.Writable() }
func archiveText(c sdk.Capabilities, _ Options) bool {
	return c.Archive.Access.Writable() && c.Archive.FullText
}

func archiveRetract(c sdk.Capabilities, _ Options) bool {
	return c.Archive.Access.Writable() && c.Archive.Retract
}

func archiveChecks() []check {
	return []check{
		{"archive/empty", archiveRead, checkArchiveEmpty},
		{"archive/round-trip", archiveWrite, checkArchiveRoundTrip},
		{"archive/idempotent", archiveWrite, checkArchiveIdempotent},
		{"archive/paging", archiveWrite, checkArchivePaging},
		{"archive/filters", archiveWrite, checkArchiveFilters},
		{"archive/fulltext", archiveText, checkArchiveFullText},
		{"archive/retract", archiveRetract, checkArchiveRetract},
		{"archive/prefs", archiveWrite, checkArchivePrefs},
		{"archive/delete", archiveWrite, checkArchiveDelete},
		{"archive/invalid", archiveWrite, checkArchiveInvalid},
		{"archive/concurrent-append", archiveWrite, checkArchiveConcurrentAppend},
	}
}

func (e *env) archive() sdk.Archive {
	e.t.Helper()
	a, ok := e.b.(sdk.Archive)
	if !ok {
		e.t.Fatal("archive is declared but the backend does not implement sdk.Archive")
	}
	return a
}

// archiveBase is the stamp of message 0; message i is i seconds later.
var archiveBase = time.Date(2025, 12, 31, 23, 59, 0, 0, time.UTC)

// archivedMsg is message i of owner, with peer (a bare JID) and resource.
func archivedMsg(owner string, i int, peer, res string, outgoing bool) sdk.ArchivedMessage {
	body := fmt.Sprintf("message %d", i)
	from, to := peer, owner
	if outgoing {
		from, to = owner, peer
	}
	return sdk.ArchivedMessage{
		Owner: owner, StanzaID: archiveID(i), Peer: peer, PeerResource: res,
		Stamp: archiveBase.Add(time.Duration(i) * time.Second), Outgoing: outgoing,
		Stanza: fmt.Sprintf("<message xmlns='jabber:client' from='%s' to='%s' type='chat'><body>%s</body></message>", from, to, body),
		Body:   body,
	}
}

func archiveID(i int) string { return fmt.Sprintf("sid%08d", i) }

func (e *env) appendArchive(msgs ...sdk.ArchivedMessage) {
	e.t.Helper()
	e.ok(fmt.Sprintf("AppendArchive(%d messages)", len(msgs)), e.archive().AppendArchive(e.ctx, msgs))
}

func (e *env) queryArchive(q sdk.ArchiveQuery) sdk.ArchivePage {
	e.t.Helper()
	p, err := e.archive().QueryArchive(e.ctx, q)
	e.ok(fmt.Sprintf("QueryArchive(%+v)", q), err)
	return p
}

// pageIDs lists a page's stanza ids.
func pageIDs(p sdk.ArchivePage) []string {
	ids := make([]string, len(p.Messages))
	for i, m := range p.Messages {
		ids[i] = m.StanzaID
	}
	return ids
}

func idRange(from, to int) []string {
	var ids []string
	for i := from; i < to; i++ {
		ids = append(ids, archiveID(i))
	}
	return ids
}

// wantPage checks a page's ids (in order) and completeness.
func (e *env) wantPage(what string, p sdk.ArchivePage, ids []string, complete bool) {
	e.t.Helper()
	if got := pageIDs(p); !slices.Equal(got, ids) {
		e.t.Errorf("%s: ids %v, want %v", what, got, ids)
	}
	if p.Complete != complete {
		e.t.Errorf("%s: complete = %v, want %v", what, p.Complete, complete)
	}
}

func checkArchiveEmpty(e *env) {
	owner := e.owner("nobody")
	p := e.queryArchive(sdk.ArchiveQuery{Owner: owner, Max: 10, Count: true})
	e.wantPage("an unknown owner's archive", p, nil, true)
	if p.Count != 0 {
		e.t.Errorf("count of an unknown owner's archive = %d, want 0 (an empty archive, not an error)", p.Count)
	}
	prefs, err := e.archive().GetArchivePrefs(e.ctx, owner)
	if e.noErr("GetArchivePrefs of an unknown owner", err) && (prefs.Default != "" || len(prefs.Always)+len(prefs.Never) > 0) {
		e.t.Errorf("GetArchivePrefs of an unknown owner = %+v, want the zero value", prefs)
	}
}

func checkArchiveRoundTrip(e *env) {
	owner, other := e.owner("alice"), e.owner("bob")
	peer := e.contact("carol")
	weird := sdk.ArchivedMessage{
		Owner: owner, StanzaID: archiveID(3), Peer: peer, PeerResource: "Ph\u00f6ne \u4f60\u597d/x",
		Stamp:    time.Date(2038, 1, 19, 3, 14, 8, 123000000, time.FixedZone("X", 3600)),
		Outgoing: true,
		Stanza:   "<message><body>&lt;escaped&gt; &amp; \u2014 \U0001F600 " + strings.Repeat("long ", 5000) + "</body></message>",
		Body:     "<escaped> & \u2014 \U0001F600 " + strings.Repeat("long ", 5000),
	}
	// Out of order, across owners: a batch is not one conversation.
	e.appendArchive(archivedMsg(owner, 2, peer, "", false), weird, archivedMsg(other, 1, peer, "pc", false),
		archivedMsg(owner, 1, peer, "pc", true))
	p := e.queryArchive(sdk.ArchiveQuery{Owner: owner, Max: 10})
	e.wantPage("the archive", p, idRange(1, 4), true)
	if len(p.Messages) == 3 {
		g := p.Messages[2]
		if g.Owner != weird.Owner || g.Peer != weird.Peer || g.PeerResource != weird.PeerResource ||
			g.Outgoing != weird.Outgoing || g.Stanza != weird.Stanza || g.Body != weird.Body {
			e.t.Errorf("message came back changed:\n got %.200q\nwant %.200q", fmt.Sprintf("%+v", g), fmt.Sprintf("%+v", weird))
		}
		if !g.Stamp.Equal(weird.Stamp) {
			e.t.Errorf("stamp %s, want %s (to the millisecond)", g.Stamp.Format(time.RFC3339Nano), weird.Stamp.Format(time.RFC3339Nano))
		}
		if g0 := p.Messages[0]; g0.PeerResource != "pc" || !g0.Outgoing {
			e.t.Errorf("message 1 came back as %+v, want PeerResource \"pc\" and Outgoing true as stored", g0)
		}
	}
	e.wantPage("another owner's archive", e.queryArchive(sdk.ArchiveQuery{Owner: other, Max: 10}), idRange(1, 2), true)
}

func checkArchiveIdempotent(e *env) {
	owner := e.owner("alice")
	peer := e.contact("bob")
	var batch []sdk.ArchivedMessage
	for i := range 6 {
		batch = append(batch, archivedMsg(owner, i, peer, "", i%2 == 0))
	}
	e.appendArchive(batch[:4]...)
	// A batch resent after a lost acknowledgement, and one overlapping
	// it: stored messages are skipped, the new ones stored.
	e.appendArchive(batch...)
	e.appendArchive(batch[2:]...)
	changed := batch[0]
	changed.Body, changed.Stanza = "rewritten", "<message><body>rewritten</body></message>"
	e.appendArchive(changed)
	p := e.queryArchive(sdk.ArchiveQuery{Owner: owner, Max: 100, Count: true})
	e.wantPage("after resends", p, idRange(0, 6), true)
	if p.Count != 6 {
		e.t.Errorf("count after resends = %d, want 6", p.Count)
	}
	if len(p.Messages) > 0 && p.Messages[0].Body != batch[0].Body {
		e.t.Errorf("a resent message overwrote the stored one: body %q, want %q (AppendArchive keeps the first copy of an (owner, stanza id))", p.Messages[0].Body, batch[0].Body)
	}
	e.appendArchive() // an empty batch is fine
}

func checkArchivePaging(e *env) {
	owner := e.owner("alice")
	peer := e.contact("bob")
	const n = 25
	var msgs []sdk.ArchivedMessage
	for i := range n {
		msgs = append(msgs, archivedMsg(owner, i, peer, "", false))
	}
	e.appendArchive(msgs[10:]...)
	e.appendArchive(msgs[:10]...)

	// Forward: first page, then after the last id of each page.
	p := e.queryArchive(sdk.ArchiveQuery{Owner: owner, Max: 10})
	e.wantPage("first page", p, idRange(0, 10), false)
	p = e.queryArchive(sdk.ArchiveQuery{Owner: owner, Max: 10, After: archiveID(9)})
	e.wantPage("second page", p, idRange(10, 20), false)
	p = e.queryArchive(sdk.ArchiveQuery{Owner: owner, Max: 10, After: archiveID(19)})
	e.wantPage("third page", p, idRange(20, 25), true)
	p = e.queryArchive(sdk.ArchiveQuery{Owner: owner, Max: 5, After: archiveID(19)})
	e.wantPage("a page ending exactly at the end", p, idRange(20, 25), true)

	// Backward: the last page, then before the first id of each page;
	// messages still come in ascending order.
	p = e.queryArchive(sdk.ArchiveQuery{Owner: owner, Max: 10, Last: true})
	e.wantPage("last page", p, idRange(15, 25), false)
	p = e.queryArchive(sdk.ArchiveQuery{Owner: owner, Max: 10, Last: true, Before: archiveID(15)})
	e.wantPage("page before the last", p, idRange(5, 15), false)
	p = e.queryArchive(sdk.ArchiveQuery{Owner: owner, Max: 10, Last: true, Before: archiveID(5)})
	e.wantPage("first page, backward", p, idRange(0, 5), true)

	// Both bounds: a page between two ids.
	p = e.queryArchive(sdk.ArchiveQuery{Owner: owner, Max: 10, After: archiveID(3), Before: archiveID(7)})
	e.wantPage("between two ids", p, idRange(4, 7), true)

	// Skip (RSM index), with the count and the index of the first message.
	p = e.queryArchive(sdk.ArchiveQuery{Owner: owner, Max: 4, Skip: 12, Count: true})
	e.wantPage("skip 12", p, idRange(12, 16), false)
	if p.Count != n || p.Index != 12 {
		e.t.Errorf("skip 12: count %d index %d, want %d and 12", p.Count, p.Index, n)
	}
	p = e.queryArchive(sdk.ArchiveQuery{Owner: owner, Max: 10, Last: true, Before: archiveID(15), Count: true})
	if p.Count != n || p.Index != 5 {
		e.t.Errorf("page before the last: count %d index %d, want %d and 5 (the page bounds do not change the count)", p.Count, p.Index, n)
	}
	// Max 0 with Count: the count alone.
	p = e.queryArchive(sdk.ArchiveQuery{Owner: owner, Max: 0, Count: true})
	if len(p.Messages) != 0 || p.Count != n {
		e.t.Errorf("count only: %d messages, count %d; want none and %d", len(p.Messages), p.Count, n)
	}
	// A filter shrinks the count; the index counts within the result set.
	p = e.queryArchive(sdk.ArchiveQuery{Owner: owner, AfterID: archiveID(9), Max: 3, After: archiveID(14), Count: true})
	e.wantPage("filtered and paged", p, idRange(15, 18), false)
	if p.Count != 15 || p.Index != 5 {
		e.t.Errorf("filtered and paged: count %d index %d, want 15 and 5", p.Count, p.Index)
	}
	// An id that sorts after everything: an empty, complete page.
	p = e.queryArchive(sdk.ArchiveQuery{Owner: owner, Max: 10, After: "~"})
	e.wantPage("after the end", p, nil, true)
}

func checkArchiveFilters(e *env) {
	owner := e.owner("alice")
	bob, carol := e.contact("bob"), e.contact("carol")
	var msgs []sdk.ArchivedMessage
	for i := range 12 {
		switch {
		case i%3 == 0:
			msgs = append(msgs, archivedMsg(owner, i, bob, "phone", i%2 == 0))
		case i%3 == 1:
			msgs = append(msgs, archivedMsg(owner, i, bob, "pc", false))
		default:
			msgs = append(msgs, archivedMsg(owner, i, carol, "", true))
		}
	}
	e.appendArchive(msgs...)
	ids := func(is ...int) []string {
		var out []string
		for _, i := range is {
			out = append(out, archiveID(i))
		}
		return out
	}
	tests := []struct {
		name string
		q    sdk.ArchiveQuery
		want []string
	}{
		{"with a peer", sdk.ArchiveQuery{With: bob}, ids(0, 1, 3, 4, 6, 7, 9, 10)},
		{"with a peer's resource", sdk.ArchiveQuery{With: bob, WithResource: "phone"}, ids(0, 3, 6, 9)},
		{"with another peer", sdk.ArchiveQuery{With: carol}, ids(2, 5, 8, 11)},
		{"with a stranger", sdk.ArchiveQuery{With: e.contact("dave")}, nil},
		{"after an id", sdk.ArchiveQuery{AfterID: archiveID(8)}, ids(9, 10, 11)},
		{"before an id", sdk.ArchiveQuery{BeforeID: archiveID(2)}, ids(0, 1)},
		{"between ids", sdk.ArchiveQuery{AfterID: archiveID(2), BeforeID: archiveID(6)}, ids(3, 4, 5)},
		{"ids", sdk.ArchiveQuery{IDs: ids(7, 2, 11, 99)}, ids(2, 7, 11)},
		{"ids and a peer", sdk.ArchiveQuery{IDs: ids(7, 2, 11), With: bob}, ids(7)},
		{"everything at once", sdk.ArchiveQuery{With: bob, WithResource: "pc", AfterID: archiveID(1), BeforeID: archiveID(10), IDs: ids(1, 4, 7, 10)}, ids(4, 7)},
	}
	for _, tt := range tests {
		q := tt.q
		q.Owner, q.Max, q.Count = owner, 100, true
		p := e.queryArchive(q)
		e.wantPage(tt.name, p, tt.want, true)
		if p.Count != len(tt.want) {
			e.t.Errorf("%s: count %d, want %d", tt.name, p.Count, len(tt.want))
		}
		// The same result set backward, two at a time, from the end.
		q.Max, q.Last, q.Count = 2, true, false
		p = e.queryArchive(q)
		e.wantPage(tt.name+", last two", p, tt.want[max(0, len(tt.want)-2):], len(tt.want) <= 2)
	}
}

func checkArchiveFullText(e *env) {
	owner := e.owner("alice")
	peer := e.contact("bob")
	bodies := []string{"Shall we meet at the lighthouse?", "the ferry leaves at noon", "Lighthouse tours are sold out", "nothing here"}
	var msgs []sdk.ArchivedMessage
	for i, b := range bodies {
		m := archivedMsg(owner, i, peer, "", false)
		m.Body, m.Stanza = b, "<message><body>"+b+"</body></message>"
		msgs = append(msgs, m)
	}
	e.appendArchive(msgs...)
	// A whole word, in another case: both a word search and a substring
	// search find it.
	p := e.queryArchive(sdk.ArchiveQuery{Owner: owner, Text: "LIGHTHOUSE", Max: 10})
	e.wantPage("search for a word", p, []string{archiveID(0), archiveID(2)}, true)
	p = e.queryArchive(sdk.ArchiveQuery{Owner: owner, Text: "ferry", Max: 10, With: peer})
	e.wantPage("search within a conversation", p, []string{archiveID(1)}, true)
	p = e.queryArchive(sdk.ArchiveQuery{Owner: owner, Text: "submarine", Max: 10})
	e.wantPage("search for a word in no message", p, nil, true)
}

func checkArchiveRetract(e *env) {
	owner, other := e.owner("alice"), e.owner("bob")
	peer := e.contact("carol")
	e.appendArchive(archivedMsg(owner, 1, peer, "", false), archivedMsg(owner, 2, peer, "", false), archivedMsg(other, 2, peer, "", false))
	r, ok := e.b.(sdk.ArchiveRetractor)
	if !ok {
		e.t.Fatal("archive retraction is declared but the backend does not implement sdk.ArchiveRetractor")
	}
	const tomb = "<message xmlns='jabber:client' type='groupchat'><retracted xmlns='urn:xmpp:message-retract:1' stamp='2026-01-01T00:00:00Z'/></message>"
	e.ok("RetractArchived", r.RetractArchived(e.ctx, owner, archiveID(2), tomb))
	p := e.queryArchive(sdk.ArchiveQuery{Owner: owner, Max: 10})
	e.wantPage("an archive with a retracted message", p, idRange(1, 3), true)
	if len(p.Messages) == 2 {
		got, kept := p.Messages[1], archivedMsg(owner, 2, peer, "", false)
		if got.Stanza != tomb || got.Body != "" || !got.Stamp.Equal(kept.Stamp) || got.Peer != kept.Peer {
			e.t.Errorf("the retracted message: %+v; want the tombstone, no body, its stamp and peer", got)
		}
		if p.Messages[0].Stanza != archivedMsg(owner, 1, peer, "", false).Stanza {
			e.t.Errorf("another message changed: %+v", p.Messages[0])
		}
	}
	if p := e.queryArchive(sdk.ArchiveQuery{Owner: other, Max: 10}); len(p.Messages) != 1 || p.Messages[0].Stanza == tomb {
		e.t.Errorf("another owner's message with the same id: %+v", p.Messages)
	}
	if e.caps.Archive.FullText {
		e.wantPage("a text search for a retracted message's words", e.queryArchive(sdk.ArchiveQuery{Owner: owner, Text: "message 2", Max: 10}), nil, true)
	}
	e.ok("RetractArchived again", r.RetractArchived(e.ctx, owner, archiveID(2), tomb))
	e.wantErr("RetractArchived of no message", r.RetractArchived(e.ctx, owner, archiveID(9), tomb), sdk.ErrNotFound)
	e.wantErr("RetractArchived without a tombstone", r.RetractArchived(e.ctx, owner, archiveID(1), ""), sdk.ErrInvalid)
	e.wantErr("RetractArchived without owner", r.RetractArchived(e.ctx, "", archiveID(1), tomb), sdk.ErrInvalid)
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

func (e *env) wantPrefs(owner string, want sdk.ArchivePrefs) {
	e.t.Helper()
	got, err := e.archive().GetArchivePrefs(e.ctx, owner)
	if !e.noErr("GetArchivePrefs("+owner+")", err) {
		return
	}
	if got.Default != want.Default || !slices.Equal(sortedCopy(got.Always), sortedCopy(want.Always)) ||
		!slices.Equal(sortedCopy(got.Never), sortedCopy(want.Never)) {
		e.t.Errorf("GetArchivePrefs(%s) = %+v, want %+v (lists in any order)", owner, got, want)
	}
}

func checkArchivePrefs(e *env) {
	owner, other := e.owner("alice"), e.owner("bob")
	a := e.archive()
	p1 := sdk.ArchivePrefs{Default: sdk.ArchiveRoster, Always: []string{e.contact("x"), e.contact("y")}, Never: []string{e.contact("z")}}
	e.ok("SetArchivePrefs", a.SetArchivePrefs(e.ctx, owner, p1))
	e.wantPrefs(owner, p1)
	p2 := sdk.ArchivePrefs{Default: sdk.ArchiveNever, Always: []string{e.contact("z")}}
	e.ok("SetArchivePrefs again", a.SetArchivePrefs(e.ctx, owner, p2))
	e.wantPrefs(owner, p2)
	e.wantPrefs(other, sdk.ArchivePrefs{})
	p3 := sdk.ArchivePrefs{Default: sdk.ArchiveAlways}
	e.ok("SetArchivePrefs without lists", a.SetArchivePrefs(e.ctx, owner, p3))
	e.wantPrefs(owner, p3)
	e.wantErr("SetArchivePrefs with an unknown default", a.SetArchivePrefs(e.ctx, owner, sdk.ArchivePrefs{Default: "sometimes"}), sdk.ErrInvalid)
	e.wantErr("SetArchivePrefs listing a JID twice",
		a.SetArchivePrefs(e.ctx, owner, sdk.ArchivePrefs{Default: sdk.ArchiveAlways, Always: []string{e.contact("x")}, Never: []string{e.contact("x")}}),
		sdk.ErrInvalid)
	e.wantPrefs(owner, p3)
}

func checkArchiveDelete(e *env) {
	owner, other := e.owner("alice"), e.owner("bob")
	peer := e.contact("carol")
	e.appendArchive(archivedMsg(owner, 1, peer, "", false), archivedMsg(owner, 2, peer, "", true), archivedMsg(other, 1, peer, "", false))
	a := e.archive()
	e.ok("SetArchivePrefs", a.SetArchivePrefs(e.ctx, owner, sdk.ArchivePrefs{Default: sdk.ArchiveNever, Never: []string{peer}}))
	e.ok("DeleteArchive", a.DeleteArchive(e.ctx, owner))
	e.wantPage("a deleted archive", e.queryArchive(sdk.ArchiveQuery{Owner: owner, Max: 10}), nil, true)
	e.wantPrefs(owner, sdk.ArchivePrefs{})
	e.wantPage("another owner's archive", e.queryArchive(sdk.ArchiveQuery{Owner: other, Max: 10}), idRange(1, 2), true)
	e.ok("DeleteArchive of a deleted archive", a.DeleteArchive(e.ctx, owner))
	// Ids of a deleted archive can be used again.
	e.appendArchive(archivedMsg(owner, 1, peer, "", false))
	e.wantPage("the archive started again", e.queryArchive(sdk.ArchiveQuery{Owner: owner, Max: 10}), idRange(1, 2), true)
}

func checkArchiveInvalid(e *env) {
	owner := e.owner("alice")
	peer := e.contact("bob")
	a := e.archive()
	good := archivedMsg(owner, 1, peer, "", false)
	noOwner, noID, badUTF8 := good, good, good
	noOwner.Owner = ""
	noID.StanzaID = ""
	badUTF8.Body = "\xff\xfe"
	for name, m := range map[string]sdk.ArchivedMessage{"without owner": noOwner, "without stanza id": noID, "with invalid UTF-8": badUTF8} {
		e.wantErr("AppendArchive of a message "+name, a.AppendArchive(e.ctx, []sdk.ArchivedMessage{archivedMsg(owner, 2, peer, "", false), m}), sdk.ErrInvalid)
	}
	e.wantPage("after invalid batches", e.queryArchive(sdk.ArchiveQuery{Owner: owner, Max: 10}), nil, true)
	for name, q := range map[string]sdk.ArchiveQuery{
		"without owner":  {Max: 10},
		"max too large":  {Owner: owner, Max: sdk.MaxArchivePage + 1},
		"negative max":   {Owner: owner, Max: -1},
		"negative skip":  {Owner: owner, Max: 1, Skip: -1},
		"too many ids":   {Owner: owner, Max: 1, IDs: make([]string, sdk.MaxArchivePage+1)},
		"invalid UTF-8 ": {Owner: owner, Max: 1, With: "\xff"},
	} {
		_, err := a.QueryArchive(e.ctx, q)
		e.wantErr("QueryArchive "+name, err, sdk.ErrInvalid)
	}
	_, err := a.GetArchivePrefs(e.ctx, "")
	e.wantErr("GetArchivePrefs without owner", err, sdk.ErrInvalid)
	e.wantErr("DeleteArchive without owner", a.DeleteArchive(e.ctx, ""), sdk.ErrInvalid)
}

func checkArchiveConcurrentAppend(e *env) {
	owner := e.owner("alice")
	peer := e.contact("bob")
	const n, batch = 200, 20
	var msgs []sdk.ArchivedMessage
	for i := range n {
		msgs = append(msgs, archivedMsg(owner, i, peer, "", i%2 == 1))
	}
	// Every batch is sent twice, by different goroutines, as a writer
	// resending after a broken stream would while the first try is still
	// being committed.
	err := e.forEach(2*n/batch, func(i int) error {
		j := (i % (n / batch)) * batch
		return e.archive().AppendArchive(e.ctx, msgs[j:j+batch])
	})
	e.ok("concurrent AppendArchive", err)
	p := e.queryArchive(sdk.ArchiveQuery{Owner: owner, Max: n, Count: true})
	e.wantPage("after concurrent appends", p, idRange(0, n), true)
	if p.Count != n {
		e.t.Errorf("count %d, want %d", p.Count, n)
	}
}
