package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestIdleWaitTLSBuffered: an idle session waits for its socket to become
// readable, but crypto/tls may already hold the client's next bytes while
// the socket is quiet. Two pings in one TLS record, the first ending
// exactly where koi's 4 KiB read buffer does: the second stays inside
// crypto/tls after the first is read, and must be answered at once, not
// when more bytes (or the idle timeout) come.
func TestIdleWaitTLSBuffered(t *testing.T) {
	t.Parallel()
	srv := startServer(t, defaultOptions())
	const pw = "pw-idle"
	srv.addUser(t, "ida@localhost", pw)
	cfg := srv.tlsConfig(t, "localhost")
	// One record for the whole write: without dynamic sizing the client
	// does not cut it into segment-sized records.
	cfg.DynamicRecordSizingDisabled = true

	for _, first := range []int{4096, 4095, 4097} {
		r := dialRaw(t, srv.c2s, nil)
		r.login("localhost", cfg, "ida", pw, "idle")
		// Let the session go idle, its read buffer given back.
		time.Sleep(100 * time.Millisecond)
		ping := func(id string) string {
			return "<iq type='get' id='" + id + "' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"
		}
		p1 := ping("p1")
		// Whitespace before the first ping brings it to the wanted size.
		r.send(strings.Repeat(" ", first-len(p1)) + p1 + ping("p2"))
		for _, id := range []string{"p1", "p2"} {
			el, err := r.next(10 * time.Second)
			if err != nil {
				t.Fatalf("first ping of %d bytes: waiting for the answer to %s: %v", first, id, err)
			}
			if el.attr("id") != id || el.attr("type") != "result" {
				t.Fatalf("first ping of %d bytes: got %s, want the result of %s", first, el, id)
			}
		}
		r.nc.Close()
	}
}
