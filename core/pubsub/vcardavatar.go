package pubsub

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// User Avatar to vCard-Based Avatars Conversion (XEP-0398): the PEP
// avatar (XEP-0084) is the one source of an account's photo, as in
// Prosody's mod_vcard_legacy.
//
//   - A vCard get (XEP-0054) answers with the stored vCard whose PHOTO is
//     the PEP avatar, when the account has one and the asker may read
//     both avatar nodes (§5 and §6 allow this injection in place of a
//     copy). An avatar removed in PEP (metadata without <info/>) leaves
//     no PHOTO. Injecting on read works the same whatever the vCard
//     backend can do: a read-only directory's vCards show PEP avatars
//     too, and a PEP publish never has to write a vCard.
//   - A vCard set with a PHOTO publishes the image to urn:xmpp:avatar:data
//     and its metadata (id the SHA-1 in hex, bytes, type) as the owner
//     (§3.2); the vCard is stored without the PHOTO, which PEP now holds.
//     A vCard set without a PHOTO removes the PEP avatar.
//   - Presence carries the PEP avatar's hash (avatar.go), so XEP-0153
//     hashes follow both directions.
//
// Namespaces: vcard-temp, urn:xmpp:pep-vcard-conversion:0.

// Namespaces of the conversion.
const (
	nsVCard           = "vcard-temp"
	NSVCardConversion = "urn:xmpp:pep-vcard-conversion:0"
)

// VCardServer is what the conversion needs of the module server on top
// of Server (modules.Server implements it).
type VCardServer interface {
	WrapAccountIQ(typ, ns string, wrap func(next modules.AccountIQ) modules.AccountIQ) bool
	AddAccountFeature(ns string, on func(*modules.Host) bool)
}

// convertVCardAvatars puts the conversion around srv's vcard-temp.
func (p *PEP) convertVCardAvatars(srv VCardServer) {
	get := srv.WrapAccountIQ("get", nsVCard, p.vcardGet)
	set := srv.WrapAccountIQ("set", nsVCard, p.vcardSet)
	if !get || !set {
		p.log.Warn("no vcard-temp handler: vCard avatars are not converted")
		return
	}
	srv.AddAccountFeature(NSVCardConversion, func(h *modules.Host) bool { return h.VCard.On && h.PubSub.On })
}

// vcardGet puts the PEP avatar into the vCard next returns.
func (p *PEP) vcardGet(next modules.AccountIQ) modules.AccountIQ {
	return func(ctx context.Context, s *router.Session, to jid.JID, iq, q *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
		res, serr := next(ctx, s, to, iq, q)
		if serr != nil || res == nil || p.store(to) == nil {
			return res, serr
		}
		photo, pep := p.pepPhoto(ctx, s.JID(), to)
		if pep {
			res.RemoveChildren(nsVCard, "PHOTO")
			if photo != nil {
				res.AppendChild(photo)
			}
		}
		return res, nil
	}
}

// pepPhoto is owner's PEP avatar as a vCard PHOTO for from; pep is false
// when the account has no PEP avatar (or the store could not say), and
// then its vCard's own PHOTO stands. A nil photo with pep true means no
// photo: the avatar was removed, or from may not see it.
func (p *PEP) pepPhoto(ctx context.Context, from, owner jid.JID) (photo *xmlstream.Element, pep bool) {
	c := &call{ctx: ctx, from: from, service: owner, st: p.store(owner)}
	md, ok := p.latest(c, NSAvatarMeta, nil)
	if !ok || md == nil {
		return nil, false
	}
	meta, err := parsePayload(md.Payload)
	if err != nil || meta.Space != NSAvatarMeta {
		return nil, true
	}
	var stored, linked *xmlstream.Element
	for _, info := range meta.Elements() {
		switch {
		case info.Space != NSAvatarMeta || info.Local != "info":
		case info.Attr("url") == "" && stored == nil:
			stored = info
		case info.Attr("url") != "" && linked == nil:
			linked = info
		}
	}
	if stored == nil && linked == nil {
		return nil, true
	}
	if p.e.mayRetrieve(c, NSAvatarMeta, p.config(c, NSAvatarMeta), from) != nil {
		return nil, true
	}
	if stored != nil {
		if b64, ok := p.avatarData(c, stored.Attr("id"), from); ok {
			return photoElement(stored.Attr("type"), "BINVAL", b64), true
		}
	}
	if linked != nil {
		return photoElement(linked.Attr("type"), "EXTVAL", linked.Attr("url")), true
	}
	return nil, true
}

// avatarData returns the base64 image of the data item id, if from may
// read it and its SHA-1 is id (XEP-0398 §3.1).
func (p *PEP) avatarData(c *call, id string, from jid.JID) (string, bool) {
	if id == "" || p.e.mayRetrieve(c, NSAvatarData, p.config(c, NSAvatarData), from) != nil {
		return "", false
	}
	it, _ := p.latest(c, NSAvatarData, []string{id})
	if it == nil {
		return "", false
	}
	data, err := parsePayload(it.Payload)
	if err != nil || data.Space != NSAvatarData || data.Local != "data" {
		return "", false
	}
	b64 := strings.Join(strings.Fields(data.Text()), "")
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || sha1Hex(raw) != id {
		p.log.Debug("PEP avatar data not put into the vCard: not the image its id names", "owner", c.service.String(), "id", id)
		return "", false
	}
	return b64, true
}

// latest returns node's newest item, or the item of ids; ok is false when
// the node does not exist or the store failed (logged).
func (p *PEP) latest(c *call, node string, ids []string) (it *sdk.PubSubItem, ok bool) {
	q := sdk.PubSubItemQuery{Service: c.service.String(), Node: node, Max: 1, IDs: ids}
	page, err := c.st.GetPubSubItems(c.ctx, q)
	switch {
	case errors.Is(err, sdk.ErrNotFound):
		return nil, false
	case err != nil:
		p.log.Warn("PEP avatar unreadable for the vCard", "owner", c.service.String(), "node", node, "error", err)
		return nil, false
	case len(page.Items) == 0:
		return nil, true
	}
	return &page.Items[0], true
}

// config is a node's configuration; a node that cannot be read is closed.
func (p *PEP) config(c *call, node string) nodeConfig {
	_, cfg, serr := p.e.node(c, node)
	if serr != nil {
		cfg = defaultConfig(true, p.e.lim)
		cfg[fAccessModel] = []string{AccessWhitelist}
	}
	return cfg
}

func photoElement(typ, kind, value string) *xmlstream.Element {
	ph := xmlstream.NewElement(nsVCard, "PHOTO")
	if typ != "" {
		ph.AppendChild(xmlstream.NewElement(nsVCard, "TYPE").AppendText(typ))
	}
	return ph.AppendChild(xmlstream.NewElement(nsVCard, kind).AppendText(value))
}

func sha1Hex(b []byte) string {
	sum := sha1.Sum(b)
	return hex.EncodeToString(sum[:])
}

// vcardAvatar is what a vCard set asks of the PEP avatar.
type vcardAvatar struct {
	keep bool   // a PHOTO that cannot become a PEP avatar (EXTVAL): PEP is left alone
	b64  string // the image in base64, "" to remove the avatar
	hash string // its SHA-1 in hex
	typ  string
	size int
}

// avatarFromVCard reads a vCard's first PHOTO; limit bounds the data
// item the image becomes.
func avatarFromVCard(v *xmlstream.Element, limit int) (vcardAvatar, *stanza.Error) {
	ph := v.Child(nsVCard, "PHOTO")
	if ph == nil {
		return vcardAvatar{}, nil
	}
	bin := ph.Child(nsVCard, "BINVAL")
	b64 := ""
	if bin != nil {
		b64 = strings.Join(strings.Fields(bin.Text()), "")
	}
	if b64 == "" {
		return vcardAvatar{keep: ph.Child(nsVCard, "EXTVAL") != nil}, nil
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return vcardAvatar{}, stanza.ErrBadRequest.WithText("the PHOTO's BINVAL is not base64")
	}
	if n := len(b64) + len(`<data xmlns=''></data>`) + len(NSAvatarData); n > limit {
		return vcardAvatar{}, errPayloadTooBig.WithText(fmt.Sprintf("a photo may be at most %d bytes in base64 here", limit-(n-len(b64))))
	}
	typ := ""
	if t := ph.Child(nsVCard, "TYPE"); t != nil {
		typ = strings.TrimSpace(t.Text())
	}
	if typ == "" {
		typ = http.DetectContentType(raw)
	}
	return vcardAvatar{b64: b64, hash: sha1Hex(raw), typ: typ, size: len(raw)}, nil
}

// vcardSet publishes a vCard's PHOTO as the PEP avatar before next stores
// the vCard without it. Everything is checked before anything is stored;
// a vCard the host cannot store goes to next untouched, so that nothing
// is published for it.
func (p *PEP) vcardSet(next modules.AccountIQ) modules.AccountIQ {
	return func(ctx context.Context, s *router.Session, to jid.JID, iq, q *xmlstream.Element) (*xmlstream.Element, *stanza.Error) {
		h := p.srv.Host(to.Domain())
		if to != s.JID().Bare() || q.Local != "vCard" || p.store(to) == nil || h == nil || !h.VCard.On || !h.VCard.Writable {
			return next(ctx, s, to, iq, q)
		}
		av, serr := avatarFromVCard(q, p.e.lim.MaxItemBytes)
		if serr != nil {
			return nil, serr
		}
		if av.keep {
			p.log.Debug("vCard PHOTO by EXTVAL not converted to a PEP avatar", "owner", to.String())
		} else {
			if serr := p.publishVCardAvatar(ctx, to, av); serr != nil {
				return nil, serr
			}
			q = q.Copy()
			q.RemoveChildren(nsVCard, "PHOTO")
		}
		return next(ctx, s, to, iq, q)
	}
}

// publishVCardAvatar makes av owner's PEP avatar: the data, then the
// metadata that names it (XEP-0398 §3.2), or empty metadata to remove it
// (XEP-0084 §4.5). Nothing is published when the avatar is already av.
func (p *PEP) publishVCardAvatar(ctx context.Context, owner jid.JID, av vcardAvatar) *stanza.Error {
	c := &call{ctx: ctx, from: owner, service: owner, st: p.store(owner)}
	md, _ := p.latest(c, NSAvatarMeta, nil)
	current := ""
	if md != nil {
		current = avatarOf(*md).hash
	}
	if current == av.hash {
		return nil
	}
	if av.hash != "" {
		data := xmlstream.NewElement(NSAvatarData, "data").AppendText(av.b64)
		if serr := p.publishAs(ctx, owner, NSAvatarData, av.hash, data); serr != nil {
			return serr
		}
	}
	meta := xmlstream.NewElement(NSAvatarMeta, "metadata")
	id := "current"
	if av.hash != "" {
		id = av.hash
		meta.AppendChild(xmlstream.NewElement(NSAvatarMeta, "info").SetAttr("id", av.hash).
			SetAttr("bytes", strconv.Itoa(av.size)).SetAttr("type", av.typ))
	}
	if serr := p.publishAs(ctx, owner, NSAvatarMeta, id, meta); serr != nil {
		return serr
	}
	p.avatarChanged(ctx, owner)
	return nil
}

// publishAs publishes payload as the owner, so that subscribers and
// +notify sessions hear of it. A node it creates is open, as the vCard
// the photo came from is readable by anyone; an existing node keeps its
// access model.
func (p *PEP) publishAs(ctx context.Context, owner jid.JID, node, id string, payload *xmlstream.Element) *stanza.Error {
	ps := xmlstream.NewElement(NS, "pubsub").AppendChild(xmlstream.NewElement(NS, "publish").SetAttr("node", node).
		AppendChild(xmlstream.NewElement(NS, "item").SetAttr("id", id).AppendChild(payload)))
	_, err := p.store(owner).GetPubSubNode(ctx, owner.String(), node)
	switch {
	case errors.Is(err, sdk.ErrNotFound):
		ps.AppendChild(xmlstream.NewElement(NS, "publish-options").AppendChild(optionsForm(map[string][]string{fAccessModel: {AccessOpen}})))
	case err != nil:
		return modules.BackendError(err)
	}
	return p.ownerRequest(ctx, owner, ps)
}
