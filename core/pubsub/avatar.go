package pubsub

import (
	"context"
	"errors"
	"sync"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// Avatars (XEP-0084) live in two PEP nodes, the image in
// urn:xmpp:avatar:data and its description in urn:xmpp:avatar:metadata,
// whose item id is the image's SHA-1. Clients of the vCard era learn of an
// avatar from the hash in presence (XEP-0153); as Prosody's
// mod_vcard_legacy does, the server writes the PEP avatar's hash into
// every available presence of the account, so both kinds of client see
// the same avatar and a new one takes effect with the next presence.

// Namespaces of avatars.
const (
	NSAvatarMeta = "urn:xmpp:avatar:metadata"
	NSAvatarData = "urn:xmpp:avatar:data"
	nsVCardPhoto = "vcard-temp:x:update"
)

// avatars caches each online account's avatar hash.
type avatars struct {
	mu sync.Mutex
	m  map[jid.JID]avatarHash
}

type avatarHash struct {
	has  bool   // the account publishes its avatar in PEP
	hash string // "" for "no avatar" (metadata without <info/>)
}

// shape puts the PEP avatar's hash into an available presence.
func (p *PEP) shape(ctx context.Context, s *router.Session, pres *xmlstream.Element) {
	owner := s.JID().Bare()
	if p.store(owner) == nil {
		return
	}
	a, ok := p.avatarHash(ctx, owner)
	if !ok || !a.has {
		return // vCard-only accounts: the client's own hash stands
	}
	pres.RemoveChildren(nsVCardPhoto, "x")
	photo := xmlstream.NewElement(nsVCardPhoto, "photo")
	if a.hash != "" {
		photo.AppendText(a.hash)
	}
	pres.AppendChild(xmlstream.NewElement(nsVCardPhoto, "x").AppendChild(photo))
}

// avatarHash returns owner's avatar, read from the metadata node the first
// time; ok is false when the store could not say.
func (p *PEP) avatarHash(ctx context.Context, owner jid.JID) (avatarHash, bool) {
	p.av.mu.Lock()
	a, known := p.av.m[owner]
	p.av.mu.Unlock()
	if known {
		return a, true
	}
	page, err := p.store(owner).GetPubSubItems(ctx, sdk.PubSubItemQuery{Service: owner.String(), Node: NSAvatarMeta, Max: 1})
	switch {
	case errors.Is(err, sdk.ErrNotFound):
	case err != nil:
		p.log.Warn("avatar hash not added to presence", "user", owner.String(), "error", err)
		return a, false
	case len(page.Items) > 0:
		a = avatarOf(page.Items[0])
	}
	p.av.mu.Lock()
	p.av.m[owner] = a
	p.av.mu.Unlock()
	return a, true
}

// avatarOf reads a metadata item: its id is the hash unless it says there
// is no avatar (XEP-0084 §4.5, an empty <metadata/>).
func avatarOf(it sdk.PubSubItem) avatarHash {
	md, err := parsePayload(it.Payload)
	if err != nil || md.Space != NSAvatarMeta || md.Child(NSAvatarMeta, "info") == nil {
		return avatarHash{has: true}
	}
	return avatarHash{has: true, hash: it.ID}
}

// forgetAvatar drops the cached hash after a change to the metadata node.
func (p *PEP) forgetAvatar(owner jid.JID) {
	p.av.mu.Lock()
	delete(p.av.m, owner)
	p.av.mu.Unlock()
}

// avatarChanged follows a change to owner's metadata node: each available
// session whose presence carries another hash sends its presence again,
// so that contacts see the new avatar at once (XEP-0153 §4.2).
func (p *PEP) avatarChanged(ctx context.Context, owner jid.JID) {
	p.forgetAvatar(owner)
	a, ok := p.avatarHash(ctx, owner)
	u := p.router.User(owner)
	if !ok || !a.has || u == nil {
		return
	}
	for _, s := range u.Available() {
		pres := s.State().Presence
		if pres == nil {
			continue
		}
		if x := pres.Child(nsVCardPhoto, "x"); x != nil {
			if ph := x.Child(nsVCardPhoto, "photo"); ph != nil && ph.Text() == a.hash {
				continue
			}
		}
		p.srv.Rebroadcast(ctx, s)
	}
}

// avatarGone forgets an account whose last session went unavailable.
func (p *PEP) avatarGone(owner jid.JID) {
	if u := p.router.User(owner); u == nil || len(u.Available()) == 0 {
		p.forgetAvatar(owner)
	}
}
