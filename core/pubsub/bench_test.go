package pubsub

import (
	"context"
	"fmt"
	"testing"

	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/router/routertest"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
)

// BenchmarkPEPFanout publishes one PEP item of an account with 500
// online contacts, each asking for the node's notifications through caps:
// the fan-out path of XEP-0163 §4.3 (roster from memory, caps lookups,
// access model, one event per session). It reports notifications/s; the
// nodes are in the memory store, so storage is not what is measured.
func BenchmarkPEPFanout(b *testing.B) {
	const contacts = 500
	e := newEnv(b, DefaultLimits)
	ctx := context.Background()
	for i := range contacts {
		c := fmt.Sprintf("c%03d@example.com", i)
		if _, err := e.st.SetItem(ctx, "alice@example.com", sdk.RosterItem{JID: c, Subscription: sdk.SubBoth}); err != nil {
			b.Fatal(err)
		}
	}
	alice := e.login("alice@example.com/pc")
	alice.online()
	recs := make([]*routertest.Recorder, contacts)
	for i := range contacts {
		c := e.login(fmt.Sprintf("c%03d@example.com/phone", i))
		c.online(NSAvatarMeta + "+notify")
		recs[i] = c.rec
	}
	for _, r := range recs {
		r.Take()
	}
	// The recorders re-parse every stanza as a client would; that is the
	// client's cost, not the server's, so a discarding connection stands
	// in for them while measuring.
	for i := range contacts {
		s := e.r.Session(jid.MustParse(fmt.Sprintf("c%03d@example.com/phone", i)))
		s.SetConn(discard{})
	}
	pub := publishMeta("h")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		alice.ok(pub)
	}
	b.StopTimer()
	b.ReportMetric(float64(contacts*b.N)/b.Elapsed().Seconds(), "notifications/s")
}

// discard is a connection that drops what it is sent, after serialising
// it as a real connection would.
type discard struct{}

func (discard) Send(el *xmlstream.Element) bool { _ = el.String(); return true }
func (discard) Close(string, string)            {}

var _ router.Conn = discard{}
