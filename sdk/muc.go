package sdk

import (
	"context"
	"time"
)

// MUCRoom is a persistent group chat room (XEP-0045). Temporary rooms live
// only in the core's memory and never reach a backend.
type MUCRoom struct {
	// Room is the room's bare JID (room@conference.example.org).
	Room string
	// Config holds the room configuration form values keyed by field var
	// (muc#roomconfig_roomname, muc#roomconfig_membersonly, ...). The core
	// validates them; a backend stores and returns the map as it is.
	Config map[string][]string
	// Subject is the room's subject and SubjectBy the nick that set it.
	Subject   string
	SubjectBy string
	// Created is when the room was created, in UTC, to the millisecond.
	Created time.Time
}

// MUCAffiliation is a JID's long-lived affiliation with a room: "owner",
// "admin", "member" or "outcast" ("none" is never stored). JID is a bare
// JID or a domain.
type MUCAffiliation struct {
	Room        string
	JID         string
	Affiliation string
	// Nick is the nick reserved for JID in the room, "" for none.
	Nick string
	// Reason is the reason given with the change (a ban's reason, say).
	Reason string
}

// MUC reads persistent rooms. Room and JIDs are normalised by the core.
type MUC interface {
	// GetMUCRoom returns one room; ErrNotFound if it is not stored.
	GetMUCRoom(ctx context.Context, room string) (MUCRoom, error)
	// ListMUCRooms returns the rooms of a MUC service (the domain part of
	// their JIDs) sorted by Room; none is an empty list, not an error.
	ListMUCRooms(ctx context.Context, service string) ([]MUCRoom, error)
	// GetMUCAffiliations returns a room's affiliations sorted by JID; none
	// is an empty list, not an error.
	GetMUCAffiliations(ctx context.Context, room string) ([]MUCAffiliation, error)
}

// MUCWriter changes persistent rooms. Each call is atomic. Input that
// CheckMUCRoom or CheckMUCAffiliation refuses is ErrInvalid, in every
// method (a room JID that MUCService refuses, in the reads too).
type MUCWriter interface {
	// PutMUCRoom creates the room or replaces its Config, Subject and
	// SubjectBy (Created is kept from the first put).
	PutMUCRoom(ctx context.Context, r MUCRoom) error
	// DeleteMUCRoom removes a room with its affiliations; an absent room is
	// not an error.
	DeleteMUCRoom(ctx context.Context, room string) error
	// SetMUCAffiliation stores a (replacing the room's entry for a.JID),
	// or removes the entry when a.Affiliation is "none"; ErrNotFound if the
	// room is not stored.
	SetMUCAffiliation(ctx context.Context, a MUCAffiliation) error
}
