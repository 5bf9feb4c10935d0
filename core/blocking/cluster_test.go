package blocking

import (
	"context"
	"slices"
	"testing"

	"github.com/koi-im/koi/core/jid"
)

// TestClusterRefresh runs two nodes over one backend, the announcement
// wired as core/cluster wires it (node 1's change refreshes node 2 before
// the result): a block made on node 1 is enforced at once by node 2, which
// had the list cached, and pushed to alice's resource there that asked for
// the list; the unblock too.
func TestClusterRefresh(t *testing.T) {
	n1 := newEnv(t)
	n2 := newNode(t, n1.store)
	n1.b.OnChange(func(_ context.Context, owner jid.JID) { n2.b.Refresh(owner) })

	a1 := n1.online("alice@example.com/one")
	a2 := n2.online("alice@example.com/two")
	bob := n2.online("bob@example.com/x")
	for _, c := range []*client{a1, a2, bob} {
		c.rec.Take()
	}
	if got := a2.blocklist(); len(got) != 0 {
		t.Fatalf("alice's list on node 2: %v", got)
	}
	ctx := context.Background()
	alice, bobJID := jid.MustParse("alice@example.com"), jid.MustParse("bob@example.com/x")
	if n2.b.Blocked(ctx, alice, bobJID) {
		t.Fatal("node 2 blocks bob before any block")
	}

	a1.wantResult(`<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='bob@example.com'/></block></iq>`)
	if !n2.b.Blocked(ctx, alice, bobJID) {
		t.Fatal("node 2 still lets bob through after alice blocked him on node 1")
	}
	push := a2.rec.Take()
	if len(push) != 1 || push[0].Child(NS, "block") == nil || !slices.Equal(items(push[0]), []string{"bob@example.com"}) {
		t.Fatalf("alice's resource on node 2 got %v, want one block push of bob", push)
	}
	bob.send(`<message to='alice@example.com/two' type='chat' id='m1'><body>hi</body></message>`)
	if got := a2.rec.Take(); len(got) != 0 {
		t.Fatalf("a blocked message reached alice on node 2: %s", got[0])
	}

	a1.wantResult(`<iq type='set' id='u1'><unblock xmlns='urn:xmpp:blocking'/></iq>`)
	if n2.b.Blocked(ctx, alice, bobJID) {
		t.Fatal("node 2 still blocks bob after alice unblocked everyone on node 1")
	}
	push = a2.rec.Take()
	if len(push) != 1 || push[0].Child(NS, "unblock") == nil || !slices.Equal(items(push[0]), []string{"bob@example.com"}) {
		t.Fatalf("alice's resource on node 2 got %v, want one unblock push of bob", push)
	}
	bob.send(`<message to='alice@example.com/two' type='chat' id='m2'><body>hi again</body></message>`)
	if got := a2.rec.Take(); len(got) != 1 || got[0].Local != "message" {
		t.Fatalf("after the unblock alice on node 2 got %v, want bob's message", got)
	}

	// A list node 2 holds that nobody there asked for is dropped, and
	// read again at its next use.
	n2.b.Refresh(jid.MustParse("carol@example.com"))
	a1.wantResult(`<iq type='set' id='b2'><block xmlns='urn:xmpp:blocking'><item jid='carol@example.com'/></block></iq>`)
	if !n2.b.Blocked(ctx, alice, jid.MustParse("carol@example.com")) {
		t.Fatal("node 2 does not block carol after alice blocked her on node 1")
	}
}
