package sdk

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/koi-im/koi/sdk/pb"
)

func TestMUCService(t *testing.T) {
	for room, want := range map[string]string{
		"room@conference.example.org": "conference.example.org",
		"räum@muc.example":            "muc.example",
	} {
		if got, err := MUCService(room); err != nil || got != want {
			t.Errorf("MUCService(%q) = %q, %v; want %q", room, got, err, want)
		}
	}
	for _, room := range []string{"", "muc.example", "@muc.example", "room@", "room@muc.example/nick", "a@b@muc.example"} {
		if _, err := MUCService(room); !errors.Is(err, ErrInvalid) {
			t.Errorf("MUCService(%q): error %v, want ErrInvalid", room, err)
		}
	}
}

func TestCheckMUCAffiliation(t *testing.T) {
	ok := MUCAffiliation{Room: "r@muc.example", JID: "a@example.org", Affiliation: "member"}
	for _, aff := range []string{"owner", "admin", "member", "outcast", "none"} {
		a := ok
		a.Affiliation = aff
		if err := CheckMUCAffiliation(a); err != nil {
			t.Errorf("CheckMUCAffiliation(%s): %v", aff, err)
		}
	}
	domain := ok
	domain.JID = "spam.example"
	if err := CheckMUCAffiliation(domain); err != nil {
		t.Errorf("CheckMUCAffiliation of a domain: %v", err)
	}
	for name, mod := range map[string]func(*MUCAffiliation){
		"bad room":     func(a *MUCAffiliation) { a.Room = "r" },
		"no JID":       func(a *MUCAffiliation) { a.JID = "" },
		"full JID":     func(a *MUCAffiliation) { a.JID = "a@example.org/res" },
		"a role":       func(a *MUCAffiliation) { a.Affiliation = "participant" },
		"empty":        func(a *MUCAffiliation) { a.Affiliation = "" },
		"another case": func(a *MUCAffiliation) { a.Affiliation = "Member" },
	} {
		a := ok
		mod(&a)
		if err := CheckMUCAffiliation(a); !errors.Is(err, ErrInvalid) {
			t.Errorf("CheckMUCAffiliation with %s: %v, want ErrInvalid", name, err)
		}
	}
}

// The config map survives the wire exactly: a field without values stays
// a field, values keep their order, and the fields travel sorted so that
// one map is always one message.
func TestMUCRoomWire(t *testing.T) {
	r := MUCRoom{
		Room: "r@muc.example",
		Config: map[string][]string{
			"z": {"2", "1", ""}, "a": {}, "m": {"ü"},
		},
		Subject: "s", SubjectBy: "n",
		Created: time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC),
	}
	p := mucRoomToPB(r)
	var vars []string
	for _, f := range p.GetConfig() {
		vars = append(vars, f.GetVar())
	}
	if !slices.Equal(vars, []string{"a", "m", "z"}) {
		t.Errorf("config vars travel as %q, want sorted", vars)
	}
	got, err := mucRoomFromPB(p)
	if err != nil {
		t.Fatal(err)
	}
	if got.Room != r.Room || got.Subject != r.Subject || got.SubjectBy != r.SubjectBy || !got.Created.Equal(r.Created) {
		t.Errorf("round trip = %+v, want %+v", got, r)
	}
	if len(got.Config) != 3 || !slices.Equal(got.Config["z"], r.Config["z"]) || !slices.Equal(got.Config["m"], r.Config["m"]) {
		t.Errorf("config round trip = %q, want %q", got.Config, r.Config)
	}
	if v, ok := got.Config["a"]; !ok || len(v) != 0 {
		t.Errorf("the field without values came back as %q, %v", v, ok)
	}

	zero, err := mucRoomFromPB(mucRoomToPB(MUCRoom{Room: r.Room}))
	if err != nil || !zero.Created.IsZero() || len(zero.Config) != 0 {
		t.Errorf("a zero room came back as %+v, %v", zero, err)
	}

	dup := &pb.MUCRoom{Room: r.Room, Config: []*pb.MUCConfigField{{Var: "x"}, {Var: "x", Values: []string{"1"}}}}
	if _, err := mucRoomFromPB(dup); !errors.Is(err, ErrInvalid) {
		t.Errorf("a config with a var twice: %v, want ErrInvalid", err)
	}
}
