package pubsub

import (
	"errors"

	"github.com/koi-im/koi/core/dataform"
	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// defaultConfig returns the default node configuration (XEP-0060 §8.3).
func (e *engine) defaultConfig(req *xmlstream.Element, ns string) (*xmlstream.Element, *stanza.Error) {
	d := xmlstream.NewElement(ns, "default").AppendChild(defaultConfig(e.pep, e.lim).xform("form"))
	return xmlstream.NewElement(ns, "pubsub").AppendChild(d), nil
}

// owned loads a node the requester must own.
func (e *engine) owned(c *call, el *xmlstream.Element) (string, nodeConfig, *stanza.Error) {
	name, serr := nodeName(el)
	if serr != nil {
		return "", nil, serr
	}
	_, cfg, serr := e.node(c, name)
	if serr != nil {
		return "", nil, serr
	}
	aff, serr := e.affiliation(c, name, c.from)
	if serr != nil {
		return "", nil, serr
	}
	if aff != "owner" {
		return "", nil, stanza.ErrForbidden.WithText("only the node's owner may do this")
	}
	return name, cfg, nil
}

func (e *engine) configureGet(c *call, req *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	name, cfg, serr := e.owned(c, req)
	if serr != nil {
		return nil, serr
	}
	conf := xmlstream.NewElement(NSOwner, "configure").SetAttr("node", name).AppendChild(cfg.xform("form"))
	return xmlstream.NewElement(NSOwner, "pubsub").AppendChild(conf), nil
}

// configureSet applies a submitted configuration (XEP-0060 §8.2.4).
func (e *engine) configureSet(c *call, req *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	name, cfg, serr := e.owned(c, req)
	if serr != nil {
		return nil, serr
	}
	f, err := dataform.Parse(req.Child(NSData, "x"))
	if err != nil {
		return nil, stanza.ErrBadRequest.WithText("configuration form: " + err.Error())
	}
	if f.Type == "cancel" {
		return nil, nil
	}
	if f.Type != "submit" || (f.FormType != "" && f.FormType != NSNodeConfig) {
		return nil, stanza.ErrBadRequest.WithText("want a submitted " + NSNodeConfig + " form")
	}
	next, cerr := cfg.apply(f, e.lim)
	if cerr != nil {
		return nil, e.configErr(cerr)
	}
	if serr := e.checkModel(next); serr != nil {
		return nil, serr
	}
	if err := c.st.ConfigurePubSubNode(c.ctx, sdk.PubSubNode{Service: c.service.String(), Node: name, Config: next}); err != nil {
		return nil, modules.BackendError(err)
	}
	if next.maxItems() < cfg.maxItems() {
		e.trim(c, name, next.maxItems())
	}
	if next.bool(fNotifyConfig) {
		ev := xmlstream.NewElement(NSEvent, "configuration").SetAttr("node", name)
		e.broadcast(c, name, next, ev)
	}
	return nil, nil
}

// trim drops the items beyond a lowered max_items at once, rather than at
// the next publish.
func (e *engine) trim(c *call, name string, keep int) {
	page, err := c.st.GetPubSubItems(c.ctx, sdk.PubSubItemQuery{Service: c.service.String(), Node: name, Max: sdk.MaxPubSubPage})
	if err != nil {
		e.log.Warn("items beyond max_items not trimmed", "service", c.service.String(), "node", name, "error", err)
		return
	}
	for i := keep; i < len(page.Items); i++ {
		if err := c.st.RetractPubSubItem(c.ctx, c.service.String(), name, page.Items[i].ID); err != nil && !errors.Is(err, sdk.ErrNotFound) {
			e.log.Warn("item beyond max_items not trimmed", "service", c.service.String(), "node", name, "error", err)
		}
	}
}

// deleteNode deletes a node (XEP-0060 §8.4).
func (e *engine) deleteNode(c *call, req *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	name, cfg, serr := e.owned(c, req)
	if serr != nil {
		return nil, serr
	}
	to := e.recipients(c, name, cfg)
	if err := c.st.DeletePubSubNode(c.ctx, c.service.String(), name); err != nil {
		return nil, modules.BackendError(err)
	}
	if cfg.bool(fNotifyDelete) {
		e.deliver(c.ctx, c.service, to, xmlstream.NewElement(NSEvent, "delete").SetAttr("node", name))
	}
	return nil, nil
}

// purge deletes every item of a node (XEP-0060 §8.5).
func (e *engine) purge(c *call, req *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	name, cfg, serr := e.owned(c, req)
	if serr != nil {
		return nil, serr
	}
	if err := c.st.PurgePubSubNode(c.ctx, c.service.String(), name); err != nil {
		return nil, modules.BackendError(err)
	}
	if cfg.bool(fNotifyRetract) {
		e.broadcast(c, name, cfg, xmlstream.NewElement(NSEvent, "purge").SetAttr("node", name))
	}
	return nil, nil
}

func (e *engine) ownerSubscriptions(c *call, req *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	name, _, serr := e.owned(c, req)
	if serr != nil {
		return nil, serr
	}
	subs, err := c.st.GetPubSubSubscriptions(c.ctx, c.service.String(), name, "")
	if err != nil {
		return nil, modules.BackendError(err)
	}
	out := xmlstream.NewElement(NSOwner, "subscriptions").SetAttr("node", name)
	for _, s := range subs {
		el := xmlstream.NewElement(NSOwner, "subscription").SetAttr("jid", s.JID).SetAttr("subscription", s.State)
		if s.SubID != "" {
			el.SetAttr("subid", s.SubID)
		}
		out.AppendChild(el)
	}
	return xmlstream.NewElement(NSOwner, "pubsub").AppendChild(out), nil
}

// ownerSetSubscriptions changes subscriptions (XEP-0060 §8.8.2): all are
// checked before any is stored.
func (e *engine) ownerSetSubscriptions(c *call, req *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	name, _, serr := e.owned(c, req)
	if serr != nil {
		return nil, serr
	}
	existing, err := c.st.GetPubSubSubscriptions(c.ctx, c.service.String(), name, "")
	if err != nil {
		return nil, modules.BackendError(err)
	}
	var changes []sdk.PubSubSubscription
	for _, el := range req.Elements() {
		if el.Local != "subscription" {
			continue
		}
		j, err := jid.Parse(el.Attr("jid"))
		if err != nil {
			return nil, stanza.ErrJIDMalformed
		}
		state := el.Attr("subscription")
		if state != "subscribed" && state != "none" {
			return nil, stanza.ErrNotAcceptable.WithText("subscription state must be subscribed or none")
		}
		s := sdk.PubSubSubscription{Service: c.service.String(), Node: name, JID: j.String(), SubID: el.Attr("subid"), State: state}
		matched := false
		for _, x := range existing {
			if x.JID == s.JID && (s.SubID == "" || s.SubID == x.SubID) {
				x.State = state
				changes = append(changes, x)
				matched = true
			}
		}
		if !matched && state == "subscribed" {
			if s.SubID == "" {
				s.SubID = newID()
			}
			changes = append(changes, s)
		}
	}
	for _, s := range changes {
		if err := c.st.SetPubSubSubscription(c.ctx, s); err != nil {
			return nil, modules.BackendError(err)
		}
	}
	return nil, nil
}

func (e *engine) ownerAffiliations(c *call, req *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	name, _, serr := e.owned(c, req)
	if serr != nil {
		return nil, serr
	}
	affs, err := c.st.GetPubSubAffiliations(c.ctx, c.service.String(), name, "")
	if err != nil {
		return nil, modules.BackendError(err)
	}
	out := xmlstream.NewElement(NSOwner, "affiliations").SetAttr("node", name)
	for _, a := range affs {
		out.AppendChild(xmlstream.NewElement(NSOwner, "affiliation").SetAttr("jid", a.JID).SetAttr("affiliation", a.Affiliation))
	}
	return xmlstream.NewElement(NSOwner, "pubsub").AppendChild(out), nil
}

// ownerSetAffiliations changes affiliations (XEP-0060 §8.9.2): all are
// checked before any is stored; an owner cannot give up the last
// ownership, nor the PEP owner theirs.
func (e *engine) ownerSetAffiliations(c *call, req *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	name, _, serr := e.owned(c, req)
	if serr != nil {
		return nil, serr
	}
	current, err := c.st.GetPubSubAffiliations(c.ctx, c.service.String(), name, "")
	if err != nil {
		return nil, modules.BackendError(err)
	}
	owners := map[string]bool{}
	for _, a := range current {
		if a.Affiliation == "owner" {
			owners[a.JID] = true
		}
	}
	var changes []sdk.PubSubAffiliation
	for _, el := range req.Elements() {
		if el.Local != "affiliation" {
			continue
		}
		j, err := jid.Parse(el.Attr("jid"))
		if err != nil {
			return nil, stanza.ErrJIDMalformed
		}
		j = j.Bare()
		a := el.Attr("affiliation")
		switch a {
		case "owner", "publisher", "publish-only", "member", "outcast", "none":
		default:
			return nil, stanza.ErrNotAcceptable.WithText("unknown affiliation " + a)
		}
		if e.pep && j == c.service {
			return nil, stanza.ErrNotAcceptable.WithText("the account owns its PEP nodes")
		}
		if e.pep && a == "owner" {
			return nil, stanza.ErrNotAcceptable.WithText("a PEP node has one owner, its account")
		}
		if a == "owner" {
			owners[j.String()] = true
		} else {
			delete(owners, j.String())
		}
		changes = append(changes, sdk.PubSubAffiliation{Service: c.service.String(), Node: name, JID: j.String(), Affiliation: a})
	}
	if !e.pep && len(owners) == 0 {
		return nil, stanza.ErrNotAcceptable.WithText("a node keeps at least one owner")
	}
	for _, a := range changes {
		if err := c.st.SetPubSubAffiliation(c.ctx, a); err != nil {
			return nil, modules.BackendError(err)
		}
	}
	return nil, nil
}
