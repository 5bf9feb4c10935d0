package sdk

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckArchivedMessage(t *testing.T) {
	ok := ArchivedMessage{Owner: "alice@example.com", StanzaID: "0123456789abcdef", Peer: "bob@example.com",
		PeerResource: "phone", Stanza: "<message/>", Body: "hi"}
	runChecks(t, ok, CheckArchivedMessage, []checkCase[ArchivedMessage]{
		{"valid", func(*ArchivedMessage) {}, ""},
		{"no body or resource", func(m *ArchivedMessage) { m.Body, m.PeerResource = "", "" }, ""},
		{"no owner", func(m *ArchivedMessage) { m.Owner = "" }, "without owner"},
		{"no stanza id", func(m *ArchivedMessage) { m.StanzaID = "" }, "without stanza id"},
		{"no peer", func(m *ArchivedMessage) { m.Peer = "" }, "without peer"},
		{"invalid UTF-8", func(m *ArchivedMessage) { m.Body = "a\xffb" }, "body is not valid UTF-8"},
		{"NUL", func(m *ArchivedMessage) { m.Stanza = "<message>\x00</message>" }, "stanza contains a NUL byte"},
		{"NUL in the resource", func(m *ArchivedMessage) { m.PeerResource = "\x00" }, "peer resource contains a NUL"},
	})
}

func TestCheckArchiveQuery(t *testing.T) {
	ok := ArchiveQuery{Owner: "alice@example.com", With: "bob@example.com", Max: 50, IDs: []string{"a", "b"}}
	runChecks(t, ok, CheckArchiveQuery, []checkCase[ArchiveQuery]{
		{"valid", func(*ArchiveQuery) {}, ""},
		{"max 0 counts", func(q *ArchiveQuery) { q.Max, q.Count = 0, true }, ""},
		{"the largest page", func(q *ArchiveQuery) { q.Max = MaxArchivePage }, ""},
		{"no owner", func(q *ArchiveQuery) { q.Owner = "" }, "without owner"},
		{"negative max", func(q *ArchiveQuery) { q.Max = -1 }, "max -1 is outside"},
		{"max too large", func(q *ArchiveQuery) { q.Max = MaxArchivePage + 1 }, "is outside 0..1000"},
		{"negative skip", func(q *ArchiveQuery) { q.Skip = -3 }, "negative skip -3"},
		{"too many ids", func(q *ArchiveQuery) { q.IDs = make([]string, MaxArchivePage+1) }, "1001 ids"},
		{"invalid text", func(q *ArchiveQuery) { q.Text = "\xc3" }, "text is not valid UTF-8"},
		{"NUL in an id", func(q *ArchiveQuery) { q.IDs = []string{"a", "b\x00"} }, "id contains a NUL byte"},
		{"NUL in a bound", func(q *ArchiveQuery) { q.Before = "\x00" }, "before contains a NUL"},
	})
}

// checkCase is ok changed by edit, and what check must say of it: nil
// when want is "", else ErrInvalid saying want.
type checkCase[T any] struct {
	name string
	edit func(*T)
	want string
}

func runChecks[T any](t *testing.T, ok T, check func(T) error, cases []checkCase[T]) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := ok
			c.edit(&v)
			wantInvalid(t, check(v), c.want)
		})
	}
}

func wantInvalid(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("refused: %v", err)
	case want == "":
	case !errors.Is(err, ErrInvalid):
		t.Fatalf("got %v, want ErrInvalid saying %q", err, want)
	case !strings.Contains(err.Error(), want):
		t.Fatalf("got %q, want it to say %q", err, want)
	}
}
