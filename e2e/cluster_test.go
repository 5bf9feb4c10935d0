package e2e

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/koi-im/koi/e2e/internal/koiproc"
	"github.com/nats-io/nats.go"
)

// natsURL is the NATS (with JetStream) the cluster tests use.
func natsURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("KOI_TEST_NATS_URL")
	if u == "" {
		u = "nats://127.0.0.1:4222"
	}
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(u, "nats://"), 2*time.Second)
	if err != nil {
		mixUnreachable(t, "NATS at "+u+" (nats-server -js; set KOI_TEST_NATS_URL)", err)
	}
	c.Close()
	return u
}

// clusterNode is one koi of a test cluster.
type clusterNode struct {
	*server
	env     []string
	metrics string // the node's Prometheus endpoint
}

// startClusterNodes starts n koi nodes of examples/cluster on the test's
// addresses, sharing the PostgreSQL schema pg and a cluster name of their
// own on NATS (so parallel tests do not meet).
func startClusterNodes(t *testing.T, n int, pg *mixDB, nats string) []*clusterNode {
	t.Helper()
	urls := make([]string, n)
	for i := range urls {
		urls[i] = nats
	}
	return startClusterNodesVia(t, pg, urls)
}

// startClusterNodesVia starts a node of examples/cluster for each NATS
// URL, the first as koi1, and so on.
func startClusterNodesVia(t *testing.T, pg *mixDB, urls []string) []*clusterNode {
	t.Helper()
	name := "t" + newID()
	var nodes []*clusterNode
	for i := 1; i <= len(urls); i++ {
		nats := urls[i-1]
		path, err := filepath.Abs(filepath.Join("..", "examples", "cluster", "koi"+strconv.Itoa(i)+".hcl"))
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		c2s, c2sTLS, metrics := freeAddr(t), freeAddr(t), freeAddr(t)
		env := []string{
			"KOI_METRICS__ADDRESS=" + metrics,
			"KOI_LOG__LEVEL=debug",
			"KOI_LISTEN__C2S__ADDRESS=" + c2s,
			"KOI_LISTEN__C2S_TLS__ADDRESS=" + c2sTLS,
			"KOI_TLS__CERT_FILE=" + filepath.Join(dir, "tls", "cert.pem"),
			"KOI_TLS__KEY_FILE=" + filepath.Join(dir, "tls", "key.pem"),
			"KOI_SERVER__DATA_DIR=" + filepath.Join(dir, "data"),
			"KOI_SERVER__SHUTDOWN_TIMEOUT=5s",
			"KOI_PLUGIN__STORE__COMMAND=" + pluginBin(),
			"KOI_PLUGIN__STORE__CONFIG__DSN=" + pg.dsn,
			"KOI_PLUGIN__STORE__CONFIG__SCHEMA=" + pg.schema,
			"KOI_LIMITS__AUTH_FAILURES_PER_IP=0",
			"KOI_LIMITS__CONNECTIONS_PER_IP=0",
			"KOI_LIMITS__LOGINS_PER_IP=0",
			"KOI_CLUSTER__NATS_URL=" + nats,
			"KOI_CLUSTER__NAME=" + name,
			"KOI_CLUSTER__LEASE=2s",
		}
		nodes = append(nodes, &clusterNode{launch(t, dir, path, c2s, c2sTLS, options{}, env), env, "http://" + metrics + "/metrics"})
	}
	return nodes
}

// addUser creates an account through koictl on the node's config.
func (n *clusterNode) addUser(t *testing.T, jid, pw string) {
	t.Helper()
	cmd := koictlCmd(n.config, n.env, "user", "add", jid, pw)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("koictl user add %s: %v\n%s", jid, err, out)
	}
}

func (n *clusterNode) login(t *testing.T, full, pw string) *client {
	t.Helper()
	return login(t, dialOpts{addr: n.c2s, tls: n.tlsConfig(t, "localhost")}, full, pw)
}

// kill ends the node at once, as a crash would.
func (n *clusterNode) kill(t *testing.T) {
	t.Helper()
	n.stopped = true
	n.cmd.Process.Kill()
	<-n.exited
}

// awaitGoneFromNATS waits until the NATS server has dropped the
// subscription of the killed node named node: a forward published before
// that reaches the dead connection, gets no "no responders" answer and is
// handed back only when the node's lease runs out, so a test of the
// answer at once must start after it. On a loaded machine the server has
// taken seconds.
func (n *clusterNode) awaitGoneFromNATS(t *testing.T, natsURL, node string) {
	t.Helper()
	var cluster string
	for _, e := range n.env {
		if v, ok := strings.CutPrefix(e, "KOI_CLUSTER__NAME="); ok {
			cluster = v
		}
	}
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatalf("NATS: %v", err)
	}
	defer nc.Close()
	subject := cluster + ".node." + node + ".in"
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		// An empty message is not a stanza: a live node ignores it.
		_, err := nc.Request(subject, nil, 500*time.Millisecond)
		if errors.Is(err, nats.ErrNoResponders) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("NATS still has a subscriber on %s 30 s after the node was killed", subject)
}

// TestCluster runs three nodes: users on different nodes subscribe to each
// other, see each other's presence and exchange messages; a roster change
// made on one node is seen by another; a message for a user on no node is
// stored offline; and a killed node's user goes unavailable for contacts
// on the other nodes within the lease.
func TestCluster(t *testing.T) {
	t.Parallel()
	nats := natsURL(t)
	pg := mixPostgres(t)
	nodes := startClusterNodes(t, 3, pg, nats)
	const pw = "pw-cluster"
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
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

	// Subscriptions across nodes: alice (node 1) and bob (node 2) subscribe
	// to each other, then carol (node 3) and alice.
	subscribe := func(a, b *client, aBare, bBare string) {
		t.Helper()
		a.send(`<presence to='` + bBare + `' type='subscribe'/>`)
		b.expect("subscription request", func(e *element) bool {
			return e.is("", "presence") && e.attr("type") == "subscribe" && strings.HasPrefix(e.attr("from"), aBare)
		})
		b.send(`<presence to='` + aBare + `' type='subscribed'/>`)
		a.expect("roster push of "+bBare, func(e *element) bool {
			it := e.path("query", "item")
			return isRosterPush(bBare)(e) && (it.attr("subscription") == "to" || it.attr("subscription") == "both")
		})
		a.expect(bBare+"'s presence", func(e *element) bool {
			return e.is("", "presence") && e.attr("type") == "" && strings.HasPrefix(e.attr("from"), bBare+"/")
		})
	}
	subscribe(alice, bob, "alice@localhost", "bob@localhost")
	subscribe(bob, alice, "bob@localhost", "alice@localhost")
	subscribe(alice, carol, "alice@localhost", "carol@localhost")

	// A message between nodes, to the bare JID and to the full JID. Only
	// now: a message to a bare JID goes to the available resources, and
	// bob's initial presence reaches node 1's registry asynchronously (a
	// message sent before it arrives is stored offline, as on one server
	// for a user who has not sent his initial presence yet). alice has
	// seen bob's presence by now, which node 2 sent after recording it.
	alice.send(`<message to='bob@localhost' type='chat' id='m1'><body>hello from node 1</body></message>`)
	if m := bob.expect("alice's message", isMessageFrom("alice@localhost/pc")); bodyOf(m) != "hello from node 1" {
		t.Fatalf("bob got %s", m)
	}
	bob.send(`<message to='alice@localhost/pc' type='chat' id='m2'><body>hi from node 2</body></message>`)
	alice.expect("bob's reply", isMessageFrom("bob@localhost/phone"))

	// Presence broadcast goes to contacts on other nodes.
	bob.send(`<presence><show>away</show><status>on node 2</status></presence>`)
	alice.expect("bob's away presence", func(e *element) bool {
		return isPresence("", "bob@localhost/phone")(e) && e.path("status") != nil && e.path("status").Text == "on node 2"
	})

	// A second resource of alice on node 3 shares her roster: a contact
	// added there is pushed to her resource on node 1, and node 1 (which
	// cached her roster) serves the new item.
	alice2 := nodes[2].login(t, "alice@localhost/laptop", pw)
	alice2.send(`<iq type='get' id='r0'><query xmlns='jabber:iq:roster'/></iq>`)
	alice2.send(`<presence/>`)
	alice.expect("her other resource's presence", isPresence("", "alice@localhost/laptop"))
	alice2.send(`<iq type='set' id='add1'><query xmlns='jabber:iq:roster'><item jid='dave@localhost' name='Dave'/></query></iq>`)
	alice2.expect("roster set result", func(e *element) bool { return e.attr("id") == "add1" && e.attr("type") == "result" })
	alice.expect("roster push from another node", isRosterPush("dave@localhost"))
	alice.send(`<iq type='get' id='r2'><query xmlns='jabber:iq:roster'/></iq>`)
	r := alice.expect("roster", func(e *element) bool { return e.attr("id") == "r2" })
	found := false
	for _, it := range r.path("query").Children {
		if it.attr("jid") == "dave@localhost" && it.attr("name") == "Dave" {
			found = true
		}
	}
	if !found {
		t.Fatalf("node 1 serves a stale roster: %s", r)
	}
	// A message to alice's bare JID reaches both nodes' resources
	// (equal priority).
	bob.send(`<message to='alice@localhost' type='chat' id='m3'><body>both</body></message>`)
	alice.expect("message on node 1", isMessageFrom("bob@localhost/phone"))
	alice2.expect("message on node 3", isMessageFrom("bob@localhost/phone"))

	// dave is on no node: his message waits offline, and he gets it on
	// whichever node he logs in to.
	bob.send(`<message to='dave@localhost' type='chat' id='m4'><body>for later</body></message>`)
	time.Sleep(time.Second) // the message is stored by another node, asynchronously
	dave := nodes[2].login(t, "dave@localhost/x", pw)
	dave.send(`<presence/>`)
	if m := dave.expect("offline message", isMessageFrom("bob@localhost/phone")); bodyOf(m) != "for later" {
		t.Fatalf("dave got %s", m)
	}

	// Node 3 dies: carol's contact alice (node 1) hears she is gone, and
	// messages for carol go offline instead of into the dead node.
	nodes[2].kill(t)
	if _, ok := alice.await(4*2*time.Second, isPresence("unavailable", "carol@localhost/tab")); !ok {
		t.Fatal("alice got no unavailable presence for carol within two leases of node 3's death")
	}
	alice.send(`<message to='carol@localhost' type='chat' id='m5'><body>are you there?</body></message>`)
	time.Sleep(time.Second) // the message is stored by another node, asynchronously
	carol2 := nodes[1].login(t, "carol@localhost/tab", pw)
	carol2.send(`<presence/>`)
	if m := carol2.expect("offline message after the node died", isMessageFrom("alice@localhost/pc")); bodyOf(m) != "are you there?" {
		t.Fatalf("carol got %s", m)
	}
}

// koictlCmd is koictl on config with the test's KOI_ overrides.
func koictlCmd(config string, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(koictlBin(), append([]string{"-config", config}, args...)...)
	cmd.Env = append(koiproc.ChildEnv(), env...)
	return cmd
}
