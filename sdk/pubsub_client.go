package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/koi-im/koi/sdk/pb"
)

// The host side of the PubSub service.

var (
	_ PubSub       = (*Client)(nil)
	_ PubSubWriter = (*Client)(nil)
)

// Wire limits of the PubSub calls. A request must fit the 4 MiB a
// plugin's gRPC server accepts; whatever the plugin sends back was such a
// request once (an item, a config) plus a few bytes of framing, in a
// streamed chunk of its own at worst, so a little over 4 MiB suffices.
const (
	pubsubSendBytes = 4<<20 - 1<<10
	pubsubRecvBytes = 4<<20 + 64<<10
)

var pubsubRecv = grpc.MaxCallRecvMsgSize(pubsubRecvBytes)

// checkSendable refuses a request the plugin could not receive, before it
// goes out: sent again it would fail again.
func checkSendable(req proto.Message) error {
	if n := proto.Size(req); n > pubsubSendBytes {
		return fmt.Errorf("%w: request of %d bytes, over the %d the plugin wire carries", ErrInvalid, n, pubsubSendBytes)
	}
	return nil
}

// callWrite is call for a PubSub write, after checkSendable.
func callWrite[Req proto.Message](ctx context.Context, rpc func(context.Context, Req, ...grpc.CallOption) (*pb.Empty, error), req Req) error {
	if err := checkSendable(req); err != nil {
		return err
	}
	_, err := call(ctx, rpc, req)
	return err
}

// recvAll runs a server-streaming read and hands every message to each.
func recvAll[Req, M any](ctx context.Context, rpc func(context.Context, Req, ...grpc.CallOption) (grpc.ServerStreamingClient[M], error), req Req, each func(*M)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := rpc(ctx, req, pubsubRecv)
	if err != nil {
		if unsendable(err) {
			return fmt.Errorf("%w: %s", ErrInvalid, status.Convert(err).Message())
		}
		return fromStatus(ctx, err)
	}
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fromStatus(ctx, err)
		}
		each(m)
	}
}

// GetPubSubNode implements PubSub.
func (c *Client) GetPubSubNode(ctx context.Context, service, node string) (PubSubNode, error) {
	get := func(ctx context.Context, in *pb.PubSubNodeRequest, opts ...grpc.CallOption) (*pb.PubSubNode, error) {
		return c.pubsub.GetNode(ctx, in, append(opts, pubsubRecv)...)
	}
	resp, err := call(ctx, get, &pb.PubSubNodeRequest{Service: service, Node: node})
	if err != nil {
		return PubSubNode{}, err
	}
	return pubsubNodeFromPB(resp), nil
}

// ListPubSubNodes implements PubSub.
func (c *Client) ListPubSubNodes(ctx context.Context, service string) ([]PubSubNode, error) {
	out := []PubSubNode{}
	err := recvAll(ctx, c.pubsub.ListNodes, &pb.PubSubServiceRequest{Service: service}, func(m *pb.PubSubNodes) {
		for _, n := range m.GetNodes() {
			out = append(out, pubsubNodeFromPB(n))
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// GetPubSubItems implements PubSub.
func (c *Client) GetPubSubItems(ctx context.Context, q PubSubItemQuery) (PubSubItemPage, error) {
	var page PubSubItemPage
	first := true
	err := recvAll(ctx, c.pubsub.GetItems, pubsubQueryToPB(q), func(m *pb.PubSubItemPage) {
		if first {
			page.Count, page.Complete, first = int(m.GetCount()), m.GetComplete(), false
		}
		for _, it := range m.GetItems() {
			page.Items = append(page.Items, pubsubItemFromPB(it))
		}
	})
	if err != nil {
		return PubSubItemPage{}, err
	}
	return page, nil
}

// GetPubSubAffiliations implements PubSub.
func (c *Client) GetPubSubAffiliations(ctx context.Context, service, node, jid string) ([]PubSubAffiliation, error) {
	out := []PubSubAffiliation{}
	err := recvAll(ctx, c.pubsub.GetAffiliations, &pb.PubSubJIDRequest{Service: service, Node: node, Jid: jid}, func(m *pb.PubSubAffiliations) {
		for _, a := range m.GetAffiliations() {
			out = append(out, pubsubAffFromPB(a))
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// GetPubSubSubscriptions implements PubSub.
func (c *Client) GetPubSubSubscriptions(ctx context.Context, service, node, jid string) ([]PubSubSubscription, error) {
	out := []PubSubSubscription{}
	err := recvAll(ctx, c.pubsub.GetSubscriptions, &pb.PubSubJIDRequest{Service: service, Node: node, Jid: jid}, func(m *pb.PubSubSubscriptions) {
		for _, s := range m.GetSubscriptions() {
			out = append(out, pubsubSubFromPB(s))
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// CreatePubSubNode implements PubSubWriter.
func (c *Client) CreatePubSubNode(ctx context.Context, n PubSubNode, owner string) error {
	return callWrite(ctx, c.pubsub.CreateNode, &pb.CreatePubSubNodeRequest{Node: pubsubNodeToPB(n), Owner: owner})
}

// ConfigurePubSubNode implements PubSubWriter.
func (c *Client) ConfigurePubSubNode(ctx context.Context, n PubSubNode) error {
	return callWrite(ctx, c.pubsub.ConfigureNode, pubsubNodeToPB(n))
}

// DeletePubSubNode implements PubSubWriter.
func (c *Client) DeletePubSubNode(ctx context.Context, service, node string) error {
	return callWrite(ctx, c.pubsub.DeleteNode, &pb.PubSubNodeRequest{Service: service, Node: node})
}

// PublishPubSubItem implements PubSubWriter.
func (c *Client) PublishPubSubItem(ctx context.Context, service, node string, it PubSubItem, maxItems int) error {
	if len(it.Payload) > MaxPubSubPayload {
		return fmt.Errorf("%w: pubsub item payload of %d bytes, the limit is %d", ErrInvalid, len(it.Payload), MaxPubSubPayload)
	}
	if maxItems < 0 {
		return fmt.Errorf("%w: max items %d is negative", ErrInvalid, maxItems)
	}
	return callWrite(ctx, c.pubsub.Publish, &pb.PublishPubSubItemRequest{
		Service: service, Node: node, Item: pubsubItemToPB(it), MaxItems: int64(maxItems),
	})
}

// RetractPubSubItem implements PubSubWriter.
func (c *Client) RetractPubSubItem(ctx context.Context, service, node, id string) error {
	return callWrite(ctx, c.pubsub.Retract, &pb.RetractPubSubItemRequest{Service: service, Node: node, Id: id})
}

// PurgePubSubNode implements PubSubWriter.
func (c *Client) PurgePubSubNode(ctx context.Context, service, node string) error {
	return callWrite(ctx, c.pubsub.Purge, &pb.PubSubNodeRequest{Service: service, Node: node})
}

// SetPubSubAffiliation implements PubSubWriter.
func (c *Client) SetPubSubAffiliation(ctx context.Context, a PubSubAffiliation) error {
	return callWrite(ctx, c.pubsub.SetAffiliation, pubsubAffToPB(a))
}

// SetPubSubSubscription implements PubSubWriter.
func (c *Client) SetPubSubSubscription(ctx context.Context, s PubSubSubscription) error {
	return callWrite(ctx, c.pubsub.SetSubscription, pubsubSubToPB(s))
}
