package e2e

import (
	"fmt"
	"strconv"
	"testing"
	"time"
)

// The cluster tests of what a user's sessions share across nodes:
// carbons, blocking, stream-management resumption. They reuse
// cluster_test.go's nodes (examples/cluster on PostgreSQL and NATS).

const nsCarbons = "urn:xmpp:carbons:2"

// registrySettle is how long a test gives a session's change (carbons
// enabled, say) to reach the other nodes through the registry, which is
// written in the background; about a millisecond on an idle LAN, much
// more on this loaded machine.
const registrySettle = time.Second

// isCarbon matches a carbon copy (sent or received) for bare of a message
// with body.
func isCarbon(kind, bare, body string) func(*element) bool {
	return func(e *element) bool {
		// The client library reports the account's own bare JID as no
		// from at all, as RFC 6120 §8.1.2.1 lets it.
		if f := e.attr("from"); !e.is("", "message") || (f != bare && f != "") {
			return false
		}
		m := e.child(nsCarbons, kind)
		if m == nil {
			return false
		}
		fwd := m.child("urn:xmpp:forward:0", "forwarded")
		return fwd != nil && fwd.child("", "message") != nil && bodyOf(fwd.child("", "message")) == body
	}
}

// TestClusterCarbons: alice has a resource on each of two nodes, both with
// carbons on, and bob is on node 2. Each of her resources gets a copy of
// what the other sends and receives, wherever the message is routed; once
// one disables carbons it gets no more copies.
func TestClusterCarbons(t *testing.T) {
	t.Parallel()
	nats := natsURL(t)
	pg := mixPostgres(t)
	nodes := startClusterNodes(t, 2, pg, nats)
	const pw = "pw-carbons"
	for _, u := range []string{"alice", "bob"} {
		nodes[0].addUser(t, u+"@localhost", pw)
	}
	a1 := nodes[0].login(t, "alice@localhost/one", pw)
	a2 := nodes[1].login(t, "alice@localhost/two", pw)
	bob := nodes[1].login(t, "bob@localhost/x", pw)
	for _, c := range []*client{a1, a2} {
		c.send(`<iq type='set' id='carbons'><enable xmlns='` + nsCarbons + `'/></iq>`)
		c.expect("carbons enabled", func(e *element) bool { return e.attr("id") == "carbons" && e.attr("type") == "result" })
	}
	time.Sleep(registrySettle) // each node learns of the other's session of alice
	for _, c := range []*client{a1, a2, bob} {
		c.send(`<presence/>`)
	}
	a1.expect("alice/two's presence", isPresence("", "alice@localhost/two"))
	a2.expect("alice/one's presence", isPresence("", "alice@localhost/one"))
	time.Sleep(registrySettle)

	// Sent on node 1 (routed there): the copy crosses to node 2.
	a1.send(`<message to='bob@localhost/x' type='chat' id='s1'><body>from one</body></message>`)
	bob.expect("alice/one's message", isMessageFrom("alice@localhost/one"))
	a2.expect("sent carbon of alice/one's message", isCarbon("sent", "alice@localhost", "from one"))
	// Received on node 2 (bob's node routes it to node 1): the copy stays on node 2.
	bob.send(`<message to='alice@localhost/one' type='chat' id='r1'><body>to one</body></message>`)
	a1.expect("bob's message on node 1", isMessageFrom("bob@localhost/x"))
	a2.expect("received carbon on node 2", isCarbon("received", "alice@localhost", "to one"))
	// Sent on node 2: the copy crosses to node 1.
	a2.send(`<message to='bob@localhost/x' type='chat' id='s2'><body>from two</body></message>`)
	bob.expect("alice/two's message", isMessageFrom("alice@localhost/two"))
	a1.expect("sent carbon of alice/two's message", isCarbon("sent", "alice@localhost", "from two"))
	// Received on node 2: the copy crosses to node 1.
	bob.send(`<message to='alice@localhost/two' type='chat' id='r2'><body>to two</body></message>`)
	a2.expect("bob's message on node 2", isMessageFrom("bob@localhost/x"))
	a1.expect("received carbon on node 1", isCarbon("received", "alice@localhost", "to two"))
	// Each copy once.
	a1.expectNone("a second carbon", 300*time.Millisecond, func(e *element) bool {
		return e.child(nsCarbons, "sent") != nil || e.child(nsCarbons, "received") != nil
	})
	a2.expectNone("a second carbon", 300*time.Millisecond, func(e *element) bool {
		return e.child(nsCarbons, "sent") != nil || e.child(nsCarbons, "received") != nil
	})

	// alice/one disables carbons: node 2 learns it and copies nothing
	// more to node 1.
	a1.send(`<iq type='set' id='off'><disable xmlns='` + nsCarbons + `'/></iq>`)
	a1.expect("carbons disabled", func(e *element) bool { return e.attr("id") == "off" && e.attr("type") == "result" })
	time.Sleep(registrySettle)
	a2.send(`<message to='bob@localhost/x' type='chat' id='s3'><body>not copied</body></message>`)
	bob.expect("alice/two's last message", func(e *element) bool { return e.is("", "message") && bodyOf(e) == "not copied" })
	a1.expectNone("a carbon after disabling", time.Second, func(e *element) bool { return e.child(nsCarbons, "sent") != nil })
}

// TestClusterBlocking: alice blocks mallory from her resource on node 1;
// node 2, which routes mallory's stanzas and holds alice's list in its
// cache, enforces it as soon as the block's result is back, both ways,
// and pushes it to alice's resource there; the unblock too.
func TestClusterBlocking(t *testing.T) {
	t.Parallel()
	nats := natsURL(t)
	pg := mixPostgres(t)
	nodes := startClusterNodes(t, 2, pg, nats)
	const pw = "pw-blocking"
	for _, u := range []string{"alice", "mallory"} {
		nodes[0].addUser(t, u+"@localhost", pw)
	}
	a1 := nodes[0].login(t, "alice@localhost/one", pw)
	a2 := nodes[1].login(t, "alice@localhost/two", pw)
	mal := nodes[1].login(t, "mallory@localhost/m", pw)
	for _, c := range []*client{a1, a2, mal} {
		c.send(`<presence/>`)
	}
	a2.send(`<iq type='get' id='bl'><blocklist xmlns='urn:xmpp:blocking'/></iq>`)
	a2.expect("blocklist", func(e *element) bool { return e.attr("id") == "bl" && e.attr("type") == "result" })
	// Node 2 has alice's list in its cache now, and lets mallory through.
	mal.send(`<message to='alice@localhost/two' type='chat' id='m0'><body>before</body></message>`)
	a2.expect("mallory's message before the block", func(e *element) bool { return isMessageFrom("mallory@localhost/m")(e) && bodyOf(e) == "before" })

	a1.send(`<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='mallory@localhost'/></block></iq>`)
	a1.expect("block result", func(e *element) bool { return e.attr("id") == "b1" && e.attr("type") == "result" })
	// At once, no waiting: node 2 confirmed before alice had her result.
	mal.send(`<message to='alice@localhost/two' type='chat' id='m1'><body>blocked</body></message>`)
	if e := mal.expect("the bounce of a message to alice, who blocked mallory", func(e *element) bool { return e.attr("id") == "m1" }); e.attr("type") != "error" {
		t.Fatalf("mallory's message to alice after the block: %s, want an error", e)
	}
	a2.send(`<message to='mallory@localhost/m' type='chat' id='m2'><body>to a blocked contact</body></message>`)
	if e := a2.expect("the refusal of a message to a blocked contact", func(e *element) bool { return e.attr("id") == "m2" }); e.attr("type") != "error" || e.path("error", "blocked") == nil {
		t.Fatalf("alice's message from node 2 to mallory: %s, want an error with <blocked/>", e)
	}
	a2.expect("block push on node 2", func(e *element) bool {
		b := e.child("urn:xmpp:blocking", "block")
		return e.is("", "iq") && e.attr("type") == "set" && b != nil && b.child("", "item") != nil && b.child("", "item").attr("jid") == "mallory@localhost"
	})
	a2.expectNone("mallory's blocked message", 500*time.Millisecond, isMessageFrom("mallory@localhost/m"))
	mal.expectNone("alice's message", 0, isMessageFrom("alice@localhost/two"))

	a1.send(`<iq type='set' id='u1'><unblock xmlns='urn:xmpp:blocking'><item jid='mallory@localhost'/></unblock></iq>`)
	a1.expect("unblock result", func(e *element) bool { return e.attr("id") == "u1" && e.attr("type") == "result" })
	mal.send(`<message to='alice@localhost/two' type='chat' id='m3'><body>after</body></message>`)
	a2.expect("mallory's message after the unblock", func(e *element) bool { return isMessageFrom("mallory@localhost/m")(e) && bodyOf(e) == "after" })
	a2.expect("unblock push on node 2", func(e *element) bool {
		return e.is("", "iq") && e.attr("type") == "set" && e.child("urn:xmpp:blocking", "unblock") != nil
	})
}

// TestClusterSMResumeOnAnotherNode: bob's session waits for a resumption
// on node 1 with messages he never acknowledged, some sent before his
// connection dropped and some after; he comes back to node 2 and resumes
// there. Node 2 takes the session over: <resumed/> with node 1's count of
// what bob sent, every unacknowledged message exactly once and in order,
// his presence kept, and from then on his messages route to node 2.
func TestClusterSMResumeOnAnotherNode(t *testing.T) {
	t.Parallel()
	nats := natsURL(t)
	pg := mixPostgres(t)
	nodes := startClusterNodes(t, 2, pg, nats)
	const pw = "pw-sm-cluster"
	for _, u := range []string{"alice", "bob"} {
		nodes[0].addUser(t, u+"@localhost", pw)
	}
	bob, id := smLogin(t, nodes[0].server, nodes[0].tlsConfig(t, "localhost"), "bob", pw, "phone")
	bob.noAcks = true
	bob.send(`<presence><status>on node 1</status></presence>`)
	alice := nodes[1].login(t, "alice@localhost/pc", pw)
	time.Sleep(registrySettle) // node 2 learns of bob's session

	const before, after = 12, 8
	for i := range before {
		alice.send(fmt.Sprintf(`<message to='bob@localhost/phone' type='chat' id='m%d'><body>%d</body></message>`, i, i))
	}
	var got []int
	take := func(el *element) {
		t.Helper()
		if !el.is("", "message") {
			return // his own presence
		}
		n, err := strconv.Atoi(bodyOf(el))
		if err != nil {
			t.Fatalf("unexpected message %s", el)
		}
		got = append(got, n)
	}
	for len(got) < 5 {
		take(bob.mustRead())
	}
	h := bob.h
	bob.drop()
	for i := before; i < before+after; i++ {
		alice.send(fmt.Sprintf(`<message to='bob@localhost/phone' type='chat' id='m%d'><body>%d</body></message>`, i, i))
	}

	bob2, el := smResume(t, nodes[1].server, nodes[1].tlsConfig(t, "localhost"), "bob", pw, id, h)
	if !el.is(nsSM, "resumed") || el.attr("previd") != id || el.attr("h") != "1" {
		t.Fatalf("want <resumed previd='%s' h='1'/> (node 1 handled his presence), got %s", id, el)
	}
	bob2.noAcks = true
	for len(got) < before+after {
		el, err := bob2.read(waitTimeout)
		if err != nil {
			t.Fatalf("after resuming on node 2, %d of %d messages %v: %v", len(got), before+after, got, err)
		}
		take(el)
	}
	// Nothing more: the ping's answer comes after anything still queued.
	bob2.send("<iq type='get' id='last' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	for el := bob2.mustRead(); !(el.is("", "iq") && el.attr("id") == "last"); el = bob2.mustRead() {
		take(el)
	}
	for i, n := range got {
		if n != i {
			t.Fatalf("messages as bob got them: %v, want 0…%d once each in order", got, before+after-1)
		}
	}
	waitLog(t, nodes[0].server, "session handed over to another node")
	waitLog(t, nodes[1].server, "session taken over from another node")

	// The session lives on node 2 now, with its presence: alice's next
	// message and bob's reply route there.
	alice.send(`<iq type='get' id='ver' to='bob@localhost/phone'><query xmlns='jabber:iq:version'/></iq>`)
	if el := bob2.mustRead(); !el.is("", "iq") || el.attr("id") != "ver" {
		t.Fatalf("bob got %s, want alice's IQ", el)
	}
	bob2.send(`<iq type='result' id='ver' to='alice@localhost/pc'><query xmlns='jabber:iq:version'><name>e2e</name><version>1</version></query></iq>`)
	alice.expect("bob's answer from node 2", func(e *element) bool { return e.attr("id") == "ver" && e.attr("type") == "result" })
	time.Sleep(registrySettle)
	alice.send(`<message to='bob@localhost' type='chat' id='bare'><body>bare</body></message>`)
	if el := bob2.mustRead(); bodyOf(el) != "bare" {
		t.Fatalf("a message to bob's bare JID: bob got %s (is his presence kept?)", el)
	}
}

// TestClusterSMOwnerDead: bob's session waits for a resumption on node 1
// with three messages he never acknowledged when node 1 dies. Node 2
// reaps it: bob's resumption there fails with <item-not-found/>, and the
// three messages wait in offline storage, as they would after the
// session's expiry on one node (not the one he acknowledged).
func TestClusterSMOwnerDead(t *testing.T) {
	t.Parallel()
	nats := natsURL(t)
	pg := mixPostgres(t)
	nodes := startClusterNodes(t, 2, pg, nats)
	const pw = "pw-sm-dead"
	for _, u := range []string{"alice", "bob"} {
		nodes[0].addUser(t, u+"@localhost", pw)
	}
	bob, id := smLogin(t, nodes[0].server, nodes[0].tlsConfig(t, "localhost"), "bob", pw, "phone")
	bob.send(`<presence/>`)
	alice := nodes[1].login(t, "alice@localhost/pc", pw)
	time.Sleep(registrySettle) // node 2 learns of bob's session

	alice.send(`<message to='bob@localhost/phone' type='chat' id='seen'><body>seen</body></message>`)
	for el := bob.mustRead(); bodyOf(el) != "seen"; el = bob.mustRead() {
	}
	bob.ack()
	bob.send("<r xmlns='" + nsSM + "'/>")
	for el := bob.mustRead(); !el.is(nsSM, "a"); el = bob.mustRead() {
	}
	bob.drop()
	waitLog(t, nodes[0].server, "session kept for resumption")
	for i := range 3 {
		alice.send(fmt.Sprintf(`<message to='bob@localhost/phone' type='chat' id='k%d'><body>kept %d</body></message>`, i, i))
	}
	// The three reach node 1's queue (and the cluster's copy of it).
	time.Sleep(registrySettle)
	nodes[0].kill(t)
	waitLog(t, nodes[1].server, "stanzas a node kept for its detached sessions treated as undelivered")

	if _, el := smResume(t, nodes[1].server, nodes[1].tlsConfig(t, "localhost"), "bob", pw, id, bob.h); !el.is(nsSM, "failed") || el.child("", "item-not-found") == nil {
		t.Fatalf("resuming a session of a dead node: %s, want <failed><item-not-found/></failed>", el)
	}
	bob2 := dialRaw(t, nodes[1].c2s, nil)
	bob2.login("localhost", nodes[1].tlsConfig(t, "localhost"), "bob", pw, "laptop")
	bob2.send("<presence/>")
	var bodies []string
	for len(bodies) < 3 {
		el := bob2.mustNext()
		if el.is("", "message") {
			if el.child("urn:xmpp:delay", "delay") == nil {
				t.Errorf("offline message without <delay/>: %s", el)
			}
			bodies = append(bodies, bodyOf(el))
		}
	}
	if want := "[kept 0 kept 1 kept 2]"; fmt.Sprint(bodies) != want {
		t.Fatalf("offline after node 1 died: %v, want %s (and not the acknowledged one)", bodies, want)
	}
	bob2.send("<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	for {
		el := bob2.mustNext()
		if el.is("", "message") {
			t.Fatalf("extra offline message: %s", el)
		}
		if el.is("", "iq") && el.attr("id") == "p" {
			break
		}
	}
}

// TestClusterArchive: the archive ids a message is stamped with by the
// node that routes it are the ones the recipient's archive serves from
// another node: alice (node 1) and bob (node 2) talk both ways, and each
// reads the whole conversation, with the ids seen live, from their own
// node.
func TestClusterArchive(t *testing.T) {
	t.Parallel()
	nats := natsURL(t)
	pg := mixPostgres(t)
	nodes := startClusterNodes(t, 2, pg, nats)
	const pw = "pw-archive"
	for _, u := range []string{"alice", "bob"} {
		nodes[0].addUser(t, u+"@localhost", pw)
	}
	alice := nodes[0].login(t, "alice@localhost/pc", pw)
	bob := nodes[1].login(t, "bob@localhost/x", pw)
	alice.online()
	bob.online()
	time.Sleep(registrySettle)

	for i := range 3 {
		alice.send(fmt.Sprintf(`<message to='bob@localhost' type='chat' id='a%d'><body>a%d</body></message>`, i, i))
	}
	aBodies, bobIDs := bob.received("alice@localhost/pc", 3)
	for i := range 2 {
		bob.send(fmt.Sprintf(`<message to='alice@localhost' type='chat' id='b%d'><body>b%d</body></message>`, i, i))
	}
	bBodies, aliceIDs := alice.received("bob@localhost/x", 2)
	if fmt.Sprint(aBodies, bBodies) != "[a0 a1 a2] [b0 b1]" {
		t.Fatalf("live: %v %v", aBodies, bBodies)
	}

	// Archive writes are batched by the node that routed the message:
	// the other node's reader sees them once written.
	read := func(c *client, want int) mamPage {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			p := c.mam("")
			if len(p.ids) >= want || time.Now().After(deadline) {
				return p
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	want := "[a0 a1 a2 b0 b1]"
	bp := read(bob, 5)
	if fmt.Sprint(bp.bodies) != want {
		t.Fatalf("bob's archive on node 2: %v, want %s", bp.bodies, want)
	}
	if fmt.Sprint(bp.ids[:3]) != fmt.Sprint(bobIDs) {
		t.Fatalf("bob's archive ids %v, stamped live %v", bp.ids[:3], bobIDs)
	}
	ap := read(alice, 5)
	if fmt.Sprint(ap.bodies) != want {
		t.Fatalf("alice's archive on node 1: %v, want %s", ap.bodies, want)
	}
	if fmt.Sprint(ap.ids[3:]) != fmt.Sprint(aliceIDs) {
		t.Fatalf("alice's archive ids %v, stamped live %v", ap.ids[3:], aliceIDs)
	}
}
