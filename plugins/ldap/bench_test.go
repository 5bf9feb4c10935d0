package ldapbackend

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/koi-im/koi/internal/testsvc"
)

// BenchmarkCheckPassword measures password checks (a search as the service
// account, then a bind as the user, over LDAPS) from 50 concurrent callers
// against slapd, and reports checks per second with p50 and p99 latency.
//
//	go test ./plugins/ldap -run '^$' -bench CheckPassword -benchtime 5000x
func BenchmarkCheckPassword(b *testing.B) {
	const workers = 50
	s := slapdSettings(b)
	s.RequiredGroup, s.GroupMembership = "cn=bulk,"+testsvc.SlapdGroups, MembershipMemberOf
	d := open(b, s)
	ctx := ctxT(b)
	var next atomic.Int64
	lat := make([]time.Duration, b.N)
	var wg sync.WaitGroup
	var failed atomic.Int64
	b.ResetTimer()
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			user := fmt.Sprintf("bulk%04d", w)
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				t0 := time.Now()
				ok, err := d.CheckPassword(ctx, "localhost", user, testsvc.SlapdBulkPW)
				lat[i] = time.Since(t0)
				if !ok || err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d checks failed", n, b.N)
	}
	reportLatency(b, lat, el)
}

func reportLatency(b *testing.B, lat []time.Duration, el time.Duration) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(len(lat))/el.Seconds(), "checks/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
