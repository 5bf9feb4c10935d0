package pubsub

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/koi-im/koi/core/dataform"
	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// create makes a node (XEP-0060 §8.1).
func (e *engine) create(c *call, cr, configure *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	name := cr.Attr("node")
	if name == "" {
		if e.pep {
			return nil, errNodeIDRequired
		}
		name = newID() // instant node, §8.1.2
	} else if _, serr := nodeName(cr); serr != nil {
		return nil, serr
	}
	if !e.mayCreateOn(c) {
		return nil, stanza.ErrForbidden.WithText("you may not create nodes here")
	}
	cfg := defaultConfig(e.pep, e.lim)
	if configure != nil {
		if x := configure.Child(NSData, "x"); x != nil {
			f, err := dataform.Parse(x)
			if err != nil {
				return nil, stanza.ErrBadRequest.WithText("configuration form: " + err.Error())
			}
			if f.FormType != "" && f.FormType != NSNodeConfig {
				return nil, stanza.ErrBadRequest.WithText("configuration form of type " + f.FormType)
			}
			var cerr *configError
			if cfg, cerr = cfg.apply(f, e.lim); cerr != nil {
				return nil, e.configErr(cerr)
			}
		}
	}
	if serr := e.checkModel(cfg); serr != nil {
		return nil, serr
	}
	defer e.lock(c.service)()
	if serr := e.createLocked(c, name, cfg); serr != nil {
		return nil, serr
	}
	ps := xmlstream.NewElement(NS, "pubsub")
	ps.AppendChild(xmlstream.NewElement(NS, "create").SetAttr("node", name))
	return ps, nil
}

func (e *engine) mayCreateOn(c *call) bool {
	if e.pep {
		return c.from.Bare() == c.service
	}
	return e.mayCreate != nil && e.mayCreate(c.service, c.from)
}

// checkModel refuses an access model the kind of service cannot apply:
// presence and roster need an owner with a roster, which only PEP has.
func (e *engine) checkModel(cfg nodeConfig) *stanza.Error {
	if m := cfg.accessModel(); !e.pep && (m == AccessPresence || m == AccessRoster) {
		return errAccessUnsupported.WithText("this service's nodes are open or whitelist")
	}
	return nil
}

func (e *engine) configErr(ce *configError) *stanza.Error {
	if ce.field == fAccessModel {
		return errAccessUnsupported.WithText(ce.Error())
	}
	return stanza.ErrNotAcceptable.WithText(ce.Error())
}

// createLocked creates a node under the service lock, within the node
// limit.
func (e *engine) createLocked(c *call, name string, cfg nodeConfig) *stanza.Error {
	owner := c.from.Bare().String()
	if e.pep {
		nodes, err := c.st.ListPubSubNodes(c.ctx, c.service.String())
		if err != nil {
			return modules.BackendError(err)
		}
		for _, n := range nodes {
			if n.Node == name {
				return stanza.ErrConflict.WithText("the node exists")
			}
		}
		if len(nodes) >= e.lim.MaxNodes {
			return perr(stanza.ErrNotAllowed, "max-nodes-exceeded").WithText(fmt.Sprintf("an account may have at most %d PEP nodes", e.lim.MaxNodes))
		}
		owner = c.service.String()
	} else {
		affs, err := c.st.GetPubSubAffiliations(c.ctx, c.service.String(), "", owner)
		if err != nil {
			return modules.BackendError(err)
		}
		owned := 0
		for _, a := range affs {
			if a.Affiliation == "owner" {
				owned++
			}
		}
		if owned >= e.lim.MaxNodes {
			return perr(stanza.ErrNotAllowed, "max-nodes-exceeded").WithText(fmt.Sprintf("a user may own at most %d nodes here", e.lim.MaxNodes))
		}
	}
	n := sdk.PubSubNode{Service: c.service.String(), Node: name, Config: cfg, Created: e.now().UTC().Truncate(time.Millisecond)}
	if err := c.st.CreatePubSubNode(c.ctx, n, owner); err != nil {
		if errors.Is(err, sdk.ErrExists) {
			return stanza.ErrConflict.WithText("the node exists")
		}
		return modules.BackendError(err)
	}
	return nil
}

// publish stores an item and notifies (XEP-0060 §7.1), creating the node
// when it does not exist (XEP-0163 §3, auto-create) with the
// publish-options as its configuration (XEP-0060 §7.1.5).
func (e *engine) publish(c *call, pub, opts *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	name, serr := nodeName(pub)
	if serr != nil {
		return nil, serr
	}
	var items []*xmlstream.Element
	for _, k := range pub.Elements() {
		if k.Space == NS && k.Local == "item" {
			items = append(items, k)
		}
	}
	if len(items) == 0 {
		return nil, errItemRequired
	}
	if len(items) > 1 {
		return nil, errInvalidPayload.WithText("publish one item at a time")
	}
	itEl := items[0]
	payloads := itEl.Elements()
	if len(payloads) == 0 {
		return nil, errPayloadRequired
	}
	if len(payloads) > 1 {
		return nil, errInvalidPayload.WithText("an item carries exactly one payload element")
	}
	payload := payloads[0].String()
	if len(payload) > e.lim.MaxItemBytes {
		return nil, errPayloadTooBig.WithText(fmt.Sprintf("an item may be at most %d bytes", e.lim.MaxItemBytes))
	}
	id := itEl.Attr("id")
	if id == "" {
		id = newID()
	} else if len(id) > maxNodeName {
		return nil, stanza.ErrBadRequest.WithText("item id too long")
	}
	var opt *dataform.Form
	if opts != nil {
		if x := opts.Child(NSData, "x"); x != nil {
			f, err := dataform.Parse(x)
			if err != nil {
				return nil, stanza.ErrBadRequest.WithText("publish-options: " + err.Error())
			}
			if f.FormType != NSPublishOptions {
				return nil, stanza.ErrBadRequest.WithText("publish-options want FORM_TYPE " + NSPublishOptions)
			}
			opt = f
		}
	}
	it := sdk.PubSubItem{ID: id, Publisher: c.from.Bare().String(), Payload: payload, Published: e.now().UTC().Truncate(time.Millisecond)}
	cfg, serr := e.publishLocked(c, name, opt, it)
	if serr != nil {
		return nil, serr
	}
	if e.published != nil {
		e.published(c.ctx, c.service, name, it)
	}
	e.notifyItem(c, name, cfg, it, payloads[0])
	ps := xmlstream.NewElement(NS, "pubsub")
	ps.AppendChild(xmlstream.NewElement(NS, "publish").SetAttr("node", name).
		AppendChild(xmlstream.NewElement(NS, "item").SetAttr("id", id)))
	return ps, nil
}

func (e *engine) publishLocked(c *call, name string, opt *dataform.Form, it sdk.PubSubItem) (nodeConfig, *stanza.Error) {
	defer e.lock(c.service)()
	_, cfg, serr := e.node(c, name)
	created := false
	switch {
	case serr == stanza.ErrItemNotFound:
		if !e.mayCreateOn(c) {
			if e.pep {
				return nil, stanza.ErrForbidden.WithText("only the account may publish to its PEP nodes")
			}
			return nil, stanza.ErrItemNotFound
		}
		cfg = defaultConfig(e.pep, e.lim)
		if opt != nil {
			next, cerr := cfg.apply(opt, e.lim)
			if cerr != nil {
				return nil, errPrecondition.WithText(cerr.Error())
			}
			cfg = next
		}
		if serr := e.checkModel(cfg); serr != nil {
			return nil, serr
		}
		if serr := e.createLocked(c, name, cfg); serr != nil {
			return nil, serr
		}
		created = true
	case serr != nil:
		return nil, serr
	default:
		if opt != nil {
			if f := cfg.unmet(opt, e.lim); f != "" {
				return nil, errPrecondition.WithText("the node's " + f + " differs from the publish-options")
			}
		}
		if serr := e.mayPublish(c, name, cfg); serr != nil {
			return nil, serr
		}
	}
	if !cfg.bool(fPersistItems) {
		return cfg, nil
	}
	if err := c.st.PublishPubSubItem(c.ctx, c.service.String(), name, it, cfg.maxItems()); err != nil {
		if created {
			// The publish failed as a whole: no empty node is left behind.
			if derr := c.st.DeletePubSubNode(c.ctx, c.service.String(), name); derr != nil {
				e.log.Warn("node created for a failed publish not removed", "service", c.service.String(), "node", name, "error", derr)
			}
		}
		return nil, modules.BackendError(err)
	}
	return cfg, nil
}

// mayPublish applies the publish model (XEP-0060 §7.1.3.1).
func (e *engine) mayPublish(c *call, name string, cfg nodeConfig) *stanza.Error {
	aff, serr := e.affiliation(c, name, c.from)
	if serr != nil {
		return serr
	}
	switch aff {
	case "owner", "publisher", "publish-only":
		return nil
	case "outcast":
		return stanza.ErrForbidden
	}
	switch cfg.str(fPublishModel) {
	case "open":
		return nil
	case "subscribers":
		subs, err := c.st.GetPubSubSubscriptions(c.ctx, c.service.String(), name, "")
		if err != nil {
			return modules.BackendError(err)
		}
		for _, s := range subs {
			if j, err := jid.Parse(s.JID); err == nil && s.State == "subscribed" && j.Bare() == c.from.Bare() {
				return nil
			}
		}
	}
	return stanza.ErrForbidden.WithText("only the node's publishers may publish")
}

// retract deletes an item (XEP-0060 §7.2).
func (e *engine) retract(c *call, r *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	name, serr := nodeName(r)
	if serr != nil {
		return nil, serr
	}
	it := r.Child(NS, "item")
	if it == nil || it.Attr("id") == "" {
		return nil, perr(stanza.ErrBadRequest, "item-required")
	}
	id := it.Attr("id")
	_, cfg, serr := e.node(c, name)
	if serr != nil {
		return nil, serr
	}
	aff, serr := e.affiliation(c, name, c.from)
	if serr != nil {
		return nil, serr
	}
	if aff != "owner" && aff != "publisher" {
		return nil, stanza.ErrForbidden
	}
	if err := c.st.RetractPubSubItem(c.ctx, c.service.String(), name, id); err != nil {
		return nil, modules.BackendError(err)
	}
	notify := cfg.bool(fNotifyRetract)
	if v := r.Attr("notify"); v != "" {
		notify, _ = parseBool(v)
	}
	if notify {
		ev := xmlstream.NewElement(NSEvent, "items").SetAttr("node", name)
		ev.AppendChild(xmlstream.NewElement(NSEvent, "retract").SetAttr("id", id))
		e.broadcast(c, name, cfg, ev)
	}
	return nil, nil
}

// items returns a node's items (XEP-0060 §6.5), by id, the newest
// max_items, or a page (XEP-0059).
func (e *engine) items(c *call, req, rsm *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
	name, serr := nodeName(req)
	if serr != nil {
		return nil, serr
	}
	_, cfg, serr := e.node(c, name)
	if serr != nil {
		return nil, serr
	}
	if serr := e.mayRetrieve(c, name, cfg, c.from); serr != nil {
		return nil, serr
	}
	q := sdk.PubSubItemQuery{Service: c.service.String(), Node: name, Max: min(e.lim.MaxItems, sdk.MaxPubSubPage)}
	for _, it := range req.Elements() {
		if it.Space == NS && it.Local == "item" {
			if id := it.Attr("id"); id != "" && !slices.Contains(q.IDs, id) {
				q.IDs = append(q.IDs, id)
			}
		}
	}
	if len(q.IDs) > sdk.MaxPubSubPage {
		return nil, stanza.ErrNotAcceptable.WithText(fmt.Sprintf("at most %d item ids at once", sdk.MaxPubSubPage))
	}
	if s := req.Attr("max_items"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return nil, stanza.ErrBadRequest.WithText("max_items wants a number")
		}
		q.Max = min(n, q.Max)
	}
	if rsm != nil {
		if m := rsm.Child(NSRSM, "max"); m != nil {
			n, err := strconv.Atoi(m.Text())
			if err != nil || n < 0 {
				return nil, stanza.ErrBadRequest.WithText("RSM max wants a number")
			}
			q.Max = min(n, sdk.MaxPubSubPage)
		}
		if a := rsm.Child(NSRSM, "after"); a != nil {
			q.After = a.Text()
		}
		if b := rsm.Child(NSRSM, "before"); b != nil {
			q.Before = b.Text()
			if q.Before == "" { // <before/>: the last page
				q.Before, q.After = "", ""
			}
		}
	}
	page := sdk.PubSubItemPage{Items: nil}
	if cfg.bool(fPersistItems) {
		var err error
		page, err = c.st.GetPubSubItems(c.ctx, q)
		if err != nil {
			if errors.Is(err, sdk.ErrNotFound) && (q.After != "" || q.Before != "") {
				return nil, stanza.ErrItemNotFound.WithText("no such item to page from")
			}
			return nil, modules.BackendError(err)
		}
	}
	out := xmlstream.NewElement(NS, "items").SetAttr("node", name)
	for _, it := range page.Items {
		ie, err := e.itemElement(NS, it, true, cfg)
		if err != nil {
			e.log.Warn("stored item unreadable", "service", c.service.String(), "node", name, "item", it.ID, "error", err)
			continue
		}
		out.AppendChild(ie)
	}
	ps := xmlstream.NewElement(NS, "pubsub").AppendChild(out)
	if rsm != nil {
		set := xmlstream.NewElement(NSRSM, "set")
		if len(page.Items) > 0 {
			set.AppendChild(xmlstream.NewElement(NSRSM, "first").AppendText(page.Items[0].ID))
			set.AppendChild(xmlstream.NewElement(NSRSM, "last").AppendText(page.Items[len(page.Items)-1].ID))
		}
		set.AppendChild(xmlstream.NewElement(NSRSM, "count").AppendText(strconv.Itoa(page.Count)))
		ps.AppendChild(set)
	}
	return ps, nil
}

// itemElement renders a stored item in ns (pubsub or pubsub#event).
func (e *engine) itemElement(ns string, it sdk.PubSubItem, withPayload bool, cfg nodeConfig) (*xmlstream.Element, error) {
	ie := xmlstream.NewElement(ns, "item").SetAttr("id", it.ID)
	if cfg.str(fItemReply) == "publisher" && it.Publisher != "" {
		ie.SetAttr("publisher", it.Publisher)
	}
	if withPayload && it.Payload != "" {
		p, err := parsePayload(it.Payload)
		if err != nil {
			return nil, err
		}
		ie.AppendChild(p)
	}
	return ie, nil
}
