package modules

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/koi-im/koi/core/archive"
	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/stanza"
	"github.com/koi-im/koi/sdk"
)

// ackStream is an archive stream that stores nothing and acknowledges
// every batch at once: with it a benchmark measures the core's side of
// archiving alone, without a backend.
type ackStream struct {
	mu     sync.Mutex
	acks   chan uint64
	closed bool
}

func openAckStream(context.Context) (archive.Stream, error) {
	// Room for every batch the writer may have in flight, so that Send
	// never waits.
	return &ackStream{acks: make(chan uint64, 1024)}, nil
}

func (s *ackStream) Send(id uint64, _ []sdk.ArchivedMessage) error {
	s.acks <- id
	return nil
}

func (s *ackStream) Recv() (uint64, error, error) {
	id, ok := <-s.acks
	if !ok {
		return 0, nil, io.EOF
	}
	return id, nil, nil
}

func (s *ackStream) CloseSend() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.acks)
	}
	return nil
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
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// The same element every time: prepareArchive strips the
		// stanza-id it added the round before, as it strips forged ones.
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
