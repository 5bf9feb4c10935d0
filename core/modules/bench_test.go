package modules

import (
	"bytes"
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/xmlstream"
)

// wireConn serialises what it is given, as the c2s writer does, and
// throws the bytes away.
type wireConn struct {
	buf []byte
	n   atomic.Int64
}

func (c *wireConn) Send(el *xmlstream.Element) bool {
	c.buf = el.AppendXML(c.buf[:0], xmlstream.NSClient)
	c.n.Add(1)
	return true
}

func (c *wireConn) Close(string, string) {}

// BenchmarkParseAndRouteMessage measures the hot path of a chat message
// between two online users: parse the stanza off the stream, stamp it,
// route it, serialise it for the recipient. No backend is touched.
func BenchmarkParseAndRouteMessage(b *testing.B) {
	routeMessages(b, newEnv(b))
}

// routeMessages times b.N chat messages from alice to bob, both online on
// e, each parsed off one stream, stamped and routed, and checks that bob
// got them all.
func routeMessages(b *testing.B, e *env) {
	ac := &wireConn{}
	bc := &wireConn{}
	alice, _ := e.r.Bind(jid.MustParse("alice@example.com/pc"), ac)
	bob, _ := e.r.Bind(jid.MustParse("bob@example.com/phone"), bc)
	bob.SetPresence(xmlstream.NewElement(xmlstream.NSClient, "presence"), 0)
	msg := `<message to='bob@example.com' type='chat' id='a1b2c3d4'><body>` + strings.Repeat("hello bob, ", 25) +
		`</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`
	stream := []byte("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>")
	body := bytes.Repeat([]byte(msg), b.N)
	r := xmlstream.NewReader(bytes.NewReader(append(stream, body...)), xmlstream.Limits{})
	if _, err := r.ReadHeader(); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	from := alice.JID().String()
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		el, err := r.Next()
		if err != nil {
			b.Fatal(err)
		}
		el.SetAttr("from", from)
		e.m.Stanza(ctx, alice, el)
	}
	b.StopTimer()
	if got := bc.n.Load(); got != int64(b.N) {
		b.Fatalf("delivered %d of %d", got, b.N)
	}
}
