package load

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
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
	// Generator, if not empty, is the command line of a koi-bench storm-gen
	// process to run the storm's logins in (see Storm).
	Generator []string
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

// stormOutcome is what a storm's logins came to, as the generator process
// reports it.
type stormOutcome struct {
	Done    uint64          `json:"done"`
	Failed  uint64          `json:"failed"`
	Seconds float64         `json:"seconds"`
	Latency measure.Summary `json:"latency"`
	First   string          `json:"first_error,omitempty"`
}

// stormer runs a storm's logins: prime logs every storm user in once,
// run does the storm itself.
type stormer struct {
	e   *Env
	p   StormParams
	seq atomic.Uint64
}

func (s *stormer) login(ctx context.Context, user int) (time.Duration, error) {
	first := s.p.Msg.UserOffset + 2*s.p.Msg.Pairs
	t0 := time.Now()
	c, err := s.e.Dialer.Session(ctx, s.e.Users.Name(first+user), s.e.Users.Password, "st"+strconv.FormatUint(s.seq.Add(1), 36), false)
	d := time.Since(t0)
	if err != nil {
		return d, err
	}
	c.Close()
	return d, nil
}

func (s *stormer) prime(ctx context.Context) error {
	first := s.p.Msg.UserOffset + 2*s.p.Msg.Pairs
	var errs errorLog
	var primed atomic.Int64
	stop := s.e.progress("storm", func() string {
		return fmt.Sprintf("priming %d/%d storm users, errors %d", primed.Load(), s.p.Users, errs.n.Load())
	})
	forEach(ctx, s.p.Users, min(s.p.Concurrency, 50), func(i int) {
		if _, err := s.login(ctx, i); err != nil {
			errs.add(fmt.Errorf("storm user %d: %w", first+i, err))
			return
		}
		primed.Add(1)
	})
	stop()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if primed.Load() != int64(s.p.Users) {
		return fmt.Errorf("storm: %d of %d storm users could not log in: %s", s.p.Users-int(primed.Load()), s.p.Users, errs.first)
	}
	return nil
}

func (s *stormer) run(ctx context.Context) stormOutcome {
	var (
		done, failed atomic.Uint64
		mu           sync.Mutex
		hist         measure.Histogram
		errs         errorLog
	)
	t0 := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range s.p.Concurrency {
		wg.Go(func() {
			var h measure.Histogram
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(s.p.Logins) {
					break
				}
				d, err := s.login(ctx, int(i)%s.p.Users)
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
	o := stormOutcome{Done: done.Load(), Failed: failed.Load(), Seconds: time.Since(t0).Seconds(), Latency: hist.Summarize()}
	if errs.first != nil {
		o.First = errs.first.Error()
	}
	return o
}

// Storm runs the storm workload. With p.Generator set, the storm's logins
// run in that process (see StormGenerate), so that the tool's own TLS
// handshakes and SCRAM work do not delay the measured messages: on a
// tool pinned to one CPU they otherwise add tens of milliseconds to the
// pairs' p99, which is the tool's latency, not the server's.
func Storm(ctx context.Context, e *Env, p StormParams) (*StormResult, error) {
	if p.Logins <= 0 || p.Concurrency <= 0 || p.Users <= 0 {
		return nil, errors.New("storm: logins, concurrency and users must be positive")
	}
	var storm func(ctx context.Context) (stormOutcome, error)
	if len(p.Generator) > 0 {
		g, err := startGenerator(ctx, p.Generator)
		if err != nil {
			return nil, err
		}
		defer g.stop()
		storm = g.storm
	} else {
		s := &stormer{e: e, p: p}
		if err := s.prime(ctx); err != nil {
			return nil, err
		}
		storm = func(ctx context.Context) (stormOutcome, error) { return s.run(ctx), nil }
	}
	var (
		out    stormOutcome
		genErr error
	)
	p.Msg.During = func(ctx context.Context) { out, genErr = storm(ctx) }
	m, err := Msg(ctx, e, p.Msg)
	if m == nil {
		return nil, errors.Join(err, genErr)
	}
	r := &StormResult{MsgResult: *m, StormConcurrency: p.Concurrency}
	r.Mode = "storm"
	r.StormLogins, r.StormFailed = out.Done, out.Failed
	r.StormSeconds = out.Seconds
	if r.StormSeconds > 0 {
		r.StormPerSecond = float64(r.StormLogins) / r.StormSeconds
	}
	r.StormLatency = out.Latency
	if out.Failed > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d storm logins failed, first: %s", out.Failed, out.First))
	}
	if len(p.Generator) > 0 {
		r.Notes = append(r.Notes, "storm logins ran in a separate, lower-priority koi-bench process")
	}
	return r, errors.Join(err, genErr)
}

// StormGenerate is the generator process's side of Storm: it primes the
// storm users, writes "ready", waits for "go" on in, runs the logins and
// writes their outcome as one JSON line.
func StormGenerate(ctx context.Context, e *Env, p StormParams, in io.Reader, out io.Writer) error {
	if p.Logins <= 0 || p.Concurrency <= 0 || p.Users <= 0 {
		return errors.New("storm: logins, concurrency and users must be positive")
	}
	s := &stormer{e: e, p: p}
	if err := s.prime(ctx); err != nil {
		return err
	}
	fmt.Fprintln(out, "ready")
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "go" {
		return fmt.Errorf("storm generator: waiting for go: %q %v", line, err)
	}
	return json.NewEncoder(out).Encode(s.run(ctx))
}
