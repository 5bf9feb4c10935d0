package sdktest

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/koi-im/koi/sdk"
)

// The pubsub contract (sdk.PubSub, sdk.PubSubWriter): nodes per service
// with their config, items newest first with paging and trimming,
// affiliations and subscriptions, everything of a node gone with it.

func pubsubRead(c sdk.Capabilities, _ Options) bool  { return c.PubSub.Readable() }
func pubsubWrite(c sdk.Capabilities, _ Options) bool { return c.PubSub.Writable() }

func pubsubChecks() []check {
	return []check{
		{"pubsub/empty", pubsubRead, checkPubSubEmpty},
		{"pubsub/nodes", pubsubWrite, checkPubSubNodes},
		{"pubsub/delete-node", pubsubWrite, checkPubSubDeleteNode},
		{"pubsub/publish", pubsubWrite, checkPubSubPublish},
		{"pubsub/equal-stamps", pubsubWrite, checkPubSubEqualStamps},
		{"pubsub/trim", pubsubWrite, checkPubSubTrim},
		{"pubsub/retract-purge", pubsubWrite, checkPubSubRetractPurge},
		{"pubsub/paging", pubsubWrite, checkPubSubPaging},
		{"pubsub/payloads", pubsubWrite, checkPubSubPayloads},
		{"pubsub/affiliations", pubsubWrite, checkPubSubAffiliations},
		{"pubsub/subscriptions", pubsubWrite, checkPubSubSubscriptions},
		{"pubsub/invalid", pubsubWrite, checkPubSubInvalid},
		{"pubsub/concurrent-create", pubsubWrite, checkPubSubConcurrentCreate},
		{"pubsub/concurrent-publish", pubsubWrite, checkPubSubConcurrentPublish},
	}
}

func (e *env) pubsub() sdk.PubSub {
	e.t.Helper()
	p, ok := e.b.(sdk.PubSub)
	if !ok {
		e.t.Fatal("pubsub is declared but the backend does not implement sdk.PubSub")
	}
	return p
}

func (e *env) pubsubWriter() sdk.PubSubWriter {
	e.t.Helper()
	p, ok := e.b.(sdk.PubSubWriter)
	if !ok {
		e.t.Fatal("pubsub is declared read-write but the backend does not implement sdk.PubSubWriter")
	}
	return p
}

// pubsubService is a PEP service (an account's bare JID) unique to the
// subtest; pubsubDomain a pubsub service's domain.
func (e *env) pubsubService(base string) string { return e.owner(base) }
func (e *env) pubsubDomain(base string) string  { return base + "-" + e.id + ".pubsub.example" }

// pubsubStamp is a publication time, to the millisecond, i steps after
// the start of the subtest's timeline.
func pubsubStamp(i int) time.Time {
	base := time.Date(2025, 3, 14, 15, 9, 26, 535_000_000, time.UTC)
	return base.Add(time.Duration(i) * time.Second)
}

func pubsubItemID(i int) string { return fmt.Sprintf("item-%03d", i) }

func pubsubItem(i int) sdk.PubSubItem {
	return sdk.PubSubItem{
		ID:        pubsubItemID(i),
		Publisher: fmt.Sprintf("publisher%d@sdktest.example/res", i),
		Payload:   fmt.Sprintf("<entry xmlns='urn:sdktest:pubsub'><n>%d</n></entry>", i),
		Published: pubsubStamp(i),
	}
}

// formsEqual compares data form values: nil and empty are the same, for
// the map and for a field's values.
func formsEqual(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, av := range a {
		bv, ok := b[k]
		if !ok || !slices.Equal(av, bv) {
			return false
		}
	}
	return true
}

func nodesEqual(a, b sdk.PubSubNode) bool {
	return a.Service == b.Service && a.Node == b.Node && formsEqual(a.Config, b.Config) && a.Created.Equal(b.Created)
}

func (e *env) createNode(service, node, owner string, config map[string][]string) sdk.PubSubNode {
	e.t.Helper()
	n := sdk.PubSubNode{Service: service, Node: node, Config: config, Created: pubsubStamp(0)}
	e.ok(fmt.Sprintf("CreatePubSubNode(%s, %s)", service, node), e.pubsubWriter().CreatePubSubNode(e.ctx, n, owner))
	return n
}

func (e *env) publish(service, node string, it sdk.PubSubItem, maxItems int) {
	e.t.Helper()
	e.ok(fmt.Sprintf("PublishPubSubItem(%s, %s, %s)", service, node, it.ID),
		e.pubsubWriter().PublishPubSubItem(e.ctx, service, node, it, maxItems))
}

func (e *env) items(q sdk.PubSubItemQuery) sdk.PubSubItemPage {
	e.t.Helper()
	p, err := e.pubsub().GetPubSubItems(e.ctx, q)
	e.ok(fmt.Sprintf("GetPubSubItems(%+v)", q), err)
	return p
}

func itemIDs(items []sdk.PubSubItem) []string {
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.ID
	}
	return ids
}

// wantItems checks a page: its item ids in order, Count and Complete.
func (e *env) wantItems(what string, p sdk.PubSubItemPage, ids []string, count int, complete bool) {
	e.t.Helper()
	got := itemIDs(p.Items)
	if !slices.Equal(got, ids) {
		e.t.Errorf("%s: items %q, want %q (newest first)", what, got, ids)
	}
	if p.Count != count {
		e.t.Errorf("%s: Count %d, want %d", what, p.Count, count)
	}
	if p.Complete != complete {
		e.t.Errorf("%s: Complete %v, want %v", what, p.Complete, complete)
	}
}

// idsDown returns item ids from..to, counting down (newest first).
func idsDown(from, to int) []string {
	var out []string
	for i := from; i >= to; i-- {
		out = append(out, pubsubItemID(i))
	}
	return out
}

func checkPubSubEmpty(e *env) {
	p := e.pubsub()
	service := e.pubsubService("nobody")
	_, err := p.GetPubSubNode(e.ctx, service, "urn:sdktest:absent")
	e.wantErr("GetPubSubNode of an absent node", err, sdk.ErrNotFound)
	nodes, err := p.ListPubSubNodes(e.ctx, service)
	if e.noErr("ListPubSubNodes of an empty service", err) && len(nodes) != 0 {
		e.t.Errorf("ListPubSubNodes of an empty service = %+v, want none", nodes)
	}
	_, err = p.GetPubSubItems(e.ctx, sdk.PubSubItemQuery{Service: service, Node: "urn:sdktest:absent", Max: 10})
	e.wantErr("GetPubSubItems of an absent node", err, sdk.ErrNotFound)
	_, err = p.GetPubSubAffiliations(e.ctx, service, "urn:sdktest:absent", "")
	e.wantErr("GetPubSubAffiliations of an absent node", err, sdk.ErrNotFound)
	_, err = p.GetPubSubSubscriptions(e.ctx, service, "urn:sdktest:absent", "")
	e.wantErr("GetPubSubSubscriptions of an absent node", err, sdk.ErrNotFound)
	affs, err := p.GetPubSubAffiliations(e.ctx, service, "", e.owner("someone"))
	if e.noErr("GetPubSubAffiliations of a JID with none", err) && len(affs) != 0 {
		e.t.Errorf("GetPubSubAffiliations of a JID with none = %+v", affs)
	}
	subs, err := p.GetPubSubSubscriptions(e.ctx, service, "", e.owner("someone"))
	if e.noErr("GetPubSubSubscriptions of a JID with none", err) && len(subs) != 0 {
		e.t.Errorf("GetPubSubSubscriptions of a JID with none = %+v", subs)
	}
}

func (e *env) wantNode(want sdk.PubSubNode) {
	e.t.Helper()
	got, err := e.pubsub().GetPubSubNode(e.ctx, want.Service, want.Node)
	if e.noErr(fmt.Sprintf("GetPubSubNode(%s, %s)", want.Service, want.Node), err) && !nodesEqual(got, want) {
		e.t.Errorf("GetPubSubNode(%s, %s) = %+v, want %+v", want.Service, want.Node, got, want)
	}
}

func (e *env) wantNodeList(service string, want ...sdk.PubSubNode) {
	e.t.Helper()
	got, err := e.pubsub().ListPubSubNodes(e.ctx, service)
	if !e.noErr("ListPubSubNodes("+service+")", err) {
		return
	}
	want = slices.Clone(want)
	slices.SortFunc(want, func(a, b sdk.PubSubNode) int { return strings.Compare(a.Node, b.Node) })
	if !slices.EqualFunc(got, want, nodesEqual) {
		e.t.Errorf("ListPubSubNodes(%s) = %+v, want %+v (sorted by node, bytewise)", service, got, want)
	}
}

func (e *env) wantAffiliations(service, node, jid string, want ...sdk.PubSubAffiliation) {
	e.t.Helper()
	got, err := e.pubsub().GetPubSubAffiliations(e.ctx, service, node, jid)
	if !e.noErr(fmt.Sprintf("GetPubSubAffiliations(%s, %q, %q)", service, node, jid), err) {
		return
	}
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !slices.Equal(got, want) {
		e.t.Errorf("GetPubSubAffiliations(%s, %q, %q) = %+v, want %+v", service, node, jid, got, want)
	}
}

func subsEqual(a, b sdk.PubSubSubscription) bool {
	return a.Service == b.Service && a.Node == b.Node && a.JID == b.JID && a.SubID == b.SubID &&
		a.State == b.State && formsEqual(a.Options, b.Options)
}

func (e *env) wantSubscriptions(service, node, jid string, want ...sdk.PubSubSubscription) {
	e.t.Helper()
	got, err := e.pubsub().GetPubSubSubscriptions(e.ctx, service, node, jid)
	if !e.noErr(fmt.Sprintf("GetPubSubSubscriptions(%s, %q, %q)", service, node, jid), err) {
		return
	}
	if !slices.EqualFunc(got, want, subsEqual) {
		e.t.Errorf("GetPubSubSubscriptions(%s, %q, %q) = %+v, want %+v", service, node, jid, got, want)
	}
}

func checkPubSubNodes(e *env) {
	w := e.pubsubWriter()
	service, other := e.pubsubService("alice"), e.pubsubService("bob")
	owner := service
	config := map[string][]string{
		"pubsub#access_model":    {"presence"},
		"pubsub#max_items":       {"max"},
		"pubsub#title":           {"Bücher \u4e66 😀 <&> \"'"},
		"pubsub#roster_groups":   {"Zeta", "Alpha", "Mitte"}, // kept in this order
		"pubsub#children":        {},
		"http://example.org/x#ü": {"", " spaced ", "line\nbreak"},
	}
	// Created in an order that is not the listing's, with names whose
	// byte order differs from a case-insensitive or accent-folding one.
	names := []string{"urn:xmpp:avatar:metadata", "Urn:upper", "urn:xmpp:avatar:data", "ürn:accent", "urn:xmpp:bookmarks:1"}
	var nodes []sdk.PubSubNode
	for _, name := range names {
		nodes = append(nodes, e.createNode(service, name, owner, config))
	}
	e.createNode(other, "urn:xmpp:avatar:data", other, nil)
	e.wantNode(nodes[0])
	e.wantNodeList(service, nodes...)
	e.wantAffiliations(service, nodes[0].Node, "", sdk.PubSubAffiliation{Service: service, Node: nodes[0].Node, JID: owner, Affiliation: sdk.PubSubOwner})

	again := nodes[0]
	again.Config = map[string][]string{"pubsub#title": {"second"}}
	e.wantErr("CreatePubSubNode of an existing node", w.CreatePubSubNode(e.ctx, again, e.owner("mallory")), sdk.ErrExists)
	e.wantNode(nodes[0])
	e.wantAffiliations(service, nodes[0].Node, "", sdk.PubSubAffiliation{Service: service, Node: nodes[0].Node, JID: owner, Affiliation: sdk.PubSubOwner})

	// Configure replaces the whole config and keeps Created.
	conf := nodes[1]
	conf.Config = map[string][]string{"pubsub#max_items": {"1"}, "pubsub#title": {"neu"}}
	conf.Created = pubsubStamp(99)
	e.ok("ConfigurePubSubNode", w.ConfigurePubSubNode(e.ctx, conf))
	conf.Created = nodes[1].Created
	e.wantNode(conf)
	empty := nodes[2]
	empty.Config = nil
	e.ok("ConfigurePubSubNode to no config", w.ConfigurePubSubNode(e.ctx, empty))
	e.wantNode(empty)
	absent := sdk.PubSubNode{Service: service, Node: "urn:sdktest:absent", Created: pubsubStamp(0)}
	e.wantErr("ConfigurePubSubNode of an absent node", w.ConfigurePubSubNode(e.ctx, absent), sdk.ErrNotFound)
	_, err := e.pubsub().GetPubSubNode(e.ctx, service, absent.Node)
	e.wantErr("GetPubSubNode after ConfigurePubSubNode of an absent node", err, sdk.ErrNotFound)

	// Services are domains too; the same node name lives in each apart.
	domain := e.pubsubDomain("news")
	dn := e.createNode(domain, "urn:xmpp:avatar:data", e.owner("admin"), map[string][]string{"pubsub#title": {"domain"}})
	e.wantNode(dn)
	e.wantNodeList(domain, dn)
	nodes[1], nodes[2] = conf, empty
	e.wantNodeList(service, nodes...)
}

func checkPubSubDeleteNode(e *env) {
	w := e.pubsubWriter()
	service := e.pubsubService("alice")
	owner, friend := service, e.contact("friend")
	n := e.createNode(service, "urn:xmpp:microblog:0", owner, map[string][]string{"pubsub#title": {"blog"}})
	keep := e.createNode(service, "urn:xmpp:microblog:0:comments", owner, nil)
	for i := range 3 {
		e.publish(service, n.Node, pubsubItem(i), 0)
		e.publish(service, keep.Node, pubsubItem(i), 0)
	}
	for _, node := range []string{n.Node, keep.Node} {
		e.ok("SetPubSubAffiliation", w.SetPubSubAffiliation(e.ctx, sdk.PubSubAffiliation{Service: service, Node: node, JID: friend, Affiliation: sdk.PubSubPublisher}))
		e.ok("SetPubSubSubscription", w.SetPubSubSubscription(e.ctx, sdk.PubSubSubscription{Service: service, Node: node, JID: friend + "/phone", SubID: "s1", State: sdk.PubSubSubscribed}))
	}

	e.ok("DeletePubSubNode", w.DeletePubSubNode(e.ctx, service, n.Node))
	_, err := e.pubsub().GetPubSubNode(e.ctx, service, n.Node)
	e.wantErr("GetPubSubNode of a deleted node", err, sdk.ErrNotFound)
	_, err = e.pubsub().GetPubSubItems(e.ctx, sdk.PubSubItemQuery{Service: service, Node: n.Node, Max: 10})
	e.wantErr("GetPubSubItems of a deleted node", err, sdk.ErrNotFound)
	e.wantNodeList(service, keep)
	e.wantErr("DeletePubSubNode of a deleted node", w.DeletePubSubNode(e.ctx, service, n.Node), sdk.ErrNotFound)
	e.wantAffiliations(service, "", friend, sdk.PubSubAffiliation{Service: service, Node: keep.Node, JID: friend, Affiliation: sdk.PubSubPublisher})
	e.wantSubscriptions(service, "", friend, sdk.PubSubSubscription{Service: service, Node: keep.Node, JID: friend + "/phone", SubID: "s1", State: sdk.PubSubSubscribed})

	// A node created again under the name starts empty: the items,
	// affiliations and subscriptions went with the old one.
	again := e.createNode(service, n.Node, e.owner("carol"), nil)
	e.wantNode(again)
	e.wantItems("items of a re-created node", e.items(sdk.PubSubItemQuery{Service: service, Node: n.Node, Max: 10}), nil, 0, true)
	e.wantAffiliations(service, n.Node, "", sdk.PubSubAffiliation{Service: service, Node: n.Node, JID: e.owner("carol"), Affiliation: sdk.PubSubOwner})
	e.wantSubscriptions(service, n.Node, "")
	// The other node kept everything.
	e.wantItems("items of the other node", e.items(sdk.PubSubItemQuery{Service: service, Node: keep.Node, Max: 10}), idsDown(2, 0), 3, true)
}

func checkPubSubPublish(e *env) {
	w := e.pubsubWriter()
	service := e.pubsubService("alice")
	n := e.createNode(service, "urn:xmpp:sdktest:0", service, nil)
	for i := range 3 {
		e.publish(service, n.Node, pubsubItem(i), 0)
	}
	p := e.items(sdk.PubSubItemQuery{Service: service, Node: n.Node, Max: 10})
	e.wantItems("after three publishes", p, idsDown(2, 0), 3, true)
	for j, it := range p.Items {
		want := pubsubItem(2 - j)
		if it.Publisher != want.Publisher || it.Payload != want.Payload || !it.Published.Equal(want.Published) {
			e.t.Errorf("item %s = %+v, want %+v", it.ID, it, want)
		}
	}

	// Publishing an id again replaces the item, which becomes the newest.
	re := pubsubItem(0)
	re.Payload, re.Publisher, re.Published = "<entry xmlns='urn:sdktest:pubsub'>second</entry>", "other@sdktest.example", pubsubStamp(10)
	e.publish(service, n.Node, re, 0)
	p = e.items(sdk.PubSubItemQuery{Service: service, Node: n.Node, Max: 10})
	e.wantItems("after publishing the oldest id again", p, []string{pubsubItemID(0), pubsubItemID(2), pubsubItemID(1)}, 3, true)
	if len(p.Items) > 0 && (p.Items[0].Payload != re.Payload || p.Items[0].Publisher != re.Publisher || !p.Items[0].Published.Equal(re.Published)) {
		e.t.Errorf("replaced item = %+v, want %+v", p.Items[0], re)
	}
	e.wantErr("PublishPubSubItem to an absent node",
		w.PublishPubSubItem(e.ctx, service, "urn:sdktest:absent", pubsubItem(5), 0), sdk.ErrNotFound)
	_, err := e.pubsub().GetPubSubNode(e.ctx, service, "urn:sdktest:absent")
	e.wantErr("GetPubSubNode after a publish to an absent node", err, sdk.ErrNotFound)
	// An item without a payload (a notification-only node's).
	bare := sdk.PubSubItem{ID: "no-payload", Publisher: service, Published: pubsubStamp(11)}
	e.publish(service, n.Node, bare, 0)
	p = e.items(sdk.PubSubItemQuery{Service: service, Node: n.Node, IDs: []string{"no-payload"}})
	if len(p.Items) != 1 || p.Items[0].Payload != "" {
		e.t.Errorf("item without a payload came back as %+v", p.Items)
	}
}

// checkPubSubEqualStamps: items published within one millisecond are in
// publication order.
func checkPubSubEqualStamps(e *env) {
	service := e.pubsubService("alice")
	n := e.createNode(service, "urn:xmpp:sdktest:0", service, nil)
	// Ids in an order that is neither the publication order nor sorted.
	ids := []string{"m", "z", "a", "q", "b"}
	for _, id := range ids {
		e.publish(service, n.Node, sdk.PubSubItem{ID: id, Published: pubsubStamp(1)}, 0)
	}
	want := slices.Clone(ids)
	slices.Reverse(want)
	e.wantItems("items with one stamp", e.items(sdk.PubSubItemQuery{Service: service, Node: n.Node, Max: 10}), want, 5, true)
	// Republishing one moves it to the front, still within the stamp.
	e.publish(service, n.Node, sdk.PubSubItem{ID: "z", Published: pubsubStamp(1)}, 0)
	e.wantItems("after republishing z", e.items(sdk.PubSubItemQuery{Service: service, Node: n.Node, Max: 10}),
		[]string{"z", "b", "q", "a", "m"}, 5, true)
	// Paging works within equal stamps.
	e.wantItems("after q", e.items(sdk.PubSubItemQuery{Service: service, Node: n.Node, After: "q", Max: 10}),
		[]string{"a", "m"}, 5, true)
	e.wantItems("before q", e.items(sdk.PubSubItemQuery{Service: service, Node: n.Node, Before: "q", Max: 1}),
		[]string{"b"}, 5, false)
}

func checkPubSubTrim(e *env) {
	service := e.pubsubService("alice")
	n := e.createNode(service, "urn:xmpp:sdktest:0", service, nil)
	for i := range 5 {
		e.publish(service, n.Node, pubsubItem(i), 3)
	}
	e.wantItems("five publishes with max 3", e.items(sdk.PubSubItemQuery{Service: service, Node: n.Node, Max: 10}), idsDown(4, 2), 3, true)
	// Replacing an item within the limit trims nothing.
	re := pubsubItem(2)
	re.Published = pubsubStamp(5)
	e.publish(service, n.Node, re, 3)
	e.wantItems("replacing the oldest with max 3", e.items(sdk.PubSubItemQuery{Service: service, Node: n.Node, Max: 10}),
		[]string{pubsubItemID(2), pubsubItemID(4), pubsubItemID(3)}, 3, true)
	// No limit keeps everything.
	for i := 6; i < 9; i++ {
		e.publish(service, n.Node, pubsubItem(i), 0)
	}
	e.wantItems("publishes without a limit", e.items(sdk.PubSubItemQuery{Service: service, Node: n.Node, Max: 10}),
		[]string{pubsubItemID(8), pubsubItemID(7), pubsubItemID(6), pubsubItemID(2), pubsubItemID(4), pubsubItemID(3)}, 6, true)
	// A lower limit (the node reconfigured) trims to it at the next publish.
	e.publish(service, n.Node, pubsubItem(9), 1)
	e.wantItems("a publish with max 1", e.items(sdk.PubSubItemQuery{Service: service, Node: n.Node, Max: 10}), idsDown(9, 9), 1, true)
	// The same id again with max 1 leaves one item, the new one.
	re = pubsubItem(9)
	re.Payload, re.Published = "<entry xmlns='urn:sdktest:pubsub'>last</entry>", pubsubStamp(20)
	e.publish(service, n.Node, re, 1)
	p := e.items(sdk.PubSubItemQuery{Service: service, Node: n.Node, Max: 10})
	e.wantItems("republish with max 1", p, idsDown(9, 9), 1, true)
	if len(p.Items) == 1 && p.Items[0].Payload != re.Payload {
		e.t.Errorf("republished item has payload %s, want %s", abbrev(p.Items[0].Payload), abbrev(re.Payload))
	}
}

func checkPubSubRetractPurge(e *env) {
	w := e.pubsubWriter()
	service := e.pubsubService("alice")
	n := e.createNode(service, "urn:xmpp:sdktest:0", service, nil)
	other := e.createNode(service, "urn:xmpp:sdktest:1", service, nil)
	for i := range 4 {
		e.publish(service, n.Node, pubsubItem(i), 0)
		e.publish(service, other.Node, pubsubItem(i), 0)
	}
	e.ok("RetractPubSubItem", w.RetractPubSubItem(e.ctx, service, n.Node, pubsubItemID(2)))
	e.wantItems("after a retract", e.items(sdk.PubSubItemQuery{Service: service, Node: n.Node, Max: 10}),
		[]string{pubsubItemID(3), pubsubItemID(1), pubsubItemID(0)}, 3, true)
	e.wantErr("RetractPubSubItem of a retracted item", w.RetractPubSubItem(e.ctx, service, n.Node, pubsubItemID(2)), sdk.ErrNotFound)
	e.wantErr("RetractPubSubItem in an absent node", w.RetractPubSubItem(e.ctx, service, "urn:sdktest:absent", pubsubItemID(1)), sdk.ErrNotFound)

	e.ok("PurgePubSubNode", w.PurgePubSubNode(e.ctx, service, n.Node))
	e.wantItems("after a purge", e.items(sdk.PubSubItemQuery{Service: service, Node: n.Node, Max: 10}), nil, 0, true)
	e.wantNodeList(service, n, other)
	e.wantItems("the other node after a purge", e.items(sdk.PubSubItemQuery{Service: service, Node: other.Node, Max: 10}), idsDown(3, 0), 4, true)
	e.ok("PurgePubSubNode of an empty node", w.PurgePubSubNode(e.ctx, service, n.Node))
	e.wantErr("PurgePubSubNode of an absent node", w.PurgePubSubNode(e.ctx, service, "urn:sdktest:absent"), sdk.ErrNotFound)
	// Publishing after a purge works as on a new node.
	e.publish(service, n.Node, pubsubItem(7), 0)
	e.wantItems("a publish after a purge", e.items(sdk.PubSubItemQuery{Service: service, Node: n.Node, Max: 10}), idsDown(7, 7), 1, true)
}

func checkPubSubPaging(e *env) {
	service := e.pubsubService("alice")
	n := e.createNode(service, "urn:xmpp:sdktest:0", service, nil)
	empty := e.createNode(service, "urn:xmpp:sdktest:empty", service, nil)
	const total = 25 // items 1..25, 25 newest
	for i := 1; i <= total; i++ {
		e.publish(service, n.Node, pubsubItem(i), 0)
	}
	q := func(after, before string, max int) sdk.PubSubItemQuery {
		return sdk.PubSubItemQuery{Service: service, Node: n.Node, After: after, Before: before, Max: max}
	}
	id := pubsubItemID
	e.wantItems("first page", e.items(q("", "", 10)), idsDown(25, 16), total, false)
	e.wantItems("second page", e.items(q(id(16), "", 10)), idsDown(15, 6), total, false)
	e.wantItems("last page", e.items(q(id(6), "", 10)), idsDown(5, 1), total, true)
	e.wantItems("a page ending at the oldest", e.items(q(id(11), "", 10)), idsDown(10, 1), total, true)
	e.wantItems("after the oldest", e.items(q(id(1), "", 10)), nil, total, true)
	e.wantItems("every item", e.items(q("", "", sdk.MaxPubSubPage)), idsDown(25, 1), total, true)

	e.wantItems("before, the closest", e.items(q("", id(10), 5)), idsDown(15, 11), total, false)
	e.wantItems("before, reaching the newest", e.items(q("", id(20), 10)), idsDown(25, 21), total, true)
	e.wantItems("before the newest", e.items(q("", id(25), 10)), nil, total, true)
	e.wantItems("between", e.items(q(id(20), id(10), 100)), idsDown(19, 11), total, true)
	e.wantItems("between, the closest to before", e.items(q(id(20), id(10), 3)), idsDown(13, 11), total, false)
	e.wantItems("between, after only", e.items(q(id(20), id(10), 9)), idsDown(19, 11), total, true)

	e.wantItems("max 0", e.items(q("", "", 0)), nil, total, false)
	e.wantItems("max 0 after the oldest", e.items(q(id(1), "", 0)), nil, total, true)
	e.wantItems("max 0 of an empty node", e.items(sdk.PubSubItemQuery{Service: service, Node: empty.Node}), nil, 0, true)

	_, err := e.pubsub().GetPubSubItems(e.ctx, q("no-such-item", "", 10))
	e.wantErr("GetPubSubItems after an absent id", err, sdk.ErrNotFound)
	_, err = e.pubsub().GetPubSubItems(e.ctx, q("", "no-such-item", 10))
	e.wantErr("GetPubSubItems before an absent id", err, sdk.ErrNotFound)

	byIDs := sdk.PubSubItemQuery{Service: service, Node: n.Node, IDs: []string{id(3), id(20), "no-such-item", id(3), id(7)}}
	e.wantItems("by ids", e.items(byIDs), []string{id(20), id(7), id(3)}, total, true)
	byIDs.IDs = []string{"no-such-item"}
	e.wantItems("by an absent id", e.items(byIDs), nil, total, true)
}

// pubsubPayloads are items whose payload must come back byte for byte.
func pubsubPayloads() []sdk.PubSubItem {
	data := make([]byte, 150*1024) // 200 KiB in base64, an avatar's size
	for i := range data {
		data[i] = byte(i*31 + i/7)
	}
	avatar := "<data xmlns='urn:xmpp:avatar:data'>" + base64.StdEncoding.EncodeToString(data) + "</data>"
	return []sdk.PubSubItem{
		{ID: "avatar-sha1-0123456789abcdef", Payload: avatar},
		{ID: "unicode", Payload: "<note xmlns='urn:sdktest'>Grüße, \u4f60\u597d, \u05e9\u05dc\u05d5\u05dd, 😀👩\u200d👩\u200d👧, e\u0301 ≠ é</note>"},
		{ID: "namespaces", Payload: "<x:conference xmlns:x='urn:xmpp:bookmarks:1' name='Café' autojoin='true'>" +
			"<x:nick>koi</x:nick><extensions><state xmlns='http://example.org/state' a=\"&lt;&amp;&gt;&quot;\"/></extensions></x:conference>"},
		{ID: "whitespace", Payload: "<pre xmlns='urn:sdktest'>\n\tline one  \r\n   line two\t\n</pre>"},
		{ID: "id with spaces / and ü", Payload: "<empty xmlns='urn:sdktest'/>"},
	}
}

func checkPubSubPayloads(e *env) {
	service := e.pubsubService("ünïcødé")
	n := e.createNode(service, "urn:xmpp:avatar:data", service, map[string][]string{"pubsub#title": {"Ävätar 头像"}})
	items := pubsubPayloads()
	for i := range items {
		items[i].Publisher = service + "/Gerät"
		items[i].Published = pubsubStamp(i)
		e.publish(service, n.Node, items[i], 0)
	}
	p := e.items(sdk.PubSubItemQuery{Service: service, Node: n.Node, Max: 100})
	slices.Reverse(items)
	if len(p.Items) != len(items) {
		e.t.Fatalf("%d items, want %d", len(p.Items), len(items))
	}
	for i, it := range p.Items {
		if it.ID != items[i].ID || it.Payload != items[i].Payload || it.Publisher != items[i].Publisher {
			e.t.Errorf("item %d = {%q %q %s}, want {%q %q %s}", i, it.ID, it.Publisher, abbrev(it.Payload),
				items[i].ID, items[i].Publisher, abbrev(items[i].Payload))
		}
	}
	e.wantNode(n)

	// A page far over gRPC's 4 MiB message limit: 24 avatars of 200 KiB.
	big := e.createNode(service, "urn:xmpp:avatar:data:many", service, nil)
	avatar := pubsubPayloads()[0].Payload
	for i := range 24 {
		e.publish(service, big.Node, sdk.PubSubItem{ID: fmt.Sprint(i), Payload: avatar, Published: pubsubStamp(i)}, 0)
	}
	p = e.items(sdk.PubSubItemQuery{Service: service, Node: big.Node, Max: 100})
	if len(p.Items) != 24 || p.Count != 24 || !p.Complete {
		e.t.Fatalf("a page of 24 avatars: %d items, Count %d, Complete %v", len(p.Items), p.Count, p.Complete)
	}
	for i, it := range p.Items {
		if it.ID != fmt.Sprint(23-i) || it.Payload != avatar {
			e.t.Errorf("item %d of the page of avatars: id %q, payload of %d bytes, want %q and %d bytes", i, it.ID, len(it.Payload), fmt.Sprint(23-i), len(avatar))
		}
	}
}

func checkPubSubAffiliations(e *env) {
	w := e.pubsubWriter()
	service, domain := e.pubsubService("alice"), e.pubsubDomain("news")
	owner := service
	bob, carol, dave, eve := e.contact("bob"), e.contact("carol"), e.contact("dave"), e.contact("eve")
	n := e.createNode(service, "urn:xmpp:sdktest:b", owner, nil)
	n2 := e.createNode(service, "urn:xmpp:sdktest:a", owner, nil)
	n3 := e.createNode(domain, "urn:xmpp:sdktest:a", e.owner("admin"), nil)
	aff := func(s, node, jid, a string) sdk.PubSubAffiliation {
		return sdk.PubSubAffiliation{Service: s, Node: node, JID: jid, Affiliation: a}
	}
	set := func(a sdk.PubSubAffiliation) {
		e.t.Helper()
		e.ok(fmt.Sprintf("SetPubSubAffiliation(%+v)", a), w.SetPubSubAffiliation(e.ctx, a))
	}
	// Set in an order that is not the JIDs'.
	set(aff(service, n.Node, eve, sdk.PubSubOutcast))
	set(aff(service, n.Node, bob, sdk.PubSubPublisher))
	set(aff(service, n.Node, dave, sdk.PubSubPublishOnly))
	set(aff(service, n.Node, carol, sdk.PubSubMember))
	set(aff(service, n2.Node, bob, sdk.PubSubMember))
	set(aff(domain, n3.Node, bob, sdk.PubSubOwner))
	want := []sdk.PubSubAffiliation{
		aff(service, n.Node, owner, sdk.PubSubOwner),
		aff(service, n.Node, bob, sdk.PubSubPublisher), aff(service, n.Node, carol, sdk.PubSubMember),
		aff(service, n.Node, dave, sdk.PubSubPublishOnly), aff(service, n.Node, eve, sdk.PubSubOutcast),
	}
	slices.SortFunc(want, func(a, b sdk.PubSubAffiliation) int { return strings.Compare(a.JID, b.JID) })
	e.wantAffiliations(service, n.Node, "", want...)
	e.wantAffiliations(service, n.Node, carol, aff(service, n.Node, carol, sdk.PubSubMember))
	e.wantAffiliations(service, "", bob, aff(service, n2.Node, bob, sdk.PubSubMember), aff(service, n.Node, bob, sdk.PubSubPublisher))
	e.wantAffiliations(domain, "", bob, aff(domain, n3.Node, bob, sdk.PubSubOwner))
	e.wantAffiliations(service, "", owner, aff(service, n2.Node, owner, sdk.PubSubOwner), aff(service, n.Node, owner, sdk.PubSubOwner))

	// Replace, remove, remove again.
	set(aff(service, n.Node, bob, sdk.PubSubOutcast))
	set(aff(service, n.Node, carol, sdk.PubSubNone))
	set(aff(service, n.Node, carol, sdk.PubSubNone))
	want = slices.DeleteFunc(want, func(a sdk.PubSubAffiliation) bool { return a.JID == carol })
	for i := range want {
		if want[i].JID == bob {
			want[i].Affiliation = sdk.PubSubOutcast
		}
	}
	e.wantAffiliations(service, n.Node, "", want...)
	e.wantAffiliations(service, n.Node, carol)
	e.wantAffiliations(service, "", carol)

	e.wantErr("SetPubSubAffiliation on an absent node",
		w.SetPubSubAffiliation(e.ctx, aff(service, "urn:sdktest:absent", bob, sdk.PubSubMember)), sdk.ErrNotFound)
	for _, bad := range []string{"", "admin", "Owner", "subscribed"} {
		e.wantErr(fmt.Sprintf("SetPubSubAffiliation %q", bad),
			w.SetPubSubAffiliation(e.ctx, aff(service, n.Node, bob, bad)), sdk.ErrInvalid)
	}
	e.wantAffiliations(service, n.Node, "", want...)
	// Unicode JIDs are kept apart byte for byte.
	set(aff(service, n.Node, "jürgen@bücher.example", sdk.PubSubMember))
	e.wantAffiliations(service, n.Node, "jurgen@bucher.example")
	e.wantAffiliations(service, n.Node, "jürgen@bücher.example", aff(service, n.Node, "jürgen@bücher.example", sdk.PubSubMember))
}

func checkPubSubSubscriptions(e *env) {
	w := e.pubsubWriter()
	service := e.pubsubService("alice")
	bob, carol := e.contact("bob"), e.contact("carol")
	n := e.createNode(service, "urn:xmpp:sdktest:b", service, nil)
	n2 := e.createNode(service, "urn:xmpp:sdktest:a", service, nil)
	other := e.createNode(e.pubsubService("zed"), "urn:xmpp:sdktest:a", e.pubsubService("zed"), nil)
	sub := func(node, jid, subid, state string, opts map[string][]string) sdk.PubSubSubscription {
		return sdk.PubSubSubscription{Service: service, Node: node, JID: jid, SubID: subid, State: state, Options: opts}
	}
	set := func(s sdk.PubSubSubscription) {
		e.t.Helper()
		e.ok(fmt.Sprintf("SetPubSubSubscription(%+v)", s), w.SetPubSubSubscription(e.ctx, s))
	}
	opts := map[string][]string{
		"pubsub#deliver":      {"true"},
		"pubsub#show-values":  {"chat", "online", "away"},
		"pubsub#digest":       {},
		"x-sdktest#ünïcødé 😀": {"wert"},
	}
	s1 := sub(n.Node, bob+"/phone", "sub-2", sdk.PubSubSubscribed, opts)
	s2 := sub(n.Node, bob+"/phone", "sub-1", sdk.PubSubPending, nil)
	s3 := sub(n.Node, bob, "", sdk.PubSubUnconfigured, nil)
	s4 := sub(n.Node, carol+"/laptop", "sub-9", sdk.PubSubSubscribed, nil)
	s5 := sub(n2.Node, bob+"/desktop", "x", sdk.PubSubSubscribed, nil)
	for _, s := range []sdk.PubSubSubscription{s4, s1, s5, s3, s2} {
		set(s)
	}
	so := sdk.PubSubSubscription{Service: other.Service, Node: other.Node, JID: bob, SubID: "o", State: sdk.PubSubSubscribed}
	set(so)
	e.wantSubscriptions(service, n.Node, "", s3, s2, s1, s4)
	// By JID: matched on the bare JID, whichever form is asked.
	e.wantSubscriptions(service, "", bob, s5, s3, s2, s1)
	e.wantSubscriptions(service, "", bob+"/other", s5, s3, s2, s1)
	e.wantSubscriptions(service, n.Node, bob+"/phone", s3, s2, s1)
	e.wantSubscriptions(service, "", carol, s4)
	e.wantSubscriptions(other.Service, "", bob, so)

	// Replace (same JID and SubID), remove, remove again.
	s1b := s1
	s1b.State, s1b.Options = sdk.PubSubUnconfigured, map[string][]string{"pubsub#deliver": {"false"}}
	set(s1b)
	s2.State = sdk.PubSubNone
	set(s2)
	set(s2)
	e.wantSubscriptions(service, n.Node, "", s3, s1b, s4)
	s3b := s3
	s3b.Options = opts
	s3b.State = sdk.PubSubSubscribed
	set(s3b)
	e.wantSubscriptions(service, n.Node, bob, s3b, s1b)

	e.wantErr("SetPubSubSubscription on an absent node",
		w.SetPubSubSubscription(e.ctx, sub("urn:sdktest:absent", bob, "", sdk.PubSubSubscribed, nil)), sdk.ErrNotFound)
	for _, bad := range []string{"", "both", "Subscribed", "member"} {
		e.wantErr(fmt.Sprintf("SetPubSubSubscription state %q", bad),
			w.SetPubSubSubscription(e.ctx, sub(n.Node, bob, "", bad, nil)), sdk.ErrInvalid)
	}
	e.wantSubscriptions(service, n.Node, "", s3b, s1b, s4)
}

func checkPubSubInvalid(e *env) {
	p, w := e.pubsub(), e.pubsubWriter()
	service := e.pubsubService("alice")
	n := e.createNode(service, "urn:xmpp:sdktest:0", service, nil)
	e.publish(service, n.Node, pubsubItem(1), 0)
	invalid := func(what string, err error) {
		e.t.Helper()
		e.wantErr(what, err, sdk.ErrInvalid)
	}
	node := func(s, name string, created time.Time) sdk.PubSubNode {
		return sdk.PubSubNode{Service: s, Node: name, Created: created}
	}
	invalid("CreatePubSubNode without a service", w.CreatePubSubNode(e.ctx, node("", "n", pubsubStamp(0)), service))
	invalid("CreatePubSubNode without a node", w.CreatePubSubNode(e.ctx, node(service, "", pubsubStamp(0)), service))
	invalid("CreatePubSubNode without an owner", w.CreatePubSubNode(e.ctx, node(service, "urn:sdktest:x", pubsubStamp(0)), ""))
	invalid("CreatePubSubNode without Created", w.CreatePubSubNode(e.ctx, node(service, "urn:sdktest:y", time.Time{}), service))
	invalid("ConfigurePubSubNode without a node", w.ConfigurePubSubNode(e.ctx, node(service, "", pubsubStamp(0))))
	invalid("DeletePubSubNode without a service", w.DeletePubSubNode(e.ctx, "", n.Node))
	invalid("DeletePubSubNode without a node", w.DeletePubSubNode(e.ctx, service, ""))
	invalid("PurgePubSubNode without a node", w.PurgePubSubNode(e.ctx, service, ""))
	invalid("RetractPubSubItem without an id", w.RetractPubSubItem(e.ctx, service, n.Node, ""))
	noID := pubsubItem(2)
	noID.ID = ""
	invalid("PublishPubSubItem without an id", w.PublishPubSubItem(e.ctx, service, n.Node, noID, 0))
	noStamp := pubsubItem(2)
	noStamp.Published = time.Time{}
	invalid("PublishPubSubItem without Published", w.PublishPubSubItem(e.ctx, service, n.Node, noStamp, 0))
	invalid("PublishPubSubItem with max items -1", w.PublishPubSubItem(e.ctx, service, n.Node, pubsubItem(2), -1))
	invalid("PublishPubSubItem without a node", w.PublishPubSubItem(e.ctx, service, "", pubsubItem(2), 0))
	tooBig := pubsubItem(2)
	tooBig.Payload = "<big xmlns='urn:sdktest'>" + strings.Repeat("x", sdk.MaxPubSubPayload) + "</big>"
	invalid("PublishPubSubItem over MaxPubSubPayload", w.PublishPubSubItem(e.ctx, service, n.Node, tooBig, 0))
	invalid("SetPubSubAffiliation without a JID", w.SetPubSubAffiliation(e.ctx, sdk.PubSubAffiliation{Service: service, Node: n.Node, Affiliation: sdk.PubSubMember}))
	invalid("SetPubSubSubscription without a JID", w.SetPubSubSubscription(e.ctx, sdk.PubSubSubscription{Service: service, Node: n.Node, State: sdk.PubSubSubscribed}))

	_, err := p.GetPubSubNode(e.ctx, service, "")
	invalid("GetPubSubNode without a node", err)
	_, err = p.ListPubSubNodes(e.ctx, "")
	invalid("ListPubSubNodes without a service", err)
	_, err = p.GetPubSubAffiliations(e.ctx, service, "", "")
	invalid("GetPubSubAffiliations without node and JID", err)
	_, err = p.GetPubSubSubscriptions(e.ctx, service, "", "")
	invalid("GetPubSubSubscriptions without node and JID", err)
	for _, q := range []sdk.PubSubItemQuery{
		{Service: service, Node: n.Node, Max: -1},
		{Service: service, Node: n.Node, Max: sdk.MaxPubSubPage + 1},
		{Service: service, Node: "", Max: 1},
		{Service: service, Node: n.Node, IDs: make([]string, sdk.MaxPubSubPage+1)},
	} {
		_, err = p.GetPubSubItems(e.ctx, q)
		invalid(fmt.Sprintf("GetPubSubItems(max %d, node %q, %d ids)", q.Max, q.Node, len(q.IDs)), err)
	}
	// Nothing changed.
	e.wantItems("items after the refused calls", e.items(sdk.PubSubItemQuery{Service: service, Node: n.Node, Max: 10}), idsDown(1, 1), 1, true)
	e.wantNodeList(service, n)
	e.wantAffiliations(service, n.Node, "", sdk.PubSubAffiliation{Service: service, Node: n.Node, JID: service, Affiliation: sdk.PubSubOwner})
	e.wantSubscriptions(service, n.Node, "")
}

func checkPubSubConcurrentCreate(e *env) {
	w := e.pubsubWriter()
	service := e.pubsubService("alice")
	n := e.o.Concurrency
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			defer e.recoverPanic()
			errs[i] = w.CreatePubSubNode(e.ctx, sdk.PubSubNode{Service: service, Node: "urn:xmpp:race", Created: pubsubStamp(i)},
				fmt.Sprintf("owner%d@sdktest.example", i))
		})
	}
	wg.Wait()
	won := -1
	for i, err := range errs {
		switch {
		case err == nil && won >= 0:
			e.t.Errorf("concurrent CreatePubSubNode: both %d and %d succeeded, want exactly one", won, i)
		case err == nil:
			won = i
		default:
			e.wantErr("a losing concurrent CreatePubSubNode", err, sdk.ErrExists)
		}
	}
	if won < 0 {
		e.t.Fatal("concurrent CreatePubSubNode: none succeeded")
	}
	e.wantAffiliations(service, "urn:xmpp:race", "", sdk.PubSubAffiliation{
		Service: service, Node: "urn:xmpp:race", JID: fmt.Sprintf("owner%d@sdktest.example", won), Affiliation: sdk.PubSubOwner,
	})
}

// checkPubSubConcurrentPublish: concurrent publishers to one node with a
// limit leave exactly the newest items, never more than the limit.
func checkPubSubConcurrentPublish(e *env) {
	service := e.pubsubService("alice")
	n := e.createNode(service, "urn:xmpp:sdktest:0", service, nil)
	const perWorker, limit = 12, 5
	workers := e.o.Concurrency
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			defer e.recoverPanic()
			for i := range perWorker {
				k := i*workers + g // every stamp distinct, interleaved between workers
				err := e.pubsubWriter().PublishPubSubItem(e.ctx, service, n.Node, pubsubItem(k), limit)
				if !e.noErr("concurrent PublishPubSubItem", err) {
					return
				}
			}
		})
	}
	wg.Wait()
	total := workers * perWorker
	e.wantItems("after concurrent publishes", e.items(sdk.PubSubItemQuery{Service: service, Node: n.Node, Max: 100}),
		idsDown(total-1, total-limit), limit, true)
}
