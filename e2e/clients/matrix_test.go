package clients

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/koi-im/koi/e2e/internal/koiproc"
)

var update = flag.Bool("update", false, "rewrite the Tested clients section of README.md with this run's table")

const (
	domain     = "localhost"
	peerJID    = "peer@" + domain
	runsPerRow = 3 // sequential logins per row, as a user reconnecting
	runTimeout = 45 * time.Second
	// parallelRows is how many rows run at once: each is a koi, its
	// plugin and a client, mostly waiting; CI machines have 2 cores.
	parallelRows = 3
	// peerWait is how long the peer may take to see a message from a
	// client that does not wait for the answer.
	peerWait = 5 * time.Second
)

type transport int

const (
	starttls transport = iota
	directTLS
	webSocket
)

func (tr transport) String() string {
	return [...]string{"STARTTLS", "direct TLS", "WebSocket"}[tr]
}

func (tr transport) short() string { return [...]string{"stls", "tls", "ws"}[tr] }

type tlsMode int

const (
	tlsDefault  tlsMode = iota // koi's and the client's defaults (TLS 1.3)
	tlsServer12                // koi with tls { max_version = "1.2" }
	tlsClient12                // the client capped at 1.2
	tlsNone                    // ws:// (no TLS)
)

func (m tlsMode) String() string {
	return [...]string{"default", "server max 1.2", "client max 1.2", "none (ws://)"}[m]
}

func (m tlsMode) short() string { return [...]string{"d", "s12", "c12", "none"}[m] }

// row is one line of the table: one client, transport and TLS setting,
// logged in runsPerRow times.
type row struct {
	driver    Driver
	client    string // package and version
	transport transport
	tls       tlsMode
	skip      string // why the row did not run (pending koi feature, client missing)
	runs      []runResult
}

type runResult struct {
	user string
	log  runLog
	took time.Duration // the client's run
	err  error
}

func (r *row) name() string { return r.transport.short() + "-" + r.tls.short() }

// matrix lists the rows of every driver: each transport it supports, and
// for TCP each TLS setting.
func matrix(drivers []Driver) []*row {
	var rows []*row
	for _, d := range drivers {
		c := d.Caps()
		add := func(tr transport, m tlsMode) {
			rows = append(rows, &row{driver: d, client: d.Name(), transport: tr, tls: m})
		}
		for _, tr := range []transport{starttls, directTLS} {
			if (tr == starttls && !c.StartTLS) || (tr == directTLS && !c.DirectTLS) {
				continue
			}
			add(tr, tlsDefault)
			add(tr, tlsServer12)
			if c.ForceTLS12 {
				add(tr, tlsClient12)
			}
		}
		if c.WebSocket {
			add(webSocket, tlsNone)
		}
	}
	return rows
}

// TestClients is the real-client matrix (see the package comment): every
// driver, transport and TLS setting, each a few logins in a row from
// 127.0.0.1 against koi with the settings a new user gets.
func TestClients(t *testing.T) {
	if testing.Short() {
		t.Skip("the client matrix starts koi and real clients; not in -short")
	}
	start := time.Now()
	ctx := context.Background()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bins, err := koiproc.Build(ctx, root, t.TempDir(), os.Getenv("E2E_RACE") != "")
	if err != nil {
		t.Fatal(err)
	}
	env := &Env{CacheDir: filepath.Join(root, ".cache"), Root: os.Geteuid() == 0}
	ci := os.Getenv("CI") == "true"
	wsPending, tls12Pending, err := probeConfig(ctx, bins, root, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if wsPending != "" {
		t.Logf("WebSocket rows pending: koi check-config says %s", wsPending)
	}
	if tls12Pending != "" {
		t.Logf("server TLS 1.2 rows pending: koi check-config says %s", tls12Pending)
	}
	rows := matrix(allDrivers())
	for _, r := range rows {
		switch {
		case r.transport == webSocket && wsPending != "":
			r.skip = `pending: koi has no listen "websocket" yet`
		case r.tls == tlsServer12 && tls12Pending != "":
			r.skip = "pending: koi has no tls.max_version yet"
		}
	}
	h := &harness{env: env, bins: bins, root: root, ci: ci}
	// Each client is set up once, one after another (apt and npm), then
	// the rows of all clients share a few slots.
	for _, d := range allDrivers() {
		t.Run("setup/"+d.Name(), func(t *testing.T) { setupDriver(t, h, d, rows) })
	}
	t.Run("clients", func(t *testing.T) {
		slots := make(chan struct{}, parallelRows)
		var wg sync.WaitGroup
		for _, r := range rows {
			if r.skip != "" {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				slots <- struct{}{}
				defer func() { <-slots }()
				t.Run(r.driver.Name()+"/"+r.name(), func(t *testing.T) { testRow(t, h, r) })
			}()
		}
		wg.Wait()
	})
	table := fmt.Sprintf("Run on %s against koi %s, %s.\n\n", time.Now().UTC().Format("2006-01-02"), koiVersion(root), platform()) +
		renderTable(rows)
	t.Logf("client matrix (%v):\n%s", time.Since(start).Round(time.Second), table)
	out := filepath.Join(env.CacheDir, "clients", "matrix.md")
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err == nil {
		if err := os.WriteFile(out, []byte(table), 0o644); err == nil {
			t.Logf("table written to %s", out)
		}
	}
	if *update {
		if err := updateReadme(filepath.Join(root, "README.md"), table); err != nil {
			t.Fatal(err)
		}
		t.Log("README.md updated")
	}
}

// koiVersion describes the checkout under test, as the Makefile does.
func koiVersion(root string) string {
	cmd := exec.Command("git", "describe", "--tags", "--always", "--dirty")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return "(unknown version)"
	}
	return strings.TrimSpace(string(out))
}

// platform names the OS release and Node, which the clients depend on.
func platform() string {
	name := "unknown OS"
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
				name = strings.Trim(v, `"`)
			}
		}
	}
	if out, err := exec.Command("node", "--version").Output(); err == nil {
		name += ", Node " + strings.TrimSpace(string(out))
	}
	return name
}

// harness is what every driver's test shares.
type harness struct {
	env  *Env
	bins koiproc.Bins
	root string
	ci   bool // CI=true: a missing client is a failure
}

// setupDriver installs d's client if needed and names its rows with the
// installed version; rows of a client that is not there are skipped.
func setupDriver(t *testing.T, h *harness, d Driver, rows []*row) {
	ctx := context.Background()
	err := d.Setup(ctx, h.env)
	version := clientVersion(ctx, h.env, d)
	for _, r := range rows {
		if r.driver.Name() != d.Name() {
			continue
		}
		r.client = d.Name() + " " + version
		if err != nil && r.skip == "" {
			r.skip = "skipped: not installed"
		}
	}
	switch {
	case err == nil:
	case errors.Is(err, ErrMissing) && !h.ci:
		t.Skipf("%s not available (CI=true makes this a failure): %v", d.Name(), err)
	default:
		t.Fatalf("%s: %v", d.Name(), err)
	}
}

// testRow logs the client in runsPerRow times in a row, from 127.0.0.1,
// on a koi of the row's own: runs are attributed koi's log lines by the
// time they were written, and one row's failed logins must not lock the
// next row out (within the row they may: that is what users meet).
func testRow(t *testing.T, h *harness, r *row) {
	d := r.driver
	k := startKoi(t, h.bins, h.root, serverOpts{
		WebSocket: r.transport == webSocket, MaxTLS12: r.tls == tlsServer12, PeerPasswd: password(),
	})
	for i := 1; i <= runsPerRow; i++ {
		res := runOnce(t, h.env, d, k, r, i)
		r.runs = append(r.runs, res)
		t.Logf("run %d as %s: %v in %v, %d refused", i, res.user, res.err == nil, res.took.Round(10*time.Millisecond), res.log.Refused)
		switch {
		case errors.Is(res.err, errClientBug):
			t.Logf("%s %s %s, run %d as %s@%s: %v", d.Name(), r.transport, r.tls, i, res.user, domain, res.err)
		case res.err != nil:
			t.Errorf("%s %s %s, run %d as %s@%s: %v\n--- koi log for this run ---\n%s",
				d.Name(), r.transport, r.tls, i, res.user, domain, res.err, strings.Join(res.log.Excerpt, "\n"))
		}
	}
}

// runOnce makes a fresh account and lets the client log in with it once.
func runOnce(t *testing.T, env *Env, d Driver, k *koiServer, r *row, i int) runResult {
	user := accountName(d.Name(), r, i)
	res := runResult{user: user}
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	me := Account{User: user, Domain: domain, Password: password()}
	if err := k.srv.AddUser(ctx, me.JID(), me.Password); err != nil {
		res.err = err
		return res
	}
	work := filepath.Join(t.TempDir(), user)
	if err := os.MkdirAll(work, 0o700); err != nil {
		res.err = err
		return res
	}
	tg := Target{Domain: domain, Host: "127.0.0.1", CAFile: k.caFile, WorkDir: work,
		ClientMaxTLS12: r.tls == tlsClient12}
	switch r.transport {
	case starttls:
		tg.Port = port(k.c2s)
	case directTLS:
		tg.Port, tg.DirectTLS = port(k.c2sTLS), true
	case webSocket:
		tg.Port = port(k.ws)
		tg.WebSocketURL = "ws://" + k.ws + wsPath
	}
	x := Exchange{Me: me, Peer: peerJID, Send: fmt.Sprintf("hello %d from %s", i, user)}
	if d.Caps().Receive {
		x.Want = "re: " + x.Send
	}
	mark := len(k.srv.Log.String())
	began := time.Now()
	res.err = d.Run(ctx, env, tg, x)
	res.took = time.Since(began)
	if res.err == nil && !k.peer.waitFor(me.JID(), x.Send, peerWait) {
		res.err = fmt.Errorf("the peer did not get %q from %s (it got %s)", x.Send, me.JID(), k.peer.received(me.JID()))
	}
	if err := k.peer.alive(); err != nil && res.err == nil {
		res.err = err
	}
	// koi's log reaches us through a pipe: let the last lines of this
	// run arrive before cutting the window.
	time.Sleep(100 * time.Millisecond)
	res.log = analyseRun(k.srv.Log.String()[mark:], user, domain)
	return res
}

// accountName names a run's account so that every log line about it
// says which client, row and run it was: "python3-slixmpp.stls.d.r1".
func accountName(client string, r *row, i int) string {
	s := strings.Trim(regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(client), "-"), "-")
	return fmt.Sprintf("%s.%s.%s.r%d", s, r.transport.short(), r.tls.short(), i)
}

func password() string {
	b := make([]byte, 9)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func port(addr string) int {
	var p int
	fmt.Sscanf(addr[strings.LastIndexByte(addr, ':')+1:], "%d", &p)
	return p
}
