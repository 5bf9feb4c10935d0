package dataform

import (
	"fmt"
	"strings"
	"testing"

	"github.com/koi-im/koi/core/stanza"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name, x string
		want    string // type|FORM_TYPE|vars in order|values of "a", or "error"
	}{
		{"submitted", `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value> urn:x </value></field><field var='b'/><field var='a'><value>1</value><value>2</value></field></x>`, "submit|urn:x|b,a|1,2"},
		{"no var", `<x xmlns='jabber:x:data' type='submit'><field><value>1</value></field></x>`, "error"},
		{"a var twice", `<x xmlns='jabber:x:data' type='submit'><field var='a'/><field var='a'/></x>`, "error"},
		{"an unknown type", `<x xmlns='jabber:x:data' type='weird'/>`, "error"},
		{"not a form", `<query xmlns='jabber:iq:register'/>`, "error"},
		{"too many fields", `<x xmlns='jabber:x:data' type='submit'>` + manyFields(maxFields+1) + `</x>`, "error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x, err := stanza.Parse(tc.x)
			if err != nil {
				t.Fatal(err)
			}
			f, err := Parse(x)
			got := "error"
			if err == nil {
				got = f.Type + "|" + f.FormType + "|" + strings.Join(f.Order, ",") + "|" + strings.Join(f.Fields["a"], ",")
			}
			if got != tc.want {
				t.Fatalf("got %q, want %q (%v)", got, tc.want, err)
			}
		})
	}
}

func TestBuild(t *testing.T) {
	x := Build("form", "urn:x", "Title", "Fill it in", []Field{
		{Var: "p", Type: "text-private", Label: "Password", Required: true},
		{Var: "n", Type: "list-single", Options: []Option{{"One", "1"}, {"", "2"}}, Values: []string{"2"}},
	})
	want := `<x xmlns='jabber:x:data' type='form'><title>Title</title><instructions>Fill it in</instructions>` +
		`<field var='FORM_TYPE' type='hidden'><value>urn:x</value></field>` +
		`<field var='p' type='text-private' label='Password'><required/></field>` +
		`<field var='n' type='list-single'><value>2</value><option label='One'><value>1</value></option><option><value>2</value></option></field></x>`
	if got := x.String(); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	back, err := Parse(x)
	if err != nil || back.FormType != "urn:x" || back.Value("n") != "2" || back.Value("p") != "" {
		t.Fatalf("read back: %+v %v", back, err)
	}
}

func manyFields(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "<field var='f%d'/>", i)
	}
	return b.String()
}
