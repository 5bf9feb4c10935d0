package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// pingListener is a c2s listener that pings links silent for a second and
// gives them a second to answer.
const pingListener = `keepalive = "ping"  keepalive_interval = "1s"  ping_timeout = "1s"`

func isServerPing(el *element, jid string) bool {
	return el.is(nsClient, "iq") && el.attr("type") == "get" && el.child(nsPing, "ping") != nil &&
		el.attr("from") == "localhost" && el.attr("to") == jid
}

// TestKeepalivePingSilentClient: in ping mode the server pings a silent
// client; an answer keeps the link, silence after a ping closes it with
// <connection-timeout/>.
func TestKeepalivePingSilentClient(t *testing.T) {
	opt := defaultOptions()
	opt.C2SExtra = pingListener
	s := startServer(t, opt)
	s.addUser(t, "alice@localhost", "pw")
	r := dialRaw(t, s.c2s, nil)
	r.login("localhost", s.tlsConfig(t, "localhost"), "alice", "pw", "silent")

	el := r.mustNext()
	if !isServerPing(el, "alice@localhost/silent") {
		t.Fatalf("want a ping from the server, got %s", el)
	}
	r.send(fmt.Sprintf("<iq type='result' to='localhost' id='%s'/>", el.attr("id")))
	// Answered: after another silent interval, another ping; nothing else
	// (no error for the pong).
	el = r.mustNext()
	if !isServerPing(el, "alice@localhost/silent") {
		t.Fatalf("want a second ping, got %s", el)
	}
	r.expectStreamError("connection-timeout")
	s.waitLog(t, "did not answer a ping")
}

// TestKeepaliveChattyClient: a client pinging the server every 100 ms gets
// every answer, is never pinged itself and stays connected.
func TestKeepaliveChattyClient(t *testing.T) {
	opt := defaultOptions()
	opt.C2SExtra = pingListener
	s := startServer(t, opt)
	s.addUser(t, "bob@localhost", "pw")
	r := dialRaw(t, s.c2s, nil)
	r.login("localhost", s.tlsConfig(t, "localhost"), "bob", "pw", "chatty")
	for i := range 30 {
		id := fmt.Sprintf("c%d", i)
		r.send("<iq type='get' id='" + id + "' to='localhost'><ping xmlns='" + nsPing + "'/></iq>")
		el := r.mustNext()
		if !el.is(nsClient, "iq") || el.attr("type") != "result" || el.attr("id") != id {
			t.Fatalf("ping %d: want its result, got %s", i, el)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if strings.Contains(s.log.String(), "did not answer a ping") {
		t.Fatal("a chatty client was taken for a dead one")
	}
}

// TestKeepaliveWhitespaceOnlyWhenSilent: whitespace keepalives go only to
// a link that was silent for the interval, never to one in use.
func TestKeepaliveWhitespaceOnlyWhenSilent(t *testing.T) {
	opt := defaultOptions()
	opt.C2SExtra = `keepalive_interval = "1s"`
	s := startServer(t, opt)
	s.addUser(t, "carol@localhost", "pw")
	r := dialRaw(t, s.c2s, nil)
	r.login("localhost", s.tlsConfig(t, "localhost"), "carol", "pw", "ws")
	ping := func(id string) {
		t.Helper()
		r.send("<iq type='get' id='" + id + "' to='localhost'><ping xmlns='" + nsPing + "'/></iq>")
		if el := r.mustNext(); el.attr("id") != id || el.attr("type") != "result" {
			t.Fatalf("want the result of %s, got %s", id, el)
		}
	}
	r.spaces = 0
	for i := range 15 {
		ping(fmt.Sprintf("busy%d", i))
		time.Sleep(200 * time.Millisecond)
	}
	if r.spaces != 0 {
		t.Fatalf("%d keepalive spaces on a link in use", r.spaces)
	}
	time.Sleep(2500 * time.Millisecond)
	ping("after-silence")
	if r.spaces == 0 {
		t.Fatal("no whitespace keepalive after 2.5 s of silence with a 1 s interval")
	}
}
