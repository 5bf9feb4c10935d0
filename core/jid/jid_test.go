package jid

import (
	"errors"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/text/secure/precis"
)

func TestParseValid(t *testing.T) {
	tests := []struct {
		in                      string
		local, domain, resource string
		str                     string
	}{
		{"example.com", "", "example.com", "", "example.com"},
		{"juliet@example.com", "juliet", "example.com", "", "juliet@example.com"},
		{"juliet@example.com/balcony", "juliet", "example.com", "balcony", "juliet@example.com/balcony"},
		{"Juliet@Example.COM", "juliet", "example.com", "", "juliet@example.com"},
		{"Juliet@Example.COM/Balcony", "juliet", "example.com", "Balcony", "juliet@example.com/Balcony"},
		{"example.com/foo", "", "example.com", "foo", "example.com/foo"},
		// Trailing dot is stripped before anything else.
		{"juliet@example.com./r", "juliet", "example.com", "r", "juliet@example.com/r"},
		{"example.com.", "", "example.com", "", "example.com"},
		// Resource may hold '/', '@' and spaces.
		{"juliet@example.com/foo bar", "juliet", "example.com", "foo bar", "juliet@example.com/foo bar"},
		{"juliet@example.com/a/b@c", "juliet", "example.com", "a/b@c", "juliet@example.com/a/b@c"},
		{"example.com/juliet@example.com", "", "example.com", "juliet@example.com", "example.com/juliet@example.com"},
		// Unicode localparts and domains (RFC 7622 §3.5 examples).
		{"juliet@example.com/foo\u00a0bar", "juliet", "example.com", "foo bar", "juliet@example.com/foo bar"},
		{"\u03c0@example.com", "\u03c0", "example.com", "", "\u03c0@example.com"},
		{"\u03a3@example.com", "\u03c3", "example.com", "", "\u03c3@example.com"},
		{"\u0441\u0442\u0430\u0440\u0438\u0446\u0430@example.com", "\u0441\u0442\u0430\u0440\u0438\u0446\u0430", "example.com", "", ""},
		{"\u0421\u0442\u0430\u0440\u0438\u0446\u0430@example.com", "\u0441\u0442\u0430\u0440\u0438\u0446\u0430", "example.com", "", ""},
		{"fu\u00dfball@example.com", "fu\u00dfball", "example.com", "", ""},
		{"juliet@example.com/\u265a", "juliet", "example.com", "\u265a", ""},
		{"juliet@b\u00fccher.example", "juliet", "b\u00fccher.example", "", ""},
		{"juliet@B\u00dcCHER.example", "juliet", "b\u00fccher.example", "", ""},
		// A-labels become U-labels.
		{"juliet@xn--bcher-kva.example", "juliet", "b\u00fccher.example", "", "juliet@b\u00fccher.example"},
		// Fullwidth characters are width-mapped.
		{"\uff2a\uff55\uff4c\uff49\uff45\uff54@example.com", "juliet", "example.com", "", "juliet@example.com"},
		{"juliet@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com", "juliet", "example.com", "", "juliet@example.com"},
		// Ideographic full stop is a label separator.
		{"juliet@example\u3002com", "juliet", "example.com", "", "juliet@example.com"},
		{"juliet@example.com\u3002", "juliet", "example.com", "", "juliet@example.com"},
		// IP literals.
		{"juliet@192.0.2.1/r", "juliet", "192.0.2.1", "r", ""},
		{"juliet@[2001:DB8::0001]/r", "juliet", "[2001:db8::1]", "r", "juliet@[2001:db8::1]/r"},
		{"[::1]", "", "[::1]", "", "[::1]"},
		// Punctuation allowed in localparts.
		{"a.b-c_d+e!#$%*=?^`{|}~@example.com", "a.b-c_d+e!#$%*=?^`{|}~", "example.com", "", ""},
		{"localhost", "", "localhost", "", "localhost"},
		{"a@b", "a", "b", "", "a@b"},
		{strings.Repeat("a", 1023) + "@example.com", strings.Repeat("a", 1023), "example.com", "", ""},
		{"a@example.com/" + strings.Repeat("r", 1023), "a", "example.com", strings.Repeat("r", 1023), ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			j, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if j.Local() != tt.local || j.Domain() != tt.domain || j.Resource() != tt.resource {
				t.Fatalf("Parse(%q) = (%q, %q, %q), want (%q, %q, %q)", tt.in,
					j.Local(), j.Domain(), j.Resource(), tt.local, tt.domain, tt.resource)
			}
			if tt.str != "" && j.String() != tt.str {
				t.Errorf("String() = %q, want %q", j.String(), tt.str)
			}
			j2, err := Parse(j.String())
			if err != nil || j2 != j {
				t.Errorf("Parse(String()) = %v, %v; want %v", j2, err, j)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	tests := []struct{ name, in string }{
		{"empty", ""},
		{"only at", "@"},
		{"only slash", "/"},
		{"empty local", "@example.com"},
		{"empty domain", "juliet@"},
		{"empty domain with resource", "juliet@/r"},
		{"empty resource", "example.com/"},
		{"empty resource with local", "juliet@example.com/"},
		{"only dot", "."},
		{"two trailing dots", "example.com.."},
		{"empty label", "example..com"},
		{"leading dot", ".example.com"},
		{"space in localpart", "jul iet@example.com"},
		{"nbsp in localpart", "jul\u00a0iet@example.com"},
		{"space in domain", "exa mple.com"},
		{"quote in localpart", `ju"liet@example.com`},
		{"amp in localpart", "ju&liet@example.com"},
		{"apos in localpart", "ju'liet@example.com"},
		{"colon in localpart", "ju:liet@example.com"},
		{"lt in localpart", "ju<liet@example.com"},
		{"gt in localpart", "ju>liet@example.com"},
		{"fullwidth at in localpart", "ju\uff20liet@example.com"},
		{"fullwidth solidus in localpart", "ju\uff0fliet@example.com"},
		{"at in domain", "a@b@example.com"},
		{"control in localpart", "ju\x00liet@example.com"},
		{"control in resource", "juliet@example.com/r\x07"},
		{"control in domain", "exam\x01ple.com"},
		{"invalid utf8 localpart", "ju\xffliet@example.com"},
		{"invalid utf8 resource", "juliet@example.com/\xff"},
		{"invalid utf8 domain", "exa\xffmple.com"},
		{"localpart too long", strings.Repeat("a", 1024) + "@example.com"},
		{"resource too long", "a@example.com/" + strings.Repeat("r", 1024)},
		{"domain too long", strings.Repeat("abcdefg.", 128) + "com"},
		{"raw part far too long", strings.Repeat("\uff41", 2000) + "@example.com"},
		{"domain port", "example.com:5222"},
		{"domain underscore", "ex_ample.com"},
		{"leading hyphen label", "-example.com"},
		{"trailing hyphen label", "example-.com"},
		{"bad a-label", "xn--zz.example"},
		{"unbracketed v6", "::1"},
		{"bad v6 literal", "[::g]"},
		{"v4 in brackets", "[192.0.2.1]"},
		{"v6 with zone", "[fe80::1%eth0]"},
		{"unclosed bracket", "[::1"},
		{"bidi violation", "\u05d0a.example"},
		// RFC 7622 §3.5 invalid examples.
		{"symbol in localpart", "\u265a@example.com"},
		{"compatibility char in localpart", "henry\u2163@example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %q, want error", tt.in, j)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse(%q) error %v does not wrap ErrMalformed", tt.in, err)
			}
		})
	}
}

func TestNew(t *testing.T) {
	j, err := New("Juliet", "Example.COM", "Balcony")
	if err != nil {
		t.Fatal(err)
	}
	if j != MustParse("juliet@example.com/Balcony") {
		t.Errorf("New = %v", j)
	}
	if j, err = New("", "example.com", ""); err != nil || !j.IsDomain() {
		t.Errorf("New domain-only = %v, %v", j, err)
	}
	// Parts are not split: '@' in a local passed to New is rejected.
	for _, c := range []struct{ l, d, r string }{
		{"a@b", "example.com", ""},
		{"a/b", "example.com", ""},
		{"a", "", ""},
		{"a", "exa/mple.com", ""},
		{"a", "example.com", "\x00"},
	} {
		if _, err := New(c.l, c.d, c.r); !errors.Is(err, ErrMalformed) {
			t.Errorf("New(%q, %q, %q) err = %v, want ErrMalformed", c.l, c.d, c.r, err)
		}
	}
}

func TestAccessors(t *testing.T) {
	full := MustParse("juliet@example.com/balcony")
	if full.IsBare() || full.IsDomain() || full.IsZero() {
		t.Error("full JID predicates wrong")
	}
	bare := full.Bare()
	if bare != MustParse("juliet@example.com") || !bare.IsBare() || bare.IsDomain() {
		t.Errorf("Bare() = %v", bare)
	}
	dom := full.Domainpart()
	if dom != MustParse("example.com") || !dom.IsDomain() || !dom.IsBare() {
		t.Errorf("Domainpart() = %v", dom)
	}
	var zero JID
	if !zero.IsZero() || zero.IsDomain() || zero.String() != "" {
		t.Error("zero JID predicates wrong")
	}
	r, err := bare.WithResource("Orchard")
	if err != nil || r != MustParse("juliet@example.com/Orchard") {
		t.Errorf("WithResource = %v, %v", r, err)
	}
	r, err = full.WithResource("")
	if err != nil || r != bare {
		t.Errorf("WithResource(\"\") = %v, %v", r, err)
	}
	if _, err := full.WithResource("a\x00"); !errors.Is(err, ErrMalformed) {
		t.Errorf("WithResource(bad) err = %v", err)
	}
	// Mapping uses == and so must key on the normalised form.
	m := map[JID]int{MustParse("Juliet@Example.com"): 1}
	if m[MustParse("juliet@example.com")] != 1 {
		t.Error("normalised JIDs do not collide as map keys")
	}
}

func TestMustParsePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("MustParse did not panic on invalid input")
		}
	}()
	MustParse("@")
}

func TestNormalizeLocal(t *testing.T) {
	for in, want := range map[string]string{
		"Juliet":             "juliet",
		"\uff2a\uff35\uff2c": "jul",
		"\u03a3":             "\u03c3",
		"user.name+tag":      "user.name+tag",
	} {
		got, err := NormalizeLocal(in)
		if err != nil || got != want {
			t.Errorf("NormalizeLocal(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "a b", "a@b", "a:b", strings.Repeat("x", 1024)} {
		if _, err := NormalizeLocal(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("NormalizeLocal(%q) err = %v, want ErrMalformed", in, err)
		}
	}
}

func TestNormalizeResource(t *testing.T) {
	for in, want := range map[string]string{
		"Balcony":      "Balcony",
		" padded ":     " padded ",
		"a\u00a0b":     "a b",
		"e\u0301":      "\u00e9",       // NFC
		"\uff21\uff22": "\uff21\uff22", // no width mapping in OpaqueString
	} {
		got, err := NormalizeResource(in)
		if err != nil || got != want {
			t.Errorf("NormalizeResource(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "\t", "a\nb", strings.Repeat("x", 1024)} {
		if _, err := NormalizeResource(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("NormalizeResource(%q) err = %v, want ErrMalformed", in, err)
		}
	}
}

// TestASCIIFastPaths checks the hand-written ASCII shortcuts against the
// PRECIS and IDNA implementations they stand in for.
func TestASCIIFastPaths(t *testing.T) {
	var inputs []string
	for c := 0; c < 0x80; c++ {
		ch := string(rune(c))
		inputs = append(inputs, ch, "a"+ch+"b", "A"+ch, ch+"Z", "ab"+ch+ch+"c")
	}
	inputs = append(inputs, "ab--c", "xn--bcher-kva", "a-", "-a", "a.b", "A.B.C", "1.2.3.4")
	for _, in := range inputs {
		if got, ok := asciiLocal(in); ok {
			want, err := precis.UsernameCaseMapped.String(in)
			if err != nil || got != want {
				t.Errorf("asciiLocal(%q) = %q; precis = %q, %v", in, got, want, err)
			}
		}
		if printableASCII(in) {
			want, err := precis.OpaqueString.String(in)
			if in != "" && (err != nil || want != in) {
				t.Errorf("OpaqueString(%q) = %q, %v; fast path assumes identity", in, want, err)
			}
		}
		if got, ok := asciiDomain(in); ok {
			want, err := domainProfile.ToUnicode(in)
			if err != nil || got != want {
				t.Errorf("asciiDomain(%q) = %q; idna = %q, %v", in, got, want, err)
			}
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"juliet@example.com/balcony", "Juliet@Example.COM", "example.com", "example.com.",
		"\uff2a\uff55\uff4c\uff49\uff45\uff54@example.com", "juliet@xn--bcher-kva.example",
		"[2001:db8::1]", "a@192.0.2.1/r/r", "@", "a@", "a/", "\u03a3@\u00fc.example/\u265a",
		"juliet@example\u3002com\u3002", "a@b@c", "x/y@z", "\x00", "\xff@\xff/\xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		j, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse(%q) error %v does not wrap ErrMalformed", s, err)
			}
			return
		}
		if j.IsZero() || j.Domain() == "" {
			t.Fatalf("Parse(%q) returned a JID without domain", s)
		}
		str := j.String()
		j2, err := Parse(str)
		if err != nil {
			t.Fatalf("Parse(%q) ok, but Parse(String() = %q): %v", s, str, err)
		}
		if j2 != j {
			t.Fatalf("round trip of %q: %#v != %#v", s, j2, j)
		}
		if j3, err := New(j.Local(), j.Domain(), j.Resource()); err != nil || j3 != j {
			t.Fatalf("New(parts of %q) = %#v, %v", s, j3, err)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	for _, bc := range []struct{ name, in string }{
		{"ascii", "Juliet@Example.com/balcony-1a2b3c"},
		{"unicode", "\u0421\u0442\u0430\u0440\u0438\u0446\u0430@b\u00fccher.example/\u265a"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(bc.in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestReuse(t *testing.T) {
	for _, tt := range []struct {
		jid, s string
		same   bool
	}{
		{"a@b/c", "a@b/c", true},
		{"a@b", "a@b", true},
		{"b", "b", true},
		{"b/c", "b/c", true},
		{"a@b/c", "A@b/c", false},
		{"a@b/c", "a@b/c/", false},
		{"a@b/c", "a@b", false},
		{"a@b", "a@b/c", false},
		{"a@b", "a@bb", false},
		{"a@b", "ab", false},
		{"a@b", "a", false},
		{"b", "a@b", false},
		{"b/c", "b/cd", false},
	} {
		j := MustParse(tt.jid)
		got := j.Reuse(tt.s)
		if got != j.String() {
			t.Errorf("%s.Reuse(%q) = %q, want %q", tt.jid, tt.s, got, j.String())
		}
		if j.spells(tt.s) != tt.same {
			t.Errorf("%s spells %q: %v, want %v", tt.jid, tt.s, !tt.same, tt.same)
		}
	}
}

func TestReuseBare(t *testing.T) {
	for _, tt := range []struct {
		jid, s string
		shared bool // the result is a prefix of s, not a new string
	}{
		{"a@b/c", "a@b/c", true},
		{"a@b", "a@b", true},
		{"b/c", "b/c", true},
		{"a@b/c", "a@b", true},
		{"a@b/c", "A@b/c", false},
		{"a@b/c", "a@b/cd", false},
		{"a@b", "a@b/c", false},
		{"a@b/c", "", false},
	} {
		j := MustParse(tt.jid)
		got := j.ReuseBare(tt.s)
		if want := j.Bare().String(); got != want {
			t.Errorf("%s.ReuseBare(%q) = %q, want %q", tt.jid, tt.s, got, want)
		}
		shared := len(got) > 0 && len(tt.s) >= len(got) && unsafe.StringData(got) == unsafe.StringData(tt.s)
		if shared != tt.shared {
			t.Errorf("%s.ReuseBare(%q) shares the string: %v, want %v", tt.jid, tt.s, shared, tt.shared)
		}
	}
}

func TestParseKnown(t *testing.T) {
	alice := MustParse("alice@example.com/pc")
	for _, tc := range []struct {
		s     string
		known JID
		want  string
		err   bool
	}{
		{"alice@example.com/pc", alice, "alice@example.com/pc", false},
		{"alice@example.com/pc", JID{}, "alice@example.com/pc", false},
		{"Alice@Example.com/pc", alice, "alice@example.com/pc", false}, // not spelled: parsed
		{"bob@example.com", alice, "bob@example.com", false},
		{"alice@example.com", alice, "alice@example.com", false},
		{"", alice, "", true},
		{"@example.com", JID{}, "", true},
	} {
		got, err := ParseKnown(tc.s, tc.known)
		if (err != nil) != tc.err || (err == nil && got.String() != tc.want) {
			t.Errorf("ParseKnown(%q, %q) = %q, %v; want %q (error %v)", tc.s, tc.known, got, err, tc.want, tc.err)
		}
	}
}
