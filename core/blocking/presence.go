package blocking

import (
	"context"
	"crypto/rand"
	"encoding/hex"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// presenceChanges fixes up presence after the owner's list went from
// before to after. A contact's resource that is newly blocked and was
// getting the owner's presence is told the owner went unavailable (§3.3);
// one newly unblocked gets the owner's current presence again and, if the
// owner is subscribed to it, the owner gets its presence (§3.4).
func (b *Module) presenceChanges(ctx context.Context, owner jid.JID, before, after []jid.JID) {
	h := b.srv.Host(owner.Domain())
	if h == nil || !h.Roster.On {
		return
	}
	st, err := h.Roster.Backend.GetRoster(ctx, owner.String())
	if err != nil {
		b.log.Warn("presence not updated after a blocklist change: roster unavailable", "user", owner.String(), "error", err)
		return
	}
	u := b.router.User(owner)
	if u == nil {
		return
	}
	mine := u.Available()
	for _, it := range st.Items {
		c, err := jid.Parse(it.JID)
		if err != nil || b.router.User(c) == nil {
			continue
		}
		from := it.Subscription == sdk.SubFrom || it.Subscription == sdk.SubBoth
		to := it.Subscription == sdk.SubTo || it.Subscription == sdk.SubBoth
		for _, t := range b.router.User(c).Available() {
			was, is := matchesAny(before, t.JID()), matchesAny(after, t.JID())
			switch {
			case !was && is && from:
				for _, o := range mine {
					t.Send(presence("unavailable", o.JID(), t.JID()))
				}
			case was && !is:
				if b.Blocked(ctx, c, owner) {
					continue // the contact blocked the owner too
				}
				if from {
					for _, o := range mine {
						sendCurrent(o, t)
					}
				}
				if to {
					for _, o := range mine {
						sendCurrent(t, o)
					}
				}
			}
		}
	}
}

// sendCurrent sends from's current presence to to, if from has one.
func sendCurrent(from, to *router.Session) {
	p := from.State().Presence
	if p == nil {
		return
	}
	c := p.Copy()
	c.SetAttr("from", from.JID().String())
	c.SetAttr("to", to.JID().String())
	to.Send(c)
}

func presence(typ string, from, to jid.JID) *xmlstream.Element {
	p := xmlstream.NewElement(xmlstream.NSClient, "presence").SetAttr("from", from.String()).SetAttr("to", to.String())
	if typ != "" {
		p.SetAttr("type", typ)
	}
	return p
}

func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
