package router

import (
	"sync"
	"testing"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/xmlstream"
)

type recConn struct {
	mu     sync.Mutex
	sent   []*xmlstream.Element
	closed string
}

func (c *recConn) Send(el *xmlstream.Element) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent = append(c.sent, el)
	return true
}

func (c *recConn) Close(cond, text string) {
	c.mu.Lock()
	c.closed = cond
	c.mu.Unlock()
}

func presence(string) *xmlstream.Element {
	p := xmlstream.NewElement(xmlstream.NSClient, "presence")
	return p
}

func TestBindNewestWins(t *testing.T) {
	r := New()
	full := jid.MustParse("alice@example.com/phone")
	s1, old := r.Bind(full, &recConn{})
	if old != nil {
		t.Fatal("first bind replaced something")
	}
	s2, old := r.Bind(full, &recConn{})
	if old != s1 {
		t.Fatalf("second bind replaced %v, want the first session", old)
	}
	if r.Session(full) != s2 {
		t.Fatal("the newest session must own the resource")
	}
	if r.Unbind(s1) {
		t.Fatal("unbinding the replaced session must not remove the new one")
	}
	if r.Session(full) != s2 {
		t.Fatal("new session lost after the old one was unbound")
	}
	if !r.Unbind(s2) {
		t.Fatal("unbind of the bound session failed")
	}
	if r.User(full.Bare()) != nil {
		t.Fatal("user kept after its last session left")
	}
}

func TestDeliveryTargets(t *testing.T) {
	r := New()
	bare := jid.MustParse("bob@example.com")
	mk := func(res string, avail bool, prio int) *Session {
		j, _ := bare.WithResource(res)
		s, _ := r.Bind(j, &recConn{})
		if avail {
			s.SetPresence(presence(""), prio)
		}
		return s
	}
	a := mk("a", true, 5)
	b := mk("b", true, 5)
	mk("c", true, 1)
	mk("d", true, -1)
	mk("e", false, 0)
	u := r.User(bare)
	top := u.TopResources()
	if len(top) != 2 || !(top[0] == a || top[1] == a) || !(top[0] == b || top[1] == b) {
		t.Fatalf("top resources = %v, want a and b", top)
	}
	if n := len(u.NonNegative()); n != 3 {
		t.Fatalf("non-negative = %d, want 3", n)
	}
	if n := len(u.Available()); n != 4 {
		t.Fatalf("available = %d, want 4", n)
	}
	if users, sessions := r.Count(); users != 1 || sessions != 5 {
		t.Fatalf("count = %d users %d sessions", users, sessions)
	}
}

// The views are kept between calls (no allocation per message) and
// follow every change of presence, priority and binding.
func TestDeliveryTargetsFollowChanges(t *testing.T) {
	r := New()
	a, _ := r.Bind(jid.MustParse("v@example.com/a"), &recConn{})
	b, _ := r.Bind(jid.MustParse("v@example.com/b"), &recConn{})
	a.SetPresence(presence(""), 1)
	u := a.User()
	if top := u.TopResources(); len(top) != 1 || top[0] != a {
		t.Fatalf("top = %v, want a", top)
	}
	if n := testing.AllocsPerRun(100, func() { u.TopResources(); u.Available() }); n != 0 {
		t.Errorf("%v allocations per unchanged lookup", n)
	}
	b.SetPresence(presence(""), 2)
	if top := u.TopResources(); len(top) != 1 || top[0] != b || len(u.Available()) != 2 {
		t.Fatalf("after b's presence: top = %v, available %d", top, len(u.Available()))
	}
	b.SetRemoteState(PresenceState{Available: true, Priority: -1})
	if top := u.TopResources(); len(top) != 1 || top[0] != a || len(u.NonNegative()) != 1 {
		t.Fatalf("after b's state: top = %v", top)
	}
	r.Unbind(a)
	if len(u.TopResources()) != 0 || len(u.Available()) != 1 {
		t.Fatalf("after unbinding a: top = %v, available %v", u.TopResources(), u.Available())
	}
	c, _ := r.Bind(jid.MustParse("v@example.com/b"), &recConn{}) // replaces b
	if len(u.Available()) != 0 {
		t.Fatalf("after b was replaced by %v: available %v", c, u.Available())
	}
}

func TestNegativeOnlyHasNoTop(t *testing.T) {
	r := New()
	s, _ := r.Bind(jid.MustParse("c@example.com/x"), &recConn{})
	s.SetPresence(presence(""), -5)
	if len(s.User().TopResources()) != 0 {
		t.Fatal("a negative-priority resource must not get bare-JID chat messages")
	}
}

func TestDirected(t *testing.T) {
	r := New()
	s, _ := r.Bind(jid.MustParse("d@example.com/x"), &recConn{})
	t1 := jid.MustParse("e@example.com/y")
	s.AddDirected(t1)
	s.AddDirected(jid.MustParse("f@example.com"))
	s.RemoveDirected(jid.MustParse("f@example.com"))
	got := s.TakeDirected()
	if len(got) != 1 || got[0] != t1 {
		t.Fatalf("directed = %v", got)
	}
	if len(s.TakeDirected()) != 0 {
		t.Fatal("TakeDirected must clear")
	}
}

// A resumed stream (XEP-0198) re-points the same session at a new
// connection: same JID, same presence, still bound; stanzas go to the new
// connection only.
func TestSetConnKeepsSession(t *testing.T) {
	r := New()
	full := jid.MustParse("alice@example.com/phone")
	old, neu := &recConn{}, &recConn{}
	s, _ := r.Bind(full, old)
	p := presence("")
	s.SetPresence(p, 5)
	s.SetConn(neu)
	if s.Conn() != neu {
		t.Fatal("Conn did not change")
	}
	s.Send(xmlstream.NewElement(xmlstream.NSClient, "message"))
	s.Close("conflict", "")
	if len(old.sent) != 0 || old.closed != "" {
		t.Fatalf("the old connection still gets stanzas: %v %q", old.sent, old.closed)
	}
	if len(neu.sent) != 1 || neu.closed != "conflict" {
		t.Fatalf("new connection got %v, closed %q", neu.sent, neu.closed)
	}
	if r.Session(full) != s {
		t.Fatal("the session is no longer bound")
	}
	if st := s.State(); !st.Available || st.Priority != 5 || st.Presence != p {
		t.Fatalf("presence lost: %+v", st)
	}
}

// countingObserver counts the observer's calls, as a cluster would see them.
type countingObserver struct{ changed, gone int }

func (o *countingObserver) SessionChanged(*Session) { o.changed++ }
func (o *countingObserver) SessionGone(*Session)    { o.gone++ }

// TestCarbonsFlag: the carbons flag is part of a session's state, a change
// is reported to the observer (a cluster publishes it) and a repeat is not,
// and a remote session takes it from its node's state.
func TestCarbonsFlag(t *testing.T) {
	r := New()
	o := &countingObserver{}
	r.SetObserver(o)
	s, _ := r.Bind(jid.MustParse("a@x/1"), &recConn{})
	base := o.changed
	s.SetCarbons(true)
	s.SetCarbons(true)
	if !s.Carbons() || !s.State().Carbons || o.changed != base+1 {
		t.Fatalf("carbons %v, state %+v, observer calls %d (want %d)", s.Carbons(), s.State(), o.changed, base+1)
	}
	s.SetCarbons(false)
	if s.Carbons() || o.changed != base+2 {
		t.Fatalf("after disable: carbons %v, observer calls %d", s.Carbons(), o.changed)
	}
	rs, _ := r.BindRemote(jid.MustParse("a@x/2"), &recConn{})
	rs.SetRemoteState(PresenceState{Available: true, Carbons: true})
	if !rs.Carbons() || o.changed != base+2 {
		t.Fatalf("remote: carbons %v, observer calls %d (a remote change is not this node's to publish)", rs.Carbons(), o.changed)
	}
}

// TestCarbonCopiesFollowChanges: the carbons view is the available sessions
// that enabled carbons, rebuilt when either changes, local or remote.
func TestCarbonCopiesFollowChanges(t *testing.T) {
	r := New()
	a, _ := r.Bind(jid.MustParse("cc@x/a"), &recConn{})
	b, _ := r.Bind(jid.MustParse("cc@x/b"), &recConn{})
	u := a.User()
	a.SetPresence(presence(""), 0)
	b.SetPresence(presence(""), 0)
	if got := u.CarbonCopies(); len(got) != 0 {
		t.Fatalf("nobody enabled carbons, view %v", got)
	}
	a.SetCarbons(true)
	if got := u.CarbonCopies(); len(got) != 1 || got[0] != a {
		t.Fatalf("after a enabled: %v", got)
	}
	if n := testing.AllocsPerRun(100, func() { u.CarbonCopies() }); n != 0 {
		t.Fatalf("CarbonCopies allocates %v times a call", n)
	}
	b.SetCarbons(true)
	if got := u.CarbonCopies(); len(got) != 2 {
		t.Fatalf("after b enabled: %v", got)
	}
	a.SetCarbons(false)
	if got := u.CarbonCopies(); len(got) != 1 || got[0] != b {
		t.Fatalf("after a disabled: %v", got)
	}
	r.Unbind(b)
	if got := u.CarbonCopies(); len(got) != 0 {
		t.Fatalf("after b left: %v", got)
	}
	rs, _ := r.BindRemote(jid.MustParse("cc@x/r"), &recConn{})
	rs.SetRemoteState(PresenceState{Available: true, Carbons: true})
	if got := u.CarbonCopies(); len(got) != 1 || got[0] != rs {
		t.Fatalf("remote session with carbons: %v", got)
	}
	rs.SetRemoteState(PresenceState{Available: false, Carbons: true})
	if got := u.CarbonCopies(); len(got) != 0 {
		t.Fatalf("unavailable remote session still copied: %v", got)
	}
}
