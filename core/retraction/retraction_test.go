package retraction

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/koi-im/koi/core/archive"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/core/xmlstream"
	sqlbackend "github.com/koi-im/koi/plugins/sql"
	"github.com/koi-im/koi/plugins/sql/sqltest"
	"github.com/koi-im/koi/sdk"
)

const (
	alice = "alice@example.test"
	bob   = "bob@example.test"
)

// store is a host's archive as the server gives it to the Tombstoner: the
// real batched writer in front of the real SQL backend.
type store struct {
	*archive.Writer
	st      *sqlbackend.Store
	ids     *archive.IDs
	retract bool
}

func (s *store) QueryArchive(ctx context.Context, q sdk.ArchiveQuery) (sdk.ArchivePage, error) {
	return s.st.QueryArchive(ctx, q)
}

func (s *store) CanRetract() bool { return s.retract }

func (s *store) Retract(ctx context.Context, owner, stanzaID, tombstone string) error {
	return s.st.RetractArchived(ctx, owner, stanzaID, tombstone)
}

func newStore(t *testing.T) *store {
	t.Helper()
	st := sqltest.SQLite(t)
	w := archive.NewWriter(archive.LocalStream(st), archive.Options{}, nil)
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	return &store{Writer: w, st: st, ids: archive.NewIDs(), retract: true}
}

// send archives msg, from one of alice and bob to the other, in both
// archives as package modules does, and returns the copies.
func (s *store) send(t *testing.T, from, to, msg string) []sdk.ArchivedMessage {
	t.Helper()
	el, err := stanza.Parse(msg)
	if err != nil {
		t.Fatal(err)
	}
	el.SetAttr("from", from+"/res").SetAttr("to", to)
	var body string
	if b := el.Child(xmlstream.NSClient, "body"); b != nil {
		body = b.Text()
	}
	var copies []sdk.ArchivedMessage
	for _, c := range []struct {
		owner, peer string
		out         bool
	}{{to, from, false}, {from, to, true}} {
		id, stamp := s.ids.Next()
		copies = append(copies, sdk.ArchivedMessage{
			Owner: c.owner, StanzaID: id, Peer: c.peer, Stamp: stamp, Outgoing: c.out, Stanza: el.String(), Body: body,
		})
	}
	if err := s.Append(context.Background(), copies...); err != nil {
		t.Fatal(err)
	}
	return copies
}

// retract archives a retraction and hands it to tb, as package modules
// does, and waits until tb is done.
func (s *store) retract1(t *testing.T, tb *Tombstoner, from, to, msg string) {
	t.Helper()
	copies := s.send(t, from, to, msg)
	el, _ := stanza.Parse(msg)
	tb.Retracted(copies, archive.RetractedID(el), el.Attr("id"))
	if err := tb.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// archived is owner's archive, oldest first, each message as its id
// attribute and its body, or "tombstone(retraction id)".
func (s *store) archived(t *testing.T, owner string) []string {
	t.Helper()
	if err := s.Sync(context.Background(), owner); err != nil {
		t.Fatal(err)
	}
	page, err := s.st.QueryArchive(context.Background(), sdk.ArchiveQuery{Owner: owner, Max: 100})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range page.Messages {
		el, err := stanza.Parse(m.Stanza)
		if err != nil {
			t.Fatal(err)
		}
		switch r := el.Child(archive.NSRetract1, "retracted"); {
		case r != nil:
			if el.Child(xmlstream.NSClient, "body") != nil || m.Body != "" || r.Attr("stamp") == "" {
				t.Errorf("tombstone %s keeps the text or has no stamp (body %q)", m.Stanza, m.Body)
			}
			out = append(out, fmt.Sprintf("%s:tombstone(%s)", el.Attr("id"), r.Attr("id")))
		default:
			out = append(out, el.Attr("id")+":"+el.Child(xmlstream.NSClient, "body").Text())
		}
	}
	return out
}

func newTombstoner(s *store, depth int) *Tombstoner {
	return New(Config{Archive: func(domain string) Archive {
		if domain != "example.test" {
			return nil
		}
		return s
	}, Depth: depth})
}

func TestRetract(t *testing.T) {
	tests := []struct {
		name string
		// msgs are sent in order: "a>" from alice to bob, "b>" the
		// other way; the last one is the retraction.
		msgs  []string
		depth int
		// want is both archives afterwards (they hold the same
		// messages).
		want []string
	}{{
		name: "version 1 by id, with a correction and the peer's message kept",
		msgs: []string{
			`a><message id='m1' type='chat'><body>wrong chat</body><origin-id xmlns='urn:xmpp:sid:0' id='m1'/></message>`,
			`b><message id='m2' type='chat'><body>hm?</body></message>`,
			`a><message id='m3' type='chat'><body>wrong chat, fixed</body><replace id='m1' xmlns='urn:xmpp:message-correct:0'/></message>`,
			`a><message id='r1' type='chat'><retract id='m1' xmlns='urn:xmpp:message-retract:1'/><fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:message-retract:1'/><body>/me retracted a previous message</body><store xmlns='urn:xmpp:hints'/></message>`,
		},
		want: []string{"m1:tombstone(r1)", "m2:hm?", "m3:tombstone(r1)", "r1:/me retracted a previous message"},
	}, {
		name: "version 0 by origin-id",
		msgs: []string{
			`a><message id='x1' type='chat'><body>oops</body><origin-id xmlns='urn:xmpp:sid:0' id='o1'/></message>`,
			`a><message id='r0' type='chat'><apply-to id='o1' xmlns='urn:xmpp:fasten:0'><retract xmlns='urn:xmpp:message-retract:0'/></apply-to><body>retracted</body><store xmlns='urn:xmpp:hints'/></message>`,
		},
		want: []string{"x1:tombstone(r0)", "r0:retracted"},
	}, {
		name: "the latest of two messages with one id",
		msgs: []string{
			`a><message id='dup' type='chat'><body>first</body></message>`,
			`a><message id='dup' type='chat'><body>second</body></message>`,
			`a><message id='r2' type='chat'><retract id='dup' xmlns='urn:xmpp:message-retract:1'/><body>r</body></message>`,
		},
		want: []string{"dup:first", "dup:tombstone(r2)", "r2:r"},
	}, {
		name: "nobody retracts another's message",
		msgs: []string{
			`a><message id='hers' type='chat'><body>alice's words</body></message>`,
			`b><message id='r3' type='chat'><retract id='hers' xmlns='urn:xmpp:message-retract:1'/><body>r</body></message>`,
		},
		want: []string{"hers:alice's words", "r3:r"},
	}, {
		name: "beyond the depth searched",
		msgs: []string{
			`a><message id='old' type='chat'><body>long ago</body></message>`,
			`b><message id='n1' type='chat'><body>one</body></message>`,
			`b><message id='n2' type='chat'><body>two</body></message>`,
			`a><message id='r4' type='chat'><retract id='old' xmlns='urn:xmpp:message-retract:1'/><body>r</body></message>`,
		},
		depth: 2,
		want:  []string{"old:long ago", "n1:one", "n2:two", "r4:r"},
	}, {
		name: "a retraction names no retraction",
		msgs: []string{
			`a><message id='r5' type='chat'><retract id='r5' xmlns='urn:xmpp:message-retract:1'/><body>r</body></message>`,
		},
		want: []string{"r5:r"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			tb := newTombstoner(s, tc.depth)
			for i, m := range tc.msgs {
				from, to := alice, bob
				if strings.HasPrefix(m, "b>") {
					from, to = bob, alice
				}
				m = m[2:]
				if i == len(tc.msgs)-1 {
					s.retract1(t, tb, from, to, m)
				} else {
					s.send(t, from, to, m)
				}
			}
			for _, owner := range []string{alice, bob} {
				if got := s.archived(t, owner); strings.Join(got, "|") != strings.Join(tc.want, "|") {
					t.Errorf("%s's archive:\n got %q\nwant %q", owner, got, tc.want)
				}
			}
		})
	}
}

// TestRetractWithoutRetractor: an archive whose plugin cannot retract
// keeps the message, and the retraction beside it.
func TestRetractWithoutRetractor(t *testing.T) {
	s := newStore(t)
	s.retract = false
	tb := newTombstoner(s, 0)
	s.send(t, alice, bob, `<message id='m1' type='chat'><body>kept</body></message>`)
	s.retract1(t, tb, alice, bob, `<message id='r1' type='chat'><retract id='m1' xmlns='urn:xmpp:message-retract:1'/><body>r</body></message>`)
	if got := s.archived(t, bob); strings.Join(got, "|") != "m1:kept|r1:r" {
		t.Fatalf("bob's archive: %q", got)
	}
}

// TestRetractBusy: a retraction that comes while every slot is taken
// leaves the message and returns at once.
func TestRetractBusy(t *testing.T) {
	s := newStore(t)
	tb := New(Config{Archive: func(string) Archive { return s }, Concurrency: 1})
	tb.slots <- struct{}{} // the one slot, busy
	s.send(t, alice, bob, `<message id='m1' type='chat'><body>kept</body></message>`)
	done := make(chan struct{})
	go func() {
		s.retract1(t, tb, alice, bob, `<message id='r1' type='chat'><retract id='m1' xmlns='urn:xmpp:message-retract:1'/><body>r</body></message>`)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Retracted waited for a slot")
	}
	<-tb.slots
	if got := s.archived(t, alice); strings.Join(got, "|") != "m1:kept|r1:r" {
		t.Fatalf("alice's archive: %q", got)
	}
}
