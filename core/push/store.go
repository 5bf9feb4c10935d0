package push

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// storeNS and storeName name the private storage entry of an account:
//
//	<registrations xmlns='urn:koi:push'>
//	  <registration jid='push.example' node='…' stamp='2026-12-04T18:00:00Z'>
//	    <x xmlns='jabber:x:data' type='submit'>…publish options…</x>
//	  </registration>
//	</registrations>
const (
	storeNS   = "urn:koi:push"
	storeName = "registrations"
)

// Private is the part of a private XML storage backend the registrations
// are kept in.
type Private interface {
	GetPrivate(ctx context.Context, owner, name, namespace string) (string, error)
	SetPrivate(ctx context.Context, owner, name, namespace, xml string) error
}

// private returns the storage of user's host, nil where it has no
// writable private storage (then registrations live in memory only).
func (s *Service) private(user jid.JID) Private {
	h := s.srv.Host(user.Domain())
	if h == nil || !h.Private.On || !h.Private.Writable || h.Private.Backend == nil {
		return nil
	}
	return h.Private.Backend
}

// load reads a's registrations once; the caller holds a.mu.
func (s *Service) load(ctx context.Context, user jid.JID, a *account) error {
	if a.loaded {
		return nil
	}
	p := s.private(user)
	if p == nil {
		a.loaded = true
		return nil
	}
	xml, err := p.GetPrivate(ctx, user.String(), storeName, storeNS)
	if errors.Is(err, sdk.ErrNotFound) {
		a.loaded = true
		return nil
	}
	if err != nil {
		return fmt.Errorf("push registrations of %s: %w", user, err)
	}
	regs, bad := decode(xml, s.cfg.MaxRegistrations)
	if bad != nil {
		s.log.Warn("ignoring part of the stored push registrations", "user", user.String(), "error", bad)
	}
	a.regs = make([]*reg, len(regs))
	for i, r := range regs {
		a.regs[i] = &reg{Registration: r}
	}
	a.loaded = true
	return nil
}

// save writes regs as user's registrations.
func (s *Service) save(ctx context.Context, user jid.JID, regs []*reg) error {
	p := s.private(user)
	if p == nil {
		return nil
	}
	rs := make([]Registration, len(regs))
	for i, r := range regs {
		rs[i] = r.Registration
	}
	if err := p.SetPrivate(ctx, user.String(), storeName, storeNS, encode(rs)); err != nil {
		return fmt.Errorf("push registrations of %s: %w", user, err)
	}
	return nil
}

// encode serialises registrations for private storage.
func encode(regs []Registration) string {
	root := xmlstream.NewElement(storeNS, "registrations")
	for _, r := range regs {
		el := xmlstream.NewElement(storeNS, "registration").SetAttr("jid", r.JID.String()).
			SetAttr("node", r.Node).SetAttr("stamp", r.Enabled.UTC().Format(time.RFC3339Nano))
		if r.Options != nil {
			el.AppendChild(r.Options.Copy())
		}
		root.AppendChild(el)
	}
	return root.String()
}

// decode reads what encode wrote, keeping the newest max registrations.
// Entries that no longer read are skipped and reported in bad, so that one
// damaged entry does not cost the others.
func decode(s string, max int) (regs []Registration, bad error) {
	root, err := stanza.Parse(s)
	if err != nil || root.Space != storeNS || root.Local != "registrations" {
		return nil, fmt.Errorf("unreadable: %q", truncate(s))
	}
	var probs []error
	for _, el := range root.Elements() {
		if el.Space != storeNS || el.Local != "registration" {
			continue
		}
		j, err := jid.Parse(el.Attr("jid"))
		if err != nil || el.Attr("node") == "" {
			probs = append(probs, fmt.Errorf("entry without a valid jid and node: %s", truncate(el.String())))
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, el.Attr("stamp"))
		if err != nil {
			at = time.Time{} // oldest: the first to go when the account is full
		}
		r := Registration{JID: j, Node: el.Attr("node"), Enabled: at}
		if x := el.Child(NSData, "x"); x != nil {
			r.Options = x.Copy()
		}
		regs = append(regs, r)
	}
	if len(regs) > max {
		regs = regs[len(regs)-max:]
	}
	return regs, errors.Join(probs...)
}

func truncate(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
