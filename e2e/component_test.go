package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mellium.im/xmpp"
	mcomp "mellium.im/xmpp/component"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"
)

const (
	compDomain = "gw.localhost"
	compSecret = "e2e-component-secret-0123"
	nsDiscoIt  = "http://jabber.org/protocol/disco#items"
)

// componentServer starts koi with a component listener (TLS when
// withTLS) accepting compDomain, and metrics on.
func componentServer(t *testing.T, withTLS bool) (s *server, compAddr, metricsURL string) {
	t.Helper()
	compAddr = freeAddr(t)
	opt := defaultOptions()
	opt.Metrics = freeAddr(t)
	opt.Extra = fmt.Sprintf("listen \"component\" { address = %q  tls = %t }\ncomponent %q { secret = %q }\n",
		compAddr, withTLS, compDomain, compSecret)
	s = startServer(t, opt)
	s.waitListening(t, compAddr)
	s.waitListening(t, opt.Metrics)
	return s, compAddr, "http://" + opt.Metrics + "/metrics"
}

// dialComponent connects a component with mellium's XEP-0114 client.
func dialComponent(t *testing.T, addr, domain, secret string, tlsCfg *tls.Config) (*xmpp.Session, net.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	defer cancel()
	nc, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	var rw net.Conn = nc
	if tlsCfg != nil {
		tc := tls.Client(nc, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, nc, err
		}
		rw = tc
	}
	sess, err := mcomp.NewSession(ctx, jid.MustParse(domain), []byte(secret), rw)
	return sess, nc, err
}

// streamErr returns the condition of a stream error, "" for other errors.
func streamErr(err error) string {
	var se stream.Error
	if errors.As(err, &se) {
		return se.Err
	}
	return ""
}

// nextStanza reads the next element a component session receives.
func nextStanza(t *testing.T, sess *xmpp.Session) (*element, error) {
	t.Helper()
	sess.Conn().SetReadDeadline(time.Now().Add(waitTimeout))
	r := sess.TokenReader()
	defer r.Close()
	d := xml.NewTokenDecoder(r)
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		if start, ok := tok.(xml.StartElement); ok {
			return decodeElement(d, start)
		}
	}
}

func sendComponent(t *testing.T, sess *xmpp.Session, s string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := sess.Send(ctx, xml.NewDecoder(strings.NewReader(s))); err != nil {
		t.Fatalf("component sending %s: %v", s, err)
	}
}

// TestComponentRefusals: a bad secret, an unknown domain and a second
// connection for a connected domain are refused with the stream errors
// Prosody sends, logged, and change nothing; the connected component keeps
// serving, and a shutdown closes its stream properly.
func TestComponentRefusals(t *testing.T) {
	t.Parallel()
	s, addr, url := componentServer(t, false)
	s.addUser(t, "alice@localhost", "alice-pw")
	alice := login(t, dialOpts{addr: s.c2s, tls: s.tlsConfig(t, "localhost")}, "alice@localhost/pc", "alice-pw")

	bounced := func(id string) {
		t.Helper()
		alice.send("<message to='bot@" + compDomain + "' id='" + id + "' type='chat'><body>anyone?</body></message>")
		e := alice.expect("a bounce", func(e *element) bool { return e.is("", "message") && e.attr("id") == id })
		if typ, cond := e.stanzaError(); e.attr("type") != "error" || cond != "service-unavailable" || typ != "cancel" {
			t.Fatalf("want service-unavailable while the component is down, got %s", e)
		}
	}
	bounced("down-1")

	_, nc, err := dialComponent(t, addr, compDomain, "not-the-secret-at-all", nil)
	if streamErr(err) != "not-authorized" {
		t.Fatalf("bad secret: want <not-authorized/>, got %v", err)
	}
	// Logged, with the component's address.
	s.waitLog(t, "component handshake failed: wrong secret")
	logged := false
	for _, l := range strings.Split(s.log.String(), "\n") {
		logged = logged || (strings.Contains(l, "wrong secret") && strings.Contains(l, "remote="+nc.LocalAddr().String()))
	}
	if !logged {
		t.Errorf("the bad secret is not logged with the address %s", nc.LocalAddr())
	}
	bounced("down-2")

	if _, _, err := dialComponent(t, addr, "other.localhost", compSecret, nil); streamErr(err) != "host-unknown" {
		t.Fatalf("unknown domain: want <host-unknown/>, got %v", err)
	}
	s.waitLog(t, "to=other.localhost reason=host-unknown")

	gw, _, err := dialComponent(t, addr, compDomain, compSecret, nil)
	if err != nil {
		t.Fatalf("the right secret: %v", err)
	}
	alice.send("<message to='bot@" + compDomain + "' id='up-1' type='chat'><body>hello</body></message>")
	if e, err := nextStanza(t, gw); err != nil || e.attr("id") != "up-1" || e.attr("from") != "alice@localhost/pc" {
		t.Fatalf("component got %v, %v", e, err)
	}

	if _, _, err := dialComponent(t, addr, compDomain, compSecret, nil); streamErr(err) != "conflict" {
		t.Fatalf("second connection: want <conflict/>, got %v", err)
	}
	alice.send("<message to='bot@" + compDomain + "' id='up-2' type='chat'><body>still there?</body></message>")
	if e, err := nextStanza(t, gw); err != nil || e.attr("id") != "up-2" {
		t.Fatalf("first component after the conflict got %v, %v", e, err)
	}

	m := scrapeMetrics(t, url)
	for k, want := range map[string]float64{
		`koi_component_handshakes_total{result="success"}`:                                  1,
		`koi_component_handshakes_total{result="failure"}`:                                  2,
		`koi_component_handshakes_total{result="refused"}`:                                  1,
		`koi_component_connected{domain="gw.localhost"}`:                                    1,
		`koi_component_stanzas_total{direction="out",domain="gw.localhost",type="message"}`: 2,
	} {
		if m[k] != want {
			t.Errorf("%s = %v, want %v", k, m[k], want)
		}
	}

	// Shutdown: <system-shutdown/>, then the stream's end.
	done := make(chan struct{})
	go func() { s.stop(t); close(done) }()
	_, err = nextStanza(t, gw)
	if streamErr(err) != "system-shutdown" {
		t.Errorf("at shutdown the component got %v, want <system-shutdown/>", err)
	}
	gw.Close()
	<-done
}

// TestComponentTLS: a component listener with tls = true speaks TLS from
// the first byte with koi's certificate.
func TestComponentTLS(t *testing.T) {
	t.Parallel()
	s, addr, _ := componentServer(t, true)
	gw, _, err := dialComponent(t, addr, compDomain, compSecret, s.tlsConfig(t, "localhost"))
	if err != nil {
		t.Fatalf("component over TLS: %v", err)
	}
	defer gw.Close()
	s.addUser(t, "alice@localhost", "alice-pw")
	alice := login(t, dialOpts{addr: s.c2s, tls: s.tlsConfig(t, "localhost")}, "alice@localhost/pc", "alice-pw")
	sendComponent(t, gw, "<message xmlns='jabber:component:accept' from='bot@"+compDomain+"' to='alice@localhost/pc' type='chat' id='t1'><body>over TLS</body></message>")
	e := alice.expect("the component's message", isMessageFrom("bot@"+compDomain))
	if b := e.child("", "body"); b == nil || b.Text != "over TLS" {
		t.Fatalf("alice got %s", e)
	}
	s.waitLog(t, "component connected")
}

// TestComponentSlixmpp: a component written with Debian's slixmpp
// (ComponentXMPP, as gateways such as Slidge are) and a Go client user
// (mellium) exchange messages and IQs both ways, and the host's
// disco#items lists the component.
func TestComponentSlixmpp(t *testing.T) {
	t.Parallel()
	slixmppComponent(t, false)
}

// TestComponentSlixmppTLS: the same over a component listener with
// tls = true; slixmpp checks koi's certificate against its own domain.
func TestComponentSlixmppTLS(t *testing.T) {
	t.Parallel()
	slixmppComponent(t, true)
}

func slixmppComponent(t *testing.T, withTLS bool) {
	needSlixmpp(t, "slixmpp.componentxmpp", "slixmpp.plugins.xep_0092")
	s, addr, _ := componentServer(t, withTLS)
	s.addUser(t, "alice@localhost", "alice-pw")
	alice := login(t, dialOpts{addr: s.c2s, tls: s.tlsConfig(t, "localhost")}, "alice@localhost/pc", "alice-pw")

	host, port, _ := net.SplitHostPort(addr)
	portN, _ := strconv.Atoi(port)
	a := map[string]any{"domain": compDomain, "secret": compSecret, "host": host, "port": portN}
	if withTLS {
		a["ca_file"] = filepath.Join(s.dir, "tls", "cert.pem")
	}
	args, _ := json.Marshal(a)
	cmd := exec.Command(debianPython, filepath.Join("testdata", "slixmpp_component.py"), string(args))
	var stderr syncBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var seen []string
	expectLine := func(prefix string) string {
		t.Helper()
		timeout := time.After(3 * waitTimeout)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("slixmpp ended before %q; its output: %s\nits log:\n%s", prefix, strings.Join(seen, " | "), stderr.String())
				}
				seen = append(seen, l)
				if strings.HasPrefix(l, prefix) {
					return l
				}
			case <-timeout:
				t.Fatalf("no %q from slixmpp; its output: %s\nits log:\n%s", prefix, strings.Join(seen, " | "), stderr.String())
			}
		}
	}
	expectLine("READY")
	s.waitLog(t, "component connected")
	for _, l := range strings.Split(s.log.String(), "\n") {
		if strings.Contains(l, "component connected") && !strings.Contains(l, fmt.Sprintf("tls=%t", withTLS)) {
			t.Fatalf("want tls=%t: %s", withTLS, l)
		}
	}

	// The host lists the component.
	items := alice.iq("<iq type='get' to='localhost'><query xmlns='" + nsDiscoIt + "'/></iq>")
	found := false
	for _, it := range items.child(nsDiscoIt, "query").children("", "item") {
		found = found || it.attr("jid") == compDomain
	}
	if !found {
		t.Fatalf("disco#items of localhost does not list %s: %s", compDomain, items)
	}

	// User → component IQs, answered by slixmpp's plugins.
	info := alice.iq("<iq type='get' to='" + compDomain + "'><query xmlns='" + nsDiscoInfo + "'/></iq>")
	id := info.path("query", "identity")
	if info.attr("type") != "result" || id == nil || id.attr("category") != "gateway" || id.attr("type") != "irc" {
		t.Fatalf("disco#info of the component: %s", info)
	}
	ver := alice.iq("<iq type='get' to='" + compDomain + "'><query xmlns='" + nsVersion + "'/></iq>")
	if ver.attr("type") != "result" || ver.path("query", "name") == nil {
		t.Fatalf("version of the component: %s", ver)
	}

	// Messages both ways.
	alice.send("<message to='#koi%irc.example@" + compDomain + "' type='chat' id='c1'><body>hello gateway</body></message>")
	expectLine("GOT alice@localhost/pc #koi%irc.example@" + compDomain + " hello gateway")
	e := alice.expect("the echo", isMessageFrom("#koi%irc.example@"+compDomain))
	if b := e.child("", "body"); b == nil || b.Text != "echo: hello gateway" {
		t.Fatalf("alice got %s", e)
	}

	// Component → user IQ: the component asks alice's client, whose
	// library answers a version query it has no handler for with an error;
	// the component hears that answer (and no timeout).
	alice.send("<message to='bot@" + compDomain + "' type='chat' id='c2'><body>query me</body></message>")
	q := alice.expect("the component's IQ", func(e *element) bool { return e.is("", "iq") && e.attr("from") == "bot@"+compDomain })
	if q.attr("type") != "get" || q.child(nsVersion, "query") == nil || q.attr("to") != "alice@localhost/pc" {
		t.Fatalf("alice got %s", q)
	}
	l := expectLine("IQ ")
	if !strings.HasPrefix(l, "IQ error ") {
		t.Fatalf("the component heard %q, want the client's error", l)
	}
	e = alice.expect("the IQ report", isMessageFrom("bot@"+compDomain))
	if b := e.child("", "body"); b == nil || b.Text != "iq answer: "+strings.TrimPrefix(l, "IQ ") {
		t.Fatalf("alice got %s", e)
	}

	alice.send("<message to='bot@" + compDomain + "' type='chat'><body>bye</body></message>")
	expectLine("OK")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("slixmpp: %v; its log:\n%s", err, stderr.String())
	}
	// Gone: messages to it bounce.
	deadline := time.Now().Add(waitTimeout)
	for {
		alice.send("<message to='bot@" + compDomain + "' type='chat' id='after'><body>x</body></message>")
		e := alice.expect("an answer", func(e *element) bool {
			return e.is("", "message") && e.attr("from") != "" && strings.HasSuffix(e.attr("from"), compDomain)
		})
		if _, cond := e.stanzaError(); cond == "service-unavailable" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still no bounce after the component left: %s", e)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestComponentReloadSecret: a reload (SIGHUP) changes a component's
// secret for new handshakes; the connected component stays connected. A
// new domain needs a restart and changes nothing.
func TestComponentReloadSecret(t *testing.T) {
	t.Parallel()
	s, addr, _ := componentServer(t, false)
	gw, _, err := dialComponent(t, addr, compDomain, compSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	const next = "rotated-component-secret-42"
	src, _ := os.ReadFile(s.config)
	os.WriteFile(s.config, []byte(strings.Replace(string(src), compSecret, next, 1)), 0o600)
	mark := len(s.log.String())
	s.cmd.Process.Signal(syscall.SIGHUP)
	s.waitLog(t, "configuration reloaded")
	if after := s.log.String()[mark:]; !strings.Contains(after, "component secrets") {
		t.Fatalf("reload log:\n%s", after)
	}
	if _, _, err := dialComponent(t, addr, compDomain, compSecret, nil); streamErr(err) != "not-authorized" {
		t.Fatalf("the old secret after the reload: %v", err)
	}
	// The new secret is right: the domain is taken, by the first connection.
	if _, _, err := dialComponent(t, addr, compDomain, next, nil); streamErr(err) != "conflict" {
		t.Fatalf("the new secret after the reload: %v", err)
	}
	s.addUser(t, "alice@localhost", "alice-pw")
	alice := login(t, dialOpts{addr: s.c2s, tls: s.tlsConfig(t, "localhost")}, "alice@localhost/pc", "alice-pw")
	alice.send("<message to='bot@" + compDomain + "' id='kept' type='chat'><body>still up</body></message>")
	if e, err := nextStanza(t, gw); err != nil || e.attr("id") != "kept" {
		t.Fatalf("the connected component after the reload got %v, %v", e, err)
	}

	// Another domain: reported, not applied.
	cur, _ := os.ReadFile(s.config)
	os.WriteFile(s.config, append(cur, []byte("component \"new.localhost\" { secret = \""+next+"\" }\n")...), 0o600)
	mark = len(s.log.String())
	s.cmd.Process.Signal(syscall.SIGHUP)
	s.waitLog(t, "changed settings that take effect only at the next start")
	if after := s.log.String()[mark:]; !strings.Contains(after, "component (domains added or removed)") {
		t.Fatalf("reload log:\n%s", after)
	}
	if _, _, err := dialComponent(t, addr, "new.localhost", next, nil); streamErr(err) != "host-unknown" {
		t.Fatalf("a domain added by a reload: %v", err)
	}
}
