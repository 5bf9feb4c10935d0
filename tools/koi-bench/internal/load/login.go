package load

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/koi-im/koi/tools/koi-bench/internal/client"
	"github.com/koi-im/koi/tools/koi-bench/internal/measure"
)

// LoginParams shape the login workload.
type LoginParams struct {
	Concurrency int           // logins in flight
	Pool        int           // users [0, Pool) log in, round robin
	Warmup      time.Duration // logins before measuring
	Duration    time.Duration // measured time
	// Available: a login also sends initial presence and waits for the
	// server to process it. Off, a login ends with the bound resource.
	Available bool
}

// LoginResult reports login rate and latency.
type LoginResult struct {
	Common
	Concurrency int     `json:"concurrency"`
	Available   bool    `json:"available"`
	Logins      uint64  `json:"logins"` // completed in the measured time
	Seconds     float64 `json:"seconds"`
	PerSecond   float64 `json:"per_second"`
	// Latency is from connecting to the bound resource (or the answer to
	// the ping after presence).
	Latency measure.Summary `json:"latency"`
	// Phases break the latency down: TCP connect, stream and features
	// (TLS included), SASL, restart and bind (and presence).
	Phases map[string]measure.Summary `json:"phases"`
	CPU    measure.CPUReport          `json:"cpu"`
	// Iterations is the PBKDF2 count the server asked for in SCRAM.
	Iterations int `json:"scram_iterations,omitempty"`
}

// Login logs users in and out as fast as p.Concurrency connections allow.
// Each user's first login happens before the measurement, so that the
// tool's SCRAM key derivation (cached like a real client's) is not
// measured.
func Login(ctx context.Context, e *Env, p LoginParams) (*LoginResult, error) {
	if p.Pool <= 0 || p.Concurrency <= 0 || p.Duration <= 0 {
		return nil, errors.New("login: pool, concurrency and duration must be positive")
	}
	r := &LoginResult{Common: e.common("login"), Concurrency: p.Concurrency, Available: p.Available}
	var errs errorLog
	var seq atomic.Uint64
	var info sync.Once
	once := func(ctx context.Context, user int) (time.Duration, client.Phases, error) {
		res := "kb" + strconv.FormatUint(seq.Add(1), 36)
		t0 := time.Now()
		c, err := e.Dialer.Session(ctx, e.Users.Name(user), e.Users.Password, res, p.Available)
		d := time.Since(t0)
		if err != nil {
			return d, client.Phases{}, err
		}
		info.Do(func() {
			r.Mechanism, r.TLS, r.Iterations = c.Mechanism(), c.TLS(), c.SCRAMIterations()
			if m := e.Dialer.Options().Mechanism; m == client.MechFAST {
				// The priming login got the token with SCRAM; the
				// measured ones use it.
				r.Mechanism = m
			}
		})
		ph := c.Phases()
		c.Close()
		return d, ph, nil
	}

	// Prime: every user of the pool once.
	var primed atomic.Int64
	stop := e.progress("login", func() string {
		return fmt.Sprintf("priming %d/%d users, errors %d", primed.Load(), p.Pool, errs.n.Load())
	})
	forEach(ctx, p.Pool, p.Concurrency, func(i int) {
		if _, _, err := once(ctx, i); err != nil {
			errs.add(fmt.Errorf("user %d: %w", i, err))
			return
		}
		primed.Add(1)
	})
	stop()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if primed.Load() == 0 {
		errs.fill(&r.Common)
		return r, fmt.Errorf("login: no login succeeded: %s", r.FirstError)
	}
	errs = errorLog{}

	// Measure: workers log in continuously; logins completing inside the
	// window count.
	var (
		next      atomic.Uint64
		total     atomic.Uint64
		measuring atomic.Bool
		inWindow  atomic.Uint64
		wg        sync.WaitGroup
		mu        sync.Mutex
		hist      measure.Histogram
		phases    [4]measure.Histogram
	)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cpu := newCPUMeter(e.Target)
	var lastTotal uint64
	stop = e.progress("login", func() string {
		t := total.Load()
		s := fmt.Sprintf("logins %d (%d/s) errors %d | %s", t, t-lastTotal, errs.n.Load(), cpu.line())
		lastTotal = t
		return s
	})
	for range p.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var h measure.Histogram
			var ph [4]measure.Histogram
			for wctx.Err() == nil {
				u := int(next.Add(1)-1) % p.Pool
				d, phs, err := once(wctx, u)
				if err != nil {
					if wctx.Err() == nil {
						errs.add(err)
					}
					continue
				}
				total.Add(1)
				if measuring.Load() {
					inWindow.Add(1)
					h.Record(d)
					ph[0].Record(phs.Connect)
					ph[1].Record(phs.Stream)
					ph[2].Record(phs.Auth)
					ph[3].Record(phs.Bind)
				}
			}
			mu.Lock()
			hist.Merge(&h)
			for i := range ph {
				phases[i].Merge(&ph[i])
			}
			mu.Unlock()
		}()
	}
	sleep(wctx, p.Warmup)
	profile := e.profileCPU(ctx, p.Duration, "cpu-login-"+sanitize(r.Mechanism)+"-"+tlsName(r.TLS)+".pb.gz")
	measuring.Store(true)
	win := e.Target.StartWindow()
	errsBefore := errs.n.Load()
	sleep(wctx, p.Duration)
	measuring.Store(false)
	usage := win.Stop()
	cancel()
	wg.Wait()
	stop()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	r.Logins = inWindow.Load()
	r.Seconds = usage.Wall.Seconds()
	r.PerSecond = float64(r.Logins) / r.Seconds
	r.Latency = hist.Summarize()
	r.Phases = map[string]measure.Summary{}
	for i, name := range PhaseNames() {
		r.Phases[name] = phases[i].Summarize()
	}
	r.CPU = usage.Report(r.Logins, e.Target.Known())
	errs.fill(&r.Common)
	if n := errs.n.Load() - errsBefore; n > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d logins failed during the measurement", n))
	}
	r.Notes = cpuNotes(r.Notes, profile(), r.CPU, "the login rate")
	return r, nil
}

// PhaseNames name the steps of a login, in order.
func PhaseNames() [4]string { return [4]string{"connect", "stream", "auth", "bind"} }

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			b[i] = '_'
		}
	}
	return string(b)
}
