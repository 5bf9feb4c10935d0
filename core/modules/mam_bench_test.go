package modules

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/koi-im/koi/core/archive"
	"github.com/koi-im/koi/core/archive/archivetest"
	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/stanza"
)

func openAckStream(context.Context) (archive.Stream, error) {
	return archivetest.NewAckStream(), nil
}

// BenchmarkArchiveMessage measures the core's cost of archiving one chat
// message between two local users: the preferences lookup, both copies
// serialised, given ids and reserved (prepareArchive), committed, and
// batched and sent by the writer to a stream that acknowledges at once.
// allocs/op counts the writer's goroutine too. Delivery is not included.
func BenchmarkArchiveMessage(b *testing.B) {
	e := newEnv(b)
	w := archive.NewWriter(openAckStream, archive.Options{}, nil)
	e.host.Archive = Feature[*Archive]{Backend: &Archive{Backend: e.store, Writer: w}, On: true, Writable: true}
	el, err := stanza.Parse(`<message from='alice@example.com/pc' to='bob@example.com' type='chat' id='a1b2c3d4'><body>` +
		strings.Repeat("hello bob, ", 25) + `</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	if err != nil {
		b.Fatal(err)
	}
	to := jid.MustParse("bob@example.com")
	ctx := context.Background()
	// The first message reads both preferences from the backend; the rest
	// find them cached, as for a user who is chatting.
	from := jid.MustParse("alice@example.com/pc")
	if a, serr := e.m.prepareArchive(ctx, el, from, to); serr != nil || a.n != 2 {
		b.Fatalf("prepareArchive: %d copies, %v", a.n, serr)
	} else {
		a.commit(e.m)
	}
	kids := len(el.Children) - 1 // without the stanza-id just added
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// The same element every time, without the stanza-id added the
		// round before: a client's message carries none, and stripping
		// one costs a JID parse that real traffic does not pay.
		el.Children = el.Children[:kids]
		a, serr := e.m.prepareArchive(ctx, el, from, to)
		if serr != nil || a.n != 2 {
			b.Fatalf("prepareArchive: %d copies, %v", a.n, serr)
		}
		a.commit(e.m)
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := w.Close(cctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if st := w.Stats(); st.Stored != uint64(2*(b.N+1)) {
		b.Fatalf("archived %d of %d", st.Stored, 2*(b.N+1))
	}
}
