package sdk

import (
	"context"
	"fmt"
	"math"
	"runtime/debug"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/koi-im/koi/sdk/pb"
)

// The plugin side of the PubSub service. Lists are streamed in chunks (see
// koi_backend.proto): a page of 1000 avatars is hundreds of MiB, far over
// the 4 MiB a gRPC message may hold by default.

// chunkBytes bounds the encoded size of one streamed chunk; an element
// larger than that goes alone.
const chunkBytes = 1 << 20

// chunks splits msgs into runs of at most about chunkBytes, returning one
// (empty) run for no messages, so that a stream always says something.
func chunks[M proto.Message](msgs []M) [][]M {
	var out [][]M
	start, size := 0, 0
	for i, m := range msgs {
		n := proto.Size(m) + 16 // the field's tag and length
		if i > start && size+n > chunkBytes {
			out = append(out, msgs[start:i])
			start, size = i, 0
		}
		size += n
	}
	return append(out, msgs[start:])
}

// streamList sends msgs in chunks, wrapping each with wrap.
func streamList[M proto.Message, W any](stream grpc.ServerStreamingServer[W], msgs []M, wrap func([]M) *W) error {
	for _, c := range chunks(msgs) {
		if err := stream.Send(wrap(c)); err != nil {
			return err
		}
	}
	return nil
}

// recoverStream, deferred in a streaming method, turns a panic of the
// backend into the call's error, as recoverUnary does for unary calls
// (interceptors of those do not see streams).
func (s *server) recoverStream(method string, err *error) {
	if r := recover(); r != nil {
		s.log.Error("backend panicked", "method", method, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		*err = toStatus(fmt.Errorf("backend panicked in %s: %v", method, r))
	}
}

func pubsubAccess(c Capabilities) Access { return c.PubSub }

func (s *server) GetNode(ctx context.Context, req *pb.PubSubNodeRequest) (*pb.PubSubNode, error) {
	p, err := reader[PubSub](s, "pubsub", pubsubAccess)
	if err != nil {
		return nil, err
	}
	n, err := p.GetPubSubNode(ctx, req.GetService(), req.GetNode())
	return reply(err, func() *pb.PubSubNode { return pubsubNodeToPB(n) })
}

func (s *server) ListNodes(req *pb.PubSubServiceRequest, stream grpc.ServerStreamingServer[pb.PubSubNodes]) (err error) {
	defer s.recoverStream("ListPubSubNodes", &err)
	p, err := reader[PubSub](s, "pubsub", pubsubAccess)
	if err != nil {
		return err
	}
	nodes, err := p.ListPubSubNodes(stream.Context(), req.GetService())
	if err != nil {
		return toStatus(err)
	}
	msgs := make([]*pb.PubSubNode, len(nodes))
	for i, n := range nodes {
		msgs[i] = pubsubNodeToPB(n)
	}
	return streamList(stream, msgs, func(c []*pb.PubSubNode) *pb.PubSubNodes { return &pb.PubSubNodes{Nodes: c} })
}

func (s *server) GetItems(req *pb.PubSubItemQuery, stream grpc.ServerStreamingServer[pb.PubSubItemPage]) (err error) {
	defer s.recoverStream("GetPubSubItems", &err)
	p, err := reader[PubSub](s, "pubsub", pubsubAccess)
	if err != nil {
		return err
	}
	q, err := pubsubQueryFromPB(req)
	if err != nil {
		return toStatus(err)
	}
	page, err := p.GetPubSubItems(stream.Context(), q)
	if err != nil {
		return toStatus(err)
	}
	msgs := make([]*pb.PubSubItem, len(page.Items))
	for i, it := range page.Items {
		msgs[i] = pubsubItemToPB(it)
	}
	return streamList(stream, msgs, func(c []*pb.PubSubItem) *pb.PubSubItemPage {
		return &pb.PubSubItemPage{Items: c, Count: int64(page.Count), Complete: page.Complete}
	})
}

func (s *server) GetAffiliations(req *pb.PubSubJIDRequest, stream grpc.ServerStreamingServer[pb.PubSubAffiliations]) (err error) {
	defer s.recoverStream("GetPubSubAffiliations", &err)
	p, err := reader[PubSub](s, "pubsub", pubsubAccess)
	if err != nil {
		return err
	}
	affs, err := p.GetPubSubAffiliations(stream.Context(), req.GetService(), req.GetNode(), req.GetJid())
	if err != nil {
		return toStatus(err)
	}
	msgs := make([]*pb.PubSubAffiliation, len(affs))
	for i, a := range affs {
		msgs[i] = pubsubAffToPB(a)
	}
	return streamList(stream, msgs, func(c []*pb.PubSubAffiliation) *pb.PubSubAffiliations {
		return &pb.PubSubAffiliations{Affiliations: c}
	})
}

func (s *server) GetSubscriptions(req *pb.PubSubJIDRequest, stream grpc.ServerStreamingServer[pb.PubSubSubscriptions]) (err error) {
	defer s.recoverStream("GetPubSubSubscriptions", &err)
	p, err := reader[PubSub](s, "pubsub", pubsubAccess)
	if err != nil {
		return err
	}
	subs, err := p.GetPubSubSubscriptions(stream.Context(), req.GetService(), req.GetNode(), req.GetJid())
	if err != nil {
		return toStatus(err)
	}
	msgs := make([]*pb.PubSubSubscription, len(subs))
	for i, sub := range subs {
		msgs[i] = pubsubSubToPB(sub)
	}
	return streamList(stream, msgs, func(c []*pb.PubSubSubscription) *pb.PubSubSubscriptions {
		return &pb.PubSubSubscriptions{Subscriptions: c}
	})
}

func (s *server) CreateNode(ctx context.Context, req *pb.CreatePubSubNodeRequest) (*pb.Empty, error) {
	p, err := writer[PubSubWriter](s, "pubsub", pubsubAccess)
	if err != nil {
		return nil, err
	}
	if req.GetNode() == nil {
		return nil, toStatus(fmt.Errorf("%w: pubsub node missing", ErrInvalid))
	}
	return emptyReply(p.CreatePubSubNode(ctx, pubsubNodeFromPB(req.GetNode()), req.GetOwner()))
}

func (s *server) ConfigureNode(ctx context.Context, req *pb.PubSubNode) (*pb.Empty, error) {
	p, err := writer[PubSubWriter](s, "pubsub", pubsubAccess)
	if err != nil {
		return nil, err
	}
	return emptyReply(p.ConfigurePubSubNode(ctx, pubsubNodeFromPB(req)))
}

func (s *server) DeleteNode(ctx context.Context, req *pb.PubSubNodeRequest) (*pb.Empty, error) {
	p, err := writer[PubSubWriter](s, "pubsub", pubsubAccess)
	if err != nil {
		return nil, err
	}
	return emptyReply(p.DeletePubSubNode(ctx, req.GetService(), req.GetNode()))
}

func (s *server) Publish(ctx context.Context, req *pb.PublishPubSubItemRequest) (*pb.Empty, error) {
	p, err := writer[PubSubWriter](s, "pubsub", pubsubAccess)
	if err != nil {
		return nil, err
	}
	switch {
	case req.GetItem() == nil:
		return nil, toStatus(fmt.Errorf("%w: pubsub item missing", ErrInvalid))
	case len(req.GetItem().GetPayload()) > MaxPubSubPayload:
		return nil, toStatus(fmt.Errorf("%w: pubsub item payload of %d bytes, the limit is %d", ErrInvalid, len(req.GetItem().GetPayload()), MaxPubSubPayload))
	case req.GetMaxItems() < 0 || req.GetMaxItems() > math.MaxInt32:
		return nil, toStatus(fmt.Errorf("%w: max items %d out of range", ErrInvalid, req.GetMaxItems()))
	}
	return emptyReply(p.PublishPubSubItem(ctx, req.GetService(), req.GetNode(), pubsubItemFromPB(req.GetItem()), int(req.GetMaxItems())))
}

func (s *server) Retract(ctx context.Context, req *pb.RetractPubSubItemRequest) (*pb.Empty, error) {
	p, err := writer[PubSubWriter](s, "pubsub", pubsubAccess)
	if err != nil {
		return nil, err
	}
	return emptyReply(p.RetractPubSubItem(ctx, req.GetService(), req.GetNode(), req.GetId()))
}

func (s *server) Purge(ctx context.Context, req *pb.PubSubNodeRequest) (*pb.Empty, error) {
	p, err := writer[PubSubWriter](s, "pubsub", pubsubAccess)
	if err != nil {
		return nil, err
	}
	return emptyReply(p.PurgePubSubNode(ctx, req.GetService(), req.GetNode()))
}

func (s *server) SetAffiliation(ctx context.Context, req *pb.PubSubAffiliation) (*pb.Empty, error) {
	p, err := writer[PubSubWriter](s, "pubsub", pubsubAccess)
	if err != nil {
		return nil, err
	}
	return emptyReply(p.SetPubSubAffiliation(ctx, pubsubAffFromPB(req)))
}

func (s *server) SetSubscription(ctx context.Context, req *pb.PubSubSubscription) (*pb.Empty, error) {
	p, err := writer[PubSubWriter](s, "pubsub", pubsubAccess)
	if err != nil {
		return nil, err
	}
	return emptyReply(p.SetPubSubSubscription(ctx, pubsubSubFromPB(req)))
}
