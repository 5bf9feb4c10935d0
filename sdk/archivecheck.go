package sdk

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// The checks every archive backend makes before it stores or queries,
// shared so that they all refuse the same input with ErrInvalid. The core
// sends nothing that fails them; a backend that stores more narrowly (a
// key column's length) adds its own.

// CheckArchivedMessage returns ErrInvalid, saying why, when AppendArchive
// cannot store m: no owner, stanza id or peer, or a field that is not
// valid UTF-8 or holds a NUL byte (no XML carries one).
func CheckArchivedMessage(m ArchivedMessage) error {
	switch {
	case m.Owner == "":
		return fmt.Errorf("%w: an archived message without owner", ErrInvalid)
	case m.StanzaID == "":
		return fmt.Errorf("%w: an archived message of %s without stanza id", ErrInvalid, m.Owner)
	case m.Peer == "":
		return fmt.Errorf("%w: an archived message of %s without peer", ErrInvalid, m.Owner)
	}
	return checkStorable(
		"owner", m.Owner, "stanza id", m.StanzaID, "peer", m.Peer, "peer resource", m.PeerResource,
		"stanza", m.Stanza, "body", m.Body)
}

// CheckRetraction returns ErrInvalid, saying why, for a retraction
// (ArchiveRetractor) without owner, stanza id or tombstone, or with one
// that is not valid UTF-8 or holds a NUL byte.
func CheckRetraction(owner, stanzaID, tombstone string) error {
	if owner == "" || stanzaID == "" || tombstone == "" {
		return fmt.Errorf("%w: a retraction needs an owner, a stanza id and a tombstone", ErrInvalid)
	}
	return checkStorable("owner", owner, "stanza id", stanzaID, "tombstone", tombstone)
}

// CheckArchiveQuery returns ErrInvalid, saying why, when q asks for what no
// backend serves: no owner, Max outside 0..MaxArchivePage, a negative
// Skip, more than MaxArchivePage IDs, or a field that is not valid UTF-8
// or holds a NUL byte.
func CheckArchiveQuery(q ArchiveQuery) error {
	switch {
	case q.Owner == "":
		return fmt.Errorf("%w: an archive query without owner", ErrInvalid)
	case q.Max < 0 || q.Max > MaxArchivePage:
		return fmt.Errorf("%w: max %d is outside 0..%d", ErrInvalid, q.Max, MaxArchivePage)
	case q.Skip < 0:
		return fmt.Errorf("%w: negative skip %d", ErrInvalid, q.Skip)
	case len(q.IDs) > MaxArchivePage:
		return fmt.Errorf("%w: %d ids, more than %d", ErrInvalid, len(q.IDs), MaxArchivePage)
	}
	if err := checkStorable("owner", q.Owner, "with", q.With, "with resource", q.WithResource,
		"after id", q.AfterID, "before id", q.BeforeID, "text", q.Text, "after", q.After, "before", q.Before); err != nil {
		return err
	}
	for _, id := range q.IDs {
		if err := checkStorable("id", id); err != nil {
			return err
		}
	}
	return nil
}

// checkStorable checks pairs of a field's name and its value.
func checkStorable(fields ...string) error {
	for i := 0; i+1 < len(fields); i += 2 {
		name, v := fields[i], fields[i+1]
		if !utf8.ValidString(v) {
			return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalid, name)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return fmt.Errorf("%w: %s contains a NUL byte", ErrInvalid, name)
		}
	}
	return nil
}
