package router

import (
	"strings"

	"github.com/koi-im/koi/core/xmlstream"
)

// views are a user's sessions by presence, kept from one change of its
// sessions or their presence to the next: every message to a bare JID and
// every carbon asks for them, and building them per call cost an
// allocation per routed message.
type views struct {
	available, top, nonNegative, carbons []*Session
}

// viewsLocked returns u's views, built if stale; u.mu is held. The slices
// are capped at their length, so a caller's append copies them.
func (u *User) viewsLocked() *views {
	if u.views != nil {
		return u.views
	}
	v := &views{}
	best := -1
	for s := range u.sessions.all() {
		if !s.available {
			continue
		}
		v.available = append(v.available, s)
		if s.carbons {
			v.carbons = append(v.carbons, s)
		}
		if s.priority < 0 {
			continue
		}
		v.nonNegative = append(v.nonNegative, s)
		switch {
		case s.priority > best:
			best = s.priority
			v.top = append(v.top[:0], s)
		case s.priority == best:
			v.top = append(v.top, s)
		}
	}
	v.available = v.available[:len(v.available):len(v.available)]
	v.top = v.top[:len(v.top):len(v.top)]
	v.nonNegative = v.nonNegative[:len(v.nonNegative):len(v.nonNegative)]
	v.carbons = v.carbons[:len(v.carbons):len(v.carbons)]
	u.views = v
	return v
}

// Available returns the user's available sessions. The slice is shared:
// read it, do not change its elements.
func (u *User) Available() []*Session {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.viewsLocked().available
}

// TopResources returns the available sessions with the highest non-negative
// priority: where RFC 6121 §8.5.2.1 delivers a chat or normal message sent to
// the bare JID. The slice is shared, as Available's.
func (u *User) TopResources() []*Session {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.viewsLocked().top
}

// CarbonCopies returns the available sessions that enabled carbons
// (XEP-0280): most users have none, and every one-to-one message asks.
// The slice is shared, as Available's.
func (u *User) CarbonCopies() []*Session {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.viewsLocked().carbons
}

// NonNegative returns the available sessions with priority >= 0. The slice
// is shared, as Available's.
func (u *User) NonNegative() []*Session {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.viewsLocked().nonNegative
}

// Broadcast sends a copy of el, addressed to each, to every available
// session of host here (every host when host is "") and returns how many
// took it: an announcement to the users online.
func (r *Router) Broadcast(host string, el *xmlstream.Element) int {
	n := 0
	for _, s := range r.All() {
		if host != "" && !strings.EqualFold(s.JID().Domain(), host) {
			continue
		}
		if !s.State().Available {
			continue
		}
		c := el.Copy()
		c.SetAttr("to", s.JID().String())
		if s.Send(c) {
			n++
		}
	}
	return n
}
