package pubsub

import (
	"context"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// The XEP-0398 conversion on the module server with the sql backend's
// vCards and PEP in memory.

var (
	testPNG    = []byte("\x89PNG\r\n\x1a\nkoi vcard avatar")
	testPNGB64 = base64.StdEncoding.EncodeToString(testPNG)
	testPNGID  = sha1Hex(testPNG)
)

// wrapped breaks s into the 76-column lines vCard clients send.
func wrapped(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\n ")
		s = s[76:]
	}
	return b.String() + s
}

func vcardSet(inner string) string {
	return `<iq type='set' id='v'><vCard xmlns='vcard-temp'>` + inner + `</vCard></iq>`
}

const vcardGetTo = `<iq type='get' id='g' to='alice@example.com'><vCard xmlns='vcard-temp'/></iq>`

// photoOf returns the BINVAL (or EXTVAL) and TYPE of a vCard get result,
// ok false when it has no PHOTO.
func photoOf(t *testing.T, r *xmlstream.Element) (val, typ string, ok bool) {
	t.Helper()
	v := r.Child(nsVCard, "vCard")
	if v == nil {
		t.Fatalf("no vCard in %s", r)
	}
	ph := v.Child(nsVCard, "PHOTO")
	if ph == nil {
		return "", "", false
	}
	if ty := ph.Child(nsVCard, "TYPE"); ty != nil {
		typ = ty.Text()
	}
	for _, k := range []string{"BINVAL", "EXTVAL"} {
		if b := ph.Child(nsVCard, k); b != nil {
			return b.Text(), typ, true
		}
	}
	return "", typ, true
}

func TestVCardPhotoBecomesPEPAvatar(t *testing.T) {
	e := newEnv(t, DefaultLimits)
	ctx := context.Background()
	alice := e.login("alice@example.com/pc")
	bob := e.login("bob@example.com/pc")
	carol := e.login("carol@example.com/pc")
	subscribe(alice, bob)
	alice.online()
	bob.online(nsMeta + "+notify")
	for _, c := range []*client{alice, bob, carol} {
		c.rec.Take()
	}

	r := alice.ok(`<iq type='get' id='d'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	found := false
	for _, f := range r.FirstChild().Elements() {
		found = found || f.Attr("var") == NSVCardConversion
	}
	if !found {
		t.Fatalf("account disco without %s: %s", NSVCardConversion, r)
	}

	alice.ok(vcardSet(`<FN>Alice</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>` + wrapped(testPNGB64+testPNGB64+testPNGB64) + `</BINVAL></PHOTO>`))
	img := append(append(append([]byte{}, testPNG...), testPNG...), testPNG...)
	b64, id := base64.StdEncoding.EncodeToString(img), sha1Hex(img)

	// PEP holds the image and its metadata, open to anyone.
	page, err := e.nodes.GetPubSubItems(ctx, sdk.PubSubItemQuery{Service: "alice@example.com", Node: NSAvatarData, Max: 5})
	if err != nil || len(page.Items) != 1 || page.Items[0].ID != id || !strings.Contains(page.Items[0].Payload, ">"+b64+"<") {
		t.Fatalf("data node %+v %v", page, err)
	}
	page, err = e.nodes.GetPubSubItems(ctx, sdk.PubSubItemQuery{Service: "alice@example.com", Node: NSAvatarMeta, Max: 5})
	if err != nil || len(page.Items) != 1 || page.Items[0].ID != id {
		t.Fatalf("metadata node %+v %v", page, err)
	}
	md, _ := parsePayload(page.Items[0].Payload)
	if info := md.Child(NSAvatarMeta, "info"); info == nil || info.Attr("id") != id || info.Attr("bytes") != strconv.Itoa(len(img)) || info.Attr("type") != "image/png" {
		t.Fatalf("metadata %s", md)
	}
	for _, node := range []string{NSAvatarData, NSAvatarMeta} {
		n, err := e.nodes.GetPubSubNode(ctx, "alice@example.com", node)
		if err != nil || loadConfig(n.Config, true, DefaultLimits).accessModel() != AccessOpen {
			t.Errorf("%s: %+v %v", node, n, err)
		}
	}
	// The contact hears of it, and of the new hash in presence.
	var notified, hashed bool
	for _, el := range bob.rec.Take() {
		notified = notified || events([]*xmlstream.Element{el})["items "+nsMeta] != nil
		if x := el.Child(nsVCardPhoto, "x"); el.Local == "presence" && x != nil {
			hashed = x.Child(nsVCardPhoto, "photo").Text() == id
		}
	}
	if !notified || !hashed {
		t.Errorf("bob: notified %v, hash in presence %v", notified, hashed)
	}
	// The vCard is stored without the photo, which PEP holds; every
	// vCard get shows it (the nodes are open).
	stored, err := e.st.GetVCard(ctx, "alice@example.com")
	if err != nil || strings.Contains(stored, "PHOTO") || !strings.Contains(stored, "Alice") {
		t.Errorf("stored vCard %q %v", stored, err)
	}
	for _, c := range []*client{alice, bob, carol} {
		r := c.ok(vcardGetTo)
		if val, typ, ok := photoOf(t, r); !ok || val != b64 || typ != "image/png" {
			t.Errorf("%s's vCard get: %s", c.s.JID(), r)
		}
		if fn := r.FirstChild().Child(nsVCard, "FN"); fn == nil || fn.Text() != "Alice" {
			t.Errorf("%s's vCard get lost FN: %s", c.s.JID(), r)
		}
	}

	// The same photo again publishes nothing; a vCard without a PHOTO
	// removes the avatar.
	alice.ok(vcardSet(`<FN>Alice A.</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>` + b64 + `</BINVAL></PHOTO>`))
	if got := events(bob.rec.Take()); len(got) != 0 {
		t.Errorf("re-setting the same photo notified %v", got)
	}
	alice.ok(vcardSet(`<FN>Alice A.</FN>`))
	md2, _ := e.nodes.GetPubSubItems(ctx, sdk.PubSubItemQuery{Service: "alice@example.com", Node: NSAvatarMeta, Max: 1})
	if a := avatarOf(md2.Items[0]); a.hash != "" {
		t.Errorf("avatar after a vCard without PHOTO: %+v", md2.Items[0])
	}
	if _, _, ok := photoOf(t, bob.ok(vcardGetTo)); ok {
		t.Errorf("PHOTO after its removal")
	}
	// Without a type, the image's own says.
	alice.ok(vcardSet(`<PHOTO><BINVAL>` + testPNGB64 + `</BINVAL></PHOTO>`))
	if _, typ, _ := photoOf(t, bob.ok(vcardGetTo)); typ != "image/png" {
		t.Errorf("sniffed type %q", typ)
	}
}

func TestPEPAvatarInVCard(t *testing.T) {
	e := newEnv(t, DefaultLimits)
	ctx := context.Background()
	alice := e.login("alice@example.com/pc")
	bob := e.login("bob@example.com/pc")
	carol := e.login("carol@example.com/pc")
	subscribe(alice, bob)
	// A vCard of the vCard era, with a photo of its own.
	if err := e.st.SetVCard(ctx, "alice@example.com", `<vCard xmlns='vcard-temp'><FN>Alice</FN><PHOTO><TYPE>image/gif</TYPE><BINVAL>R0lGODlh</BINVAL></PHOTO></vCard>`); err != nil {
		t.Fatal(err)
	}
	if val, _, _ := photoOf(t, bob.ok(vcardGetTo)); val != "R0lGODlh" {
		t.Fatalf("vCard-only photo %q", val)
	}

	// A PEP avatar (presence access model, the PEP default) replaces it
	// for those who may see it.
	alice.ok(`<iq type='set' id='d'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:avatar:data'><item id='` + testPNGID + `'><data xmlns='urn:xmpp:avatar:data'>` + testPNGB64 + `</data></item></publish></pubsub></iq>`)
	alice.ok(`<iq type='set' id='m'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:avatar:metadata'><item id='` + testPNGID + `'><metadata xmlns='urn:xmpp:avatar:metadata'><info id='` + testPNGID + `' bytes='22' type='image/png' url='https://example.com/a.png'/><info id='` + testPNGID + `' bytes='22' type='image/png'/></metadata></item></publish></pubsub></iq>`)
	for _, c := range []*client{alice, bob} {
		if val, typ, ok := photoOf(t, c.ok(vcardGetTo)); !ok || val != testPNGB64 || typ != "image/png" {
			t.Errorf("%s sees PHOTO %q %q %v", c.s.JID(), val, typ, ok)
		}
	}
	// Carol may not read the nodes: no photo at all, not the old one.
	if val, _, ok := photoOf(t, carol.ok(vcardGetTo)); ok {
		t.Errorf("stranger sees PHOTO %q", val)
	}

	// Metadata that only links to the image gives an EXTVAL.
	alice.ok(`<iq type='set' id='m'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:avatar:metadata'><item id='linked'><metadata xmlns='urn:xmpp:avatar:metadata'><info id='linked' bytes='22' type='image/png' url='https://example.com/a.png'/></metadata></item></publish></pubsub></iq>`)
	if val, _, ok := photoOf(t, bob.ok(vcardGetTo)); !ok || val != "https://example.com/a.png" {
		t.Errorf("linked avatar PHOTO %q %v", val, ok)
	}
	// Data whose hash is not its id is not shown.
	alice.ok(`<iq type='set' id='d'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:avatar:data'><item id='0000000000000000000000000000000000000000'><data xmlns='urn:xmpp:avatar:data'>` + testPNGB64 + `</data></item></publish></pubsub></iq>`)
	alice.ok(publishMeta("0000000000000000000000000000000000000000"))
	if val, _, ok := photoOf(t, bob.ok(vcardGetTo)); ok {
		t.Errorf("PHOTO from data that is not the image its id names: %q", val)
	}
	// An avatar removed in PEP leaves no PHOTO.
	alice.ok(`<iq type='set' id='m'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:avatar:metadata'><item id='current'><metadata xmlns='urn:xmpp:avatar:metadata'/></item></publish></pubsub></iq>`)
	if val, _, ok := photoOf(t, alice.ok(vcardGetTo)); ok {
		t.Errorf("PHOTO after the avatar's removal: %q", val)
	}
}

func TestVCardAvatarBadInput(t *testing.T) {
	lim := DefaultLimits
	lim.MaxItemBytes = 200
	e := newEnv(t, lim)
	ctx := context.Background()
	alice := e.login("alice@example.com/pc")
	nothingStored := func(what string) {
		t.Helper()
		if nodes, err := e.nodes.ListPubSubNodes(ctx, "alice@example.com"); err != nil || len(nodes) != 0 {
			t.Errorf("%s: PEP nodes %+v %v", what, nodes, err)
		}
		if v, err := e.st.GetVCard(ctx, "alice@example.com"); !errors.Is(err, sdk.ErrNotFound) {
			t.Errorf("%s: vCard stored %q %v", what, v, err)
		}
	}
	alice.fails(vcardSet(`<FN>A</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>not base64!</BINVAL></PHOTO>`), "bad-request", "")
	nothingStored("invalid base64")
	alice.fails(vcardSet(`<FN>A</FN><PHOTO><BINVAL>`+strings.Repeat("QUFB", 60)+`</BINVAL></PHOTO>`), "not-acceptable", "payload-too-big")
	nothingStored("oversized photo")

	// A PHOTO by URL stays in the vCard and leaves PEP alone.
	alice.ok(vcardSet(`<PHOTO><EXTVAL>https://example.com/a.png</EXTVAL></PHOTO>`))
	if nodes, _ := e.nodes.ListPubSubNodes(ctx, "alice@example.com"); len(nodes) != 0 {
		t.Errorf("EXTVAL published %+v", nodes)
	}
	if val, _, _ := photoOf(t, alice.ok(vcardGetTo)); val != "https://example.com/a.png" {
		t.Errorf("EXTVAL photo %q", val)
	}

	// A read-only vCard backend: the set is refused before PEP hears of
	// it, and a PEP avatar still shows in the vCard.
	e.m.Host("example.com").VCard.Writable = false
	alice.fails(vcardSet(`<PHOTO><BINVAL>`+testPNGB64+`</BINVAL></PHOTO>`), "not-allowed", "")
	if nodes, _ := e.nodes.ListPubSubNodes(ctx, "alice@example.com"); len(nodes) != 0 {
		t.Errorf("read-only vCard published %+v", nodes)
	}
	alice.ok(`<iq type='set' id='d'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:avatar:data'><item id='` + testPNGID + `'><data xmlns='urn:xmpp:avatar:data'>` + testPNGB64 + `</data></item></publish></pubsub></iq>`)
	alice.ok(publishMeta(testPNGID))
	if val, _, _ := photoOf(t, alice.ok(vcardGetTo)); val != testPNGB64 {
		t.Errorf("read-only vCard with a PEP avatar: PHOTO %q", val)
	}
}
