package pluginhost

import (
	"context"

	"github.com/koi-im/koi/sdk"
)

// The pubsub feature (PEP and the pubsub service), forwarded like the
// others. A PEP service is an account's bare JID, so its errors are logged
// under the account's host; a pubsub service under its own domain.

var (
	_ sdk.PubSub       = (*Backend)(nil)
	_ sdk.PubSubWriter = (*Backend)(nil)
)

// GetPubSubNode implements sdk.PubSub.
func (b *Backend) GetPubSubNode(ctx context.Context, service, node string) (sdk.PubSubNode, error) {
	return call(ctx, b, "GetPubSubNode", hostOf(service), func(ctx context.Context, c *sdk.Client) (sdk.PubSubNode, error) {
		return c.GetPubSubNode(ctx, service, node)
	})
}

// ListPubSubNodes implements sdk.PubSub.
func (b *Backend) ListPubSubNodes(ctx context.Context, service string) ([]sdk.PubSubNode, error) {
	return call(ctx, b, "ListPubSubNodes", hostOf(service), func(ctx context.Context, c *sdk.Client) ([]sdk.PubSubNode, error) {
		return c.ListPubSubNodes(ctx, service)
	})
}

// GetPubSubItems implements sdk.PubSub.
func (b *Backend) GetPubSubItems(ctx context.Context, q sdk.PubSubItemQuery) (sdk.PubSubItemPage, error) {
	return call(ctx, b, "GetPubSubItems", hostOf(q.Service), func(ctx context.Context, c *sdk.Client) (sdk.PubSubItemPage, error) {
		return c.GetPubSubItems(ctx, q)
	})
}

// GetPubSubAffiliations implements sdk.PubSub.
func (b *Backend) GetPubSubAffiliations(ctx context.Context, service, node, jid string) ([]sdk.PubSubAffiliation, error) {
	return call(ctx, b, "GetPubSubAffiliations", hostOf(service), func(ctx context.Context, c *sdk.Client) ([]sdk.PubSubAffiliation, error) {
		return c.GetPubSubAffiliations(ctx, service, node, jid)
	})
}

// GetPubSubSubscriptions implements sdk.PubSub.
func (b *Backend) GetPubSubSubscriptions(ctx context.Context, service, node, jid string) ([]sdk.PubSubSubscription, error) {
	return call(ctx, b, "GetPubSubSubscriptions", hostOf(service), func(ctx context.Context, c *sdk.Client) ([]sdk.PubSubSubscription, error) {
		return c.GetPubSubSubscriptions(ctx, service, node, jid)
	})
}

// CreatePubSubNode implements sdk.PubSubWriter.
func (b *Backend) CreatePubSubNode(ctx context.Context, n sdk.PubSubNode, owner string) error {
	return callErr(ctx, b, "CreatePubSubNode", hostOf(n.Service), func(ctx context.Context, c *sdk.Client) error {
		return c.CreatePubSubNode(ctx, n, owner)
	})
}

// ConfigurePubSubNode implements sdk.PubSubWriter.
func (b *Backend) ConfigurePubSubNode(ctx context.Context, n sdk.PubSubNode) error {
	return callErr(ctx, b, "ConfigurePubSubNode", hostOf(n.Service), func(ctx context.Context, c *sdk.Client) error {
		return c.ConfigurePubSubNode(ctx, n)
	})
}

// DeletePubSubNode implements sdk.PubSubWriter.
func (b *Backend) DeletePubSubNode(ctx context.Context, service, node string) error {
	return callErr(ctx, b, "DeletePubSubNode", hostOf(service), func(ctx context.Context, c *sdk.Client) error {
		return c.DeletePubSubNode(ctx, service, node)
	})
}

// PublishPubSubItem implements sdk.PubSubWriter.
func (b *Backend) PublishPubSubItem(ctx context.Context, service, node string, it sdk.PubSubItem, maxItems int) error {
	return callErr(ctx, b, "PublishPubSubItem", hostOf(service), func(ctx context.Context, c *sdk.Client) error {
		return c.PublishPubSubItem(ctx, service, node, it, maxItems)
	})
}

// RetractPubSubItem implements sdk.PubSubWriter.
func (b *Backend) RetractPubSubItem(ctx context.Context, service, node, id string) error {
	return callErr(ctx, b, "RetractPubSubItem", hostOf(service), func(ctx context.Context, c *sdk.Client) error {
		return c.RetractPubSubItem(ctx, service, node, id)
	})
}

// PurgePubSubNode implements sdk.PubSubWriter.
func (b *Backend) PurgePubSubNode(ctx context.Context, service, node string) error {
	return callErr(ctx, b, "PurgePubSubNode", hostOf(service), func(ctx context.Context, c *sdk.Client) error {
		return c.PurgePubSubNode(ctx, service, node)
	})
}

// SetPubSubAffiliation implements sdk.PubSubWriter.
func (b *Backend) SetPubSubAffiliation(ctx context.Context, a sdk.PubSubAffiliation) error {
	return callErr(ctx, b, "SetPubSubAffiliation", hostOf(a.Service), func(ctx context.Context, c *sdk.Client) error {
		return c.SetPubSubAffiliation(ctx, a)
	})
}

// SetPubSubSubscription implements sdk.PubSubWriter.
func (b *Backend) SetPubSubSubscription(ctx context.Context, s sdk.PubSubSubscription) error {
	return callErr(ctx, b, "SetPubSubSubscription", hostOf(s.Service), func(ctx context.Context, c *sdk.Client) error {
		return c.SetPubSubSubscription(ctx, s)
	})
}
