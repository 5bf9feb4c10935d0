package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/koi-im/koi/internal/testsvc"
)

const nsExtDisco = "urn:xmpp:extdisco:2"

// startCoturn runs Debian's coturn (installed when missing) on a free
// port of 127.0.0.1, checking TURN REST API credentials made with secret
// (use-auth-secret, as operators set it up for XMPP servers), and returns
// the port.
func startCoturn(t *testing.T, secret string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	testsvc.Require(t, testsvc.AptInstall(ctx, "coturn"))
	dir := t.TempDir()
	_, port, _ := net.SplitHostPort(freeAddr(t))
	cmd := exec.Command("turnserver", "-n", "--listening-ip=127.0.0.1", "--listening-port="+port,
		"--relay-ip=127.0.0.1", "--min-port=49160", "--max-port=49400", "--allow-loopback-peers",
		"--use-auth-secret", "--static-auth-secret="+secret, "--realm=koi.test",
		"--no-tls", "--no-dtls", "--no-cli", "--simple-log", "--log-file="+filepath.Join(dir, "turn.log"),
		"--userdb="+filepath.Join(dir, "turndb"), "--pidfile="+filepath.Join(dir, "turn.pid"))
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting turnserver: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second)
		if err == nil {
			c.Close()
			return port
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "turn.log"))
			t.Fatalf("turnserver is not listening on %s: %v\n%s", port, err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// turnRelay has coturn's own test client allocate a relay on the TURN
// server at port with the credentials and send through it; it reports
// whether that worked, and the client's output.
func turnRelay(t *testing.T, port, username, password string) (bool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "turnutils_uclient", "-p", port, "-u", username, "-w", password,
		"-y", "-n", "1", "-m", "1", "-l", "64", "127.0.0.1").CombinedOutput()
	s := string(out)
	// The summary: how many messages went out through the relay and came
	// back (their number depends on the client's timing).
	m := relayed.FindStringSubmatch(s)
	return err == nil && !strings.Contains(s, "ERROR") && m != nil && m[1] == m[2] && m[1] != "0", s
}

var relayed = regexp.MustCompile(`start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)`)

// TestTURNCredentials: a user finds the TURN server in the server's
// disco#info and gets its services with credentials (XEP-0215), with which
// a real coturn relays for them; the same username with another password
// is refused, and a user asks for the credentials of one service.
func TestTURNCredentials(t *testing.T) {
	t.Parallel()
	const secret = "koi-e2e-turn-secret-0123456789"
	port := startCoturn(t, secret)
	opt := defaultOptions()
	opt.Extra = fmt.Sprintf("turn { host = \"127.0.0.1\"  port = %s  secret = %q  ttl = \"1h\" }\n", port, secret)
	srv := startServer(t, opt)
	const pw = "pw-turn"
	srv.addUser(t, "alice@localhost", pw)
	alice := login(t, dialOpts{addr: srv.c2s, tls: srv.tlsConfig(t, "localhost")}, "alice@localhost/phone", pw)

	info := alice.iq("<iq type='get' to='localhost'><query xmlns='" + nsDiscoInfo + "'/></iq>")
	if !strings.Contains(info.String(), "var='"+nsExtDisco+"'") {
		t.Fatalf("the server does not advertise %s: %s", nsExtDisco, info)
	}
	res := alice.iq("<iq type='get' to='localhost'><services xmlns='" + nsExtDisco + "'/></iq>")
	var turnUDP *element
	types := map[string]bool{}
	for _, s := range res.child(nsExtDisco, "services").children(nsExtDisco, "service") {
		types[s.attr("type")+"/"+s.attr("transport")] = true
		if s.attr("host") != "127.0.0.1" || s.attr("port") != port {
			t.Fatalf("a service elsewhere: %s", s)
		}
		if s.attr("type") == "turn" && s.attr("transport") == "udp" {
			turnUDP = s
		}
	}
	if !types["stun/udp"] || !types["turn/tcp"] || turnUDP == nil {
		t.Fatalf("services: %s", res)
	}
	exp, err := time.Parse(time.RFC3339, turnUDP.attr("expires"))
	if err != nil || exp.Before(time.Now().Add(50*time.Minute)) || exp.After(time.Now().Add(61*time.Minute)) {
		t.Fatalf("expiry %q: %v", turnUDP.attr("expires"), err)
	}
	if ok, out := turnRelay(t, port, turnUDP.attr("username"), turnUDP.attr("password")); !ok {
		t.Fatalf("coturn refused koi's credentials %s:\n%s", turnUDP, out)
	}
	if ok, out := turnRelay(t, port, turnUDP.attr("username"), "x"+turnUDP.attr("password")); ok {
		t.Fatalf("coturn took a wrong password:\n%s", out)
	}

	cr := alice.iq("<iq type='get' to='localhost'><credentials xmlns='" + nsExtDisco + "'><service host='127.0.0.1' type='turn' port='" + port + "'/></credentials></iq>")
	got := cr.child(nsExtDisco, "credentials").children(nsExtDisco, "service")
	if len(got) != 2 || got[0].attr("username") == "" || got[0].attr("password") == "" {
		t.Fatalf("credentials of the turn service: %s", cr)
	}
}
