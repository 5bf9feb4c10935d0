// Package memory keeps a backend's data in memory: the reference
// implementations of the SDK's feature contracts for stores that need not
// outlive the process. koi uses them for a host that configures no backend
// for a feature (its PEP nodes then last until koi stops), and the SDK's
// test backend for its own.
package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/koi-im/koi/sdk"
)

// PubSub keeps pubsub nodes, items, affiliations and subscriptions in
// memory; it implements sdk.PubSub and sdk.PubSubWriter. Safe for
// concurrent use; every call is atomic, as sdk.PubSubWriter asks.
type PubSub struct {
	mu    sync.Mutex
	nodes map[nodeKey]*memNode
	seq   uint64
}

type nodeKey struct{ service, node string }

type memNode struct {
	n     sdk.PubSubNode
	items []memItem // oldest first
	affs  map[string]string
	subs  map[[2]string]sdk.PubSubSubscription // by JID, SubID
}

type memItem struct {
	sdk.PubSubItem
	seq uint64 // publication order, for equal stamps
}

// newestFirst lists a node's items in the contract's order: by Published,
// then by publication.
func (n *memNode) newestFirst() []sdk.PubSubItem {
	l := slices.Clone(n.items)
	slices.SortFunc(l, func(a, b memItem) int {
		if c := b.Published.Compare(a.Published); c != 0 {
			return c
		}
		return cmp.Compare(b.seq, a.seq)
	})
	out := make([]sdk.PubSubItem, len(l))
	for i, it := range l {
		out[i] = it.PubSubItem
	}
	return out
}

// required fails with sdk.ErrInvalid when a named value is empty.
func required(kv ...string) error {
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			return fmt.Errorf("%w: empty %s", sdk.ErrInvalid, kv[i])
		}
	}
	return nil
}

// NewPubSub returns an empty store.
func NewPubSub() *PubSub { return &PubSub{nodes: map[nodeKey]*memNode{}} }

func cloneConfig(c map[string][]string) map[string][]string {
	out := make(map[string][]string, len(c))
	for k, v := range c {
		out[k] = slices.Clone(v)
	}
	return out
}

func (m *PubSub) node(service, node string) (*memNode, error) {
	n := m.nodes[nodeKey{service, node}]
	if n == nil {
		return nil, sdk.ErrNotFound
	}
	return n, nil
}

// GetPubSubNode implements sdk.PubSub.
func (m *PubSub) GetPubSubNode(_ context.Context, service, node string) (sdk.PubSubNode, error) {
	if err := required("service", service, "node", node); err != nil {
		return sdk.PubSubNode{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.node(service, node)
	if err != nil {
		return sdk.PubSubNode{}, err
	}
	out := n.n
	out.Config = cloneConfig(n.n.Config)
	return out, nil
}

// ListPubSubNodes implements sdk.PubSub.
func (m *PubSub) ListPubSubNodes(_ context.Context, service string) ([]sdk.PubSubNode, error) {
	if err := required("service", service); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []sdk.PubSubNode{}
	for k, n := range m.nodes {
		if k.service == service {
			c := n.n
			c.Config = cloneConfig(n.n.Config)
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out, nil
}

// GetPubSubItems implements sdk.PubSub.
func (m *PubSub) GetPubSubItems(_ context.Context, q sdk.PubSubItemQuery) (sdk.PubSubItemPage, error) {
	if err := required("service", q.Service, "node", q.Node); err != nil {
		return sdk.PubSubItemPage{}, err
	}
	if q.Max < 0 || q.Max > sdk.MaxPubSubPage || len(q.IDs) > sdk.MaxPubSubPage {
		return sdk.PubSubItemPage{}, fmt.Errorf("%w: max %d, %d ids", sdk.ErrInvalid, q.Max, len(q.IDs))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.node(q.Service, q.Node)
	if err != nil {
		return sdk.PubSubItemPage{}, err
	}
	all := n.newestFirst()
	page := sdk.PubSubItemPage{Count: len(all)}
	if len(q.IDs) > 0 {
		for _, it := range all {
			if slices.Contains(q.IDs, it.ID) {
				page.Items = append(page.Items, it)
			}
		}
		page.Complete = true
		return page, nil
	}
	index := func(id string) (int, error) {
		i := slices.IndexFunc(all, func(it sdk.PubSubItem) bool { return it.ID == id })
		if i < 0 {
			return 0, fmt.Errorf("%w: no item %q", sdk.ErrNotFound, id)
		}
		return i, nil
	}
	lo, hi := 0, len(all)
	if q.After != "" {
		if lo, err = index(q.After); err != nil {
			return sdk.PubSubItemPage{}, err
		}
		lo++
	}
	if q.Before != "" {
		if hi, err = index(q.Before); err != nil {
			return sdk.PubSubItemPage{}, err
		}
	}
	hi = max(hi, lo)
	from, to := lo, min(hi, lo+q.Max)
	page.Complete = to == hi
	if q.Before != "" {
		from, to = max(lo, hi-q.Max), hi
		page.Complete = from == lo
	}
	page.Items = append(page.Items, all[from:to]...)
	return page, nil
}

// GetPubSubAffiliations implements sdk.PubSub.
func (m *PubSub) GetPubSubAffiliations(_ context.Context, service, node, jid string) ([]sdk.PubSubAffiliation, error) {
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
		n, err := m.node(service, node)
		if err != nil {
			return nil, err
		}
		for j, a := range n.affs {
			if jid != "" && j != jid {
				continue
			}
			out = append(out, sdk.PubSubAffiliation{Service: service, Node: node, JID: j, Affiliation: a})
		}
		sort.Slice(out, func(i, j int) bool { return out[i].JID < out[j].JID })
		return out, nil
	}
	for k, n := range m.nodes {
		if a, ok := n.affs[jid]; ok && k.service == service {
			out = append(out, sdk.PubSubAffiliation{Service: service, Node: k.node, JID: jid, Affiliation: a})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out, nil
}

// GetPubSubSubscriptions implements sdk.PubSub.
func (m *PubSub) GetPubSubSubscriptions(_ context.Context, service, node, jid string) ([]sdk.PubSubSubscription, error) {
	if err := required("service", service); err != nil {
		return nil, err
	}
	if node == "" && jid == "" {
		return nil, fmt.Errorf("%w: neither node nor jid", sdk.ErrInvalid)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []sdk.PubSubSubscription{}
	less := func(a, b sdk.PubSubSubscription) int {
		if c := strings.Compare(a.Node, b.Node); c != 0 {
			return c
		}
		if c := strings.Compare(a.JID, b.JID); c != 0 {
			return c
		}
		return strings.Compare(a.SubID, b.SubID)
	}
	if node != "" {
		n, err := m.node(service, node)
		if err != nil {
			return nil, err
		}
		for _, s := range n.subs {
			if jid == "" || bareOf(s.JID) == bareOf(jid) {
				out = append(out, cloneSub(s))
			}
		}
		slices.SortFunc(out, less)
		return out, nil
	}
	bare := bareOf(jid)
	for k, n := range m.nodes {
		if k.service != service {
			continue
		}
		for _, s := range n.subs {
			if bareOf(s.JID) == bare {
				out = append(out, cloneSub(s))
			}
		}
	}
	slices.SortFunc(out, less)
	return out, nil
}

func bareOf(j string) string {
	if i := strings.IndexByte(j, '/'); i >= 0 {
		return j[:i]
	}
	return j
}

func cloneSub(s sdk.PubSubSubscription) sdk.PubSubSubscription {
	if s.Options != nil {
		s.Options = cloneConfig(s.Options)
	}
	return s
}

// CreatePubSubNode implements sdk.PubSubWriter.
func (m *PubSub) CreatePubSubNode(_ context.Context, n sdk.PubSubNode, owner string) error {
	if err := required("service", n.Service, "node", n.Node, "owner", owner); err != nil {
		return err
	}
	if n.Created.IsZero() {
		return fmt.Errorf("%w: node without a creation time", sdk.ErrInvalid)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := nodeKey{n.Service, n.Node}
	if m.nodes[k] != nil {
		return sdk.ErrExists
	}
	n.Config = cloneConfig(n.Config)
	m.nodes[k] = &memNode{n: n, affs: map[string]string{owner: "owner"}, subs: map[[2]string]sdk.PubSubSubscription{}}
	return nil
}

// ConfigurePubSubNode implements sdk.PubSubWriter.
func (m *PubSub) ConfigurePubSubNode(_ context.Context, n sdk.PubSubNode) error {
	if err := required("service", n.Service, "node", n.Node); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	x, err := m.node(n.Service, n.Node)
	if err != nil {
		return err
	}
	x.n.Config = cloneConfig(n.Config)
	return nil
}

// DeletePubSubNode implements sdk.PubSubWriter.
func (m *PubSub) DeletePubSubNode(_ context.Context, service, node string) error {
	if err := required("service", service, "node", node); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.node(service, node); err != nil {
		return err
	}
	delete(m.nodes, nodeKey{service, node})
	return nil
}

// PublishPubSubItem implements sdk.PubSubWriter.
func (m *PubSub) PublishPubSubItem(_ context.Context, service, node string, it sdk.PubSubItem, maxItems int) error {
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
	n, err := m.node(service, node)
	if err != nil {
		return err
	}
	n.items = slices.DeleteFunc(n.items, func(x memItem) bool { return x.ID == it.ID })
	m.seq++
	n.items = append(n.items, memItem{it, m.seq})
	if maxItems > 0 && len(n.items) > maxItems {
		keep := n.newestFirst()[:maxItems]
		n.items = slices.DeleteFunc(n.items, func(x memItem) bool {
			return !slices.ContainsFunc(keep, func(k sdk.PubSubItem) bool { return k.ID == x.ID })
		})
	}
	return nil
}

// RetractPubSubItem implements sdk.PubSubWriter.
func (m *PubSub) RetractPubSubItem(_ context.Context, service, node, id string) error {
	if err := required("service", service, "node", node, "item id", id); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.node(service, node)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(n.items, func(x memItem) bool { return x.ID == id })
	if i < 0 {
		return sdk.ErrNotFound
	}
	n.items = slices.Delete(n.items, i, i+1)
	return nil
}

// PurgePubSubNode implements sdk.PubSubWriter.
func (m *PubSub) PurgePubSubNode(_ context.Context, service, node string) error {
	if err := required("service", service, "node", node); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.node(service, node)
	if err != nil {
		return err
	}
	n.items = nil
	return nil
}

// SetPubSubAffiliation implements sdk.PubSubWriter.
func (m *PubSub) SetPubSubAffiliation(_ context.Context, a sdk.PubSubAffiliation) error {
	if err := required("service", a.Service, "node", a.Node, "jid", a.JID); err != nil {
		return err
	}
	if !sdk.ValidPubSubAffiliation(a.Affiliation) {
		return fmt.Errorf("%w: affiliation %q", sdk.ErrInvalid, a.Affiliation)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.node(a.Service, a.Node)
	if err != nil {
		return err
	}
	if a.Affiliation == "none" {
		delete(n.affs, a.JID)
	} else {
		n.affs[a.JID] = a.Affiliation
	}
	return nil
}

// SetPubSubSubscription implements sdk.PubSubWriter.
func (m *PubSub) SetPubSubSubscription(_ context.Context, s sdk.PubSubSubscription) error {
	if err := required("service", s.Service, "node", s.Node, "jid", s.JID); err != nil {
		return err
	}
	if !sdk.ValidPubSubSubscriptionState(s.State) {
		return fmt.Errorf("%w: subscription state %q", sdk.ErrInvalid, s.State)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.node(s.Service, s.Node)
	if err != nil {
		return err
	}
	k := [2]string{s.JID, s.SubID}
	if s.State == "none" {
		delete(n.subs, k)
	} else {
		n.subs[k] = cloneSub(s)
	}
	return nil
}
