package sdktest

import (
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/koi-im/koi/sdk"
)

// vcardDoc is a small vCard naming fn.
func vcardDoc(fn string) string {
	return "<vCard xmlns='vcard-temp'><FN>" + fn + "</FN></vCard>"
}

// largeVCard is a vCard of about size bytes, most of it a photo.
func largeVCard(size int) string {
	photo := make([]byte, size*3/4)
	for i := range photo {
		photo[i] = byte(i * 7)
	}
	return "<vCard xmlns='vcard-temp'><FN>Gro\u00dfes Foto \u5199\u771f</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>" +
		base64.StdEncoding.EncodeToString(photo) + "</BINVAL></PHOTO></vCard>"
}

func (e *env) vcard() sdk.VCard {
	e.t.Helper()
	v, ok := e.b.(sdk.VCard)
	if !ok {
		e.t.Fatal("vcard is declared but the backend does not implement sdk.VCard")
	}
	return v
}

func (e *env) vcardWriter() sdk.VCardWriter {
	e.t.Helper()
	v, ok := e.b.(sdk.VCardWriter)
	if !ok {
		e.t.Fatal("vcard is declared read-write but the backend does not implement sdk.VCardWriter")
	}
	return v
}

// wantVCard checks owner's vCard; want "" means none (sdk.ErrNotFound).
func (e *env) wantVCard(owner, want string) {
	e.t.Helper()
	got, err := e.vcard().GetVCard(e.ctx, owner)
	if want == "" {
		e.wantErr("GetVCard("+owner+") of no vCard", err, sdk.ErrNotFound)
		return
	}
	if e.noErr("GetVCard("+owner+")", err) && got != want {
		e.t.Errorf("GetVCard(%s) = %s, want %s", owner, abbrev(got), abbrev(want))
	}
}

// abbrev quotes s, shortened if long.
func abbrev(s string) string {
	if len(s) <= 120 {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q...(%d bytes)", s[:100], len(s))
}

func checkVCardNotFound(e *env) {
	e.wantVCard(e.owner("nobody"), "")
}

func checkVCardDocuments(e *env) {
	w := e.vcardWriter()
	owner, other := e.owner("alice"), e.owner("bob")
	small := vcardDoc("Zo\u00eb \u201cZ\u201d \u00c5str\u00f6m &amp; \u674e\u5c0f\u9f99 \U0001F3B8")
	e.ok("SetVCard", w.SetVCard(e.ctx, owner, small))
	e.wantVCard(owner, small)
	e.wantVCard(other, "")

	large := largeVCard(100 << 10)
	e.ok("SetVCard (replace, 100 KB)", w.SetVCard(e.ctx, owner, large))
	e.wantVCard(owner, large)

	e.ok("SetVCard of another owner", w.SetVCard(e.ctx, other, vcardDoc("Bob")))
	e.ok("DeleteVCard", w.DeleteVCard(e.ctx, owner))
	e.wantVCard(owner, "")
	e.wantVCard(other, vcardDoc("Bob"))

	e.ok("SetVCard after DeleteVCard", w.SetVCard(e.ctx, owner, small))
	e.wantVCard(owner, small)
}

func (e *env) private() sdk.Private {
	e.t.Helper()
	p, ok := e.b.(sdk.Private)
	if !ok {
		e.t.Fatal("private is declared but the backend does not implement sdk.Private")
	}
	return p
}

func (e *env) privateWriter() sdk.PrivateWriter {
	e.t.Helper()
	p, ok := e.b.(sdk.PrivateWriter)
	if !ok {
		e.t.Fatal("private is declared read-write but the backend does not implement sdk.PrivateWriter")
	}
	return p
}

// privateKey is where a private XML document is stored.
type privateKey struct{ name, ns string }

// wantPrivate checks the document under k; want "" means none
// (sdk.ErrNotFound).
func (e *env) wantPrivate(owner string, k privateKey, want string) {
	e.t.Helper()
	what := fmt.Sprintf("GetPrivate(%s, %q, %q)", owner, k.name, k.ns)
	got, err := e.private().GetPrivate(e.ctx, owner, k.name, k.ns)
	if want == "" {
		e.wantErr(what+" of no document", err, sdk.ErrNotFound)
		return
	}
	if e.noErr(what, err) && got != want {
		e.t.Errorf("%s = %s, want %s", what, abbrev(got), abbrev(want))
	}
}

func privateDoc(k privateKey, content string) string {
	return fmt.Sprintf("<%s xmlns='%s'>%s</%s>", k.name, k.ns, content, k.name)
}

func checkPrivateNotFound(e *env) {
	e.wantPrivate(e.owner("nobody"), privateKey{"storage", "storage:bookmarks"}, "")
}

func checkPrivateDocuments(e *env) {
	w := e.privateWriter()
	owner, other := e.owner("alice"), e.owner("bob")
	// The key is the pair: same name in two namespaces, two names in one.
	bookmarks := privateKey{"storage", "storage:bookmarks"}
	rosternotes := privateKey{"storage", "storage:rosternotes"}
	prefs := privateKey{"prefs", "storage:bookmarks"}
	docs := map[privateKey]string{
		bookmarks:   privateDoc(bookmarks, "<conference jid='r\u00e4um@muc.example' name='Caf\u00e9 \u2615' autojoin='true'/>"),
		rosternotes: privateDoc(rosternotes, "<note jid='a@b'>\u4f60\u597d</note>"),
		prefs:       privateDoc(prefs, strings.Repeat("<pref/>", 2000)),
	}
	for k, doc := range docs {
		e.ok("SetPrivate", w.SetPrivate(e.ctx, owner, k.name, k.ns, doc))
	}
	for k, doc := range docs {
		e.wantPrivate(owner, k, doc)
	}
	e.wantPrivate(owner, privateKey{"storage", "storage:other"}, "")
	e.wantPrivate(owner, privateKey{"other", "storage:bookmarks"}, "")
	e.wantPrivate(other, bookmarks, "")

	// Overwrite one; the others stay.
	docs[bookmarks] = privateDoc(bookmarks, "")
	e.ok("SetPrivate (replace)", w.SetPrivate(e.ctx, owner, bookmarks.name, bookmarks.ns, docs[bookmarks]))
	for k, doc := range docs {
		e.wantPrivate(owner, k, doc)
	}

	bobs := privateDoc(bookmarks, "<conference jid='bob@muc.example'/>")
	e.ok("SetPrivate of another owner", w.SetPrivate(e.ctx, other, bookmarks.name, bookmarks.ns, bobs))
	e.ok("DeletePrivate", w.DeletePrivate(e.ctx, owner))
	for k := range docs {
		e.wantPrivate(owner, k, "")
	}
	e.wantPrivate(other, bookmarks, bobs)
}
