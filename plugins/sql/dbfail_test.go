package sqlbackend

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"

	"github.com/koi-im/koi/internal/tcpproxy"
	"github.com/koi-im/koi/sdk"
)

// killSessions ends the store's sessions on the server from admin's own
// connection, which it spares: pg_terminate_backend on PostgreSQL, KILL on
// MariaDB. It returns how many it ended.
func killSessions(t *testing.T, admin *sql.Conn, set Settings) int {
	t.Helper()
	ctx := t.Context()
	switch set.Driver {
	case "postgres":
		var n int
		err := admin.QueryRowContext(ctx, `SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = current_database() AND application_name = $1 AND pid <> pg_backend_pid()`, set.Schema).Scan(&n)
		if err != nil {
			t.Fatalf("pg_terminate_backend: %v", err)
		}
		return n
	default:
		var ids []int64
		rows, err := admin.QueryContext(ctx, "SELECT id FROM information_schema.processlist WHERE db = DATABASE() AND id <> CONNECTION_ID()")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		rows.Close()
		n := 0
		for _, id := range ids {
			_, err := admin.ExecContext(ctx, fmt.Sprintf("KILL %d", id))
			var me *mysql.MySQLError
			switch {
			case errors.As(err, &me) && me.Number == 1094: // gone meanwhile
			case err != nil:
				t.Fatalf("KILL %d: %v", id, err)
			default:
				n++
			}
		}
		return n
	}
}

// waitingForLock reports whether one of the store's sessions waits for a
// row lock.
func waitingForLock(t *testing.T, admin *sql.Conn, set Settings) bool {
	t.Helper()
	var n int
	var err error
	if set.Driver == "postgres" {
		err = admin.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM pg_stat_activity
			WHERE application_name = $1 AND wait_event_type = 'Lock'`, set.Schema).Scan(&n)
	} else {
		// information_schema.innodb_trx would say it, but MariaDB serves
		// it from a cache that can be seconds old. A statement on the
		// locked table that has run for 200ms is waiting.
		err = admin.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM information_schema.processlist
			WHERE db = DATABASE() AND id <> CONNECTION_ID() AND info LIKE '%koi_vcards%' AND time_ms > 200`).Scan(&n)
	}
	if err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// eventually calls f until it succeeds, for at most tries calls and 10s;
// every failure on the way must be sdk.ErrUnavailable.
func eventually(t *testing.T, what string, tries int, f func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for i := 1; ; i++ {
		err := f()
		if err == nil {
			if i > 1 {
				t.Logf("%s succeeded at attempt %d", what, i)
			}
			return
		}
		if !errors.Is(err, sdk.ErrUnavailable) {
			t.Fatalf("%s: %v, want success or sdk.ErrUnavailable", what, err)
		}
		if i >= tries || time.Now().After(deadline) {
			t.Fatalf("%s still fails after %d attempts: %v", what, i, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The database ends the store's sessions, one of them in the middle of a
// call: that call fails with sdk.ErrUnavailable, and the next one works
// on a new connection.
func TestKillSessions(t *testing.T) {
	for _, driver := range []string{"postgres", "mysql"} {
		t.Run(driver, func(t *testing.T) {
			set := testSettings(t, driver)
			set.MaxOpenConns = 4
			s := openOn(t, set)
			ctx := t.Context()
			const owner = "ann@example.org"
			if err := s.SetVCard(ctx, owner, "<vCard>1</vCard>"); err != nil {
				t.Fatal(err)
			}
			// Fill the pool with idle connections.
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() { s.GetRoster(ctx, owner) })
			}
			wg.Wait()

			admin, err := adminDB(t, set).Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer admin.Close()
			// Hold the vCard's row so that the store's update waits.
			tx, err := admin.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback() // before admin.Close, which would wait for it
			var xml string
			if err := tx.QueryRowContext(ctx, s.q("SELECT xml FROM koi_vcards WHERE owner = ? FOR UPDATE"), owner).Scan(&xml); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- s.SetVCard(ctx, owner, "<vCard>2</vCard>") }()
			waitStart := time.Now()
			for !waitingForLock(t, admin, set) {
				select {
				case err := <-done:
					t.Fatalf("SetVCard did not wait for the locked row, it returned after %v: %v", time.Since(waitStart), err)
				case <-time.After(20 * time.Millisecond):
				}
			}
			if n := killSessions(t, admin, set); n < 1 {
				t.Errorf("killed %d sessions, want at least the waiting one", n)
			}
			select {
			case err := <-done:
				wantErr(t, "SetVCard whose session was killed", err, sdk.ErrUnavailable)
				t.Logf("the interrupted call: %v", err)
			case <-time.After(10 * time.Second):
				t.Fatal("SetVCard still waiting 10s after its session was killed")
			}
			if err := tx.Rollback(); err != nil {
				t.Fatal(err)
			}
			// The store dropped its other, dead, idle connections: the
			// next call works at once.
			if err := s.SetVCard(ctx, owner, "<vCard>3</vCard>"); err != nil {
				t.Errorf("SetVCard after the kill: %v", err)
			}
			eventually(t, "GetVCard", 3, func() error {
				v, err := s.GetVCard(ctx, owner)
				if err == nil && v != "<vCard>3</vCard>" {
					t.Fatalf("GetVCard = %q, want the last write", v)
				}
				return err
			})

			// Killing idle sessions only: calls go on.
			killSessions(t, admin, set)
			eventually(t, "GetRoster after killing idle sessions", 3, func() error {
				_, err := s.GetRoster(ctx, owner)
				return err
			})
		})
	}
}

// newProxy starts a proxy to target, closed when the test ends.
func newProxy(t *testing.T, target string) *tcpproxy.Proxy {
	t.Helper()
	p, err := tcpproxy.New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// throughProxy returns set with its dsn pointing at a new proxy to the
// server.
func throughProxy(t *testing.T, set Settings) (Settings, *tcpproxy.Proxy) {
	t.Helper()
	switch set.Driver {
	case "postgres":
		c, err := pgx.ParseConfig(set.DSN)
		if err != nil {
			t.Fatal(err)
		}
		p := newProxy(t, net.JoinHostPort(c.Host, fmt.Sprint(c.Port)))
		u := url.URL{Scheme: "postgres", User: url.UserPassword(c.User, c.Password), Host: p.Addr(), Path: "/" + c.Database,
			RawQuery: url.Values{"sslmode": {"disable"}, "application_name": {set.Schema}}.Encode()}
		set.DSN = u.String()
		return set, p
	default:
		c, err := mysql.ParseDSN(set.DSN)
		if err != nil {
			t.Fatal(err)
		}
		p := newProxy(t, c.Addr)
		c.Addr = p.Addr()
		set.DSN = c.FormatDSN()
		return set, p
	}
}

// The database goes away for a while: every call fails quickly with
// sdk.ErrUnavailable, nothing hangs or panics, and once the database is
// back the same store serves again.
func TestDatabaseOutage(t *testing.T) {
	for _, driver := range []string{"postgres", "mysql"} {
		t.Run(driver, func(t *testing.T) {
			set, p := throughProxy(t, testSettings(t, driver))
			s := openOn(t, set)
			ctx := t.Context()
			const owner = "ann@example.org"
			if _, err := s.SetItem(ctx, owner, sdk.RosterItem{JID: "bob@example.org", Subscription: sdk.SubBoth}); err != nil {
				t.Fatal(err)
			}
			if err := s.CreateUser(ctx, "example.org", "ann", "pw"); err != nil {
				t.Fatal(err)
			}

			p.Cut()
			calls := map[string]func(context.Context) error{
				"Ping":      s.Ping,
				"GetRoster": func(ctx context.Context) error { _, err := s.GetRoster(ctx, owner); return err },
				"SetItem": func(ctx context.Context) error {
					_, err := s.SetItem(ctx, owner, sdk.RosterItem{JID: "carl@example.org", Subscription: sdk.SubNone})
					return err
				},
				"SCRAMCredentials": func(ctx context.Context) error {
					_, err := s.SCRAMCredentials(ctx, "example.org", "ann", sdk.HashSHA256)
					return err
				},
				"Pop":      func(ctx context.Context) error { _, err := s.Pop(ctx, owner); return err },
				"SetVCard": func(ctx context.Context) error { return s.SetVCard(ctx, owner, "<vCard/>") },
			}
			for name, call := range calls {
				cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				start := time.Now()
				err := call(cctx)
				cancel()
				wantErr(t, name+" during the outage", err, sdk.ErrUnavailable)
				if d := time.Since(start); d > 3500*time.Millisecond {
					t.Errorf("%s took %v during the outage", name, d)
				}
				if err != nil && strings.Contains(err.Error(), "panic") {
					t.Errorf("%s: %v", name, err)
				}
			}

			if err := p.Restore(); err != nil {
				t.Fatal(err)
			}
			eventually(t, "GetRoster after the outage", 5, func() error {
				st, err := s.GetRoster(ctx, owner)
				if err == nil && len(st.Items) != 1 {
					t.Fatalf("roster after the outage has %d items, want 1", len(st.Items))
				}
				return err
			})
			for name, call := range calls {
				if err := call(ctx); err != nil {
					t.Errorf("%s after the outage: %v", name, err)
				}
			}
		})
	}
}

// A pool of one connection serves concurrent transactions on a fresh
// store: a transaction meeting a statement not yet prepared must not wait
// for a second connection while it holds the only one.
func TestSmallPool(t *testing.T) {
	forEachSettings(t, func(t *testing.T, set Settings) {
		set.MaxOpenConns = 1
		s := openOn(t, set)
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := range 8 {
			wg.Go(func() {
				owner := fmt.Sprintf("u%d@example.org", i)
				if _, err := s.SetItem(ctx, owner, sdk.RosterItem{JID: "bob@example.org", Subscription: sdk.SubNone}); err != nil {
					errs <- err
				}
				if _, err := s.GetRoster(ctx, owner); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		// The statements the transactions used are now prepared on the
		// pool, for every later call.
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.wanted) != 0 {
			t.Errorf("statements still waiting to be prepared: %v", s.wanted)
		}
		if _, ok := s.stmts["SELECT version FROM koi_roster_versions WHERE owner = ?"]; !ok {
			t.Errorf("GetRoster's version query is not in the statement cache")
		}
	})
}
