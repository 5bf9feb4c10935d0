package csi

import (
	"strings"
	"testing"

	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
)

// step is one stanza pushed (in) or an <active/> (in == ""), and the ids
// of what that must send now, in order.
type step struct {
	in   string
	want string // space-separated ids
}

func TestFilter(t *testing.T) {
	const (
		avail1  = `<presence id='p1' from='a@x/1'/>`
		avail2  = `<presence id='p2' from='a@x/1'><show>away</show></presence>`
		unavail = `<presence id='p3' from='a@x/1' type='unavailable'/>`
		otherP  = `<presence id='q1' from='a@x/2'/>`
		compose = `<message id='c1' from='a@x/1' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`
		paused  = `<message id='c2' from='a@x/1' type='chat'><paused xmlns='http://jabber.org/protocol/chatstates'/></message>`
		body    = `<message id='m1' from='a@x/1' type='chat'><body>hi</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`
		iq      = `<iq id='i1' from='a@x/1' type='get'><ping xmlns='urn:xmpp:ping'/></iq>`
	)
	for _, tc := range []struct {
		name  string
		max   int
		steps []step
	}{
		{"presence collapses per full JID", 0, []step{
			{avail1, ""}, {otherP, ""}, {avail2, ""}, {"", "q1 p2"},
		}},
		{"unavailable replaces available", 0, []step{
			{avail1, ""}, {avail2, ""}, {unavail, ""}, {"", "p3"},
		}},
		{"chat states collapse per contact", 0, []step{
			{compose, ""}, {paused, ""}, {"", "c2"},
		}},
		{"body flushes all in order", 0, []step{
			{avail1, ""}, {compose, ""}, {avail2, ""}, {paused, ""}, {body, "p2 c2 m1"}, {"", ""},
		}},
		{"IQ is not delayed", 0, []step{
			{iq, "i1"}, {avail1, ""}, {iq, "p1 i1"},
		}},
		{"subscription request is urgent", 0, []step{
			{avail1, ""}, {`<presence id='s1' from='a@x' type='subscribe'/>`, "p1 s1"},
		}},
		{"error message is urgent", 0, []step{
			{compose, ""}, {`<message id='e1' from='a@x/1' type='error'><error type='cancel'/></message>`, "c1 e1"},
		}},
		{"encrypted message is urgent", 0, []step{
			{`<message id='o1' from='a@x/1' type='chat'><encrypted xmlns='eu.siacs.conversations.axolotl'/></message>`, "o1"},
		}},
		{"sent carbon is urgent", 0, []step{
			{`<message id='s1' from='b@x' type='chat'><sent xmlns='urn:xmpp:carbons:2'/></message>`, "s1"},
		}},
		{"received carbon of a body is urgent", 0, []step{
			{avail1, ""},
			{`<message id='r1' from='b@x'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='a@x/1' to='b@x/2'><body>x</body></message></forwarded></received></message>`, "p1 r1"},
		}},
		{"received carbon of a chat state is held whole", 0, []step{
			{`<message id='r1' from='b@x'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='a@x/1'><composing xmlns='http://jabber.org/protocol/chatstates'/></message></forwarded></received></message>`, ""},
			{compose, ""}, {"", "r1 c1"},
		}},
		{"receipts and headlines are held in full", 0, []step{
			{`<message id='h1' from='x' type='headline'><event xmlns='http://jabber.org/protocol/pubsub#event'/></message>`, ""},
			{`<message id='h2' from='x' type='headline'><event xmlns='http://jabber.org/protocol/pubsub#event'/></message>`, ""},
			{`<message id='r1' from='a@x/1'><received xmlns='urn:xmpp:receipts' id='m0'/></message>`, ""},
			{"", "h1 h2 r1"},
		}},
		{"bound exceeded flushes", 3, []step{
			{avail1, ""}, {compose, ""}, {otherP, ""}, {`<presence id='q2' from='a@x/3'/>`, "p1 c1 q1 q2"}, {avail2, ""}, {"", "p2"},
		}},
		{"collapsing does not count against the bound", 2, []step{
			{avail1, ""}, {compose, ""}, {avail2, ""}, {paused, ""}, {"", "p2 c2"},
		}},
		{"active flushes in order", 0, []step{
			{compose, ""}, {avail1, ""}, {"", "c1 p1"}, {"", ""},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := New(tc.max)
			for i, s := range tc.steps {
				var out []*xmlstream.Element
				if s.in == "" {
					out = f.Activate()
				} else {
					el, err := stanza.Parse(s.in)
					if err != nil {
						t.Fatal(err)
					}
					out = f.Push(el)
				}
				var ids []string
				for _, el := range out {
					ids = append(ids, el.Attr("id"))
				}
				if got := strings.Join(ids, " "); got != s.want {
					t.Errorf("step %d (%s): sent %q, want %q", i, s.in, got, s.want)
				}
			}
		})
	}
}

func TestFlushReleases(t *testing.T) {
	f := New(0)
	el, _ := stanza.Parse(`<presence from='a@x/1'/>`)
	f.Push(el)
	if f.Len() != 1 {
		t.Fatalf("Len = %d, want 1", f.Len())
	}
	f.Activate()
	if f.Len() != 0 || f.held != nil {
		t.Errorf("after Activate: Len %d, held %v; want nothing kept", f.Len(), f.held)
	}
}

// A sender may change a stanza once Push returns; what was held must not.
func TestHeldIsCopied(t *testing.T) {
	f := New(0)
	el, _ := stanza.Parse(`<presence from='a@x/1' to='b@x/1'/>`)
	f.Push(el)
	el.SetAttr("to", "c@x/1")
	if out := f.Activate(); len(out) != 1 || out[0].Attr("to") != "b@x/1" {
		t.Errorf("held stanza changed with the original: %v", out)
	}
}
