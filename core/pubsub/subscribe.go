package pubsub

import (
	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// subscribe subscribes a JID of the requester (XEP-0060 §6.1).
func (e *engine) subscribe(c *call, sub, opts *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	name, serr := nodeName(sub)
	if serr != nil {
		return nil, serr
	}
	j, err := jid.Parse(sub.Attr("jid"))
	if err != nil || j.Bare() != c.from.Bare() {
		return nil, errInvalidJID
	}
	if opts != nil && opts.Child(NSData, "x") != nil {
		return nil, errSubOptionsUnsupp
	}
	_, cfg, serr := e.node(c, name)
	if serr != nil {
		return nil, serr
	}
	if serr := e.mayRetrieve(c, name, cfg, c.from); serr != nil {
		return nil, serr
	}
	subs, err := c.st.GetPubSubSubscriptions(c.ctx, c.service.String(), name, "")
	if err != nil {
		return nil, modules.BackendError(err)
	}
	s := sdk.PubSubSubscription{Service: c.service.String(), Node: name, JID: j.String(), SubID: newID(), State: "subscribed"}
	found := false
	for _, x := range subs {
		if x.JID == s.JID {
			s, found = x, true
			break
		}
	}
	if !found {
		if err := c.st.SetPubSubSubscription(c.ctx, s); err != nil {
			return nil, modules.BackendError(err)
		}
	}
	if sl := cfg.str(fSendLast); sl == "on_sub" || sl == "on_sub_and_presence" {
		e.sendLast(c.ctx, c.st, c.service, name, cfg, j)
	}
	return xmlstream.NewElement(NS, "pubsub").AppendChild(subscriptionEl(NS, s)), nil
}

func subscriptionEl(ns string, s sdk.PubSubSubscription) *xmlstream.Element {
	el := xmlstream.NewElement(ns, "subscription").SetAttr("node", s.Node).SetAttr("jid", s.JID)
	if s.SubID != "" {
		el.SetAttr("subid", s.SubID)
	}
	return el.SetAttr("subscription", s.State)
}

// unsubscribe removes a subscription (XEP-0060 §6.2).
func (e *engine) unsubscribe(c *call, u *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	name, serr := nodeName(u)
	if serr != nil {
		return nil, serr
	}
	j, err := jid.Parse(u.Attr("jid"))
	if err != nil || j.Bare() != c.from.Bare() {
		return nil, errInvalidJID
	}
	if _, _, serr := e.node(c, name); serr != nil {
		return nil, serr
	}
	subs, err := c.st.GetPubSubSubscriptions(c.ctx, c.service.String(), name, "")
	if err != nil {
		return nil, modules.BackendError(err)
	}
	subid := u.Attr("subid")
	var mine []sdk.PubSubSubscription
	for _, s := range subs {
		if s.JID == j.String() {
			mine = append(mine, s)
		}
	}
	if len(mine) == 0 {
		return nil, errNotSubscribed
	}
	for _, s := range mine {
		if subid != "" && s.SubID != subid {
			continue
		}
		s.State = "none"
		if err := c.st.SetPubSubSubscription(c.ctx, s); err != nil {
			return nil, modules.BackendError(err)
		}
		if subid != "" {
			return nil, nil
		}
	}
	if subid != "" {
		return nil, errInvalidSubID
	}
	return nil, nil
}

// subscriptions lists the requester's subscriptions (XEP-0060 §5.6).
func (e *engine) subscriptions(c *call, req *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	subs, err := c.st.GetPubSubSubscriptions(c.ctx, c.service.String(), "", c.from.Bare().String())
	if err != nil {
		return nil, modules.BackendError(err)
	}
	node := req.Attr("node")
	out := xmlstream.NewElement(NS, "subscriptions")
	if node != "" {
		out.SetAttr("node", node)
	}
	for _, s := range subs {
		if node == "" || s.Node == node {
			out.AppendChild(subscriptionEl(NS, s))
		}
	}
	return xmlstream.NewElement(NS, "pubsub").AppendChild(out), nil
}

// affiliations lists the requester's affiliations (XEP-0060 §5.7).
func (e *engine) affiliations(c *call, req *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	node := req.Attr("node")
	out := xmlstream.NewElement(NS, "affiliations")
	if node != "" {
		out.SetAttr("node", node)
	}
	add := func(n, a string) {
		if node == "" || n == node {
			out.AppendChild(xmlstream.NewElement(NS, "affiliation").SetAttr("node", n).SetAttr("affiliation", a))
		}
	}
	if e.pep && c.from.Bare() == c.service {
		nodes, err := c.st.ListPubSubNodes(c.ctx, c.service.String())
		if err != nil {
			return nil, modules.BackendError(err)
		}
		for _, n := range nodes {
			add(n.Node, "owner")
		}
	} else {
		affs, err := c.st.GetPubSubAffiliations(c.ctx, c.service.String(), "", c.from.Bare().String())
		if err != nil {
			return nil, modules.BackendError(err)
		}
		for _, a := range affs {
			add(a.Node, a.Affiliation)
		}
	}
	return xmlstream.NewElement(NS, "pubsub").AppendChild(out), nil
}
