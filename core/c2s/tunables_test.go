package c2s

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/xmlstream"
)

// TestSetTunables: a new connection reads under the stanza size limit
// current when it opens, not the one the server started with.
func TestSetTunables(t *testing.T) {
	srv := New(Config{
		Host:   func(d string) Host { return fakeHost{} },
		Router: router.New(),
		Limits: xmlstream.Limits{MaxStanzaBytes: 1 << 20, MaxDepth: 64},
	})
	send := func() string {
		a, b := net.Pipe()
		defer b.Close()
		go srv.ServeConn(a, ConnOptions{})
		b.SetDeadline(time.Now().Add(5 * time.Second))
		go func() {
			io.WriteString(b, "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>")
			io.WriteString(b, "<iq type='get' id='1'><query xmlns='jabber:iq:version'>"+strings.Repeat("x", 4096)+"</query></iq>")
		}()
		var got strings.Builder
		buf := make([]byte, 4096)
		for !strings.Contains(got.String(), "</stream:stream>") {
			n, err := b.Read(buf)
			if err != nil {
				break
			}
			got.Write(buf[:n])
		}
		return got.String()
	}
	srv.SetTunables(Tunables{Limits: xmlstream.Limits{MaxStanzaBytes: 1024, MaxDepth: 64}})
	if got := send(); !strings.Contains(got, "policy-violation") {
		t.Fatalf("a 4 KiB stanza under a 1 KiB limit set by SetTunables: %s", got)
	}
	if q := srv.tun().SendQueue; q != 1024 {
		t.Fatalf("send queue %d, want the default 1024", q)
	}
}
