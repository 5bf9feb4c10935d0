package sdktest

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/koi-im/koi/sdk"
)

// The MUC contract (sdk.MUC, sdk.MUCWriter): persistent rooms keyed by
// their bare JID byte for byte, listed per service (the JID's domain) in
// byte order, with a config map that comes back exactly as it went in, a
// Created stamp kept from the first put, and per-room affiliations keyed
// by JID, sorted by JID, that go with their room.

func mucRead(c sdk.Capabilities, _ Options) bool  { return c.MUC.Readable() }
func mucWrite(c sdk.Capabilities, _ Options) bool { return c.MUC.Writable() }

func mucChecks() []check {
	return []check{
		{"muc/empty", mucRead, checkMUCEmpty},
		{"muc/rooms", mucWrite, checkMUCRooms},
		{"muc/list", mucWrite, checkMUCList},
		{"muc/affiliations", mucWrite, checkMUCAffiliations},
		{"muc/missing-room", mucWrite, checkMUCMissingRoom},
		{"muc/delete", mucWrite, checkMUCDelete},
		{"muc/exact-keys", mucWrite, checkMUCExactKeys},
		{"muc/invalid", mucWrite, checkMUCInvalid},
		{"muc/large", mucWrite, checkMUCLarge},
		{"muc/concurrent", mucWrite, checkMUCConcurrent},
	}
}

func (e *env) muc() sdk.MUC {
	e.t.Helper()
	b, ok := e.b.(sdk.MUC)
	if !ok {
		e.t.Fatal("muc is declared but the backend does not implement sdk.MUC")
	}
	return b
}

func (e *env) mucWriter() sdk.MUCWriter {
	e.t.Helper()
	b, ok := e.b.(sdk.MUCWriter)
	if !ok {
		e.t.Fatal("muc is declared read-write but the backend does not implement sdk.MUCWriter")
	}
	return b
}

// mucService returns a MUC service domain unique to this subtest.
func (e *env) mucService(base string) string { return e.user(base) + ".muc.example" }

// mucStamp is a creation time as the core makes one: UTC, milliseconds.
func mucStamp(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

// mucConfig is a room configuration with what a real one holds: single and
// multi-valued fields, a field with no values (an empty list-multi is not
// an absent one), an empty value, unicode, XML metacharacters, line breaks
// and spaces that must not be trimmed.
func mucConfig(name string) map[string][]string {
	return map[string][]string{
		"FORM_TYPE":                        {"http://jabber.org/protocol/muc#roomconfig"},
		"muc#roomconfig_roomname":          {name},
		"muc#roomconfig_roomdesc":          {" Café ☕ <b>&amp;</b> \"quoted\" 'x'\nsecond line\r\n\ttabbed  "},
		"muc#roomconfig_persistentroom":    {"1"},
		"muc#roomconfig_publicroom":        {"0"},
		"muc#roomconfig_presencebroadcast": {"moderator", "participant", "visitor"},
		"muc#roomconfig_roomadmins":        {},
		"muc#roomconfig_roomsecret":        {""},
		"muc#roomconfig_lang":              {"zh-Hant-TW"},
		"x-sdktest#用户":                     {"值一", "值二", "😀"},
	}
}

// sameConfig compares two configs exactly: the same vars, each with the
// same values in the same order. A field without values may come back as
// nil or as an empty list, but it must come back.
func sameConfig(got, want map[string][]string) bool {
	if len(got) != len(want) {
		return false
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok || !slices.Equal(g, w) {
			return false
		}
	}
	return true
}

// describeConfig prints a config with its vars sorted, for messages.
func describeConfig(c map[string][]string) string {
	var b strings.Builder
	for i, k := range slices.Sorted(maps.Keys(c)) {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q: %q", k, c[k])
	}
	return "{" + b.String() + "}"
}

// sameRoom compares every field of a room; Created to the millisecond.
func sameRoom(got, want sdk.MUCRoom) bool {
	return got.Room == want.Room && got.Subject == want.Subject && got.SubjectBy == want.SubjectBy &&
		got.Created.Equal(want.Created) && sameConfig(got.Config, want.Config)
}

func describeRoom(r sdk.MUCRoom) string {
	return fmt.Sprintf("{Room: %q, Subject: %q, SubjectBy: %q, Created: %s, Config: %s}",
		r.Room, r.Subject, r.SubjectBy, r.Created.Format(time.RFC3339Nano), describeConfig(r.Config))
}

// wantRoom checks that GetMUCRoom returns want exactly.
func (e *env) wantRoom(want sdk.MUCRoom) {
	e.t.Helper()
	got, err := e.muc().GetMUCRoom(e.ctx, want.Room)
	if !e.noErr(fmt.Sprintf("GetMUCRoom(%s)", want.Room), err) {
		return
	}
	if !sameRoom(got, want) {
		e.t.Errorf("GetMUCRoom(%s) =\n  %s\nwant\n  %s", want.Room, describeRoom(got), describeRoom(want))
	}
}

// wantNoRoom checks that GetMUCRoom says sdk.ErrNotFound.
func (e *env) wantNoRoom(room string) {
	e.t.Helper()
	got, err := e.muc().GetMUCRoom(e.ctx, room)
	if err == nil {
		e.t.Errorf("GetMUCRoom(%s) = %s, want sdk.ErrNotFound", room, describeRoom(got))
		return
	}
	e.wantErr(fmt.Sprintf("GetMUCRoom(%s)", room), err, sdk.ErrNotFound)
}

// wantRooms checks ListMUCRooms(service) against want, in byte order of
// Room; want is sorted here.
func (e *env) wantRooms(service string, want ...sdk.MUCRoom) {
	e.t.Helper()
	got, err := e.muc().ListMUCRooms(e.ctx, service)
	if !e.noErr(fmt.Sprintf("ListMUCRooms(%s)", service), err) {
		return
	}
	want = slices.Clone(want)
	slices.SortFunc(want, func(a, b sdk.MUCRoom) int { return strings.Compare(a.Room, b.Room) })
	names := func(rs []sdk.MUCRoom) []string {
		out := make([]string, len(rs))
		for i, r := range rs {
			out[i] = r.Room
		}
		return out
	}
	if !slices.Equal(names(got), names(want)) {
		e.t.Errorf("ListMUCRooms(%s) lists %q, want %q (sorted by room JID, byte order)", service, names(got), names(want))
		return
	}
	for i := range want {
		if !sameRoom(got[i], want[i]) {
			e.t.Errorf("ListMUCRooms(%s)[%d] =\n  %s\nwant\n  %s", service, i, describeRoom(got[i]), describeRoom(want[i]))
		}
	}
}

// wantAffiliations checks GetMUCAffiliations(room) against want, in byte
// order of JID; want is sorted here.
func (e *env) wantAffiliations(room string, want ...sdk.MUCAffiliation) {
	e.t.Helper()
	got, err := e.muc().GetMUCAffiliations(e.ctx, room)
	if !e.noErr(fmt.Sprintf("GetMUCAffiliations(%s)", room), err) {
		return
	}
	want = slices.Clone(want)
	slices.SortFunc(want, func(a, b sdk.MUCAffiliation) int { return strings.Compare(a.JID, b.JID) })
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !slices.Equal(got, want) {
		e.t.Errorf("GetMUCAffiliations(%s) =\n  %+v\nwant\n  %+v (sorted by JID, byte order)", room, got, want)
	}
}

func checkMUCEmpty(e *env) {
	svc := e.mucService("empty")
	e.wantNoRoom("nowhere@" + svc)
	e.wantRooms(svc)
	e.wantAffiliations("nowhere@" + svc)
}

func checkMUCRooms(e *env) {
	w := e.mucWriter()
	svc := e.mucService("rooms")
	created := mucStamp(time.Now().Add(-time.Hour))
	r := sdk.MUCRoom{
		Room:      "lobby@" + svc,
		Config:    mucConfig("Lobby"),
		Subject:   "Welcome ✨\nRead the <rules> & be nice ",
		SubjectBy: "Zoë 🦊",
		Created:   created,
	}
	e.ok("PutMUCRoom", w.PutMUCRoom(e.ctx, r))
	e.wantRoom(r)

	// A second put replaces config, subject and subject_by (a var it no
	// longer has is gone, not merged) and keeps the first Created.
	r2 := sdk.MUCRoom{
		Room:    r.Room,
		Config:  map[string][]string{"muc#roomconfig_roomname": {"Lobby 2"}, "muc#roomconfig_presencebroadcast": {"moderator"}},
		Subject: "",
		Created: mucStamp(time.Now()),
	}
	e.ok("PutMUCRoom replacing the room", w.PutMUCRoom(e.ctx, r2))
	r2.Created = created
	e.wantRoom(r2)

	// An empty config is a config too.
	r3 := sdk.MUCRoom{Room: r.Room, Subject: "just a subject", SubjectBy: "mod"}
	e.ok("PutMUCRoom with no config", w.PutMUCRoom(e.ctx, r3))
	r3.Created = created
	e.wantRoom(r3)

	// The caller's map is not the store: changing it after the put
	// changes nothing stored.
	cfg := mucConfig("Mine")
	mine := sdk.MUCRoom{Room: "mine@" + svc, Config: cfg, Created: created}
	e.ok("PutMUCRoom", w.PutMUCRoom(e.ctx, mine))
	cfg["muc#roomconfig_roomname"][0] = "changed"
	cfg["added"] = []string{"x"}
	mine.Config = mucConfig("Mine")
	e.wantRoom(mine)
}

func checkMUCList(e *env) {
	w := e.mucWriter()
	svc := e.mucService("list")
	created := mucStamp(time.Now())
	var want []sdk.MUCRoom
	// Put out of order; listed in byte order (upper case before lower,
	// ASCII before the rest).
	for _, local := range []string{"zeta", "alpha", "Beta", "émile", "123", "alpha-2", "用户"} {
		r := sdk.MUCRoom{Room: local + "@" + svc, Config: mucConfig(local), Subject: "subject of " + local, SubjectBy: local, Created: created}
		e.ok("PutMUCRoom", w.PutMUCRoom(e.ctx, r))
		want = append(want, r)
	}
	// Rooms of services whose names contain svc, or that svc contains,
	// are not svc's.
	others := []string{"x" + svc, svc + ".org", "sub." + svc, strings.TrimSuffix(svc, ".example")}
	for _, o := range others {
		e.ok("PutMUCRoom on another service", w.PutMUCRoom(e.ctx, sdk.MUCRoom{Room: "alpha@" + o, Created: created}))
	}
	e.wantRooms(svc, want...)
	for _, o := range others {
		e.wantRooms(o, sdk.MUCRoom{Room: "alpha@" + o, Created: created})
	}
	e.wantRooms("nothing." + svc)

	e.ok("DeleteMUCRoom", w.DeleteMUCRoom(e.ctx, "alpha@"+svc))
	e.wantRooms(svc, slices.DeleteFunc(want, func(r sdk.MUCRoom) bool { return r.Room == "alpha@"+svc })...)
	e.wantRooms("x"+svc, sdk.MUCRoom{Room: "alpha@x" + svc, Created: created})
}

func checkMUCAffiliations(e *env) {
	w := e.mucWriter()
	svc := e.mucService("affs")
	room, other := "team@"+svc, "other@"+svc
	created := mucStamp(time.Now())
	for _, r := range []string{room, other} {
		e.ok("PutMUCRoom", w.PutMUCRoom(e.ctx, sdk.MUCRoom{Room: r, Config: mucConfig(r), Created: created}))
	}
	owner := sdk.MUCAffiliation{Room: room, JID: e.contact("owner"), Affiliation: "owner", Nick: "Boss 👑"}
	admin := sdk.MUCAffiliation{Room: room, JID: e.contact("admin"), Affiliation: "admin"}
	member := sdk.MUCAffiliation{Room: room, JID: "jürgen@bücher.example", Affiliation: "member", Nick: "Jürgen", Reason: "welcome <aboard> & all"}
	// A ban of a whole domain, with the reason a moderator gave.
	banned := sdk.MUCAffiliation{Room: room, JID: "spam.example", Affiliation: "outcast", Reason: "spam\nfrom the whole domain"}
	elsewhere := sdk.MUCAffiliation{Room: other, JID: e.contact("owner"), Affiliation: "member"}
	for _, a := range []sdk.MUCAffiliation{banned, member, owner, admin, elsewhere} {
		e.ok("SetMUCAffiliation", w.SetMUCAffiliation(e.ctx, a))
	}
	e.wantAffiliations(room, owner, admin, member, banned)
	e.wantAffiliations(other, elsewhere)

	// Setting a JID's affiliation again replaces the whole entry.
	member2 := member
	member2.Affiliation, member2.Nick, member2.Reason = "admin", "", ""
	e.ok("SetMUCAffiliation replacing an entry", w.SetMUCAffiliation(e.ctx, member2))
	e.wantAffiliations(room, owner, admin, member2, banned)

	// "none" removes the entry; for a JID without one it is no error.
	e.ok(`SetMUCAffiliation "none"`, w.SetMUCAffiliation(e.ctx, sdk.MUCAffiliation{Room: room, JID: admin.JID, Affiliation: "none"}))
	e.wantAffiliations(room, owner, member2, banned)
	e.ok(`SetMUCAffiliation "none" of a JID without an affiliation`,
		w.SetMUCAffiliation(e.ctx, sdk.MUCAffiliation{Room: room, JID: e.contact("stranger"), Affiliation: "none"}))
	e.wantAffiliations(room, owner, member2, banned)
	e.wantAffiliations(other, elsewhere)

	// Replacing the room's config keeps its affiliations.
	e.ok("PutMUCRoom replacing the room", w.PutMUCRoom(e.ctx, sdk.MUCRoom{Room: room, Subject: "new", Created: created}))
	e.wantAffiliations(room, owner, member2, banned)
}

func checkMUCMissingRoom(e *env) {
	w := e.mucWriter()
	svc := e.mucService("missing")
	room := "ghost@" + svc
	for _, aff := range []string{"member", "none"} {
		err := w.SetMUCAffiliation(e.ctx, sdk.MUCAffiliation{Room: room, JID: e.contact("alice"), Affiliation: aff})
		e.wantErr(fmt.Sprintf("SetMUCAffiliation %q on a room that is not stored", aff), err, sdk.ErrNotFound)
	}
	e.wantNoRoom(room)
	e.wantRooms(svc)
	// The refused affiliation does not turn up once the room exists.
	e.ok("PutMUCRoom", w.PutMUCRoom(e.ctx, sdk.MUCRoom{Room: room, Created: mucStamp(time.Now())}))
	e.wantAffiliations(room)
}

func checkMUCDelete(e *env) {
	w := e.mucWriter()
	svc := e.mucService("delete")
	room, keep := "doomed@"+svc, "kept@"+svc
	first := mucStamp(time.Now().Add(-time.Hour))
	for _, r := range []string{room, keep} {
		e.ok("PutMUCRoom", w.PutMUCRoom(e.ctx, sdk.MUCRoom{Room: r, Config: mucConfig(r), Created: first}))
		e.ok("SetMUCAffiliation", w.SetMUCAffiliation(e.ctx, sdk.MUCAffiliation{Room: r, JID: e.contact("owner"), Affiliation: "owner"}))
	}
	e.ok("DeleteMUCRoom", w.DeleteMUCRoom(e.ctx, room))
	e.wantNoRoom(room)
	e.wantAffiliations(room)
	e.wantRooms(svc, sdk.MUCRoom{Room: keep, Config: mucConfig(keep), Created: first})
	e.wantAffiliations(keep, sdk.MUCAffiliation{Room: keep, JID: e.contact("owner"), Affiliation: "owner"})

	// A room made again under the same JID is a new room: a new Created,
	// none of the old affiliations.
	again := sdk.MUCRoom{Room: room, Config: map[string][]string{"muc#roomconfig_roomname": {"again"}}, Created: mucStamp(time.Now())}
	e.ok("PutMUCRoom after DeleteMUCRoom", w.PutMUCRoom(e.ctx, again))
	e.wantRoom(again)
	e.wantAffiliations(room)

	e.ok("DeleteMUCRoom of an absent room", w.DeleteMUCRoom(e.ctx, "never@"+svc))
	e.ok("DeleteMUCRoom", w.DeleteMUCRoom(e.ctx, room))
	e.ok("DeleteMUCRoom of a deleted room", w.DeleteMUCRoom(e.ctx, room))
}

// checkMUCExactKeys: the core normalises JIDs, so the store must keep what
// it is given apart byte for byte; a case- or accent-insensitive
// collation would merge two rooms (or two members) into one.
func checkMUCExactKeys(e *env) {
	w := e.mucWriter()
	svc := e.mucService("exact")
	created := mucStamp(time.Now())
	var rooms []sdk.MUCRoom
	for _, local := range []string{"cafe", "Cafe", "café", "cafe\u0301", "cafe "} {
		r := sdk.MUCRoom{Room: local + "@" + svc, Config: map[string][]string{"muc#roomconfig_roomname": {local}}, Created: created}
		e.ok("PutMUCRoom", w.PutMUCRoom(e.ctx, r))
		rooms = append(rooms, r)
	}
	e.wantRooms(svc, rooms...)
	for _, r := range rooms {
		e.wantRoom(r)
	}
	room := rooms[0].Room
	var affs []sdk.MUCAffiliation
	for i, j := range []string{"zoe@x.example", "Zoe@x.example", "zoë@x.example", "zoe@X.example"} {
		a := sdk.MUCAffiliation{Room: room, JID: j, Affiliation: []string{"owner", "admin", "member", "outcast"}[i], Nick: j}
		e.ok("SetMUCAffiliation", w.SetMUCAffiliation(e.ctx, a))
		affs = append(affs, a)
	}
	e.wantAffiliations(room, affs...)
	for _, r := range rooms[1:] {
		e.wantAffiliations(r.Room)
	}
	e.ok("DeleteMUCRoom", w.DeleteMUCRoom(e.ctx, "Cafe@"+svc))
	e.wantRooms(svc, slices.Delete(slices.Clone(rooms), 1, 2)...)
	e.wantAffiliations(room, affs...)
}

func checkMUCInvalid(e *env) {
	w, r := e.mucWriter(), e.muc()
	svc := e.mucService("invalid")
	good := sdk.MUCRoom{Room: "good@" + svc, Created: mucStamp(time.Now())}
	e.ok("PutMUCRoom", w.PutMUCRoom(e.ctx, good))
	badRooms := []string{"", "no-at-sign", "@" + svc, "room@", "room@" + svc + "/nick", "a@b@" + svc}
	for _, room := range badRooms {
		e.wantErr(fmt.Sprintf("PutMUCRoom(%q)", room), w.PutMUCRoom(e.ctx, sdk.MUCRoom{Room: room}), sdk.ErrInvalid)
		e.wantErr(fmt.Sprintf("DeleteMUCRoom(%q)", room), w.DeleteMUCRoom(e.ctx, room), sdk.ErrInvalid)
		_, err := r.GetMUCRoom(e.ctx, room)
		e.wantErr(fmt.Sprintf("GetMUCRoom(%q)", room), err, sdk.ErrInvalid)
		_, err = r.GetMUCAffiliations(e.ctx, room)
		e.wantErr(fmt.Sprintf("GetMUCAffiliations(%q)", room), err, sdk.ErrInvalid)
		err = w.SetMUCAffiliation(e.ctx, sdk.MUCAffiliation{Room: room, JID: e.contact("alice"), Affiliation: "member"})
		e.wantErr(fmt.Sprintf("SetMUCAffiliation on room %q", room), err, sdk.ErrInvalid)
	}
	_, err := r.ListMUCRooms(e.ctx, "")
	e.wantErr(`ListMUCRooms("")`, err, sdk.ErrInvalid)
	err = w.PutMUCRoom(e.ctx, sdk.MUCRoom{Room: "blank-var@" + svc, Config: map[string][]string{"": {"x"}}})
	e.wantErr("PutMUCRoom with a config field without a var", err, sdk.ErrInvalid)

	for name, a := range map[string]sdk.MUCAffiliation{
		"no JID":                  {Room: good.Room, Affiliation: "member"},
		"a full JID":              {Room: good.Room, JID: e.contact("alice") + "/phone", Affiliation: "member"},
		"no affiliation":          {Room: good.Room, JID: e.contact("alice")},
		"a role, not affiliation": {Room: good.Room, JID: e.contact("alice"), Affiliation: "moderator"},
		"an upper-case name":      {Room: good.Room, JID: e.contact("alice"), Affiliation: "Owner"},
	} {
		e.wantErr("SetMUCAffiliation with "+name, w.SetMUCAffiliation(e.ctx, a), sdk.ErrInvalid)
	}
	// Nothing of it was stored.
	e.wantRooms(svc, good)
	e.wantAffiliations(good.Room)
}

// checkMUCLarge stores more than gRPC's default message limit (4 MiB, which
// koi's plugin client lifts) in one listing and in one room's
// affiliations (40 KiB descriptions, 16 KiB reasons: few calls, many
// bytes): a big public service, a room with a long ban list.
func checkMUCLarge(e *env) {
	w := e.mucWriter()
	svc := e.mucService("large")
	created := mucStamp(time.Now())
	const rooms, desc = 120, 40 << 10
	want := make([]sdk.MUCRoom, rooms)
	for i := range want {
		cfg := mucConfig(fmt.Sprintf("room %d", i))
		cfg["muc#roomconfig_roomdesc"] = []string{strings.Repeat(fmt.Sprintf("%03d-ü ", i), desc/7)}
		want[i] = sdk.MUCRoom{Room: fmt.Sprintf("r%04d@%s", i, svc), Config: cfg, Created: created}
		e.ok("PutMUCRoom", w.PutMUCRoom(e.ctx, want[i]))
	}
	e.wantRooms(svc, want...)

	room := want[0].Room
	const affs, reason = 300, 16 << 10
	wantAffs := make([]sdk.MUCAffiliation, affs)
	for i := range wantAffs {
		wantAffs[i] = sdk.MUCAffiliation{Room: room, JID: fmt.Sprintf("spammer%04d@spam.example", i), Affiliation: "outcast",
			Reason: strings.Repeat(fmt.Sprintf("%04d ", i), reason/5)}
		e.ok("SetMUCAffiliation", w.SetMUCAffiliation(e.ctx, wantAffs[i]))
	}
	got, err := e.muc().GetMUCAffiliations(e.ctx, room)
	if !e.noErr("GetMUCAffiliations of a large room", err) {
		return
	}
	if len(got) != affs {
		e.t.Errorf("GetMUCAffiliations of a room with %d affiliations returned %d", affs, len(got))
		return
	}
	for i := range got {
		if got[i] != wantAffs[i] {
			e.t.Errorf("GetMUCAffiliations of a large room: [%d] is %s (%s, reason of %d bytes), want %s (%d bytes)",
				i, got[i].JID, got[i].Affiliation, len(got[i].Reason), wantAffs[i].JID, len(wantAffs[i].Reason))
			return
		}
	}
}

// checkMUCConcurrent races writers on one room: concurrent first puts make
// one room, and concurrent affiliation changes all land.
func checkMUCConcurrent(e *env) {
	w := e.mucWriter()
	svc := e.mucService("concurrent")
	room := "busy@" + svc
	n := e.o.Concurrency
	base := mucStamp(time.Now())
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			defer e.recoverPanic()
			r := sdk.MUCRoom{Room: room, Config: mucConfig("busy"), Created: base.Add(time.Duration(i) * time.Second)}
			e.noErr("concurrent PutMUCRoom", w.PutMUCRoom(e.ctx, r))
		})
	}
	wg.Wait()
	got, err := e.muc().GetMUCRoom(e.ctx, room)
	if !e.noErr("GetMUCRoom after concurrent puts", err) {
		return
	}
	if d := got.Created.Sub(base); d < 0 || d >= time.Duration(n)*time.Second || d%time.Second != 0 {
		e.t.Errorf("after %d concurrent first puts Created is %s, want the Created of one of them", n, got.Created.Format(time.RFC3339Nano))
	}
	e.wantRooms(svc, sdk.MUCRoom{Room: room, Config: mucConfig("busy"), Created: got.Created})

	want := make([]sdk.MUCAffiliation, 2*n)
	for i := range want {
		want[i] = sdk.MUCAffiliation{Room: room, JID: fmt.Sprintf("m%03d@members.example", i), Affiliation: "member"}
	}
	for i := range n {
		wg.Go(func() {
			defer e.recoverPanic()
			// Each JID from two goroutines, so that writes of one entry
			// race too, and config changes in between.
			for _, a := range []sdk.MUCAffiliation{want[2*i], want[2*i+1], want[(2*i+2)%len(want)]} {
				e.noErr("concurrent SetMUCAffiliation", w.SetMUCAffiliation(e.ctx, a))
			}
			r := sdk.MUCRoom{Room: room, Config: mucConfig("busy"), Created: base}
			e.noErr("concurrent PutMUCRoom", w.PutMUCRoom(e.ctx, r))
		})
	}
	wg.Wait()
	e.wantAffiliations(room, want...)
}
