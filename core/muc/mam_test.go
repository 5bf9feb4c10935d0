package muc

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/koi-im/koi/core/archive"
	sqlbackend "github.com/koi-im/koi/plugins/sql"
	"github.com/koi-im/koi/plugins/sql/sqltest"
	"github.com/koi-im/koi/sdk"
)

// hostArchive is a host's archive as the server gives it to rooms: the
// real batched writer in front of the real SQL backend.
type hostArchive struct {
	*archive.Writer
	st *sqlbackend.Store
}

func (h hostArchive) QueryArchive(ctx context.Context, q sdk.ArchiveQuery) (sdk.ArchivePage, error) {
	return h.st.QueryArchive(ctx, q)
}

func (h hostArchive) FullText() bool { return false }

func (h hostArchive) CanRetract() bool { return true }

func (h hostArchive) Retract(ctx context.Context, owner, stanzaID, tombstone string) error {
	return h.st.RetractArchived(ctx, owner, stanzaID, tombstone)
}

func (h hostArchive) Reserve(ctx context.Context, n int) (*archive.Reservation, error) {
	r, err := h.Writer.Reserve(ctx, n)
	if err != nil {
		return nil, err
	}
	return &r, nil
}

func (h hostArchive) Remove(ctx context.Context, owner string) error {
	if err := h.Sync(ctx, owner); err != nil {
		return err
	}
	return h.st.DeleteArchive(ctx, owner)
}

// newArchivedNet is a test service whose host keeps an archive; logging is
// on in new rooms.
func newArchivedNet(t *testing.T, mod func(*Config)) (*testNet, *sqlbackend.Store) {
	t.Helper()
	st := sqltest.SQLite(t)
	w := archive.NewWriter(archive.LocalStream(st), archive.Options{}, nil)
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	a := hostArchive{w, st}
	n := newTestNet(t, func(c *Config) {
		c.Defaults.Logging = true
		c.Archive = func() Archive { return a }
		if mod != nil {
			mod(c)
		}
	})
	return n, st
}

// mamQuery sends an archive query from j to room and returns the bodies of
// the results, their archive ids, the result ids' senders and the <fin/>.
type mamAnswer struct {
	results []*Element // the forwarded messages
	ids     []string
	iq      *Element
}

func (a mamAnswer) bodies() []string {
	var out []string
	for _, m := range a.results {
		out = append(out, m.Child("jabber:client", "body").Text())
	}
	return out
}

func (a mamAnswer) rsm(name string) string {
	fin := a.iq.Child(NSMAM2, "fin")
	if fin == nil {
		return ""
	}
	if set := fin.Child("http://jabber.org/protocol/rsm", "set"); set != nil {
		if c := set.Child("http://jabber.org/protocol/rsm", name); c != nil {
			return c.Text()
		}
	}
	return ""
}

func (n *testNet) mam(j, room, form, set string) mamAnswer {
	n.t.Helper()
	n.send(j, `<iq type='set' id='q1' to='`+room+`'><query xmlns='urn:xmpp:mam:2' queryid='qq'>`+form+set+`</query></iq>`)
	var a mamAnswer
	for _, el := range n.take(j) {
		if el.Local == "iq" {
			a.iq = el
			continue
		}
		res := el.Child(NSMAM2, "result")
		if res == nil || res.Attr("queryid") != "qq" || el.Attr("from") != room {
			n.t.Fatalf("unexpected stanza %v", el)
		}
		fwd := res.Child("urn:xmpp:forward:0", "forwarded")
		if fwd == nil || fwd.Child(NSDelay, "delay") == nil {
			n.t.Fatalf("result without forwarded/delay: %v", el)
		}
		a.results = append(a.results, fwd.Child("jabber:client", "message"))
		a.ids = append(a.ids, res.Attr("id"))
	}
	if a.iq == nil {
		n.t.Fatalf("no answer to the query of %s", j)
	}
	return a
}

func rsmSet(s string) string { return `<set xmlns='http://jabber.org/protocol/rsm'>` + s + `</set>` }

func TestRoomArchive(t *testing.T) {
	n, _ := newArchivedNet(t, nil)
	alice := n.user("alice@example.com/pc")
	bob := n.user("bob@example.com/phone")
	carol := n.user("carol@example.com/tab")
	n.create(alice, lounge+"/Alice")
	n.join(bob, lounge+"/Bob")
	n.join(carol, lounge+"/Carol")
	n.take(alice)
	n.take(bob)

	// Disco advertises the archive.
	n.send(bob, `<iq type='get' id='d' to='`+lounge+`'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	if !slices.Contains(features(n.one(bob)), NSMAM2) {
		t.Fatal("disco#info of a logged room lacks urn:xmpp:mam:2")
	}

	var live []string // stanza-ids occupants got
	say := func(j, body string, extra string) {
		n.send(j, `<message type='groupchat' to='`+lounge+`'><body>`+body+`</body>`+extra+`</message>`)
		m := n.take(alice)
		n.take(bob)
		n.take(carol)
		if len(m) != 1 {
			t.Fatalf("alice got %v", m)
		}
		live = append(live, m[0].Child(NSSID, "stanza-id").Attr("id"))
	}
	for i := 0; i < 5; i++ {
		who := []string{alice, bob, carol}[i%3]
		say(who, fmt.Sprintf("m%d", i), "")
	}
	// Not kept: hinted no-store; a subject change.
	n.send(bob, `<message type='groupchat' to='`+lounge+`'><body>secret</body><no-store xmlns='urn:xmpp:hints'/></message>`)
	n.send(alice, `<message type='groupchat' to='`+lounge+`'><subject>topic</subject></message>`)
	n.take(alice)
	n.take(bob)
	n.take(carol)

	// Carol leaves, then reads what was said, two at a time.
	n.send(carol, `<presence type='unavailable' to='`+lounge+`/Carol'/>`)
	n.take(carol)
	n.take(alice)
	n.take(bob)
	p1 := n.mam(carol, lounge, "", rsmSet(`<max>2</max>`))
	if p1.iq.Attr("type") != "result" || !slices.Equal(p1.bodies(), []string{"m0", "m1"}) || p1.rsm("last") != p1.ids[1] {
		t.Fatalf("first page %v %v", p1.bodies(), p1.iq)
	}
	if !slices.Equal(p1.ids, live[:2]) {
		t.Fatalf("archive ids %v, stanza-ids seen live %v", p1.ids, live[:2])
	}
	p2 := n.mam(carol, lounge, "", rsmSet(`<max>2</max><after>`+p1.rsm("last")+`</after>`))
	p3 := n.mam(carol, lounge, "", rsmSet(`<max>2</max><after>`+p2.rsm("last")+`</after>`))
	if !slices.Equal(p2.bodies(), []string{"m2", "m3"}) || !slices.Equal(p3.bodies(), []string{"m4"}) {
		t.Fatalf("pages %v %v", p2.bodies(), p3.bodies())
	}
	if p3.iq.Child(NSMAM2, "fin").Attr("complete") != "true" || p1.iq.Child(NSMAM2, "fin").Attr("complete") == "true" {
		t.Fatalf("complete flags: %v / %v", p1.iq, p3.iq)
	}
	// Semi-anonymous: occupant JIDs, no real JIDs for a non-moderator...
	m1 := p1.results[1]
	if m1.Attr("from") != lounge+"/Bob" || itemOf(m1) != nil {
		t.Fatalf("carol sees %v", m1)
	}
	// ...but the owner sees them.
	own := n.mam(alice, lounge, "", rsmSet(`<max>2</max>`))
	if it := itemOf(own.results[1]); it == nil || it.Attr("jid") != "bob@example.com" {
		t.Fatalf("the owner sees %v", own.results[1])
	}
	// with: one occupant's messages; start/end bound by time.
	form := func(fields string) string {
		return `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>` + fields + `</x>`
	}
	if b := n.mam(carol, lounge, form(`<field var='with'><value>`+lounge+`/Bob</value></field>`), "").bodies(); !slices.Equal(b, []string{"m1", "m4"}) {
		t.Fatalf("with Bob: %v", b)
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if b := n.mam(carol, lounge, form(`<field var='start'><value>`+future+`</value></field>`), "").bodies(); len(b) != 0 {
		t.Fatalf("start in the future: %v", b)
	}
	// Bad input gets clear errors.
	if r := n.mam(carol, lounge, form(`<field var='start'><value>yesterday</value></field>`), ""); condition(r.iq) != "bad-request" {
		t.Fatalf("bad start: %v", r.iq)
	}
	if r := n.mam(carol, lounge, "", rsmSet(`<after>nosuchid</after>`)); condition(r.iq) != "item-not-found" {
		t.Fatalf("unknown after: %v", r.iq)
	}
	// The query form.
	n.send(carol, `<iq type='get' id='f' to='`+lounge+`'><query xmlns='urn:xmpp:mam:2'/></iq>`)
	if f := n.one(carol); f.Attr("type") != "result" || f.Child(NSMAM2, "query") == nil {
		t.Fatalf("query form: %v", f)
	}
	// No such room.
	if r := n.mam(carol, "nowhere@conference.example.com", "", ""); condition(r.iq) != "item-not-found" {
		t.Fatalf("no room: %v", r.iq)
	}
}

func TestRoomArchiveVisibility(t *testing.T) {
	n, _ := newArchivedNet(t, nil)
	alice := n.user("alice@example.com/pc")
	bob := n.user("bob@example.com/phone")
	carol := n.user("carol@example.com/tab")
	n.create(alice, lounge+"/Alice")
	config := func(fields string) {
		t.Helper()
		n.send(alice, `<iq type='set' id='c' to='`+lounge+`'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>`+fields+`</x></query></iq>`)
		var res *Element
		for _, el := range n.take(alice) {
			if el.Local == "iq" {
				res = el
			}
		}
		if res == nil || res.Attr("type") != "result" {
			t.Fatalf("configuring: %v", res)
		}
	}
	config(`<field var='muc#roomconfig_membersonly'><value>1</value></field>`)
	n.send(alice, `<iq type='set' id='a' to='`+lounge+`'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member' jid='bob@example.com'/></query></iq>`)
	n.take(alice)
	n.join(bob, lounge+"/Bob")
	n.send(bob, `<message type='groupchat' to='`+lounge+`'><body>members only</body></message>`)
	n.take(alice)
	n.take(bob)

	if r := n.mam(carol, lounge, "", ""); condition(r.iq) != "forbidden" || len(r.results) != 0 {
		t.Fatalf("a non-member read a members-only archive: %v %v", r.iq, r.bodies())
	}
	n.send(bob, `<presence type='unavailable' to='`+lounge+`/Bob'/>`)
	n.take(bob)
	n.take(alice)
	if b := n.mam(bob, lounge, "", "").bodies(); !slices.Equal(b, []string{"members only"}) {
		t.Fatalf("a member outside the room reads %v", b)
	}
	// Outcasts never read.
	n.send(alice, `<iq type='set' id='b' to='`+lounge+`'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='outcast' jid='bob@example.com'/></query></iq>`)
	n.take(alice)
	if r := n.mam(bob, lounge, "", ""); condition(r.iq) != "forbidden" {
		t.Fatalf("an outcast: %v", r.iq)
	}

	// Logging off: nothing more is kept, disco does not advertise, the
	// archive is not served.
	config(`<field var='muc#roomconfig_enablelogging'><value>0</value></field>`)
	n.send(alice, `<message type='groupchat' to='`+lounge+`'><body>off the record</body></message>`)
	n.take(alice)
	n.send(alice, `<iq type='get' id='d' to='`+lounge+`'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	if slices.Contains(features(n.one(alice)), NSMAM2) {
		t.Fatal("disco#info advertises the archive of a room that keeps none")
	}
	if r := n.mam(alice, lounge, "", ""); condition(r.iq) != "service-unavailable" {
		t.Fatalf("query with logging off: %v", r.iq)
	}
	config(`<field var='muc#roomconfig_enablelogging'><value>1</value></field>`)
	if b := n.mam(alice, lounge, "", "").bodies(); !slices.Equal(b, []string{"members only"}) {
		t.Fatalf("with logging back on: %v", b)
	}

	// Destroyed, the room takes its archive along: an open room made
	// later under the same name shows nothing of it.
	n.send(alice, `<iq type='set' id='x' to='`+lounge+`'><query xmlns='http://jabber.org/protocol/muc#owner'><destroy/></query></iq>`)
	n.take(alice)
	n.create(carol, lounge+"/Carol")
	if r := n.mam(carol, lounge, "", ""); r.iq.Attr("type") != "result" || len(r.results) != 0 {
		t.Fatalf("the new room shows %v (%v)", r.bodies(), r.iq)
	}
}

func TestTemporaryRoomArchiveGoesWithIt(t *testing.T) {
	n, st := newArchivedNet(t, nil)
	alice := n.user("alice@example.com/pc")
	n.create(alice, lounge+"/Alice")
	n.send(alice, `<message type='groupchat' to='`+lounge+`'><body>fleeting</body></message>`)
	n.take(alice)
	if b := n.mam(alice, lounge, "", "").bodies(); !slices.Equal(b, []string{"fleeting"}) {
		t.Fatalf("archive of the temporary room: %v", b)
	}
	n.send(alice, `<presence type='unavailable' to='`+lounge+`/Alice'/>`)
	n.take(alice)
	p, err := st.QueryArchive(context.Background(), sdk.ArchiveQuery{Owner: lounge, Max: 10})
	if err != nil || len(p.Messages) != 0 {
		t.Fatalf("the archive of an emptied temporary room: %v, %v", p.Messages, err)
	}
}

func TestRoomWithoutHostArchive(t *testing.T) {
	n := newTestNet(t, func(c *Config) { c.Defaults.Logging = true })
	alice := n.user("alice@example.com/pc")
	n.create(alice, lounge+"/Alice")
	n.send(alice, `<message type='groupchat' to='`+lounge+`'><body>hi</body></message>`)
	if m := n.one(alice); m.Child("jabber:client", "body") == nil {
		t.Fatalf("a logged room of a host without archive must still talk: %v", m)
	}
	if r := n.mam(alice, lounge, "", ""); condition(r.iq) != "service-unavailable" {
		t.Fatalf("query without a host archive: %v", r.iq)
	}
}

// features lists the disco#info features of a result.
func features(iq *Element) []string {
	var out []string
	if q := iq.Child(NSDiscoInfo, "query"); q != nil {
		for _, f := range q.Elements() {
			if f.Local == "feature" {
				out = append(out, f.Attr("var"))
			}
		}
	}
	return out
}
