package c2s

import (
	"strings"
	"testing"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/xmlstream"
)

func parseEl(t *testing.T, s string) *xmlstream.Element {
	t.Helper()
	r := xmlstream.NewReader(strings.NewReader("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"+s), xmlstream.Limits{})
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	el, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	return el
}

func TestParseSASL2(t *testing.T) {
	// XEP-0388's and XEP-0386's examples, with XEP-0484's token request.
	el := parseEl(t, `<authenticate xmlns='urn:xmpp:sasl:2' mechanism='SCRAM-SHA-1-PLUS'>
  <initial-response>cD10bHMtZXhwb3J0ZXIsLG49dXNlcixyPTEyQzRDRDVDLUUzOEUtNEE5OC04RjZELTE1QzM4RjUxQ0NDNg==</initial-response>
  <user-agent id='d4565fa7-4d72-4749-b3d3-740edbf87770'>
    <software>AwesomeXMPP</software>
    <device>Kiva's Phone</device>
  </user-agent>
  <bind xmlns='urn:xmpp:bind:0'>
    <tag>AwesomeXMPP</tag>
    <enable xmlns='urn:xmpp:carbons:2'/>
    <inactive xmlns='urn:xmpp:csi:0'/>
  </bind>
  <request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/>
  <fast xmlns='urn:xmpp:fast:0' count='123' invalidate='true'/>
</authenticate>`)
	r := parseSASL2(el)
	if r.mech != "SCRAM-SHA-1-PLUS" || r.initial == nil || r.agent != "d4565fa7-4d72-4749-b3d3-740edbf87770" || r.agentInvalid {
		t.Errorf("parsed %+v", r)
	}
	if r.bind == nil || r.bind.Child(nsCarbons, "enable") == nil || r.tokenMech != "HT-SHA-256-NONE" || !r.invalidate || r.resume != nil {
		t.Errorf("parsed %+v", r)
	}
	for _, bad := range []string{
		`<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><user-agent/></authenticate>`,
		`<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><user-agent id='` + strings.Repeat("x", 256) + `'/></authenticate>`,
	} {
		if r := parseSASL2(parseEl(t, bad)); !r.agentInvalid {
			t.Errorf("accepted user-agent in %s", bad)
		}
	}
	if r := parseSASL2(parseEl(t, `<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'/>`)); r.agent != "" || r.agentInvalid || r.bind != nil {
		t.Errorf("no extras: %+v", r)
	}
}

func TestBind2Resource(t *testing.T) {
	bind := parseEl(t, `<bind xmlns='urn:xmpp:bind:0'><tag> AwesomeXMPP </tag></bind>`)
	a := bind2Resource(bind, "alice", "agent-1")
	if !strings.HasPrefix(a, "AwesomeXMPP~") {
		t.Errorf("resource %q", a)
	}
	// The same client gets the same resource back (its stale session is
	// replaced); another client, or another user, another one.
	if b := bind2Resource(bind, "alice", "agent-1"); a != b {
		t.Errorf("same agent: %q then %q", a, b)
	}
	if b := bind2Resource(bind, "alice", "agent-2"); a == b {
		t.Error("two agents share a resource")
	}
	if b := bind2Resource(bind, "bob", "agent-1"); a == b {
		t.Error("two users' resources are the same")
	}
	// Without an id every login gets a fresh one.
	if r1, r2 := bind2Resource(nil, "alice", ""), bind2Resource(nil, "alice", ""); r1 == r2 {
		t.Errorf("random resources repeat: %q", r1)
	}
	long := parseEl(t, `<bind xmlns='urn:xmpp:bind:0'><tag>`+strings.Repeat("ü", 40)+`</tag></bind>`)
	res := bind2Resource(long, "alice", "x")
	if tag, _, _ := strings.Cut(res, "~"); len(tag) > maxTag || !strings.HasPrefix(res, "üü") {
		t.Errorf("long tag kept as %q", res)
	}
	if _, err := jid.New("alice", "example.com", res); err != nil {
		t.Errorf("resource %q is not valid: %v", res, err)
	}
}
