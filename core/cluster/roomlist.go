package cluster

import (
	"context"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
)

// A chat service's room list (its disco#items, XEP-0045 §6.3) is put
// together by the node asked for it: each room is listed as its home
// sees it, so the node that is asked asks the others for the rooms they
// are home of, on the subject NAME.rooms.list.DOMAIN (base64url), and
// waits a moment for their answers (listWait). A node that does not
// answer in time has its rooms listed as the asking node last saw them.

// listWait bounds the wait for the other nodes' room lists.
const listWait = time.Second

// RoomLister is a chat service that lists its rooms to the other nodes.
type RoomLister interface {
	// ListHome returns the disco#items items of the rooms this node is
	// home of that the service's room list shows (to a service admin,
	// hidden ones too).
	ListHome(admin bool) []*xmlstream.Element
}

func (c *Cluster) listSubject(domain string) string {
	return c.subj("rooms.list." + base64.RawURLEncoding.EncodeToString([]byte(domain)))
}

// serveList answers the other nodes' requests for domain's room list
// with svc's.
func (c *Cluster) serveList(domain string, svc RoomLister) error {
	sub, err := c.nc.Subscribe(c.listSubject(domain), func(m *nats.Msg) {
		q := xmlstream.NewElement("", "items")
		for _, it := range svc.ListHome(string(m.Data) == "admin") {
			q.AppendChild(it)
		}
		reply := nats.NewMsg(m.Reply)
		reply.Header.Set(hdrNode, c.cfg.Node)
		reply.Data = q.AppendXML(nil, "")
		if err := m.RespondMsg(reply); err != nil {
			c.log.Debug("answering a room list request failed", "service", domain, "error", err)
		}
	})
	if err != nil {
		return fmt.Errorf("cluster: subscribe to room list requests: %w", err)
	}
	c.subs = append(c.subs, sub)
	return nil
}

// Claim reports the node whose claim room has ("" for this node), and
// whether it has one.
func (h *RoomHomes) Claim(room jid.JID) (node string, ok bool) {
	h.r.mu.Lock()
	cl := h.r.claims[roomKey(room)]
	h.r.mu.Unlock()
	if cl.node == "" {
		return "", false
	}
	if cl.node == h.r.c.cfg.Node {
		return "", true
	}
	return cl.node, true
}

// ListOthers asks the other live nodes for the rooms of the service they
// are home of that its room list shows (admin: as to a service admin),
// and returns their items by node, for the nodes that answered within
// listWait.
func (h *RoomHomes) ListOthers(ctx context.Context, admin bool) map[string][]*xmlstream.Element {
	c := h.r.c
	want := c.otherLiveNodes()
	out := map[string][]*xmlstream.Element{}
	if want == 0 {
		return out
	}
	inbox := c.nc.NewInbox()
	sub, err := c.nc.SubscribeSync(inbox)
	if err != nil {
		c.log.Warn("asking the other nodes for their rooms failed", "service", h.domain, "error", err)
		return out
	}
	defer sub.Unsubscribe() //nolint:errcheck // the inbox is this call's alone
	req := []byte("user")
	if admin {
		req = []byte("admin")
	}
	if err := c.nc.PublishRequest(c.listSubject(h.domain), inbox, req); err != nil {
		c.log.Warn("asking the other nodes for their rooms failed", "service", h.domain, "error", err)
		return out
	}
	ctx, cancel := context.WithTimeout(ctx, listWait)
	defer cancel()
	for len(out) < want {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			c.log.Debug("room list: not every node answered in time", "service", h.domain, "answered", len(out), "asked", want)
			break
		}
		node := m.Header.Get(hdrNode)
		if node == "" || node == c.cfg.Node {
			continue
		}
		items, err := stanza.Parse(string(m.Data))
		if err != nil {
			c.log.Warn("room list: an unreadable answer", "node", node, "error", err)
			continue
		}
		out[node] = items.Elements()
	}
	return out
}

// otherLiveNodes counts the nodes other than this one that sent a
// heartbeat within the lease.
func (c *Cluster) otherLiveNodes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for node, t := range c.seen {
		if node != c.cfg.Node && time.Since(t) <= c.cfg.Lease {
			n++
		}
	}
	return n
}
