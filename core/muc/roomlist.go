package muc

import (
	"context"
	"sort"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/xmlstream"
)

// maxListed bounds the room list (XEP-0045 §6.3); a longer list would be
// a stanza over the size limits of many clients.
const maxListed = 1000

// roomList is the service's disco#items: its public rooms, sorted, with
// their names (XEP-0045 §6.3). Service admins see every room. In a
// cluster each room is listed as its home node has it: this node's rooms,
// the rooms the other nodes are home of, and those of a node that did not
// answer in time as this node last saw them.
func (s *Service) roomList(ctx context.Context, from jid.JID) *xmlstream.Element {
	admin := s.isAdmin(from)
	var others map[string][]*xmlstream.Element
	if s.homes != nil {
		others = s.homes.ListOthers(ctx, admin)
	}
	items := map[string]*xmlstream.Element{}
	for _, r := range s.allRooms() {
		if s.homes != nil {
			if node, ok := s.homes.Claim(r.jid); ok && node != "" {
				if _, answered := others[node]; answered {
					continue // its home listed it, or no longer lists it
				}
			}
		}
		if it := r.listItem(admin); it != nil {
			items[it.Attr("jid")] = it
		}
	}
	for _, its := range others {
		for _, it := range its {
			if j, err := jid.Parse(it.Attr("jid")); err == nil && j.Domain() == s.domain.Domain() && j.Local() != "" {
				items[j.String()] = xmlstream.NewElement(NSDiscoItems, "item").SetAttr("jid", j.String()).SetAttr("name", it.Attr("name"))
			}
		}
	}
	keys := make([]string, 0, len(items))
	for k := range items {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	res := xmlstream.NewElement(NSDiscoItems, "query")
	for i, k := range keys {
		if i == maxListed {
			break
		}
		res.AppendChild(items[k])
	}
	return res
}

// ListHome returns the items of the listed rooms this node is home of,
// for another node's room list (core/cluster).
func (s *Service) ListHome(admin bool) []*xmlstream.Element {
	var out []*xmlstream.Element
	for _, r := range s.allRooms() {
		if s.homes != nil {
			if node, ok := s.homes.Claim(r.jid); !ok || node != "" {
				continue
			}
		}
		if it := r.listItem(admin); it != nil {
			out = append(out, it)
		}
	}
	return out
}

// listItem is the room's item in the room list, nil when the list does
// not show it (to a service admin when admin).
func (r *room) listItem(admin bool) *xmlstream.Element {
	r.mu.Lock()
	listed := !r.gone && (r.cfg.Public || admin) && !r.locked
	name := r.cfg.Name
	r.mu.Unlock()
	if !listed {
		return nil
	}
	if name == "" {
		name = r.jid.Local()
	}
	return xmlstream.NewElement(NSDiscoItems, "item").SetAttr("jid", r.jid.String()).SetAttr("name", name)
}
