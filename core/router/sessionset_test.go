package router

import (
	"slices"
	"testing"

	"github.com/koi-im/koi/core/jid"
)

func TestSessionSet(t *testing.T) {
	sess := func(full string) *Session { return &Session{jid: jid.MustParse(full)} }
	resources := func(ss *sessionSet) []string {
		var out []string
		for s := range ss.all() {
			out = append(out, s.jid.Resource())
		}
		slices.Sort(out)
		return out
	}
	var ss sessionSet
	if ss.len() != 0 || ss.get("pc") != nil || len(resources(&ss)) != 0 {
		t.Fatal("an empty set is not empty")
	}
	pc := sess("a@example.com/pc")
	if old := ss.put(pc); old != nil || ss.get("pc") != pc || ss.get("phone") != nil || ss.len() != 1 {
		t.Fatal("one session")
	}
	pc2 := sess("a@example.com/pc")
	if old := ss.put(pc2); old != pc || ss.get("pc") != pc2 || ss.len() != 1 {
		t.Fatal("a session replacing the one of its resource")
	}
	phone := sess("a@example.com/phone")
	if old := ss.put(phone); old != nil || ss.get("pc") != pc2 || ss.get("phone") != phone || ss.len() != 2 {
		t.Fatal("a second resource")
	}
	if got := resources(&ss); !slices.Equal(got, []string{"pc", "phone"}) {
		t.Fatalf("all: %v", got)
	}
	phone2 := sess("a@example.com/phone")
	if old := ss.put(phone2); old != phone || ss.len() != 2 {
		t.Fatal("replacing among several")
	}
	ss.del("pc")
	ss.del("tablet") // not there
	if ss.get("pc") != nil || ss.get("phone") != phone2 || ss.len() != 1 || !slices.Equal(resources(&ss), []string{"phone"}) {
		t.Fatal("after deleting one of two")
	}
	ss.del("phone")
	if ss.len() != 0 || len(resources(&ss)) != 0 {
		t.Fatal("after deleting all")
	}
	var one sessionSet
	one.put(pc)
	one.del("phone") // another resource leaves the one alone
	if one.get("pc") != pc {
		t.Fatal("deleting another resource removed the one session")
	}
	one.del("pc")
	if one.len() != 0 {
		t.Fatal("the one session not deleted")
	}
	// Stopping early stops.
	ss.put(pc)
	ss.put(phone)
	n := 0
	for range ss.all() {
		n++
		break
	}
	if n != 1 {
		t.Fatal("all did not stop")
	}
}
