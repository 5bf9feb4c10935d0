package e2e

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"mellium.im/sasl"
)

// TestPluginCrash kills the storage plugin under a running server: calls
// that need it must fail fast with a wait-type error, traffic that does
// not need it must keep flowing, and once the plugin is back its data must
// be there.
func TestPluginCrash(t *testing.T) {
	t.Parallel()
	// The plugin runs from a private copy, so that the test can make its
	// restart fail for a while by moving the binary away.
	plugin := filepath.Join(t.TempDir(), "koi-backend-sql")
	copyFile(t, pluginBin(), plugin)
	opt := defaultOptions()
	opt.PluginCommand = plugin
	srv := startServer(t, opt)
	const pw = "pw-crash"
	for _, u := range []string{"alice", "bob", "ivan", "xena", "yuri"} {
		srv.addUser(t, u+"@localhost", pw)
	}
	local := dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}

	alice := login(t, local, "alice@localhost/a", pw)
	bob := login(t, local, "bob@localhost/b", pw)
	for _, c := range []*client{alice, bob} {
		c.send("<presence/>")
		c.expect("own presence", isPresence("", c.jid))
	}
	// ivan stores a roster item and a vCard, then leaves so that nothing
	// of his stays cached in the server.
	ivan := login(t, local, "ivan@localhost/i", pw)
	if r := ivan.iq("<iq type='set'><query xmlns='jabber:iq:roster'><item jid='zoe@localhost' name='Zoe'><group>Crew</group></item></query></iq>"); r.attr("type") != "result" {
		t.Fatalf("roster set: %s", r)
	}
	if r := ivan.iq("<iq type='set'><vCard xmlns='vcard-temp'><FN>Ivan Petrov</FN></vCard></iq>"); r.attr("type") != "result" {
		t.Fatalf("vCard set: %s", r)
	}
	ivan.close()
	// xena and yuri are online but have not loaded their rosters.
	xena := login(t, local, "xena@localhost/x", pw)
	yuri := login(t, local, "yuri@localhost/y", pw)

	rosterGet := "<iq type='get'><query xmlns='jabber:iq:roster'/></iq>"
	vcardGet := "<iq type='get'><vCard xmlns='vcard-temp'/></iq>"

	t.Run("restart after SIGKILL", func(t *testing.T) {
		pid := killPlugin(t, srv)
		// Whether the plugin is already back or not, the answer comes
		// quickly: a hang would take the call timeout or longer.
		start := time.Now()
		r := timedIQ(t, xena, vcardGet, 2*time.Second)
		if r.attr("type") == "error" {
			if typ, cond := r.stanzaError(); typ != "wait" || cond != "internal-server-error" {
				t.Errorf("vCard get during the outage: %s, want a wait/internal-server-error", r)
			}
		}
		t.Logf("first call after the kill answered %s in %v", r.attr("type"), time.Since(start))
		waitBackendUp(t, xena, rosterGet, 10*time.Second)
		if pids := srv.pluginPIDs(t); len(pids) != 1 || pids[0] == pid {
			t.Errorf("plugin PIDs after restart: %v (killed %d)", pids, pid)
		}
	})

	t.Run("outage", func(t *testing.T) {
		away := plugin + ".away"
		if err := os.Rename(plugin, away); err != nil {
			t.Fatal(err)
		}
		restored := false
		restore := func() {
			if !restored {
				restored = true
				if err := os.Rename(away, plugin); err != nil {
					t.Fatal(err)
				}
			}
		}
		defer restore()
		killPlugin(t, srv)

		for _, req := range []string{rosterGet, vcardGet} {
			start := time.Now()
			r := timedIQ(t, yuri, req, 2*time.Second)
			if typ, cond := r.stanzaError(); typ != "wait" || cond != "internal-server-error" {
				t.Errorf("%s during the outage: %s, want a wait/internal-server-error error", req, r)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("error took %v", d)
			}
		}

		// Online users keep talking: routing needs no backend.
		alice.send("<message to='bob@localhost' type='chat'><body>still here?</body></message>")
		if m := bob.expect("alice's message during the outage", isMessageFrom("alice@localhost/a")); m.path("body").Text != "still here?" {
			t.Errorf("bob got %s", m)
		}
		bob.send("<message to='alice@localhost/a' type='chat'><body>yes</body></message>")
		alice.expect("bob's reply during the outage", isMessageFrom("bob@localhost/b"))

		// A login cannot be checked: a temporary failure, not a wrong
		// password.
		raw := dialRaw(t, srv.c2s, nil)
		raw.open("localhost")
		raw.startTLS("localhost", local.tls)
		if el := raw.auth(sasl.ScramSha256, "ivan", pw); saslCondition(el) != "temporary-auth-failure" {
			t.Errorf("login during the outage: %s, want <temporary-auth-failure/>", el)
		}

		restore()
		waitBackendUp(t, yuri, rosterGet, 20*time.Second)
	})

	t.Run("data intact", func(t *testing.T) {
		ivan := login(t, local, "ivan@localhost/i2", pw)
		r := ivan.iq(rosterGet)
		items := r.child(nsRoster, "query").children(nsRoster, "item")
		if len(items) != 1 || items[0].attr("jid") != "zoe@localhost" || items[0].attr("name") != "Zoe" || items[0].path("group").Text != "Crew" {
			t.Errorf("ivan's roster after the restarts: %s", r)
		}
		v := ivan.iq(vcardGet)
		if fn := v.path("vCard", "FN"); fn == nil || fn.Text != "Ivan Petrov" {
			t.Errorf("ivan's vCard after the restarts: %s", v)
		}
	})
}

// killPlugin SIGKILLs koi's one SQL plugin process and waits until it is
// gone; it returns its PID.
func killPlugin(t *testing.T, srv *server) int {
	t.Helper()
	pids := srv.pluginPIDs(t)
	if len(pids) != 1 {
		t.Fatalf("koi (PID %d) has plugin children %v, want one", srv.cmd.Process.Pid, pids)
	}
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatalf("kill plugin %d: %v", pids[0], err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !processGone(pids[0]) {
		if time.Now().After(deadline) {
			t.Fatalf("plugin %d still running after SIGKILL", pids[0])
		}
		time.Sleep(10 * time.Millisecond)
	}
	return pids[0]
}

// timedIQ sends an IQ and fails the test if no answer comes within d.
func timedIQ(t *testing.T, c *client, iq string, d time.Duration) *element {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	r, err := c.iqCtx(ctx, iq)
	if err != nil {
		t.Fatalf("%s: no answer to %s within %v: %v", c.jid, iq, d, err)
	}
	return r
}

// waitBackendUp polls with an IQ that needs the backend until it succeeds.
func waitBackendUp(t *testing.T, c *client, iq string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	var last *element
	for time.Now().Before(deadline) {
		last = timedIQ(t, c, iq, 6*time.Second)
		if last.attr("type") == "result" {
			return
		}
		if typ, cond := last.stanzaError(); typ != "wait" || cond != "internal-server-error" {
			t.Errorf("while the plugin restarts: %s, want a wait/internal-server-error error", last)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("backend not back after %v: %s", limit, last)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
