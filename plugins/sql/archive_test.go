package sqlbackend

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/koi-im/koi/sdk"
)

func benchMsgs(owner string, from, n int) []sdk.ArchivedMessage {
	msgs := make([]sdk.ArchivedMessage, n)
	for i := range msgs {
		k := from + i
		msgs[i] = sdk.ArchivedMessage{
			Owner: owner, StanzaID: fmt.Sprintf("%016d", k), Peer: "peer" + strconv.Itoa(k%20) + "@example.com",
			Stamp: time.UnixMilli(1_700_000_000_000 + int64(k)).UTC(), Outgoing: k%2 == 0,
			Stanza: "<message xmlns='jabber:client' from='alice@example.com/pc' to='bob@example.com' type='chat' id='a1b2c3d4'><body>" +
				"hello bob, hello bob, hello bob, hello bob, hello bob, hello bob, hello bob, hello bob, hello bob</body></message>",
			Body: "hello bob, hello bob, hello bob, hello bob, hello bob, hello bob, hello bob, hello bob, hello bob",
		}
	}
	return msgs
}

// BenchmarkArchiveAppend is the plugin side of archive writes: batches of
// 256 messages into the store, without the gRPC transport.
func BenchmarkArchiveAppend(b *testing.B) {
	for _, driver := range testDrivers() {
		b.Run(driver, func(b *testing.B) {
			s := openOn(b, testSettings(b, driver))
			const batch = 256
			n := 0
			b.ResetTimer()
			for b.Loop() {
				if err := s.AppendArchive(b.Context(), benchMsgs("u"+strconv.Itoa(n%50)+"@example.com", n, batch)); err != nil {
					b.Fatal(err)
				}
				n += batch
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/msg")
		})
	}
}
