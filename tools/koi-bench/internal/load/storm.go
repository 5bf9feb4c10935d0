package load

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/koi-im/koi/tools/koi-bench/internal/measure"
)

// StormParams shape a reconnect storm measured from established sessions:
// Msg.Pairs pairs exchange messages at Msg.Rate while Logins logins run,
// Concurrency at a time, each one connecting, logging in, binding and
// disconnecting.
type StormParams struct {
	Msg         MsgParams
	Logins      int // logins in the storm
	Concurrency int // storm logins in flight
	// Users are the storm's users, after the pairs' (numbers
	// Msg.UserOffset+2*Msg.Pairs on), logged in once before the
	// measurement so that the tool's SCRAM key derivations (cached like a
	// real client's) do not load the tool during it.
	Users int
}

// StormResult is the pairs' message result during the storm, and the
// storm's own figures.
type StormResult struct {
	MsgResult
	StormLogins      uint64          `json:"storm_logins"`      // completed
	StormFailed      uint64          `json:"storm_failed"`      // refused or failed
	StormSeconds     float64         `json:"storm_seconds"`     // from first to last
	StormPerSecond   float64         `json:"storm_per_second"`  // completed logins a second
	StormConcurrency int             `json:"storm_concurrency"` // logins in flight
	StormLatency     measure.Summary `json:"storm_latency"`     // of completed logins
}

// Storm runs the storm workload.
func Storm(ctx context.Context, e *Env, p StormParams) (*StormResult, error) {
	if p.Logins <= 0 || p.Concurrency <= 0 || p.Users <= 0 {
		return nil, errors.New("storm: logins, concurrency and users must be positive")
	}
	first := p.Msg.UserOffset + 2*p.Msg.Pairs
	var seq atomic.Uint64
	login := func(ctx context.Context, user int) (time.Duration, error) {
		t0 := time.Now()
		c, err := e.Dialer.Session(ctx, e.Users.Name(first+user), e.Users.Password, "st"+strconv.FormatUint(seq.Add(1), 36), false)
		d := time.Since(t0)
		if err != nil {
			return d, err
		}
		c.Close()
		return d, nil
	}
	var errs errorLog
	var primed atomic.Int64
	stop := e.progress("storm", func() string {
		return fmt.Sprintf("priming %d/%d storm users, errors %d", primed.Load(), p.Users, errs.n.Load())
	})
	forEach(ctx, p.Users, min(p.Concurrency, 50), func(i int) {
		if _, err := login(ctx, i); err != nil {
			errs.add(fmt.Errorf("storm user %d: %w", first+i, err))
			return
		}
		primed.Add(1)
	})
	stop()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if primed.Load() != int64(p.Users) {
		return nil, fmt.Errorf("storm: %d of %d storm users could not log in: %s", p.Users-int(primed.Load()), p.Users, errs.first)
	}
	errs = errorLog{}

	var (
		done, failed atomic.Uint64
		mu           sync.Mutex
		hist         measure.Histogram
		elapsed      time.Duration
	)
	p.Msg.During = func(ctx context.Context) {
		t0 := time.Now()
		var next atomic.Int64
		var wg sync.WaitGroup
		for range p.Concurrency {
			wg.Go(func() {
				var h measure.Histogram
				for ctx.Err() == nil {
					i := next.Add(1) - 1
					if i >= int64(p.Logins) {
						break
					}
					d, err := login(ctx, int(i)%p.Users)
					if err != nil {
						failed.Add(1)
						errs.add(err)
						continue
					}
					done.Add(1)
					h.Record(d)
				}
				mu.Lock()
				hist.Merge(&h)
				mu.Unlock()
			})
		}
		wg.Wait()
		elapsed = time.Since(t0)
	}
	m, err := Msg(ctx, e, p.Msg)
	if m == nil {
		return nil, err
	}
	r := &StormResult{MsgResult: *m, StormConcurrency: p.Concurrency}
	r.Mode = "storm"
	r.StormLogins, r.StormFailed = done.Load(), failed.Load()
	r.StormSeconds = elapsed.Seconds()
	if r.StormSeconds > 0 {
		r.StormPerSecond = float64(r.StormLogins) / r.StormSeconds
	}
	r.StormLatency = hist.Summarize()
	if n := failed.Load(); n > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d storm logins failed, first: %s", n, errs.first))
	}
	return r, err
}
