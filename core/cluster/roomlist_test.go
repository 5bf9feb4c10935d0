package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/xmlstream"
)

// listService is a chat service whose room list is fixed: a public room,
// and a hidden one only admins see.
type listService struct{ public, hidden string }

func (listService) Deliver(context.Context, *xmlstream.Element) {}
func (listService) SessionsGone(context.Context, []jid.JID)     {}
func (listService) NodeGone(context.Context)                    {}

func (l listService) ListHome(admin bool) []*xmlstream.Element {
	out := []*xmlstream.Element{xmlstream.NewElement("http://jabber.org/protocol/disco#items", "item").SetAttr("jid", l.public)}
	if admin {
		out = append(out, xmlstream.NewElement("http://jabber.org/protocol/disco#items", "item").SetAttr("jid", l.hidden))
	}
	return out
}

func listNode(t *testing.T, url, name, node string, svc listService) (*Cluster, *RoomHomes) {
	t.Helper()
	rt := router.New()
	log := hclog.NewNullLogger()
	c := New(Config{URL: url, Node: node, Lease: 2 * time.Second, Name: name}, log, rt, modules.New(log, rt, nil, "test"))
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopNode(c) })
	return c, c.Rooms("conference.example.com", svc)
}

// TestRoomList: a node gets the room lists of the other live nodes, as a
// user or as an admin sees them, and knows who claimed a room.
func TestRoomList(t *testing.T) {
	url := natsURL(t)
	name := roomsCluster(t)
	_, ha := listNode(t, url, name, "a", listService{"a-room@conference.example.com", "a-hidden@conference.example.com"})
	_, hb := listNode(t, url, name, "b", listService{"b-room@conference.example.com", "b-hidden@conference.example.com"})
	ctx := context.Background()

	// Each learns of the other from its heartbeats.
	eventually := func(h *RoomHomes, admin bool, other string) map[string][]*xmlstream.Element {
		deadline := time.Now().Add(10 * time.Second)
		for {
			got := h.ListOthers(ctx, admin)
			if len(got[other]) > 0 || time.Now().After(deadline) {
				return got
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if got := eventually(ha, false, "b"); len(got) != 1 || len(got["b"]) != 1 || got["b"][0].Attr("jid") != "b-room@conference.example.com" {
		t.Fatalf("a's view of b's rooms: %v", got)
	}
	if got := eventually(hb, true, "a"); len(got["a"]) != 2 || got["a"][1].Attr("jid") != "a-hidden@conference.example.com" {
		t.Fatalf("b's admin view of a's rooms: %v", got)
	}

	room := jid.MustParse("hall@conference.example.com")
	if _, ok := ha.Claim(room); ok {
		t.Fatal("a claim before anyone claimed")
	}
	if node, _, err := hb.Home(ctx, room); node != "" || err != nil {
		t.Fatalf("b claims: %q %v", node, err)
	}
	if node, ok := hb.Claim(room); node != "" || !ok {
		t.Fatalf("b's own claim: %q %v", node, ok)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		node, ok := ha.Claim(room)
		if node == "b" && ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a sees the claim as %q %v", node, ok)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
