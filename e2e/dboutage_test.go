package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/template"
	"time"
)

// The database outage test (issue 17 item 9): koi's data, the archive
// included, lives in a PostgreSQL of the test's own, which is killed with
// SIGKILL under a steady message load between online users and started
// again after KOI_TEST_DB_OUTAGE (default 8s; the documented long run is
// 30s). Nothing may be refused or lost, and the archive must end up with
// every message exactly once.

// unavailable skips tb naming what is missing, or fails it under CI=true.
func unavailable(tb testing.TB, what string) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatal(what)
	}
	tb.Skip(what)
}

// privatePG is a PostgreSQL cluster in a temporary directory, run in the
// foreground so that the test can SIGKILL it.
type privatePG struct {
	bin, dir, port string
	cred           *syscall.Credential // the postgres user's, when running as root
	cmd            *exec.Cmd
	exited         chan struct{}
	log            *syncBuffer
}

func startPrivatePG(t *testing.T) *privatePG {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(bins) == 0 {
		unavailable(t, "PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin (Debian package postgresql)")
	}
	sort.Slice(bins, func(i, j int) bool { return pgMajor(bins[i]) < pgMajor(bins[j]) })
	p := &privatePG{bin: filepath.Dir(bins[len(bins)-1]), log: &syncBuffer{}}
	dir, err := os.MkdirTemp("", "koi-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p.dir = dir
	if os.Geteuid() == 0 {
		// initdb and postgres refuse to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			unavailable(t, "running as root and there is no user postgres to run PostgreSQL as: "+err.Error())
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(filepath.Join(p.bin, "initdb"), "-D", filepath.Join(dir, "data"), "-A", "trust",
		"-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.port = strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	p.start(t)
	t.Cleanup(func() {
		if p.cmd != nil {
			p.cmd.Process.Signal(syscall.SIGTERM)
			<-p.exited
		}
		if t.Failed() {
			t.Logf("postgres log:\n%s", p.log)
		}
	})
	return p
}

func pgMajor(bin string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(bin))))
	return n
}

func (p *privatePG) dsn() string {
	return "postgres://postgres@127.0.0.1:" + p.port + "/postgres?sslmode=disable"
}

// start runs postgres and waits until it accepts connections. After a
// SIGKILL its old backends may still hold the shared memory for a moment,
// which makes a start fail: it tries again.
func (p *privatePG) start(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		// fsync off: the test kills the server, not the machine, and the
		// kernel keeps what was written. Commits stay synchronous, so an
		// acknowledged row is in the kernel before the client hears of it.
		cmd := exec.Command(filepath.Join(p.bin, "postgres"), "-D", filepath.Join(p.dir, "data"),
			"-c", "listen_addresses=127.0.0.1", "-p", p.port, "-k", p.dir,
			"-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=200")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
		cmd.Stdout, cmd.Stderr = p.log, p.log
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting postgres: %v", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		for {
			c, err := net.DialTimeout("tcp", "127.0.0.1:"+p.port, time.Second)
			if err == nil {
				c.Close()
				db, err := sql.Open("pgx", p.dsn())
				if err == nil {
					err = db.Ping()
					db.Close()
				}
				if err == nil {
					p.cmd, p.exited = cmd, exited
					return
				}
			}
			select {
			case <-exited:
			case <-time.After(20 * time.Millisecond):
				if time.Now().After(deadline) {
					t.Fatalf("postgres does not start: %v\n%s", err, p.log)
				}
				continue
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("postgres keeps exiting at start:\n%s", p.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kill SIGKILLs the postmaster, the way an OOM killer or a crashed VM
// ends a database.
func (p *privatePG) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.exited
	p.cmd = nil
}

var outageConfig = template.Must(template.New("outage").Parse(`# koi e2e database outage config
log { level = "info"  format = "text" }
listen "c2s"     { address = "{{.C2S}}"  starttls = "required" }
listen "c2s_tls" { address = "{{.C2STLS}}" }
tls { cert_file = "{{.Dir}}/tls/cert.pem"  key_file = "{{.Dir}}/tls/key.pem" }
plugin "store" {
  command = "{{.SQL}}"
  config  = { driver = "postgres"  dsn = "{{.DSN}}" }
}
host "localhost" {
  auth    = "store"
  roster  = "store"
  offline = "store"
  vcard   = "store"
  private = "store"
  archive = "store"
}
limits {
  auth_failures_per_ip = 0
  auth_failures_per_account = 0
}
server { shutdown_timeout = "10s"  data_dir = "{{.Dir}}/data" }
`))

func TestArchiveSurvivesDatabaseOutage(t *testing.T) {
	t.Parallel()
	outage := 8 * time.Second
	if v := os.Getenv("KOI_TEST_DB_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("KOI_TEST_DB_OUTAGE=%q: want a duration like 30s", v)
		}
		outage = d
	}
	pg := startPrivatePG(t)
	dir := t.TempDir()
	c2s, c2sTLS := freeAddr(t), freeAddr(t)
	var b bytes.Buffer
	if err := outageConfig.Execute(&b, map[string]any{
		"C2S": c2s, "C2STLS": c2sTLS, "Dir": dir, "SQL": pluginBin(), "DSN": pg.dsn(),
	}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "koi.hcl")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	s := launch(t, dir, path, c2s, c2sTLS, options{}, nil)

	// Four senders, each writing to its own recipient every 10 ms.
	const pairs, interval = 4, 10 * time.Millisecond
	const pw = "outage-pw"
	o := dialOpts{addr: s.c2s, tls: s.tlsConfig(t, "localhost")}
	var senders, recipients []*client
	for i := range pairs {
		s.addUser(t, fmt.Sprintf("s%d@localhost", i), pw)
		s.addUser(t, fmt.Sprintf("r%d@localhost", i), pw)
		snd := login(t, o, fmt.Sprintf("s%d@localhost/load", i), pw)
		rcv := login(t, o, fmt.Sprintf("r%d@localhost/load", i), pw)
		snd.online()
		rcv.online()
		senders, recipients = append(senders, snd), append(recipients, rcv)
	}

	// Recipients drain as messages come, noting how long each took.
	type arrival struct {
		id    string
		delay time.Duration
	}
	got := make([][]arrival, pairs)
	var sent [pairs]atomic.Int64
	stop := make(chan struct{})
	var drains sync.WaitGroup
	for i, rcv := range recipients {
		drains.Go(func() {
			from := senders[i].jid
			for {
				m, ok := rcv.await(time.Second, isMessageFrom(from))
				if !ok {
					select {
					case <-stop:
						if int64(len(got[i])) >= sent[i].Load() {
							return
						}
					default:
					}
					continue
				}
				_, stamp, _ := strings.Cut(m.child(nsClient, "body").Text, " ")
				ns, _ := strconv.ParseInt(stamp, 10, 64)
				id := ""
				for _, sid := range m.children(nsSID, "stanza-id") {
					if sid.attr("by") == fmt.Sprintf("r%d@localhost", i) {
						id = sid.attr("id")
					}
				}
				got[i] = append(got[i], arrival{id: id, delay: time.Since(time.Unix(0, ns))})
			}
		})
	}
	var load sync.WaitGroup
	var sendErrs atomic.Int64
	loadDone := make(chan struct{})
	for i, snd := range senders {
		load.Go(func() {
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for n := 0; ; n++ {
				select {
				case <-loadDone:
					return
				case <-tick.C:
				}
				st := fmt.Sprintf("<message to='r%d@localhost' type='chat'><body>%d %d</body></message>", i, n, time.Now().UnixNano())
				if err := snd.sess.Send(context.Background(), tokens(st)); err != nil {
					sendErrs.Add(1)
					return
				}
				sent[i].Add(1)
			}
		})
	}

	time.Sleep(2 * time.Second)
	killedAt := time.Now()
	pg.kill(t)
	t.Logf("PostgreSQL killed (SIGKILL) for %v under %d messages a second", outage, int(pairs*time.Second/interval))
	time.Sleep(outage)
	pg.start(t)
	back := time.Now()
	t.Logf("PostgreSQL back after %v", back.Sub(killedAt).Round(time.Millisecond))
	time.Sleep(3 * time.Second)
	close(loadDone)
	load.Wait()
	if sendErrs.Load() > 0 {
		t.Fatalf("%d senders lost their connection", sendErrs.Load())
	}

	// Every message arrives (drains end once they have them all, or after
	// a minute without progress of the whole run).
	close(stop)
	finished := make(chan struct{})
	go func() { drains.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(time.Minute):
		for i := range pairs {
			t.Errorf("r%d received %d of %d", i, len(got[i]), sent[i].Load())
		}
		t.FailNow()
	}
	var total, refused int64
	var delays []time.Duration
	for i, snd := range senders {
		total += sent[i].Load()
		for {
			e, ok := snd.await(100*time.Millisecond, func(e *element) bool { return e.is(nsClient, "message") && e.attr("type") == "error" })
			if !ok {
				break
			}
			refused++
			if refused <= 3 {
				t.Errorf("refused: %s", e)
			}
		}
		for _, a := range got[i] {
			delays = append(delays, a.delay)
		}
	}
	var received int64
	for i := range pairs {
		received += int64(len(got[i]))
	}
	lost := total - refused - received
	slices.Sort(delays)
	pct := func(p float64) time.Duration { return delays[int(p*float64(len(delays)-1))].Round(time.Millisecond) }

	// The archive: each sender's has its messages, each recipient's the
	// ids it was given, once each; wait for the journal's replay.
	db, err := sql.Open("pgx", pg.dsn())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	archived := func(owner string) (ids []string) {
		rows, err := db.Query("SELECT stanza_id FROM koi_archive WHERE owner = $1 ORDER BY stanza_id", owner)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			rows.Scan(&id)
			ids = append(ids, id)
		}
		return ids
	}
	deadline := time.Now().Add(time.Minute)
	var complete time.Duration
	for {
		ok := true
		for i := range pairs {
			if int64(len(archived(fmt.Sprintf("s%d@localhost", i)))) != sent[i].Load() ||
				len(archived(fmt.Sprintf("r%d@localhost", i))) != len(got[i]) {
				ok = false
			}
		}
		if ok {
			complete = time.Since(back)
			break
		}
		if time.Now().After(deadline) {
			for i := range pairs {
				t.Errorf("s%d: %d archived of %d sent; r%d: %d archived of %d received", i, len(archived(fmt.Sprintf("s%d@localhost", i))),
					sent[i].Load(), i, len(archived(fmt.Sprintf("r%d@localhost", i))), len(got[i]))
			}
			t.FailNow()
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i := range pairs {
		var want []string
		for _, a := range got[i] {
			want = append(want, a.id)
		}
		slices.Sort(want)
		if have := archived(fmt.Sprintf("r%d@localhost", i)); !slices.Equal(have, want) {
			t.Errorf("r%d: the archive's ids differ from those delivered (%d and %d)", i, len(have), len(want))
		}
	}
	log := s.log.String()
	t.Logf("sent %d, refused %d, lost %d, delivered %d; delay p50 %v, p99 %v, max %v; archive complete %v after the database came back",
		total, refused, lost, received, pct(0.5), pct(0.99), pct(1), complete.Round(time.Millisecond))
	if refused != 0 || lost != 0 {
		t.Errorf("%d refused and %d lost, want none", refused, lost)
	}
	for _, want := range []string{"archive backend unreachable; batches go to the journal", "messages) journaled",
		"archive backend reachable again", "archive journal replayed"} {
		if !strings.Contains(log, want) {
			t.Errorf("koi's log lacks %q", want)
		}
	}
	// The outage is logged at its start and then every 5 s, not at every
	// failed attempt.
	if n, most := strings.Count(log, "archive backend unreachable"), int(outage/(5*time.Second))+3; n > most {
		t.Errorf("the outage was logged %d times in %v, want at most %d", n, outage, most)
	}
}
