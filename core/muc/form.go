package muc

import (
	"strconv"

	"github.com/koi-im/koi/core/xmlstream"
)

// A small data forms (XEP-0004) writer and reader: the room configuration
// form, the room info form and the voice request are all the service
// needs.

// field is one field of a form the service sends.
type field struct {
	Var, Type, Label string
	Values           []string
	Options          [][2]string // label, value
}

// formElement renders a form of type typ ("form" or "result").
func formElement(typ, title, instructions string, fields []field) *xmlstream.Element {
	x := xmlstream.NewElement(NSData, "x").SetAttr("type", typ)
	if title != "" {
		x.AppendChild(xmlstream.NewElement(NSData, "title").AppendText(title))
	}
	if instructions != "" {
		x.AppendChild(xmlstream.NewElement(NSData, "instructions").AppendText(instructions))
	}
	for _, f := range fields {
		fe := xmlstream.NewElement(NSData, "field").SetAttr("var", f.Var)
		if f.Type != "" {
			fe.SetAttr("type", f.Type)
		}
		if f.Label != "" {
			fe.SetAttr("label", f.Label)
		}
		for _, v := range f.Values {
			fe.AppendChild(xmlstream.NewElement(NSData, "value").AppendText(v))
		}
		for _, o := range f.Options {
			opt := xmlstream.NewElement(NSData, "option")
			if o[0] != "" {
				opt.SetAttr("label", o[0])
			}
			opt.AppendChild(xmlstream.NewElement(NSData, "value").AppendText(o[1]))
			fe.AppendChild(opt)
		}
		x.AppendChild(fe)
	}
	return x
}

// formValues reads a submitted form: var → values. A field given twice
// keeps its first occurrence, as a reader of a list would.
func formValues(x *xmlstream.Element) map[string][]string {
	out := map[string][]string{}
	for _, f := range x.Elements() {
		if f.Space != NSData || f.Local != "field" {
			continue
		}
		v := f.Attr("var")
		if v == "" {
			continue
		}
		if _, dup := out[v]; dup {
			continue
		}
		vals := []string{}
		for _, c := range f.Elements() {
			if c.Space == NSData && c.Local == "value" {
				vals = append(vals, c.Text())
			}
		}
		out[v] = vals
	}
	return out
}

// boolValue reads an XEP-0004 boolean: "1"/"true" or "0"/"false".
func boolValue(vals []string) (value, ok bool) {
	if len(vals) != 1 {
		return false, false
	}
	switch vals[0] {
	case "1", "true":
		return true, true
	case "0", "false":
		return false, true
	}
	return false, false
}

func boolString(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func single(vals []string) (string, bool) {
	switch len(vals) {
	case 0:
		return "", true
	case 1:
		return vals[0], true
	}
	return "", false
}

func intValue(vals []string) (int, bool) {
	s, ok := single(vals)
	if !ok {
		return 0, false
	}
	if s == "" {
		return 0, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}
