// Package dataform reads and writes data forms (XEP-0004): the forms that
// ad-hoc commands, room configuration and node configuration exchange.
package dataform

import (
	"fmt"
	"strings"

	"github.com/koi-im/koi/core/xmlstream"
)

// NS is the namespace of data forms.
const NS = "jabber:x:data"

// maxFields bounds a submitted form: the forms koi sends have at most a
// few dozen fields.
const maxFields = 64

// Form is a submitted form: its type and its fields' values by var.
type Form struct {
	Type     string
	FormType string // the FORM_TYPE field's value
	Fields   map[string][]string
	Order    []string // the fields' vars as given, FORM_TYPE left out
}

// Value is the first value of field v, "" when it has none.
func (f *Form) Value(v string) string {
	if vals := f.Fields[v]; len(vals) > 0 {
		return vals[0]
	}
	return ""
}

// Parse reads an <x xmlns='jabber:x:data'/>. A field without var, a
// repeated var or too many fields is an error.
func Parse(x *xmlstream.Element) (*Form, error) {
	if x == nil || x.Space != NS || x.Local != "x" {
		return nil, fmt.Errorf("want a jabber:x:data form")
	}
	f := &Form{Type: x.Attr("type"), Fields: map[string][]string{}}
	switch f.Type {
	case "submit", "form", "result", "cancel":
	default:
		return nil, fmt.Errorf("form type %q", f.Type)
	}
	for _, fe := range x.Elements() {
		if fe.Space != NS || fe.Local != "field" {
			continue
		}
		v := fe.Attr("var")
		if v == "" {
			return nil, fmt.Errorf("a field without var")
		}
		if _, dup := f.Fields[v]; dup {
			return nil, fmt.Errorf("field %q given twice", v)
		}
		if len(f.Fields) >= maxFields {
			return nil, fmt.Errorf("more than %d fields", maxFields)
		}
		vals := fieldValues(fe)
		f.Fields[v] = vals
		if v == "FORM_TYPE" {
			if len(vals) > 0 {
				f.FormType = strings.TrimSpace(vals[0])
			}
			continue
		}
		f.Order = append(f.Order, v)
	}
	return f, nil
}

// Field is one field of a form koi sends.
type Field struct {
	Var, Type, Label string
	Required         bool
	Values           []string
	Options          []Option
}

// Option is one choice of a list field; Label may be "".
type Option struct{ Label, Value string }

// Choices are options without labels, one per value.
func Choices(values ...string) []Option {
	out := make([]Option, len(values))
	for i, v := range values {
		out[i].Value = v
	}
	return out
}

// Values reads the fields' values of x, leniently, as a form's reader
// that only picks the fields it knows does: a field without var is
// skipped and a var given twice keeps its first values.
func Values(x *xmlstream.Element) map[string][]string {
	out := map[string][]string{}
	for _, fe := range x.Elements() {
		v := fe.Attr("var")
		if fe.Space != NS || fe.Local != "field" || v == "" {
			continue
		}
		if _, dup := out[v]; dup {
			continue
		}
		out[v] = fieldValues(fe)
	}
	return out
}

// Build renders a form of type typ ("form" or "result") with the title
// and instructions given ("" leaves them out) and, when formType is not
// "", a hidden FORM_TYPE field first.
func Build(typ, formType, title, instructions string, fields []Field) *xmlstream.Element {
	x := xmlstream.NewElement(NS, "x").SetAttr("type", typ)
	if title != "" {
		x.AppendChild(xmlstream.NewElement(NS, "title").AppendText(title))
	}
	if instructions != "" {
		x.AppendChild(xmlstream.NewElement(NS, "instructions").AppendText(instructions))
	}
	if formType != "" {
		fields = append([]Field{{Var: "FORM_TYPE", Type: "hidden", Values: []string{formType}}}, fields...)
	}
	for _, f := range fields {
		fe := xmlstream.NewElement(NS, "field").SetAttr("var", f.Var)
		if f.Type != "" {
			fe.SetAttr("type", f.Type)
		}
		if f.Label != "" {
			fe.SetAttr("label", f.Label)
		}
		if f.Required {
			fe.AppendChild(xmlstream.NewElement(NS, "required"))
		}
		// The schema's order (XEP-0004 §9): values, then options.
		for _, v := range f.Values {
			fe.AppendChild(xmlstream.NewElement(NS, "value").AppendText(v))
		}
		for _, o := range f.Options {
			opt := xmlstream.NewElement(NS, "option")
			if o.Label != "" {
				opt.SetAttr("label", o.Label)
			}
			fe.AppendChild(opt.AppendChild(xmlstream.NewElement(NS, "value").AppendText(o.Value)))
		}
		x.AppendChild(fe)
	}
	return x
}

// fieldValues are the values of the field fe, never nil.
func fieldValues(fe *xmlstream.Element) []string {
	vals := []string{}
	for _, ve := range fe.Elements() {
		if ve.Space == NS && ve.Local == "value" {
			vals = append(vals, ve.Text())
		}
	}
	return vals
}
