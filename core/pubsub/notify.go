package pubsub

import (
	"context"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// recipients lists who hears of a change to a node: its subscribers that
// may still see it and, on PEP, the sessions that asked through their
// capabilities (XEP-0163 §4.3). A bare JID's subscription covers its
// resources, which are then not listed again.
func (e *engine) recipients(c *call, name string, cfg nodeConfig) []jid.JID {
	if !cfg.bool(fDeliverNotify) {
		return nil
	}
	var out []jid.JID
	seen := map[jid.JID]bool{}
	subs, err := c.st.GetPubSubSubscriptions(c.ctx, c.service.String(), name, "")
	if err != nil {
		e.log.Warn("subscribers not notified: subscriptions unreadable", "service", c.service.String(), "node", name, "error", err)
	}
	allowed := map[jid.JID]bool{}
	for _, s := range subs {
		if s.State != "subscribed" {
			continue
		}
		j, err := jid.Parse(s.JID)
		if err != nil || seen[j] {
			continue
		}
		ok, known := allowed[j.Bare()]
		if !known {
			ok = e.mayRetrieve(c, name, cfg, j) == nil
			allowed[j.Bare()] = ok
		}
		if ok {
			seen[j] = true
			out = append(out, j)
		}
	}
	if e.watchers != nil {
		for _, j := range e.watchers(c.ctx, c.service, name, cfg) {
			if !seen[j] && !seen[j.Bare()] {
				seen[j] = true
				out = append(out, j)
			}
		}
	}
	return out
}

// broadcast tells the node's recipients of ev (a child of <event/>).
func (e *engine) broadcast(c *call, name string, cfg nodeConfig, ev *xmlstream.Element) {
	e.deliver(c.ctx, c.service, e.recipients(c, name, cfg), ev)
}

// notifyItem tells the recipients of a published item (XEP-0060 §7.1.2).
func (e *engine) notifyItem(c *call, name string, cfg nodeConfig, it sdk.PubSubItem, payload *xmlstream.Element) {
	to := e.recipients(c, name, cfg)
	if len(to) == 0 {
		return
	}
	e.deliver(c.ctx, c.service, to, e.itemsEvent(name, it, payload, cfg))
}

func (e *engine) itemsEvent(name string, it sdk.PubSubItem, payload *xmlstream.Element, cfg nodeConfig) *xmlstream.Element {
	ie := xmlstream.NewElement(NSEvent, "item").SetAttr("id", it.ID)
	if cfg.str(fItemReply) == "publisher" && it.Publisher != "" {
		ie.SetAttr("publisher", it.Publisher)
	}
	if cfg.bool(fDeliverPay) && payload != nil {
		ie.AppendChild(payload)
	}
	return xmlstream.NewElement(NSEvent, "items").SetAttr("node", name).AppendChild(ie)
}

// deliver sends one event message per recipient. The message body is
// built once; each copy only gets its own to.
func (e *engine) deliver(ctx context.Context, service jid.JID, to []jid.JID, ev *xmlstream.Element) {
	if len(to) == 0 {
		return
	}
	msg := xmlstream.NewElement(xmlstream.NSClient, "message").
		SetAttr("from", service.String()).SetAttr("type", "headline").SetAttr("id", newID())
	msg.AppendChild(xmlstream.NewElement(NSEvent, "event").AppendChild(ev))
	for _, j := range to {
		m := &xmlstream.Element{Space: msg.Space, Local: msg.Local, Children: msg.Children}
		m.Attrs = append(make([]xmlstream.Attr, 0, len(msg.Attrs)+1), msg.Attrs...)
		m.SetAttr("to", j.String())
		e.send(ctx, m)
	}
}

// sendLast sends the node's newest item to one JID (XEP-0060 §6.1.7, on
// subscription; XEP-0163 §4.3.2, on presence).
func (e *engine) sendLast(ctx context.Context, st Store, service jid.JID, name string, cfg nodeConfig, to jid.JID) {
	if !cfg.bool(fPersistItems) {
		return
	}
	page, err := st.GetPubSubItems(ctx, sdk.PubSubItemQuery{Service: service.String(), Node: name, Max: 1})
	if err != nil {
		e.log.Warn("last item not sent", "service", service.String(), "node", name, "to", to.String(), "error", err)
		return
	}
	if len(page.Items) == 0 {
		return
	}
	it := page.Items[0]
	var payload *xmlstream.Element
	if it.Payload != "" {
		p, err := parsePayload(it.Payload)
		if err != nil {
			e.log.Warn("stored item unreadable", "service", service.String(), "node", name, "item", it.ID, "error", err)
			return
		}
		payload = p
	}
	e.deliver(ctx, service, []jid.JID{to}, e.itemsEvent(name, it, payload, cfg))
}
