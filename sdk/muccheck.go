package sdk

import (
	"fmt"
	"strings"
)

// The checks every MUC backend makes before storing, shared so that they
// all refuse the same input with ErrInvalid. The core normalises JIDs
// before they reach a backend; these catch what normalisation cannot make
// storable (an empty or malformed room JID, an unknown affiliation).

// mucAffiliations are the affiliations SetMUCAffiliation accepts; "none"
// removes the entry.
var mucAffiliations = map[string]bool{"owner": true, "admin": true, "member": true, "outcast": true, "none": true}

// MUCService returns the MUC service of a room, the domain part of its
// bare JID (room@conference.example.org → conference.example.org). A room
// that is not local@domain, with both parts non-empty and no resource, is
// ErrInvalid.
func MUCService(room string) (string, error) {
	local, service, ok := strings.Cut(room, "@")
	switch {
	case room == "":
		return "", fmt.Errorf("%w: empty room JID", ErrInvalid)
	case !ok || local == "" || service == "":
		return "", fmt.Errorf("%w: room JID %q is not room@service", ErrInvalid, room)
	case strings.ContainsAny(service, "@/"):
		return "", fmt.Errorf("%w: room JID %q is not a bare JID", ErrInvalid, room)
	}
	return service, nil
}

// CheckMUCRoom returns ErrInvalid, saying why, when PutMUCRoom cannot
// store r: a malformed room JID or a config field without a var.
func CheckMUCRoom(r MUCRoom) error {
	if _, err := MUCService(r.Room); err != nil {
		return err
	}
	if _, ok := r.Config[""]; ok {
		return fmt.Errorf("%w: room %s: a config field without a var", ErrInvalid, r.Room)
	}
	return nil
}

// CheckMUCAffiliation returns ErrInvalid, saying why, when
// SetMUCAffiliation cannot store a: a malformed room JID, an empty JID or
// one with a resource, or an affiliation other than owner, admin, member,
// outcast or none.
func CheckMUCAffiliation(a MUCAffiliation) error {
	if _, err := MUCService(a.Room); err != nil {
		return err
	}
	switch {
	case a.JID == "":
		return fmt.Errorf("%w: room %s: an affiliation without a JID", ErrInvalid, a.Room)
	case strings.Contains(a.JID, "/"):
		return fmt.Errorf("%w: room %s: affiliation JID %q is not a bare JID or a domain", ErrInvalid, a.Room, a.JID)
	case !mucAffiliations[a.Affiliation]:
		return fmt.Errorf("%w: room %s: unknown affiliation %q (want owner, admin, member, outcast or none)", ErrInvalid, a.Room, a.Affiliation)
	}
	return nil
}
