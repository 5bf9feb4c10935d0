package sqlbackend

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/koi-im/koi/sdk"
)

func TestOffline(t *testing.T) { forEachDB(t, testOffline) }

func testOffline(t *testing.T, s *Store) {
	ctx := t.Context()
	const owner = "ann@example.org"
	base := time.Date(2025, 3, 4, 5, 6, 7, 891234000, time.UTC)
	var want []sdk.OfflineMessage
	for i := range 5 {
		m := sdk.OfflineMessage{Stanza: fmt.Sprintf("<message id='m%d'><body>%d ☃</body></message>", i, i), Stamp: base.Add(time.Duration(-i) * time.Minute)}
		if err := s.Store(ctx, owner, m); err != nil {
			t.Fatal(err)
		}
		want = append(want, m)
	}
	if err := s.Store(ctx, "bob@example.org", sdk.OfflineMessage{Stanza: "<message/>", Stamp: base}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Count(ctx, owner); n != 5 || err != nil {
		t.Errorf("Count = %d, %v; want 5", n, err)
	}
	got, err := s.Pop(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("Pop returned %d messages, want %d", len(got), len(want))
	}
	for i := range got {
		// Arrival order, not stamp order; stamps keep microseconds.
		if got[i].Stanza != want[i].Stanza || !got[i].Stamp.Equal(want[i].Stamp) {
			t.Errorf("message %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if n, err := s.Count(ctx, owner); n != 0 || err != nil {
		t.Errorf("Count after Pop = %d, %v", n, err)
	}
	if got, err := s.Pop(ctx, owner); len(got) != 0 || err != nil {
		t.Errorf("second Pop = %v, %v; want nothing", got, err)
	}
	if n, _ := s.Count(ctx, "bob@example.org"); n != 1 {
		t.Errorf("another owner's queue has %d messages, want 1", n)
	}
	if err := s.DeleteAll(ctx, "bob@example.org"); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Count(ctx, "bob@example.org"); n != 0 {
		t.Errorf("Count after DeleteAll = %d", n)
	}
	if err := s.DeleteAll(ctx, "nobody@example.org"); err != nil {
		t.Errorf("DeleteAll of an empty queue: %v", err)
	}
}

func TestOfflineLargePop(t *testing.T) { forEachDB(t, testOfflineLargePop) }

func testOfflineLargePop(t *testing.T, s *Store) {
	ctx := t.Context()
	const owner, n = "ann@example.org", popChunk*2 + 7
	err := s.write(ctx, "fill", func(tx *sql.Tx) error {
		for i := range n {
			if _, err := tx.ExecContext(ctx, s.q("INSERT INTO koi_offline_messages (owner, stanza, stamp) VALUES (?, ?, 0)"), owner, fmt.Sprint(i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Pop(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range got {
		if m.Stanza != fmt.Sprint(i) {
			t.Fatalf("message %d is %q", i, m.Stanza)
		}
	}
	if len(got) != n {
		t.Errorf("Pop returned %d, want %d", len(got), n)
	}
	if c, _ := s.Count(ctx, owner); c != 0 {
		t.Errorf("%d messages left after Pop", c)
	}
}

// Poppers racing each other and a writer receive every message exactly
// once, each batch in arrival order.
func TestOfflineConcurrentPop(t *testing.T) { forEachDB(t, testOfflineConcurrentPop) }

func testOfflineConcurrentPop(t *testing.T, s *Store) {
	const owner, total, poppers = "ann@example.org", 300, 8
	ctx := context.Background()
	var wg sync.WaitGroup
	done := make(chan struct{})
	results := make([][]int, poppers)
	errs := make(chan error, poppers+1)
	wg.Go(func() {
		defer close(done)
		for i := range total {
			if err := s.Store(ctx, owner, sdk.OfflineMessage{Stanza: fmt.Sprint(i), Stamp: time.Now()}); err != nil {
				errs <- err
				return
			}
		}
	})
	for p := range poppers {
		wg.Go(func() {
			for stop := false; !stop; {
				select {
				case <-done:
					stop = true // one last Pop after the writer finished
				default:
				}
				msgs, err := s.Pop(ctx, owner)
				if err != nil {
					errs <- err
					return
				}
				last := -1
				for _, m := range msgs {
					var i int
					fmt.Sscan(m.Stanza, &i)
					if i <= last {
						errs <- fmt.Errorf("popper %d: message %d after %d", p, i, last)
					}
					last = i
					results[p] = append(results[p], i)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	count := make([]int, total)
	for _, r := range results {
		for _, i := range r {
			count[i]++
		}
	}
	for i, c := range count {
		if c != 1 {
			t.Errorf("message %d delivered %d times", i, c)
		}
	}
}

func TestOfflineInvalid(t *testing.T) { forEachDB(t, testOfflineInvalid) }

func testOfflineInvalid(t *testing.T, s *Store) {
	ctx := t.Context()
	wantErr(t, "Store empty owner", s.Store(ctx, "", sdk.OfflineMessage{Stanza: "<message/>"}), sdk.ErrInvalid)
	wantErr(t, "Store bad stanza", s.Store(ctx, "ann@example.org", sdk.OfflineMessage{Stanza: "\xff"}), sdk.ErrInvalid)
	_, err := s.Count(ctx, "")
	wantErr(t, "Count", err, sdk.ErrInvalid)
	_, err = s.Pop(ctx, "")
	wantErr(t, "Pop", err, sdk.ErrInvalid)
	wantErr(t, "DeleteAll", s.DeleteAll(ctx, ""), sdk.ErrInvalid)
}

// BenchmarkConcurrentWrites is 16 sessions' offline stores and pops at
// once, each a short write transaction: on SQLite, what its single write
// lock costs when many wait for it.
func BenchmarkConcurrentWrites(b *testing.B) {
	for _, driver := range testDrivers() {
		b.Run(driver, func(b *testing.B) {
			s := openOn(b, testSettings(b, driver))
			ctx := context.Background()
			var n, worst atomic.Int64
			b.SetParallelism(8) // 16 goroutines on 2 CPUs
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				owner := fmt.Sprintf("u%d@example.org", n.Add(1))
				for pb.Next() {
					start := time.Now()
					if err := s.Store(ctx, owner, sdk.OfflineMessage{Stanza: "<message/>", Stamp: time.Now()}); err != nil {
						b.Error(err)
						return
					}
					if _, err := s.Pop(ctx, owner); err != nil {
						b.Error(err)
						return
					}
					// The longest store and pop: a writer that loses every
					// turn for the lock shows here.
					d := int64(time.Since(start))
					for w := worst.Load(); d > w && !worst.CompareAndSwap(w, d); w = worst.Load() {
					}
				}
			})
			b.ReportMetric(float64(worst.Load())/1e6, "max-ms")
		})
	}
}
