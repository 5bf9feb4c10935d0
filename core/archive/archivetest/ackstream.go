// Package archivetest holds test doubles for the archive writer's
// backend side.
package archivetest

import (
	"io"
	"sync"
	"sync/atomic"

	"github.com/koi-im/koi/sdk"
)

// AckStream is an archive stream (archive.Stream) that stores nothing and
// acknowledges every batch at once: with it a benchmark measures the
// core's side of archiving alone, without a backend.
type AckStream struct {
	// Sent counts the messages sent.
	Sent atomic.Int64

	acks chan uint64
	once sync.Once
}

// NewAckStream returns a stream with room for every batch a writer may
// have in flight, so that Send never waits.
func NewAckStream() *AckStream {
	return &AckStream{acks: make(chan uint64, 1024)}
}

// Send acknowledges the batch.
func (s *AckStream) Send(id uint64, msgs []sdk.ArchivedMessage) error {
	s.Sent.Add(int64(len(msgs)))
	s.acks <- id
	return nil
}

// Recv returns the next acknowledgement, io.EOF once closed.
func (s *AckStream) Recv() (uint64, error, error) {
	id, ok := <-s.acks
	if !ok {
		return 0, nil, io.EOF
	}
	return id, nil, nil
}

// CloseSend ends the acknowledgements.
func (s *AckStream) CloseSend() error {
	s.once.Do(func() { close(s.acks) })
	return nil
}
