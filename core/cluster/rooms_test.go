package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
)

// roomsCluster is a cluster name of the test's own, so that parallel runs
// do not meet.
func roomsCluster(t *testing.T) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "rt" + hex.EncodeToString(b[:])
}

// roomsNode starts a node of cluster name on url; the chat service
// conference.example.com's forwarded stanzas go to got.
func roomsNode(t *testing.T, url, name, node string, lease time.Duration, got chan<- *xmlstream.Element) (*Cluster, *RoomHomes) {
	t.Helper()
	rt := router.New()
	log := hclog.NewNullLogger()
	c := New(Config{URL: url, Node: node, Lease: lease, Name: name}, log, rt, modules.New(log, rt, nil, "test"))
	// Start's context is the node's life: its watchers end with it.
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := c.Rooms("conference.example.com", chanService(got))
	return c, h
}

// chanService is a chat service that hands what it is given to a channel.
type chanService chan<- *xmlstream.Element

func (c chanService) Deliver(_ context.Context, el *xmlstream.Element) { c <- el }

func (c chanService) SessionsGone(context.Context, []jid.JID) {}

func (c chanService) NodeGone(context.Context) {}

func (c chanService) ListHome(bool) []*xmlstream.Element { return nil }

// crash ends c as a crash would: no claim released, no word to the others.
func crash(c *Cluster) {
	c.nc.Close()
	close(c.stop)
	c.wg.Wait()
}

func stopNode(c *Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.Stop(ctx)
}

// TestRoomHomes: the first node to need a room becomes its home, the other
// learns it and forwards to it, a released room goes to the next node
// that needs it, and a node that restarts gives up its old claims.
func TestRoomHomes(t *testing.T) {
	url := natsURL(t)
	name := roomsCluster(t)
	gotA, gotB := make(chan *xmlstream.Element, 4), make(chan *xmlstream.Element, 4)
	a, ha := roomsNode(t, url, name, "a", 10*time.Second, gotA)
	b, hb := roomsNode(t, url, name, "b", 10*time.Second, gotB)
	defer stopNode(b)
	ctx := context.Background()
	room := jid.MustParse("hall@conference.example.com")

	if node, fresh, err := ha.Home(ctx, room); node != "" || !fresh || err != nil {
		t.Fatalf("a claims: node %q fresh %v err %v; want a fresh claim", node, fresh, err)
	}
	if node, fresh, err := ha.Home(ctx, room); node != "" || fresh || err != nil {
		t.Fatalf("a again: node %q fresh %v err %v; want its claim", node, fresh, err)
	}
	// b may not have seen the claim yet: its create fails and it reads it.
	if node, fresh, err := hb.Home(ctx, jid.MustParse("hall@conference.example.com/Nick")); node != "a" || fresh || err != nil {
		t.Fatalf("b: node %q fresh %v err %v; want a", node, fresh, err)
	}

	el, err := stanza.Parse(`<message xmlns='jabber:client' type='groupchat' from='u@example.com/r' to='hall@conference.example.com'><body>hi</body></message>`)
	if err != nil {
		t.Fatal(err)
	}
	if err := hb.Forward(ctx, "a", el); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-gotA:
		if m.Attr("to") != room.String() || m.Attr("from") != "u@example.com/r" {
			t.Fatalf("a got %s", m.AppendXML(nil, ""))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the forwarded stanza did not reach a")
	}
	// A stanza passed around too often is refused, not looped.
	if err := hb.Forward(context.WithValue(ctx, hopsKey{}, maxHops), "a", el); !errors.Is(err, ErrNoHome) {
		t.Fatalf("forward after %d hops: %v, want ErrNoHome", maxHops, err)
	}

	ha.Release(ctx, room)
	claimsEventually(t, hb, room, "b after a released")
	if node, _, err := ha.Home(ctx, room); node != "b" || err != nil {
		t.Fatalf("a after b claimed: node %q err %v; want b", node, err)
	}

	// a claims another room and restarts: the room is free again.
	other := jid.MustParse("other@conference.example.com")
	if node, _, _ := ha.Home(ctx, other); node != "" {
		t.Fatalf("a should home %s, got %q", other, node)
	}
	crash(a)
	a2, ha2 := roomsNode(t, url, name, "a", 10*time.Second, gotA)
	if node, fresh, err := ha2.Home(ctx, other); node != "" || !fresh || err != nil {
		t.Fatalf("a after a restart: node %q fresh %v err %v; want a fresh claim", node, fresh, err)
	}
	stopNode(a2)
	// A node that stops gives its rooms up.
	claimsEventually(t, hb, other, "b after a stopped")
}

// claimsEventually waits until h claims room afresh: until its node has
// seen the claim go, it names the old home (to which it would forward).
func claimsEventually(t *testing.T, h *RoomHomes, room jid.JID, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		node, fresh, err := h.Home(context.Background(), room)
		switch {
		case err != nil:
			t.Fatalf("%s: %v", what, err)
		case node == "" && fresh:
			return
		case node == "":
			t.Fatalf("%s: a claim that is not fresh", what)
		case time.Now().After(deadline):
			t.Fatalf("%s: %q is still the home after 5s", what, node)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRoomHomeDies: the rooms of a node that stops sending heartbeats are
// claimed by the next node that needs them once the lease has run out.
func TestRoomHomeDies(t *testing.T) {
	url := natsURL(t)
	name := roomsCluster(t)
	got := make(chan *xmlstream.Element, 4)
	const lease = time.Second
	a, ha := roomsNode(t, url, name, "a", lease, got)
	b, hb := roomsNode(t, url, name, "b", lease, got)
	defer stopNode(b)
	ctx := context.Background()
	room := jid.MustParse("hall@conference.example.com")
	if node, _, err := ha.Home(ctx, room); node != "" || err != nil {
		t.Fatalf("a claims: %q %v", node, err)
	}
	time.Sleep(lease / 2) // b hears a's heartbeats
	if node, _, err := hb.Home(ctx, room); node != "a" || err != nil {
		t.Fatalf("b while a lives: %q %v, want a", node, err)
	}
	crash(a)
	deadline := time.Now().Add(10 * lease)
	for {
		node, fresh, err := hb.Home(ctx, room)
		if err != nil {
			t.Fatal(err)
		}
		if node == "" {
			if !fresh {
				t.Fatal("b took the room over without a fresh claim")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b still sees %q as the home ten leases after it died", node)
		}
		time.Sleep(lease / 4)
	}
}

// TestRoomSenderLearned: the home of a room learns the session of a
// forwarded stanza's sender from the forwarding node before the registry
// brings it, so the room's answers reach it; a session the registry never
// had is forgotten a lease later.
func TestRoomSenderLearned(t *testing.T) {
	url := natsURL(t)
	name := roomsCluster(t)
	got := make(chan *xmlstream.Element, 4)
	const lease = time.Second
	a, _ := roomsNode(t, url, name, "a", lease, got)
	defer stopNode(a)
	b, hb := roomsNode(t, url, name, "b", lease, got)
	defer stopNode(b)
	el, err := stanza.Parse(`<presence xmlns='jabber:client' from='u@example.com/r' to='hall@conference.example.com/U'><x xmlns='http://jabber.org/protocol/muc'/></presence>`)
	if err != nil {
		t.Fatal(err)
	}
	if err := hb.Forward(context.Background(), "a", el); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the forwarded join did not reach a")
	}
	u := jid.MustParse("u@example.com/r")
	s := a.rt.Session(u)
	if s == nil || !s.Remote() {
		t.Fatalf("a does not route to the sender: %v", s)
	}
	deadline := time.Now().Add(5 * lease)
	for a.rt.Session(u) != nil {
		if time.Now().After(deadline) {
			t.Fatal("a session the registry never had is still routed to five leases later")
		}
		time.Sleep(lease / 4)
	}
}
