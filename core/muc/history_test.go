package muc

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/koi-im/koi/core/archive"
	"github.com/koi-im/koi/core/xmlstream"
	sqlbackend "github.com/koi-im/koi/plugins/sql"
	"github.com/koi-im/koi/plugins/sql/sqltest"
	"github.com/koi-im/koi/sdk"
)

// restartable is a host whose rooms and archive outlive the chat service:
// each start makes a new Service on the same store and archive, as a
// restart of koi does.
type restartable struct {
	t  *testing.T
	st *sqlbackend.Store
	a  Archive
	// vcards, when set, keeps the rooms' vCards; store, when set, stands
	// in for st as the rooms' store.
	vcards VCards
	store  Store
}

func newRestartable(t *testing.T) *restartable {
	t.Helper()
	st := sqltest.SQLite(t)
	w := archive.NewWriter(archive.LocalStream(st), archive.Options{}, nil)
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	return &restartable{t: t, st: st, a: hostArchive{w, st}}
}

// start makes the service over the host's store and archive, with a as its
// archive if not nil, and loads its rooms.
func (h *restartable) start(a Archive) *testNet {
	h.t.Helper()
	if a == nil {
		a = h.a
	}
	var st Store = h.st
	if h.store != nil {
		st = h.store
	}
	n := newStoredNet(h.t, func(c *Config) {
		c.Defaults.Logging = true
		c.Defaults.Persistent = true
		c.Archive = func() Archive { return a }
		if h.vcards != nil {
			c.VCards = func() VCards { return h.vcards }
		}
	}, st)
	if err := n.svc.Load(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	return n
}

// history is what a join got before the subject: the bodies of the
// delayed messages, checked to be as occupants got them.
func history(t *testing.T, room string, got []*xmlstream.Element) []string {
	t.Helper()
	var bodies []string
	for _, el := range got {
		if el.Local != "message" || el.Child(xmlstream.NSClient, "subject") != nil {
			continue
		}
		if el.Child(NSDelay, "delay") == nil || el.Child(NSSID, "stanza-id") == nil || el.Child(NSOccupantID, "occupant-id") == nil {
			t.Fatalf("a history message without its delay, stanza-id or occupant-id: %s", el)
		}
		if el.Child(NSUser, "x") != nil {
			t.Fatalf("a history message shows the sender's real JID: %s", el)
		}
		bodies = append(bodies, el.Child(xmlstream.NSClient, "body").Text())
	}
	if len(got) == 0 || got[len(got)-1].Child(xmlstream.NSClient, "subject") == nil {
		t.Fatalf("the join did not end with the subject: %v", got)
	}
	return bodies
}

// TestHistoryAfterRestart: a persistent room whose logging is on has its
// history back after a restart, read from its archive: the messages with a
// body, oldest first, as occupants got them, followed by those said since.
func TestHistoryAfterRestart(t *testing.T) {
	h := newRestartable(t)
	const room = "lounge@conference.example.com"
	n := h.start(nil)
	alice := n.user("alice@example.com/pc")
	n.create(alice, room+"/Alice")
	var want []string
	for i := range 3 {
		body := fmt.Sprintf("before the restart %d", i)
		n.send(alice, `<message type='groupchat' to='`+room+`'><body>`+body+`</body></message>`)
		want = append(want, body)
	}
	// Kept in the archive, but not history: no body.
	n.send(alice, `<message type='groupchat' to='`+room+`'><encrypted xmlns='eu.siacs.conversations.axolotl'/><store xmlns='urn:xmpp:hints'/></message>`)
	n.take(alice)

	n = h.start(nil)
	bob := n.user("bob@example.com/phone")
	if got := history(t, room, n.join(bob, room+"/Bob")); !slices.Equal(got, want) {
		t.Fatalf("history after a restart: %q, want %q", got, want)
	}
	n.send(bob, `<message type='groupchat' to='`+room+`'><body>after the restart</body></message>`)
	n.take(bob)
	carol := n.user("carol@example.com/x")
	if got := history(t, room, n.join(carol, room+"/Carol")); !slices.Equal(got, append(want, "after the restart")) {
		t.Fatalf("history of the next join: %q", got)
	}
	// maxstanzas still applies.
	dave := n.user("dave@example.com/x")
	if got := history(t, room, n.join(dave, room+"/Dave", `<history maxstanzas='2'/>`)); !slices.Equal(got, []string{want[2], "after the restart"}) {
		t.Fatalf("history with maxstanzas 2: %q", got)
	}
}

// TestHistoryReadMerges: messages relayed before the read from the archive
// ended stay after the archived ones, and one that is in both is there once.
func TestHistoryReadMerges(t *testing.T) {
	h := newRestartable(t)
	const room = "lounge@conference.example.com"
	n := h.start(nil)
	alice := n.user("alice@example.com/pc")
	n.create(alice, room+"/Alice")
	for i := range 2 {
		n.send(alice, fmt.Sprintf(`<message type='groupchat' to='%s'><body>old %d</body></message>`, room, i))
	}
	n.take(alice)

	n = h.start(nil)
	r := n.svc.room("lounge")
	// The newest archived message, and one said since, are in memory.
	if err := h.a.Sync(context.Background(), room); err != nil {
		t.Fatal(err)
	}
	page, err := h.st.QueryArchive(context.Background(), sdk.ArchiveQuery{Owner: room, Last: true, Max: 1})
	if err != nil || len(page.Messages) != 1 {
		t.Fatal(page, err)
	}
	r.mu.Lock()
	for _, e := range []struct{ id, body string }{{page.Messages[0].StanzaID, "old 1"}, {"~", "new"}} {
		m := xmlstream.NewElement(xmlstream.NSClient, "message").SetAttr("type", "groupchat")
		m.AppendChild(xmlstream.NewElement(xmlstream.NSClient, "body").AppendText(e.body))
		r.keepHistory(histEntry{msg: m, id: e.id, at: time.Now()})
	}
	r.mu.Unlock()
	r.awaitHistory(context.Background())
	r.mu.Lock()
	var got []string
	for _, e := range r.history {
		got = append(got, e.msg.Child(xmlstream.NSClient, "body").Text())
	}
	seed := r.seed
	r.mu.Unlock()
	if !slices.Equal(got, []string{"old 0", "old 1", "new"}) || seed != nil {
		t.Fatalf("history %q (seed left %v), want old 0, old 1, new", got, seed)
	}
}

// failingArchive refuses queries while fail is set.
type failingArchive struct {
	Archive
	fail    atomic.Bool
	queries atomic.Int32
}

func (f *failingArchive) QueryArchive(ctx context.Context, q sdk.ArchiveQuery) (sdk.ArchivePage, error) {
	f.queries.Add(1)
	if f.fail.Load() {
		return sdk.ArchivePage{}, fmt.Errorf("archive down: %w", sdk.ErrUnavailable)
	}
	return f.Archive.QueryArchive(ctx, q)
}

// TestHistoryReadFails: an archive that cannot be read costs newcomers the
// history, not the join; the next join after historyRetry reads it again,
// and those in between do not ask.
func TestHistoryReadFails(t *testing.T) {
	h := newRestartable(t)
	const room = "lounge@conference.example.com"
	n := h.start(nil)
	alice := n.user("alice@example.com/pc")
	n.create(alice, room+"/Alice")
	n.send(alice, `<message type='groupchat' to='`+room+`'><body>kept</body></message>`)
	n.take(alice)

	fa := &failingArchive{Archive: h.a}
	fa.fail.Store(true)
	n = h.start(fa)
	now := fixedClock(n, time.Now())
	bob := n.user("bob@example.com/phone")
	if got := history(t, room, n.join(bob, room+"/Bob")); len(got) != 0 {
		t.Fatalf("history from a failing archive: %q", got)
	}
	fa.fail.Store(false)
	carol := n.user("carol@example.com/x")
	if got := history(t, room, n.join(carol, room+"/Carol")); len(got) != 0 || fa.queries.Load() != 1 {
		t.Fatalf("a join before the retry time: history %q after %d queries", got, fa.queries.Load())
	}
	*now = now.Add(historyRetry)
	dave := n.user("dave@example.com/x")
	if got := history(t, room, n.join(dave, room+"/Dave")); !slices.Equal(got, []string{"kept"}) {
		t.Fatalf("history once the archive is back: %q", got)
	}
}

// TestNoHistoryReadWithoutLogging: a room whose logging is off never asks
// its archive, which may hold another room's words (a room made later
// under the same name keeps nothing of what it did not log).
func TestNoHistoryReadWithoutLogging(t *testing.T) {
	h := newRestartable(t)
	const room = "quiet@conference.example.com"
	n := h.start(nil)
	alice := n.user("alice@example.com/pc")
	n.create(alice, room+"/Alice")
	n.send(alice, `<iq type='set' id='c' to='`+room+`'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_enablelogging'><value>0</value></field></x></query></iq>`)
	if r := n.take(alice); len(r) == 0 || r[len(r)-1].Attr("type") != "result" {
		t.Fatalf("logging off: %v", r)
	}
	fa := &failingArchive{Archive: h.a}
	n = h.start(fa)
	bob := n.user("bob@example.com/phone")
	history(t, room, n.join(bob, room+"/Bob"))
	if q := fa.queries.Load(); q != 0 {
		t.Fatalf("a room without logging read its archive %d times", q)
	}
}

// TestNodeGoneListsItsRooms: a persistent room another node made after
// this one loaded its rooms is in this node's room list once that node is
// gone (cluster), read from the store they share; a room this node has in
// memory is kept as it is.
func TestNodeGoneListsItsRooms(t *testing.T) {
	h := newRestartable(t)
	const room = "made@conference.example.com"
	one := h.start(nil)
	alice := one.user("alice@example.com/pc")
	one.create(alice, "mine@conference.example.com/Alice")
	two := h.start(nil)
	bob := two.user("bob@example.com/pc")
	two.create(bob, room+"/Bob")
	list := func() string {
		one.take(alice)
		one.send(alice, `<iq type='get' id='di' to='conference.example.com'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`)
		var jids []string
		for _, it := range one.one(alice).Child(NSDiscoItems, "query").Elements() {
			jids = append(jids, it.Attr("jid"))
		}
		return strings.Join(jids, " ")
	}
	if got := list(); got != "mine@conference.example.com" {
		t.Fatalf("before: %q", got)
	}
	one.svc.NodeGone(context.Background())
	if got := list(); got != room+" mine@conference.example.com" {
		t.Fatalf("after the node is gone: %q", got)
	}
	if one.svc.room("mine") == nil || len(one.svc.room("mine").occupants) != 1 {
		t.Fatal("the room in memory was replaced by the stored one")
	}
}
