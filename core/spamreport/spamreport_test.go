package spamreport

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
)

func TestParse(t *testing.T) {
	alice, bob := jid.MustParse("alice@example.com/pc"), jid.MustParse("bob@example.net")
	var ids strings.Builder
	for i := range maxIDs + 5 {
		fmt.Fprintf(&ids, "<stanza-id xmlns='urn:xmpp:sid:0' by='alice@example.com' id='s%d'/>", i)
	}
	tests := []struct {
		name, block string
		want        string // "reason|text|ids", "" for no report
	}{
		{"version 1 in the item", `<block xmlns='urn:xmpp:blocking'><item jid='bob@example.net'><report xmlns='urn:xmpp:reporting:1' reason='urn:xmpp:reporting:abuse'><text> threats </text><stanza-id xmlns='urn:xmpp:sid:0' by='alice@example.com' id='a1'/></report></item></block>`, "abuse|threats|1"},
		{"version 0 beside the items (slixmpp)", `<block xmlns='urn:xmpp:blocking'><item jid='bob@example.net'/><report xmlns='urn:xmpp:reporting:0'><spam/><text>bot</text></report></block>`, "spam|bot|0"},
		{"version 0 abuse", `<block xmlns='urn:xmpp:blocking'><item jid='bob@example.net'><report xmlns='urn:xmpp:reporting:0'><abuse/></report></item></block>`, "abuse||0"},
		{"an unknown reason is spam", `<block xmlns='urn:xmpp:blocking'><item jid='bob@example.net'><report xmlns='urn:xmpp:reporting:1' reason='urn:example:weird'/></item></block>`, "spam||0"},
		{"ids are bounded", `<block xmlns='urn:xmpp:blocking'><item jid='bob@example.net'><report xmlns='urn:xmpp:reporting:1' reason='urn:xmpp:reporting:spam'>` + ids.String() + `</report></item></block>`, fmt.Sprintf("spam||%d", maxIDs)},
		{"no report", `<block xmlns='urn:xmpp:blocking'><item jid='bob@example.net'/></block>`, ""},
		{"another namespace", `<block xmlns='urn:xmpp:blocking'><item jid='bob@example.net'><report xmlns='urn:example:report'/></item></block>`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := stanza.Parse(tc.block)
			if err != nil {
				t.Fatal(err)
			}
			r, ok := Parse(alice, bob, b, b.Elements()[0])
			got := ""
			if ok {
				got = fmt.Sprintf("%s|%s|%d", r.Reason, r.Text, len(r.StanzaIDs))
				if r.Reporter.String() != "alice@example.com" || r.Reported != bob {
					t.Errorf("reporter %s, reported %s", r.Reporter, r.Reported)
				}
			}
			if got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestForwardedToAdminsWithinLimits: every admin of the reporter's host
// gets each report, up to perReporter an hour from one reporter.
func TestForwardedToAdminsWithinLimits(t *testing.T) {
	now := time.Unix(1e9, 0)
	got := map[string]int{}
	s := New(Config{
		Admins: func(host string) []string {
			if host == "example.com" {
				return []string{"root@example.com", "ops@example.com"}
			}
			return nil
		},
		Send: func(_ context.Context, el *xmlstream.Element, to jid.JID) bool {
			if el.Attr("to") != to.String() || el.Child(NS, "report") == nil {
				t.Errorf("sent %s to %s", el, to)
			}
			got[to.String()]++
			return true
		},
		Now: func() time.Time { return now },
	})
	r := Report{Reporter: jid.MustParse("alice@example.com"), Reported: jid.MustParse("bob@example.net"), Reason: "spam"}
	for range perReporter + 3 {
		s.Reported(context.Background(), r)
	}
	if got["root@example.com"] != perReporter || got["ops@example.com"] != perReporter {
		t.Fatalf("forwarded %v, want %d each", got, perReporter)
	}
	now = now.Add(window + time.Second)
	s.Reported(context.Background(), r)
	if got["root@example.com"] != perReporter+1 {
		t.Fatalf("after the window: %v", got)
	}
	// A host without admins only logs.
	s.Reported(context.Background(), Report{Reporter: jid.MustParse("eve@example.org"), Reported: r.Reported, Reason: "abuse"})
	if len(got) != 2 {
		t.Fatalf("sent to %v", got)
	}
}
