package e2e

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The XEP-0479 (Compliance Suites 2023) rows of the Server and Advanced
// Server levels that rest on PEP and PubSub, against a real koi with the
// mellium client: for each row, the disco features it requires and a
// round trip that uses them. A failing row names itself in the subtest.

const (
	nsTune           = "http://jabber.org/protocol/tune"
	nsVCardUpdate    = "vcard-temp:x:update"
	nsVCardConvert   = "urn:xmpp:pep-vcard-conversion:0"
	nsBookmarksOld   = "storage:bookmarks"
	nsBookmarkCompat = "urn:xmpp:bookmarks:1#compat"
	nsBookmarkPEP    = "urn:xmpp:bookmarks:1#compat-pep"
	nsBookmarkConv   = "urn:xmpp:bookmarks-conversion:0"
)

// complianceWorld is one server and its clients, shared by the rows in
// order: alice publishes, bob is her contact, carol a stranger.
type complianceWorld struct {
	srv               *server
	local             dialOpts
	pw                string
	alice, bob, carol *client
	server, account   *element // disco#info of localhost and of alice's account (as alice)
}

type complianceRow struct {
	xep, feature string
	// server and account are the disco#info features the row needs on
	// the domain and on the account.
	server, account []string
	roundTrip       func(t *testing.T, w *complianceWorld)
}

var complianceRows = []complianceRow{
	{xep: "XEP-0115", feature: "Feature broadcasts (Core, Advanced Server)", roundTrip: caps115},
	{xep: "XEP-0163", feature: "Event publishing (Core, Advanced Server)", account: pepFeatures163, roundTrip: pep163},
	{xep: "XEP-0060", feature: "Event publishing: PubSub on the service (subset)", roundTrip: pubsub60},
	{xep: "XEP-0084", feature: "User Avatars", account: []string{nsPubSub + "#publish", nsPubSub + "#retrieve-items"}, roundTrip: avatar84},
	{xep: "XEP-0054", feature: "vcard-temp (IM Server)", server: []string{nsVCard}, roundTrip: vcard54},
	{xep: "XEP-0398, XEP-0153", feature: "User Avatar Compatibility (IM Advanced Server)", server: []string{nsVCard}, account: []string{nsVCardConvert}, roundTrip: avatarCompat398},
	{xep: "XEP-0223", feature: "Persistent Storage of Private Data via PubSub", account: []string{nsPubSub + "#publish-options", nsPubSub + "#access-whitelist"}, roundTrip: private223},
	{xep: "XEP-0049", feature: "Private XML Storage", server: []string{nsPrivate}, roundTrip: private49},
	{xep: "XEP-0402, XEP-0048, XEP-0411", feature: "Advanced Group Chat: bookmarks", account: []string{nsBookmarkCompat, nsBookmarkPEP, nsBookmarkConv}, roundTrip: bookmarks402},
	{xep: "XEP-0384", feature: "OMEMO key distribution over PEP (not a 0479 row; what it needs of PEP)", account: []string{nsPubSub + "#access-open", nsPubSub + "#publish-options"}, roundTrip: omemo384},
}

// pepFeatures163 are what XEP-0163 §8 and XEP-0479's note on the
// pubsub JID ask of an account.
var pepFeatures163 = func() []string {
	var out []string
	for _, f := range []string{"access-presence", "auto-create", "auto-subscribe", "config-node", "create-and-configure",
		"create-nodes", "filtered-notifications", "persistent-items", "publish", "retrieve-items", "subscribe",
		"delete-items", "retract-items", "last-published", "presence-notifications"} {
		out = append(out, nsPubSub+"#"+f)
	}
	return append(out, nsPubSub)
}()

func TestCompliance2023PEP(t *testing.T) {
	t.Parallel()
	srv := startServer(t, defaultOptions())
	w := &complianceWorld{srv: srv, pw: "pw-compliance", local: dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}}
	for _, u := range []string{"alice", "bob", "carol"} {
		srv.addUser(t, u+"@localhost", w.pw)
	}
	w.alice = login(t, w.local, "alice@localhost/pc", w.pw)
	w.bob = login(t, w.local, "bob@localhost/pc", w.pw)
	w.carol = login(t, w.local, "carol@localhost/pc", w.pw)
	subscribeBoth(t, w.alice, w.bob)
	w.alice.announceCaps(nsBookmarks2+"+notify", nsAvatarMeta+"+notify")
	w.bob.announceCaps(nsAvatarMeta+"+notify", nsTune+"+notify", omemoDevices+"+notify")
	w.carol.announceCaps(nsAvatarMeta+"+notify", nsTune+"+notify")
	w.server = w.alice.iq("<iq type='get' to='localhost'><query xmlns='" + nsDiscoInfo + "'/></iq>")
	w.account = w.alice.iq("<iq type='get' to='alice@localhost'><query xmlns='" + nsDiscoInfo + "'/></iq>")

	for _, row := range complianceRows {
		t.Run(strings.ReplaceAll(row.xep, ", ", "+"), func(t *testing.T) {
			for _, f := range row.server {
				if !hasFeature(w.server, f) {
					t.Errorf("%s (%s): the server's disco#info lacks %s", row.xep, row.feature, f)
				}
			}
			for _, f := range row.account {
				if !hasFeature(w.account, f) {
					t.Errorf("%s (%s): the account's disco#info lacks %s", row.xep, row.feature, f)
				}
			}
			row.roundTrip(t, w)
		})
	}
}

// caps115: the server asks a client for capabilities it does not know
// (announceCaps waits for that), and sends PEP notifications by what
// they say: a new set without +notify for a node stops them.
func caps115(t *testing.T, w *complianceWorld) {
	publish(t, w.alice, nsTune, "t1", "<tune xmlns='"+nsTune+"'><title>Koi Pond</title></tune>", "")
	w.bob.expect("tune notification by caps", isEvent("alice@localhost", nsTune, "item", "t1"))
	w.bob.announceCaps(nsAvatarMeta+"+notify", omemoDevices+"+notify")
	publish(t, w.alice, nsTune, "t2", "<tune xmlns='"+nsTune+"'><title>Koi Pond II</title></tune>", "")
	w.bob.expectNone("a tune notification without tune+notify", 300*time.Millisecond, isEvent("alice@localhost", nsTune, "item", ""))
	w.carol.expectNone("a notification to a stranger", 300*time.Millisecond, isEvent("alice@localhost", nsTune, "item", ""))
	w.bob.announceCaps(nsAvatarMeta+"+notify", nsTune+"+notify", omemoDevices+"+notify", "urn:koi:e2e:again")
	// Announcing the feature again brings the last item (XEP-0163 §4.3.2).
	w.bob.expect("last tune on the new caps", isEvent("alice@localhost", nsTune, "item", "t2"))
}

// pep163: the account is a PEP service with the pep identity; a node is
// created on first publish and a contact's new session gets its last
// item on presence.
func pep163(t *testing.T, w *complianceWorld) {
	if !hasIdentity(w.account, "pubsub", "pep") {
		t.Errorf("account without the pubsub/pep identity: %s", w.account)
	}
	bob2 := login(t, w.local, "bob@localhost/tablet", w.pw)
	defer bob2.close()
	bob2.announceCaps(nsTune + "+notify")
	bob2.expect("last tune for a new session", isEvent("alice@localhost", nsTune, "item", "t2"))
	// PEP nodes keep one item unless configured: t2 replaced t1.
	r := items(w.bob, "alice@localhost", nsTune, "")
	if its := r.path("pubsub", "items").children(nsPubSub, "item"); len(its) != 1 || its[0].attr("id") != "t2" {
		t.Errorf("contact retrieving items: %s", r)
	}
	r = items(w.carol, "alice@localhost", nsTune, "")
	if _, cond := r.stanzaError(); cond != "not-authorized" {
		t.Errorf("stranger reading a presence-access node: %s", r)
	}
}

// pubsub60: the server lists its pubsub service; a node is created, a
// subscriber hears of a publish and reads the item.
func pubsub60(t *testing.T, w *complianceWorld) {
	r := w.alice.iq("<iq type='get' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
	found := false
	for _, it := range r.path("query").Children {
		found = found || it.attr("jid") == "pubsub.localhost"
	}
	if !found {
		t.Fatalf("server disco#items without pubsub.localhost: %s", r)
	}
	r = w.alice.iq("<iq type='get' to='pubsub.localhost'><query xmlns='" + nsDiscoInfo + "'/></iq>")
	for _, f := range []string{"create-nodes", "publish", "subscribe", "retrieve-items", "config-node", "delete-nodes"} {
		if !hasFeature(r, nsPubSub+"#"+f) {
			t.Errorf("pubsub.localhost lacks #%s", f)
		}
	}
	if r := w.alice.iq("<iq type='set' to='pubsub.localhost'><pubsub xmlns='" + nsPubSub + "'><create node='compliance'/></pubsub></iq>"); r.attr("type") != "result" {
		t.Fatalf("create: %s", r)
	}
	if r := w.carol.iq("<iq type='set' to='pubsub.localhost'><pubsub xmlns='" + nsPubSub + "'><subscribe node='compliance' jid='carol@localhost/pc'/></pubsub></iq>"); r.path("pubsub", "subscription").attr("subscription") != "subscribed" {
		t.Fatalf("subscribe: %s", r)
	}
	if r := w.alice.iq("<iq type='set' to='pubsub.localhost'><pubsub xmlns='" + nsPubSub + "'><publish node='compliance'><item id='c1'><entry xmlns='http://www.w3.org/2005/Atom'><title>row</title></entry></item></publish></pubsub></iq>"); r.attr("type") != "result" {
		t.Fatalf("publish: %s", r)
	}
	w.carol.expect("the service's notification", isEvent("pubsub.localhost", "compliance", "item", "c1"))
	r = items(w.carol, "pubsub.localhost", "compliance", "")
	if it := r.path("pubsub", "items", "item"); it.attr("id") != "c1" {
		t.Errorf("items: %s", r)
	}
}

// complianceImage is a small PNG-looking image and its XEP-0084 id.
func complianceImage(tag string) (raw []byte, b64, id string) {
	raw = []byte("\x89PNG\r\n\x1a\ncompliance " + tag)
	sum := sha1.Sum(raw)
	return raw, base64.StdEncoding.EncodeToString(raw), hex.EncodeToString(sum[:])
}

// avatar84: data then metadata; the contact hears of the metadata and
// fetches the data by id.
func avatar84(t *testing.T, w *complianceWorld) {
	raw, b64, id := complianceImage("pep")
	publish(t, w.alice, nsAvatarData, id, "<data xmlns='"+nsAvatarData+"'>"+b64+"</data>", "")
	publish(t, w.alice, nsAvatarMeta, id, "<metadata xmlns='"+nsAvatarMeta+"'><info bytes='"+strconv.Itoa(len(raw))+"' id='"+id+"' type='image/png'/></metadata>", "")
	ev := w.bob.expect("avatar metadata", isEvent("alice@localhost", nsAvatarMeta, "item", id))
	if ev.path("event", "items", "item", "metadata", "info").attr("bytes") != strconv.Itoa(len(raw)) {
		t.Errorf("metadata %s", ev)
	}
	r := items(w.bob, "alice@localhost", nsAvatarData, "<item id='"+id+"'/>")
	if d := r.path("pubsub", "items", "item", "data"); d == nil || strings.TrimSpace(d.Text) != b64 {
		t.Errorf("avatar data: %s", r)
	}
}

// vcard54: a vCard set is what another user gets.
func vcard54(t *testing.T, w *complianceWorld) {
	if r := w.carol.iq("<iq type='set'><vCard xmlns='vcard-temp'><FN>Carol</FN><NICKNAME>c</NICKNAME></vCard></iq>"); r.attr("type") != "result" {
		t.Fatalf("vCard set: %s", r)
	}
	r := w.bob.iq("<iq type='get' to='carol@localhost'><vCard xmlns='vcard-temp'/></iq>")
	if fn := r.path("vCard", "FN"); fn == nil || fn.Text != "Carol" {
		t.Errorf("vCard get: %s", r)
	}
}

// photoHash returns the XEP-0153 hash a presence carries.
func photoHash(p *element) string {
	return strings.TrimSpace(textOf(p.child(nsVCardUpdate, "x").child(nsVCardUpdate, "photo")))
}

// hasPhotoHash matches available presence from full with the hash.
func hasPhotoHash(full, hash string) func(*element) bool {
	return func(e *element) bool { return isPresence("", full)(e) && photoHash(e) == hash }
}

// textOf is e's text, "" for no element.
func textOf(e *element) string {
	if e == nil {
		return ""
	}
	return e.Text
}

// avatarCompat398: the PEP avatar of avatar84 is the PHOTO of alice's
// vCard and the hash in her presence, directed presence to a room
// included (§4); a vCard set with a new photo becomes the PEP avatar
// that the contact hears of.
func avatarCompat398(t *testing.T, w *complianceWorld) {
	_, b64, id := complianceImage("pep")
	r := w.bob.iq("<iq type='get' to='alice@localhost'><vCard xmlns='vcard-temp'/></iq>")
	if bin := r.path("vCard", "PHOTO", "BINVAL"); bin == nil || strings.TrimSpace(bin.Text) != b64 {
		t.Errorf("vCard of a PEP avatar: %s", r)
	}
	// The avatar's publish sent alice's presence again with its hash.
	w.bob.expect("alice's presence with the PEP avatar's hash", hasPhotoHash("alice@localhost/pc", id))
	self := joinRoom(w.alice, "compliance@"+mucDomain+"/alice", "")
	if self.attr("type") == "error" {
		t.Fatalf("room join: %s", self)
	}
	if h := photoHash(self); h != id {
		t.Errorf("hash in the room presence %q, want %q: %s", h, id, self)
	}

	raw, b64, id2 := complianceImage("vcard")
	if r := w.alice.iq("<iq type='set'><vCard xmlns='vcard-temp'><FN>Alice</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>" + b64 + "</BINVAL></PHOTO></vCard></iq>"); r.attr("type") != "result" {
		t.Fatalf("vCard set with a photo: %s", r)
	}
	ev := w.bob.expect("metadata of the vCard photo", isEvent("alice@localhost", nsAvatarMeta, "item", id2))
	if info := ev.path("event", "items", "item", "metadata", "info"); info.attr("id") != id2 || info.attr("bytes") != strconv.Itoa(len(raw)) || info.attr("type") != "image/png" {
		t.Errorf("metadata %s", ev)
	}
	w.bob.expect("presence with the vCard photo's hash", hasPhotoHash("alice@localhost/pc", id2))
	r = items(w.bob, "alice@localhost", nsAvatarData, "<item id='"+id2+"'/>")
	if d := r.path("pubsub", "items", "item", "data"); d == nil || strings.TrimSpace(d.Text) != b64 {
		t.Errorf("data of the vCard photo: %s", r)
	}
	// Removing the avatar in PEP empties the vCard's PHOTO.
	publish(t, w.alice, nsAvatarMeta, "current", "<metadata xmlns='"+nsAvatarMeta+"'/>", "")
	r = w.bob.iq("<iq type='get' to='alice@localhost'><vCard xmlns='vcard-temp'/></iq>")
	if r.path("vCard", "PHOTO") != nil || textOf(r.path("vCard", "FN")) != "Alice" {
		t.Errorf("vCard after the avatar's removal: %s", r)
	}
}

// private223: a node whose publish-options make it private, which a
// contact cannot read and a contradicting publish cannot change.
func private223(t *testing.T, w *complianceWorld) {
	const node = "urn:koi:compliance:settings"
	opts := publishOptions(map[string]string{"pubsub#persist_items": "true", "pubsub#access_model": "whitelist"})
	publish(t, w.alice, node, "current", "<settings xmlns='urn:koi:compliance'>dark</settings>", opts)
	r := items(w.alice, "alice@localhost", node, "")
	if s := r.path("pubsub", "items", "item", "settings"); s == nil || s.Text != "dark" {
		t.Errorf("own private node: %s", r)
	}
	r = items(w.bob, "alice@localhost", node, "")
	if _, cond := r.stanzaError(); cond != "not-allowed" {
		t.Errorf("contact reading a whitelist node: %s", r)
	}
	r = w.alice.iq("<iq type='set'><pubsub xmlns='" + nsPubSub + "'><publish node='" + node + "'><item id='current'><settings xmlns='urn:koi:compliance'>light</settings></item></publish>" +
		publishOptions(map[string]string{"pubsub#access_model": "open"}) + "</pubsub></iq>")
	if _, cond := r.stanzaError(); cond != "conflict" || r.child("", "error").child(nsPubSubErrors, "precondition-not-met") == nil {
		t.Errorf("contradicting publish-options: %s", r)
	}
}

// private49: private XML comes back to its owner only.
func private49(t *testing.T, w *complianceWorld) {
	if r := w.alice.iq("<iq type='set'><query xmlns='" + nsPrivate + "'><notes xmlns='http://example.org/compliance/notes'>koi</notes></query></iq>"); r.attr("type") != "result" {
		t.Fatalf("private set: %s", r)
	}
	r := w.alice.iq("<iq type='get'><query xmlns='" + nsPrivate + "'><notes xmlns='http://example.org/compliance/notes'/></query></iq>")
	if n := r.path("query", "notes"); n == nil || n.Text != "koi" {
		t.Errorf("private get: %s", r)
	}
	r = w.bob.iq("<iq type='get' to='alice@localhost'><query xmlns='" + nsPrivate + "'><notes xmlns='http://example.org/compliance/notes'/></query></iq>")
	if r.attr("type") != "error" {
		t.Errorf("another user's private XML: %s", r)
	}
}

// bookmarks402: XEP-0048 bookmarks stored as private XML are XEP-0402
// items, and the reverse.
func bookmarks402(t *testing.T, w *complianceWorld) {
	r := w.alice.iq("<iq type='set'><query xmlns='" + nsPrivate + "'><storage xmlns='" + nsBookmarksOld + "'><conference jid='old@" + mucDomain + "' name='Old' autojoin='true'><nick>al</nick></conference></storage></query></iq>")
	if r.attr("type") != "result" {
		t.Fatalf("XEP-0048 set: %s", r)
	}
	w.alice.expect("XEP-0402 notification of the converted bookmark", isEvent("", nsBookmarks2, "item", "old@"+mucDomain))
	r = items(w.alice, "", nsBookmarks2, "")
	c := r.path("pubsub", "items", "item", "conference")
	if c == nil || c.attr("name") != "Old" || c.attr("autojoin") != "true" || textOf(c.path("nick")) != "al" {
		t.Errorf("XEP-0402 items of XEP-0048 bookmarks: %s", r)
	}
	publish(t, w.alice, nsBookmarks2, "new@"+mucDomain, "<conference xmlns='"+nsBookmarks2+"' name='New'/>",
		publishOptions(map[string]string{"pubsub#access_model": "whitelist", "pubsub#max_items": "max", "pubsub#persist_items": "true", "pubsub#send_last_published_item": "never"}))
	r = w.alice.iq("<iq type='get'><query xmlns='" + nsPrivate + "'><storage xmlns='" + nsBookmarksOld + "'/></query></iq>")
	var jids []string
	for _, conf := range r.path("query", "storage").children(nsBookmarksOld, "conference") {
		jids = append(jids, conf.attr("jid"))
	}
	slices.Sort(jids)
	if strings.Join(jids, " ") != "new@"+mucDomain+" old@"+mucDomain {
		t.Errorf("XEP-0048 view of XEP-0402 bookmarks %v: %s", jids, r)
	}
	r = items(w.bob, "alice@localhost", nsBookmarks2, "")
	if _, cond := r.stanzaError(); cond != "not-allowed" {
		t.Errorf("contact reading bookmarks: %s", r)
	}
}

// omemo384: an open device list reaches the contact by +notify and a
// stranger reads the bundle.
func omemo384(t *testing.T, w *complianceWorld) {
	open := publishOptions(map[string]string{"pubsub#access_model": "open"})
	publish(t, w.alice, omemoDevices, "current", "<devices xmlns='"+nsOMEMO+"'><device id='31415'/></devices>", open)
	w.bob.expect("device list", isEvent("alice@localhost", omemoDevices, "item", "current"))
	publish(t, w.alice, omemoBundles, "31415", "<bundle xmlns='"+nsOMEMO+"'><spk id='0'>AA==</spk><spks>AA==</spks><ik>AA==</ik><prekeys><pk id='1'>AA==</pk></prekeys></bundle>",
		publishOptions(map[string]string{"pubsub#access_model": "open", "pubsub#max_items": "max"}))
	r := items(w.carol, "alice@localhost", omemoBundles, "<item id='31415'/>")
	if r.path("pubsub", "items", "item", "bundle", "ik") == nil {
		t.Errorf("stranger fetching an open bundle: %s", r)
	}
}
