package ldapbackend

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/koi-im/koi/internal/testsvc"
	"github.com/koi-im/koi/sdk"
)

// vcard is the part of vcard-temp the tests read.
type vcard struct {
	XMLName xml.Name `xml:"vcard-temp vCard"`
	FN      string   `xml:"FN"`
	Family  string   `xml:"N>FAMILY"`
	Given   string   `xml:"N>GIVEN"`
	Email   []string `xml:"EMAIL>USERID"`
	Tel     []string `xml:"TEL>NUMBER"`
	Title   string   `xml:"TITLE"`
	OrgName string   `xml:"ORG>ORGNAME"`
	OrgUnit string   `xml:"ORG>ORGUNIT"`
	JID     string   `xml:"JABBERID"`
	Type    string   `xml:"PHOTO>TYPE"`
	Binval  string   `xml:"PHOTO>BINVAL"`
}

func getVCard(t *testing.T, d *Directory, owner string) vcard {
	t.Helper()
	s, err := d.GetVCard(ctxT(t), owner)
	if err != nil {
		t.Fatalf("GetVCard(%s): %v", owner, err)
	}
	var v vcard
	if err := xml.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("vCard of %s is not vcard-temp XML: %v\n%s", owner, err, s)
	}
	return v
}

// photoOf reads a binary attribute straight from the directory.
func photoOf(t *testing.T, d *Directory, dn, attr string) []byte {
	t.Helper()
	e, err := d.readEntry(ctxT(t), dn, []string{attr})
	if err != nil {
		t.Fatal(err)
	}
	return e.GetRawAttributeValue(attr)
}

func TestVCard(t *testing.T) {
	d := open(t, slapdSettings(t))
	v := getVCard(t, d, "alice@localhost")
	want := vcard{
		XMLName: v.XMLName, FN: "Alice Liddell", Family: "alice", Given: "Alice", Email: []string{"alice@example.org"},
		Tel: []string{"+1 555 0100"}, Title: "Engineer", OrgName: "Example", OrgUnit: "Research",
		JID: "alice@localhost", Type: "image/jpeg", Binval: v.Binval,
	}
	if !equalVCard(v, want) {
		t.Errorf("alice's vCard:\n got %+v\nwant %+v", v, want)
	}
	photo, err := base64.StdEncoding.DecodeString(v.Binval)
	if err != nil || !bytes.Equal(photo, photoOf(t, d, "uid=alice,"+testsvc.SlapdPeople, "jpegPhoto")) {
		t.Errorf("photo is not alice's jpegPhoto (%v)", err)
	}
	if j := getVCard(t, d, "jürgen@localhost"); j.FN != "Jürgen Müller" || j.Binval != "" || len(j.Email) != 1 {
		t.Errorf("jürgen's vCard: %+v", j)
	}
	for _, owner := range []string{"nobody@localhost", "*@localhost", "alice)(uid=*@localhost"} {
		if _, err := d.GetVCard(ctxT(t), owner); !errors.Is(err, sdk.ErrNotFound) {
			t.Errorf("GetVCard(%s): %v, want ErrNotFound", owner, err)
		}
	}
	if _, err := d.GetVCard(ctxT(t), "alice"); !errors.Is(err, sdk.ErrInvalid) {
		t.Errorf("GetVCard of a malformed owner: %v", err)
	}
}

func equalVCard(a, b vcard) bool {
	return a.FN == b.FN && a.Family == b.Family && a.Given == b.Given && strings.Join(a.Email, ",") == strings.Join(b.Email, ",") &&
		strings.Join(a.Tel, ",") == strings.Join(b.Tel, ",") && a.Title == b.Title && a.OrgName == b.OrgName &&
		a.OrgUnit == b.OrgUnit && a.JID == b.JID && a.Type == b.Type && a.Binval == b.Binval
}

// The mapping is configurable: fields can move to other attributes or go.
func TestVCardMapping(t *testing.T) {
	s := slapdSettings(t)
	s.VCard = map[string][]string{"fn": {"cn"}, "photo": nil, "title": {"description", "title"}, "email": {}}
	d := open(t, s)
	v := getVCard(t, d, "alice@localhost")
	if v.FN != "alice" || v.Binval != "" || v.Title != "Engineer" || len(v.Email) != 0 || v.Given != "Alice" {
		t.Errorf("remapped vCard: %+v", v)
	}
}

// Values a directory may hold that XML cannot are cleaned, not passed on.
func TestVCardHostileValues(t *testing.T) {
	a := admin(t)
	uid := randomName()
	dn := "uid=" + uid + "," + testsvc.SlapdPeople
	add := ldap.NewAddRequest(dn, nil)
	add.Attribute("objectClass", []string{"inetOrgPerson"})
	add.Attribute("uid", []string{uid})
	add.Attribute("cn", []string{uid})
	add.Attribute("sn", []string{"x"})
	add.Attribute("displayName", []string{"<b>&'\"</b>\x01\x1b]]>"})
	add.Attribute("title", []string{"</TITLE><FN>evil</FN>"})
	if err := a.Add(add); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Del(ldap.NewDelRequest(dn, nil)) })
	s := slapdSettings(t)
	s.SharedGroups = []string{"cn=research," + testsvc.SlapdGroups}
	d := open(t, s)
	v := getVCard(t, d, uid+"@localhost")
	if v.FN != "<b>&'\"</b>]]>" || v.Title != "</TITLE><FN>evil</FN>" {
		t.Errorf("hostile values: FN %q, TITLE %q", v.FN, v.Title)
	}
	// The same name as a roster item's name is cleaned too.
	mod := ldap.NewModifyRequest("cn=research,"+testsvc.SlapdGroups, nil)
	mod.Add("member", []string{dn})
	if err := a.Modify(mod); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		mod := ldap.NewModifyRequest("cn=research,"+testsvc.SlapdGroups, nil)
		mod.Delete("member", []string{dn})
		a.Modify(mod)
	})
	st := getRoster(t, d, "alice@localhost")
	if got := contacts(st); !slices.Contains(got, uid+"@localhost|<b>&'\"</b>]]>|both|research") {
		t.Errorf("roster with a hostile name: %q", got)
	}
}
