package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync/atomic"
	"time"

	"github.com/koi-im/koi/tools/koi-bench/internal/client"
)

// RegisterParams say which users to create and how.
type RegisterParams struct {
	From, To    int // users [From, To)
	Concurrency int
	// Koictl, if set, is the command that adds a user (e.g. ["bin/koictl",
	// "-config", "koi.hcl"]); "user add JID -" is appended and the password
	// written to its standard input. Otherwise users are created by
	// in-band registration (XEP-0077).
	Koictl []string
}

// RegisterResult reports user creation.
type RegisterResult struct {
	Common
	Users     int     `json:"users"`
	Created   uint64  `json:"created"`
	Existed   uint64  `json:"existed"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"per_second"`
	Via       string  `json:"via"`
}

// Register creates users [From, To), treating those that exist as done.
func Register(ctx context.Context, e *Env, p RegisterParams) (*RegisterResult, error) {
	if p.To <= p.From {
		return nil, fmt.Errorf("no users to create (from %d to %d)", p.From, p.To)
	}
	r := &RegisterResult{Common: e.common("register"), Users: p.To - p.From, Via: "in-band registration"}
	if len(p.Koictl) > 0 {
		r.Via = "koictl"
	}
	var created, existed atomic.Uint64
	var usedTLS atomic.Bool
	var errs errorLog
	start := time.Now()
	stop := e.progress("register", func() string {
		c, x := created.Load(), existed.Load()
		return fmt.Sprintf("created %d existed %d of %d, %.0f/s, errors %d", c, x, r.Users,
			float64(c+x)/time.Since(start).Seconds(), errs.n.Load())
	})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := func(err error) {
		switch {
		case err == nil:
			created.Add(1)
		case errors.Is(err, client.ErrExists):
			existed.Add(1)
		default:
			errs.add(err)
			if errs.n.Load() > 10 && created.Load()+existed.Load() == 0 {
				cancel() // nothing works: do not try thousands more
			}
		}
	}
	n := p.To - p.From
	if len(p.Koictl) > 0 {
		forEach(ctx, n, p.Concurrency, func(i int) {
			done(koictlAdd(ctx, p.Koictl, e.Users.Name(p.From+i)+"@"+e.Dialer.Options().Domain, e.Users.Password))
		})
	} else {
		// Each worker registers its share of the users over one stream,
		// reconnecting if the server closes it.
		var next atomic.Int64
		workers := max(1, min(p.Concurrency, n))
		errc := make(chan struct{}, workers)
		for range workers {
			go func() {
				defer func() { errc <- struct{}{} }()
				var c *client.Conn
				defer func() {
					if c != nil {
						c.Close()
					}
				}()
				for ctx.Err() == nil {
					i := int(next.Add(1) - 1)
					if i >= n {
						return
					}
					if c == nil {
						var err error
						if c, err = e.Dialer.Connect(ctx); err != nil {
							done(err)
							continue
						}
						usedTLS.Store(c.TLS())
					}
					err := c.Register(ctx, e.Users.Name(p.From+i), e.Users.Password)
					if err != nil && !errors.Is(err, client.ErrExists) {
						c.Close()
						c = nil
					}
					done(err)
				}
			}()
		}
		for range workers {
			<-errc
		}
	}
	stop()
	r.Seconds = time.Since(start).Seconds()
	r.Created, r.Existed = created.Load(), existed.Load()
	r.TLS = r.TLS || usedTLS.Load()
	r.PerSecond = float64(r.Created+r.Existed) / r.Seconds
	errs.fill(&r.Common)
	if r.Created+r.Existed < uint64(n) {
		return r, fmt.Errorf("created %d of %d users (%d existed); first error: %s", r.Created, n, r.Existed, r.FirstError)
	}
	return r, nil
}

func koictlAdd(ctx context.Context, koictl []string, jid, password string) error {
	args := append(append([]string{}, koictl[1:]...), "user", "add", jid, "-")
	cmd := exec.CommandContext(ctx, koictl[0], args...)
	cmd.Stdin = strings.NewReader(password + "\n")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if strings.Contains(out.String(), "already exists") {
			return client.ErrExists
		}
		return fmt.Errorf("koictl user add %s: %w: %s", jid, err, strings.TrimSpace(out.String()))
	}
	return nil
}
