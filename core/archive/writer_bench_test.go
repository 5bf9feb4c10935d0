package archive

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/koi-im/koi/sdk"
)

// discardStream stores nothing and acknowledges every batch at once, so
// that a benchmark measures the writer alone.
type discardStream struct {
	acks chan uint64
	once sync.Once
	sent *atomic.Int64
}

func (s *discardStream) Send(id uint64, msgs []sdk.ArchivedMessage) error {
	s.sent.Add(int64(len(msgs)))
	s.acks <- id
	return nil
}

func (s *discardStream) Recv() (uint64, error, error) {
	id, ok := <-s.acks
	if !ok {
		return 0, nil, io.EOF
	}
	return id, nil, nil
}

func (s *discardStream) CloseSend() error {
	s.once.Do(func() { close(s.acks) })
	return nil
}

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
	var sent atomic.Int64
	open := func(context.Context) (Stream, error) {
		if !up.Load() {
			return nil, fmt.Errorf("down: %w", sdk.ErrUnavailable)
		}
		return &discardStream{acks: make(chan uint64, 1024), sent: &sent}, nil
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
	if n := sent.Load(); n != int64(2*b.N) {
		b.Fatalf("sent %d of %d", n, 2*b.N)
	}
}
