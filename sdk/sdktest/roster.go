package sdktest

import (
	"cmp"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/koi-im/koi/sdk"
)

func (e *env) roster() sdk.Roster {
	e.t.Helper()
	r, ok := e.b.(sdk.Roster)
	if !ok {
		e.t.Fatal("roster is declared but the backend does not implement sdk.Roster")
	}
	return r
}

func (e *env) rosterWriter() sdk.RosterWriter {
	e.t.Helper()
	r, ok := e.b.(sdk.RosterWriter)
	if !ok {
		e.t.Fatal("roster is declared read-write but the backend does not implement sdk.RosterWriter")
	}
	return r
}

// versions follows the versions one owner's roster goes through. Versions
// are opaque, but the contract asks that each write produce a new one;
// when two are decimal counters (as in the shipped backends) the later
// must also be the greater.
type versions struct {
	seen map[string]bool
	last string
}

func newVersions() *versions { return &versions{seen: map[string]bool{"0": true}, last: "0"} }

// next records the version a write returned.
func (v *versions) next(e *env, what, got string) {
	e.t.Helper()
	switch {
	case got == "":
		e.t.Errorf("%s returned an empty roster version, want a new non-empty one after every change", what)
	case v.seen[got]:
		e.t.Errorf("%s returned roster version %q, which an earlier state of the roster already had", what, got)
	case isDecimal(v.last) && isDecimal(got) && decimal(got).Cmp(decimal(v.last)) <= 0:
		e.t.Errorf("%s returned roster version %s after %s: decimal versions must increase", what, got, v.last)
	}
	v.seen[got] = true
	v.last = got
}

func isDecimal(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func decimal(s string) *big.Int {
	n, _ := new(big.Int).SetString(s, 10)
	return n
}

// normItem makes items comparable: no groups is no groups, nil or empty.
func normItem(it sdk.RosterItem) sdk.RosterItem {
	if len(it.Groups) == 0 {
		it.Groups = nil
	}
	return it
}

func itemEqual(a, b sdk.RosterItem) bool {
	a, b = normItem(a), normItem(b)
	return a.JID == b.JID && a.Name == b.Name && a.Subscription == b.Subscription &&
		a.Ask == b.Ask && a.Approved == b.Approved && slices.Equal(a.Groups, b.Groups)
}

func formatItem(it sdk.RosterItem) string {
	return fmt.Sprintf("{JID:%q Name:%q Subscription:%q Ask:%v Approved:%v Groups:%q}",
		it.JID, it.Name, it.Subscription, it.Ask, it.Approved, it.Groups)
}

// getRoster reads owner's roster, failing the test now on error.
func (e *env) getRoster(owner string) sdk.RosterState {
	e.t.Helper()
	st, err := e.roster().GetRoster(e.ctx, owner)
	e.ok("GetRoster("+owner+")", err)
	return st
}

// wantRoster checks owner's roster: exactly items and pending, in any
// order (the contract sets none), and version unless it is "".
func (e *env) wantRoster(owner, version string, items []sdk.RosterItem, pending []sdk.PendingSubscription) {
	e.t.Helper()
	st := e.getRoster(owner)
	if version != "" && st.Version != version {
		e.t.Errorf("GetRoster(%s).Version = %q, want %q (the version the last write returned)", owner, st.Version, version)
	}
	e.compareItems("GetRoster("+owner+")", st.Items, items)
	byJID := func(a, b sdk.PendingSubscription) int { return cmp.Compare(a.JID, b.JID) }
	got := slices.SortedFunc(slices.Values(st.Pending), byJID)
	want := slices.SortedFunc(slices.Values(pending), byJID)
	if !slices.Equal(got, want) {
		e.t.Errorf("GetRoster(%s).Pending = %q, want %q", owner, got, want)
	}
}

// compareItems reports the differences between two sets of items.
func (e *env) compareItems(what string, got, want []sdk.RosterItem) {
	e.t.Helper()
	index := make(map[string]sdk.RosterItem, len(want))
	for _, it := range want {
		index[it.JID] = it
	}
	seen := make(map[string]bool, len(got))
	var problems []string
	for _, it := range got {
		w, ok := index[it.JID]
		switch {
		case seen[it.JID]:
			problems = append(problems, fmt.Sprintf("item %q listed twice", it.JID))
		case !ok:
			problems = append(problems, fmt.Sprintf("unexpected item %s", formatItem(it)))
		case !itemEqual(it, w):
			problems = append(problems, fmt.Sprintf("item %s, want %s", formatItem(it), formatItem(w)))
		}
		seen[it.JID] = true
	}
	for _, it := range want {
		if !seen[it.JID] {
			problems = append(problems, fmt.Sprintf("missing item %s", formatItem(it)))
		}
	}
	if len(problems) == 0 {
		return
	}
	const maxShown = 10
	if len(problems) > maxShown {
		problems = append(problems[:maxShown], fmt.Sprintf("... and %d more", len(problems)-maxShown))
	}
	e.t.Errorf("%s: %d items, want %d:\n\t%s", what, len(got), len(want), strings.Join(problems, "\n\t"))
}

// setItem writes it and records the version.
func (e *env) setItem(v *versions, owner string, it sdk.RosterItem) string {
	e.t.Helper()
	got, err := e.rosterWriter().SetItem(e.ctx, owner, it)
	e.ok(fmt.Sprintf("SetItem(%s, %q)", owner, it.JID), err)
	v.next(e, fmt.Sprintf("SetItem(%q)", it.JID), got)
	return got
}

func checkRosterEmpty(e *env) {
	e.wantRoster(e.owner("nobody"), "0", nil, nil)
}

func checkRosterItems(e *env) {
	w := e.rosterWriter()
	owner, other := e.owner("alice"), e.owner("bob")
	v := newVersions()
	items := []sdk.RosterItem{
		{JID: e.contact("romeo"), Name: "Romeo", Subscription: sdk.SubBoth, Groups: []string{"Friends", "Verona"}},
		{JID: e.contact("juliet"), Subscription: sdk.SubNone, Ask: true, Approved: true},
		// Groups keep their order: it is not sorted.
		{JID: e.contact("nurse"), Name: "The Nurse", Subscription: sdk.SubTo, Groups: []string{"Zeta", "Alpha", "Mid"}},
		{JID: e.contact("tybalt"), Name: "Tybalt", Subscription: sdk.SubFrom, Approved: true, Groups: []string{"Capulet"}},
		{JID: e.contact("mercutio"), Name: "Mercutio", Subscription: sdk.SubNone, Ask: true, Groups: []string{"Friends"}},
	}
	for _, it := range items {
		e.setItem(v, owner, it)
	}
	e.wantRoster(owner, v.last, items, nil)
	e.wantRoster(other, "0", nil, nil)

	// SetItem replaces every field of an existing item.
	items[0] = sdk.RosterItem{JID: items[0].JID, Name: "Romeo M.", Subscription: sdk.SubFrom, Ask: true, Approved: true, Groups: []string{"Verona"}}
	e.setItem(v, owner, items[0])
	items[2] = sdk.RosterItem{JID: items[2].JID, Subscription: sdk.SubBoth}
	e.setItem(v, owner, items[2])
	e.wantRoster(owner, v.last, items, nil)

	// DeleteItem.
	got, err := w.DeleteItem(e.ctx, owner, items[1].JID)
	e.ok("DeleteItem", err)
	v.next(e, "DeleteItem", got)
	items = slices.Delete(items, 1, 2)
	e.wantRoster(owner, v.last, items, nil)
	_, err = w.DeleteItem(e.ctx, owner, e.contact("juliet"))
	e.wantErr("DeleteItem of a deleted item", err, sdk.ErrNotFound)
	_, err = w.DeleteItem(e.ctx, owner, e.contact("paris"))
	e.wantErr("DeleteItem of an unknown contact", err, sdk.ErrNotFound)
	_, err = w.DeleteItem(e.ctx, e.owner("nobody"), e.contact("paris"))
	e.wantErr("DeleteItem on an unknown owner", err, sdk.ErrNotFound)
	e.wantRoster(owner, v.last, items, nil)

	// Rosters are per owner.
	ov := newVersions()
	bobItem := sdk.RosterItem{JID: items[0].JID, Name: "Bob's Romeo", Subscription: sdk.SubTo, Groups: []string{"Bob"}}
	e.setItem(ov, other, bobItem)
	e.wantRoster(other, ov.last, []sdk.RosterItem{bobItem}, nil)
	e.wantRoster(owner, v.last, items, nil)
	_, err = w.DeleteItem(e.ctx, other, items[1].JID)
	e.wantErr("DeleteItem of another owner's item", err, sdk.ErrNotFound)
	e.wantRoster(owner, v.last, items, nil)
}

func checkRosterVersions(e *env) {
	w := e.rosterWriter()
	owner := e.owner("vera")
	v := newVersions()
	it := sdk.RosterItem{JID: e.contact("a"), Subscription: sdk.SubNone}
	for i, change := range []func(){
		func() {},
		func() { it.Name = "A" },
		func() { it.Subscription = sdk.SubTo },
		func() { it.Ask = true },
		func() { it.Approved = true },
		func() { it.Groups = []string{"g1"} },
		func() { it.Groups = []string{"g1", "g2"} },
		func() { it.Groups = []string{"g2", "g1"} },
		func() { it.Groups = nil },
	} {
		change()
		e.setItem(v, owner, it)
		if st := e.getRoster(owner); st.Version != v.last {
			e.t.Errorf("after change %d: GetRoster version %q, want %q, the version SetItem returned", i, st.Version, v.last)
		}
		e.wantRoster(owner, v.last, []sdk.RosterItem{it}, nil)
	}
	second := sdk.RosterItem{JID: e.contact("b"), Subscription: sdk.SubBoth}
	e.setItem(v, owner, second)
	got, err := w.DeleteItem(e.ctx, owner, it.JID)
	e.ok("DeleteItem", err)
	v.next(e, "DeleteItem", got)
	e.wantRoster(owner, v.last, []sdk.RosterItem{second}, nil)
}

func checkRosterPending(e *env) {
	w := e.rosterWriter()
	owner := e.owner("alice")
	p1 := sdk.PendingSubscription{JID: e.contact("romeo"), Stanza: "<presence from='romeo' type='subscribe'/>"}
	p2 := sdk.PendingSubscription{JID: e.contact("juliet"), Stanza: "<presence type='subscribe'><status>Bitte \u2764</status></presence>"}
	e.ok("SetPending", w.SetPending(e.ctx, owner, p1))
	e.ok("SetPending", w.SetPending(e.ctx, owner, p2))
	e.wantRoster(owner, "", nil, []sdk.PendingSubscription{p1, p2})

	// Replacing keeps one request per contact.
	p1.Stanza = "<presence type='subscribe'><status>again</status></presence>"
	e.ok("SetPending (replace)", w.SetPending(e.ctx, owner, p1))
	e.wantRoster(owner, "", nil, []sdk.PendingSubscription{p1, p2})

	// Pending requests and items are independent.
	v := newVersions()
	item := sdk.RosterItem{JID: p2.JID, Name: "Juliet", Subscription: sdk.SubNone}
	e.setItem(v, owner, item)
	e.ok("DeletePending", w.DeletePending(e.ctx, owner, p2.JID))
	// Whether pending requests change the version, the contract leaves open.
	e.wantRoster(owner, "", []sdk.RosterItem{item}, []sdk.PendingSubscription{p1})

	e.ok("DeletePending of an absent request", w.DeletePending(e.ctx, owner, p2.JID))
	e.ok("DeletePending of an unknown contact", w.DeletePending(e.ctx, owner, e.contact("paris")))
	e.ok("DeletePending on an unknown owner", w.DeletePending(e.ctx, e.owner("nobody"), p1.JID))
	e.wantRoster(owner, "", []sdk.RosterItem{item}, []sdk.PendingSubscription{p1})
	e.wantRoster(e.owner("bob"), "0", nil, nil)
}

func checkRosterDelete(e *env) {
	w := e.rosterWriter()
	owner, other := e.owner("alice"), e.owner("bob")
	v, ov := newVersions(), newVersions()
	items := []sdk.RosterItem{
		{JID: e.contact("romeo"), Name: "Romeo", Subscription: sdk.SubBoth, Groups: []string{"Friends"}},
		{JID: e.contact("juliet"), Subscription: sdk.SubTo},
	}
	pending := []sdk.PendingSubscription{{JID: e.contact("paris"), Stanza: "<presence type='subscribe'/>"}}
	for _, it := range items {
		e.setItem(v, owner, it)
		e.setItem(ov, other, it)
	}
	e.ok("SetPending", w.SetPending(e.ctx, owner, pending[0]))
	e.ok("SetPending", w.SetPending(e.ctx, other, pending[0]))

	e.ok("DeleteRoster", w.DeleteRoster(e.ctx, owner))
	st := e.getRoster(owner)
	if len(st.Items) != 0 || len(st.Pending) != 0 {
		e.t.Errorf("after DeleteRoster: %d items and %d pending requests left, want none", len(st.Items), len(st.Pending))
	}
	e.wantRoster(other, "", items, pending)
	e.ok("DeleteRoster again", w.DeleteRoster(e.ctx, owner))
	e.ok("DeleteRoster of an unknown owner", w.DeleteRoster(e.ctx, e.owner("nobody")))

	// The owner can start again.
	got, err := w.SetItem(e.ctx, owner, items[1])
	e.ok("SetItem after DeleteRoster", err)
	e.wantRoster(owner, got, items[1:], nil)
}

func checkRosterUnicode(e *env) {
	w := e.rosterWriter()
	owner := e.user("\u7528\u6237") + "@" + e.o.Host // 用户
	v := newVersions()
	items := []sdk.RosterItem{
		{JID: e.user("zo\u00eb") + "@\u4f8b\u3048.jp", Name: "Zo\u00eb \U0001F389 \u03a9", Subscription: sdk.SubBoth,
			Groups: []string{"\u0414\u0440\u0443\u0437\u044c\u044f", "\u5bb6\u65cf", "\U0001F600", "Work", "work", "w\u00f6rk"}},
		// Differs from the first only by an accent: a different contact.
		{JID: e.user("zoe") + "@\u4f8b\u3048.jp", Name: "Zoe", Subscription: sdk.SubTo, Groups: []string{"Work"}},
		{JID: e.user("stra\u00dfe") + "@example.de", Name: "\u00c4rger \u00fcber \u00d6l", Subscription: sdk.SubNone},
		{JID: e.user("strasse") + "@example.de", Name: "", Subscription: sdk.SubFrom},
	}
	for _, it := range items {
		e.setItem(v, owner, it)
	}
	pending := []sdk.PendingSubscription{{JID: items[0].JID, Stanza: "<presence type='subscribe'><status>\u4f60\u597d \U0001F44B</status></presence>"}}
	e.ok("SetPending", w.SetPending(e.ctx, owner, pending[0]))
	e.wantRoster(owner, "", items, pending)
	got, err := w.DeleteItem(e.ctx, owner, items[1].JID)
	e.ok("DeleteItem", err)
	v.next(e, "DeleteItem", got)
	e.wantRoster(owner, v.last, slices.Delete(slices.Clone(items), 1, 2), pending)
}

// largeItem is item i of the large roster: every field varies.
func largeItem(e *env, i int) sdk.RosterItem {
	subs := [...]string{sdk.SubNone, sdk.SubTo, sdk.SubFrom, sdk.SubBoth}
	it := sdk.RosterItem{
		JID:          fmt.Sprintf("c%05d-%s@contacts.example", i, e.id),
		Name:         fmt.Sprintf("Contact %d", i),
		Subscription: subs[i%len(subs)],
		Ask:          i%3 == 0,
		Approved:     i%5 == 0,
	}
	if i%7 == 0 {
		it.Name = fmt.Sprintf("Kontakt \u00fc%d \u2713", i)
	}
	for g := range i % 4 {
		it.Groups = append(it.Groups, fmt.Sprintf("group %d", (i+g)%50))
	}
	return it
}

// forEach runs fn(i) for i in [0, n) on e.o.Concurrency goroutines and
// returns the first error.
func (e *env) forEach(n int, fn func(i int) error) error {
	var (
		mu    sync.Mutex
		first error
		next  int
		wg    sync.WaitGroup
	)
	for range min(e.o.Concurrency, n) {
		wg.Go(func() {
			defer e.recoverPanic()
			for {
				mu.Lock()
				i := next
				next++
				stop := first != nil || i >= n
				mu.Unlock()
				if stop {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

func checkRosterLarge(e *env) {
	w := e.rosterWriter()
	owner := e.owner("popular")
	n := e.o.LargeRoster
	items := make([]sdk.RosterItem, n)
	for i := range items {
		items[i] = largeItem(e, i)
	}
	vers := make([]string, n)
	start := time.Now()
	err := e.forEach(n, func(i int) error {
		v, err := w.SetItem(e.ctx, owner, items[i])
		if err != nil {
			return fmt.Errorf("SetItem %d: %w", i, err)
		}
		vers[i] = v
		return nil
	})
	e.ok("writing the large roster", err)
	wrote := time.Since(start)

	start = time.Now()
	st := e.getRoster(owner)
	read := time.Since(start)
	e.t.Logf("%d roster items: written in %v (%v per item, %d writers), read in %v",
		n, wrote.Round(time.Millisecond), (wrote / time.Duration(n)).Round(time.Microsecond), min(e.o.Concurrency, n), read.Round(time.Millisecond))
	e.compareItems("GetRoster of the large roster", st.Items, items)
	e.wantDistinct("SetItem", vers, st.Version)
}

// wantDistinct checks the versions concurrent writes returned: all
// different, and the roster's current version is the last of them.
func (e *env) wantDistinct(what string, vers []string, current string) {
	e.t.Helper()
	seen := make(map[string]int, len(vers))
	allDecimal := true
	var greatest *big.Int
	for i, v := range vers {
		if j, dup := seen[v]; dup {
			e.t.Errorf("%s calls %d and %d both returned roster version %q", what, j, i, v)
			return
		}
		seen[v] = i
		if !isDecimal(v) {
			allDecimal = false
		} else if d := decimal(v); greatest == nil || d.Cmp(greatest) > 0 {
			greatest = d
		}
	}
	if _, ok := seen[current]; !ok {
		e.t.Errorf("the roster's version %q is none of those the writes returned", current)
	} else if allDecimal && greatest != nil && current != greatest.String() {
		e.t.Errorf("the roster's version is %s, but a write returned %s", current, greatest)
	}
}

func checkRosterConcurrent(e *env) {
	w := e.rosterWriter()
	owner := e.owner("busy")
	const perWriter = 25
	n := e.o.Concurrency * perWriter
	items := make([]sdk.RosterItem, n)
	vers := make([]string, n)
	errs := make([]error, e.o.Concurrency)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for g := range e.o.Concurrency {
		wg.Go(func() {
			defer e.recoverPanic()
			<-start
			for k := range perWriter {
				i := g*perWriter + k
				items[i] = sdk.RosterItem{
					JID:          fmt.Sprintf("w%d-%d-%s@contacts.example", g, k, e.id),
					Name:         fmt.Sprintf("writer %d item %d", g, k),
					Subscription: sdk.SubBoth,
					Groups:       []string{fmt.Sprintf("writer %d", g)},
				}
				v, err := w.SetItem(e.ctx, owner, items[i])
				if err != nil {
					errs[g] = fmt.Errorf("writer %d, SetItem %d: %w", g, k, err)
					return
				}
				vers[i] = v
			}
		})
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		e.ok("concurrent SetItem", err)
	}
	st := e.getRoster(owner)
	e.compareItems(fmt.Sprintf("GetRoster after %d concurrent writers", e.o.Concurrency), st.Items, items)
	e.wantDistinct("concurrent SetItem", vers, st.Version)
}
