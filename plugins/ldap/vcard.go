package ldapbackend

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"

	"github.com/koi-im/koi/sdk"
)

// GetVCard implements sdk.VCard: a vcard-temp document (XEP-0054) made
// from the owner's directory entry, field by field as the vcard setting
// maps them. An owner the directory does not know has no vCard.
func (d *Directory) GetVCard(ctx context.Context, owner string) (string, error) {
	local, _, ok := splitOwner(owner)
	if !ok {
		return "", fmt.Errorf("%w: owner %q is not a bare JID", sdk.ErrInvalid, owner)
	}
	u, found, err := d.lookup(ctx, local, d.vcardAttributes()...)
	if err != nil {
		return "", err
	}
	if !found {
		return "", sdk.ErrNotFound
	}
	return d.buildVCard(owner, u.entry), nil
}

// vcardAttributes lists every attribute some vCard field may read.
func (d *Directory) vcardAttributes() []string {
	seen := map[string]bool{}
	var out []string
	for _, attrs := range d.s.VCard {
		for _, a := range attrs {
			if !seen[strings.ToLower(a)] {
				seen[strings.ToLower(a)] = true
				out = append(out, a)
			}
		}
	}
	sort.Strings(out)
	return out
}

// first returns the values of the first of field's attributes that e has.
func (d *Directory) first(e *ldap.Entry, field string) []string {
	return firstText(e, d.s.VCard[field])
}

// firstText returns the values of the first of attrs that e has with a
// non-empty value, cleaned for XML; nil if none has.
func firstText(e *ldap.Entry, attrs []string) []string {
	for _, a := range attrs {
		var vs []string
		for _, v := range e.GetEqualFoldAttributeValues(a) {
			if v = cleanText(v); v != "" {
				vs = append(vs, v)
			}
		}
		if len(vs) > 0 {
			return vs
		}
	}
	return nil
}

func (d *Directory) firstRaw(e *ldap.Entry, field string) []byte {
	for _, a := range d.s.VCard[field] {
		if v := e.GetEqualFoldRawAttributeValue(a); len(v) > 0 {
			return v
		}
	}
	return nil
}

func (d *Directory) buildVCard(owner string, e *ldap.Entry) string {
	var b strings.Builder
	b.WriteString(`<vCard xmlns="vcard-temp">`)
	one := func(field string) string {
		if vs := d.first(e, field); len(vs) > 0 {
			return vs[0]
		}
		return ""
	}
	text := func(tag, v string) {
		if v == "" {
			return
		}
		b.WriteString("<" + tag + ">")
		xml.EscapeText(&b, []byte(v))
		b.WriteString("</" + tag + ">")
	}
	text("FN", one("fn"))
	if family, given := one("family"), one("given"); family != "" || given != "" {
		b.WriteString("<N>")
		text("FAMILY", family)
		text("GIVEN", given)
		b.WriteString("</N>")
	}
	text("NICKNAME", one("nickname"))
	for _, m := range d.first(e, "email") {
		b.WriteString("<EMAIL><INTERNET/>")
		text("USERID", m)
		b.WriteString("</EMAIL>")
	}
	for _, t := range d.first(e, "tel") {
		b.WriteString("<TEL><WORK/><VOICE/>")
		text("NUMBER", t)
		b.WriteString("</TEL>")
	}
	text("TITLE", one("title"))
	text("ROLE", one("role"))
	if org, unit := one("org"), one("orgunit"); org != "" || unit != "" {
		b.WriteString("<ORG>")
		text("ORGNAME", org)
		text("ORGUNIT", unit)
		b.WriteString("</ORG>")
	}
	text("JABBERID", owner)
	if photo := d.firstRaw(e, "photo"); len(photo) > 0 {
		b.WriteString("<PHOTO>")
		if t := http.DetectContentType(photo); strings.HasPrefix(t, "image/") {
			text("TYPE", t)
		}
		text("BINVAL", base64.StdEncoding.EncodeToString(photo))
		b.WriteString("</PHOTO>")
	}
	b.WriteString("</vCard>")
	return b.String()
}

// cleanText makes a directory value fit for XML 1.0: valid UTF-8, no
// control characters other than tab and newlines, trimmed.
func cleanText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	clean := true
	for _, r := range s {
		if !xmlChar(r) {
			clean = false
			break
		}
	}
	if !clean {
		s = strings.Map(func(r rune) rune {
			if xmlChar(r) {
				return r
			}
			return -1
		}, s)
	}
	return strings.TrimSpace(s)
}

// xmlChar reports whether r may appear in XML 1.0 text.
func xmlChar(r rune) bool {
	return r == '\t' || r == '\n' || r == '\r' ||
		(r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= utf8.MaxRune)
}
