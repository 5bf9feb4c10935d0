package archive

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/koi-im/koi/core/archive/archivetest"
	"github.com/koi-im/koi/sdk"
)

// benchPair is the two copies of one chat message, as the core archives
// them: one stanza string shared by the recipient's and the sender's copy.
func benchPair(i int) [2]sdk.ArchivedMessage {
	body := strings.Repeat("hello bob, ", 25)
	st := "<message xmlns='jabber:client' from='alice@example.com/pc' to='bob@example.com' type='chat' id='a1b2c3d4'><body>" +
		body + "</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>"
	now := time.Now().UTC().Truncate(time.Millisecond)
	return [2]sdk.ArchivedMessage{
		{Owner: "bob@example.com", StanzaID: fmt.Sprintf("in%014d", i), Peer: "alice@example.com", PeerResource: "pc",
			Stamp: now, Stanza: st, Body: body},
		{Owner: "alice@example.com", StanzaID: fmt.Sprintf("out%013d", i), Peer: "bob@example.com",
			Stamp: now, Outgoing: true, Stanza: st, Body: body},
	}
}

// BenchmarkWriterThroughTheJournal measures the writer's cost of a chat
// message (both copies) that goes through the journal, as every message
// does while the backend is slower than the traffic: reserved and
// committed, encoded and written to the journal (fsynced), read back,
// decoded and sent. The backend is down while the messages are committed
// and comes back once all of them are journaled.
func BenchmarkWriterThroughTheJournal(b *testing.B) {
	pairs := make([][2]sdk.ArchivedMessage, b.N)
	for i := range pairs {
		pairs[i] = benchPair(i)
	}
	var up atomic.Bool
	var mu sync.Mutex
	var streams []*archivetest.AckStream // one per connection
	open := func(context.Context) (Stream, error) {
		if !up.Load() {
			return nil, fmt.Errorf("down: %w", sdk.ErrUnavailable)
		}
		s := archivetest.NewAckStream()
		mu.Lock()
		streams = append(streams, s)
		mu.Unlock()
		return s, nil
	}
	sent := func() (n int64) {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range streams {
			n += s.Sent.Load()
		}
		return n
	}
	j := openJournal(b, filepath.Join(b.TempDir(), "bench.journal"), 1<<40)
	w := NewWriter(open, Options{Journal: j, RetryMin: time.Millisecond, RetryMax: time.Millisecond,
		ProbeInterval: time.Millisecond}, nil)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range pairs {
		r, err := w.Reserve(ctx, 2)
		if err != nil {
			b.Fatal(err)
		}
		if err := r.Commit(pairs[i][:]...); err != nil {
			b.Fatal(err)
		}
	}
	for w.Stats().Journaled < 2*b.N {
		time.Sleep(100 * time.Microsecond)
	}
	up.Store(true)
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := w.Close(cctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if n := sent(); n != int64(2*b.N) {
		b.Fatalf("sent %d of %d", n, 2*b.N)
	}
}
