package testbackend

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/koi-im/koi/sdk"
)

// The reference implementation of sdk.PubSub and sdk.PubSubWriter: every
// answer of the contract, written as plainly as possible.

type pubsubKey struct{ service, node string }

type pubsubNode struct {
	n     sdk.PubSubNode
	items []pubsubItem // in publication order
	affs  map[string]string
	subs  map[[2]string]sdk.PubSubSubscription // JID, SubID
	seq   int64
}

type pubsubItem struct {
	it  sdk.PubSubItem
	seq int64 // publication order, for equal stamps
}

// newestFirst is the contract's order: by Published, then by publication.
func newestFirst(a, b pubsubItem) int {
	if c := b.it.Published.Compare(a.it.Published); c != 0 {
		return c
	}
	return cmp.Compare(b.seq, a.seq)
}

func (n *pubsubNode) ordered() []pubsubItem {
	out := slices.Clone(n.items)
	slices.SortFunc(out, newestFirst)
	return out
}

func cloneForm(f map[string][]string) map[string][]string {
	if len(f) == 0 {
		return nil
	}
	out := make(map[string][]string, len(f))
	for k, v := range f {
		out[k] = slices.Clone(v)
	}
	return out
}

func cloneNode(n sdk.PubSubNode) sdk.PubSubNode {
	n.Config = cloneForm(n.Config)
	return n
}

func cloneSub(s sdk.PubSubSubscription) sdk.PubSubSubscription {
	s.Options = cloneForm(s.Options)
	return s
}

func bare(jid string) string {
	b, _, _ := strings.Cut(jid, "/")
	return b
}

func required(fields ...string) error {
	for i := 0; i+1 < len(fields); i += 2 {
		if fields[i+1] == "" {
			return fmt.Errorf("%w: empty %s", sdk.ErrInvalid, fields[i])
		}
	}
	return nil
}

// pubsubNode returns the node or ErrNotFound; m.mu is held.
func (m *Memory) pubsubNode(service, node string) (*pubsubNode, error) {
	n, ok := m.pubsub[pubsubKey{service, node}]
	if !ok {
		return nil, fmt.Errorf("%w: no pubsub node %q at %s", sdk.ErrNotFound, node, service)
	}
	return n, nil
}

// GetPubSubNode implements sdk.PubSub.
func (m *Memory) GetPubSubNode(_ context.Context, service, node string) (sdk.PubSubNode, error) {
	if err := required("service", service, "node", node); err != nil {
		return sdk.PubSubNode{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.pubsubNode(service, node)
	if err != nil {
		return sdk.PubSubNode{}, err
	}
	return cloneNode(n.n), nil
}

// ListPubSubNodes implements sdk.PubSub.
func (m *Memory) ListPubSubNodes(_ context.Context, service string) ([]sdk.PubSubNode, error) {
	if err := required("service", service); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []sdk.PubSubNode{}
	for k, n := range m.pubsub {
		if k.service == service {
			out = append(out, cloneNode(n.n))
		}
	}
	slices.SortFunc(out, func(a, b sdk.PubSubNode) int { return strings.Compare(a.Node, b.Node) })
	return out, nil
}

// GetPubSubItems implements sdk.PubSub.
func (m *Memory) GetPubSubItems(_ context.Context, q sdk.PubSubItemQuery) (sdk.PubSubItemPage, error) {
	if err := required("service", q.Service, "node", q.Node); err != nil {
		return sdk.PubSubItemPage{}, err
	}
	if q.Max < 0 || q.Max > sdk.MaxPubSubPage || len(q.IDs) > sdk.MaxPubSubPage {
		return sdk.PubSubItemPage{}, fmt.Errorf("%w: max %d, %d ids", sdk.ErrInvalid, q.Max, len(q.IDs))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.pubsubNode(q.Service, q.Node)
	if err != nil {
		return sdk.PubSubItemPage{}, err
	}
	list := n.ordered()
	page := sdk.PubSubItemPage{Count: len(list)}
	if len(q.IDs) > 0 {
		for _, it := range list {
			if slices.Contains(q.IDs, it.it.ID) {
				page.Items = append(page.Items, it.it)
			}
		}
		page.Complete = true
		return page, nil
	}
	index := func(id string) (int, error) {
		i := slices.IndexFunc(list, func(it pubsubItem) bool { return it.it.ID == id })
		if i < 0 {
			return 0, fmt.Errorf("%w: no item %q in node %q", sdk.ErrNotFound, id, q.Node)
		}
		return i, nil
	}
	lo, hi := 0, len(list) // the window the bounds leave, newest first
	if q.After != "" {
		i, err := index(q.After)
		if err != nil {
			return sdk.PubSubItemPage{}, err
		}
		lo = i + 1
	}
	if q.Before != "" {
		i, err := index(q.Before)
		if err != nil {
			return sdk.PubSubItemPage{}, err
		}
		hi = i
	}
	hi = max(hi, lo)
	var from, to int
	if q.Before != "" {
		from, to = max(lo, hi-q.Max), hi
		page.Complete = from == lo
	} else {
		from, to = lo, min(hi, lo+q.Max)
		page.Complete = to == hi
	}
	for _, it := range list[from:to] {
		page.Items = append(page.Items, it.it)
	}
	return page, nil
}

// GetPubSubAffiliations implements sdk.PubSub.
func (m *Memory) GetPubSubAffiliations(_ context.Context, service, node, jid string) ([]sdk.PubSubAffiliation, error) {
	if err := required("service", service); err != nil {
		return nil, err
	}
	if node == "" && jid == "" {
		return nil, fmt.Errorf("%w: neither node nor jid", sdk.ErrInvalid)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []sdk.PubSubAffiliation{}
	if node != "" {
		n, err := m.pubsubNode(service, node)
		if err != nil {
			return nil, err
		}
		for j, a := range n.affs {
			if jid == "" || j == jid {
				out = append(out, sdk.PubSubAffiliation{Service: service, Node: node, JID: j, Affiliation: a})
			}
		}
		slices.SortFunc(out, func(a, b sdk.PubSubAffiliation) int { return strings.Compare(a.JID, b.JID) })
		return out, nil
	}
	for k, n := range m.pubsub {
		if a, ok := n.affs[jid]; ok && k.service == service {
			out = append(out, sdk.PubSubAffiliation{Service: service, Node: k.node, JID: jid, Affiliation: a})
		}
	}
	slices.SortFunc(out, func(a, b sdk.PubSubAffiliation) int { return strings.Compare(a.Node, b.Node) })
	return out, nil
}

// GetPubSubSubscriptions implements sdk.PubSub.
func (m *Memory) GetPubSubSubscriptions(_ context.Context, service, node, jid string) ([]sdk.PubSubSubscription, error) {
	if err := required("service", service); err != nil {
		return nil, err
	}
	if node == "" && jid == "" {
		return nil, fmt.Errorf("%w: neither node nor jid", sdk.ErrInvalid)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var nodes []*pubsubNode
	if node != "" {
		n, err := m.pubsubNode(service, node)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
	} else {
		for k, n := range m.pubsub {
			if k.service == service {
				nodes = append(nodes, n)
			}
		}
	}
	out := []sdk.PubSubSubscription{}
	for _, n := range nodes {
		for _, s := range n.subs {
			if jid == "" || bare(s.JID) == bare(jid) {
				out = append(out, cloneSub(s))
			}
		}
	}
	slices.SortFunc(out, func(a, b sdk.PubSubSubscription) int {
		return cmp.Or(strings.Compare(a.Node, b.Node), strings.Compare(a.JID, b.JID), strings.Compare(a.SubID, b.SubID))
	})
	return out, nil
}

// CreatePubSubNode implements sdk.PubSubWriter.
func (m *Memory) CreatePubSubNode(_ context.Context, n sdk.PubSubNode, owner string) error {
	if err := required("service", n.Service, "node", n.Node, "owner", owner); err != nil {
		return err
	}
	if n.Created.IsZero() {
		return fmt.Errorf("%w: node without a creation time", sdk.ErrInvalid)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := pubsubKey{n.Service, n.Node}
	if _, ok := m.pubsub[k]; ok {
		return fmt.Errorf("%w: pubsub node %q at %s", sdk.ErrExists, n.Node, n.Service)
	}
	m.pubsub[k] = &pubsubNode{
		n:    cloneNode(n),
		affs: map[string]string{owner: sdk.PubSubOwner},
		subs: map[[2]string]sdk.PubSubSubscription{},
	}
	return nil
}

// ConfigurePubSubNode implements sdk.PubSubWriter.
func (m *Memory) ConfigurePubSubNode(_ context.Context, n sdk.PubSubNode) error {
	if err := required("service", n.Service, "node", n.Node); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	have, err := m.pubsubNode(n.Service, n.Node)
	if err != nil {
		return err
	}
	have.n.Config = cloneForm(n.Config)
	return nil
}

// DeletePubSubNode implements sdk.PubSubWriter.
func (m *Memory) DeletePubSubNode(_ context.Context, service, node string) error {
	if err := required("service", service, "node", node); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.pubsubNode(service, node); err != nil {
		return err
	}
	delete(m.pubsub, pubsubKey{service, node})
	return nil
}

// PublishPubSubItem implements sdk.PubSubWriter.
func (m *Memory) PublishPubSubItem(_ context.Context, service, node string, it sdk.PubSubItem, maxItems int) error {
	if err := required("service", service, "node", node, "item id", it.ID); err != nil {
		return err
	}
	switch {
	case it.Published.IsZero():
		return fmt.Errorf("%w: item without a publication time", sdk.ErrInvalid)
	case maxItems < 0:
		return fmt.Errorf("%w: max items %d", sdk.ErrInvalid, maxItems)
	case len(it.Payload) > sdk.MaxPubSubPayload:
		return fmt.Errorf("%w: payload of %d bytes", sdk.ErrInvalid, len(it.Payload))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.pubsubNode(service, node)
	if err != nil {
		return err
	}
	n.items = slices.DeleteFunc(n.items, func(p pubsubItem) bool { return p.it.ID == it.ID })
	n.seq++
	n.items = append(n.items, pubsubItem{it: it, seq: n.seq})
	if maxItems > 0 && len(n.items) > maxItems {
		n.items = n.ordered()[:maxItems]
		slices.SortFunc(n.items, func(a, b pubsubItem) int { return cmp.Compare(a.seq, b.seq) })
	}
	return nil
}

// RetractPubSubItem implements sdk.PubSubWriter.
func (m *Memory) RetractPubSubItem(_ context.Context, service, node, id string) error {
	if err := required("service", service, "node", node, "item id", id); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.pubsubNode(service, node)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(n.items, func(p pubsubItem) bool { return p.it.ID == id })
	if i < 0 {
		return fmt.Errorf("%w: no item %q in node %q", sdk.ErrNotFound, id, node)
	}
	n.items = slices.Delete(n.items, i, i+1)
	return nil
}

// PurgePubSubNode implements sdk.PubSubWriter.
func (m *Memory) PurgePubSubNode(_ context.Context, service, node string) error {
	if err := required("service", service, "node", node); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.pubsubNode(service, node)
	if err != nil {
		return err
	}
	n.items = nil
	return nil
}

// SetPubSubAffiliation implements sdk.PubSubWriter.
func (m *Memory) SetPubSubAffiliation(_ context.Context, a sdk.PubSubAffiliation) error {
	if err := required("service", a.Service, "node", a.Node, "jid", a.JID); err != nil {
		return err
	}
	if !sdk.ValidPubSubAffiliation(a.Affiliation) {
		return fmt.Errorf("%w: affiliation %q", sdk.ErrInvalid, a.Affiliation)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.pubsubNode(a.Service, a.Node)
	if err != nil {
		return err
	}
	if a.Affiliation == sdk.PubSubNone {
		delete(n.affs, a.JID)
	} else {
		n.affs[a.JID] = a.Affiliation
	}
	return nil
}

// SetPubSubSubscription implements sdk.PubSubWriter.
func (m *Memory) SetPubSubSubscription(_ context.Context, s sdk.PubSubSubscription) error {
	if err := required("service", s.Service, "node", s.Node, "jid", s.JID); err != nil {
		return err
	}
	if !sdk.ValidPubSubSubscriptionState(s.State) {
		return fmt.Errorf("%w: subscription state %q", sdk.ErrInvalid, s.State)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.pubsubNode(s.Service, s.Node)
	if err != nil {
		return err
	}
	k := [2]string{s.JID, s.SubID}
	if s.State == sdk.PubSubNone {
		delete(n.subs, k)
	} else {
		n.subs[k] = cloneSub(s)
	}
	return nil
}

var (
	_ sdk.PubSub       = (*Memory)(nil)
	_ sdk.PubSubWriter = (*Memory)(nil)
)

func (r readers) GetPubSubNode(ctx context.Context, service, node string) (sdk.PubSubNode, error) {
	return r.m.GetPubSubNode(ctx, service, node)
}

func (r readers) ListPubSubNodes(ctx context.Context, service string) ([]sdk.PubSubNode, error) {
	return r.m.ListPubSubNodes(ctx, service)
}

func (r readers) GetPubSubItems(ctx context.Context, q sdk.PubSubItemQuery) (sdk.PubSubItemPage, error) {
	return r.m.GetPubSubItems(ctx, q)
}

func (r readers) GetPubSubAffiliations(ctx context.Context, service, node, jid string) ([]sdk.PubSubAffiliation, error) {
	return r.m.GetPubSubAffiliations(ctx, service, node, jid)
}

func (r readers) GetPubSubSubscriptions(ctx context.Context, service, node, jid string) ([]sdk.PubSubSubscription, error) {
	return r.m.GetPubSubSubscriptions(ctx, service, node, jid)
}
