package e2e

import (
	"context"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestClusterMUC: three users on three nodes of a cluster are in one room,
// which lives on the node that first needed it: they see each other's
// presence and every message, a newcomer gets the history, a private
// message crosses nodes, and the room answers disco and MAM from any node. The
// room's node dies: within the lease a self-ping (XEP-0410) says the
// occupants are no longer in the room, and the users rejoin through the
// nodes left, where the persistent room is back from the store with its
// configuration, owner and subject, and its archive. Then a node with
// occupants dies, and the room drops them.
func TestClusterMUC(t *testing.T) {
	t.Parallel()
	nats := natsURL(t)
	pg := mixPostgres(t)
	nodes := startClusterNodes(t, 3, pg, nats)
	const pw = "pw-cluster-muc"
	for _, u := range []string{"alice", "bob", "carol"} {
		nodes[0].addUser(t, u+"@localhost", pw)
	}
	alice := nodes[0].login(t, "alice@localhost/pc", pw)
	bob := nodes[1].login(t, "bob@localhost/phone", pw)
	carol := nodes[2].login(t, "carol@localhost/tab", pw)
	for _, c := range []*client{alice, bob, carol} {
		c.send(`<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>`)
		c.expect("roster", func(e *element) bool { return e.is("", "iq") && e.attr("id") == "r1" })
		c.send(`<presence/>`)
	}
	const room = "hall@" + mucDomain
	occ := func(nick string) string { return room + "/" + nick }
	isOccupant := func(nick string) func(*element) bool {
		return func(e *element) bool {
			return e.is("", "presence") && e.attr("from") == occ(nick) && e.attr("type") == ""
		}
	}

	// alice (node 1) creates the room: node 1 claims it. It is made
	// persistent, named, and given a subject.
	if p := joinRoom(alice, occ("Alice"), ""); p.attr("type") == "error" || !slices.Contains(mucCodes(p), "201") {
		t.Fatalf("creating the room: %s", p)
	}
	if r := ownerSubmit(alice, room, "<field var='muc#roomconfig_persistentroom'><value>1</value></field>"+
		"<field var='muc#roomconfig_roomname'><value>Cluster Hall</value></field>"); r.attr("type") != "result" {
		t.Fatalf("configuring: %s", r)
	}
	alice.send("<message type='groupchat' to='" + room + "'><subject>Across nodes</subject></message>")
	isSubject := func(e *element) bool {
		return e.is("", "message") && e.child("", "subject") != nil && e.child("", "subject").Text == "Across nodes"
	}
	alice.expect("subject", isSubject)

	// bob (node 2) joins through his node, which passes it to node 1.
	if p := joinRoom(bob, occ("Bob"), ""); p.attr("type") == "error" {
		t.Fatalf("bob joining: %s", p)
	}
	bob.expect("alice's presence in the room", isOccupant("Alice"))
	bob.expect("subject", isSubject)
	alice.expect("bob's presence in the room", isOccupant("Bob"))

	// Said before carol came: she gets it as history.
	alice.send("<message type='groupchat' to='" + room + "' id='g1'><body>before carol</body></message>")
	alice.expect("her own message back", isGroupchat(occ("Alice"), "before carol"))
	bob.expect("alice's message", isGroupchat(occ("Alice"), "before carol"))

	if p := joinRoom(carol, occ("Carol"), ""); p.attr("type") == "error" {
		t.Fatalf("carol joining: %s", p)
	}
	carol.expect("alice's presence", isOccupant("Alice"))
	carol.expect("bob's presence", isOccupant("Bob"))
	h := carol.expect("history", isGroupchat(occ("Alice"), "before carol"))
	if h.child("urn:xmpp:delay", "delay") == nil {
		t.Fatalf("history without a delay: %s", h)
	}
	carol.expect("subject", isSubject)
	alice.expect("carol's presence", isOccupant("Carol"))
	bob.expect("carol's presence", isOccupant("Carol"))

	// Everyone's groupchat message reaches everyone, whichever node.
	for _, s := range []struct {
		c    *client
		nick string
	}{{alice, "Alice"}, {bob, "Bob"}, {carol, "Carol"}} {
		body := "hello from " + s.nick
		s.c.send("<message type='groupchat' to='" + room + "'><body>" + body + "</body></message>")
		for _, r := range []*client{alice, bob, carol} {
			r.expect(s.nick+"'s message", isGroupchat(occ(s.nick), body))
		}
	}

	// A private message from bob (node 2) to carol (node 3), through the
	// room on node 1.
	bob.send("<message type='chat' to='" + occ("Carol") + "'><body>psst</body><x xmlns='" + nsMUCUser + "'/></message>")
	if m := carol.expect("bob's private message", func(e *element) bool {
		return e.is("", "message") && e.attr("from") == occ("Bob") && e.attr("type") == "chat"
	}); bodyOf(m) != "psst" {
		t.Fatalf("carol got %s", m)
	}

	// The service's room list, asked of node 2, which is home of neither
	// room: each listed as its home has it (XEP-0045 §6.3).
	const lobby = "lobby@" + mucDomain
	if p := joinRoom(carol, lobby+"/Carol", ""); p.attr("type") == "error" {
		t.Fatalf("carol creating a room on node 3: %s", p)
	}
	if r := ownerSubmit(carol, lobby, "<field var='muc#roomconfig_roomname'><value>Lobby</value></field>"); r.attr("type") != "result" {
		t.Fatalf("configuring the lobby: %s", r)
	}
	list := bob.iq("<iq type='get' to='" + mucDomain + "'><query xmlns='" + nsDiscoIt + "'/></iq>")
	var listed []string
	for _, it := range list.child(nsDiscoIt, "query").children(nsDiscoIt, "item") {
		listed = append(listed, it.attr("jid")+" "+it.attr("name"))
	}
	if want := []string{room + " Cluster Hall", lobby + " Lobby"}; !slices.Equal(listed, want) {
		t.Fatalf("node 2's room list: %q, want %q", listed, want)
	}

	// The room's archive (XEP-0313), asked from node 3.
	wantArchived := func(c *client, what string) {
		t.Helper()
		p := c.mamTo(room, waitTimeout, "")
		for _, want := range []string{"before carol", "hello from Alice", "hello from Bob", "hello from Carol"} {
			if !slices.Contains(p.bodies, want) {
				t.Fatalf("%s: the room's archive has %q, want %q among them (reply %s)", what, p.bodies, want, p.reply)
			}
		}
	}
	wantArchived(carol, "MAM on the room from another node")

	// The room's disco from node 3.
	info := carol.iq("<iq type='get' to='" + room + "'><query xmlns='" + nsDiscoInfo + "'/></iq>")
	if s := info.String(); info.attr("type") != "result" || !strings.Contains(s, "Cluster Hall") || !strings.Contains(s, "muc_persistent") {
		t.Fatalf("disco#info of the room from another node: %s", s)
	}

	// A stanza for an occupant that is not there gets its error from the
	// room, on the sender's node.
	r := carol.iq("<iq type='get' to='" + occ("Nobody") + "'><query xmlns='jabber:iq:version'/></iq>")
	if _, c := r.stanzaError(); c != "item-not-found" {
		t.Fatalf("an IQ to a missing occupant: %s", r)
	}

	// The room's node dies. Until the lease runs out, a stanza for the
	// room gets <recipient-unavailable/> at once (NATS has no responder
	// for the dead node); then the next node to need the room takes it
	// over, without its occupants.
	nodes[0].kill(t)
	nodes[0].awaitGoneFromNATS(t, nats, "koi1")
	bob.send(`<message to='` + room + `' type='groupchat' id='lost1'><body>into the void</body></message>`)
	// NATS's no-responders answer is asynchronous; on a loaded machine
	// (CI runs the e2e tests in parallel) it has taken more than 5 s.
	e, ok := bob.await(15*time.Second, func(e *element) bool {
		return e.is("", "message") && e.attr("id") == "lost1"
	})
	if !ok {
		t.Fatal("no error within 15 s for a message to the dead node's room")
	}
	if e.attr("type") != "error" {
		t.Fatalf("a message to the dead node's room: %s, want an error", e)
	} else if _, c := e.stanzaError(); c != "recipient-unavailable" {
		t.Fatalf("a message to the dead node's room: %s, want recipient-unavailable", e)
	}
	selfPing := func(c *client, nick string) string {
		t.Helper()
		deadline := time.Now().Add(8 * 2 * time.Second) // eight leases
		for time.Now().Before(deadline) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			r, err := c.iqCtx(ctx, "<iq type='get' to='"+occ(nick)+"'><ping xmlns='urn:xmpp:ping'/></iq>")
			cancel()
			if err != nil {
				continue // no answer: the dead node's lease has not run out
			}
			_, cond := r.stanzaError()
			if r.attr("type") == "result" || cond == "recipient-unavailable" {
				time.Sleep(500 * time.Millisecond)
				continue
			}
			return cond
		}
		t.Fatalf("%s: no self-ping error within eight leases of the room's node's death", nick)
		return ""
	}
	if c := selfPing(bob, "Bob"); c != "not-acceptable" {
		t.Fatalf("bob's self-ping after the room's node died: %s, want not-acceptable (not joined)", c)
	}
	if c := selfPing(carol, "Carol"); c != "not-acceptable" {
		t.Fatalf("carol's self-ping after the room's node died: %s, want not-acceptable (not joined)", c)
	}

	// They rejoin, and alice comes back on node 3: the room has its name,
	// subject and owner from the store.
	// A node that has not yet learnt of the takeover still answers a join
	// with a wait error that says to try again (<recipient-unavailable/>),
	// as a client would.
	rejoin := func(c *client, nick string) *element {
		t.Helper()
		deadline := time.Now().Add(8 * 2 * time.Second) // eight leases
		for {
			p := joinRoom(c, occ(nick), "")
			typ, cond := p.stanzaError()
			if p.attr("type") != "error" || typ != "wait" || cond != "recipient-unavailable" || time.Now().After(deadline) {
				return p
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	if p := rejoin(bob, "Bob"); p.attr("type") == "error" || slices.Contains(mucCodes(p), "201") {
		t.Fatalf("bob rejoining: %s", p)
	}
	bob.expect("the subject from the store", isSubject)
	if p := rejoin(carol, "Carol"); p.attr("type") == "error" {
		t.Fatalf("carol rejoining: %s", p)
	}
	carol.expect("bob's presence after the takeover", isOccupant("Bob"))
	carol.expect("the subject from the store", isSubject)
	bob.expect("carol's presence after the takeover", isOccupant("Carol"))
	alice = nodes[2].login(t, "alice@localhost/pc2", pw)
	alice.send(`<presence/>`)
	p := joinRoom(alice, occ("Alice"), "")
	if p.attr("type") == "error" || mucItem(p).attr("affiliation") != "owner" {
		t.Fatalf("alice rejoining her room: %s", p)
	}
	info = bob.iq("<iq type='get' to='" + room + "'><query xmlns='" + nsDiscoInfo + "'/></iq>")
	if s := info.String(); !strings.Contains(s, "Cluster Hall") || !strings.Contains(s, "muc_persistent") {
		t.Fatalf("disco#info after the takeover: %s", s)
	}
	wantArchived(carol, "MAM on the room after the takeover")
	carol.send("<message type='groupchat' to='" + room + "'><body>still here</body></message>")
	for _, r := range []*client{alice, bob, carol} {
		r.expect("a message after the takeover", isGroupchat(occ("Carol"), "still here"))
	}

	// Now node 3, with carol and alice, dies. The room (on bob's node 2,
	// which took it over) is quiet, and yet, once the dead node's lease
	// runs out, it lets bob know they left (status 333): nothing else
	// would ever tell it.
	nodes[2].kill(t)
	isGone := func(nick string) func(*element) bool {
		return func(e *element) bool {
			return e.is("", "presence") && e.attr("from") == occ(nick) && e.attr("type") == "unavailable" &&
				slices.Contains(mucCodes(e), "333")
		}
	}
	for _, nick := range []string{"Carol", "Alice"} {
		if _, ok := bob.await(8*2*time.Second, isGone(nick)); !ok {
			t.Fatalf("%s, whose node died, is still in the room eight leases later", nick)
		}
	}
	bob.send("<message type='groupchat' to='" + room + "'><body>alone</body></message>")
	bob.expect("his own message, the only occupant", isGroupchat(occ("Bob"), "alone"))
}

// TestClusterMUCGracefulStop: a room's node that stops gives its rooms up
// before it tells their occupants it is going away (status 332), so that
// an occupant on another node that rejoins at once finds the room on a
// node that stays, with its configuration and subject.
func TestClusterMUCGracefulStop(t *testing.T) {
	t.Parallel()
	nats := natsURL(t)
	pg := mixPostgres(t)
	nodes := startClusterNodes(t, 2, pg, nats)
	const pw = "pw-cluster-muc-stop"
	for _, u := range []string{"alice", "bob"} {
		nodes[0].addUser(t, u+"@localhost", pw)
	}
	alice := nodes[0].login(t, "alice@localhost/pc", pw)
	bob := nodes[1].login(t, "bob@localhost/phone", pw)
	for _, c := range []*client{alice, bob} {
		c.send(`<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>`)
		c.expect("roster", func(e *element) bool { return e.is("", "iq") && e.attr("id") == "r1" })
		c.send(`<presence/>`)
	}
	const room = "porch@" + mucDomain
	joinRoom(alice, room+"/Alice", "")
	if r := ownerSubmit(alice, room, "<field var='muc#roomconfig_persistentroom'><value>1</value></field>"); r.attr("type") != "result" {
		t.Fatalf("configuring: %s", r)
	}
	alice.send("<message type='groupchat' to='" + room + "'><subject>Kept</subject></message>")
	isSubject := func(e *element) bool {
		return e.is("", "message") && e.child("", "subject") != nil && e.child("", "subject").Text == "Kept"
	}
	alice.expect("subject", isSubject)
	if p := joinRoom(bob, room+"/Bob", ""); p.attr("type") == "error" {
		t.Fatalf("bob joining: %s", p)
	}
	bob.expect("subject", isSubject)

	// Node 1 (the room's) stops; bob hears the service is going away and
	// rejoins at once, as clients do.
	nodes[0].stopped = true
	if err := nodes[0].cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	bob.expect("the service going away (332)", func(e *element) bool {
		return e.is("", "presence") && e.attr("from") == room+"/Bob" && e.attr("type") == "unavailable" &&
			slices.Contains(mucCodes(e), "332")
	})
	var p *element
	for i := 0; ; i++ {
		// A join that reached the stopping node in the moment before
		// bob's node saw the release gets a wait error: retry.
		if p = joinRoom(bob, room+"/Bob", ""); p.attr("type") != "error" || i == 10 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if p.attr("type") == "error" {
		t.Fatalf("bob rejoining: %s", p)
	}
	bob.expect("the subject from the store", isSubject)
	// Once node 1 is gone, bob is still in the room: it is on node 2.
	<-nodes[0].exited
	if nodes[0].waitErr != nil {
		t.Errorf("node 1 exited after SIGTERM with %v", nodes[0].waitErr)
	}
	bob.send("<message type='groupchat' to='" + room + "'><body>on node 2</body></message>")
	bob.expect("his message back from the room on node 2", isGroupchat(room+"/Bob", "on node 2"))
	if c := bob.iq("<iq type='get' to='" + room + "/Bob'><ping xmlns='urn:xmpp:ping'/></iq>"); c.attr("type") != "result" {
		t.Fatalf("bob's self-ping after node 1 left: %s", c)
	}
}
