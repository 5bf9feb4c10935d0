package stanza

import (
	"testing"

	"github.com/koi-im/koi/core/xmlstream"
)

func mustParse(t *testing.T, s string) *xmlstream.Element {
	t.Helper()
	el, err := Parse(s)
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	return el
}

func xml(el *xmlstream.Element) string { return string(el.AppendXML(nil, xmlstream.NSClient)) }

func TestErrorReply(t *testing.T) {
	tests := []struct {
		name, in string
		err      *Error
		want     string
	}{
		{
			name: "message keeps its payload, addresses swapped",
			in:   `<message from='a@x/r' to='b@x' id='m1' type='chat'><body>hi</body><thread>t</thread></message>`,
			err:  ErrServiceUnavailable,
			want: `<message id='m1' from='b@x' to='a@x/r' type='error'><body>hi</body><thread>t</thread><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`,
		},
		{
			name: "an IQ's payload is dropped",
			in:   `<iq from='a@x/r' to='x' id='q1' type='get'><query xmlns='jabber:iq:version'/></iq>`,
			err:  ErrFeatureNotImpl,
			want: `<iq id='q1' from='x' to='a@x/r' type='error'><error type='cancel'><feature-not-implemented xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`,
		},
		{
			name: "an old error child is not copied, text is",
			in:   `<presence from='a@x/r' to='b@x' type='subscribe'><error type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>`,
			err:  ErrNotAllowed.WithText("no"),
			want: `<presence from='b@x' to='a@x/r' type='error'><error type='cancel'><not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>no</text></error></presence>`,
		},
		{
			name: "no addresses, no id",
			in:   `<message><body>x</body></message>`,
			err:  ErrBadRequest,
			want: `<message type='error'><body>x</body><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := mustParse(t, tt.in)
			before := xml(in)
			got := xml(ErrorReply(in, tt.err))
			if got != tt.want {
				t.Errorf("ErrorReply:\n got %s\nwant %s", got, tt.want)
			}
			if xml(in) != before {
				t.Errorf("ErrorReply changed the original: %s", xml(in))
			}
		})
	}
}

func TestErrorRoundTrip(t *testing.T) {
	for _, e := range []*Error{ErrBadRequest, ErrInternal.WithText("backend down"), ErrRecipientUnavailable, ErrForbidden} {
		reply := ErrorReply(mustParse(t, `<iq from='a@x/r' to='x' id='1' type='set'><q xmlns='q'/></iq>`), e)
		back := ErrorFrom(mustParse(t, xml(reply)))
		if back == nil || *back != *e {
			t.Errorf("ErrorFrom(ErrorReply(%v)) = %+v, want %+v", e, back, e)
		}
	}
	if got := ErrorFrom(mustParse(t, `<message type='error'/>`)); got != nil {
		t.Errorf("ErrorFrom without <error/> = %+v, want nil", got)
	}
	if s := ErrNotAllowed.WithText("why").Error(); s != "not-allowed: why" {
		t.Errorf("Error() = %q", s)
	}
	if ErrNotAllowed.Text != "" {
		t.Error("WithText changed the shared error")
	}
}

func TestResult(t *testing.T) {
	iq := mustParse(t, `<iq from='a@x/r' to='b@x' id='7' type='get'><query xmlns='jabber:iq:roster'/></iq>`)
	if got, want := xml(Result(iq, nil)), `<iq type='result' id='7' from='b@x' to='a@x/r'/>`; got != want {
		t.Errorf("Result = %s, want %s", got, want)
	}
	p := xmlstream.NewElement("jabber:iq:roster", "query")
	if got, want := xml(Result(iq, p)), `<iq type='result' id='7' from='b@x' to='a@x/r'><query xmlns='jabber:iq:roster'/></iq>`; got != want {
		t.Errorf("Result with payload = %s, want %s", got, want)
	}
}

func TestParse(t *testing.T) {
	el := mustParse(t, `<message to='b@x'><body>a &amp; b</body></message>`)
	if el.Space != xmlstream.NSClient || el.Local != "message" || el.Child(xmlstream.NSClient, "body").Text() != "a & b" {
		t.Errorf("Parse = %s", xml(el))
	}
	for _, bad := range []string{"", "<message>", "<message></iq>", "not xml", "<message>&bogus;</message>"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) succeeded", bad)
		}
	}
}

func TestIsStanza(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{`<message/>`, true},
		{`<presence/>`, true},
		{`<iq/>`, true},
		{`<r xmlns='urn:xmpp:sm:3'/>`, false},
		{`<message xmlns='jabber:server'/>`, false},
		{`<body/>`, false},
	}
	for _, tt := range tests {
		if got := IsStanza(mustParse(t, tt.in)); got != tt.want {
			t.Errorf("IsStanza(%s) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestErrorApp(t *testing.T) {
	e := ErrConflict.WithApp("http://jabber.org/protocol/pubsub#errors", "precondition-not-met").WithText("why")
	got := e.Element().String()
	want := `<error xmlns='jabber:client' type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>why</text><precondition-not-met xmlns='http://jabber.org/protocol/pubsub#errors'/></error>`
	if got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	if ErrConflict.App != nil {
		t.Error("WithApp changed the shared error")
	}
}

func TestAppendStreamError(t *testing.T) {
	for _, tc := range []struct{ cond, text, want string }{
		{"conflict", "", `<stream:error xmlns:stream='http://etherx.jabber.org/streams'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>`},
		{"policy-violation", "a < b", `<stream:error xmlns:stream='http://etherx.jabber.org/streams'><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>a &lt; b</text></stream:error>`},
	} {
		if got := string(AppendStreamError([]byte("x"), tc.cond, tc.text)); got != "x"+tc.want {
			t.Errorf("AppendStreamError(%q, %q) = %s, want x%s", tc.cond, tc.text, got, tc.want)
		}
	}
}
