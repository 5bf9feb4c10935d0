package e2e

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"mellium.im/sasl"

	"github.com/koi-im/koi/e2e/internal/koiproc"
	sqlbackend "github.com/koi-im/koi/plugins/sql"
)

// The sql plugin on real database servers, end to end: koi runs the
// shipped examples/configs/mixed-postgres-mariadb.hcl, where one plugin
// block keeps accounts in PostgreSQL and another, the same binary, keeps
// rosters and the rest in MariaDB. Each test gets its own PostgreSQL schema
// and MariaDB database, dropped at the end. The servers are those of the
// plugin's own tests (KOI_TEST_POSTGRES_DSN, KOI_TEST_MYSQL_DSN); without
// them the tests skip, or fail when CI=true.

const mixDomain = "example.org" // the host of the example config

// mixDB is a fresh PostgreSQL schema or MariaDB database for one test.
type mixDB struct {
	dsn    string  // for the plugin
	schema string  // PostgreSQL only
	name   string  // the schema or database name, koi_test_<random>
	admin  *sql.DB // the test's own connections to it
}

func mixEnv(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func mixName() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "koi_test_" + hex.EncodeToString(b)
}

// mixUnreachable skips tb, or fails it with CI=true, saying what to start.
func mixUnreachable(tb testing.TB, what string, err error) {
	tb.Helper()
	msg := fmt.Sprintf("%s not reachable (%v); start it (README, Databases) or set KOI_TEST_POSTGRES_DSN / KOI_TEST_MYSQL_DSN", what, err)
	if os.Getenv("CI") == "true" {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
}

// mixPostgres makes a schema; the plugin's connections carry the schema's
// name as their application_name, so the test can find and end them.
func mixPostgres(tb testing.TB) *mixDB {
	tb.Helper()
	base := mixEnv("KOI_TEST_POSTGRES_DSN", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	admin, err := sql.Open("pgx", base)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = admin.PingContext(ctx)
		cancel()
	}
	if err != nil {
		mixUnreachable(tb, "PostgreSQL at "+base, err)
	}
	name := mixName()
	if _, err := admin.Exec("CREATE SCHEMA " + name); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if _, err := admin.Exec("DROP SCHEMA " + name + " CASCADE"); err != nil {
			tb.Errorf("dropping schema %s: %v", name, err)
		}
		admin.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("KOI_TEST_POSTGRES_DSN must be a URL here: %v", err)
	}
	q := u.Query()
	q.Set("application_name", name)
	u.RawQuery = q.Encode()
	return &mixDB{dsn: u.String(), schema: name, name: name, admin: admin}
}

// mixMariaDB makes a database.
func mixMariaDB(tb testing.TB) *mixDB {
	tb.Helper()
	base := mixEnv("KOI_TEST_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/test")
	cfg, err := mysql.ParseDSN(base)
	if err != nil {
		tb.Fatal(err)
	}
	root, err := sql.Open("mysql", base)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = root.PingContext(ctx)
		cancel()
	}
	if err != nil {
		mixUnreachable(tb, "MariaDB at "+cfg.Addr, err)
	}
	name := mixName()
	if _, err := root.Exec("CREATE DATABASE " + name); err != nil {
		tb.Fatal(err)
	}
	cfg.DBName = name
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		admin.Close()
		if _, err := root.Exec("DROP DATABASE " + name); err != nil {
			tb.Errorf("dropping database %s: %v", name, err)
		}
		root.Close()
	})
	return &mixDB{dsn: cfg.FormatDSN(), name: name, admin: admin}
}

// column returns the first column of a query's rows.
func (db *mixDB) column(t testing.TB, query string, args ...any) []string {
	t.Helper()
	rows, err := db.admin.Query(query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// mixServer is koi on an example config with KOI_ overrides.
type mixServer struct {
	*server
	env []string
}

// startMixed starts koi on examples/configs/mixed-postgres-mariadb.hcl
// with the test's addresses and databases: extra are more KOI_ overrides.
func startMixed(tb testing.TB, extra ...string) *mixServer {
	tb.Helper()
	path, err := filepath.Abs(filepath.Join("..", "examples", "configs", "mixed-postgres-mariadb.hcl"))
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	c2s, c2sTLS := freeAddr(tb), freeAddr(tb)
	env := append([]string{
		"KOI_LOG__LEVEL=debug",
		"KOI_LISTEN__C2S__ADDRESS=" + c2s,
		"KOI_LISTEN__C2S_TLS__ADDRESS=" + c2sTLS,
		"KOI_TLS__CERT_FILE=" + filepath.Join(dir, "tls", "cert.pem"),
		"KOI_TLS__KEY_FILE=" + filepath.Join(dir, "tls", "key.pem"),
		"KOI_PLUGIN__ACCOUNTS__COMMAND=" + pluginBin(),
		"KOI_PLUGIN__DATA__COMMAND=" + pluginBin(),
		"KOI_SERVER__DATA_DIR=" + filepath.Join(dir, "data"),
		"KOI_SERVER__SHUTDOWN_TIMEOUT=5s",
		"KOI_LIMITS__AUTH_FAILURES_PER_IP=0",
		"KOI_LIMITS__AUTH_FAILURES_PER_ACCOUNT=0",
	}, extra...)
	s := launch(tb, dir, path, c2s, c2sTLS, options{}, env)
	return &mixServer{server: s, env: env}
}

// mixEnvFor is the KOI_ overrides pointing the example's plugins at pg
// (accounts) and my (everything else).
func mixEnvFor(pg, my *mixDB) []string {
	return []string{
		"KOI_PLUGIN__ACCOUNTS__CONFIG__DSN=" + pg.dsn,
		"KOI_PLUGIN__ACCOUNTS__CONFIG__SCHEMA=" + pg.schema,
		"KOI_PLUGIN__DATA__CONFIG__DSN=" + my.dsn,
	}
}

// koictl runs koictl on the example config with env.
func mixKoictl(env []string, args ...string) (string, error) {
	path, _ := filepath.Abs(filepath.Join("..", "examples", "configs", "mixed-postgres-mariadb.hcl"))
	cmd := exec.Command(koictlBin(), append([]string{"-config", path}, args...)...)
	cmd.Env = append(append(koiproc.ChildEnv(),
		"KOI_PLUGIN__ACCOUNTS__COMMAND="+pluginBin(),
		"KOI_PLUGIN__DATA__COMMAND="+pluginBin()), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestSQLMix(t *testing.T) {
	t.Parallel()
	pg, my := mixPostgres(t), mixMariaDB(t)
	dbEnv := mixEnvFor(pg, my)

	t.Run("koictl db migrate", func(t *testing.T) {
		out, err := mixKoictl(dbEnv, "db", "migrate")
		if err != nil {
			t.Fatalf("koictl db migrate: %v\n%s", err, out)
		}
		for _, want := range []string{
			`plugin accounts: schema version [1-9][0-9]* \(postgres\), migrated from 0`,
			`plugin data: schema version [1-9][0-9]* \(mariadb\), migrated from 0`,
		} {
			if !regexp.MustCompile(want).MatchString(out) {
				t.Errorf("koictl db migrate said\n%s\nwant a line matching %s", out, want)
			}
		}
		out, err = mixKoictl(dbEnv, "db", "migrate", "data")
		if err != nil || !strings.Contains(out, "plugin data: schema version") || !strings.Contains(out, "up to date") || strings.Contains(out, "accounts") {
			t.Errorf("koictl db migrate data: %v\n%s", err, out)
		}
		out, err = mixKoictl(dbEnv, "db", "migrate", "nosuch")
		if err == nil || !strings.Contains(out, `no plugin "nosuch"`) {
			t.Errorf("koictl db migrate nosuch: %v\n%s", err, out)
		}
		// The migrations are in each database, not the other.
		if got := pg.column(t, "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'koi_users'", pg.schema); len(got) != 1 {
			t.Errorf("koi_users in PostgreSQL: %v", got)
		}
		if got := my.column(t, "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'koi_roster_items'"); len(got) != 1 {
			t.Errorf("koi_roster_items in MariaDB: %v", got)
		}
	})

	srv := startMixed(t, dbEnv...)
	tlsCfg := srv.tlsConfig(t, mixDomain)
	opts := dialOpts{addr: srv.c2s, tls: tlsCfg}
	const pw = "correct horse 7"
	for _, u := range []string{"alice", "Zoë"} {
		if out, err := mixKoictl(dbEnv, "user", "add", u+"@"+mixDomain, pw); err != nil {
			t.Fatalf("koictl user add %s: %v\n%s", u, err, out)
		}
	}

	t.Run("users land in PostgreSQL, normalised", func(t *testing.T) {
		got := pg.column(t, "SELECT username FROM "+pg.schema+".koi_users WHERE host = $1 ORDER BY username", mixDomain)
		if want := []string{"alice", "zo\u00eb"}; !slices.Equal(got, want) {
			t.Errorf("PostgreSQL users %q, want %q (PRECIS: lower case, NFC)", got, want)
		}
		if got := my.column(t, "SELECT username FROM koi_users"); len(got) != 0 {
			t.Errorf("MariaDB has users %q, want none", got)
		}
		out, err := mixKoictl(dbEnv, "user", "list", mixDomain)
		if err != nil || !strings.Contains(out, "alice@"+mixDomain) || !strings.Contains(out, "zo\u00eb@"+mixDomain) {
			t.Errorf("koictl user list: %v\n%s", err, out)
		}
	})

	alice := login(t, opts, "alice@"+mixDomain+"/mix", pw)
	t.Run("roster lands in MariaDB", func(t *testing.T) {
		r := alice.iq("<iq type='set'><query xmlns='jabber:iq:roster'><item jid='bob@example.org' name='Bob'><group>Friends</group></item></query></iq>")
		if r.attr("type") != "result" {
			t.Fatalf("roster set: %s", r)
		}
		if got := my.column(t, "SELECT contact FROM koi_roster_items WHERE owner = ?", "alice@"+mixDomain); !slices.Equal(got, []string{"bob@example.org"}) {
			t.Errorf("MariaDB roster items %q", got)
		}
		if got := pg.column(t, "SELECT contact FROM "+pg.schema+".koi_roster_items"); len(got) != 0 {
			t.Errorf("PostgreSQL has roster items %q, want none", got)
		}
		if items := mixRoster(t, alice); !slices.Equal(items, []string{"bob@example.org"}) {
			t.Errorf("roster get: %q", items)
		}
		zoe := login(t, opts, "zo\u00eb@"+mixDomain+"/mix", pw)
		if r := zoe.iq("<iq type='get'><query xmlns='jabber:iq:roster'/></iq>"); r.attr("type") != "result" {
			t.Errorf("zoë's roster get: %s", r)
		}
	})

	t.Run("MariaDB kills the roster plugin's sessions", func(t *testing.T) {
		ctx := t.Context()
		admin, err := my.admin.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close()
		tx, err := admin.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		// Hold alice's roster version row: her next roster write waits.
		var v int64
		if err := tx.QueryRowContext(ctx, "SELECT version FROM koi_roster_versions WHERE owner = ? FOR UPDATE", "alice@"+mixDomain).Scan(&v); err != nil {
			t.Fatal(err)
		}
		sent := time.Now()
		resp := make(chan *element, 1)
		go func() {
			ictx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			r, err := alice.iqCtx(ictx, "<iq type='set'><query xmlns='jabber:iq:roster'><item jid='carol@example.org'/></query></iq>")
			if err != nil {
				t.Errorf("roster set while the database kills the session: %v", err)
			}
			resp <- r
		}()
		waitQuery(t, admin, false, "koi_roster_versions")
		killed := mixKill(t, admin)
		var r *element
		select {
		case r = <-resp:
		case <-time.After(15 * time.Second):
			t.Fatal("no answer to the roster set 15s after the kill")
		}
		if r == nil {
			t.FailNow()
		}
		if typ, cond := r.stanzaError(); r.attr("type") != "error" || typ != "wait" || cond != "internal-server-error" {
			t.Errorf("roster set whose session was killed: %s, want a wait/internal-server-error", r)
		}
		if d := time.Since(sent); d > 4*time.Second {
			t.Errorf("the error came %v after the request: the kill, not a timeout, should end it", d)
		}
		t.Logf("killed %d MariaDB sessions; the client got %s after %v", killed, r, time.Since(sent).Round(time.Millisecond))
		tx.Rollback()
		// The next request works, and alice's stream never broke.
		if r := alice.iq("<iq type='set'><query xmlns='jabber:iq:roster'><item jid='carol@example.org'/></query></iq>"); r.attr("type") != "result" {
			t.Errorf("roster set after the kill: %s", r)
		}
		if items := mixRoster(t, alice); !slices.Equal(items, []string{"bob@example.org", "carol@example.org"}) {
			t.Errorf("roster after the kill: %q", items)
		}
	})

	t.Run("PostgreSQL terminates the auth plugin's sessions", func(t *testing.T) {
		ctx := t.Context()
		admin, err := pg.admin.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close()
		tx, err := admin.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		// Reads of the credentials wait behind this lock.
		if _, err := tx.ExecContext(ctx, "LOCK TABLE "+pg.schema+".koi_scram_credentials IN ACCESS EXCLUSIVE MODE"); err != nil {
			t.Fatal(err)
		}
		raw := dialRaw(t, srv.c2s, nil)
		raw.open(mixDomain)
		raw.startTLS(mixDomain, tlsCfg)
		result := make(chan *element, 1)
		sent := time.Now()
		go func() { result <- raw.auth(sasl.ScramSha256, "alice", pw) }()
		waitQuery(t, admin, true, "koi_scram_credentials")
		var n int
		if err := admin.QueryRowContext(ctx, `SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE application_name = $1 AND pid <> pg_backend_pid()`, pg.name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		var el *element
		select {
		case el = <-result:
		case <-time.After(15 * time.Second):
			t.Fatal("no SASL answer 15s after the kill")
		}
		if got := saslCondition(el); got != "temporary-auth-failure" {
			t.Errorf("login whose session was terminated: %s, want <temporary-auth-failure/>", el)
		}
		t.Logf("terminated %d PostgreSQL sessions; the client got %s after %v", n, el, time.Since(sent).Round(time.Millisecond))
		tx.Rollback()
		c := login(t, opts, "alice@"+mixDomain+"/again", pw)
		if r := c.iq("<iq type='get' to='" + mixDomain + "'><ping xmlns='urn:xmpp:ping'/></iq>"); r.attr("type") != "result" {
			t.Errorf("ping after the login that followed the kill: %s", r)
		}
	})
}

// mixRoster returns the JIDs of c's roster, sorted.
func mixRoster(t *testing.T, c *client) []string {
	t.Helper()
	r := c.iq("<iq type='get'><query xmlns='jabber:iq:roster'/></iq>")
	if r.attr("type") != "result" {
		t.Fatalf("roster get: %s", r)
	}
	var out []string
	for _, it := range r.child(nsRoster, "query").children(nsRoster, "item") {
		out = append(out, it.attr("jid"))
	}
	slices.Sort(out)
	return out
}

// waitQuery waits until another session's statement on table has run for
// 200ms, which means it waits for the test's lock.
func waitQuery(t *testing.T, admin *sql.Conn, postgres bool, table string) {
	t.Helper()
	q := `SELECT COUNT(*) FROM information_schema.processlist
		WHERE db = DATABASE() AND id <> CONNECTION_ID() AND info LIKE ? AND time_ms > 200`
	if postgres {
		q = `SELECT COUNT(*) FROM pg_stat_activity
			WHERE pid <> pg_backend_pid() AND wait_event_type = 'Lock' AND query LIKE $1`
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := admin.QueryRowContext(t.Context(), q, "%"+table+"%").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no statement on %s waits for the lock after 10s", table)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mixKill ends the MariaDB sessions on the test's database but admin's.
func mixKill(t *testing.T, admin *sql.Conn) int {
	t.Helper()
	rows, err := admin.QueryContext(t.Context(), "SELECT id FROM information_schema.processlist WHERE db = DATABASE() AND id <> CONNECTION_ID()")
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		rows.Scan(&id)
		ids = append(ids, id)
	}
	rows.Close()
	n := 0
	for _, id := range ids {
		// A session may close by itself meanwhile: 1094, unknown thread.
		if _, err := admin.ExecContext(t.Context(), fmt.Sprintf("KILL %d", id)); err == nil {
			n++
		}
	}
	return n
}

// BenchmarkLoginSCRAM measures whole XMPP logins (TCP, STARTTLS,
// SCRAM-SHA-256 against keys the sql plugin keeps, resource binding) from
// 50 concurrent clients, with accounts in SQLite or in PostgreSQL, and
// reports logins per second with p50 and p99.
//
//	go test ./e2e -run '^$' -bench LoginSCRAM -benchtime 2000x
func BenchmarkLoginSCRAM(b *testing.B) {
	const workers = 50
	for _, driver := range []string{"sqlite", "postgres"} {
		b.Run(driver, func(b *testing.B) {
			dir := b.TempDir()
			accounts := sqlbackend.Settings{Driver: "sqlite", DSN: filepath.Join(dir, "accounts.db")}
			if driver == "postgres" {
				pg := mixPostgres(b)
				accounts = sqlbackend.Settings{Driver: "postgres", DSN: pg.dsn, Schema: pg.schema}
			}
			st, err := sqlbackend.Open(context.Background(), accounts, nil)
			if err != nil {
				b.Fatal(err)
			}
			const pw = "bench password"
			for w := range workers {
				if err := st.CreateUser(context.Background(), mixDomain, fmt.Sprintf("bench%02d", w), pw); err != nil {
					b.Fatal(err)
				}
			}
			st.Close()
			// Rosters and the rest in SQLite for both: only the accounts'
			// database differs.
			srv := startMixed(b,
				"KOI_LOG__LEVEL=warn",
				"KOI_PLUGIN__ACCOUNTS__CONFIG__DRIVER="+accounts.Driver,
				"KOI_PLUGIN__ACCOUNTS__CONFIG__DSN="+accounts.DSN,
				"KOI_PLUGIN__ACCOUNTS__CONFIG__SCHEMA="+accounts.Schema,
				"KOI_PLUGIN__DATA__CONFIG__DRIVER=sqlite",
				"KOI_PLUGIN__DATA__CONFIG__DSN="+filepath.Join(dir, "data.db"),
			)
			tlsCfg := srv.tlsConfig(b, mixDomain)
			lat := make([]time.Duration, b.N)
			var next, failed atomic.Int64
			var firstErr atomic.Value
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for w := range workers {
				wg.Go(func() {
					full := fmt.Sprintf("bench%02d@%s/bench", w, mixDomain)
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						t0 := time.Now()
						ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
						c, err := connect(ctx, b, dialOpts{addr: srv.c2s, tls: tlsCfg, mechs: []sasl.Mechanism{sasl.ScramSha256}}, full, pw)
						cancel()
						lat[i] = time.Since(t0)
						if err != nil {
							failed.Add(1)
							firstErr.CompareAndSwap(nil, err)
							continue
						}
						c.close()
					}
				})
			}
			wg.Wait()
			el := time.Since(start)
			b.StopTimer()
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d of %d logins failed, first: %v", n, b.N, firstErr.Load())
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(b.N)/el.Seconds(), "logins/s")
			b.ReportMetric(float64(lat[b.N/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[b.N*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
