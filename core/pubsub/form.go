package pubsub

import (
	"fmt"
	"strings"

	"github.com/koi-im/koi/core/xmlstream"
)

// NSData is data forms (XEP-0004).
const NSData = "jabber:x:data"

// form is a submitted data form: its type and its fields' values by var.
type form struct {
	typ      string
	formType string // the FORM_TYPE field's value
	fields   map[string][]string
	order    []string // field vars as given, FORM_TYPE excluded
}

// maxFormFields bounds a submitted form; real node forms have two dozen.
const maxFormFields = 64

// parseForm reads an <x xmlns='jabber:x:data'/>. A field without var, a
// repeated var or too many fields is an error.
func parseForm(x *xmlstream.Element) (*form, error) {
	if x == nil || x.Space != NSData || x.Local != "x" {
		return nil, fmt.Errorf("want a jabber:x:data form")
	}
	f := &form{typ: x.Attr("type"), fields: map[string][]string{}}
	switch f.typ {
	case "submit", "form", "result", "cancel":
	default:
		return nil, fmt.Errorf("form type %q", f.typ)
	}
	for _, fe := range x.Elements() {
		if fe.Space != NSData || fe.Local != "field" {
			continue
		}
		v := fe.Attr("var")
		if v == "" {
			return nil, fmt.Errorf("a field without var")
		}
		if _, dup := f.fields[v]; dup {
			return nil, fmt.Errorf("field %q given twice", v)
		}
		if len(f.fields) >= maxFormFields {
			return nil, fmt.Errorf("more than %d fields", maxFormFields)
		}
		vals := []string{}
		for _, ve := range fe.Elements() {
			if ve.Space == NSData && ve.Local == "value" {
				vals = append(vals, ve.Text())
			}
		}
		f.fields[v] = vals
		if v == "FORM_TYPE" {
			if len(vals) > 0 {
				f.formType = strings.TrimSpace(vals[0])
			}
			continue
		}
		f.order = append(f.order, v)
	}
	return f, nil
}

// formField describes one field of a form the service sends.
type formField struct {
	v, typ, label string
	options       []string
	values        []string
}

// buildForm renders a form of type typ ("form" or "result") with
// FORM_TYPE formType.
func buildForm(typ, formType string, fields []formField) *xmlstream.Element {
	x := xmlstream.NewElement(NSData, "x").SetAttr("type", typ)
	ft := xmlstream.NewElement(NSData, "field").SetAttr("var", "FORM_TYPE").SetAttr("type", "hidden")
	ft.AppendChild(xmlstream.NewElement(NSData, "value").AppendText(formType))
	x.AppendChild(ft)
	for _, f := range fields {
		fe := xmlstream.NewElement(NSData, "field").SetAttr("var", f.v)
		if f.typ != "" {
			fe.SetAttr("type", f.typ)
		}
		if f.label != "" {
			fe.SetAttr("label", f.label)
		}
		for _, o := range f.options {
			fe.AppendChild(xmlstream.NewElement(NSData, "option").
				AppendChild(xmlstream.NewElement(NSData, "value").AppendText(o)))
		}
		for _, v := range f.values {
			fe.AppendChild(xmlstream.NewElement(NSData, "value").AppendText(v))
		}
		x.AppendChild(fe)
	}
	return x
}

// parseBool reads an xs:boolean.
func parseBool(s string) (bool, bool) {
	switch strings.TrimSpace(s) {
	case "1", "true":
		return true, true
	case "0", "false":
		return false, true
	}
	return false, false
}
