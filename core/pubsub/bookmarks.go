package pubsub

import (
	"context"
	"errors"

	"github.com/koi-im/koi/core/dataform"
	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// Bookmarks (XEP-0402) are the items of the PEP node urn:xmpp:bookmarks:1,
// one per conference. Older clients keep a single <storage/> of XEP-0048
// in private XML (XEP-0049) or in the PEP node storage:bookmarks; for
// them both are views of the same bookmarks (XEP-0402 §5.1, XEP-0411):
// reading builds a <storage/> from the items, writing turns it into items,
// retracting those it no longer lists. As in Prosody's mod_bookmarks, the
// XEP-0402 node is the one source.

// Namespaces of bookmarks.
const (
	NSBookmarks       = "urn:xmpp:bookmarks:1"
	NSBookmarksLegacy = "storage:bookmarks"
	nsConversion      = "urn:xmpp:bookmarks-conversion:0"
)

// bookmarkOptions are the node options XEP-0402 §3 asks for.
var bookmarkOptions = map[string][]string{
	fPersistItems: {"true"}, fMaxItems: {"max"}, fSendLast: {"never"}, fAccessModel: {AccessWhitelist},
}

// bookmarkFeatures are the account features of the compatibility.
var bookmarkFeatures = []string{NSBookmarks + "#compat", NSBookmarks + "#compat-pep", nsConversion}

// legacyStorage builds the XEP-0048 <storage/> from the bookmarks.
func (p *PEP) legacyStorage(ctx context.Context, owner jid.JID) (*xmlstream.Element, *stanza.Error) {
	storage := xmlstream.NewElement(NSBookmarksLegacy, "storage")
	st := p.store(owner)
	if st == nil {
		return storage, nil
	}
	page, err := st.GetPubSubItems(ctx, sdk.PubSubItemQuery{Service: owner.String(), Node: NSBookmarks, Max: sdk.MaxPubSubPage})
	if errors.Is(err, sdk.ErrNotFound) {
		return storage, nil
	}
	if err != nil {
		return nil, modules.BackendError(err)
	}
	// Oldest first, as the user added them.
	for i := len(page.Items) - 1; i >= 0; i-- {
		it := page.Items[i]
		conf := xmlstream.NewElement(NSBookmarksLegacy, "conference").SetAttr("jid", it.ID)
		if b, err := parsePayload(it.Payload); err == nil && b.Space == NSBookmarks && b.Local == "conference" {
			if n := b.Attr("name"); n != "" {
				conf.SetAttr("name", n)
			}
			if a := b.Attr("autojoin"); a != "" {
				conf.SetAttr("autojoin", a)
			}
			for _, k := range []string{"nick", "password"} {
				if c := b.Child(NSBookmarks, k); c != nil {
					conf.AppendChild(xmlstream.NewElement(NSBookmarksLegacy, k).AppendText(c.Text()))
				}
			}
		}
		storage.AppendChild(conf)
	}
	return storage, nil
}

// conferences turns a <storage/> into XEP-0402 items by conference JID.
func conferences(storage *xmlstream.Element) (ids []string, items map[string]*xmlstream.Element, serr *stanza.Error) {
	items = map[string]*xmlstream.Element{}
	for _, c := range storage.Elements() {
		if c.Space != NSBookmarksLegacy || c.Local != "conference" {
			continue // XEP-0048 <url/> bookmarks have no XEP-0402 form
		}
		j, err := jid.Parse(c.Attr("jid"))
		if err != nil || j.Local() == "" || j.Resource() != "" {
			return nil, nil, stanza.ErrBadRequest.WithText("a conference bookmark needs a room JID")
		}
		conf := xmlstream.NewElement(NSBookmarks, "conference")
		if n := c.Attr("name"); n != "" {
			conf.SetAttr("name", n)
		}
		if a, ok := parseBool(c.Attr("autojoin")); ok && a {
			conf.SetAttr("autojoin", "true")
		}
		for _, k := range []string{"nick", "password"} {
			if e := c.Child(NSBookmarksLegacy, k); e != nil {
				conf.AppendChild(xmlstream.NewElement(NSBookmarks, k).AppendText(e.Text()))
			}
		}
		if _, dup := items[j.String()]; !dup {
			ids = append(ids, j.String())
		}
		items[j.String()] = conf
	}
	return ids, items, nil
}

// storeLegacy makes the bookmarks what storage lists: new and changed
// conferences are published, those it no longer lists retracted, all
// through the PEP service as the owner's own requests, so the owner's
// resources hear of each change.
func (p *PEP) storeLegacy(ctx context.Context, owner jid.JID, storage *xmlstream.Element) *stanza.Error {
	st := p.store(owner)
	if st == nil {
		return stanza.ErrServiceUnavailable
	}
	ids, want, serr := conferences(storage)
	if serr != nil {
		return serr
	}
	if len(ids) > sdk.MaxPubSubPage {
		return stanza.ErrNotAcceptable.WithText("too many bookmarks")
	}
	current := map[string]string{}
	page, err := st.GetPubSubItems(ctx, sdk.PubSubItemQuery{Service: owner.String(), Node: NSBookmarks, Max: sdk.MaxPubSubPage})
	exists := err == nil
	switch {
	case errors.Is(err, sdk.ErrNotFound):
	case err != nil:
		return modules.BackendError(err)
	}
	for _, it := range page.Items {
		current[it.ID] = it.Payload
	}
	for _, id := range ids {
		payload := want[id]
		if prev, ok := current[id]; ok && prev == payload.String() {
			continue
		}
		pub := xmlstream.NewElement(NS, "publish").SetAttr("node", NSBookmarks)
		pub.AppendChild(xmlstream.NewElement(NS, "item").SetAttr("id", id).AppendChild(payload))
		ps := xmlstream.NewElement(NS, "pubsub").AppendChild(pub)
		if !exists {
			ps.AppendChild(xmlstream.NewElement(NS, "publish-options").AppendChild(optionsForm(bookmarkOptions)))
			exists = true
		}
		if serr := p.ownerRequest(ctx, owner, ps); serr != nil {
			return serr
		}
	}
	for id := range current {
		if _, keep := want[id]; keep {
			continue
		}
		r := xmlstream.NewElement(NS, "retract").SetAttr("node", NSBookmarks).SetAttr("notify", "true")
		r.AppendChild(xmlstream.NewElement(NS, "item").SetAttr("id", id))
		if serr := p.ownerRequest(ctx, owner, xmlstream.NewElement(NS, "pubsub").AppendChild(r)); serr != nil && serr.Condition != "item-not-found" {
			return serr
		}
	}
	p.legacyBroadcast(ctx, owner)
	return nil
}

func optionsForm(opts map[string][]string) *xmlstream.Element {
	var ff []dataform.Field
	for _, s := range fields {
		if v, ok := opts[s.v]; ok {
			ff = append(ff, dataform.Field{Var: s.v, Values: v})
		}
	}
	x := dataform.Build("submit", NSPublishOptions, "", "", ff)
	return x
}

// ownerRequest runs a pubsub set request on the owner's PEP as the owner.
func (p *PEP) ownerRequest(ctx context.Context, owner jid.JID, ps *xmlstream.Element) *stanza.Error {
	iq := xmlstream.NewElement(xmlstream.NSClient, "iq").SetAttr("type", "set")
	iq.AppendChild(ps)
	_, serr := p.e.handle(ctx, owner, owner, iq, ps)
	return serr
}

// legacyBroadcast tells the owner's sessions that asked for
// storage:bookmarks+notify of the bookmarks as a <storage/> (XEP-0411).
func (p *PEP) legacyBroadcast(ctx context.Context, owner jid.JID) {
	u := p.router.User(owner)
	if u == nil {
		return
	}
	var to []jid.JID
	for _, s := range u.Available() {
		if p.caps.Wants(s.JID(), NSBookmarksLegacy+"+notify") {
			to = append(to, s.JID())
		}
	}
	if len(to) == 0 {
		return
	}
	storage, serr := p.legacyStorage(ctx, owner)
	if serr != nil {
		p.log.Warn("legacy bookmarks not broadcast", "owner", owner.String(), "error", serr)
		return
	}
	it := xmlstream.NewElement(NSEvent, "item").SetAttr("id", "current").AppendChild(storage)
	p.e.deliver(ctx, owner, to, xmlstream.NewElement(NSEvent, "items").SetAttr("node", NSBookmarksLegacy).AppendChild(it))
}

// legacyPEP answers the owner's requests on the XEP-0048 PEP node
// storage:bookmarks from the XEP-0402 bookmarks; handled is false for
// any other request.
func (p *PEP) legacyPEP(ctx context.Context, s *router.Session, to jid.JID, iq, ps *xmlstream.Element) (res *xmlstream.Element, serr *stanza.Error, handled bool) {
	if ps.Space != NS || to != s.JID().Bare() {
		return nil, nil, false
	}
	act := ps.FirstChild()
	if act == nil || act.Attr("node") != NSBookmarksLegacy {
		return nil, nil, false
	}
	switch {
	case act.Local == "items" && iq.Attr("type") == "get":
		storage, serr := p.legacyStorage(ctx, to)
		if serr != nil {
			return nil, serr, true
		}
		it := xmlstream.NewElement(NS, "item").SetAttr("id", "current").AppendChild(storage)
		return xmlstream.NewElement(NS, "pubsub").AppendChild(xmlstream.NewElement(NS, "items").SetAttr("node", NSBookmarksLegacy).AppendChild(it)), nil, true
	case act.Local == "publish" && iq.Attr("type") == "set":
		it := act.Child(NS, "item")
		var storage *xmlstream.Element
		if it != nil {
			storage = it.Child(NSBookmarksLegacy, "storage")
		}
		if storage == nil {
			return nil, errPayloadRequired.WithText("want a <storage xmlns='storage:bookmarks'/>"), true
		}
		if serr := p.storeLegacy(ctx, to, storage); serr != nil {
			return nil, serr, true
		}
		pub := xmlstream.NewElement(NS, "publish").SetAttr("node", NSBookmarksLegacy).
			AppendChild(xmlstream.NewElement(NS, "item").SetAttr("id", "current"))
		return xmlstream.NewElement(NS, "pubsub").AppendChild(pub), nil, true
	}
	return nil, nil, false
}

// privateBookmarks serves storage:bookmarks in private XML from PEP.
type privateBookmarks struct{ p *PEP }

// GetPrivate implements modules.PrivateStore.
func (b privateBookmarks) GetPrivate(ctx context.Context, owner jid.JID, local, ns string) (*xmlstream.Element, *stanza.Error) {
	if local != "storage" {
		return xmlstream.NewElement(ns, local), nil
	}
	return b.p.legacyStorage(ctx, owner)
}

// SetPrivate implements modules.PrivateStore.
func (b privateBookmarks) SetPrivate(ctx context.Context, owner jid.JID, el *xmlstream.Element) *stanza.Error {
	if el.Local != "storage" {
		return stanza.ErrNotAcceptable.WithText("bookmarks are a <storage/>")
	}
	return b.p.storeLegacy(ctx, owner, el)
}
