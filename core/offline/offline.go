// Package offline keeps the messages of users who are away (XEP-0160) in
// a host's offline backend, and hands them over when the user is back.
// What to store and when is the IM logic's (core/modules); this package
// is how.
package offline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/archive"
	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// Namespaces of what is only worth anything live.
const (
	nsChatStates = "http://jabber.org/protocol/chatstates"
	nsHints      = "urn:xmpp:hints"
)

// ErrFull says a user has as many messages waiting as the host keeps.
var ErrFull = errors.New("the recipient's offline storage is full")

// Box is one host's offline storage.
type Box struct {
	Backend sdk.Offline
	Limit   int // messages kept for one user; 0: no limit
}

// Worth reports whether a message is worth keeping for later: not chat
// state notifications alone, nor messages hinted no-store (XEP-0334).
func Worth(el *xmlstream.Element) bool {
	if el.Child(nsHints, "no-store") != nil || el.Child(nsHints, "no-permanent-store") != nil {
		return false
	}
	if el.Child(nsHints, "store") != nil {
		return true
	}
	for _, c := range el.Elements() {
		if c.Space != nsChatStates && c.Space != nsHints && c.Local != "thread" {
			return true
		}
	}
	return false
}

// Room returns nil when one more message for user fits, ErrFull when it
// does not, or the backend's error.
func (b Box) Room(ctx context.Context, user jid.JID) error {
	if b.Limit <= 0 {
		return nil
	}
	n, err := b.Backend.Count(ctx, user.String())
	if err != nil {
		return fmt.Errorf("offline: counting %s's messages: %w", user, err)
	}
	if n >= b.Limit {
		return ErrFull
	}
	return nil
}

// Put stores a copy of el for user, addressed to the bare JID and stamped
// with the time it was stored (XEP-0203) unless keepDelay and el has a
// stamp already (a message delivered once, whose first stamp is the one
// that counts). It returns the copy stored.
func (b Box) Put(ctx context.Context, user jid.JID, el *xmlstream.Element, keepDelay bool) (*xmlstream.Element, error) {
	now := time.Now().UTC()
	c := el.Copy()
	c.SetAttr("to", user.String())
	if !keepDelay || c.Child(stanza.NSDelay, "delay") == nil {
		c.RemoveChildren(stanza.NSDelay, "delay")
		c.AppendChild(xmlstream.NewElement(stanza.NSDelay, "delay").SetAttr("from", user.Domain()).
			SetAttr("stamp", now.Format(time.RFC3339Nano)).AppendText("Offline storage"))
	}
	if err := b.Backend.Store(ctx, user.String(), sdk.OfflineMessage{Stanza: c.String(), Stamp: now}); err != nil {
		return nil, fmt.Errorf("offline: storing for %s: %w", user, err)
	}
	return c, nil
}

// Deliver takes user's stored messages out of the backend and hands them
// to send in the order they came; from the first one send refuses (the
// session went away meanwhile), they are stored again. A message that a
// later one retracts (XEP-0424, from the same sender) is not handed over,
// nor are its corrections (XEP-0308): the user gets the retraction only,
// as a server SHOULD stop handing a retracted message out.
func (b Box) Deliver(ctx context.Context, log hclog.Logger, user jid.JID, send func(*xmlstream.Element) bool) {
	msgs, err := b.Backend.Pop(ctx, user.String())
	if err != nil {
		log.Warn("offline messages not delivered", "user", user.String(), "error", err)
		return
	}
	els := make([]*xmlstream.Element, len(msgs))
	for i, om := range msgs {
		if els[i], err = stanza.Parse(om.Stanza); err != nil {
			log.Warn("dropping unreadable offline message", "user", user.String(), "error", err)
		}
	}
	retracted := retractedOnes(els)
	for i, el := range els {
		if el == nil || retracted[i] {
			continue
		}
		if !send(el) {
			for _, rest := range msgs[i:] {
				if err := b.Backend.Store(ctx, user.String(), rest); err != nil {
					log.Error("offline message lost while re-storing", "user", user.String(), "error", err)
				}
			}
			return
		}
	}
}

// retractedOnes marks the messages of els that a later one retracts: the
// message named, from the retraction's sender (bare JID), by its id or
// origin-id, and the corrections of it.
func retractedOnes(els []*xmlstream.Element) map[int]bool {
	var out map[int]bool
	for j, r := range els {
		if r == nil {
			continue
		}
		target := archive.RetractedID(r)
		if target == "" {
			continue
		}
		sender := bareOf(r.Attr("from"))
		if sender == "" {
			continue
		}
		for i := range j {
			el := els[i]
			if el == nil || bareOf(el.Attr("from")) != sender || archive.RetractedID(el) != "" {
				continue
			}
			if archive.Named(el, target) || archive.Corrects(el, target) {
				if out == nil {
					out = map[int]bool{}
				}
				out[i] = true
			}
		}
	}
	return out
}

func bareOf(s string) string {
	bare, _, _ := strings.Cut(s, "/")
	return bare
}
