package archive

import (
	"context"
	"errors"
	"io"

	"github.com/koi-im/koi/sdk"
)

// LocalStream returns an Opener for a backend in the same process: each
// batch is stored with AppendArchive by a goroutine of the stream, in
// order, and acknowledged like a plugin would.
func LocalStream(a sdk.Archive) Opener {
	return func(ctx context.Context) (Stream, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ctx, cancel := context.WithCancel(ctx)
		s := &localStream{ctx: ctx, cancel: cancel, in: make(chan localBatch, 64), acks: make(chan localAck, 64)}
		go s.serve(a)
		return s, nil
	}
}

type localBatch struct {
	id   uint64
	msgs []sdk.ArchivedMessage
}

type localAck struct {
	id      uint64
	outcome error
}

type localStream struct {
	ctx    context.Context
	cancel context.CancelFunc
	in     chan localBatch // closed by CloseSend
	acks   chan localAck   // closed when serve is done
	closed bool            // CloseSend was called; only the sender touches it
}

var errLocalClosed = errors.New("archive: local stream closed")

func (s *localStream) serve(a sdk.Archive) {
	defer close(s.acks)
	for {
		select {
		case b, ok := <-s.in:
			if !ok {
				return
			}
			err := a.AppendArchive(s.ctx, b.msgs)
			select {
			case s.acks <- localAck{b.id, err}:
			case <-s.ctx.Done():
				return
			}
		case <-s.ctx.Done():
			return
		}
	}
}

func (s *localStream) Send(id uint64, msgs []sdk.ArchivedMessage) error {
	if s.closed {
		return errLocalClosed
	}
	select {
	case s.in <- localBatch{id, append([]sdk.ArchivedMessage(nil), msgs...)}:
		return nil
	case <-s.ctx.Done():
		return errors.Join(sdk.ErrUnavailable, s.ctx.Err())
	}
}

func (s *localStream) Recv() (uint64, error, error) {
	select {
	case a, ok := <-s.acks:
		if !ok {
			if s.ctx.Err() != nil {
				return 0, nil, errors.Join(sdk.ErrUnavailable, s.ctx.Err())
			}
			return 0, nil, io.EOF
		}
		return a.id, a.outcome, nil
	case <-s.ctx.Done():
		return 0, nil, errors.Join(sdk.ErrUnavailable, s.ctx.Err())
	}
}

func (s *localStream) CloseSend() error {
	if !s.closed {
		s.closed = true
		close(s.in)
	}
	return nil
}
