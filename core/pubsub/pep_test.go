package pubsub

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/auth"
	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/router/routertest"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	sqlbackend "github.com/koi-im/koi/plugins/sql"
	"github.com/koi-im/koi/plugins/sql/sqltest"
	"github.com/koi-im/koi/sdk"
	"github.com/koi-im/koi/sdk/memory"
)

// The PEP tests run the module server on the real sql backend (rosters,
// accounts) with PEP on an in-memory node store; only the client
// connections are recorders.

type namedStore struct{ *sqlbackend.Store }

func (namedStore) Name() string { return "sql" }

type env struct {
	t     testing.TB
	st    *sqlbackend.Store
	m     *modules.Server
	r     *router.Router
	pep   *PEP
	nodes *memory.PubSub
}

func newEnv(t testing.TB, lim Limits) *env {
	t.Helper()
	ctx := context.Background()
	st := sqltest.SQLite(t)
	for _, u := range []string{"alice", "bob", "carol"} {
		if err := st.CreateUser(ctx, "example.com", u, "pw-"+u); err != nil {
			t.Fatal(err)
		}
	}
	nodes := memory.NewPubSub()
	h := &modules.Host{
		Name:    "example.com",
		Auth:    auth.NewChain("example.com", []auth.Backend{namedStore{st}}),
		Roster:  modules.Feature[modules.RosterBackend]{Backend: st, On: true, Writable: true},
		VCard:   modules.Feature[modules.VCardBackend]{Backend: st, On: true, Writable: true},
		Private: modules.Feature[modules.PrivateBackend]{Backend: st, On: true, Writable: true},
		PubSub:  modules.Feature[modules.PubSubBackend]{Backend: nodes, On: true, Writable: true},
	}
	rt := router.New()
	m := modules.New(hclog.NewNullLogger(), rt, []*modules.Host{h}, "test")
	p := RegisterPEP(hclog.NewNullLogger(), lim, m, rt, NewCaps())
	t.Cleanup(p.Close)
	return &env{t: t, st: st, m: m, r: rt, pep: p, nodes: nodes}
}

type client struct {
	e   *env
	s   *router.Session
	rec *routertest.Recorder
}

func (e *env) login(full string) *client {
	rec := &routertest.Recorder{}
	s, _ := e.r.Bind(jid.MustParse(full), rec)
	return &client{e: e, s: s, rec: rec}
}

func (c *client) send(x string) {
	c.e.t.Helper()
	el, err := stanza.Parse(x)
	if err != nil {
		c.e.t.Fatalf("bad test stanza %s: %v", x, err)
	}
	el.SetAttr("from", c.s.JID().String())
	c.e.m.Stanza(context.Background(), c.s, el)
}

// iq sends a request and returns its answer.
func (c *client) iq(x string) *xmlstream.Element {
	c.e.t.Helper()
	c.send(x)
	var rest []*xmlstream.Element
	var answer *xmlstream.Element
	for _, el := range c.rec.Take() {
		if answer == nil && el.Local == "iq" && (el.Attr("type") == "result" || el.Attr("type") == "error") {
			answer = el
			continue
		}
		rest = append(rest, el)
	}
	c.rec.Unread(rest)
	if answer != nil {
		return answer
	}
	c.e.t.Fatalf("no answer to %s", x)
	return nil
}

func (c *client) ok(x string) *xmlstream.Element {
	c.e.t.Helper()
	r := c.iq(x)
	if r.Attr("type") != "result" {
		c.e.t.Fatalf("%s\nanswered %s", x, r)
	}
	return r
}

// fails checks that x is refused with cond and, if app is set, the
// pubsub#errors condition app.
func (c *client) fails(x, cond, app string) {
	c.e.t.Helper()
	r := c.iq(x)
	e := stanza.ErrorFrom(r)
	if e == nil || e.Condition != cond {
		c.e.t.Fatalf("%s\nanswered %s, want %s", x, r, cond)
	}
	if app != "" && r.Child(xmlstream.NSClient, "error").Child(NSErrors, app) == nil {
		c.e.t.Fatalf("%s\nanswered %s, want pubsub#errors %s", x, r, app)
	}
}

// capsVer computes the XEP-0115 ver of a client identity and features.
func capsVer(features []string) string {
	fs := append([]string(nil), features...)
	sort.Strings(fs)
	s := "client/pc//koi test<"
	for _, f := range fs {
		s += f + "<"
	}
	h := sha1.Sum([]byte(s))
	return base64.StdEncoding.EncodeToString(h[:])
}

// online sends available presence with caps for features and answers the
// server's disco#info query when it comes.
func (c *client) online(features ...string) {
	c.e.t.Helper()
	ver := capsVer(features)
	c.send(`<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='urn:koi:test' ver='` + ver + `'/></presence>`)
	var rest []*xmlstream.Element
	defer func() { c.rec.Unread(rest) }()
	for _, el := range c.rec.Take() {
		q := el.Child(NSDiscoInfo, "query")
		if el.Local != "iq" || el.Attr("type") != "get" || q == nil {
			rest = append(rest, el)
			continue
		}
		r := `<iq type='result' id='` + el.Attr("id") + `' to='` + el.Attr("from") + `'><query xmlns='http://jabber.org/protocol/disco#info' node='` + q.Attr("node") + `'><identity category='client' type='pc' name='koi test'/>`
		for _, f := range features {
			r += `<feature var='` + f + `'/>`
		}
		c.send(r + `</query></iq>`)
	}
	c.e.pep.wg.Wait()
	rest = append(rest, c.rec.Take()...)
}

// subscribe makes a and b see each other's presence.
func subscribe(a, b *client) {
	ab, bb := a.s.JID().Bare().String(), b.s.JID().Bare().String()
	a.send(`<presence type='subscribe' to='` + bb + `'/>`)
	b.send(`<presence type='subscribed' to='` + ab + `'/>`)
	b.send(`<presence type='subscribe' to='` + ab + `'/>`)
	a.send(`<presence type='subscribed' to='` + bb + `'/>`)
	a.rec.Take()
	b.rec.Take()
}

// events returns the items events among els by node, with the ids.
func events(els []*xmlstream.Element) map[string][]string {
	out := map[string][]string{}
	for _, el := range els {
		ev := el.Child(NSEvent, "event")
		if el.Local != "message" || ev == nil {
			continue
		}
		for _, k := range ev.Elements() {
			var ids []string
			for _, it := range k.Elements() {
				ids = append(ids, it.Local+":"+it.Attr("id"))
			}
			out[k.Local+" "+k.Attr("node")] = append(out[k.Local+" "+k.Attr("node")], strings.Join(ids, ","))
		}
	}
	return out
}

const (
	nsMeta     = "urn:xmpp:avatar:metadata"
	nsBookmark = "urn:xmpp:bookmarks:1"
)

func publishMeta(id string) string {
	return `<iq type='set' id='p'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:avatar:metadata'><item id='` + id + `'><metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='3' id='` + id + `' type='image/png'/></metadata></item></publish></pubsub></iq>`
}

func TestPEPNotifications(t *testing.T) {
	e := newEnv(t, DefaultLimits)
	alice := e.login("alice@example.com/pc")
	alice2 := e.login("alice@example.com/phone")
	bob := e.login("bob@example.com/pc")
	bobMute := e.login("bob@example.com/mute")
	carol := e.login("carol@example.com/pc")
	subscribe(alice, bob)
	alice.online()
	alice2.online(nsMeta+"+notify", nsBookmark+"+notify")
	bob.online(nsMeta + "+notify")
	bobMute.online("urn:other+notify")
	carol.online(nsMeta + "+notify")
	for _, c := range []*client{alice, alice2, bob, bobMute, carol} {
		c.rec.Take()
	}

	// Account disco says PEP.
	r := bob.ok(`<iq type='get' id='d' to='alice@example.com'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	// config-node-max: Converse.js asks for max_items "max" only where it
	// is advertised, and 9999 (over the limit) elsewhere.
	var pep, publishOpts, nodeMax bool
	for _, k := range r.FirstChild().Elements() {
		pep = pep || (k.Local == "identity" && k.Attr("category") == "pubsub" && k.Attr("type") == "pep")
		publishOpts = publishOpts || k.Attr("var") == NS+"#publish-options"
		nodeMax = nodeMax || k.Attr("var") == NS+"#config-node-max"
	}
	if !pep || !publishOpts || !nodeMax {
		t.Fatalf("account disco %s", r)
	}

	r = alice.ok(publishMeta("h1"))
	if it := r.FirstChild().FirstChild().FirstChild(); it == nil || it.Attr("id") != "h1" {
		t.Fatalf("publish result %s", r)
	}
	if got := events(bob.rec.Take())["items "+nsMeta]; len(got) != 1 || got[0] != "item:h1" {
		t.Errorf("bob got %v", got)
	}
	if got := events(alice2.rec.Take())["items "+nsMeta]; len(got) != 1 {
		t.Errorf("alice's other resource got %v", got)
	}
	for _, c := range []*client{alice, bobMute, carol} {
		if got := events(c.rec.Take()); len(got) != 0 {
			t.Errorf("%s got %v", c.s.JID(), got)
		}
	}

	// Contacts read the node; strangers may not.
	r = bob.ok(`<iq type='get' id='i' to='alice@example.com'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:avatar:metadata'/></pubsub></iq>`)
	if it := r.FirstChild().FirstChild().FirstChild(); it == nil || it.Attr("id") != "h1" || it.Child(nsMeta, "metadata") == nil {
		t.Fatalf("items %s", r)
	}
	carol.fails(`<iq type='get' id='i' to='alice@example.com'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:avatar:metadata'/></pubsub></iq>`, "not-authorized", "presence-subscription-required")

	// Someone else's PEP is not theirs to write.
	bob.fails(`<iq type='set' id='x' to='alice@example.com'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:avatar:metadata'><item id='evil'><metadata xmlns='urn:xmpp:avatar:metadata'/></item></publish></pubsub></iq>`, "forbidden", "")
	bob.fails(`<iq type='set' id='x' to='alice@example.com'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='fresh'><item><x xmlns='urn:x'/></item></publish></pubsub></iq>`, "forbidden", "")
	bob.fails(`<iq type='set' id='x' to='alice@example.com'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><delete node='urn:xmpp:avatar:metadata'/></pubsub></iq>`, "forbidden", "")

	// A private node (XEP-0223): only the owner's resources hear of it.
	alice.ok(`<iq type='set' id='b'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:bookmarks:1'><item id='room@muc.example.com'><conference xmlns='urn:xmpp:bookmarks:1' name='Room' autojoin='true'/></item></publish>
<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='pubsub#persist_items'><value>true</value></field><field var='pubsub#access_model'><value>whitelist</value></field><field var='pubsub#max_items'><value>max</value></field><field var='pubsub#send_last_published_item'><value>never</value></field></x></publish-options></pubsub></iq>`)
	if got := events(alice2.rec.Take())["items "+nsBookmark]; len(got) != 1 || got[0] != "item:room@muc.example.com" {
		t.Errorf("alice's other resource got bookmarks %v", got)
	}
	bob.fails(`<iq type='get' id='i' to='alice@example.com'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:bookmarks:1'/></pubsub></iq>`, "not-allowed", "closed-node")
	// Disco items show bob only what he may see.
	r = bob.ok(`<iq type='get' id='d' to='alice@example.com'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`)
	if items := r.FirstChild().Elements(); len(items) != 1 || items[0].Attr("node") != nsMeta {
		t.Errorf("bob's disco#items %s", r)
	}

	// Publish-options that do not match the node: precondition-not-met,
	// and nothing is stored.
	alice.fails(`<iq type='set' id='b'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:bookmarks:1'><item id='other@muc.example.com'><conference xmlns='urn:xmpp:bookmarks:1'/></item></publish>
<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='pubsub#access_model'><value>open</value></field></x></publish-options></pubsub></iq>`, "conflict", "precondition-not-met")
	page, _ := e.nodes.GetPubSubItems(context.Background(), sdk.PubSubItemQuery{Service: "alice@example.com", Node: nsBookmark, Max: 10})
	if page.Count != 1 {
		t.Errorf("bookmarks after a failed publish: %d items", page.Count)
	}

	// A contact coming online later gets the last item of the nodes it
	// wants, and not of private ones.
	bob3 := e.login("bob@example.com/tablet")
	bob3.online(nsMeta+"+notify", nsBookmark+"+notify")
	got := events(bob3.rec.Take())
	if len(got) != 1 || len(got["items "+nsMeta]) != 1 || got["items "+nsMeta][0] != "item:h1" {
		t.Errorf("bob's new session got %v", got)
	}
	// So does the owner's own new session, private nodes included.
	alice3 := e.login("alice@example.com/tablet")
	alice3.online(nsMeta+"+notify", nsBookmark+"+notify")
	got = events(alice3.rec.Take())
	if len(got) != 1 || len(got["items "+nsMeta]) != 1 {
		// bookmarks: send_last_published_item never
		t.Errorf("alice's new session got %v", got)
	}

	// Retract with notify, then a blocked contact hears nothing.
	alice.ok(`<iq type='set' id='r'><pubsub xmlns='http://jabber.org/protocol/pubsub'><retract node='urn:xmpp:avatar:metadata' notify='true'><item id='h1'/></retract></pubsub></iq>`)
	if got := events(bob.rec.Take())["items "+nsMeta]; len(got) != 1 || got[0] != "retract:h1" {
		t.Errorf("bob got retraction %v", got)
	}
	alice.fails(`<iq type='set' id='r'><pubsub xmlns='http://jabber.org/protocol/pubsub'><retract node='urn:xmpp:avatar:metadata'><item id='h1'/></retract></pubsub></iq>`, "item-not-found", "")
}

func TestPEPLimitsAndBadInput(t *testing.T) {
	e := newEnv(t, Limits{MaxItems: 5, DefaultMaxItems: 3, MaxNodes: 2, MaxItemBytes: 200})
	alice := e.login("alice@example.com/pc")
	alice.online()
	pub := func(node, id, payload string) string {
		return `<iq type='set' id='p'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='` + node + `'><item id='` + id + `'>` + payload + `</item></publish></pubsub></iq>`
	}
	alice.ok(pub("n1", "a", "<x xmlns='urn:x'/>"))
	alice.fails(pub("n1", "big", "<x xmlns='urn:x'>"+strings.Repeat("z", 300)+"</x>"), "not-acceptable", "payload-too-big")
	alice.fails(pub("n1", "two", "<x xmlns='urn:x'/><y xmlns='urn:x'/>"), "bad-request", "invalid-payload")
	alice.fails(pub("n1", "none", ""), "bad-request", "payload-required")
	alice.fails(`<iq type='set' id='p'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='n1'/></pubsub></iq>`, "bad-request", "item-required")
	alice.fails(`<iq type='set' id='p'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish/></pubsub></iq>`, "bad-request", "nodeid-required")
	alice.ok(pub("n2", "a", "<x xmlns='urn:x'/>"))
	alice.fails(pub("n3", "a", "<x xmlns='urn:x'/>"), "not-allowed", "max-nodes-exceeded")
	alice.fails(`<iq type='set' id='c'><pubsub xmlns='http://jabber.org/protocol/pubsub'><create node='n3'/></pubsub></iq>`, "not-allowed", "max-nodes-exceeded")
	alice.fails(`<iq type='set' id='c'><pubsub xmlns='http://jabber.org/protocol/pubsub'><create node='n1'/></pubsub></iq>`, "conflict", "")
	if nodes, _ := e.nodes.ListPubSubNodes(context.Background(), "alice@example.com"); len(nodes) != 2 {
		t.Fatalf("%d nodes stored", len(nodes))
	}
	form := func(fields string) string {
		return `<iq type='set' id='c'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='n1'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field>` + fields + `</x></configure></pubsub></iq>`
	}
	alice.fails(form(`<field var='pubsub#access_model'><value>authorize</value></field>`), "not-acceptable", "unsupported-access-model")
	alice.fails(form(`<field var='pubsub#access_model'><value>telepathy</value></field>`), "not-acceptable", "unsupported-access-model")
	alice.fails(form(`<field var='pubsub#max_items'><value>6</value></field>`), "not-acceptable", "")
	alice.fails(form(`<field var='pubsub#max_items'><value>lots</value></field>`), "not-acceptable", "")
	alice.fails(form(`<field var='pubsub#persist_items'><value>maybe</value></field>`), "not-acceptable", "")
	alice.fails(form(`<field><value>x</value></field>`), "bad-request", "")
	alice.fails(`<iq type='set' id='c'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='n1'/></pubsub></iq>`, "bad-request", "")
	// Nothing of the refused forms was applied.
	r := alice.ok(`<iq type='get' id='c'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='n1'/></pubsub></iq>`)
	cfg := map[string]string{}
	for _, f := range r.FirstChild().FirstChild().FirstChild().Elements() {
		if v := f.Child(NSData, "value"); v != nil {
			cfg[f.Attr("var")] = v.Text()
		}
	}
	if cfg[fAccessModel] != AccessPresence || cfg[fMaxItems] != "1" || cfg[fPersistItems] != "true" {
		t.Fatalf("config after refused forms %v", cfg)
	}

	// max_items: the oldest go; "max" is the limit; lowering trims.
	alice.ok(form(`<field var='pubsub#max_items'><value>max</value></field>`))
	for _, id := range []string{"b", "c", "d", "e", "f", "g"} {
		alice.ok(pub("n1", id, "<x xmlns='urn:x'/>"))
	}
	ids := func(r *xmlstream.Element) string {
		var out []string
		for _, it := range r.FirstChild().FirstChild().Elements() {
			out = append(out, it.Attr("id"))
		}
		return strings.Join(out, ",")
	}
	items := `<iq type='get' id='i'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='n1'/></pubsub></iq>`
	if got := ids(alice.ok(items)); got != "g,f,e,d,c" {
		t.Errorf("items %s", got)
	}
	if got := ids(alice.ok(`<iq type='get' id='i'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='n1' max_items='2'/></pubsub></iq>`)); got != "g,f" {
		t.Errorf("max_items=2: %s", got)
	}
	if got := ids(alice.ok(`<iq type='get' id='i'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='n1'><item id='d'/><item id='zz'/></items></pubsub></iq>`)); got != "d" {
		t.Errorf("by id: %s", got)
	}
	// RSM paging.
	r = alice.ok(`<iq type='get' id='i'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='n1'/><set xmlns='http://jabber.org/protocol/rsm'><max>2</max><after>f</after></set></pubsub></iq>`)
	if got := ids(r); got != "e,d" {
		t.Errorf("rsm page %s", got)
	}
	if set := r.Child(NS, "pubsub").Child(NSRSM, "set"); set == nil || set.Child(NSRSM, "count").Text() != "5" || set.Child(NSRSM, "last").Text() != "d" {
		t.Errorf("rsm set %s", r)
	}
	alice.fails(`<iq type='get' id='i'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='n1'/><set xmlns='http://jabber.org/protocol/rsm'><after>nope</after></set></pubsub></iq>`, "item-not-found", "")
	alice.ok(form(`<field var='pubsub#max_items'><value>2</value></field>`))
	if got := ids(alice.ok(items)); got != "g,f" {
		t.Errorf("after lowering max_items: %s", got)
	}
	// Purge and delete.
	alice.ok(`<iq type='set' id='x'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><purge node='n1'/></pubsub></iq>`)
	if got := ids(alice.ok(items)); got != "" {
		t.Errorf("after purge: %s", got)
	}
	alice.ok(`<iq type='set' id='x'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><delete node='n1'/></pubsub></iq>`)
	alice.fails(items, "item-not-found", "")
	alice.fails(`<iq type='get' id='x'><pubsub xmlns='http://jabber.org/protocol/pubsub'><frobnicate node='n1'/></pubsub></iq>`, "bad-request", "")
}

func TestPEPSubscribeAndAffiliations(t *testing.T) {
	e := newEnv(t, DefaultLimits)
	alice := e.login("alice@example.com/pc")
	bob := e.login("bob@example.com/pc")
	carol := e.login("carol@example.com/pc")
	alice.online()
	bob.online()
	carol.online()
	alice.ok(`<iq type='set' id='c'><pubsub xmlns='http://jabber.org/protocol/pubsub'><create node='diary'/><configure><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field><field var='pubsub#access_model'><value>whitelist</value></field><field var='pubsub#max_items'><value>10</value></field></x></configure></pubsub></iq>`)
	alice.ok(`<iq type='set' id='p'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='diary'><item id='d1'><entry xmlns='http://www.w3.org/2005/Atom'>one</entry></item></publish></pubsub></iq>`)
	sub := `<iq type='set' id='s' to='alice@example.com'><pubsub xmlns='http://jabber.org/protocol/pubsub'><subscribe node='diary' jid='bob@example.com'/></pubsub></iq>`
	bob.fails(sub, "not-allowed", "closed-node")
	bob.fails(`<iq type='set' id='s' to='alice@example.com'><pubsub xmlns='http://jabber.org/protocol/pubsub'><subscribe node='diary' jid='carol@example.com'/></pubsub></iq>`, "bad-request", "invalid-jid")
	// Whitelisting bob lets him subscribe; he gets the last item at once.
	alice.ok(`<iq type='set' id='a'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><affiliations node='diary'><affiliation jid='bob@example.com' affiliation='member'/></affiliations></pubsub></iq>`)
	alice.fails(`<iq type='set' id='a'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><affiliations node='diary'><affiliation jid='carol@example.com' affiliation='emperor'/></affiliations></pubsub></iq>`, "not-acceptable", "")
	r := bob.ok(sub)
	if s := r.FirstChild().FirstChild(); s.Attr("subscription") != "subscribed" || s.Attr("jid") != "bob@example.com" {
		t.Fatalf("subscribe %s", r)
	}
	if got := events(bob.rec.Take())["items diary"]; len(got) != 1 || got[0] != "item:d1" {
		t.Errorf("last item on subscribe %v", got)
	}
	// A subscriber gets notifications without caps or presence
	// subscription; carol does not.
	alice.ok(`<iq type='set' id='p'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='diary'><item id='d2'><entry xmlns='http://www.w3.org/2005/Atom'>two</entry></item></publish></pubsub></iq>`)
	if got := events(bob.rec.Take())["items diary"]; len(got) != 1 || got[0] != "item:d2" {
		t.Errorf("subscriber got %v", got)
	}
	if got := events(carol.rec.Take()); len(got) != 0 {
		t.Errorf("carol got %v", got)
	}
	r = bob.ok(`<iq type='get' id='s' to='alice@example.com'><pubsub xmlns='http://jabber.org/protocol/pubsub'><subscriptions/></pubsub></iq>`)
	if s := r.FirstChild().FirstChild().FirstChild(); s == nil || s.Attr("node") != "diary" {
		t.Errorf("subscriptions %s", r)
	}
	r = alice.ok(`<iq type='get' id='s'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><subscriptions node='diary'/></pubsub></iq>`)
	if s := r.FirstChild().FirstChild().FirstChild(); s == nil || s.Attr("jid") != "bob@example.com" {
		t.Errorf("owner's subscriptions %s", r)
	}
	r = alice.ok(`<iq type='get' id='s'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><affiliations node='diary'/></pubsub></iq>`)
	if len(r.FirstChild().FirstChild().Elements()) != 2 {
		t.Errorf("owner's affiliations %s", r)
	}
	// Outcast: bob loses access, and notifications stop.
	alice.ok(`<iq type='set' id='a'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><affiliations node='diary'><affiliation jid='bob@example.com' affiliation='outcast'/></affiliations></pubsub></iq>`)
	alice.ok(`<iq type='set' id='p'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='diary'><item id='d3'><entry xmlns='http://www.w3.org/2005/Atom'>three</entry></item></publish></pubsub></iq>`)
	if got := events(bob.rec.Take()); len(got) != 0 {
		t.Errorf("outcast got %v", got)
	}
	bob.fails(`<iq type='get' id='i' to='alice@example.com'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='diary'/></pubsub></iq>`, "forbidden", "")
	bob.ok(`<iq type='set' id='u' to='alice@example.com'><pubsub xmlns='http://jabber.org/protocol/pubsub'><unsubscribe node='diary' jid='bob@example.com'/></pubsub></iq>`)
	bob.fails(`<iq type='set' id='u' to='alice@example.com'><pubsub xmlns='http://jabber.org/protocol/pubsub'><unsubscribe node='diary' jid='bob@example.com'/></pubsub></iq>`, "unexpected-request", "not-subscribed")
	// Node deletion tells the subscribers.
	alice.ok(`<iq type='set' id='a'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><affiliations node='diary'><affiliation jid='carol@example.com' affiliation='member'/></affiliations></pubsub></iq>`)
	carol.ok(`<iq type='set' id='s' to='alice@example.com'><pubsub xmlns='http://jabber.org/protocol/pubsub'><subscribe node='diary' jid='carol@example.com/pc'/></pubsub></iq>`)
	carol.rec.Take()
	alice.ok(`<iq type='set' id='x'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><delete node='diary'/></pubsub></iq>`)
	if got := events(carol.rec.Take()); len(got["delete diary"]) != 1 {
		t.Errorf("carol got %v on delete", got)
	}
}

func TestBookmarksCompat(t *testing.T) {
	e := newEnv(t, DefaultLimits)
	old := e.login("alice@example.com/old")
	old.online(NSBookmarksLegacy + "+notify")
	modern := e.login("alice@example.com/modern")
	modern.online(NSBookmarks + "+notify")
	old.rec.Take()
	modern.rec.Take()

	r := old.ok(`<iq type='get' id='g'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query></iq>`)
	if s := r.FirstChild().FirstChild(); s == nil || s.Local != "storage" || len(s.Elements()) != 0 {
		t.Fatalf("empty bookmarks %s", r)
	}
	// XEP-0048 in private XML becomes XEP-0402 items.
	old.ok(`<iq type='set' id='s'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'>
<conference name='Council' autojoin='true' jid='council@conference.example.com'><nick>Alice</nick></conference>
<conference name='Lobby' jid='lobby@conference.example.com'/>
<url name='koi' url='https://koi.example'/></storage></query></iq>`)
	got := events(modern.rec.Take())
	if len(got["items "+NSBookmarks]) != 2 {
		t.Fatalf("modern resource got %v", got)
	}
	if got := events(old.rec.Take()); len(got["items "+NSBookmarksLegacy]) != 1 {
		t.Errorf("legacy resource got %v", got)
	}
	r = modern.ok(`<iq type='get' id='i'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:bookmarks:1'/></pubsub></iq>`)
	byID := map[string]*xmlstream.Element{}
	for _, it := range r.FirstChild().FirstChild().Elements() {
		byID[it.Attr("id")] = it.FirstChild()
	}
	if c := byID["council@conference.example.com"]; c == nil || c.Attr("autojoin") != "true" || c.Child(NSBookmarks, "nick").Text() != "Alice" {
		t.Fatalf("converted bookmarks %s", r)
	}
	n, _ := e.nodes.GetPubSubNode(context.Background(), "alice@example.com", NSBookmarks)
	if loadConfig(n.Config, true, DefaultLimits).accessModel() != AccessWhitelist {
		t.Errorf("bookmarks node config %v", n.Config)
	}

	// A XEP-0402 publish shows in the private XML and the legacy node.
	modern.ok(`<iq type='set' id='p'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:bookmarks:1'><item id='orchard@conference.example.com'><conference xmlns='urn:xmpp:bookmarks:1' name='Orchard'/></item></publish></pubsub></iq>`)
	if got := events(old.rec.Take()); len(got["items "+NSBookmarksLegacy]) != 1 {
		t.Errorf("legacy resource got %v after a XEP-0402 publish", got)
	}
	modern.rec.Take()
	for _, q := range []string{
		`<iq type='get' id='g'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query></iq>`,
		`<iq type='get' id='g'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='storage:bookmarks'/></pubsub></iq>`,
	} {
		r = old.ok(q)
		var jids []string
		var walk func(*xmlstream.Element)
		walk = func(el *xmlstream.Element) {
			if el.Local == "conference" && el.Space == NSBookmarksLegacy {
				jids = append(jids, el.Attr("jid"))
			}
			for _, k := range el.Elements() {
				walk(k)
			}
		}
		walk(r)
		if strings.Join(jids, " ") != "council@conference.example.com lobby@conference.example.com orchard@conference.example.com" {
			t.Errorf("%s\ngave %q", q, jids)
		}
	}
	// Writing the legacy PEP node with one conference retracts the others.
	old.ok(`<iq type='set' id='p'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='storage:bookmarks'><item id='current'><storage xmlns='storage:bookmarks'><conference jid='lobby@conference.example.com' name='Lobby'/></storage></item></publish></pubsub></iq>`)
	got = events(modern.rec.Take())
	if r := got["items "+NSBookmarks]; len(r) != 2 || !strings.HasPrefix(r[0], "retract:") || !strings.HasPrefix(r[1], "retract:") {
		t.Errorf("modern resource got %v", got)
	}
	page, _ := e.nodes.GetPubSubItems(context.Background(), sdk.PubSubItemQuery{Service: "alice@example.com", Node: NSBookmarks, Max: 10})
	if page.Count != 1 || page.Items[0].ID != "lobby@conference.example.com" {
		t.Errorf("bookmarks left %+v", page)
	}
	old.fails(`<iq type='set' id='s'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'><conference jid='not a jid@@'/></storage></query></iq>`, "bad-request", "")
}

func TestAvatarHashInPresence(t *testing.T) {
	e := newEnv(t, DefaultLimits)
	alice := e.login("alice@example.com/pc")
	bob := e.login("bob@example.com/pc")
	subscribe(alice, bob)
	bob.online()
	alice.online()
	photo := func(c *client, from string) (string, bool) {
		t.Helper()
		for _, el := range c.rec.Take() {
			if el.Local == "presence" && el.Attr("from") == from && el.Attr("type") == "" {
				x := el.Child(nsVCardPhoto, "x")
				if x == nil {
					return "", false
				}
				return x.Child(nsVCardPhoto, "photo").Text(), true
			}
		}
		t.Fatalf("no presence from %s", from)
		return "", false
	}
	bob.rec.Take()
	// No PEP avatar: the client's own vCard hash stands.
	alice.send(`<presence><x xmlns='vcard-temp:x:update'><photo>vcardhash</photo></x></presence>`)
	if h, _ := photo(bob, "alice@example.com/pc"); h != "vcardhash" {
		t.Errorf("hash without a PEP avatar %q", h)
	}
	// Publishing the avatar sends presence with its hash at once.
	alice.ok(publishMeta("pephash"))
	if h, _ := photo(bob, "alice@example.com/pc"); h != "pephash" {
		t.Errorf("hash after a PEP avatar %q", h)
	}
	alice.send(`<presence><x xmlns='vcard-temp:x:update'><photo>vcardhash</photo></x></presence>`)
	if h, _ := photo(bob, "alice@example.com/pc"); h != "pephash" {
		t.Errorf("hash in the client's next presence %q", h)
	}
	alice.send(`<presence><show>away</show></presence>`)
	if h, ok := photo(bob, "alice@example.com/pc"); !ok || h != "pephash" {
		t.Errorf("hash in presence without one %q %v", h, ok)
	}
	// An empty metadata item removes the avatar: an empty photo.
	alice.ok(`<iq type='set' id='p'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:avatar:metadata'><item id='none'><metadata xmlns='urn:xmpp:avatar:metadata'/></item></publish></pubsub></iq>`)
	if h, ok := photo(bob, "alice@example.com/pc"); !ok || h != "" {
		t.Errorf("hash after removing the avatar %q %v", h, ok)
	}
	// Publishing the same avatar again sends nothing new.
	alice.ok(`<iq type='set' id='p'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:avatar:metadata'><item id='none'><metadata xmlns='urn:xmpp:avatar:metadata'/></item></publish></pubsub></iq>`)
	for _, el := range bob.rec.Take() {
		if el.Local == "presence" {
			t.Errorf("presence for an unchanged avatar: %s", el)
		}
	}
}

func TestService(t *testing.T) {
	e := newEnv(t, Limits{MaxItems: 20, DefaultMaxItems: 5, MaxNodes: 1, MaxItemBytes: 1000})
	if _, err := RegisterService(hclog.NewNullLogger(), Limits{MaxItems: 20, DefaultMaxItems: 5, MaxNodes: 1, MaxItemBytes: 1000}, e.m, "example.com"); err != nil {
		t.Fatal(err)
	}
	alice := e.login("alice@example.com/pc")
	bob := e.login("bob@example.com/pc")
	alice.online()
	bob.online()
	alice.rec.Take()
	bob.rec.Take()

	// The server lists the service; it says what it is.
	r := alice.ok(`<iq type='get' id='d' to='example.com'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`)
	if it := r.FirstChild().FirstChild(); it == nil || it.Attr("jid") != "pubsub.example.com" {
		t.Fatalf("server items %s", r)
	}
	r = alice.ok(`<iq type='get' id='d' to='pubsub.example.com'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	if id := r.FirstChild().FirstChild(); id.Attr("category") != "pubsub" || id.Attr("type") != "service" {
		t.Fatalf("service info %s", r)
	}

	// An instant node, then bob subscribes and hears of a publish.
	r = alice.ok(`<iq type='set' id='c' to='pubsub.example.com'><pubsub xmlns='http://jabber.org/protocol/pubsub'><create/></pubsub></iq>`)
	node := r.FirstChild().FirstChild().Attr("node")
	if node == "" {
		t.Fatalf("instant node %s", r)
	}
	alice.fails(`<iq type='set' id='c' to='pubsub.example.com'><pubsub xmlns='http://jabber.org/protocol/pubsub'><create node='second'/></pubsub></iq>`, "not-allowed", "max-nodes-exceeded")
	alice.fails(`<iq type='set' id='c' to='pubsub.example.com'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='`+node+`'><x xmlns='jabber:x:data' type='submit'><field var='pubsub#access_model'><value>presence</value></field></x></configure></pubsub></iq>`, "not-acceptable", "unsupported-access-model")
	bob.ok(`<iq type='set' id='s' to='pubsub.example.com'><pubsub xmlns='http://jabber.org/protocol/pubsub'><subscribe node='` + node + `' jid='bob@example.com/pc'/></pubsub></iq>`)
	alice.ok(`<iq type='set' id='p' to='pubsub.example.com'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='` + node + `'><item id='n1'><entry xmlns='http://www.w3.org/2005/Atom'>news</entry></item></publish></pubsub></iq>`)
	got := bob.rec.Take()
	if ev := events(got)["items "+node]; len(ev) != 1 || ev[0] != "item:n1" || got[0].Attr("from") != "pubsub.example.com" {
		t.Fatalf("bob got %v", got)
	}
	// Bob may not publish to alice's node nor delete it.
	bob.fails(`<iq type='set' id='p' to='pubsub.example.com'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='`+node+`'><item><x xmlns='urn:x'/></item></publish></pubsub></iq>`, "forbidden", "")
	bob.fails(`<iq type='set' id='p' to='pubsub.example.com'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><delete node='`+node+`'/></pubsub></iq>`, "forbidden", "")
	r = bob.ok(`<iq type='get' id='i' to='pubsub.example.com'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='` + node + `'/></pubsub></iq>`)
	if it := r.FirstChild().FirstChild().FirstChild(); it == nil || it.Attr("id") != "n1" {
		t.Fatalf("items %s", r)
	}
	r = bob.ok(`<iq type='get' id='d' to='pubsub.example.com'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`)
	if it := r.FirstChild().FirstChild(); it == nil || it.Attr("node") != node {
		t.Fatalf("service items %s", r)
	}
	// Nodes of the service live in the host's store under its domain.
	if _, err := e.nodes.GetPubSubNode(context.Background(), "pubsub.example.com", node); err != nil {
		t.Fatal(err)
	}
	bob.fails(`<iq type='get' id='x' to='nobody@pubsub.example.com'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='x'/></pubsub></iq>`, "item-not-found", "")
}

// brokenPublish is a store whose publishes fail, as a backend that went
// away between two calls.
type brokenPublish struct{ *memory.PubSub }

func (brokenPublish) PublishPubSubItem(context.Context, string, string, sdk.PubSubItem, int) error {
	return errors.New("connection reset")
}

func TestFailedPublishLeavesNothing(t *testing.T) {
	e := newEnv(t, DefaultLimits)
	e.m.Host("example.com").PubSub.Backend = brokenPublish{e.nodes}
	alice := e.login("alice@example.com/pc")
	alice.online()
	alice.fails(publishMeta("h1"), "internal-server-error", "")
	if nodes, _ := e.nodes.ListPubSubNodes(context.Background(), "alice@example.com"); len(nodes) != 0 {
		t.Fatalf("nodes left by a failed publish: %v", nodes)
	}
}

func TestAccountRemovalDeletesPEP(t *testing.T) {
	e := newEnv(t, DefaultLimits)
	alice := e.login("alice@example.com/pc")
	alice.online()
	alice.ok(publishMeta("h1"))
	if err := modules.RemoveAccountData(context.Background(), e.m.Host("example.com"), "alice@example.com"); err != nil {
		t.Fatal(err)
	}
	if nodes, _ := e.nodes.ListPubSubNodes(context.Background(), "alice@example.com"); len(nodes) != 0 {
		t.Fatalf("PEP nodes left after removing the account: %v", nodes)
	}
}
