package e2e

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// PEP (XEP-0163) between real clients over real sockets: avatars
// (XEP-0084) seen by a contact, bookmarks (XEP-0402) shared by two
// resources, an OMEMO device list and bundle (XEP-0384) published by one
// client and fetched by another, and the +notify filtering of entity
// capabilities (XEP-0115).

const (
	nsPubSubEvent  = "http://jabber.org/protocol/pubsub#event"
	nsPubSubErrors = "http://jabber.org/protocol/pubsub#errors"
	nsAvatarData   = "urn:xmpp:avatar:data"
	nsAvatarMeta   = "urn:xmpp:avatar:metadata"
	nsBookmarks2   = "urn:xmpp:bookmarks:1"
	nsOMEMO        = "urn:xmpp:omemo:2"
	omemoDevices   = "urn:xmpp:omemo:2:devices"
	omemoBundles   = "urn:xmpp:omemo:2:bundles"
)

// publishOptions is a XEP-0223 publish-options form with fields.
func publishOptions(fields map[string]string) string {
	s := "<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>"
	for k, v := range fields {
		s += "<field var='" + k + "'><value>" + v + "</value></field>"
	}
	return s + "</x></publish-options>"
}

// publish publishes payload as item id of node on c's own PEP service.
func publish(t *testing.T, c *client, node, id, payload, options string) {
	t.Helper()
	r := c.iq("<iq type='set'><pubsub xmlns='" + nsPubSub + "'><publish node='" + node + "'><item id='" + id + "'>" + payload + "</item></publish>" + options + "</pubsub></iq>")
	if r.attr("type") != "result" {
		t.Fatalf("%s: publish to %s: %s", c.jid, node, r)
	}
}

// isEvent matches a PEP notification from owner about node whose first
// item (or retract, with kind "retract") has id. The client library
// shows the reader's own bare JID as an empty from: owner is then "".
func isEvent(owner, node, kind, id string) func(*element) bool {
	return func(e *element) bool {
		items := e.path("event", "items")
		if !e.is("", "message") || e.attr("from") != owner || items == nil || items.attr("node") != node {
			return false
		}
		it := items.child(nsPubSubEvent, kind)
		return it != nil && (id == "" || it.attr("id") == id)
	}
}

func isAnyEvent(e *element) bool {
	return e.is("", "message") && e.child(nsPubSubEvent, "event") != nil
}

// items fetches a node's items from owner's PEP service as c.
func items(c *client, owner, node, inner string) *element {
	return c.iq("<iq type='get' to='" + owner + "'><pubsub xmlns='" + nsPubSub + "'><items node='" + node + "'>" + inner + "</items></pubsub></iq>")
}

func TestPEPAvatar(t *testing.T) {
	t.Parallel()
	srv := startServer(t, defaultOptions())
	const pw = "pw-pep"
	for _, u := range []string{"alice", "bob", "carol"} {
		srv.addUser(t, u+"@localhost", pw)
	}
	local := dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}
	alice := login(t, local, "alice@localhost/pc", pw)
	bob := login(t, local, "bob@localhost/pc", pw)
	subscribeBoth(t, alice, bob)
	bob.announceCaps(nsAvatarMeta + "+notify")
	alice.expect("bob's presence with caps", isPresence("", "bob@localhost/pc"))
	// A second resource of bob's announces nothing: it hears nothing.
	bobQuiet := login(t, local, "bob@localhost/quiet", pw)
	bobQuiet.send("<presence/>")
	carol := login(t, local, "carol@localhost/pc", pw)
	carol.announceCaps(nsAvatarMeta + "+notify")

	// The server's and the account's disco say PEP.
	r := bob.iq("<iq type='get' to='alice@localhost'><query xmlns='" + nsDiscoInfo + "'/></iq>")
	if id := r.path("query", "identity"); !hasIdentity(r, "pubsub", "pep") || !hasFeature(r, nsPubSub+"#publish") || !hasFeature(r, nsPubSub+"#publish-options") {
		t.Fatalf("alice's account disco: %s (%v)", r, id)
	}

	png := []byte("\x89PNG\r\n\x1a\nkoi avatar bytes")
	sum := sha1.Sum(png)
	hash := hex.EncodeToString(sum[:])
	b64 := base64.StdEncoding.EncodeToString(png)
	publish(t, alice, nsAvatarData, hash, "<data xmlns='"+nsAvatarData+"'>"+b64+"</data>", "")
	publish(t, alice, nsAvatarMeta, hash, "<metadata xmlns='"+nsAvatarMeta+"'><info bytes='"+strconv.Itoa(len(png))+"' id='"+hash+"' height='1' width='1' type='image/png'/></metadata>", "")

	// Bob hears of the metadata (not of the data, which he did not ask
	// for), then fetches the data by its id.
	ev := bob.expect("avatar metadata notification", isEvent("alice@localhost", nsAvatarMeta, "item", hash))
	if info := ev.path("event", "items", "item", "metadata", "info"); info == nil || info.attr("id") != hash {
		t.Fatalf("notification %s", ev)
	}
	bob.expectNone("a data notification", 300*time.Millisecond, isEvent("alice@localhost", nsAvatarData, "item", ""))
	r = items(bob, "alice@localhost", nsAvatarData, "<item id='"+hash+"'/>")
	data := r.path("pubsub", "items", "item", "data")
	if data == nil || strings.TrimSpace(data.Text) != b64 {
		t.Fatalf("avatar data: %s", r)
	}
	bobQuiet.expectNone("notification without +notify", 300*time.Millisecond, isAnyEvent)
	// Carol is no contact: nothing comes, and the node is closed to her.
	carol.expectNone("notification to a stranger", 300*time.Millisecond, isAnyEvent)
	r = items(carol, "alice@localhost", nsAvatarMeta, "")
	if _, cond := r.stanzaError(); cond != "not-authorized" || r.child("", "error").child(nsPubSubErrors, "presence-subscription-required") == nil {
		t.Errorf("stranger reading the metadata: %s", r)
	}
	// And nobody writes to alice's PEP but alice.
	r = bob.iq("<iq type='set' to='alice@localhost'><pubsub xmlns='" + nsPubSub + "'><publish node='" + nsAvatarMeta + "'><item id='x'><metadata xmlns='" + nsAvatarMeta + "'/></item></publish></pubsub></iq>")
	if _, cond := r.stanzaError(); cond != "forbidden" {
		t.Errorf("bob publishing to alice's PEP: %s", r)
	}

	// A session of bob's that comes later gets the current avatar at once
	// (XEP-0163 §4.3.2).
	bob2 := login(t, local, "bob@localhost/phone", pw)
	bob2.announceCaps(nsAvatarMeta + "+notify")
	bob2.expect("last avatar metadata on presence", isEvent("alice@localhost", nsAvatarMeta, "item", hash))
}

func TestPEPBookmarks(t *testing.T) {
	t.Parallel()
	srv := startServer(t, defaultOptions())
	const pw = "pw-bookmarks"
	for _, u := range []string{"alice", "bob"} {
		srv.addUser(t, u+"@localhost", pw)
	}
	local := dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}
	a := login(t, local, "alice@localhost/desktop", pw)
	b := login(t, local, "alice@localhost/phone", pw)
	bob := login(t, local, "bob@localhost/pc", pw)
	subscribeBoth(t, a, bob)
	a.announceCaps(nsBookmarks2 + "+notify")
	b.announceCaps(nsBookmarks2 + "+notify")
	bob.announceCaps(nsBookmarks2 + "+notify")

	// XEP-0402 §3: each conference one item, private to the account.
	opts := publishOptions(map[string]string{
		"pubsub#persist_items": "true", "pubsub#access_model": "whitelist",
		"pubsub#max_items": "max", "pubsub#send_last_published_item": "never",
	})
	publish(t, a, nsBookmarks2, "theplay@conference.localhost",
		"<conference xmlns='"+nsBookmarks2+"' name='The Play' autojoin='true'><nick>JC</nick></conference>", opts)
	ev := b.expect("bookmark notification on the other resource", isEvent("", nsBookmarks2, "item", "theplay@conference.localhost"))
	if c := ev.path("event", "items", "item", "conference"); c == nil || c.attr("name") != "The Play" || c.attr("autojoin") != "true" {
		t.Fatalf("bookmark notification %s", ev)
	}
	a.expect("bookmark notification on the publishing resource", isEvent("", nsBookmarks2, "item", "theplay@conference.localhost"))
	publish(t, b, nsBookmarks2, "orchard@conference.localhost",
		"<conference xmlns='"+nsBookmarks2+"' name='Orchard'/>", opts)
	a.expect("the phone's bookmark", isEvent("", nsBookmarks2, "item", "orchard@conference.localhost"))

	// Both resources read the same list; bob, a contact, neither hears
	// nor reads it.
	for _, c := range []*client{a, b} {
		r := items(c, "", nsBookmarks2, "")
		var got []string
		for _, it := range r.path("pubsub", "items").children(nsPubSub, "item") {
			got = append(got, it.attr("id"))
		}
		if strings.Join(got, " ") != "orchard@conference.localhost theplay@conference.localhost" {
			t.Errorf("%s: bookmarks %q (%s)", c.jid, got, r)
		}
	}
	bob.expectNone("alice's bookmarks", 300*time.Millisecond, isAnyEvent)
	r := items(bob, "alice@localhost", nsBookmarks2, "")
	if _, cond := r.stanzaError(); cond != "not-allowed" {
		t.Errorf("bob reading alice's bookmarks: %s", r)
	}

	// Publish-options that contradict the node fail, with nothing stored.
	r = a.iq("<iq type='set'><pubsub xmlns='" + nsPubSub + "'><publish node='" + nsBookmarks2 + "'><item id='x@conference.localhost'><conference xmlns='" + nsBookmarks2 + "'/></item></publish>" +
		publishOptions(map[string]string{"pubsub#access_model": "open"}) + "</pubsub></iq>")
	if _, cond := r.stanzaError(); cond != "conflict" || r.child("", "error").child(nsPubSubErrors, "precondition-not-met") == nil {
		t.Errorf("mismatched publish-options: %s", r)
	}

	// Removing a bookmark tells the other resource (notify='true').
	if r := a.iq("<iq type='set'><pubsub xmlns='" + nsPubSub + "'><retract node='" + nsBookmarks2 + "' notify='true'><item id='theplay@conference.localhost'/></retract></pubsub></iq>"); r.attr("type") != "result" {
		t.Fatalf("retract: %s", r)
	}
	b.expect("retraction on the other resource", isEvent("", nsBookmarks2, "retract", "theplay@conference.localhost"))
	r = items(b, "", nsBookmarks2, "")
	if its := r.path("pubsub", "items").children(nsPubSub, "item"); len(its) != 1 || its[0].attr("id") != "orchard@conference.localhost" {
		t.Errorf("bookmarks after retraction: %s", r)
	}

	// The pubsub backend keeps them across a restart, and an old client
	// reads them as XEP-0048 private XML.
	a.close()
	b.close()
	bob.close()
	srv.stop(t)
	launch(t, srv.dir, srv.config, srv.c2s, srv.c2sTLS, srv.opt, nil)
	c := login(t, local, "alice@localhost/old", pw)
	r = c.iq("<iq type='get'><query xmlns='" + nsPrivate + "'><storage xmlns='storage:bookmarks'/></query></iq>")
	conf := r.path("query", "storage", "conference")
	if conf == nil || conf.attr("jid") != "orchard@conference.localhost" || conf.attr("name") != "Orchard" {
		t.Errorf("bookmarks as private XML after a restart: %s", r)
	}
}

func TestPEPOMEMO(t *testing.T) {
	t.Parallel()
	srv := startServer(t, defaultOptions())
	const pw = "pw-omemo"
	for _, u := range []string{"juliet", "romeo"} {
		srv.addUser(t, u+"@localhost", pw)
	}
	local := dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}
	juliet := login(t, local, "juliet@localhost/balcony", pw)
	romeo := login(t, local, "romeo@localhost/orchard", pw)
	subscribeBoth(t, juliet, romeo)
	romeo.announceCaps(omemoDevices + "+notify")

	// XEP-0384 §5.3.1 and §5.3.2, the examples of the specification.
	open := publishOptions(map[string]string{"pubsub#access_model": "open"})
	publish(t, juliet, omemoDevices, "current",
		"<devices xmlns='"+nsOMEMO+"'><device id='12345'/><device id='4223' label='Gajim on Ubuntu Linux'/></devices>", open)
	bundle := "<bundle xmlns='" + nsOMEMO + "'><spk id='0'>BASE64ENCODED</spk><spks>BASE64ENCODED</spks><ik>BASE64ENCODED</ik>" +
		"<prekeys><pk id='0'>BASE64ENCODED</pk><pk id='1'>BASE64ENCODED</pk><pk id='2'>BASE64ENCODED</pk></prekeys></bundle>"
	publish(t, juliet, omemoBundles, "12345", bundle, publishOptions(map[string]string{"pubsub#access_model": "open", "pubsub#max_items": "max"}))

	ev := romeo.expect("device list notification", isEvent("juliet@localhost", omemoDevices, "item", "current"))
	devs := ev.path("event", "items", "item", "devices").children(nsOMEMO, "device")
	if len(devs) != 2 || devs[0].attr("id") != "12345" || devs[1].attr("label") != "Gajim on Ubuntu Linux" {
		t.Fatalf("device list %s", ev)
	}
	// Romeo fetches the bundle of each device.
	r := items(romeo, "juliet@localhost", omemoBundles, "<item id='12345'/>")
	b := r.path("pubsub", "items", "item", "bundle")
	if b == nil || b.child(nsOMEMO, "ik") == nil || len(b.path("prekeys").children(nsOMEMO, "pk")) != 3 {
		t.Fatalf("bundle %s", r)
	}
	// A second device's bundle is a second item of the same node.
	publish(t, juliet, omemoBundles, "4223", strings.ReplaceAll(bundle, "spk id='0'", "spk id='7'"), "")
	r = items(romeo, "juliet@localhost", omemoBundles, "")
	if its := r.path("pubsub", "items").children(nsPubSub, "item"); len(its) != 2 {
		t.Fatalf("both bundles: %s", r)
	}
	// Open nodes are open to anyone: a stranger may start a session too.
	srv.addUser(t, "mercutio@localhost", pw)
	mercutio := login(t, local, "mercutio@localhost/x", pw)
	r = items(mercutio, "juliet@localhost", omemoDevices, "")
	if r.path("pubsub", "items", "item", "devices") == nil {
		t.Errorf("stranger reading an open device list: %s", r)
	}
}

func hasIdentity(r *element, category, typ string) bool {
	for _, id := range r.child(nsDiscoInfo, "query").children(nsDiscoInfo, "identity") {
		if id.attr("category") == category && id.attr("type") == typ {
			return true
		}
	}
	return false
}

// TestPEPSlixmpp runs Debian's python3-slixmpp with its own XEP-0084,
// XEP-0163, XEP-0115, XEP-0048, XEP-0049 and XEP-0223 plugins: an avatar
// published by one client reaches a contact through caps +notify and is
// fetched; bookmarks stored as private XML are read by a second resource
// through PEP, both as XEP-0048 storage and as XEP-0402 items.
func TestPEPSlixmpp(t *testing.T) {
	t.Parallel()
	needSlixmpp(t, "slixmpp.plugins.xep_0084", "slixmpp.plugins.xep_0048", "slixmpp.plugins.xep_0223")
	srv := startServer(t, defaultOptions())
	const pw = "pw-slix-pep"
	srv.addUser(t, "alice@localhost", pw)
	srv.addUser(t, "bob@localhost", pw)
	local := dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}
	a := login(t, local, "alice@localhost/setup", pw)
	b := login(t, local, "bob@localhost/setup", pw)
	subscribeBoth(t, a, b)
	a.close()
	b.close()

	host, port, _ := net.SplitHostPort(srv.c2s)
	portN, _ := strconv.Atoi(port)
	args, _ := json.Marshal(map[string]any{
		"alice": "alice@localhost", "bob": "bob@localhost", "password": pw, "host": host, "port": portN,
		"ca_file": filepath.Join(srv.dir, "tls", "cert.pem"),
	})
	cmd := exec.Command(debianPython, filepath.Join("testdata", "slixmpp_pep.py"), string(args))
	var stderr syncBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), "OK") {
		t.Fatalf("slixmpp: %v; its output: %s\nits log:\n%s", err, out, stderr.String())
	}
}

// TestPubSubService covers the service on pubsub.localhost (XEP-0060)
// and limits over the wire: the server lists the service, a user creates
// a node, another subscribes and hears of a publish; an item over the
// size limit (half the test's 8 KiB stanza limit) is refused whole.
func TestPubSubService(t *testing.T) {
	t.Parallel()
	srv := startServer(t, defaultOptions())
	const pw = "pw-pubsub"
	for _, u := range []string{"alice", "bob"} {
		srv.addUser(t, u+"@localhost", pw)
	}
	local := dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}
	alice := login(t, local, "alice@localhost/pc", pw)
	bob := login(t, local, "bob@localhost/pc", pw)

	r := alice.iq("<iq type='get' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
	found := false
	for _, it := range r.path("query").Children {
		found = found || it.attr("jid") == "pubsub.localhost"
	}
	if !found {
		t.Fatalf("server disco#items without the pubsub service: %s", r)
	}
	r = alice.iq("<iq type='get' to='pubsub.localhost'><query xmlns='" + nsDiscoInfo + "'/></iq>")
	if !hasIdentity(r, "pubsub", "service") || !hasFeature(r, nsPubSub+"#create-nodes") {
		t.Fatalf("service disco#info: %s", r)
	}
	if r := alice.iq("<iq type='set' to='pubsub.localhost'><pubsub xmlns='" + nsPubSub + "'><create node='koi-news'/></pubsub></iq>"); r.attr("type") != "result" {
		t.Fatalf("create: %s", r)
	}
	if r := bob.iq("<iq type='set' to='pubsub.localhost'><pubsub xmlns='" + nsPubSub + "'><subscribe node='koi-news' jid='bob@localhost/pc'/></pubsub></iq>"); r.path("pubsub", "subscription").attr("subscription") != "subscribed" {
		t.Fatalf("subscribe: %s", r)
	}
	if r := alice.iq("<iq type='set' to='pubsub.localhost'><pubsub xmlns='" + nsPubSub + "'><publish node='koi-news'><item id='n1'><entry xmlns='http://www.w3.org/2005/Atom'><title>koi 1.0</title></entry></item></publish></pubsub></iq>"); r.attr("type") != "result" {
		t.Fatalf("publish: %s", r)
	}
	bob.expect("the service's notification", isEvent("pubsub.localhost", "koi-news", "item", "n1"))

	big := strings.Repeat("x", 5000)
	r = alice.iq("<iq type='set' to='pubsub.localhost'><pubsub xmlns='" + nsPubSub + "'><publish node='koi-news'><item id='big'><entry xmlns='http://www.w3.org/2005/Atom'>" + big + "</entry></item></publish></pubsub></iq>")
	if _, cond := r.stanzaError(); cond != "not-acceptable" || r.child("", "error").child(nsPubSubErrors, "payload-too-big") == nil {
		t.Errorf("oversized item: %s", r)
	}
	r = bob.iq("<iq type='set' to='pubsub.localhost'><pubsub xmlns='" + nsPubSub + "'><publish node='koi-news'><item id='evil'><entry xmlns='http://www.w3.org/2005/Atom'/></item></publish></pubsub></iq>")
	if _, cond := r.stanzaError(); cond != "forbidden" {
		t.Errorf("bob publishing to alice's node: %s", r)
	}
	r = bob.iq("<iq type='get' to='pubsub.localhost'><pubsub xmlns='" + nsPubSub + "'><items node='koi-news'/></pubsub></iq>")
	if its := r.path("pubsub", "items").children(nsPubSub, "item"); len(its) != 1 || its[0].attr("id") != "n1" {
		t.Errorf("items after the refused publishes: %s", r)
	}
	bob.expectNone("notification of a refused publish", 300*time.Millisecond, isAnyEvent)
}
