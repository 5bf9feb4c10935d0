package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/koi-im/koi/sdk/pb"
)

// The plugin side of the Archive service: a write stream of batches,
// stored in groups and acknowledged in order, and the unary queries.

// Limits of a group commit: the batches that wait on a stream are stored
// together, in one AppendArchive call, up to these many messages. A
// larger group is cheaper per message where the cost is pages written
// (SQLite: 16,384 rows in one transaction write a third of the WAL per
// row that 4,096 do, since thousands of owners' index pages are written
// once per transaction whatever the rows in them); the group is only as
// large as what waits, so a backend that keeps up still stores batch by
// batch.
const (
	appendGroupMessages = 16384
	appendQueue         = 64 // batches read ahead of the one being stored
)

// MaxAppendWriters bounds AppendConcurrency: the groups one stream stores
// at once, whatever the backend asks.
const MaxAppendWriters = 64

// Append stores the batches of the stream and acknowledges each, in order.
// While one group of batches is being stored, the next batches are read
// ahead; they are then stored together, in one AppendArchive call (one
// transaction, in the shipped backends), which is what makes a busy
// archive cheap per message. A backend that is an AppendConcurrency with
// more than one writer has that many groups stored at once (a database
// server commits them on several connections); the acknowledgements still
// go out in the order of the batches, so a batch is acknowledged only
// when it and every batch before it are stored. A group that fails as
// invalid is stored again batch by batch, so that only the faulty batch
// is refused.
func (s *server) Append(stream pb.Archive_AppendServer) error {
	a, err := writer[Archive](s, "archive", archiveAccess)
	if err != nil {
		return err
	}
	writers := 1
	if c, ok := a.(AppendConcurrency); ok {
		writers = min(max(c.AppendWriters(), 1), MaxAppendWriters)
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	batches := make(chan *pb.ArchiveBatch, appendQueue)
	recvErr := make(chan error, 1)
	go func() {
		defer close(batches)
		for {
			b, err := stream.Recv()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					recvErr <- err
				}
				return
			}
			select {
			case batches <- b:
			case <-ctx.Done():
				return
			}
		}
	}()

	// Groups being stored, in the order of their batches; the acknowledger
	// is the stream's only sender. slots bounds the groups being stored.
	type stored struct {
		group []*pb.ArchiveBatch
		errs  chan []error
	}
	order := make(chan stored, writers)
	slots := make(chan struct{}, writers)
	ackErr := make(chan error, 1)
	acked := make(chan struct{})
	go func() {
		defer close(acked)
		for g := range order {
			errs := <-g.errs
			for i, err := range errs {
				ack := &pb.ArchiveAck{Id: g.group[i].GetId()}
				if err != nil {
					st := status.Convert(toStatus(err))
					ack.Code, ack.Error = int32(st.Code()), st.Message()
				}
				if err := stream.Send(ack); err != nil {
					ackErr <- err
					cancel()
					return
				}
			}
		}
	}()
	var running sync.WaitGroup
	defer running.Wait()
	// Take the slot before gathering the group, so that a backend with one
	// writer gathers everything that queued while it was busy.
	for b := range batches {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		group, n := []*pb.ArchiveBatch{b}, len(b.GetMessages())
	more:
		for n < appendGroupMessages {
			select {
			case next, ok := <-batches:
				if !ok {
					break more
				}
				group, n = append(group, next), n+len(next.GetMessages())
			default:
				break more
			}
		}
		g := stored{group: group, errs: make(chan []error, 1)}
		running.Add(1)
		go func() {
			defer running.Done()
			g.errs <- s.appendGroup(ctx, a, group)
			<-slots
		}()
		select {
		case order <- g:
		case <-ctx.Done():
		}
	}
	close(order)
	<-acked
	select {
	case err := <-ackErr:
		return err
	case err := <-recvErr:
		return err
	default:
		return nil
	}
}

// appendGroup stores a group of batches and returns each one's outcome.
func (s *server) appendGroup(ctx context.Context, a Archive, group []*pb.ArchiveBatch) []error {
	out := make([]error, len(group))
	if len(group) == 1 {
		out[0] = s.appendBatch(ctx, a, group[0].GetMessages())
		return out
	}
	var all []*pb.ArchivedMessage
	for _, b := range group {
		all = append(all, b.GetMessages()...)
	}
	err := s.appendBatch(ctx, a, all)
	if !errors.Is(err, ErrInvalid) {
		for i := range out {
			out[i] = err
		}
		return out
	}
	for i, b := range group {
		out[i] = s.appendBatch(ctx, a, b.GetMessages())
	}
	return out
}

// appendBatch stores messages; a panic in the backend fails them, not the
// plugin (recoverUnary does not see streams).
func (s *server) appendBatch(ctx context.Context, a Archive, msgs []*pb.ArchivedMessage) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("backend panicked", "method", "AppendArchive", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			// Refused as invalid, so that the host's writer stores the
			// rest and drops only the message that breaks the backend,
			// instead of retrying it forever.
			err = fmt.Errorf("%w: backend panicked in AppendArchive: %v", ErrInvalid, r)
		}
	}()
	if _, _, err := s.state(); err != nil {
		return err
	}
	return a.AppendArchive(ctx, archivedListFromPB(msgs))
}

func (s *server) Query(ctx context.Context, req *pb.ArchiveQuery) (*pb.ArchivePage, error) {
	a, err := reader[Archive](s, "archive", archiveAccess)
	if err != nil {
		return nil, err
	}
	q, err := archiveQueryFromPB(req)
	if err != nil {
		return nil, toStatus(err)
	}
	if q.Text != "" {
		if _, caps, _ := s.state(); !caps.Archive.FullText {
			return nil, status.Error(codes.Unimplemented, "backend has no full-text search")
		}
	}
	page, err := a.QueryArchive(ctx, q)
	return reply(err, func() *pb.ArchivePage { return archivePageToPB(page) })
}

func (s *server) DeleteArchive(ctx context.Context, req *pb.OwnerRequest) (*pb.Empty, error) {
	a, err := writer[Archive](s, "archive", archiveAccess)
	if err != nil {
		return nil, err
	}
	return emptyReply(a.DeleteArchive(ctx, req.GetOwner()))
}

func (s *server) RetractMessage(ctx context.Context, req *pb.RetractRequest) (*pb.Empty, error) {
	a, err := writer[ArchiveRetractor](s, "archive", archiveAccess)
	if err != nil {
		return nil, err
	}
	if _, caps, _ := s.state(); !caps.Archive.Retract {
		return nil, status.Error(codes.Unimplemented, "backend does not retract archived messages")
	}
	return emptyReply(a.RetractArchived(ctx, req.GetOwner(), req.GetStanzaId(), req.GetTombstone()))
}

func (s *server) GetPrefs(ctx context.Context, req *pb.OwnerRequest) (*pb.ArchivePrefs, error) {
	a, err := reader[Archive](s, "archive", archiveAccess)
	if err != nil {
		return nil, err
	}
	p, err := a.GetArchivePrefs(ctx, req.GetOwner())
	return reply(err, func() *pb.ArchivePrefs { return archivePrefsToPB(p) })
}

func (s *server) SetPrefs(ctx context.Context, req *pb.SetArchivePrefsRequest) (*pb.Empty, error) {
	a, err := writer[Archive](s, "archive", archiveAccess)
	if err != nil {
		return nil, err
	}
	if req.GetPrefs() == nil {
		return nil, toStatus(fmt.Errorf("%w: archive preferences missing", ErrInvalid))
	}
	return emptyReply(a.SetArchivePrefs(ctx, req.GetOwner(), archivePrefsFromPB(req.GetPrefs())))
}
