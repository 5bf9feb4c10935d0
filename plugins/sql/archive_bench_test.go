package sqlbackend

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/koi-im/koi/sdk"
)

// BenchmarkStoreRate measures the archive's store path as the plugin runs
// it for the core's writer: AppendArchive of one full batch (256 messages,
// the writer's default) and of a full group commit (4,096: the batches in
// flight that the plugin stores together), each message stored for both
// parties of a conversation among 1,000 users, as a bench of 500 pairs
// makes them. It reports rows per second and microseconds per row, on each
// database, and the process's CPU time per row (user and system, the test
// included but not the database server), which other work on a shared
// machine disturbs less than the elapsed time.
//
// The plain runs take the users in turn (message k between users k and
// k+1 mod 1,000), so a batch holds neighbouring owners, whose index
// entries are neighbours too. The mixed runs hop between the 500 pairs
// as the messages of a real bench arrive, each batch spread over the
// whole archive; they cost more per row. Neither is the bench's own
// order: the bench row (scripts/bench-archive.sh sql) costs the SQLite
// plugin about 7.7 µs of CPU a row, less than either shape here, so a
// change measured here must be confirmed on the bench row.
func BenchmarkStoreRate(b *testing.B) {
	for _, driver := range testDrivers() {
		for _, batch := range []int{256, 4096, 16384} {
			b.Run(fmt.Sprintf("%s/%d", driver, batch), func(b *testing.B) { benchStoreRate(b, driver, batch, false) })
			b.Run(fmt.Sprintf("%s/%d/mixed", driver, batch), func(b *testing.B) { benchStoreRate(b, driver, batch, true) })
		}
	}
}

func benchStoreRate(b *testing.B, driver string, batch int, mixed bool) {
	s := openOn(b, testSettings(b, driver))
	ctx := context.Background()
	msgs := make([]sdk.ArchivedMessage, batch)
	var n int
	next := func() {
		for i := range msgs {
			k := n + i
			owner, peer := fmt.Sprintf("user%04d@localhost", k%1000), fmt.Sprintf("user%04d@localhost", (k+1)%1000)
			swap := k%2 == 1
			if mixed {
				// 389 is prime to 500: consecutive messages belong to
				// pairs far apart, and every pair has its turn, each
				// party as the owner every other round.
				p := k * 389 % 500
				owner, peer = fmt.Sprintf("user%04d@localhost", 2*p), fmt.Sprintf("user%04d@localhost", 2*p+1)
				swap = k/500%2 == 1
			}
			if swap {
				owner, peer = peer, owner
			}
			msgs[i] = sdk.ArchivedMessage{Owner: owner, StanzaID: fmt.Sprintf("%016x", k), Peer: peer,
				PeerResource: "bench", Stamp: time.Now(), Outgoing: k%2 == 0,
				Stanza: fmt.Sprintf(`<message to="%s/bench" type="chat" id="m%d"><body>message %d</body></message>`, peer, k, k),
				Body:   fmt.Sprintf("message %d", k)}
		}
		n += batch
	}
	var spent, cpu time.Duration
	for b.Loop() {
		next()
		start, cpu0 := time.Now(), processCPU(b)
		if err := s.AppendArchive(ctx, msgs); err != nil {
			b.Fatal(err)
		}
		spent += time.Since(start)
		cpu += processCPU(b) - cpu0
	}
	rows := float64(b.N * batch)
	b.ReportMetric(rows/spent.Seconds(), "rows/s")
	b.ReportMetric(float64(spent.Microseconds())/rows, "µs/row")
	b.ReportMetric(float64(cpu.Microseconds())/rows, "cpu-µs/row")
}

// processCPU is the user and system CPU time the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
