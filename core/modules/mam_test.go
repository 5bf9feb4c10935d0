package modules

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/koi-im/koi/core/archive"
	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// The archive tests run on the sql backend's archive, written through the
// real batching writer (in process, without the plugin transport).

func newArchiveEnv(t *testing.T, opt archive.Options) *env {
	t.Helper()
	e := newEnv(t)
	e.enableArchive(t, archive.LocalStream(e.store), opt)
	return e
}

func (e *env) enableArchive(t *testing.T, open archive.Opener, opt archive.Options) *archive.Writer {
	t.Helper()
	w := archive.NewWriter(open, opt, nil)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := w.Close(ctx); err != nil {
			t.Errorf("closing the archive writer: %v", err)
		}
	})
	e.host.Archive = Feature[*Archive]{Backend: &Archive{Backend: e.store, Writer: w, FullText: true}, On: true, Writable: true}
	return w
}

// mamResult is what one MAM query brought: the result messages, in order,
// and the IQ reply.
type mamResult struct {
	msgs  []*xmlstream.Element // the <message/> inside each <forwarded/>
	ids   []string             // the archive id of each
	reply *xmlstream.Element
	fin   *xmlstream.Element
}

func (r mamResult) set() *xmlstream.Element {
	if r.fin == nil {
		return nil
	}
	return r.fin.Child(nsRSM, "set")
}

func (r mamResult) rsm(name string) string {
	if s := r.set(); s != nil {
		if el := s.Child(nsRSM, name); el != nil {
			return el.Text()
		}
	}
	return ""
}

func (r mamResult) complete() bool { return r.fin != nil && r.fin.Attr("complete") == "true" }

func (r mamResult) bodies() []string {
	var out []string
	for _, m := range r.msgs {
		out = append(out, m.Child(xmlstream.NSClient, "body").Text())
	}
	return out
}

// mam sends a MAM query with form fields (var=value pairs, a value may be
// several values separated by "|") and an RSM set, and collects what comes
// back.
func (c *client) mam(t *testing.T, ns, queryExtra string, fields ...string) mamResult {
	t.Helper()
	var form string
	if len(fields) > 0 {
		form = "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>" + ns + "</value></field>"
		for i := 0; i+1 < len(fields); i += 2 {
			form += "<field var='" + fields[i] + "'>"
			for _, v := range strings.Split(fields[i+1], "|") {
				form += "<value>" + v + "</value>"
			}
			form += "</field>"
		}
		form += "</x>"
	}
	c.rec.Take()
	c.send("<iq type='set' id='mamq'><query xmlns='" + ns + "' queryid='q1'>" + form + queryExtra + "</query></iq>")
	var r mamResult
	for _, el := range c.rec.Take() {
		switch {
		case el.Local == "message":
			res := el.Child(ns, "result")
			if res == nil {
				t.Fatalf("unexpected message during the query: %s", el)
			}
			if res.Attr("queryid") != "q1" || el.Attr("from") != c.s.JID().Bare().String() {
				t.Fatalf("result without the query id or not from the archive owner: %s", el)
			}
			fwd := res.Child(nsForward, "forwarded")
			if fwd == nil || fwd.Child(stanza.NSDelay, "delay") == nil || fwd.Child(xmlstream.NSClient, "message") == nil {
				t.Fatalf("malformed result: %s", el)
			}
			r.msgs = append(r.msgs, fwd.Child(xmlstream.NSClient, "message"))
			r.ids = append(r.ids, res.Attr("id"))
		case el.Local == "iq" && el.Attr("id") == "mamq":
			r.reply = el
			r.fin = el.Child(ns, "fin")
		}
	}
	if r.reply == nil {
		t.Fatal("no reply to the MAM query")
	}
	return r
}

func errCondition(el *xmlstream.Element) string {
	if e := stanza.ErrorFrom(el); e != nil {
		return e.Condition
	}
	return ""
}

// chat sends n chat messages from c to to, with bodies prefix0, prefix1...
func (c *client) chat(to, prefix string, n int) {
	for i := 0; i < n; i++ {
		c.send(fmt.Sprintf("<message to='%s' type='chat' id='m%d'><body>%s%d</body></message>", to, i, prefix, i))
	}
}

func stanzaID(el *xmlstream.Element, by string) string {
	for _, c := range el.Elements() {
		if c.Space == nsSID && c.Local == "stanza-id" && c.Attr("by") == by {
			return c.Attr("id")
		}
	}
	return ""
}

func TestArchiveKeepsBothSides(t *testing.T) {
	e := newArchiveEnv(t, archive.Options{})
	a := e.login("alice@example.com/pc")
	b := e.login("bob@example.com/phone")
	a.online("1")
	b.online("1")
	a.send(`<message to='bob@example.com' type='chat' id='x1'><body>hello bob</body><stanza-id xmlns='urn:xmpp:sid:0' by='bob@example.com' id='forged'/><stanza-id xmlns='urn:xmpp:sid:0' by='elsewhere.example' id='kept'/></message>`)
	got := find(b.rec.Take(), func(el *xmlstream.Element) bool { return el.Local == "message" })
	if got == nil {
		t.Fatal("bob got nothing")
	}
	bobID := stanzaID(got, "bob@example.com")
	if bobID == "" || bobID == "forged" {
		t.Fatalf("bob's copy has stanza-id %q: %s", bobID, got)
	}
	if stanzaID(got, "elsewhere.example") != "kept" {
		t.Errorf("a stanza-id of another entity was removed: %s", got)
	}
	if n := strings.Count(got.String(), "urn:xmpp:sid:0"); n != 2 {
		t.Errorf("bob's copy has %d stanza-ids, want 2 (ours and the foreign one): %s", n, got)
	}

	rb := b.mam(t, nsMAM2, "")
	if len(rb.ids) != 1 || rb.ids[0] != bobID || rb.bodies()[0] != "hello bob" {
		t.Fatalf("bob's archive: ids %v bodies %v; want the message under %s", rb.ids, rb.bodies(), bobID)
	}
	if m := rb.msgs[0]; m.Attr("from") != "alice@example.com/pc" || m.Attr("to") != "bob@example.com" {
		t.Errorf("archived copy has from=%q to=%q", m.Attr("from"), m.Attr("to"))
	}
	if !rb.complete() || rb.rsm("first") != bobID || rb.rsm("last") != bobID {
		t.Errorf("fin: %s", rb.fin)
	}
	ra := a.mam(t, nsMAM2, "")
	if len(ra.ids) != 1 || ra.ids[0] == bobID || ra.bodies()[0] != "hello bob" {
		t.Fatalf("alice's archive: ids %v (bob's id %s), bodies %v", ra.ids, bobID, ra.bodies())
	}
	if _, ok := archive.IDTime(ra.ids[0]); !ok {
		t.Errorf("archive id %q is not one the core makes", ra.ids[0])
	}
	// The stored copy is the message as routed, not the one bob got.
	if strings.Contains(ra.msgs[0].String(), "forged") || stanzaID(ra.msgs[0], "bob@example.com") != "" {
		t.Errorf("archived stanza carries our or forged stanza-ids: %s", ra.msgs[0])
	}

	// Messages without anything worth keeping are not archived.
	for _, m := range []string{
		`<message to='bob@example.com' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>`,
		`<message to='bob@example.com' type='chat'><body>secret</body><no-store xmlns='urn:xmpp:hints'/></message>`,
		`<message to='bob@example.com' type='chat'><body>off the record</body><no-permanent-store xmlns='urn:xmpp:hints'/></message>`,
		`<message to='bob@example.com' type='headline'><body>news</body></message>`,
		`<message to='bob@example.com' type='error'><body>oops</body></message>`,
		`<message to='bob@example.com/phone' type='groupchat'><body>room</body></message>`,
	} {
		a.send(m)
	}
	if n := len(b.mam(t, nsMAM2, "").ids); n != 1 {
		t.Fatalf("bob's archive has %d messages after ephemeral ones, want still 1", n)
	}
	// A receipt hinted to be stored is, and so is an encrypted message.
	a.send(`<message to='bob@example.com/phone' type='chat'><received xmlns='urn:xmpp:receipts' id='x1'/><store xmlns='urn:xmpp:hints'/></message>`)
	a.send(`<message to='bob@example.com' type='chat'><encrypted xmlns='eu.siacs.conversations.axolotl'/></message>`)
	if n := len(b.mam(t, nsMAM2, "").ids); n != 3 {
		t.Fatalf("bob's archive has %d messages, want 3", n)
	}
}

// retractions records what the Retractions hook heard.
type retractions struct {
	mu    sync.Mutex
	heard []string
}

func (r *retractions) Retracted(copies []sdk.ArchivedMessage, target, retraction string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range copies {
		r.heard = append(r.heard, fmt.Sprintf("%s %s out=%v %s by %s", c.Owner, c.Peer, c.Outgoing, target, retraction))
	}
}

// TestRetractionIsArchivedAndHeard: a retraction (XEP-0424, either
// version) is archived even without a body, and the Retractions hook
// hears it once committed, with the copies of both archives; a message
// that retracts nothing is not heard.
func TestRetractionIsArchivedAndHeard(t *testing.T) {
	e := newArchiveEnv(t, archive.Options{})
	var r retractions
	e.m.SetRetractions(&r)
	a := e.login("alice@example.com/pc")
	b := e.login("bob@example.com/phone")
	a.online("1")
	b.online("1")
	a.send(`<message to='bob@example.com' type='chat' id='m1'><body>oops</body></message>`)
	a.send(`<message to='bob@example.com' type='chat' id='r1'><retract id='m1' xmlns='urn:xmpp:message-retract:1'/></message>`)
	a.send(`<message to='bob@example.com' type='chat' id='r0'><apply-to id='m1' xmlns='urn:xmpp:fasten:0'><retract xmlns='urn:xmpp:message-retract:0'/></apply-to></message>`)
	if n := len(b.mam(t, nsMAM2, "").ids); n != 3 {
		t.Fatalf("bob's archive has %d messages, want the message and both retractions", n)
	}
	want := []string{
		"bob@example.com alice@example.com out=false m1 by r1", "alice@example.com bob@example.com out=true m1 by r1",
		"bob@example.com alice@example.com out=false m1 by r0", "alice@example.com bob@example.com out=true m1 by r0",
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if strings.Join(r.heard, "|") != strings.Join(want, "|") {
		t.Fatalf("the hook heard:\n%q\nwant\n%q", r.heard, want)
	}
}

func TestOfflineMessageIsArchivedOnce(t *testing.T) {
	e := newArchiveEnv(t, archive.Options{})
	a := e.login("alice@example.com/pc")
	a.online("1")
	a.send(`<message to='bob@example.com' type='chat' id='o1'><body>while you were away</body></message>`)
	a.send(`<message to='bob@example.com/gone' type='normal' id='o2'><body>to a resource that is gone</body></message>`)

	b := e.login("bob@example.com/phone")
	b.send(`<presence/>`)
	var ids []string
	for _, el := range b.rec.Take() {
		if el.Local == "message" {
			id := stanzaID(el, "bob@example.com")
			if id == "" || el.Child(stanza.NSDelay, "delay") == nil {
				t.Fatalf("offline message without stanza-id or delay: %s", el)
			}
			ids = append(ids, id)
		}
	}
	if len(ids) != 2 {
		t.Fatalf("bob got %d offline messages, want 2", len(ids))
	}
	r := b.mam(t, nsMAM2, "")
	if strings.Join(r.ids, ",") != strings.Join(ids, ",") {
		t.Fatalf("archive ids %v, offline ids %v: the archive must hold each offline message once, under the id it was delivered with", r.ids, ids)
	}
	if r.msgs[1].Attr("to") != "bob@example.com/gone" {
		t.Errorf("archived copy addressed to %q", r.msgs[1].Attr("to"))
	}
	// The sender's archive has them too, with the resource she used.
	ra := a.mam(t, nsMAM2, "", "with", "bob@example.com/gone")
	if len(ra.ids) != 1 || ra.bodies()[0] != "to a resource that is gone" {
		t.Fatalf("alice's archive with bob's resource: %v", ra.bodies())
	}
}

func TestMAMPaging(t *testing.T) {
	e := newArchiveEnv(t, archive.Options{FlushInterval: time.Hour}) // only Sync flushes
	a := e.login("alice@example.com/pc")
	b := e.login("bob@example.com/phone")
	a.online("1")
	b.online("1")
	a.chat("bob@example.com", "m", 25)

	all := b.mam(t, nsMAM2, "<set xmlns='http://jabber.org/protocol/rsm'><max>100</max></set>")
	if len(all.ids) != 25 || !all.complete() {
		t.Fatalf("the whole archive: %d messages, complete %v (writes pending at the query must be flushed first)", len(all.ids), all.complete())
	}
	for i, body := range all.bodies() {
		if body != fmt.Sprint("m", i) {
			t.Fatalf("message %d is %q: out of order", i, body)
		}
	}

	p1 := b.mam(t, nsMAM2, "<set xmlns='http://jabber.org/protocol/rsm'><max>10</max></set>")
	if strings.Join(p1.ids, ",") != strings.Join(all.ids[:10], ",") || p1.complete() {
		t.Fatalf("first page: %v complete %v", p1.bodies(), p1.complete())
	}
	if p1.rsm("first") != all.ids[0] || p1.rsm("last") != all.ids[9] || p1.rsm("count") != "" {
		t.Errorf("first page set: %s", p1.set())
	}
	p2 := b.mam(t, nsMAM2, "<set xmlns='http://jabber.org/protocol/rsm'><max>10</max><after>"+p1.rsm("last")+"</after></set>")
	if strings.Join(p2.ids, ",") != strings.Join(all.ids[10:20], ",") {
		t.Fatalf("second page: %v", p2.bodies())
	}
	// Backward from the end, as clients page through history.
	last := b.mam(t, nsMAM2, "<set xmlns='http://jabber.org/protocol/rsm'><max>10</max><before/></set>")
	if strings.Join(last.ids, ",") != strings.Join(all.ids[15:], ",") || last.complete() {
		t.Fatalf("last page: %v complete %v", last.bodies(), last.complete())
	}
	before := b.mam(t, nsMAM2, "<set xmlns='http://jabber.org/protocol/rsm'><max>10</max><before>"+last.rsm("first")+"</before></set>")
	if strings.Join(before.ids, ",") != strings.Join(all.ids[5:15], ",") {
		t.Fatalf("page before: %v", before.bodies())
	}
	first := b.mam(t, nsMAM2, "<set xmlns='http://jabber.org/protocol/rsm'><max>10</max><before>"+before.rsm("first")+"</before></set>")
	if strings.Join(first.ids, ",") != strings.Join(all.ids[:5], ",") || !first.complete() {
		t.Fatalf("first page backward: %v complete %v", first.bodies(), first.complete())
	}
	// flip-page: the same page, newest first; first and last still name
	// the oldest and the newest.
	flip := b.mam(t, nsMAM2, "<set xmlns='http://jabber.org/protocol/rsm'><max>3</max><before/></set><flip-page/>")
	if strings.Join(flip.bodies(), ",") != "m24,m23,m22" || flip.rsm("first") != all.ids[22] || flip.rsm("last") != all.ids[24] {
		t.Fatalf("flipped page: %v, first %s last %s", flip.bodies(), flip.rsm("first"), flip.rsm("last"))
	}
	// Index and count.
	ix := b.mam(t, nsMAM2, "<set xmlns='http://jabber.org/protocol/rsm'><max>2</max><index>7</index></set>")
	if strings.Join(ix.bodies(), ",") != "m7,m8" || ix.rsm("count") != "25" || ix.set().Child(nsRSM, "first").Attr("index") != "7" {
		t.Fatalf("index 7: %v, set %s", ix.bodies(), ix.set())
	}
	cnt := b.mam(t, nsMAM2, "<set xmlns='http://jabber.org/protocol/rsm'><max>0</max></set>", "with", "alice@example.com")
	if len(cnt.ids) != 0 || cnt.rsm("count") != "25" {
		t.Fatalf("count only: %d messages, set %s", len(cnt.ids), cnt.set())
	}
	// Default and maximum page sizes.
	if n := len(b.mam(t, nsMAM2, "").ids); n != 25 {
		t.Errorf("without max: %d messages", n)
	}
	// Paging from an id the archive does not have.
	bad := b.mam(t, nsMAM2, "<set xmlns='http://jabber.org/protocol/rsm'><after>nosuchid</after></set>")
	if errCondition(bad.reply) != "item-not-found" {
		t.Errorf("after an unknown id: %s", bad.reply)
	}
}

func TestMAMFilters(t *testing.T) {
	e := newArchiveEnv(t, archive.Options{})
	a := e.login("alice@example.com/pc")
	b := e.login("bob@example.com/phone")
	c := e.login("carol@example.com/tab")
	for _, x := range []*client{a, b, c} {
		x.online("1")
	}
	a.chat("bob@example.com", "to-bob-", 3)
	c.chat("bob@example.com", "from-carol-", 2)
	b.send(`<message to='alice@example.com/pc' type='chat'><body>reply to alice</body></message>`)
	mid := time.Now()
	time.Sleep(5 * time.Millisecond)
	b.send(`<message to='carol@example.com' type='chat'><body>Reply to Carol about the lighthouse</body></message>`)

	all := b.mam(t, nsMAM2, "")
	if len(all.ids) != 7 {
		t.Fatalf("bob's archive has %d messages, want 7", len(all.ids))
	}
	tests := []struct {
		name   string
		fields []string
		want   string
	}{
		{"with a bare JID", []string{"with", "alice@example.com"}, "to-bob-0,to-bob-1,to-bob-2,reply to alice"},
		{"with a full JID", []string{"with", "alice@example.com/pc"}, "to-bob-0,to-bob-1,to-bob-2,reply to alice"},
		{"with another resource", []string{"with", "alice@example.com/phone"}, ""},
		{"with carol", []string{"with", "carol@example.com"}, "from-carol-0,from-carol-1,Reply to Carol about the lighthouse"},
		{"start", []string{"start", mid.UTC().Format(time.RFC3339Nano)}, "Reply to Carol about the lighthouse"},
		{"end", []string{"end", mid.UTC().Format(time.RFC3339Nano)}, "to-bob-0,to-bob-1,to-bob-2,from-carol-0,from-carol-1,reply to alice"},
		{"after-id", []string{"after-id", all.ids[4]}, "reply to alice,Reply to Carol about the lighthouse"},
		{"before-id", []string{"before-id", all.ids[1]}, "to-bob-0"},
		{"ids", []string{"ids", all.ids[6] + "|" + all.ids[0] + "|nosuch"}, "to-bob-0,Reply to Carol about the lighthouse"},
		{"ids and with", []string{"ids", all.ids[6] + "|" + all.ids[0], "with", "carol@example.com"}, "Reply to Carol about the lighthouse"},
		{"full text", []string{"{urn:xmpp:fulltext:0}fulltext", "LIGHTHOUSE"}, "Reply to Carol about the lighthouse"},
		{"start and end", []string{"start", time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), "end", mid.UTC().Format(time.RFC3339Nano), "with", "carol@example.com"}, "from-carol-0,from-carol-1"},
	}
	for _, tt := range tests {
		r := b.mam(t, nsMAM2, "", tt.fields...)
		if r.reply.Attr("type") != "result" {
			t.Errorf("%s: %s", tt.name, r.reply)
			continue
		}
		if got := strings.Join(r.bodies(), ","); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
		if !r.complete() {
			t.Errorf("%s: not complete", tt.name)
		}
	}
	for _, bad := range []struct {
		fields []string
		cond   string
	}{
		{[]string{"start", "yesterday"}, "bad-request"},
		{[]string{"with", "@@"}, "jid-malformed"},
		{[]string{"colour", "blue"}, "bad-request"},
	} {
		r := b.mam(t, nsMAM2, "", bad.fields...)
		if errCondition(r.reply) != bad.cond {
			t.Errorf("%v: %s, want %s", bad.fields, r.reply, bad.cond)
		}
	}
	r := b.mam(t, nsMAM2, "<set xmlns='http://jabber.org/protocol/rsm'><max>-1</max></set>")
	if errCondition(r.reply) != "bad-request" {
		t.Errorf("negative max: %s", r.reply)
	}

	// The older namespace works the same.
	r1 := b.mam(t, nsMAM1, "", "with", "carol@example.com")
	if len(r1.ids) != 3 || r1.fin == nil {
		t.Errorf("mam:1 query: %d results, reply %s", len(r1.ids), r1.reply)
	}
}

func TestArchiveIsPrivate(t *testing.T) {
	e := newArchiveEnv(t, archive.Options{})
	a := e.login("alice@example.com/pc")
	b := e.login("bob@example.com/phone")
	a.online("1")
	b.online("1")
	a.chat("bob@example.com", "secret", 2)
	for _, q := range []string{
		`<iq type='set' id='spy' to='bob@example.com'><query xmlns='urn:xmpp:mam:2'/></iq>`,
		`<iq type='get' id='spy' to='bob@example.com'><prefs xmlns='urn:xmpp:mam:2'/></iq>`,
		`<iq type='set' id='spy' to='bob@example.com'><prefs xmlns='urn:xmpp:mam:2' default='never'/></iq>`,
		`<iq type='set' id='spy' to='bob@example.com'><query xmlns='urn:xmpp:mam:1'/></iq>`,
	} {
		a.send(q)
		got := a.rec.Take()
		reply := find(got, func(el *xmlstream.Element) bool { return el.Attr("id") == "spy" })
		if reply == nil || errCondition(reply) != "forbidden" {
			t.Errorf("%s: reply %v", q, reply)
		}
		if find(got, func(el *xmlstream.Element) bool { return el.Local == "message" }) != nil {
			t.Errorf("%s: alice received archived messages of bob's", q)
		}
	}
}

func TestArchivePreferences(t *testing.T) {
	e := newArchiveEnv(t, archive.Options{})
	a := e.login("alice@example.com/pc")
	b := e.login("bob@example.com/phone")
	c := e.login("carol@example.com/tab")
	for _, x := range []*client{a, b, c} {
		x.online("1")
	}
	prefs := func(x *client, payload string) *xmlstream.Element {
		t.Helper()
		x.rec.Take()
		typ := "get"
		if strings.Contains(payload, "default=") {
			typ = "set"
		}
		x.send("<iq type='" + typ + "' id='p'>" + payload + "</iq>")
		reply := find(x.rec.Take(), func(el *xmlstream.Element) bool { return el.Attr("id") == "p" })
		if reply == nil {
			t.Fatal("no reply to prefs")
		}
		return reply
	}
	got := prefs(a, `<prefs xmlns='urn:xmpp:mam:2'/>`)
	if p := got.Child(nsMAM2, "prefs"); p == nil || p.Attr("default") != "always" {
		t.Fatalf("default preferences: %s", got)
	}
	// Never bob; the default stays always.
	got = prefs(a, `<prefs xmlns='urn:xmpp:mam:2' default='always'><never><jid>bob@example.com/any</jid></never></prefs>`)
	if p := got.Child(nsMAM2, "prefs"); p == nil || p.Child(nsMAM2, "never").Child(nsMAM2, "jid").Text() != "bob@example.com" {
		t.Fatalf("set preferences: %s", got)
	}
	a.send(`<message to='bob@example.com' type='chat'><body>not in alice's archive</body></message>`)
	a.send(`<message to='carol@example.com' type='chat'><body>in alice's archive</body></message>`)
	if r := a.mam(t, nsMAM2, ""); strings.Join(r.bodies(), ",") != "in alice's archive" {
		t.Fatalf("alice's archive with bob never: %v", r.bodies())
	}
	if r := b.mam(t, nsMAM2, ""); len(r.ids) != 1 {
		t.Fatalf("bob's own preferences still archive it: %v", r.bodies())
	}
	// Roster: only contacts; carol is one, bob is not; always overrides.
	a.send(`<iq type='set' id='r'><query xmlns='jabber:iq:roster'><item jid='carol@example.com'/></query></iq>`)
	prefs(a, `<prefs xmlns='urn:xmpp:mam:2' default='roster'><always><jid>dave@example.com</jid></always></prefs>`)
	c.send(`<message to='alice@example.com' type='chat'><body>from a contact</body></message>`)
	b.send(`<message to='alice@example.com' type='chat'><body>from a stranger</body></message>`)
	r := a.mam(t, nsMAM2, "")
	if strings.Join(r.bodies(), ",") != "in alice's archive,from a contact" {
		t.Fatalf("alice's archive with default roster: %v", r.bodies())
	}
	// Never.
	prefs(a, `<prefs xmlns='urn:xmpp:mam:2' default='never'/>`)
	c.send(`<message to='alice@example.com' type='chat'><body>not kept</body></message>`)
	if n := len(a.mam(t, nsMAM2, "").ids); n != 2 {
		t.Fatalf("alice's archive grew with default never: %d", n)
	}
	if got := prefs(a, `<prefs xmlns='urn:xmpp:mam:2' default='sometimes'/>`); errCondition(got) != "bad-request" {
		t.Errorf("invalid default: %s", got)
	}
	// Preferences survive a cold cache (they are stored).
	e.m.forgetPrefs(jid.MustParse("alice@example.com"))
	if p := prefs(a, `<prefs xmlns='urn:xmpp:mam:1'/>`).Child(nsMAM1, "prefs"); p == nil || p.Attr("default") != "never" {
		t.Fatalf("stored preferences: %v", p)
	}
}

func TestArchiveRemovedWithTheAccount(t *testing.T) {
	e := newArchiveEnv(t, archive.Options{FlushInterval: time.Hour})
	a := e.login("alice@example.com/pc")
	b := e.login("bob@example.com/phone")
	a.online("1")
	b.online("1")
	a.chat("bob@example.com", "m", 3)
	if err := e.store.SetArchivePrefs(context.Background(), "bob@example.com", sdk.ArchivePrefs{Default: sdk.ArchiveAlways}); err != nil {
		t.Fatal(err)
	}
	// Bob's copies are still in the writer's queue: removal must not let
	// them land after the deletion.
	if err := e.m.RemoveAccount(context.Background(), e.host, "bob"); err != nil {
		t.Fatal(err)
	}
	p, err := e.store.QueryArchive(context.Background(), sdk.ArchiveQuery{Owner: "bob@example.com", Max: 10})
	if err != nil || len(p.Messages) != 0 {
		t.Fatalf("bob's archive after removal: %d messages, %v", len(p.Messages), err)
	}
	if prefs, _ := e.store.GetArchivePrefs(context.Background(), "bob@example.com"); prefs.Default != "" {
		t.Fatal("bob's preferences survived the removal")
	}
	if n := len(a.mam(t, nsMAM2, "").ids); n != 3 {
		t.Fatalf("alice's archive: %d messages, want 3", n)
	}
}

func TestArchiveBackpressureRefusesRatherThanLoses(t *testing.T) {
	e := newEnv(t)
	down := func(context.Context) (archive.Stream, error) {
		return nil, fmt.Errorf("plugin is down: %w", sdk.ErrUnavailable)
	}
	w := archive.NewWriter(down, archive.Options{QueueSize: 4, BlockTimeout: 20 * time.Millisecond, RetryMin: time.Millisecond}, nil)
	t.Cleanup(func() {
		// Nothing can be written: Close gives up, reporting the loss.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		if err := w.Close(ctx); err == nil || !strings.Contains(err.Error(), "4 messages not written") {
			t.Errorf("Close = %v, want 4 messages reported lost", err)
		}
	})
	e.host.Archive = Feature[*Archive]{Backend: &Archive{Backend: e.store, Writer: w}, On: true, Writable: true}
	a := e.login("alice@example.com/pc")
	b := e.login("bob@example.com/phone")
	a.online("1")
	b.online("1")
	a.chat("bob@example.com", "m", 3) // two copies each: the third does not fit
	var delivered []string
	for _, el := range b.rec.Take() {
		if el.Local == "message" {
			delivered = append(delivered, el.Child(xmlstream.NSClient, "body").Text())
		}
	}
	if strings.Join(delivered, ",") != "m0,m1" {
		t.Fatalf("delivered %v, want m0 and m1 only", delivered)
	}
	bounce := find(a.rec.Take(), func(el *xmlstream.Element) bool { return el.Local == "message" && el.Attr("type") == "error" })
	if bounce == nil || errCondition(bounce) != "resource-constraint" || bounce.Attr("id") != "m2" {
		t.Fatalf("the message that could not be archived was not refused: %v", bounce)
	}
}

func TestArchiveDisco(t *testing.T) {
	e := newArchiveEnv(t, archive.Options{})
	a := e.login("alice@example.com/pc")
	a.send(`<iq type='get' id='d'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	reply := find(a.rec.Take(), func(el *xmlstream.Element) bool { return el.Attr("id") == "d" })
	for _, f := range []string{nsMAM2, nsMAM2Extended, nsMAM1, nsSID, nsFulltext, archive.NSRetract1} {
		if reply == nil || !strings.Contains(reply.String(), "var=\""+f+"\"") && !strings.Contains(reply.String(), "var='"+f+"'") {
			t.Errorf("account disco lacks %s: %v", f, reply)
		}
	}
	a.send(`<iq type='get' id='f'><query xmlns='urn:xmpp:mam:2'/></iq>`)
	form := find(a.rec.Take(), func(el *xmlstream.Element) bool { return el.Attr("id") == "f" })
	for _, v := range []string{"with", "start", "end", "before-id", "after-id", "ids", "{urn:xmpp:fulltext:0}fulltext"} {
		if form == nil || !strings.Contains(form.String(), v) {
			t.Errorf("query form lacks %s: %v", v, form)
		}
	}
}

// BenchmarkParseAndRouteMessageArchived is BenchmarkParseAndRouteMessage
// with the archive on: both copies reserved, serialised and queued, and
// written by the writer on another goroutine, to SQLite (sqlite) or to a
// stream that acknowledges at once (acked: the core's own share, which
// decides the archive's cost when the database has cores of its own). ns/op
// is the time of routing; the writer's backlog is flushed after the timer
// stops, and flush-ms reports how long that took. Run with -cpu 1, the
// writer's work is in ns/op too, and acked against
// BenchmarkParseAndRouteMessage is the core's archive overhead.
func BenchmarkParseAndRouteMessageArchived(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		benchRouteArchived(b, func(e *env) archive.Opener { return archive.LocalStream(e.store) })
	})
	b.Run("acked", func(b *testing.B) {
		benchRouteArchived(b, func(*env) archive.Opener { return openAckStream })
	})
}

func benchRouteArchived(b *testing.B, open func(*env) archive.Opener) {
	e := newEnv(b)
	w := archive.NewWriter(open(e), archive.Options{}, nil)
	e.host.Archive = Feature[*Archive]{Backend: &Archive{Backend: e.store, Writer: w}, On: true, Writable: true}
	routeMessages(b, e)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(time.Since(start).Milliseconds()), "flush-ms")
	if st := w.Stats(); st.Stored != uint64(2*b.N) {
		b.Fatalf("archived %d of %d", st.Stored, 2*b.N)
	}
}
