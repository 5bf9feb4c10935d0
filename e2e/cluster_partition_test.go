package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/koi-im/koi/internal/tcpproxy"
)

// TestClusterForwardToCutOffNode: node 2 reaches NATS through a proxy that
// then freezes, so node 2 is cut off but its NATS connection stays open
// and the NATS server keeps taking stanzas for it without "no responders".
// Messages node 1 forwards to node 2's user meanwhile, to his full JID and
// to his bare one, are not lost: node 2 never acknowledges them, and when
// its lease runs out node 1 handles them as undelivered, so the user finds
// every one, in order, as an offline message when he logs in on node 1.
func TestClusterForwardToCutOffNode(t *testing.T) {
	t.Parallel()
	natsU := natsURL(t)
	// The proxy freezes as a partition does: no byte either way, and
	// neither end sees a close, so the NATS server goes on writing to
	// node 2 until its ping timeout, minutes later.
	px, err := tcpproxy.New(strings.TrimPrefix(natsU, "nats://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(px.Close)
	nodes := startClusterNodesVia(t, mixPostgres(t), []string{natsU, "nats://" + px.Addr()})
	// Before the nodes stop: node 2's shutdown needs NATS.
	t.Cleanup(px.Thaw)
	const pw = "pw-cut"
	alice := alicePCAndBobPhone(t, nodes, pw)

	px.Freeze()
	cut := time.Now()
	var want []string
	for i := range 4 {
		to := "bob@localhost/phone"
		if i%2 == 1 {
			to = "bob@localhost"
		}
		body := fmt.Sprintf("during %d", i)
		want = append(want, body)
		alice.send(fmt.Sprintf(`<message to='%s' type='chat' id='c%d'><body>%s</body></message>`, to, i, body))
	}
	// A round trip: node 1 handled alice's messages.
	alice.send(`<iq type='get' id='ping'><ping xmlns='urn:xmpp:ping'/></iq>`)
	alice.expect("ping result", func(e *element) bool { return e.is("", "iq") && e.attr("id") == "ping" })
	// Node 1's metrics show the partition: forwards unanswered, then
	// handed back when node 2's lease runs out.
	if m := scrapeMetrics(t, nodes[0].metrics); m["koi_cluster_forwards_unacknowledged"] < 4 || m["koi_cluster_nodes_alive"] != 1 {
		t.Errorf("during the partition: %v forwards unacknowledged (want 4 or more), %v nodes alive (want 1)",
			m["koi_cluster_forwards_unacknowledged"], m["koi_cluster_nodes_alive"])
	}

	// Node 1 reaps node 2 a lease (2 s) and a beat after its last
	// heartbeat; bob, his phone's stream still open on node 2, logs in on
	// node 1.
	time.Sleep(time.Until(cut.Add(3 * time.Second)))
	waitMetricAtLeast(t, nodes[0].metrics, "koi_cluster_forwards_handed_back_total", 4)
	waitMetric(t, nodes[0].metrics, "koi_cluster_nodes_alive", 0)
	bob2 := nodes[0].login(t, "bob@localhost/tablet", pw)
	bob2.send(`<presence/>`)
	for i, w := range want {
		m := bob2.expect("offline message "+w, isMessageFrom("alice@localhost/pc"))
		if i == 0 && bodyOf(m) == "before" {
			t.Log("the first message came again: its acknowledgement was late")
			m = bob2.expect("offline message "+w, isMessageFrom("alice@localhost/pc"))
		}
		if bodyOf(m) != w {
			t.Fatalf("offline message %d: %s, want body %q", i, m, w)
		}
	}
}
