package contactinfo

import (
	"testing"

	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/core/xmlstream"
)

type registrar struct {
	forms []func(*modules.Host) *xmlstream.Element
}

func (r *registrar) AddServerInfo(f func(*modules.Host) *xmlstream.Element) {
	r.forms = append(r.forms, f)
}

func TestForm(t *testing.T) {
	got := Form(map[string][]string{
		"support": {"https://example.com/help"},
		"abuse":   {"mailto:abuse@example.com", "xmpp:abuse@example.com"},
	}).String()
	want := `<x xmlns='jabber:x:data' type='result'>` +
		`<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/network/serverinfo</value></field>` +
		`<field var='abuse-addresses' type='list-multi'><value>mailto:abuse@example.com</value><value>xmpp:abuse@example.com</value></field>` +
		`<field var='support-addresses' type='list-multi'><value>https://example.com/help</value></field></x>`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestRegister(t *testing.T) {
	r := &registrar{}
	Register(nil, r)
	if len(r.forms) != 0 {
		t.Fatal("a form registered without addresses")
	}
	Register(map[string][]string{"admin": {"xmpp:admin@example.com"}}, r)
	if len(r.forms) != 1 || r.forms[0](nil).Child("jabber:x:data", "field") == nil {
		t.Fatalf("registered %d forms", len(r.forms))
	}
}
